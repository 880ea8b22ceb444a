"""Flat block fading (Rayleigh, Rician), equalisation with perfect or imperfect CSI.

A block-fading channel has one complex coefficient ``h`` per example and per subchannel, constant
over the block's symbols: ``y[..., k, t] = h[..., k] x[..., k, t] + n[..., k, t]`` with
``n ~ CN(0, no)``. Coefficients are normalised to ``E|h|^2 = 1`` so the average received
Es/N0 equals the transmitted one (docs/conventions.md).

- Rayleigh: ``h ~ CN(0, 1)``; ``|h|`` is Rayleigh with scale ``1/sqrt(2)``.
- Rician with K-factor ``K`` (linear): ``h = sqrt(K/(K+1)) e^{j phi} + sqrt(1/(K+1)) w``,
  ``w ~ CN(0, 1)``, fixed line-of-sight phase ``phi`` (default 0); ``K = 0`` is Rayleigh.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from channels._array import Array, abs2, as_like, complex_normal, is_torch
from channels.awgn import awgn, check_noise_variance
from channels.errors import ConfigError
from channels.seed_streams import entropy_words

FADING_MODELS = ("awgn", "rayleigh", "rician")


def check_fading(model: str, k_factor: float = 0.0) -> str:
    """Validate a fading model name and its K-factor; return the canonical name."""
    key = str(model).lower()
    if key not in FADING_MODELS:
        raise ConfigError(f"channel: {model!r} is not one of {', '.join(FADING_MODELS)}")
    if not np.isfinite(k_factor) or k_factor < 0:
        raise ConfigError(f"rician_k: {k_factor!r} is invalid; allowed: finite values >= 0")
    return key


def fading_coefficients(
    model: str,
    shape: tuple[int, ...],
    rng: Any = None,
    k_factor: float = 0.0,
    los_phase: float = 0.0,
    like: Array | None = None,
) -> Array:
    """Draw block-fading coefficients ``h`` of ``shape`` (e.g. ``[batch, K]``), ``E|h|^2 = 1``.

    ``model`` is "awgn" (``h = 1``), "rayleigh" or "rician" (with ``k_factor``). The result is a
    torch tensor when ``like`` is one (then ``rng`` is a ``torch.Generator``), else complex128.
    """
    model = check_fading(model, k_factor)
    like = np.zeros(0, dtype=np.complex128) if like is None else like
    if model == "awgn":
        ones = np.ones(shape, dtype=np.complex128)
        return as_like(ones, like).to(_complex_dtype(like)) if is_torch(like) else ones
    w = complex_normal(shape, rng, like)
    if model == "rayleigh" or k_factor == 0:
        return w
    los = np.sqrt(k_factor / (k_factor + 1.0)) * np.exp(1j * los_phase)
    return los + np.sqrt(1.0 / (k_factor + 1.0)) * w


def trial_fading(
    model: str,
    n_subchannels: int,
    prefix: tuple[int, ...],
    trials: np.ndarray,
    k_factor: float = 0.0,
) -> np.ndarray:
    """Every trial's coefficients ``h [T, K]`` (complex128), each the first draw of its own
    generator: row ``j`` equals ``fading_coefficients(model, (K,),
    rng=numpy.random.default_rng((*prefix, trials[j])), k_factor=k_factor)`` bit for bit,
    without a generator per trial: the streams are seeded and drawn in a compiled loop over the
    trials (:mod:`channels.kernels.trial_fading`; ``trials`` in ``[0, 2^32)``)."""
    from channels.kernels.trial_fading import amplitudes, fading_trials_cpu
    from channels.kernels.ziggurat_tables import FI, KI, WI

    model = check_fading(model, k_factor)
    trials = _check_trials(trials)
    if model == "awgn":
        return np.ones((trials.size, n_subchannels), dtype=np.complex128)
    h_re = np.empty((trials.size, n_subchannels))
    h_im = np.empty((trials.size, n_subchannels))
    fading_trials_cpu(entropy_words(prefix), trials, *amplitudes(model, k_factor),
                      KI, WI, FI, h_re, h_im)  # fmt: skip
    return h_re + 1j * h_im


def trial_fading_device(
    model: str,
    n_subchannels: int,
    prefix: tuple[int, ...],
    trials: np.ndarray,
    k_factor: float = 0.0,
    stream: Any = 0,
) -> tuple[Any, Any, Any]:
    """:func:`trial_fading` on the GPU, one thread per trial: ``(h_re, h_im, gains)``, Numba
    device arrays ``[T, K]`` (float64) with ``gains = |h|^2``, launched on ``stream``; only
    ``trials`` goes to the device. The coefficients equal :func:`trial_fading`'s up to the last
    bit of CUDA's ``log1p``/``exp`` (:mod:`channels.kernels.trial_fading`)."""
    from numba import cuda

    from channels.kernels.trial_fading import amplitudes, device_tables, fading_trials_kernel

    model = check_fading(model, k_factor)
    trials = _check_trials(trials)
    shape = (trials.size, n_subchannels)
    h_re = cuda.device_array(shape, np.float64, stream=stream)
    h_im = cuda.device_array(shape, np.float64, stream=stream)
    gains = cuda.device_array(shape, np.float64, stream=stream)
    if not (trials.size and n_subchannels):
        return h_re, h_im, gains
    if model == "awgn":
        h_re[:] = 1.0
        h_im[:] = 0.0
        gains[:] = 1.0
        return h_re, h_im, gains
    normals = cuda.device_array((trials.size, 2 * n_subchannels), np.float64, stream=stream)
    threads = 128
    blocks = -(-trials.size // threads)
    fading_trials_kernel[blocks, threads, stream](
        cuda.to_device(entropy_words(prefix), stream=stream),
        cuda.to_device(trials, stream=stream), *amplitudes(model, k_factor), *device_tables(),
        normals, h_re, h_im, gains,
    )  # fmt: skip
    return h_re, h_im, gains


def _check_trials(trials: Any) -> np.ndarray:
    """``trials`` as uint64 ``[T]``; each must lie in ``[0, 2^32)`` (one entropy word)."""
    values = np.asarray(trials).reshape(-1)
    if values.size and (values.min() < 0 or values.max() >= 2**32):
        raise ConfigError(f"trials: {values.min()}..{values.max()} is invalid; "
                          "allowed: integers in [0, 2**32)")  # fmt: skip
    return values.astype(np.uint64)


def _complex_dtype(like: Array) -> Any:
    import torch

    return torch.complex128 if like.dtype in (torch.float64, torch.complex128) else torch.complex64


def block_fading(x: Array, h: Array, no: Any, rng: Any = None, noise: Array | None = None) -> Array:
    """Pass ``x [..., K, n]`` through coefficients ``h [..., K]`` and AWGN of variance ``no``.

    Returns ``y = h[..., None] * x + n`` (same kind as ``x``; torch keeps gradients).
    """
    h = as_like(h, x)
    return awgn(h[..., None] * x, no, rng=rng, noise=noise)


def estimate_channel(h: Array, error_var: float, rng: Any = None) -> Array:
    """Imperfect CSI: ``h_hat = h + e``, ``e ~ CN(0, error_var)`` independent of ``h``.

    ``error_var = 0`` returns ``h`` (perfect CSI). This is a noisy least-squares estimate;
    the receiver below treats ``h_hat`` as exact (mismatched detection).
    """
    if not np.isfinite(error_var) or error_var < 0:
        raise ConfigError(f"csi_error_var: {error_var!r} is invalid; allowed: finite values >= 0")
    if error_var == 0:
        return h
    return h + error_var**0.5 * complex_normal(tuple(h.shape), rng, h)


def equalize(y: Array, h_est: Array, no: Any) -> tuple[Array, Array]:
    """Zero-forcing equalisation of ``y [..., K, n]`` with estimates ``h_est [..., K]``.

    Returns ``(x_hat, no_eff)`` with ``x_hat = y / h_est`` and the post-equalisation noise
    variance ``no_eff = no / |h_est|^2`` of shape ``[..., K, 1]`` (for LLR demapping). For a
    scalar channel with perfect CSI, nearest-point detection on ``x_hat`` is maximum likelihood.
    """
    check_noise_variance(no)
    h_est = as_like(h_est, y)[..., None]
    return y / h_est, as_like(no, y) / abs2(h_est)
