"""The per-feature squared error as plain Python, compiled by both backends.

:func:`feature_squared_error` is compiled by ``numba.njit`` for the CPU kernel
(:mod:`channels.kernels.cpu_distortion`) and by ``cuda.jit(device=True)`` for its CUDA twin
(:mod:`channels.kernels.cuda_link`), so both compute the same sum in the same order. The
formula: :mod:`channels.kernels.distortion`.

Examples:
    >>> import numpy as np
    >>> z = np.array([[[0.5, -0.5]]])
    >>> float(feature_squared_error(z, np.array([[[3, 1]]]), 0, 0, 0.5, False))   # Q = 2
    0.125
"""

from __future__ import annotations

import numpy as np

__all__ = ["feature_squared_error"]


def feature_squared_error(z, codes_hat, b, i, step, gray):  # noqa: ANN001, ANN201 (compiled)
    """``sum_l (z[b, i, l] - ẑ[b, i, l])^2`` of one feature, scalars in order (module docstring).

    ``step`` is the feature's bin width ``Δ_i = 2 / 2^Q_i``. Plain Python compiled by
    ``numba.njit`` for :func:`channels.kernels.cpu_distortion.distortion_frames` and by
    ``cuda.jit(device=True)`` for its CUDA twin (:mod:`channels.kernels.cuda_link`), so both
    backends compute the same sum.
    """
    s = 0.0
    for l in range(z.shape[2]):
        c = np.int64(codes_hat[b, i, l])
        z_hat = 0.0
        if c >= 0:
            if gray:
                c ^= c >> 1
                c ^= c >> 2
                c ^= c >> 4
                c ^= c >> 8
            z_hat = -1.0 + (c + 0.5) * step
        d = z[b, i, l] - z_hat
        s += d * d
    return s
