"""Scalar building blocks of the batched solver, compiled with Numba and written to round
exactly like the NumPy code of the per-frame solver they mirror.

- :func:`pairwise_sum`: NumPy's summation of a contiguous row (sequential below 8 entries,
  else eight interleaved accumulators combined as a tree, then the tail), so a batched value
  equals ``row.sum()`` bit for bit up to 128 entries;
- :func:`water_fill`: the closed-form water-filling of :func:`optim.power.water_filling` for
  one row ``t = ln(alpha c)`` (:mod:`optim.water_fill`), with its final rescaling onto the
  budget;
- :func:`subchannel_rank`: subchannels by decreasing gain, ties by index
  (:func:`optim.matching.subchannel_order`).

Examples:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).standard_normal(13)
    >>> bool(pairwise_sum(x, 13) == x.sum())
    True
"""

from __future__ import annotations

import math

import numpy as np

from optim.twin import shared
from optim.water_fill import insertion_sort_decreasing, water_fill_levels


@shared()
def _block_sum(a: np.ndarray, lo: int, n: int) -> float:
    """NumPy's pairwise sum of ``a[lo:lo + n]`` for ``n <= 128`` (one block)."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    stop = n - (n % 8)
    while i < stop:
        r0 += a[lo + i]
        r1 += a[lo + i + 1]
        r2 += a[lo + i + 2]
        r3 += a[lo + i + 3]
        r4 += a[lo + i + 4]
        r5 += a[lo + i + 5]
        r6 += a[lo + i + 6]
        r7 += a[lo + i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@shared()
def pairwise_sum(a: np.ndarray, n: int) -> float:
    """``a[:n].sum()`` with NumPy's rounding up to 128 entries (1-D contiguous ``a``).

    Longer rows (only objectives of more than 128 features) are summed in blocks of 128,
    which agrees with NumPy's recursive halving to rounding, not bit for bit.
    """
    if n <= 128:
        return _block_sum(a, 0, n)
    res = 0.0
    for lo in range(0, n, 128):
        res += _block_sum(a, lo, min(128, n - lo))
    return res


@shared(inline="always")
def water_fill(t: np.ndarray, c: np.ndarray, width: int, budget: float, order: np.ndarray,
               p: np.ndarray, active: int) -> None:  # fmt: skip
    """:func:`optim.water_fill.water_fill_levels` into ``p[:width]``, then a rounding
    overshoot of the budget scaled back, as in the per-frame code (the budget check sums all
    ``width`` entries, as NumPy does)."""
    water_fill_levels(t, c, width, budget, order, p, active)
    total = pairwise_sum(p, width)
    if total > budget:
        scale = budget / total
        for j in range(width):
            p[j] = p[j] * scale


@shared(inline="always")
def log_terms(alpha: float, c: float) -> float:
    """``ln(alpha) + ln(c)`` when both are positive and finite, else ``-inf``."""
    if alpha > 0 and c > 0 and math.isfinite(alpha) and math.isfinite(c):
        return math.log(alpha) + math.log(c)
    return -math.inf


@shared()
def subchannel_rank(g: np.ndarray, out: np.ndarray) -> None:
    """Write into ``out[:K]`` the subchannels by decreasing gain, ties by index (stable)."""
    insertion_sort_decreasing(g, out, g.size)
