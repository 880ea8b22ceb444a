"""Numba-CUDA device functions shared by the GPU twins of the Monte Carlo kernels.

Importing this module imports ``numba.cuda``; :func:`channels.kernels.backend.resolve_backend`
decides when that happens. The twins draw exactly the random numbers of the CPU kernels:

- :func:`philox` is Philox4x32-10 (:mod:`channels.kernels.philox`) written on ``uint32``
  words, so that each round's products compile to the 32x32->64-bit ``mul.wide.u32`` of the
  GPU instead of a 64x64-bit product. Same counters, same keys, same output words (tested on
  Random123's known-answer vectors).
- Two arithmetic modes use these words:

  * **fast** (the default of every GPU kernel): float32 throughout, compiled with
    ``fastmath`` (MUFU ``lg2``/``sqrt``/``sin``/``cos``), :func:`gauss_pair_f32`. The noise
    equals the CPU's within float32 rounding (about 1e-6 of a sample), so the decisions are
    the CPU's except for samples that close to a decision boundary (about one symbol in 10^6):
    the statistics are those of the CPU kernel, not its bits.
  * **exact**: :func:`uniform32`, :func:`uniform52`, :func:`cos_sin_2pi` and
    :func:`box_muller`, the very source of :mod:`channels.kernels.philox` compiled as float64
    device functions. Decisions equal the CPU's up to the last bits of a rounding (NVVM
    contracts ``a * b + c`` into fused multiply-adds and libdevice's ``log`` and ``sqrt`` may
    differ from glibc's by an ulp: a flip needs a sample within ~1e-16 of a boundary). Under
    the CUDA simulator the device functions are plain Python, whose ``math`` is glibc's, and
    the results equal the CPU kernels' bit for bit.

Each mode is an :class:`Arithmetic` (:func:`arithmetic`): its dtypes, constants and device
functions, over which a kernel factory writes a kernel once for both modes.

Each mode is bit-identical with itself across launch shapes and batch splits: every symbol
is computed from its own counter by the same compiled code, and all sums are of integers.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import cuda

from channels.kernels import philox as _p
from channels.kernels.philox import M0, M1, MASK32, SHIFT32, W0, W1

DEFAULT_THREADS_PER_BLOCK = 128  # best of 128 and 256 on the H200 (BENCHMARKS.md)


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


# ---------------------------------------------------------------- float64 (exact) helpers
@cuda.jit(device=True)
def gauss_pair_f64(w1, w2, w3):  # noqa: ANN001, ANN201 (device function)
    """The CPU kernels' noise: ``box_muller(uniform52(w1, w3), uniform32(w2))``."""
    return box_muller(uniform52(w1, w3), uniform32(w2))


@cuda.jit(device=True)
def gauss_pair32_f64(w1, w2):  # noqa: ANN001, ANN201 (device function)
    """The CPU kernels' fading draw: ``box_muller(uniform32(w1), uniform32(w2))``."""
    return box_muller(uniform32(w1), uniform32(w2))


@cuda.jit(device=True)
def exp_gain_f64(w):  # noqa: ANN001, ANN201 (device function)
    """Rayleigh power gain ``|h|^2 = -ln uniform32(w)``, an Exp(1) draw."""
    return -math.log(uniform32(w))


@cuda.jit(device=True)
def grid_f64(side, m):  # noqa: ANN001, ANN201 (device function)
    """``(half_span, top, position_scale)`` of the decision grid of a ``2^m``-point constellation
    with ``side`` levels per axis (``side = 1`` for BPSK).

    The levels of an axis are ``(2 p - (side - 1)) d`` with ``d = sqrt(1.5 / (2^m - 1))`` (unit
    energy), so the nearest level of ``v`` is ``position(v * position_scale + half_span, top)``
    with ``position_scale = 1 / (2 d)``, ``half_span = (side - 1) / 2`` and ``top = side - 1``.
    """
    position_scale = 0.5 / math.sqrt(1.5 / ((1 << m) - 1)) if m > 1 else 0.5
    return 0.5 * (side - 1), side - 1, position_scale


# ---------------------------------------------------------------- float32 (fast) helpers
F32_ZERO = np.float32(0.0)
F32_HALF = np.float32(0.5)
F32_ONE = np.float32(1.0)
F32_MINUS_TWO = np.float32(-2.0)
F32_TWO_PI = np.float32(2.0 * math.pi)
F32_2_POW_M32 = np.float32(2.0**-32)
F32_2_POW_M33 = np.float32(2.0**-33)
F32_2_POW_M64 = np.float32(2.0**-64)
F32_2_POW_M65 = np.float32(2.0**-65)
F32_SQRT_HALF = np.float32(math.sqrt(0.5))


@cuda.jit(device=True)
def clamp_f32(v, top):  # noqa: ANN001, ANN201 (device function)
    """``min(max(v, 0), top)`` (a NaN gives 0, so the caller's index stays in range)."""
    v = v if v > F32_ZERO else F32_ZERO
    return v if v < top else top


@cuda.jit(device=True)
def uniform_f32(w):  # noqa: ANN001, ANN201 (device function)
    """A uint32 word to a float32 in ``(0, 1]``: ``w / 2^32 + 2^-33`` (rounded)."""
    return np.float32(w) * F32_2_POW_M32 + F32_2_POW_M33


@cuda.jit(device=True)
def angle_f32(w):  # noqa: ANN001, ANN201 (device function)
    """A uint32 word to an angle in ``[-pi, pi]``: ``2 pi (w / 2^32 - [w / 2^32 > 1/2])``.

    The same angle modulo 2 pi as the CPU kernels' ``2 pi uniform32(w)``, within float32
    rounding, and inside the range where the fast ``sinf``/``cosf`` are accurate (2^-21.4
    absolute error)."""
    t = np.float32(w) * F32_2_POW_M32
    if t > F32_HALF:
        t -= F32_ONE
    return F32_TWO_PI * t


@cuda.jit(device=True)
def gauss_pair_f32(w1, w2, w3):  # noqa: ANN001, ANN201 (device function)
    """Box-Muller in float32: three uint32 words -> two independent N(0, 1) float32 samples.

    ``r = sqrt(-2 ln u1)``, ``(r cos t, r sin t)`` with ``t = angle_f32(w2)`` and
    ``u1 = w1 / 2^32`` (``w1 > 0``) or ``(w3 + 1/2) / 2^64`` (``w1 = 0``, probability
    2^-32), so ``u1 >= 2^-65`` and ``r`` reaches ``sqrt(130 ln 2) = 9.5``: the Gaussian tails
    are drawn down to probabilities below 1e-19, like the CPU's 52-bit uniform (8.6). Up to
    float32 rounding this is the CPU kernels' ``box_muller(uniform52(w1, w3), uniform32(w2))``
    (|difference| below about 1e-6 r), computed with the fast ``logf``, ``sqrtf``, ``sinf``,
    ``cosf`` of a ``fastmath`` kernel.
    """
    if w1 != 0:
        u1 = np.float32(w1) * F32_2_POW_M32
    else:
        u1 = np.float32(w3) * F32_2_POW_M64 + F32_2_POW_M65
    r2 = F32_MINUS_TWO * math.log(u1)
    r = math.sqrt(r2 if r2 > F32_ZERO else F32_ZERO)
    t = angle_f32(w2)
    return r * math.cos(t), r * math.sin(t)


@cuda.jit(device=True)
def gauss_pair32_f32(w1, w2):  # noqa: ANN001, ANN201 (device function)
    """Box-Muller in float32 on two words (``u1 = uniform_f32(w1)``): per-block fading draws."""
    r2 = F32_MINUS_TWO * math.log(uniform_f32(w1))
    r = math.sqrt(r2 if r2 > F32_ZERO else F32_ZERO)
    t = angle_f32(w2)
    return r * math.cos(t), r * math.sin(t)


F32_TINY_GAIN = np.float32(2.0**-32)  # |h|^2 floor of the fast Rayleigh draw (CPU: 1.2e-10)


@cuda.jit(device=True, fastmath=True)
def exp_gain_f32(w):  # noqa: ANN001, ANN201 (device function)
    """float32 ``|h|^2 = -ln uniform_f32(w)``, floored at ``F32_TINY_GAIN`` (``u`` may be 1)."""
    gain = -math.log(uniform_f32(w))
    return gain if gain > F32_TINY_GAIN else F32_TINY_GAIN


@cuda.jit(device=True, fastmath=True)
def grid_f32(side, m):  # noqa: ANN001, ANN201 (device function)
    """float32 :func:`grid_f64` for :func:`grid_index_f32`: ``half_span`` is ``(side - 1) / 2
    + 1/2``, so that truncation rounds to the nearest position."""
    position_scale = np.float32(0.5 / math.sqrt(1.5 / ((1 << m) - 1)) if m > 1 else 0.5)
    return np.float32(0.5 * (side - 1) + 0.5), np.float32(side - 1), position_scale


@cuda.jit(device=True, fastmath=True)
def grid_index_f32(v, top):  # noqa: ANN001, ANN201 (device function)
    """``int(clamp(v, 0, top))``: with :func:`grid_f32`'s ``half_span`` the nearest position
    (ties, of probability 0, go up)."""
    return np.int32(clamp_f32(v, top))


# ---------------------------------------------------------------- the two modes
class Arithmetic(NamedTuple):
    """One arithmetic mode (module docstring): its dtypes, constants and device functions.

    A kernel factory (:func:`channels.kernels.cuda_ber.make_ber_kernel`) writes a kernel once
    and closes over these. Numba compiles a closure's free variables as compile-time constants
    and inlines the device functions, so each mode's kernel is the code one would write out for
    that mode.
    """

    fast: bool  # float32 and fastmath, or float64
    real: Any  # dtype of the real scalars and level tables: np.float32 / np.float64
    integer: Any  # dtype of the label tables: np.int32 / np.int64
    zero: Any  # 0 and 1 in ``real``
    one: Any
    sqrt_half: Any  # sqrt(1/2) in ``real``
    gauss_pair: Any  # (w1, w2, w3) -> two N(0, 1) samples: the per-symbol noise
    gauss_pair32: Any  # (w1, w2) -> two N(0, 1) samples: the per-block fading
    exp_gain: Any  # w -> |h|^2 ~ Exp(1): Rayleigh fading with perfect CSI
    grid: Any  # (side, m) -> (half_span, top, position_scale) of the decisions
    grid_index: Any  # (v, top) -> the nearest grid position of v in 0..top


EXACT = Arithmetic(False, np.float64, np.int64, 0.0, 1.0, math.sqrt(0.5), gauss_pair_f64,
                   gauss_pair32_f64, exp_gain_f64, grid_f64, position)  # fmt: skip
FAST = Arithmetic(True, np.float32, np.int32, F32_ZERO, F32_ONE, F32_SQRT_HALF, gauss_pair_f32,
                  gauss_pair32_f32, exp_gain_f32, grid_f32, grid_index_f32)  # fmt: skip


def arithmetic(fast: bool) -> Arithmetic:
    """The fast (float32) or the exact (float64) mode."""
    return FAST if fast else EXACT


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
    "EXACT",
    "FAST",
    "Arithmetic",
    "angle_f32",
    "arithmetic",
    "box_muller",
    "clamp_f32",
    "cos_sin_2pi",
    "exp_gain_f32",
    "exp_gain_f64",
    "gauss_pair32_f32",
    "gauss_pair32_f64",
    "gauss_pair_f32",
    "gauss_pair_f64",
    "grid_f32",
    "grid_f64",
    "grid_index_f32",
    "imin",
    "launch_shape",
    "philox",
    "position",
    "seed_key32",
    "uniform32",
    "uniform_f32",
    "uniform52",
]
