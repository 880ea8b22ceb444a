"""Numba-CUDA twin of the semantic-link kernel :func:`channels.kernels.link_cpu.link_frames`.

Same link, same noise: symbol ``s`` of feature ``i`` of frame ``b`` takes its noise from the
Philox counter ``(first_i + s, trial[b], point, 0)`` (``first_i = L·sum_{j<i} Q_j``, ``i·L·Q``
with one ``Q``), so both backends send the same bits and add the same noise (within float32
rounding in the fast mode; see :mod:`channels.kernels.cuda`).

GPU layout: balanced chunks of symbols, grouped by modulation. The CPU kernel walks a feature's
``S = ceil(L·Q / m)`` symbols in one thread; a feature sent with BPSK has 6 times more symbols
than one sent with 64-QAM, so one thread per feature would leave most lanes of a warp idle.
Here each feature's symbols are cut into chunks of ``C`` symbols (the last may be shorter) and
one thread sends one chunk. ``C`` is a multiple of ``U = lcm_m(Q / gcd(m, Q))`` over the
modulations, so a chunk starts at bit ``c·C·m``, a multiple of ``lcm(m, Q)``: on a code
boundary (with per-feature ``Q_i``, each feature has its own ``C_i``: :func:`chunk_sizes`).
A chunk therefore reads and writes whole codes of its own, and the threads never share a
code. The features (jobs ``b·N + i``) are ordered by modulation (:func:`chunk_plan`:
a stable sort of ``m``), so that the lanes of a warp run the same modulation and branch
alike; chunk ``g`` finds its job by binary search in the prefix sums ``offsets`` of the chunk
counts in that order. Its bit errors are added to ``errors[b, i]`` with one integer atomic
add, so the result does not depend on the chunk size, the order or the launch shape.

Two kernels: the fast float32 one (``fast=True``, the default, compiled with ``fastmath``)
and the float64 one (``fast=False``), as in :mod:`channels.kernels.cuda_ber`.

:func:`squared_error_cuda` is the twin of :func:`channels.kernels.cpu_distortion.distortion_frames`:
per feature ``sum_l (z - ẑ)^2`` (one thread per feature, scalars in order: the CPU twin's
:func:`channels.kernels.squared_error.feature_squared_error` compiled as a device function) and
per frame ``sum_i w_i · sq_i / L`` (one thread per frame, features in order): the same order
of float operations as the CPU twin, so it too is independent of the launch shape.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from channels.feature_bits import bit_offsets, bits_array
from channels.kernels.cuda import (
    F32_ZERO,
    arithmetic,
    box_muller,
    clamp_f32,
    gauss_pair_f32,
    imin,
    launch_shape,
    philox,
    position,
    uniform32,
    uniform52,
)
from channels.kernels.link_tables import LABEL_AT, LEVEL_I, LEVEL_Q
from channels.kernels.squared_error import feature_squared_error as _squared_error_source

DEFAULT_SYMBOLS_PER_THREAD = 128  # best of 64 and 128 on the H200 (BENCHMARKS.md)
MODULATION_BITS = (1, 2, 4, 6, 8)


def chunk_symbols(q: int, symbols_per_thread: int = DEFAULT_SYMBOLS_PER_THREAD) -> int:
    """Chunk length ``C``: the multiple of ``U = lcm_m(Q / gcd(m, Q))`` nearest the request."""
    unit = 1
    for m in MODULATION_BITS:
        unit = math.lcm(unit, q // math.gcd(m, q))
    return unit * max(1, round(int(symbols_per_thread) / unit))


def chunk_sizes(q: int | np.ndarray, symbols_per_thread: int = DEFAULT_SYMBOLS_PER_THREAD):
    """:func:`chunk_symbols` of one ``Q`` (an int), or of each ``Q_i`` (int64 ``[N]``)."""
    if np.ndim(q) == 0:
        return chunk_symbols(int(q), symbols_per_thread)
    cache = {int(v): chunk_symbols(int(v), symbols_per_thread) for v in np.unique(q)}
    return np.array([cache[int(v)] for v in np.asarray(q).reshape(-1)], dtype=np.int64)


def chunk_plan(
    bits_per_symbol: np.ndarray,
    n_scalars: int,
    q: int | np.ndarray,
    chunk: int | np.ndarray,
    *,
    grouped: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """``(order, offsets)``: the jobs in launch order and the prefix sums of their chunks.

    ``bits_per_symbol`` is ``[B, N]``; ``q`` and ``chunk`` are one ``Q`` and ``C`` or one per
    feature (``[N]``, :func:`chunk_sizes`). ``order``: int32 ``[B·N]``, jobs ``b·N + i`` sorted
    by modulation (stable; ``grouped=False`` keeps ``0..B·N-1``). ``offsets``: int64
    ``[B·N + 1]``, ``offsets[k + 1] - offsets[k] = ceil(ceil(L·Q_i / m) / C_i)`` chunks of job
    ``order[k]`` (0 for ``m = 0``); ``offsets[-1]`` is the number of threads to launch.
    """
    m = np.asarray(bits_per_symbol, dtype=np.int64)
    n_features = m.shape[-1] if m.ndim else 1
    m = m.reshape(-1)
    order = np.argsort(m, kind="stable") if grouped else np.arange(m.size)
    m = m[order]
    if np.ndim(q) or np.ndim(chunk):  # per feature: feature of job k is order[k] % N
        feature = order % max(n_features, 1)
        q = np.broadcast_to(np.asarray(q, dtype=np.int64), (n_features,))[feature]
        chunk = np.broadcast_to(np.asarray(chunk, dtype=np.int64), (n_features,))[feature]
    symbols = np.where(m > 0, -(-(n_scalars * q) // np.maximum(m, 1)), 0)
    offsets = np.zeros(m.size + 1, dtype=np.int64)
    np.cumsum(-(-symbols // chunk), out=offsets[1:])
    return order.astype(np.int32), offsets


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


@cuda.jit(device=True)
def find_job(order, offsets, g):  # noqa: ANN001, ANN201 (device function)
    """``(job, first chunk of job)`` of chunk ``g``: ``offsets[k] <= g < offsets[k + 1]``."""
    lo = 0
    hi = order.shape[0]
    while hi - lo > 1:
        mid = (lo + hi) >> 1
        if offsets[mid] <= g:
            lo = mid
        else:
            hi = mid
    return order[lo], offsets[lo]


@cuda.jit
def _link_chunks_exact(
    codes,
    bits_per_symbol,
    h_re,
    h_im,
    power,
    sigma,
    q,
    first,
    key0,
    key1,
    point,
    trials,
    order,
    offsets,
    chunk,
    level_i,
    level_q,
    label_at,
    codes_out,
    errors_out,
):  # noqa: ANN001, ANN201 (CUDA kernel)
    """float64: one thread per chunk of symbols (module docstring); the arguments of
    ``link_frames`` with ``q``, ``first`` (first bit of each feature) and ``chunk`` (``C_i``)
    int64 device arrays ``[N]``."""
    n_frames, n_features, n_scalars = codes.shape
    total_chunks = offsets[order.shape[0]]
    for g in range(cuda.grid(1), total_chunks, cuda.gridsize(1)):
        job, first_chunk = find_job(order, offsets, g)
        b = job // n_features
        i = job - b * n_features
        qi = q[i]
        bits_per_feature = n_scalars * qi
        code_mask = (1 << qi) - 1
        m = np.int64(bits_per_symbol[b, i])  # int8 on the device: widen before shifting
        trial = np.uint32(trials[b])
        amplitude = math.sqrt(power[b, i])
        g_re = h_re[b, i] * amplitude
        g_im = h_im[b, i] * amplitude
        g2 = g_re * g_re + g_im * g_im
        e_re, e_im, inv = 1.0, 0.0, 1.0  # no signal: decide on y itself
        if g2 > 0.0:
            e_re, e_im, inv = g_re, g_im, 1.0 / g2
        side = 1 << (m // 2)
        half_span = 0.5 * (side - 1)
        top = side - 1
        position_scale = 0.5 / math.sqrt(1.5 / ((1 << m) - 1)) if m > 1 else 0.5
        label_mask = (1 << m) - 1
        n_symbols = (bits_per_feature + m - 1) // m
        first_index = first[i]
        s_begin = (g - first_chunk) * chunk[i]
        s_end = imin(s_begin + chunk[i], n_symbols)
        read = (s_begin * m) // qi  # the chunk starts on a code boundary
        written = read
        acc_in = 0
        n_in = 0
        acc_out = 0
        n_out = 0
        errors = 0
        for s in range(s_begin, s_end):
            while n_in < m:
                if read < n_scalars:
                    acc_in = (acc_in << qi) | (np.int64(codes[b, i, read]) & code_mask)
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
                w0, w1, w2, w3 = philox(
                    np.uint32(first_index + s), trial, point, np.uint32(0), key0, key1
                )
                n_re, n_im = box_muller(uniform52(w1, w3), uniform32(w2))
                y_re += sigma * n_re
                y_im += sigma * n_im
            z_re = (y_re * e_re + y_im * e_im) * inv  # y conj(g) / |g|^2
            if m == 1:
                decided = 1 if z_re < 0.0 else 0
            else:
                z_im = (y_im * e_re - y_re * e_im) * inv
                pi = position(z_re * position_scale + half_span, top)
                pq = position(z_im * position_scale + half_span, top)
                decided = label_at[m, pi, pq]
            valid = bits_per_feature - s * m
            if valid >= m:
                valid = m
            errors += cuda.popc(np.uint32((label ^ decided) >> (m - valid)))
            acc_out = (acc_out << valid) | (decided >> (m - valid))
            n_out += valid
            while n_out >= qi:
                n_out -= qi
                codes_out[b, i, written] = (acc_out >> n_out) & code_mask
                written += 1
                acc_out &= (1 << n_out) - 1
        cuda.atomic.add(errors_out, (b, i), errors)


@cuda.jit(fastmath=True)
def _link_chunks_fast(
    codes,
    bits_per_symbol,
    h_re,
    h_im,
    power,
    sigma,
    q,
    first,
    key0,
    key1,
    point,
    trials,
    order,
    offsets,
    chunk,
    level_i,
    level_q,
    label_at,
    codes_out,
    errors_out,
):  # noqa: ANN001, ANN201 (CUDA kernel)
    """float32 twin of :func:`_link_chunks_exact` (``sigma`` and the tables float32)."""
    n_frames, n_features, n_scalars = codes.shape
    total_chunks = offsets[order.shape[0]]
    noisy = sigma > F32_ZERO
    one = np.float32(1.0)
    for g in range(cuda.grid(1), total_chunks, cuda.gridsize(1)):
        job, first_chunk = find_job(order, offsets, g)
        b = job // n_features
        i = job - b * n_features
        qi = q[i]
        bits_per_feature = n_scalars * qi
        code_mask = (1 << qi) - 1
        m = np.int64(bits_per_symbol[b, i])
        trial = np.uint32(trials[b])
        amplitude = math.sqrt(np.float32(power[b, i]))
        g_re = np.float32(h_re[b, i]) * amplitude
        g_im = np.float32(h_im[b, i]) * amplitude
        g2 = g_re * g_re + g_im * g_im
        e_re, e_im, inv = one, F32_ZERO, one  # no signal: decide on y itself
        if g2 > F32_ZERO:
            e_re, e_im, inv = g_re, g_im, one / g2
        side = 1 << (m // 2)
        half_span = np.float32(0.5 * (side - 1) + 0.5)  # + 1/2: truncation rounds to nearest
        top = np.float32(side - 1)
        position_scale = np.float32(0.5 / math.sqrt(1.5 / ((1 << m) - 1)) if m > 1 else 0.5)
        label_mask = (1 << m) - 1
        n_symbols = (bits_per_feature + m - 1) // m
        first_index = first[i]
        s_begin = (g - first_chunk) * chunk[i]
        s_end = imin(s_begin + chunk[i], n_symbols)
        read = (s_begin * m) // qi  # the chunk starts on a code boundary
        written = read
        acc_in = 0
        n_in = 0
        acc_out = 0
        n_out = 0
        errors = 0
        for s in range(s_begin, s_end):
            while n_in < m:
                if read < n_scalars:
                    acc_in = (acc_in << qi) | (np.int64(codes[b, i, read]) & code_mask)
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
            if noisy:
                w0, w1, w2, w3 = philox(
                    np.uint32(first_index + s), trial, point, np.uint32(0), key0, key1
                )
                n_re, n_im = gauss_pair_f32(w1, w2, w3)
                y_re += sigma * n_re
                y_im += sigma * n_im
            z_re = (y_re * e_re + y_im * e_im) * inv  # y conj(g) / |g|^2
            if m == 1:
                decided = 1 if z_re < F32_ZERO else 0
            else:
                z_im = (y_im * e_re - y_re * e_im) * inv
                pi = np.int32(clamp_f32(z_re * position_scale + half_span, top))
                pq = np.int32(clamp_f32(z_im * position_scale + half_span, top))
                decided = np.int64(label_at[m, pi, pq])
            valid = bits_per_feature - s * m
            if valid >= m:
                valid = m
            errors += cuda.popc(np.uint32((label ^ decided) >> (m - valid)))
            acc_out = (acc_out << valid) | (decided >> (m - valid))
            n_out += valid
            while n_out >= qi:
                n_out -= qi
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
    q: int | np.ndarray,
    key0: int,
    key1: int,
    point: int,
    trials: object,
    order: object,
    offsets: object,
    total_chunks: int,
    chunk: int | np.ndarray,
    tables: tuple,
    codes_out: object,
    errors_out: object,
    *,
    threads_per_block: int | None = None,
    max_blocks: int | None = None,
    fast: bool = True,
    stream: object = 0,
) -> None:
    """Launch the link on device arrays (asynchronous; no copies) on ``stream``.

    Args:
        codes: integer device array ``[B, N, L]``; bits_per_symbol: integer ``[B, N]``.
        h_re, h_im, power: float64 ``[B, N]``; trials: uint32 ``[B]``.
        q: bits per scalar, one ``Q`` (int) or ``Q_i`` per feature (host integers ``[N]``).
        order, offsets: device arrays of :func:`chunk_plan`; total_chunks: ``offsets[-1]``
            (host integer: the grid size); chunk: :func:`chunk_sizes` of ``q`` (int or host
            ``[N]``), as given to :func:`chunk_plan`.
        tables: ``device_tables(fast)``, the constellation tables of the mode.
        codes_out: signed integer ``[B, N, L]``; errors_out: int64 ``[B, N]``.
        fast: the float32 kernel (default) or the float64 one (module docstring).
        stream: a Numba stream (default: the default stream), e.g.
            ``cuda.external_stream(torch.cuda.current_stream().cuda_stream)``.

    Any device arrays do: Numba's, or CuPy / PyTorch tensors through
    ``numba.cuda.as_cuda_array`` (zero-copy ``__cuda_array_interface__``).
    """
    n_frames, n_features, n_scalars = codes.shape
    q_arr = bits_array(q, n_features)
    layout = np.stack([  # per feature: Q_i, first bit, chunk length (N int64 each)
        q_arr, bit_offsets(q_arr, n_scalars),
        np.broadcast_to(np.asarray(chunk, dtype=np.int64), (n_features,)),
    ]).astype(np.int64)  # fmt: skip
    d_layout = cuda.to_device(layout, stream=stream)
    blocks, threads = launch_shape(n_frames * n_features, threads_per_block, max_blocks)
    _link_init[blocks, threads, stream](bits_per_symbol, codes_out, errors_out)
    kernel = _link_chunks_fast if fast else _link_chunks_exact
    real = arithmetic(fast).real
    blocks, threads = launch_shape(max(int(total_chunks), 1), threads_per_block, max_blocks)
    kernel[blocks, threads, stream](
        codes, bits_per_symbol, h_re, h_im, power, real(sigma), d_layout[0], d_layout[1],
        np.uint32(key0), np.uint32(key1), np.uint32(point), trials, order, offsets,
        d_layout[2], *tables, codes_out, errors_out,
    )  # fmt: skip


_TABLES: dict[tuple[int, bool], tuple] = {}


def device_tables(fast: bool = True) -> tuple:
    """``(level_i, level_q, label_at)`` of ``link_cpu`` on the current device (copied once per
    context and mode): float32 / int32 for the fast kernel, float64 / int64 otherwise."""

    key = (0 if _simulated() else id(cuda.current_context()), bool(fast))
    if key not in _TABLES:
        a = arithmetic(fast)
        tables = ((LEVEL_I, a.real), (LEVEL_Q, a.real), (LABEL_AT, a.integer))
        _TABLES[key] = tuple(cuda.to_device(np.ascontiguousarray(t, dtype=d)) for t, d in tables)
    return _TABLES[key]


def _simulated() -> bool:
    from numba import config

    return bool(config.ENABLE_CUDASIM)


def code_dtype(q: int | np.ndarray) -> type:
    """The smallest signed dtype holding ``Q``-bit codes and the ``-1`` of features not sent
    (the largest ``Q_i`` when given per feature)."""
    top = int(np.max(q, initial=1))
    return np.int16 if top <= 15 else np.int32


def link_frames_cuda(
    codes: np.ndarray,
    bits_per_symbol: np.ndarray,
    h_re: np.ndarray,
    h_im: np.ndarray,
    power: np.ndarray,
    sigma: float,
    q: int | np.ndarray,
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
    grouped: bool = True,
) -> None:
    """Drop-in twin of :func:`channels.kernels.link_cpu.link_frames` on host arrays.

    Same arguments and outputs (``codes_out`` int64 ``[B, N, L]``, ``errors_out`` int64
    ``[B, N]``); ``level_i``, ``level_q`` and ``label_at`` must be ``link_cpu``'s tables (the
    device keeps its own copy, :func:`device_tables`). The codes travel as int16 (int32 for
    ``Q = 16``) and the modulations as int8. ``symbols_per_thread``, ``threads_per_block``,
    ``max_blocks`` and ``grouped`` (:func:`chunk_plan`) change the speed only; ``fast``
    selects the float32 kernel (default) or the float64 one. ``q`` is one ``Q`` or ``Q_i`` per
    feature (``[N]``).
    """
    del level_i, level_q, label_at  # the device's copies of the same tables
    n_frames, n_features, n_scalars = codes.shape
    if codes.size == 0:  # nothing to send (B, N or L is 0)
        errors_out[...] = 0
        return
    dtype = code_dtype(q)
    chunk = chunk_sizes(q, symbols_per_thread)
    order, offsets = chunk_plan(bits_per_symbol, n_scalars, q, chunk, grouped=grouped)
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
        cuda.to_device(order), cuda.to_device(offsets), int(offsets[-1]), chunk,
        device_tables(fast), d_codes_out, d_errors, threads_per_block=threads_per_block,
        max_blocks=max_blocks, fast=fast,
    )  # fmt: skip
    codes_out[...] = d_codes_out.copy_to_host()
    errors_out[...] = d_errors.copy_to_host()


feature_squared_error = cuda.jit(device=True)(_squared_error_source)


@cuda.jit
def _squared_error(z, codes_hat, q, gray, sq_out):  # noqa: ANN001, ANN201 (CUDA kernel)
    """``sq_out[b, i] = sum_l (z[b, i, l] - ẑ[b, i, l])^2``, one thread per feature
    (``q``: int64 ``[N]``)."""
    n_frames, n_features, _ = z.shape
    for job in range(cuda.grid(1), n_frames * n_features, cuda.gridsize(1)):
        b = job // n_features
        i = job - b * n_features
        step = 2.0 / (1 << q[i])
        sq_out[b, i] = feature_squared_error(z, codes_hat, b, i, step, gray)


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
    q: int | np.ndarray,
    gray: bool,
    sq_out: np.ndarray,
    weighted_out: np.ndarray,
    *,
    threads_per_block: int | None = None,
    max_blocks: int | None = None,
) -> None:
    """Twin of :func:`channels.kernels.cpu_distortion.distortion_frames` (same arguments)."""
    n_frames, n_features, n_scalars = z.shape
    d_sq = cuda.device_array((n_frames, n_features), dtype=np.float64)
    d_weighted = cuda.device_array(n_frames, dtype=np.float64)
    blocks, threads = launch_shape(n_frames * n_features, threads_per_block, max_blocks)
    _squared_error[blocks, threads](
        cuda.to_device(np.ascontiguousarray(z, dtype=np.float64)),
        cuda.to_device(np.ascontiguousarray(codes_hat, dtype=code_dtype(q))),
        cuda.to_device(np.ascontiguousarray(bits_array(q, n_features), dtype=np.int64)),
        bool(gray), d_sq,
    )  # fmt: skip
    blocks, threads = launch_shape(n_frames, threads_per_block, max_blocks)
    d_weights = cuda.to_device(np.ascontiguousarray(weights, dtype=np.float64))
    _weighted[blocks, threads](d_sq, d_weights, np.int64(n_scalars), d_weighted)
    sq_out[...] = d_sq.copy_to_host()
    weighted_out[...] = d_weighted.copy_to_host()


__all__ = [
    "chunk_plan",
    "chunk_sizes",
    "chunk_symbols",
    "code_dtype",
    "device_tables",
    "link_frames_cuda",
    "link_frames_device",
    "squared_error_cuda",
]
