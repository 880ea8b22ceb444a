"""Numba-CUDA twin of the BER Monte Carlo kernel :func:`channels.kernels.cpu.ber_trials`.

Same model, same random numbers: per fading block the coefficient comes from stream 1
(counter ``(block, trial, point, 1)``), per symbol the label and the noise from stream 0
(counter ``(block * coherence + s, trial, point, 0)``), the receiver equalises with ``h_hat``
and decides for the nearest point; the outputs per trial are the bit errors and the sum of the
squared per-block error counts.

GPU layout. A trial's ``blocks_per_trial`` blocks are cut into *items* of about
``symbols_per_thread`` symbols, and one thread computes one item in registers:

- ``coherence <= symbols_per_thread``: an item is ``G = symbols_per_thread // coherence``
  whole blocks; the thread returns their error count and the sum of their squares.
- ``coherence > symbols_per_thread``: a block is cut into ``P`` parts of ``ceil(coherence / P)``
  symbols; the thread returns the part's error count and a second kernel adds the ``P`` parts
  of a block before squaring.

Arithmetic: by default (``fast=True``) a float32 kernel compiled with ``fastmath``
(:func:`channels.kernels.cuda.gauss_pair_f32`, float32 equalisation and decisions): the same
labels and, within float32 rounding, the same noise as the CPU kernel, so its counts agree with
the CPU's statistically (and in practice to a handful of flipped decisions per 10^6 symbols).
``fast=False`` is the float64 kernel, the CPU's decisions to the last ulp. Both are written
once, in :func:`make_ber_kernel`, over the mode's :class:`channels.kernels.cuda.Arithmetic`.

A second kernel adds the items of each trial in order (one thread per trial). All sums are of
integers, so the result is identical for every block size, grid size, items size and batch
split; each item draws only its own counters.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from channels.kernels.cuda import Arithmetic, arithmetic, imin, launch_shape, philox

DEFAULT_SYMBOLS_PER_THREAD = 128  # best of 64 and 128 on the H200 (BENCHMARKS.md)
MAX_SYMBOLS_PER_THREAD = 4096  # keeps an item's sum of squared block errors below 2^31


@cuda.jit(device=True)
def item_range(item, items_per_trial, blocks_per_item, blocks_per_trial, parts, part_len,
               coherence):  # fmt: skip  # noqa: ANN001, ANN201 (device function)
    """``(t, j, b0, b1, s0, s1)``: trial offset, item index, its blocks and symbol range."""
    t = item // items_per_trial
    j = item - t * items_per_trial
    if parts == 1:
        b0 = j * blocks_per_item
        b1 = imin(b0 + blocks_per_item, blocks_per_trial)
        s0 = 0
        s1 = coherence
    else:
        b0 = j // parts
        b1 = b0 + 1
        s0 = (j - b0 * parts) * part_len
        s1 = imin(s0 + part_len, coherence)
    return t, j, b0, b1, s0, s1


def make_ber_kernel(fast: bool) -> object:
    """The items kernel of a mode (:func:`channels.kernels.cuda.arithmetic`), one thread per item.

    Outputs int32 ``[n_trials, items]``; the tables and the real scalars are in the mode's
    dtypes. Each axis is decided on the grid of :func:`channels.kernels.cuda.grid_f64` (exact:
    the CPU's rounding; fast: ``clamp(v + 1/2, 0, side - 1)`` truncated).
    """
    a: Arithmetic = arithmetic(fast)
    zero, one, sqrt_half = a.zero, a.one, a.sqrt_half
    gauss_pair, gauss_pair32, exp_gain = a.gauss_pair, a.gauss_pair32, a.exp_gain
    grid, grid_index = a.grid, a.grid_index

    def ber_items(first_trial, n_trials, blocks_per_trial, coherence, blocks_per_item, parts,
                  part_len, items_per_trial, key0, key1, point, bits_per_symbol, level_i,
                  level_q, label_of_position, sigma, fading, los_amplitude, scatter_amplitude,
                  csi_sigma, item_errors, item_squares):  # fmt: skip  # noqa: ANN001, ANN202
        mask = np.uint32((1 << bits_per_symbol) - 1)
        perfect_csi = csi_sigma == zero
        half_span, top, position_scale = grid(label_of_position.shape[0], bits_per_symbol)
        n_items = n_trials * items_per_trial
        for item in range(cuda.grid(1), n_items, cuda.gridsize(1)):
            t, j, b0, b1, s0, s1 = item_range(
                item, items_per_trial, blocks_per_item, blocks_per_trial, parts, part_len, coherence
            )
            trial = np.uint32(first_trial + t)
            total = 0
            squares = 0
            for block in range(b0, b1):
                h_re, h_im, e_re, e_im = one, zero, one, zero
                noise_scale = sigma
                if fading != 0:
                    f0, f1, f2, f3 = philox(np.uint32(block), trial, point, np.uint32(1), key0,
                                            key1)  # fmt: skip
                    if fading == 1 and perfect_csi:
                        noise_scale = sigma / math.sqrt(exp_gain(f0))
                    else:
                        g_re, g_im = gauss_pair32(f0, f1)
                        h_re = los_amplitude + scatter_amplitude * sqrt_half * g_re
                        h_im = scatter_amplitude * sqrt_half * g_im
                        noise_scale = sigma / math.sqrt(h_re * h_re + h_im * h_im)
                        e_re, e_im = h_re, h_im
                        if not perfect_csi:
                            d_re, d_im = gauss_pair32(f2, f3)
                            e_re += csi_sigma * sqrt_half * d_re
                            e_im += csi_sigma * sqrt_half * d_im
                inv = one / (e_re * e_re + e_im * e_im)
                block_errors = 0
                first = block * coherence
                for s in range(s0, s1):
                    w0, w1, w2, w3 = philox(
                        np.uint32(first + s), trial, point, np.uint32(0), key0, key1
                    )
                    label = w0 & mask
                    x_re = level_i[label]
                    x_im = level_q[label]
                    n_re, n_im = gauss_pair(w1, w2, w3)
                    if perfect_csi:
                        z_re = x_re + noise_scale * n_re
                        z_im = x_im + noise_scale * n_im
                    else:
                        y_re = h_re * x_re - h_im * x_im + sigma * n_re
                        y_im = h_re * x_im + h_im * x_re + sigma * n_im
                        z_re = (y_re * e_re + y_im * e_im) * inv
                        z_im = (y_im * e_re - y_re * e_im) * inv
                    if bits_per_symbol == 1:
                        decided = np.uint32(1) if z_re < zero else np.uint32(0)
                    else:
                        pi = grid_index(z_re * position_scale + half_span, top)
                        pq = grid_index(z_im * position_scale + half_span, top)
                        decided = np.uint32(label_of_position[pi, pq])
                    block_errors += cuda.popc(np.uint32(label ^ decided))
                total += block_errors
                squares += block_errors * block_errors
            item_errors[t, j] = total
            item_squares[t, j] = squares

    return cuda.jit(fastmath=a.fast)(ber_items)


_ber_items_fast = make_ber_kernel(True)
_ber_items_exact = make_ber_kernel(False)


@cuda.jit
def _ber_reduce(n_trials, items_per_trial, parts, item_errors, item_squares, errors_out,
                square_out):  # fmt: skip  # noqa: ANN001, ANN201 (CUDA kernel)
    """One thread per trial: add its items in order (blocks of ``parts`` items first)."""
    for t in range(cuda.grid(1), n_trials, cuda.gridsize(1)):
        total = 0
        squares = 0
        if parts == 1:
            for j in range(items_per_trial):
                total += item_errors[t, j]
                squares += item_squares[t, j]
        else:
            for block in range(items_per_trial // parts):
                e = 0
                for p in range(parts):
                    e += item_errors[t, block * parts + p]
                total += e
                squares += e * e
        errors_out[t] = total
        square_out[t] = squares


def kernel_for(fast: bool) -> tuple:
    """``(kernel, real dtype, integer dtype)`` of the items kernel of a mode (benchmarks)."""
    a = arithmetic(fast)
    return _ber_items_fast if fast else _ber_items_exact, a.real, a.integer


def item_layout(blocks_per_trial: int, coherence: int, symbols_per_thread: int) -> tuple:
    """``(blocks_per_item, parts, part_len, items_per_trial)`` of the module docstring."""
    per_thread = int(min(max(1, symbols_per_thread), MAX_SYMBOLS_PER_THREAD))
    if coherence <= per_thread:
        blocks_per_item = max(1, per_thread // coherence)
        return blocks_per_item, 1, coherence, -(-blocks_per_trial // blocks_per_item)
    parts = -(-coherence // per_thread)
    part_len = -(-coherence // parts)
    return 1, parts, part_len, blocks_per_trial * parts


def ber_trials_cuda(
    first_trial: int,
    n_trials: int,
    blocks_per_trial: int,
    coherence: int,
    key0: int,
    key1: int,
    point: int,
    bits_per_symbol: int,
    level_i: np.ndarray,
    level_q: np.ndarray,
    label_of_position: np.ndarray,
    sigma: float,
    fading: int,
    los_amplitude: float,
    scatter_amplitude: float,
    csi_sigma: float,
    errors_out: np.ndarray,
    square_out: np.ndarray,
    *,
    symbols_per_thread: int = DEFAULT_SYMBOLS_PER_THREAD,
    threads_per_block: int | None = None,
    max_blocks: int | None = None,
    fast: bool = True,
) -> None:
    """Drop-in twin of :func:`channels.kernels.cpu.ber_trials` (same arguments and outputs).

    Simulates trials ``first_trial .. first_trial + n_trials - 1`` on the GPU and writes the
    int64 ``[n_trials]`` host arrays ``errors_out`` (bit errors) and ``square_out`` (sum of
    squared block error counts). ``symbols_per_thread``, ``threads_per_block`` and
    ``max_blocks`` (grid size cap; grid-stride loops) change the speed only, never the result.
    ``fast`` selects the float32 kernel (default; statistically the CPU's counts) or the
    float64 one (``False``: the CPU's counts); each is independent of the launch shape.
    """
    blocks_per_item, parts, part_len, items_per_trial = item_layout(
        blocks_per_trial, coherence, symbols_per_thread
    )
    n_trials = int(n_trials)
    item_errors = cuda.device_array((n_trials, items_per_trial), dtype=np.int32)
    item_squares = cuda.device_array((n_trials, items_per_trial), dtype=np.int32)
    d_errors = cuda.device_array(n_trials, dtype=np.int64)
    d_squares = cuda.device_array(n_trials, dtype=np.int64)
    kernel, real, integer = kernel_for(fast)
    tables = [cuda.to_device(np.ascontiguousarray(a)) for a in
              (np.asarray(level_i, real), np.asarray(level_q, real),
               np.asarray(label_of_position, integer))]  # fmt: skip
    blocks, threads = launch_shape(n_trials * items_per_trial, threads_per_block, max_blocks)
    kernel[blocks, threads](
        np.int64(first_trial), np.int64(n_trials), np.int64(blocks_per_trial),
        np.int64(coherence), np.int64(blocks_per_item), np.int64(parts), np.int64(part_len),
        np.int64(items_per_trial), np.uint32(key0), np.uint32(key1), np.uint32(point),
        np.int64(bits_per_symbol), *tables, real(sigma), np.int64(fading),
        real(los_amplitude), real(scatter_amplitude), real(csi_sigma), item_errors, item_squares,
    )  # fmt: skip
    blocks, threads = launch_shape(n_trials, threads_per_block, max_blocks)
    _ber_reduce[blocks, threads](
        np.int64(n_trials), np.int64(items_per_trial), np.int64(parts), item_errors,
        item_squares, d_errors, d_squares,
    )  # fmt: skip
    errors_out[:n_trials] = d_errors.copy_to_host()
    square_out[:n_trials] = d_squares.copy_to_host()


__all__ = ["ber_trials_cuda", "item_layout", "kernel_for", "make_ber_kernel"]
