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
TWO_PI = 2.0 * math.pi
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


def box_muller(u1, u2):  # noqa: ANN001, ANN201
    """Two independent N(0, 1) samples from two uniforms in (0, 1) (Box-Muller).

    With ``u1`` from :func:`uniform52` the largest magnitude is ``sqrt(2 ln 2^53) = 8.6``, so
    Gaussian tails are exact down to probabilities of about 1e-17.
    """
    r = math.sqrt(-2.0 * math.log(u1))
    theta = TWO_PI * u2
    return r * math.cos(theta), r * math.sin(theta)


def seed_key(seed: int) -> tuple[np.uint64, np.uint64]:
    """Split a 64-bit seed into the two 32-bit key words."""
    seed = int(seed)
    return np.uint64(seed & 0xFFFFFFFF), np.uint64((seed >> 32) & 0xFFFFFFFF)
