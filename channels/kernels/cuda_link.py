"""Numba-CUDA twin of the semantic-link kernel :func:`channels.kernels.link_cpu.link_frames`.

Same link, same noise: symbol ``s`` of feature ``i`` of frame ``b`` takes its noise from the
Philox counter ``(i·L·Q + s, trial[b], point, 0)``, so both backends send, receive and count
exactly the same bits (see :mod:`channels.kernels.cuda` for the last-ulp caveat).

GPU layout: balanced chunks of symbols. The CPU kernel walks a feature's ``S = ceil(L·Q / m)``
symbols in one thread; a feature sent with BPSK has 6 times more symbols than one sent with
64-QAM, so one thread per feature would leave most lanes of a warp idle. Here each feature's
symbols are cut into chunks of ``C`` symbols (the last may be shorter) and one thread sends one
chunk. ``C`` is a multiple of ``U = lcm_m(Q / gcd(m, Q))`` over the modulations, so a chunk
starts at bit ``c·C·m``, a multiple of ``lcm(m, Q)``: on a code boundary. A chunk therefore
reads and writes whole codes of its own, and the threads never share a code. Chunk ``g`` of the
whole batch finds its feature by binary search in the prefix sums ``offsets[B·N + 1]`` of the
chunk counts (:func:`chunk_offsets`); its bit errors are added to ``errors[b, i]`` with one
integer atomic add, so the result does not depend on the chunk size or the launch shape.
The noise is float32 with a float64 fallback near decision boundaries, as in
:mod:`channels.kernels.cuda_ber`: the decisions are those of the float64 kernel.

:func:`squared_error_cuda` is the twin of :func:`channels.kernels.distortion.distortion_frames`:
per feature ``sum_l (z - ẑ)^2`` (one thread per feature, scalars in order) and per frame
``sum_i w_i · sq_i / L`` (one thread per frame, features in order): the same order of float
operations as the CPU twin, so it too is independent of the launch shape.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from channels.kernels.cuda import (
    box_muller,
    box_muller_fast,
    half_integer_distance,
    imin,
    launch_shape,
    min_float,
    philox,
    position,
    uniform32,
    uniform52,
)

DEFAULT_SYMBOLS_PER_THREAD = 64
MODULATION_BITS = (1, 2, 4, 6, 8)


def chunk_symbols(q: int, symbols_per_thread: int = DEFAULT_SYMBOLS_PER_THREAD) -> int:
    """Chunk length ``C``: the multiple of ``U = lcm_m(Q / gcd(m, Q))`` nearest the request."""
    unit = 1
    for m in MODULATION_BITS:
        unit = math.lcm(unit, q // math.gcd(m, q))
    return unit * max(1, round(int(symbols_per_thread) / unit))


def chunk_offsets(bits_per_symbol: np.ndarray, n_scalars: int, q: int, chunk: int) -> np.ndarray:
    """int64 ``[B·N + 1]``: prefix sums of the chunk counts ``ceil(ceil(L·Q / m) / C)``."""
    m = np.asarray(bits_per_symbol, dtype=np.int64).reshape(-1)
    symbols = np.where(m > 0, -(-(n_scalars * q) // np.maximum(m, 1)), 0)
    offsets = np.zeros(m.size + 1, dtype=np.int64)
    np.cumsum(-(-symbols // chunk), out=offsets[1:])
    return offsets


@cuda.jit
def _link_init(bits_per_symbol, codes_out, errors_out):  # noqa: ANN001, ANN201 (CUDA kernel)
    """Zero the error counts; ``-1`` for the codes of features not sent."""
    n_frames, n_features, n_scalars = codes_out.shape
    for job in range(cuda.grid(1), n_frames * n_features, cuda.gridsize(1)):
        b = job // n_features
        i = job - b * n_features
        errors_out[b, i] = 0
        if bits_per_symbol[b, i] == 0:
            for l in range(n_scalars):
                codes_out[b, i, l] = -1


@cuda.jit
def _link_chunks(
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
    offsets,
    chunk,
    fast,
    level_i,
    level_q,
    label_at,
    codes_out,
    errors_out,
):  # noqa: ANN001, ANN201 (CUDA kernel)
    """One thread per chunk of symbols (module docstring); arguments as in ``link_frames``."""
    n_frames, n_features, n_scalars = codes.shape
    n_jobs = n_frames * n_features
    total_chunks = offsets[n_jobs]
    bits_per_feature = n_scalars * q
    code_mask = (1 << q) - 1
    for g in range(cuda.grid(1), total_chunks, cuda.gridsize(1)):
        lo = 0  # offsets[lo] <= g < offsets[hi]
        hi = n_jobs
        while hi - lo > 1:
            mid = (lo + hi) >> 1
            if offsets[mid] <= g:
                lo = mid
            else:
                hi = mid
        b = lo // n_features
        i = lo - b * n_features
        m = np.int64(bits_per_symbol[b, i])  # int8 on the device: widen before shifting
        trial = np.uint32(trials[b])
        amplitude = math.sqrt(power[b, i])
        g_re = h_re[b, i] * amplitude
        g_im = h_im[b, i] * amplitude
        g2 = g_re * g_re + g_im * g_im
        e_re, e_im, inv = 1.0, 0.0, 1.0  # no signal: decide on y itself
        if g2 > 0.0:
            e_re, e_im, inv = g_re, g_im, 1.0 / g2
        noise_eff = sigma * math.sqrt(inv)  # |z - z_exact| per unit of noise error
        side = 1 << (m // 2)
        half_span = 0.5 * (side - 1)
        top = side - 1
        position_scale = 0.5 / math.sqrt(1.5 / ((1 << m) - 1)) if m > 1 else 0.5
        label_mask = (1 << m) - 1
        n_symbols = (bits_per_feature + m - 1) // m
        first_index = i * bits_per_feature
        s_begin = (g - offsets[lo]) * chunk
        s_end = imin(s_begin + chunk, n_symbols)
        read = (s_begin * m) // q  # the chunk starts on a code boundary
        written = read
        acc_in = 0
        n_in = 0
        acc_out = 0
        n_out = 0
        errors = 0
        for s in range(s_begin, s_end):
            while n_in < m:
                if read < n_scalars:
                    acc_in = (acc_in << q) | (np.int64(codes[b, i, read]) & code_mask)
                    read += 1
                    n_in += q
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
            n_re, n_im, err = 0.0, 0.0, -1.0
            w1 = w2 = w3 = np.uint32(0)
            if sigma > 0.0:
                w0, w1, w2, w3 = philox(
                    np.uint32(first_index + s), trial, point, np.uint32(0), key0, key1
                )
                if fast:  # float32 noise; float64 again if the decision is too close to call
                    n_re, n_im, err = box_muller_fast(w1, w2, w3)
                else:
                    n_re, n_im = box_muller(uniform52(w1, w3), uniform32(w2))
            for _ in range(2):
                yn_re = y_re
                yn_im = y_im
                if sigma > 0.0:
                    yn_re += sigma * n_re
                    yn_im += sigma * n_im
                z_re = (yn_re * e_re + yn_im * e_im) * inv  # y conj(g) / |g|^2
                if m == 1:
                    decided = 1 if z_re < 0.0 else 0
                    margin = abs(z_re)
                else:
                    z_im = (yn_im * e_re - yn_re * e_im) * inv
                    v_re = z_re * position_scale + half_span
                    v_im = z_im * position_scale + half_span
                    decided = label_at[m, position(v_re, top), position(v_im, top)]
                    margin = 0.0
                    if err >= 0.0:
                        d_re = half_integer_distance(v_re)
                        margin = min_float(d_re, half_integer_distance(v_im)) / position_scale
                if err < 0.0 or margin > err * noise_eff:  # |z - z_exact| <= err * noise_eff
                    break
                n_re, n_im = box_muller(uniform52(w1, w3), uniform32(w2))
                err = -1.0
            valid = bits_per_feature - s * m
            if valid >= m:
                valid = m
            errors += cuda.popc(np.uint32((label ^ decided) >> (m - valid)))
            acc_out = (acc_out << valid) | (decided >> (m - valid))
            n_out += valid
            while n_out >= q:
                n_out -= q
                codes_out[b, i, written] = (acc_out >> n_out) & code_mask
                written += 1
                acc_out &= (1 << n_out) - 1
        cuda.atomic.add(errors_out, (b, i), errors)


def link_frames_device(
    codes: object,
    bits_per_symbol: object,
    h_re: object,
    h_im: object,
    power: object,
    sigma: float,
    q: int,
    key0: int,
    key1: int,
    point: int,
    trials: object,
    offsets: object,
    total_chunks: int,
    chunk: int,
    tables: tuple,
    codes_out: object,
    errors_out: object,
    *,
    threads_per_block: int | None = None,
    max_blocks: int | None = None,
    fast: bool = True,
) -> None:
    """Launch the link on device arrays (asynchronous; no copies).

    Args:
        codes: integer device array ``[B, N, L]``; bits_per_symbol: integer ``[B, N]``.
        h_re, h_im, power: float64 ``[B, N]``; trials: uint32 ``[B]``.
        offsets, chunk: from :func:`chunk_offsets` (device array) and :func:`chunk_symbols`;
            total_chunks: ``offsets[-1]`` (host integer: the grid size).
        tables: device ``(level_i, level_q, label_at)`` of ``link_cpu._tables()``.
        codes_out: signed integer ``[B, N, L]``; errors_out: int64 ``[B, N]``.
    """
    n_frames, n_features, _ = codes.shape
    blocks, threads = launch_shape(n_frames * n_features, threads_per_block, max_blocks)
    _link_init[blocks, threads](bits_per_symbol, codes_out, errors_out)
    blocks, threads = launch_shape(max(int(total_chunks), 1), threads_per_block, max_blocks)
    _link_chunks[blocks, threads](
        codes, bits_per_symbol, h_re, h_im, power, np.float64(sigma), np.int64(q),
        np.uint32(key0), np.uint32(key1), np.uint32(point), trials, offsets, np.int64(chunk),
        np.int64(bool(fast)), *tables, codes_out, errors_out,
    )  # fmt: skip


_TABLES: dict[int, tuple] = {}


def device_tables(level_i: np.ndarray, level_q: np.ndarray, label_at: np.ndarray) -> tuple:
    """The constellation tables on the current device (copied once per context)."""
    key = id(cuda.current_context()) if not _simulated() else 0
    if key not in _TABLES:
        _TABLES[key] = tuple(cuda.to_device(np.ascontiguousarray(a))
                             for a in (level_i, level_q, label_at))  # fmt: skip
    return _TABLES[key]


def _simulated() -> bool:
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def code_dtype(q: int) -> type:
    """The smallest signed dtype holding ``Q``-bit codes and the ``-1`` of features not sent."""
    return np.int16 if q <= 15 else np.int32


def link_frames_cuda(
    codes: np.ndarray,
    bits_per_symbol: np.ndarray,
    h_re: np.ndarray,
    h_im: np.ndarray,
    power: np.ndarray,
    sigma: float,
    q: int,
    key0: int,
    key1: int,
    point: int,
    trials: np.ndarray,
    level_i: np.ndarray,
    level_q: np.ndarray,
    label_at: np.ndarray,
    codes_out: np.ndarray,
    errors_out: np.ndarray,
    *,
    symbols_per_thread: int = DEFAULT_SYMBOLS_PER_THREAD,
    threads_per_block: int | None = None,
    max_blocks: int | None = None,
    fast: bool = True,
) -> None:
    """Drop-in twin of :func:`channels.kernels.link_cpu.link_frames` on host arrays.

    Same arguments and outputs (``codes_out`` int64 ``[B, N, L]``, ``errors_out`` int64
    ``[B, N]``). The codes travel as int16 (int32 for ``Q = 16``) and the modulations as int8.
    ``symbols_per_thread``, ``threads_per_block``, ``max_blocks`` and ``fast`` (float32 noise
    with a float64 fallback, :func:`channels.kernels.cuda.box_muller_fast`) change the speed
    only.
    """
    n_frames, n_features, n_scalars = codes.shape
    if codes.size == 0:  # nothing to send (B, N or L is 0)
        errors_out[...] = 0
        return
    dtype = code_dtype(q)
    chunk = chunk_symbols(q, symbols_per_thread)
    offsets = chunk_offsets(bits_per_symbol, n_scalars, q, chunk)
    d_codes_out = cuda.device_array(codes.shape, dtype=dtype)
    d_errors = cuda.device_array((n_frames, n_features), dtype=np.int64)
    link_frames_device(
        cuda.to_device(np.ascontiguousarray(codes, dtype=dtype)),
        cuda.to_device(np.ascontiguousarray(bits_per_symbol, dtype=np.int8)),
        cuda.to_device(np.ascontiguousarray(h_re, dtype=np.float64)),
        cuda.to_device(np.ascontiguousarray(h_im, dtype=np.float64)),
        cuda.to_device(np.ascontiguousarray(power, dtype=np.float64)),
        sigma, q, key0, key1, point,
        cuda.to_device(np.ascontiguousarray(trials, dtype=np.uint32)),
        cuda.to_device(offsets), int(offsets[-1]), chunk, device_tables(level_i, level_q, label_at),
        d_codes_out, d_errors, threads_per_block=threads_per_block, max_blocks=max_blocks,
        fast=fast,
    )  # fmt: skip
    codes_out[...] = d_codes_out.copy_to_host()
    errors_out[...] = d_errors.copy_to_host()


@cuda.jit
def _squared_error(z, codes_hat, q, gray, sq_out):  # noqa: ANN001, ANN201 (CUDA kernel)
    """``sq_out[b, i] = sum_l (z[b, i, l] - ẑ[b, i, l])^2``, one thread per feature."""
    n_frames, n_features, n_scalars = z.shape
    step = 2.0 / (1 << q)
    for job in range(cuda.grid(1), n_frames * n_features, cuda.gridsize(1)):
        b = job // n_features
        i = job - b * n_features
        s = 0.0
        for l in range(n_scalars):
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
        sq_out[b, i] = s


@cuda.jit
def _weighted(sq, weights, n_scalars, weighted_out):  # noqa: ANN001, ANN201 (CUDA kernel)
    """``weighted_out[b] = sum_i w[b, i] * (sq[b, i] / L)``, one thread per frame."""
    n_frames, n_features = sq.shape
    for b in range(cuda.grid(1), n_frames, cuda.gridsize(1)):
        acc = 0.0
        for i in range(n_features):
            acc += weights[b, i] * (sq[b, i] / n_scalars)
        weighted_out[b] = acc


def squared_error_cuda(
    z: np.ndarray,
    codes_hat: np.ndarray,
    weights: np.ndarray,
    q: int,
    gray: bool,
    sq_out: np.ndarray,
    weighted_out: np.ndarray,
    *,
    threads_per_block: int | None = None,
    max_blocks: int | None = None,
) -> None:
    """Twin of :func:`channels.kernels.distortion.distortion_frames` (same arguments)."""
    n_frames, n_features, n_scalars = z.shape
    d_sq = cuda.device_array((n_frames, n_features), dtype=np.float64)
    d_weighted = cuda.device_array(n_frames, dtype=np.float64)
    blocks, threads = launch_shape(n_frames * n_features, threads_per_block, max_blocks)
    _squared_error[blocks, threads](
        cuda.to_device(np.ascontiguousarray(z, dtype=np.float64)),
        cuda.to_device(np.ascontiguousarray(codes_hat, dtype=code_dtype(q))),
        np.int64(q), bool(gray), d_sq,
    )  # fmt: skip
    blocks, threads = launch_shape(n_frames, threads_per_block, max_blocks)
    d_weights = cuda.to_device(np.ascontiguousarray(weights, dtype=np.float64))
    _weighted[blocks, threads](d_sq, d_weights, np.int64(n_scalars), d_weighted)
    sq_out[...] = d_sq.copy_to_host()
    weighted_out[...] = d_weighted.copy_to_host()


__all__ = [
    "chunk_offsets",
    "chunk_symbols",
    "link_frames_cuda",
    "link_frames_device",
    "squared_error_cuda",
]
