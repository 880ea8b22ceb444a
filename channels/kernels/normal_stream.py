"""NumPy's per-trial normal streams, as compiled source: ``default_rng((*prefix, t))`` seeded
and drawn from inside a kernel, bit for bit.

:func:`make_trial_normals` compiles a function that fills a row with the first normals of
``numpy.random.default_rng((*prefix, t)).standard_normal`` without Python or NumPy: the
SeedSequence hash (:mod:`channels.seed_streams` states the algorithm), PCG64 on pairs of 64-bit
words, and NumPy's ziggurat (:mod:`channels.kernels.ziggurat_tables`). The functions are plain
Python with Numba-typed ``uint64`` arithmetic; :mod:`channels.kernels.trial_fading` compiles
them with ``numba.njit`` and as CUDA device functions, so a batch's fading can be drawn where
its frames are solved and sent.

PCG64 (O'Neill's XSL-RR 128/64, as NumPy runs it): the 128-bit state advances
``s <- s M + inc (mod 2^128)``, then the output is ``rotr64(hi(s) ^ lo(s), s >> 122)``.
``next_double = (next_uint64 >> 11) 2^-53``.

Ziggurat (NumPy's ``random_standard_normal``): ``r = next_uint64``; strip ``i = r & 255``; sign
bit ``(r >> 8) & 1``; ``rabs = (r >> 9) & (2^52 - 1)``; ``x = ±rabs WI[i]``, accepted at once
when ``rabs < KI[i]`` (99.3%). Otherwise strip 0 samples the tail beyond ``R`` (Marsaglia's
method: ``xx = -log1p(-u1) / R``, ``yy = -log1p(-u2)``, accept ``2 yy > xx^2``, return
``±(R + xx)``) and strip ``i > 0`` accepts ``x`` when
``(FI[i-1] - FI[i]) u + FI[i] < exp(-x^2 / 2)``; a rejected draw starts again.

Scratch layout (``uint64 [8]``, one per thread): ``[0:4]`` the SeedSequence pool, ``[4:8]``
PCG64's ``state_hi, state_lo, inc_hi, inc_lo``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from channels.kernels.ziggurat_tables import INV_R, R

U0 = np.uint64(0)
U1 = np.uint64(1)
U8 = np.uint64(8)
U9 = np.uint64(9)
U11 = np.uint64(11)
U16 = np.uint64(16)
U32 = np.uint64(32)
U58 = np.uint64(58)
U63 = np.uint64(63)
U64 = np.uint64(64)
MASK8 = np.uint64(0xFF)
MASK32 = np.uint64(0xFFFFFFFF)
MASK52 = np.uint64(0x000FFFFFFFFFFFFF)
INIT_A = np.uint64(0x43B0D7E5)
MULT_A = np.uint64(0x931E8875)
INIT_B = np.uint64(0x8B51F9DD)
MULT_B = np.uint64(0x58F38DED)
MIX_L = np.uint64(0xCA01F9DD)
MIX_R = np.uint64(0x4973F715)
PCG_MULT_HI = np.uint64(2549297995355413924)
PCG_MULT_LO = np.uint64(4865540595714422341)
POOL = 4
STATE = 4  # scratch[STATE:STATE + 4] holds PCG64's state and increment
TWO_M53 = 1.0 / 9007199254740992.0


def product(x, y):  # noqa: ANN001, ANN201 (compiled source)
    """``x y``, rounded once (the default ``multiply`` of :func:`make_trial_normals`)."""
    return x * y


def make_trial_normals(
    jit: Callable[[Callable], Callable], multiply: Callable | None = None
) -> Callable:
    """``trial_normals(prefix_words, trial, ki, wi, fi, scratch, out)`` compiled with ``jit``
    (``numba.njit(inline="always")`` or ``numba.cuda.jit(device=True)``), with the functions it
    calls compiled the same way.

    ``multiply`` (a compiled ``x * y``; default :func:`product` compiled with ``jit``) forms the
    one product that is followed by a sum, in the ziggurat's wedge test: a GPU passes a
    product its compiler cannot fuse into a multiply-add (``libdevice.dmul_rn``), so the sum is
    rounded as the host rounds it.

    ``trial_normals`` sets ``out[:] = default_rng((*prefix, trial)).standard_normal(out.size)``:
    ``prefix_words`` is uint64 holding the prefix's 32-bit entropy words
    (:func:`channels.seed_streams.entropy_words`), ``trial`` a uint64
    in ``[0, 2^32)``, ``ki, wi, fi`` the tables of :mod:`channels.kernels.ziggurat_tables`,
    ``scratch`` a uint64 ``[8]`` work array (module docstring).
    """

    mul = jit(product) if multiply is None else multiply

    @jit
    def _hash(value, const, mult):  # noqa: ANN001, ANN202
        """SeedSequence's hashmix on 32-bit values: ``(mixed, next constant)``."""
        value = (value ^ const) & MASK32
        const = (const * mult) & MASK32
        value = (value * const) & MASK32
        return value ^ (value >> U16), const

    @jit
    def _mix(x, y):  # noqa: ANN001, ANN202
        r = (MIX_L * x - MIX_R * y) & MASK32
        return r ^ (r >> U16)

    @jit
    def _mulhi(a, b):  # noqa: ANN001, ANN202
        """The high 64 bits of the 128-bit product of two uint64."""
        a0, a1 = a & MASK32, a >> U32
        b0, b1 = b & MASK32, b >> U32
        p01, p10 = a0 * b1, a1 * b0
        mid = ((a0 * b0) >> U32) + (p01 & MASK32) + (p10 & MASK32)
        return a1 * b1 + (p01 >> U32) + (p10 >> U32) + (mid >> U32)

    @jit
    def _step(scratch):  # noqa: ANN001, ANN202
        """PCG64's state step ``s <- s M + inc (mod 2^128)``, in place."""
        hi, lo = scratch[STATE], scratch[STATE + 1]
        inc_hi, inc_lo = scratch[STATE + 2], scratch[STATE + 3]
        new_hi = _mulhi(lo, PCG_MULT_LO) + lo * PCG_MULT_HI + hi * PCG_MULT_LO
        new_lo = lo * PCG_MULT_LO
        out_lo = new_lo + inc_lo
        carry = U1 if out_lo < new_lo else U0
        scratch[STATE] = new_hi + inc_hi + carry
        scratch[STATE + 1] = out_lo

    @jit
    def seed_pcg64(prefix_words, trial, scratch):  # noqa: ANN001, ANN202
        """Seed PCG64 in ``scratch`` as ``default_rng((*prefix, trial))`` does.

        ``prefix_words``: uint64 holding the prefix's 32-bit entropy words
        (:func:`channels.seed_streams.entropy_words`); ``trial`` in
        ``[0, 2^32)`` is the last word.
        """
        n_words = prefix_words.shape[0] + 1
        const = INIT_A
        for i in range(POOL):
            word = U0
            if i < n_words - 1:
                word = prefix_words[i]
            elif i == n_words - 1:
                word = trial
            scratch[i], const = _hash(word, const, MULT_A)
        for src in range(POOL):
            for dst in range(POOL):
                if src != dst:
                    hashed, const = _hash(scratch[src], const, MULT_A)
                    scratch[dst] = _mix(scratch[dst], hashed)
        for src in range(POOL, n_words):
            word = trial
            if src < n_words - 1:
                word = prefix_words[src]
            for dst in range(POOL):
                hashed, const = _hash(word, const, MULT_A)
                scratch[dst] = _mix(scratch[dst], hashed)
        # generate_state(4, uint64): eight hashed pool words, paired little-endian
        const = INIT_B
        lo0, const = _hash(scratch[0], const, MULT_B)
        hi0, const = _hash(scratch[1], const, MULT_B)
        lo1, const = _hash(scratch[2], const, MULT_B)
        hi1, const = _hash(scratch[3], const, MULT_B)
        lo2, const = _hash(scratch[0], const, MULT_B)
        hi2, const = _hash(scratch[1], const, MULT_B)
        lo3, const = _hash(scratch[2], const, MULT_B)
        hi3, const = _hash(scratch[3], const, MULT_B)
        w0, w1 = lo0 | (hi0 << U32), lo1 | (hi1 << U32)
        w2, w3 = lo2 | (hi2 << U32), lo3 | (hi3 << U32)
        # initstate = w0:w1, initseq = w2:w3; inc = 2 initseq + 1; state = (inc + initstate) M + inc
        inc_hi, inc_lo = (w2 << U1) | (w3 >> U63), (w3 << U1) | U1
        lo = inc_lo + w1
        carry = U1 if lo < inc_lo else U0
        scratch[STATE], scratch[STATE + 1] = inc_hi + w0 + carry, lo
        scratch[STATE + 2], scratch[STATE + 3] = inc_hi, inc_lo
        _step(scratch)

    @jit
    def next_uint64(scratch):  # noqa: ANN001, ANN202
        """PCG64's next output (XSL-RR) from the state in ``scratch``."""
        _step(scratch)
        hi = scratch[STATE]
        x = hi ^ scratch[STATE + 1]
        rot = hi >> U58
        return (x >> rot) | (x << ((U64 - rot) & U63))

    @jit
    def next_double(scratch):  # noqa: ANN001, ANN202
        """A uniform double in ``[0, 1)`` with 53 random bits, as NumPy draws it."""
        return np.float64(next_uint64(scratch) >> U11) * TWO_M53

    @jit
    def standard_normal(scratch, ki, wi, fi):  # noqa: ANN001, ANN202
        """NumPy's ``Generator.standard_normal()`` from the PCG64 in ``scratch``."""
        while True:
            r = next_uint64(scratch)
            idx = r & MASK8
            rabs = (r >> U9) & MASK52
            x = np.float64(rabs) * wi[idx]
            if (r >> U8) & U1:
                x = -x
            if rabs < ki[idx]:
                return x
            if idx == U0:
                while True:
                    xx = -INV_R * math.log1p(-next_double(scratch))
                    yy = -math.log1p(-next_double(scratch))
                    if yy + yy > xx * xx:
                        if (rabs >> U8) & U1:
                            return -(R + xx)
                        return R + xx
            else:
                wedge = mul(fi[idx - U1] - fi[idx], next_double(scratch)) + fi[idx]
                if wedge < math.exp(-0.5 * x * x):
                    return x

    @jit
    def trial_normals(prefix_words, trial, ki, wi, fi, scratch, out):  # noqa: ANN001, ANN202
        """``out[:] = default_rng((*prefix, trial)).standard_normal(out.size)``."""
        seed_pcg64(prefix_words, trial, scratch)
        for j in range(out.shape[0]):
            out[j] = standard_normal(scratch, ki, wi, fi)

    return trial_normals


__all__ = ["make_trial_normals", "product"]
