"""Additive white Gaussian noise under the project's one SNR convention.

Convention (docs/conventions.md): symbols have unit average energy Es = 1; ``no`` is the noise
variance per complex symbol, split equally between I and Q, so each real dimension has
variance ``no / 2`` and ``Es/N0 = 1 / no``. ``y = x + n``, ``n ~ CN(0, no)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from channels._array import Array, as_like, complex_normal, to_numpy
from channels.errors import ConfigError


def esno_db_to_no(esno_db: float | np.ndarray, es: float = 1.0) -> np.ndarray:
    """Noise variance per complex symbol: ``no = Es / 10^(EsN0_dB/10)``."""
    return es / np.power(10.0, np.asarray(esno_db, dtype=np.float64) / 10.0)


def ebno_db_to_no(ebno_db: float | np.ndarray, bits_per_symbol: int, es: float = 1.0) -> np.ndarray:
    """``no`` for a given Eb/N0 in dB: Es/N0 = bits_per_symbol * Eb/N0 (uncoded)."""
    return esno_db_to_no(np.asarray(ebno_db) + 10.0 * np.log10(bits_per_symbol), es)


def check_noise_variance(no: Any, field: str = "no") -> None:
    """Raise ConfigError unless every ``no`` is finite and >= 0."""
    arr = to_numpy(no).astype(np.float64)
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"{field}: {no!r} is invalid; allowed: finite values >= 0")


def awgn(x: Array, no: Any, rng: Any = None, noise: Array | None = None) -> Array:
    """Add complex white Gaussian noise: ``y = x + sqrt(no) * w``, ``w ~ CN(0, 1)``.

    Args:
        x: symbols ``[..., n]``, complex (NumPy array or torch tensor; torch keeps gradients).
        no: noise variance per complex symbol, scalar or broadcastable to ``x``.
        rng: ``numpy.random.Generator``/seed (NumPy) or ``torch.Generator`` (torch).
        noise: optional unit-variance CN(0, 1) samples of ``x``'s shape to use instead of
            drawing (so the NumPy and torch paths can be fed the same noise).

    Returns:
        ``y`` of ``x``'s shape and kind.
    """
    check_noise_variance(no)
    if noise is None:
        noise = complex_normal(tuple(x.shape), rng, x)
    noise = as_like(noise, x)
    no = as_like(no, x)
    return x + no**0.5 * noise
