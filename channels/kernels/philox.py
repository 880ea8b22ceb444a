"""Philox4x32-10 counter-based random numbers (Salmon et al., SC'11), and their conversions.

A counter-based generator is a keyed bijection: ``out = philox(counter, key)``. Any random
number of a simulation is addressed by its counter, so a Monte Carlo point gives the same draws
whatever the batch size, thread count or backend. semcom keys a stream by the seed
(``key = seed as two 32-bit words``) and addresses the counter by
``(index within trial, trial, point, stream)``.

The functions are plain Python written with Numba-compatible integer arithmetic on ``uint64``
holding 32-bit values; :mod:`channels.kernels.cpu` compiles them with ``numba.njit`` (and the
CUDA backend can compile the same source as device functions).

Round function (Random123): with ``M0 = 0xD2511F53``, ``M1 = 0xCD9E8D57``,
``(hi0, lo0) = M0 * c0``, ``(hi1, lo1) = M1 * c2``,
``c <- (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)``, then the key is bumped by the Weyl constants
``(0x9E3779B9, 0xBB67AE85)``; ten rounds.
"""

from __future__ import annotations

import math

import numpy as np

M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint64(0x9E3779B9)
W1 = np.uint64(0xBB67AE85)
MASK32 = np.uint64(0xFFFFFFFF)
SHIFT32 = np.uint64(32)
SHIFT12 = np.uint64(12)
HALF_PI = 0.5 * math.pi
# Taylor coefficients: S_k = (-1)^((k-1)/2) / k!, C_k = (-1)^(k/2) / k!
S3, S5, S7, S9, S11, S13, S15 = (
    (-1.0) ** (k // 2) / math.factorial(k) for k in (3, 5, 7, 9, 11, 13, 15)
)
C2, C4, C6, C8, C10, C12, C14, C16 = (
    (-1.0) ** (k // 2) / math.factorial(k) for k in (2, 4, 6, 8, 10, 12, 14, 16)
)
INV_2_32 = 1.0 / 4294967296.0
INV_2_52 = 1.0 / 4503599627370496.0
TWO_20 = 1048576.0


def philox4x32_10(c0, c1, c2, c3, k0, k1):  # noqa: ANN001, ANN201 (Numba-compiled)
    """Ten Philox4x32 rounds on the counter ``(c0..c3)`` with key ``(k0, k1)``; 4 x uint32."""
    for _ in range(10):
        p0 = M0 * c0
        p1 = M1 * c2
        c0, c1, c2, c3 = (
            (p1 >> SHIFT32) ^ c1 ^ k0,
            p1 & MASK32,
            (p0 >> SHIFT32) ^ c3 ^ k1,
            p0 & MASK32,
        )
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3


def uniform32(w):  # noqa: ANN001, ANN201
    """A uint32 word to a float in the open interval (0, 1): ``(w + 1/2) / 2^32``."""
    return (float(w) + 0.5) * INV_2_32


def uniform52(w_hi, w_lo):  # noqa: ANN001, ANN201
    """Two uint32 words to a float in (0, 1) with 52 random bits (for deep Gaussian tails).

    ``(k + 1/2) / 2^52`` with ``k < 2^52`` is exact in float64, so 0 and 1 never occur.
    """
    return (float(w_hi) * TWO_20 + float(w_lo >> SHIFT12) + 0.5) * INV_2_52


def cos_sin_2pi(u):  # noqa: ANN001, ANN201
    """``(cos 2 pi u, sin 2 pi u)`` for ``u`` in [0, 1), accurate to about 1e-16 absolute.

    Quadrant reduction on ``u`` itself (exact in binary: ``4u`` and its integer part), then the
    Taylor series of sin (to x^15) and cos (to x^16) on ``|x| <= pi/4``, whose first omitted
    terms are below 5e-17 there. About 5x faster than libm's sin and cos in this kernel.
    """
    t = 4.0 * u
    nearest = math.floor(t + 0.5)  # quadrant index 0..4, so that |x| <= pi/4 below
    x = (t - nearest) * HALF_PI
    x2 = x * x
    s = x * (
        1.0 + x2 * (S3 + x2 * (S5 + x2 * (S7 + x2 * (S9 + x2 * (S11 + x2 * (S13 + x2 * S15))))))
    )
    c = 1.0 + x2 * (
        C2 + x2 * (C4 + x2 * (C6 + x2 * (C8 + x2 * (C10 + x2 * (C12 + x2 * (C14 + x2 * C16))))))
    )
    # rotate (c, s) by q quarter turns without branches (the quadrant is random: branches
    # would be mispredicted half of the time): q = 0: (c, s), 1: (-s, c), 2: (-c, -s), 3: (s, -c)
    q = int(nearest) & 3
    odd = float(q & 1)
    sign_cos = 1.0 - 2.0 * float((q ^ (q >> 1)) & 1)
    sign_sin = 1.0 - 2.0 * float((q >> 1) & 1)
    return sign_cos * (odd * s + (1.0 - odd) * c), sign_sin * (odd * c + (1.0 - odd) * s)


def make_box_muller(cos_sin):  # noqa: ANN001, ANN201
    """Box-Muller built on a given ``cos_sin(u) = (cos 2 pi u, sin 2 pi u)``.

    Each backend passes its compiled :func:`cos_sin_2pi` (a compiled function may only call
    compiled functions). The returned ``box_muller(u1, u2)`` maps two uniforms in (0, 1) to two
    independent N(0, 1) samples: ``r = sqrt(-2 ln u1)``, ``(r cos 2 pi u2, r sin 2 pi u2)``.
    With ``u1`` from :func:`uniform52` the largest magnitude is ``sqrt(2 ln 2^53) = 8.6``, so
    Gaussian tails are exact down to probabilities of about 1e-17.
    """

    def box_muller(u1, u2):  # noqa: ANN001, ANN202
        r = math.sqrt(-2.0 * math.log(u1))
        c, s = cos_sin(u2)
        return r * c, r * s

    return box_muller


box_muller = make_box_muller(cos_sin_2pi)


def seed_key(seed: int) -> tuple[np.uint64, np.uint64]:
    """Split a 64-bit seed into the two 32-bit key words."""
    seed = int(seed)
    return np.uint64(seed & 0xFFFFFFFF), np.uint64((seed >> 32) & 0xFFFFFFFF)
