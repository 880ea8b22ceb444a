"""Numba-CUDA device functions shared by the GPU twins of the Monte Carlo kernels.

Importing this module imports ``numba.cuda``; :func:`channels.kernels.backend.resolve_backend`
decides when that happens. The twins draw exactly the random numbers of the CPU kernels:

- :func:`philox` is Philox4x32-10 (:mod:`channels.kernels.philox`) written on ``uint32``
  words, so that each round's products compile to the 32x32->64-bit ``mul.wide.u32`` of the
  GPU instead of a 64x64-bit product. Same counters, same keys, same output words (tested on
  Random123's known-answer vectors).
- :func:`uniform32`, :func:`uniform52`, :func:`cos_sin_2pi` and :func:`box_muller` are the very
  source of :mod:`channels.kernels.philox`, compiled as device functions (float64).

Arithmetic stays in float64 as on the CPU, so both backends decide on the same samples up to the
last bits of a rounding: NVVM contracts ``a * b + c`` into fused multiply-adds and libdevice's
``log`` and ``sqrt`` may differ from glibc's by an ulp, which moves a sample by about 1e-16 and
flips a decision only if it lies that close to a decision boundary (probability ~1e-15 per
symbol: never seen in the tests). Under the CUDA simulator the device functions are plain
Python, whose ``math`` is glibc's, and the results equal the CPU kernels' bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda

from channels.kernels import philox as _p

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint64(0x9E3779B9)
W1 = np.uint64(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)

DEFAULT_THREADS_PER_BLOCK = 256


@cuda.jit(device=True)
def philox(c0, c1, c2, c3, k0, k1):  # noqa: ANN001, ANN201 (device function)
    """Philox4x32-10 on uint32 words: counter ``(c0..c3)``, key ``(k0, k1)`` -> 4 x uint32.

    Each round: ``(hi0, lo0) = M0 * c0``, ``(hi1, lo1) = M1 * c2`` (64-bit products of 32-bit
    words), ``c <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)``, key += Weyl constants.
    """
    c0 = np.uint32(c0)
    c1 = np.uint32(c1)
    c2 = np.uint32(c2)
    c3 = np.uint32(c3)
    k0 = np.uint32(k0)
    k1 = np.uint32(k1)
    for _ in range(10):
        p0 = M0 * np.uint64(c0)
        p1 = M1 * np.uint64(c2)
        n0 = np.uint32(p1 >> SHIFT32) ^ c1 ^ k0
        n2 = np.uint32(p0 >> SHIFT32) ^ c3 ^ k1
        c1 = np.uint32(p1 & MASK32)
        c3 = np.uint32(p0 & MASK32)
        c0 = np.uint32(n0)
        c2 = np.uint32(n2)
        k0 = np.uint32((np.uint64(k0) + W0) & MASK32)
        k1 = np.uint32((np.uint64(k1) + W1) & MASK32)
    return c0, c1, c2, c3


@cuda.jit(device=True)
def imin(a, b):  # noqa: ANN001, ANN201 (device function)
    """``min(a, b)`` of integers (written out: some Numba-CUDA versions fail on ``min``)."""
    return a if a < b else b


@cuda.jit(device=True)
def min_float(a, b):  # noqa: ANN001, ANN201 (device function)
    """``min(a, b)`` of floats (written out, like :func:`imin`)."""
    return a if a < b else b


@cuda.jit(device=True)
def position(v, top):  # noqa: ANN001, ANN201 (device function)
    """Nearest grid position ``rint(v)`` clamped to ``0..top`` (the CPU kernels' decision)."""
    p = round(v)
    if p < 0:
        p = 0
    if p > top:
        p = top
    return p


uniform32 = cuda.jit(device=True)(_p.uniform32)
uniform52 = cuda.jit(device=True)(_p.uniform52)
cos_sin_2pi = cuda.jit(device=True)(_p.cos_sin_2pi)
box_muller = cuda.jit(device=True)(_p.make_box_muller(cos_sin_2pi))


TWO_PI_F32 = np.float32(2.0 * math.pi)
FAST_ERROR_CONSTANT = 5e-4
FAST_ERROR_SLOPE = 6e-4


@cuda.jit(device=True)
def box_muller_fast(w1, w2, w3):  # noqa: ANN001, ANN201 (device function)
    """Box-Muller in float32 on the uniforms of :func:`box_muller`, with an error bound.

    Returns ``(n_re, n_im, err)`` (float64) with ``|n - n_exact| <= err`` per component, where
    ``n_exact`` is the float64 ``box_muller(uniform52(w1, w3), uniform32(w2))``. The bound
    ``err = 5e-4 + 6e-4 r`` (``r = sqrt(-2 ln u1)``) is loose on purpose: rounding ``u1`` to
    float32 moves ``-2 ln u1`` by at most ``1.2e-7`` (``u1`` near 1: ``r`` near 0, where a
    square root turns it into at most ``3.5e-4``), ``logf`` adds ``2.4e-7 |ln u1|``, which
    ``sqrt`` turns into at most ``5e-4 r``, and the angle's rounding and ``cosf``/``sinf`` add
    ``1.5e-6 r``. A caller whose decision lies farther than ``err`` (scaled to its units)
    from every decision boundary decides as with ``n_exact``; otherwise it recomputes with
    float64 (:func:`box_muller`), which happens for about 1e-3 of the symbols.
    """
    u1 = np.float32(uniform52(w1, w3))
    u2 = np.float32(uniform32(w2))
    r = math.sqrt(np.float32(-2.0) * math.log(u1))
    angle = TWO_PI_F32 * u2
    n_re = float(r * math.cos(angle))
    n_im = float(r * math.sin(angle))
    return n_re, n_im, FAST_ERROR_CONSTANT + FAST_ERROR_SLOPE * float(r)


@cuda.jit(device=True)
def half_integer_distance(v):  # noqa: ANN001, ANN201 (device function)
    """Distance from ``v`` to the nearest half-integer ``k + 1/2`` (a QAM decision boundary
    in position units); a lower bound on the distance to the boundaries that exist."""
    return abs(v - math.floor(v) - 0.5)


def seed_key32(seed: int) -> tuple[np.uint32, np.uint32]:
    """The seed's two 32-bit key words as ``uint32`` (see :func:`philox.seed_key`)."""
    k0, k1 = _p.seed_key(seed)
    return np.uint32(k0), np.uint32(k1)


def launch_shape(
    n_items: int, threads_per_block: int | None, max_blocks: int | None
) -> tuple[int, int]:
    """``(blocks, threads)`` of a grid-stride launch over ``n_items`` work items.

    Every kernel here loops ``for item in range(grid(1), n_items, gridsize(1))`` and computes
    each item from its own counters, so any shape gives the same result.
    """
    threads = int(threads_per_block or DEFAULT_THREADS_PER_BLOCK)
    blocks = max(1, -(-int(n_items) // threads))
    if max_blocks is not None:
        blocks = max(1, min(blocks, int(max_blocks)))
    return blocks, threads


__all__ = [
    "box_muller",
    "box_muller_fast",
    "cos_sin_2pi",
    "half_integer_distance",
    "imin",
    "launch_shape",
    "min_float",
    "philox",
    "position",
    "seed_key32",
    "uniform32",
    "uniform52",
]
