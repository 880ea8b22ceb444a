"""The Numba CPU kernel of the importance-weighted distortion (the formula:
:mod:`channels.kernels.distortion`, the front door that validates and picks this kernel or its
CUDA twin :func:`channels.kernels.cuda_link.squared_error_cuda`)."""

from __future__ import annotations

import numba
import numpy as np

from channels.feature_bits import bits_array
from channels.kernels.squared_error import feature_squared_error

__all__ = ["distortion_frames"]

_feature_squared_error = numba.njit(inline="always")(feature_squared_error)


@numba.njit(parallel=True, cache=True)
def _distortion_frames(z, codes_hat, weights, q, gray, sq_out, weighted_out):  # noqa: ANN001, ANN201
    """The kernel of :func:`distortion_frames`, with ``q`` an int64 array ``[N]``."""
    n_frames, n_features, n_scalars = z.shape
    for b in numba.prange(n_frames):
        acc = 0.0
        for i in range(n_features):
            step = 2.0 / (1 << q[i])
            s = _feature_squared_error(z, codes_hat, b, i, step, gray)
            sq_out[b, i] = s
            acc += weights[b, i] * (s / n_scalars)
        weighted_out[b] = acc


def distortion_frames(z, codes_hat, weights, q, gray, sq_out, weighted_out):  # noqa: ANN001, ANN201
    """Per-feature squared errors and per-frame weighted distortion (module docstring).

    Args:
        z: float64 ``[B, N, L]``; codes_hat: integer ``[B, N, L]`` (``-1``: not sent).
        weights: float64 ``[B, N]``; q: bits per scalar, ``Q`` (an int) or ``Q_i`` (integers
            ``[N]``); gray: codes are Gray codes.
        sq_out: float64 ``[B, N]`` output; weighted_out: float64 ``[B]`` output.

    Unchecked; :func:`feature_distortion` validates.
    """
    q = np.ascontiguousarray(bits_array(q, z.shape[1]), dtype=np.int64)
    _distortion_frames(z, codes_hat, weights, q, gray, sq_out, weighted_out)
