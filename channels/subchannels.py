"""K parallel (OFDM-like) subchannels with per-subchannel gain and transmit power.

Subchannel ``k`` carries ``x[..., k, t]`` (unit average energy) scaled by the transmit power
``p[..., k]`` per symbol: ``y = h_k sqrt(p_k) x + n``, ``n ~ CN(0, no)``. Its per-symbol SNR is
``gamma_k = |h_k|^2 p_k / no = g_k p_k / no`` with power gain ``g_k = |h_k|^2``; this is the
``gamma`` of docs/method.md §4.4 that the optimizer's BER models take.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from channels._array import Array, abs2, as_like, to_numpy
from channels.awgn import check_noise_variance
from channels.errors import ConfigError
from channels.fading import block_fading, equalize


def check_power(power: Any, field: str = "power") -> None:
    """Raise ConfigError unless every transmit power is finite and >= 0."""
    arr = to_numpy(power).astype(np.float64)
    if np.any(~np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"{field}: {power!r} is invalid; allowed: finite values >= 0")


def subchannel_snr(h: Array, power: Any, no: float) -> Array:
    """Per-subchannel SNR ``|h_k|^2 p_k / no``, shape of ``h`` broadcast with ``power``."""
    check_power(power)
    check_noise_variance(no)
    return abs2(h) * as_like(power, h) / no


def transmit_parallel(
    x: Array, h: Array, power: Any, no: Any, rng: Any = None, noise: Array | None = None
) -> Array:
    """Send ``x [..., K, n]`` over K subchannels: ``y = h sqrt(p) x + n``.

    ``h [..., K]`` complex coefficients, ``power [..., K]`` per-symbol transmit powers (>= 0),
    ``no`` noise variance per complex symbol. NumPy or torch (differentiable in x, h, power).
    """
    check_power(power)
    amplitude = as_like(power, h) ** 0.5
    return block_fading(x, h * amplitude, no, rng=rng, noise=noise)


def receive_parallel(y: Array, h_est: Array, power: Any, no: Any) -> tuple[Array, Array]:
    """Equalise ``y [..., K, n]`` with the estimated end-to-end gain ``h_est sqrt(p)``.

    Returns ``(x_hat, no_eff)`` with ``no_eff = no / (|h_est|^2 p)`` of shape ``[..., K, 1]``;
    a subchannel with zero power has infinite ``no_eff`` (its symbols carry no information).
    """
    check_power(power)
    gain = h_est * as_like(power, h_est) ** 0.5
    if np.any(to_numpy(abs2(gain)) == 0):
        raise ConfigError("power: a subchannel with zero power or gain cannot be equalised")
    return equalize(y, gain, no)
