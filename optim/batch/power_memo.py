"""A frame's memo of exact optimal powers: an allocation priced twice is priced once.

The refined batched frame prices allocations at their exact optimal power
(:func:`optim.optimal_power.candidate_value_into`, a Newton search with an inner Newton per
entry: the costliest step of a frame) from several places, and meets the same allocation again:
the pipeline's best candidate is priced for its multiplier and again as a start, a start is
priced as it is and again by the polish's first step, two starts converge to one state. At
``N = K = 16`` about a third of a frame's pricings repeat an earlier one of the same frame.

The pricing is a pure function of its inputs: the used entries' ``(alpha, nu, modulation)`` in
order and the budget (the scratch it is given is overwritten before it is read). So a repeat
may take the stored powers, error and multiplier instead, bit for bit. :data:`PowerMemo`
keeps the last ``K`` pricings of one frame (a ring), and a frame starts with a new one; one of
capacity 0 (:func:`no_memo`) remembers nothing and writes nothing, so it may be shared (the
GPU's threads get one: their frames would need per-thread memory for it).
"""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np

from optim.optimal_power import candidate_value_into, used_entries
from optim.twin import shared

CAPACITY = 16
"""Pricings a frame's memo keeps (a frame at ``N = K = 16`` makes about 10 to 15)."""

PowerMemo = namedtuple("PowerMemo", ["a", "v", "m", "n", "budget", "p", "val", "lev", "state"])
"""The last ``K`` pricings of a frame, each of at most ``W`` used entries: ``a``, ``v``
[K, W] float (``alpha``, ``nu``), ``m`` [K, W] int (modulation), ``n`` [K] int (entries),
``budget`` [K], ``p`` [K, W] (powers), ``val`` [K] (weighted error), ``lev`` [K]
(``ln lambda``); ``state`` [2] int: entries stored, next slot."""


@numba.njit(cache=True)
def new_memo(width: int, capacity: int = CAPACITY) -> PowerMemo:
    """An empty memo of ``capacity`` pricings of at most ``width`` used entries."""
    k = max(capacity, 0)
    w = max(width, 1)
    return PowerMemo(np.empty((k, w)), np.empty((k, w)), np.empty((k, w), np.int64),
                     np.zeros(k, np.int64), np.empty(k), np.empty((k, w)), np.empty(k),
                     np.empty(k), np.zeros(2, np.int64))  # fmt: skip


def no_memo(width: int) -> PowerMemo:
    """A memo that remembers nothing (capacity 0)."""
    return new_memo(width, 0)


@shared()
def memo_find(memo, a, v, mm, n, budget) -> int:
    """The slot of a stored pricing of the same ``n`` entries ``(a, v, mm)[:n]`` and
    ``budget`` (compared exactly), or -1."""
    for q in range(memo.state[0]):
        if memo.n[q] != n or memo.budget[q] != budget:
            continue
        same = True
        for j in range(n):
            if memo.a[q, j] != a[j] or memo.v[q, j] != v[j] or memo.m[q, j] != mm[j]:
                same = False
                break
        if same:
            return q
    return -1


@shared()
def memo_store(memo, a, v, mm, n, budget, p, val, lev) -> None:
    """Keep a pricing (powers ``p[:n]``), replacing the oldest when full; nothing when the
    memo has no room for ``n`` entries."""
    cap = memo.n.size
    if cap == 0 or n > memo.a.shape[1]:
        return
    q = memo.state[1]
    for j in range(n):
        memo.a[q, j] = a[j]
        memo.v[q, j] = v[j]
        memo.m[q, j] = mm[j]
        memo.p[q, j] = p[j]
    memo.n[q] = n
    memo.budget[q] = budget
    memo.val[q] = val
    memo.lev[q] = lev
    memo.state[1] = (q + 1) % cap
    if memo.state[0] < cap:
        memo.state[0] += 1


@shared()
def priced_into(memo, mod, a, v, mm, n, budget, p, gam, t, c, idx) -> tuple[float, float]:
    """:func:`optim.optimal_power.candidate_value_into` through the memo: the stored result
    of the same inputs (powers into ``p[:n]``), or the pricing, then stored."""
    q = memo_find(memo, a, v, mm, n, budget)
    if q >= 0:
        for j in range(n):
            p[j] = memo.p[q, j]
        return memo.val[q], memo.lev[q]
    val, lev = candidate_value_into(mod, a, v, mm, n, budget, p, gam, t, c, idx)
    memo_store(memo, a, v, mm, n, budget, p, val, lev)
    return val, lev


@shared()
def priced_row(memo, mod, alpha, nu, mods, n, budget, p_out, a, v, mm, idx, p, g, t, c,
               ci) -> float:  # fmt: skip
    """:func:`optim.optimal_power.optimal_power_row` through the memo (the same compaction of
    the used entries, ``mods >= 0``, and the same outputs)."""
    cnt = used_entries(alpha, nu, mods, n, p_out, a, v, mm, idx)
    if cnt == 0:
        return 0.0
    val, _ = priced_into(memo, mod, a, v, mm, cnt, budget, p, g, t, c, ci)
    for j in range(cnt):
        p_out[idx[j]] = p[j]
    return val
