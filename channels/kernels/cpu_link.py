"""The fused Numba CPU kernel of the semantic link (the method: :mod:`channels.kernels.link_cpu`).

:func:`link_frames` is unchecked: the front door :func:`channels.kernels.link_cpu.transmit_codes`
validates and picks it or its CUDA twin (:mod:`channels.kernels.cuda_link`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from channels.feature_bits import bits_array
from channels.kernels import philox as _p
from channels.kernels.link_tables import POPCOUNT

__all__ = ["link_frames"]

philox = numba.njit(inline="always")(_p.philox4x32_10)
uniform32 = numba.njit(inline="always")(_p.uniform32)
uniform52 = numba.njit(inline="always")(_p.uniform52)
cos_sin_2pi = numba.njit(inline="always")(_p.cos_sin_2pi)
box_muller = numba.njit(inline="always")(_p.make_box_muller(cos_sin_2pi))


@numba.njit(parallel=True, cache=True)
def _link_frames(
    codes,
    bits_per_symbol,
    h_re,
    h_im,
    power,
    sigma,
    q,
    key0,
    key1,
    point,
    trials,
    level_i,
    level_q,
    label_at,
    codes_out,
    errors_out,
):  # noqa: ANN001, ANN201 (Numba-compiled)
    """The kernel of :func:`link_frames`, with ``q`` an int64 array ``[N]``."""
    n_frames, n_features, n_scalars = codes.shape
    first = np.empty(n_features, np.int64)  # first bit of each feature in its frame
    acc = 0
    for i in range(n_features):
        first[i] = acc
        acc += n_scalars * q[i]
    zero = np.uint64(0)
    for job in numba.prange(n_frames * n_features):
        b = job // n_features
        i = job - b * n_features
        qi = q[i]
        bits_per_feature = n_scalars * qi
        code_mask = (1 << qi) - 1
        m = bits_per_symbol[b, i]
        if m == 0:
            for l in range(n_scalars):
                codes_out[b, i, l] = -1
            errors_out[b, i] = 0
            continue
        trial = trials[b]
        amplitude = math.sqrt(power[b, i])
        g_re = h_re[b, i] * amplitude
        g_im = h_im[b, i] * amplitude
        g2 = g_re * g_re + g_im * g_im
        e_re, e_im, inv = 1.0, 0.0, 1.0  # no signal: decide on y itself
        if g2 > 0.0:
            e_re, e_im, inv = g_re, g_im, 1.0 / g2
        side = 1 << (m // 2)
        half_span = 0.5 * (side - 1)
        # unit-energy square QAM -> odd-integer grid (a = x / grid_scale); position (a+side-1)/2
        position_scale = 0.5 / math.sqrt(1.5 / ((1 << m) - 1)) if m > 1 else 0.5
        label_mask = (1 << m) - 1
        n_symbols = (bits_per_feature + m - 1) // m
        first_index = first[i]
        acc_in = 0  # transmitter bit reservoir: n_in pending bits, MSB first
        n_in = 0
        read = 0
        acc_out = 0  # receiver bit reservoir
        n_out = 0
        written = 0
        errors = 0
        for s in range(n_symbols):
            while n_in < m:
                if read < n_scalars:
                    acc_in = (acc_in << qi) | (codes[b, i, read] & code_mask)
                    read += 1
                    n_in += qi
                else:  # zero padding of the last symbol
                    acc_in <<= m - n_in
                    n_in = m
            n_in -= m
            label = (acc_in >> n_in) & label_mask
            acc_in &= (1 << n_in) - 1
            x_re = level_i[m, label]
            x_im = level_q[m, label]
            y_re = g_re * x_re - g_im * x_im
            y_im = g_re * x_im + g_im * x_re
            if sigma > 0.0:
                w0, w1, w2, w3 = philox(np.uint64(first_index + s), trial, point, zero, key0, key1)
                n_re, n_im = box_muller(uniform52(w1, w3), uniform32(w2))
                y_re += sigma * n_re
                y_im += sigma * n_im
            z_re = (y_re * e_re + y_im * e_im) * inv  # y conj(g) / |g|^2
            if m == 1:
                decided = 1 if z_re < 0.0 else 0
            else:
                z_im = (y_im * e_re - y_re * e_im) * inv
                pi = min(max(round(z_re * position_scale + half_span), 0.0), side - 1.0)
                pq = min(max(round(z_im * position_scale + half_span), 0.0), side - 1.0)
                decided = label_at[m, int(pi), int(pq)]
            valid = bits_per_feature - s * m
            if valid >= m:
                valid = m
            diff = (label ^ decided) >> (m - valid)
            errors += POPCOUNT[diff]
            acc_out = (acc_out << valid) | (decided >> (m - valid))
            n_out += valid
            while n_out >= qi:
                n_out -= qi
                codes_out[b, i, written] = (acc_out >> n_out) & code_mask
                written += 1
                acc_out &= (1 << n_out) - 1
        errors_out[b, i] = errors


def link_frames(
    codes,
    bits_per_symbol,
    h_re,
    h_im,
    power,
    sigma,
    q,
    key0,
    key1,
    point,
    trials,
    level_i,
    level_q,
    label_at,
    codes_out,
    errors_out,
):  # noqa: ANN001, ANN201 (arguments of the compiled kernel)
    """Transmit every feature of every frame (see the module docstring); parallel over both.

    Args:
        codes: int64 ``[B, N, L]``, values of feature ``i`` in ``0..2^Q_i - 1``.
        bits_per_symbol: int64 ``[B, N]`` in {0, 1, 2, 4, 6, 8}.
        h_re, h_im, power: float64 ``[B, N]``: gain ``h`` and per-symbol power ``p >= 0``.
        sigma: noise standard deviation per real dimension, ``sqrt(no / 2)``.
        q: bits per scalar, ``Q`` (an int) or ``Q_i`` (integers ``[N]``); key0, key1: seed key
            words; point: uint64 point index; trials: uint64 ``[B]`` trial index of each frame.
        level_i, level_q, label_at: the tables of :mod:`channels.kernels.link_tables`.
        codes_out: int64 ``[B, N, L]`` output (``-1`` where not sent).
        errors_out: int64 ``[B, N]`` output bit errors.

    Unchecked (the Numba kernel runs on what it gets); :func:`transmit_codes` validates.
    """
    q = np.ascontiguousarray(bits_array(q, codes.shape[1]), dtype=np.int64)
    _link_frames(codes, bits_per_symbol, h_re, h_im, power, sigma, q, key0, key1, point, trials,
                 level_i, level_q, label_at, codes_out, errors_out)  # fmt: skip
