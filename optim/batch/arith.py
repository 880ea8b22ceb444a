"""Scalar building blocks of the batched solver, compiled with Numba and written to round
exactly like the NumPy code of the per-frame solver they mirror.

- :func:`pairwise_sum`: NumPy's summation of a contiguous row (sequential below 8 entries,
  else eight interleaved accumulators combined as a tree, then the tail), so a batched value
  equals ``row.sum()`` bit for bit up to 128 entries;
- :func:`water_fill`: the closed-form water-filling of :func:`optim.power.water_filling` for
  one row ``t = ln(alpha c)``, including its final rescaling onto the budget;
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


def _sort_decreasing_device(t: np.ndarray, order: np.ndarray, active: int) -> None:
    """GPU twin of :func:`sort_decreasing`: insertion sort at every length (no allocation)."""
    for j in range(active):
        v = t[j]
        k = j
        while k > 0 and t[order[k - 1]] < v:
            order[k] = order[k - 1]
            k -= 1
        order[k] = j


@shared(cuda=_sort_decreasing_device)
def sort_decreasing(t: np.ndarray, order: np.ndarray, active: int) -> None:
    """Write into ``order[:active]`` the indices of ``t[:active]`` by decreasing value.

    Up to 32 entries an insertion sort (ties by index); longer rows ``np.argsort(-t)``, as the
    per-frame water-filling (:func:`optim.kernels.water_fill_rows`) does, whose order of exact
    ties the batched CPU result keeps. The GPU twin sorts every length by insertion, so on rows
    of more than 32 useful entries with exactly equal ``t`` it may visit ties in another order
    (the powers then agree to rounding).
    """
    if active <= 32:
        for j in range(active):
            v = t[j]
            k = j
            while k > 0 and t[order[k - 1]] < v:
                order[k] = order[k - 1]
                k -= 1
            order[k] = j
    else:
        order[:active] = np.argsort(-t[:active])


@shared()
def water_fill(t: np.ndarray, c: np.ndarray, width: int, budget: float, order: np.ndarray,
               p: np.ndarray, active: int) -> None:  # fmt: skip
    """Write into ``p[:width]`` the powers ``max(0, (t_i - nu)/c_i)`` summing to ``budget``.

    ``t[:width]`` is ``ln(alpha c)`` (``-inf``: no gain from power), ``c`` the rates;
    ``order`` is scratch of at least ``width`` entries. Zeros when ``budget <= 0`` or no entry
    is useful. Rounding overshoot of the budget is scaled back, as in the per-frame code.
    ``active`` (-1: ``width``): only ``t[:active]`` may be finite (a padded row): the rest get
    no power, and the budget check still sums all ``width`` entries, as NumPy does.
    """
    for j in range(width):
        p[j] = 0.0
    if active < 0:
        active = width
    if not budget > 0 or active == 0:
        return
    sort_decreasing(t, order, active)
    top = t[order[0]]
    if not math.isfinite(top):
        return
    s1 = 0.0
    s2 = 0.0
    count = 0
    for j in range(active):
        i = order[j]
        if not math.isfinite(t[i]):
            break
        u = t[i] - top
        inv = 1.0 / c[i]
        if s2 + u * inv - u * (s1 + inv) < budget:
            s1 += inv
            s2 += u * inv
            count += 1
        else:
            break
    if count == 0:
        return
    ubar = s2 / s1
    for j in range(count):
        i = order[j]
        inv = 1.0 / c[i]
        v = (t[i] - top - ubar) * inv + budget * inv / s1
        p[i] = v if v > 0.0 else 0.0
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
    k = g.size
    for j in range(k):
        v = g[j]
        i = j
        while i > 0 and g[out[i - 1]] < v:
            out[i] = out[i - 1]
            i -= 1
        out[i] = j
