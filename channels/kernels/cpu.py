"""Fused Numba CPU kernel of the BER Monte Carlo: draw, map, fade, add noise, equalise, detect,
count, without materialising arrays.

One *trial* is a fixed number of fading blocks of ``coherence`` symbols each. Per block the
fading stream (stream 1, counter ``(block, trial, point, 1)``) gives the coefficient ``h`` (and
its estimate ``h_hat = h + e`` for imperfect CSI); per symbol the data stream (counter
``(symbol, trial, point, 0)``) gives the label bits and the complex noise. The receiver
equalises with ``h_hat`` (zero forcing) and decides for the nearest constellation point, which
is maximum likelihood for perfect CSI.

With perfect CSI the equalised sample is ``z = x + n / h`` and, ``n`` being circularly symmetric,
``n / h`` has the law of ``(sigma / |h|) n`` given ``h``: only ``|h|^2`` matters, so the kernel
draws ``|h|^2`` alone (for Rayleigh ``|h|^2 = -ln u ~ Exp(1)``: one log, no angle) and scales the
noise. With imperfect CSI the full complex coefficient and its estimate are drawn.

Per trial the kernel returns the bit errors and the sum over blocks of the squared block error
counts (for intervals that respect correlated errors).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from channels.kernels import philox as _p

philox = numba.njit(inline="always")(_p.philox4x32_10)
uniform32 = numba.njit(inline="always")(_p.uniform32)
uniform52 = numba.njit(inline="always")(_p.uniform52)
cos_sin_2pi = numba.njit(inline="always")(_p.cos_sin_2pi)
box_muller = numba.njit(inline="always")(_p.make_box_muller(cos_sin_2pi))

FADING_CODES = {"awgn": 0, "rayleigh": 1, "rician": 2}
POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)
SQRT_HALF = math.sqrt(0.5)


@numba.njit(parallel=True, cache=True)
def ber_trials(
    first_trial,
    n_trials,
    blocks_per_trial,
    coherence,
    key0,
    key1,
    point,
    bits_per_symbol,
    level_i,
    level_q,
    label_of_position,
    sigma,
    fading,
    los_amplitude,
    scatter_amplitude,
    csi_sigma,
    errors_out,
    square_out,
):
    """Simulate trials ``first_trial .. first_trial + n_trials - 1`` of one point.

    Args:
        key0, key1: the seed's key words (uint64 < 2^32); point: point index (uint64 < 2^32).
        bits_per_symbol: m; labels are ``m`` random bits.
        level_i, level_q: float64 ``[M]`` in-phase / quadrature amplitude of each label.
        label_of_position: int64 ``[side, side]`` square-QAM decision table (unused for BPSK).
        sigma: noise standard deviation per real dimension, ``sqrt(no / 2)``.
        fading: 0 AWGN, 1 Rayleigh, 2 Rician; ``h = los_amplitude + scatter_amplitude * w``
            with ``w ~ CN(0, 1)``; ``csi_sigma``: std of the estimation error per complex entry.
        errors_out, square_out: int64 ``[n_trials]`` outputs (bit errors, sum of squared block
            error counts).
    """
    mask = np.uint64((1 << bits_per_symbol) - 1)
    perfect_csi = csi_sigma == 0.0
    side = label_of_position.shape[0]
    half_span = 0.5 * (side - 1)
    # unit-energy square QAM -> odd-integer grid; position j = (a + side - 1) / 2
    grid_scale = math.sqrt(1.5 / ((1 << bits_per_symbol) - 1)) if bits_per_symbol > 1 else 1.0
    position_scale = 0.5 / grid_scale
    one = np.uint64(1)
    zero = np.uint64(0)
    for t in numba.prange(n_trials):
        trial = np.uint64(first_trial + t)
        total = 0
        squares = 0
        for block in range(blocks_per_trial):
            h_re, h_im, e_re, e_im = 1.0, 0.0, 1.0, 0.0
            noise_scale = sigma  # perfect CSI: z = x + (sigma / |h|) n after equalisation
            if fading != 0:
                f0, f1, f2, f3 = philox(np.uint64(block), trial, point, one, key0, key1)
                if fading == 1 and perfect_csi:
                    # only |h|^2 matters and |h|^2 ~ Exp(1) for Rayleigh: one log, no angle
                    noise_scale = sigma / math.sqrt(-math.log(uniform32(f0)))
                else:
                    g_re, g_im = box_muller(uniform32(f0), uniform32(f1))
                    h_re = los_amplitude + scatter_amplitude * SQRT_HALF * g_re
                    h_im = scatter_amplitude * SQRT_HALF * g_im
                    noise_scale = sigma / math.sqrt(h_re * h_re + h_im * h_im)
                    e_re, e_im = h_re, h_im
                    if not perfect_csi:
                        d_re, d_im = box_muller(uniform32(f2), uniform32(f3))
                        e_re += csi_sigma * SQRT_HALF * d_re
                        e_im += csi_sigma * SQRT_HALF * d_im
            inv = 1.0 / (e_re * e_re + e_im * e_im)
            block_errors = 0
            for s in range(coherence):
                w0, w1, w2, w3 = philox(
                    np.uint64(block * coherence + s), trial, point, zero, key0, key1
                )
                label = w0 & mask
                x_re = level_i[label]
                x_im = level_q[label]
                n_re, n_im = box_muller(uniform52(w1, w3), uniform32(w2))
                if perfect_csi:
                    z_re = x_re + noise_scale * n_re
                    z_im = x_im + noise_scale * n_im
                else:  # mismatched zero forcing: z = (h x + sigma n) conj(h_hat) / |h_hat|^2
                    y_re = h_re * x_re - h_im * x_im + sigma * n_re
                    y_im = h_re * x_im + h_im * x_re + sigma * n_im
                    z_re = (y_re * e_re + y_im * e_im) * inv
                    z_im = (y_im * e_re - y_re * e_im) * inv
                if bits_per_symbol == 1:
                    decided = one if z_re < 0.0 else zero
                else:
                    pi = min(max(round(z_re * position_scale + half_span), 0.0), side - 1.0)
                    pq = min(max(round(z_im * position_scale + half_span), 0.0), side - 1.0)
                    decided = np.uint64(label_of_position[int(pi), int(pq)])
                block_errors += POPCOUNT[label ^ decided]
            total += block_errors
            squares += block_errors * block_errors
        errors_out[t] = total
        square_out[t] = squares
