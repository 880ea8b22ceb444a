"""Importance-weighted distortion of received features: a fused reduction, CPU and CUDA.

For frame ``b``, feature ``i`` and scalar ``l`` with sent value ``z[b, i, l]`` and received
code ``c = codes_hat[b, i, l]`` (``-1``: feature not sent), the received value is the bin
midpoint ``ẑ = -1 + (c + 1/2) Δ_i`` with ``Δ_i = 2 / 2^Q_i`` (one ``Q`` or per-feature ``Q_i``,
:mod:`channels.feature_bits`) (:func:`channels.bits.dequantize`; Gray
codes decoded first), or ``ẑ = 0`` for a feature not sent (the link zero-fills it). Outputs:

    sq[b, i] = sum_l (z[b, i, l] - ẑ[b, i, l])^2                       (per-feature squared error)
    D[b]     = sum_i w[b, i] * sq[b, i] / L                             (weighted distortion)

``D[b]`` is the importance-weighted mean squared error ``sum_i w_i mean_l (z_il - ẑ_il)^2`` of
the semantic objective (docs/method.md §5.3), the quantity the allocation minimises.

Both backends add in the same order (scalars in order per feature, then features in order per
frame), so they agree to the last ulp or two (fused multiply-adds on the GPU) and each is
independent of thread count and launch shape.

This module is the front door (validation and the ``backend`` switch); the kernels sit below
it: :mod:`channels.kernels.cpu_distortion` and the CUDA twin in :mod:`channels.kernels.cuda_link`,
both compiling :func:`channels.kernels.squared_error.feature_squared_error`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from channels.bits import CODES
from channels.errors import fail
from channels.feature_bits import bits_array, check_bits_per_scalar
from channels.kernels.backend import resolve_backend
from channels.kernels.cpu_distortion import distortion_frames
from channels.kernels.squared_error import feature_squared_error

MAX_Q = 16


class Distortion(NamedTuple):
    """Result of :func:`feature_distortion`."""

    squared_error: np.ndarray
    """float64 ``[B, N]``: ``sum_l (z - ẑ)^2`` per feature."""
    weighted: np.ndarray
    """float64 ``[B]``: ``sum_i w_i mean_l (z - ẑ)^2`` per frame."""


def feature_distortion(
    z: Any,
    codes_hat: Any,
    weights: Any,
    bits_per_scalar: int | Any,
    *,
    code: str = "binary",
    backend: str = "auto",
) -> Distortion:
    """Squared error per feature and importance-weighted distortion per frame.

    Args:
        z: real ``[B, N, L]``: the features that were quantised and sent.
        codes_hat: integer ``[B, N, L]``: received codes in ``0..2^Q - 1``, ``-1`` for features
            not sent (``channels.kernels.link_cpu.transmit_codes(...).codes_hat``).
        weights: importance ``w`` broadcastable to ``[B, N]`` (e.g. ``[N]``), finite.
        bits_per_scalar: ``Q`` in 1..16, or ``Q_i`` per feature (integers ``[N]``);
            code: ``"binary"`` or ``"gray"``.
        backend: "auto", "cpu" or "cuda" (:func:`channels.kernels.backend.resolve_backend`).

    Returns:
        :class:`Distortion` ``(squared_error [B, N], weighted [B])``.

    Examples:
        >>> z = np.array([[[0.5, -0.5], [0.25, 0.0]]])        # B = 1, N = 2, L = 2
        >>> codes = np.array([[[3, 1], [-1, -1]]])             # Q = 2: midpoints -0.75 .. 0.75
        >>> out = feature_distortion(z, codes, [1.0, 2.0], 2, backend="cpu")
        >>> out.squared_error.round(4).tolist(), out.weighted.round(5).tolist()
        ([[0.125, 0.0625]], [0.125])
        >>> per_feature = feature_distortion(z, [[[3, 1], [5, 4]]], 1.0, [2, 3], backend="cpu")
        >>> per_feature.squared_error.round(4).tolist()            # Q = 2, then Q = 3
        [[0.125, 0.0312]]
    """
    scalar = isinstance(bits_per_scalar, int | np.integer) and not isinstance(bits_per_scalar, bool)
    if scalar and not 1 <= bits_per_scalar <= MAX_Q:
        raise fail("bits_per_scalar", bits_per_scalar, f"an integer in 1..{MAX_Q}")
    if code not in CODES:
        raise fail("code", code, " or ".join(CODES))
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 3:
        raise fail("z", f"array of shape {z.shape}", "shape [B, N, L]")
    q = int(bits_per_scalar) if scalar else check_bits_per_scalar(
        "bits_per_scalar", bits_per_scalar, z.shape[1], MAX_Q
    )  # fmt: skip
    codes_hat = np.asarray(codes_hat)
    if not np.issubdtype(codes_hat.dtype, np.integer) or codes_hat.shape != z.shape:
        raise fail("codes_hat", f"{codes_hat.dtype} array of shape {codes_hat.shape}",
                   f"an integer array of the shape of z {z.shape}")  # fmt: skip
    top = (1 << bits_array(q, z.shape[1]))[None, :, None] - 1
    over = (codes_hat < -1) | (codes_hat > top)
    if codes_hat.size and over.any():
        feature = int(np.argwhere(over)[0, 1])
        bad, top_i = codes_hat[over].flat[0], int(top[0, feature, 0])
        raise fail("codes_hat", int(bad), f"values in 0..{top_i}, or -1 for a feature not sent")
    shape = z.shape[:2]
    try:
        w = np.ascontiguousarray(np.broadcast_to(np.asarray(weights, np.float64), shape))
    except (TypeError, ValueError):
        raise fail("weights", f"array of shape {np.shape(weights)}",
                   f"finite numbers broadcastable to {shape}") from None  # fmt: skip
    if not np.all(np.isfinite(w)):
        raise fail("weights", w[~np.isfinite(w)].flat[0], "finite numbers")
    backend = resolve_backend(backend)
    sq = np.zeros(shape)
    weighted = np.zeros(shape[0])
    if z.size:
        if backend == "cuda":
            from channels.kernels.cuda_link import squared_error_cuda as kernel
        else:
            kernel = distortion_frames
        kernel(np.ascontiguousarray(z), np.ascontiguousarray(codes_hat, dtype=np.int64), w, q,
               code == "gray", sq, weighted)  # fmt: skip
    return Distortion(sq, weighted)


__all__ = ["Distortion", "distortion_frames", "feature_distortion", "feature_squared_error"]
