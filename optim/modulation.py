"""SP3: modulation selection via the ordered prior (docs/method.md §5.4).

Modulations are indexed ``0..M-1`` in increasing bits per symbol ``beta`` (a problem's
``modulations`` are stored that way), so they need non-increasing symbol counts
``S[0] >= S[1] >= ... >= S[M-1]`` per feature. A *pattern* for the prefix of ``n`` ranked
features is an int array ``m[n]`` of modulation indices; it is *monotone* when a more
important feature never gets a higher order than a less important one::

    m[0] <= m[1] <= ... <= m[n-1]

and *admissible* when it fits the symbol budget, ``sum_j S[m[j]] <= S_max``. A monotone
pattern is fixed by its counts per modulation (``M - 1`` cut points), so there are
``C(n + M - 1, M - 1)`` of them (O(n^3) for four schemes) instead of ``M^n``.

Enumerators and the polynomial variants for large ``n``:

- :func:`monotone_patterns`: all admissible monotone patterns (the paper's SP3);
- :func:`greedy_pattern`: start all at the lowest order and upgrade the least important
  feature while the budget is violated (the cheap option of docs/method.md §5.4);
- :func:`two_level_patterns`: for every pair of modulations ``a < b`` the admissible pattern
  ``a...a b...b`` with the longest head at ``a`` (plus the uniform patterns): at most
  ``M (M + 1) / 2`` per ``n``, the extreme points of the budget frontier;
- :func:`fast_patterns`: the two-level patterns and the greedy one, built from per-modulation
  counts in O(M^2) (the polynomial variant's per-``n`` candidates);
- :func:`lagrangian_pattern`: cost-aware; given an estimate ``cost[j, m]`` of each feature's
  weighted error under each modulation, minimise ``sum_j cost[j, m_j] + mu sum_j S[m_j]``
  per feature, with the multiplier ``mu`` found by bisection so the budget holds, then made
  monotone; O(n M log(1/eps)).
- :func:`assign_modulations`: the same Lagrangian relaxation without the monotone constraint,
  followed by a greedy fill of the remaining slack; used by the SP3 <-> SP4 refinement.

Per-feature symbol counts. With per-feature bits ``Q_i`` (:class:`optim.problem.Problem`) the
symbols depend on the feature: every function takes ``symbols`` either as ``S[m]`` ([M], the
same for all features) or as a table ``S[j, m]`` ([n, M], row ``j`` for the ``j``-th feature
of the prefix or of ``cost``; each row non-increasing). The monotone patterns stay a
restriction of the ordered prior (a heuristic, not a proof: with equal ``Q`` it is the
paper's SP3; with unequal ``Q`` a less important feature may be cheaper to protect), and only
the budget check changes: a pattern fits when ``sum_j S[j, m_j] <= S_max``. So
:func:`monotone_patterns` enumerates every monotone pattern and keeps those that fit (no
counting shortcut: it is exact for tables too); :func:`greedy_pattern` upgrades from the least
important feature, each by its own savings; :func:`two_level_patterns` takes the largest head
whose per-feature total fits (the total is non-decreasing in the head length, so a cumulative
sum finds it); the Lagrangian functions price ``S[j, m]`` per row.

Examples:
    >>> import numpy as np
    >>> S = np.array([512, 256, 128, 86])
    >>> monotone_patterns(2, S, 512).tolist()
    [[3, 3], [2, 3], [2, 2], [1, 3], [1, 2], [1, 1]]
    >>> greedy_pattern(3, S, 600).tolist()
    [1, 3, 3]
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations_with_replacement
from math import comb, inf

import numpy as np


def count_monotone_patterns(n: int, n_modulations: int) -> int:
    """``C(n + M - 1, M - 1)``: the number of monotone patterns before the budget check."""
    return comb(n + n_modulations - 1, n_modulations - 1)


def pattern_symbols(patterns: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Total symbols ``sum_j S[m_j]`` (or ``sum_j S[j, m_j]`` for a table) of patterns
    [..., n] -> [...]."""
    symbols = np.asarray(symbols)
    patterns = np.asarray(patterns)
    if symbols.ndim == 2:
        n = patterns.shape[-1]
        return symbols[np.arange(n), patterns].sum(axis=-1)
    return symbols[patterns].sum(axis=-1)


def symbol_rows(symbols: np.ndarray, n: int) -> np.ndarray:
    """``S[j, m]`` for ``j < n`` as float64 [n, M]: a 1-D ``S[m]`` repeated, or a table's
    first ``n`` rows."""
    symbols = np.asarray(symbols, dtype=np.float64)
    if symbols.ndim == 1:
        return np.broadcast_to(symbols, (n, symbols.size))
    return symbols[:n]


def is_monotone(pattern: np.ndarray) -> bool:
    """True when the pattern is non-decreasing along its last axis."""
    pattern = np.asarray(pattern)
    return bool(np.all(np.diff(pattern, axis=-1) >= 0))


@lru_cache(maxsize=4096)
def _patterns_cached(n: int, symbols: tuple[int, ...], s_max: float) -> np.ndarray:
    m = len(symbols)
    if n == 0:
        out = np.zeros((1, 0), dtype=np.int64)
        out.setflags(write=False)
        return out
    combos = list(combinations_with_replacement(range(n + 1), m - 1))
    cuts = np.array(combos, dtype=np.int64).reshape(len(combos), m - 1)
    bounds = np.concatenate(
        [np.zeros((cuts.shape[0], 1), np.int64), cuts, np.full((cuts.shape[0], 1), n)], axis=1
    )
    counts = np.diff(bounds, axis=1)  # [P, M] features per modulation
    keep = counts @ np.asarray(symbols, dtype=np.float64) <= s_max + 1e-9
    cuts = cuts[keep]
    pattern = (np.arange(n)[None, :, None] >= cuts[:, None, :]).sum(axis=-1).astype(np.int64)
    pattern.setflags(write=False)
    return pattern


def monotone_patterns(n: int, symbols: np.ndarray, s_max: float) -> np.ndarray:
    """All admissible monotone patterns for a prefix of ``n``: int64 [P, n] (P may be 0).

    ``symbols``: ``S[m]`` [M], or a table ``S[j, m]`` (at least ``n`` rows; module docstring).
    Rows are in lexicographic order of the cut points; read-only (cached for ``S[m]``).
    """
    symbols = np.asarray(symbols)
    if symbols.ndim == 1:
        return _patterns_cached(int(n), tuple(int(s) for s in symbols), float(s_max))
    every = _patterns_cached(int(n), (0,) * symbols.shape[1], inf)
    keep = pattern_symbols(every, symbols[:n]) <= s_max + 1e-9
    out = every[keep]
    out.setflags(write=False)
    return out


def patterns_from_counts(counts: np.ndarray, n: int) -> np.ndarray:
    """Monotone patterns [P, n] from per-modulation counts [P, M] (each row sums to ``n``)."""
    counts = np.asarray(counts, dtype=np.int64).reshape(-1, np.shape(counts)[-1])
    cuts = np.cumsum(counts, axis=1)[:, :-1]  # [P, M-1]
    return (np.arange(n)[None, :, None] >= cuts[:, None, :]).sum(axis=-1).astype(np.int64)


def greedy_counts(n: int, symbols: np.ndarray, s_max: float) -> np.ndarray | None:
    """Per-modulation counts [M] of :func:`greedy_pattern`, in O(M) (``None`` if none fits)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    m = symbols.size
    counts = np.zeros(m, dtype=np.int64)
    if n * symbols[-1] > s_max + 1e-9:
        return None
    excess = n * int(symbols[0]) - s_max
    if excess <= 1e-9 or n == 0 or m == 1:
        counts[0] = n
        return counts
    full = int(symbols[0] - symbols[-1])  # saved by moving one feature to the top order
    tail = max(0, int(np.ceil(excess / full - 1e-12)) - 1)  # features fully upgraded
    rest = excess - tail * full  # in (0, full]
    k = int(np.flatnonzero(symbols[0] - symbols >= rest - 1e-9)[0])  # level of the next one
    counts[m - 1] += tail
    counts[k] += 1
    counts[0] += n - tail - 1
    return counts


def greedy_pattern(n: int, symbols: np.ndarray, s_max: float) -> np.ndarray | None:
    """All at the lowest order, then upgrade the least important non-top feature until it fits.

    Returns the monotone pattern [n] (``None`` when even all-highest does not fit). The result
    has a head at the lowest order, at most one feature in between, and a tail at the highest.
    ``symbols``: ``S[m]`` or a table ``S[j, m]`` (module docstring).
    """
    if np.ndim(symbols) == 2:
        return _greedy_table(n, symbol_rows(symbols, n), s_max)
    counts = greedy_counts(n, symbols, s_max)
    return None if counts is None else patterns_from_counts(counts, n)[0]


def _greedy_table(n: int, table: np.ndarray, s_max: float) -> np.ndarray | None:
    """:func:`greedy_pattern` with per-feature symbols ``table`` [n, M]: the tail features go
    to the highest order one by one (each saving ``S[j, 0] - S[j, M-1]``) until the budget
    holds; the last one moved takes the lowest order that suffices."""
    m = table.shape[1]
    if table[:, -1].sum() > s_max + 1e-9:
        return None
    pattern = np.zeros(n, dtype=np.int64)
    excess = table[:, 0].sum() - s_max
    if excess <= 1e-9 or n == 0 or m == 1:
        return pattern
    for j in range(n - 1, -1, -1):
        saved = table[j, 0] - table[j]  # [M], non-decreasing
        if saved[-1] >= excess - 1e-9:
            pattern[j] = int(np.flatnonzero(saved >= excess - 1e-9)[0])
            return pattern
        pattern[j] = m - 1
        excess -= saved[-1]
    return pattern  # not reached: all-highest fits


def two_level_counts(n: int, symbols: np.ndarray, s_max: float) -> np.ndarray:
    """Per-modulation counts [P, M] of :func:`two_level_patterns` (distinct rows)."""
    symbols = np.asarray(symbols, dtype=np.int64)
    m = symbols.size
    rows: dict[tuple[int, ...], None] = {}
    for a in range(m):
        if n * symbols[a] <= s_max + 1e-9:
            row = [0] * m
            row[a] = n
            rows[tuple(row)] = None
            continue
        for b in range(a + 1, m):
            if n * symbols[b] > s_max + 1e-9:
                continue
            h = int(np.floor((s_max - n * symbols[b]) / (symbols[a] - symbols[b]) + 1e-9))
            h = min(max(h, 0), n)
            row = [0] * m
            row[a] += h
            row[b] += n - h
            rows[tuple(row)] = None
    return np.array(list(rows), dtype=np.int64).reshape(len(rows), m)


def two_level_patterns(n: int, symbols: np.ndarray, s_max: float) -> np.ndarray:
    """Admissible patterns ``a^h b^(n-h)`` (``a < b``) with the largest head ``h``, plus uniform.

    int64 [P, n], ``P <= M (M + 1) / 2``, distinct rows. The budget frontier's extreme points:
    O(1) candidates per ``n`` for the polynomial search at large ``n``. ``symbols``: ``S[m]``
    or a table ``S[j, m]`` (module docstring).
    """
    if np.ndim(symbols) == 2:
        return _two_level_table(n, symbol_rows(symbols, n), s_max)
    return patterns_from_counts(two_level_counts(n, symbols, s_max), n)


def _two_level_table(n: int, table: np.ndarray, s_max: float) -> np.ndarray:
    """:func:`two_level_patterns` for per-feature symbols ``table`` [n, M]. The total of
    ``a^h b^(n-h)`` is ``sum_{j<h} S[j, a] + sum_{j>=h} S[j, b]``, non-decreasing in ``h``
    (``S[j, a] >= S[j, b]``), so the largest admissible ``h`` is a count."""
    m = table.shape[1]
    total = table.sum(axis=0)
    rows: dict[tuple[int, ...], None] = {}
    for a in range(m):
        if total[a] <= s_max + 1e-9:
            rows[(a,) * n] = None
            continue
        head = np.concatenate([[0.0], np.cumsum(table[:, a])])  # sum_{j<h} S[j, a]
        for b in range(a + 1, m):
            if total[b] > s_max + 1e-9:
                continue
            tail = total[b] - np.concatenate([[0.0], np.cumsum(table[:, b])])
            h = int(np.count_nonzero(head + tail <= s_max + 1e-9)) - 1
            rows[(a,) * h + (b,) * (n - h)] = None
    return np.array(list(rows), dtype=np.int64).reshape(len(rows), n)


def fast_patterns(n: int, symbols: np.ndarray, s_max: float) -> np.ndarray:
    """The polynomial variant's candidates for ``n``: two-level patterns and the greedy one."""
    if np.ndim(symbols) == 2:
        pats = two_level_patterns(n, symbols, s_max)
        g = greedy_pattern(n, symbols, s_max)
        if g is not None and not np.any(np.all(pats == g, axis=1)):
            pats = np.vstack([pats, g[None, :]])
        return pats
    counts = two_level_counts(n, symbols, s_max)
    g = greedy_counts(n, symbols, s_max)
    if g is not None and not np.any(np.all(counts == g, axis=1)):
        counts = np.vstack([counts, g[None, :]])
    return patterns_from_counts(counts, n)


def _lagrangian_choice(
    cost: np.ndarray, symbols: np.ndarray, s_max: float, iters: int = 60
) -> np.ndarray | None:
    """Per-row argmin of ``cost[j, m] + mu S[j, m]`` for the smallest ``mu`` that fits
    (``symbols``: ``S[m]`` or a table ``S[j, m]``)."""
    n, m = cost.shape
    table = np.ascontiguousarray(symbol_rows(symbols, n))
    rows = np.arange(n)
    if table.min(axis=1, initial=np.inf).sum() > s_max + 1e-9 and n:
        return None
    choice = np.argmin(cost, axis=1)
    if table[rows, choice].sum() <= s_max + 1e-9:
        return choice
    spread = float(np.ptp(cost)) if cost.size else 0.0
    rows = np.unique(table, axis=0)  # one row unless Q is per feature
    gap = min((float(np.min(np.diff(np.unique(r)), initial=1.0)) for r in rows), default=1.0)
    lo, hi = 0.0, (spread + 1.0) / max(gap, 1e-12) * 2.0 + 1.0
    from optim.kernels import lagrangian_rows

    best = np.argmin(table, axis=1).astype(np.int64)
    return lagrangian_rows(np.ascontiguousarray(cost), table, float(s_max), lo, hi, iters, best)


def _fill_slack(
    choice: np.ndarray, cost: np.ndarray, symbols: np.ndarray, s_max: float, monotone: bool
) -> np.ndarray:
    """Greedy single-feature changes that lower the cost and still fit (best gain first)."""
    choice = choice.copy()
    rows = np.arange(choice.size)
    table = symbol_rows(symbols, choice.size)
    m = cost.shape[1]
    for _ in range(4 * choice.size * m + 1):
        used = table[rows, choice]
        slack = s_max - used.sum()
        delta = cost - cost[rows, choice][:, None]  # gain < 0 is an improvement
        extra = table - used[:, None]
        ok = (delta < 0) & (extra <= slack + 1e-9)
        if monotone and choice.size:
            left = np.concatenate([[0], choice[:-1]])
            right = np.concatenate([choice[1:], [m - 1]])
            idx = np.arange(m)[None, :]
            ok &= (idx >= left[:, None]) & (idx <= right[:, None])
        if not ok.any():
            break
        j, k = np.unravel_index(np.argmin(np.where(ok, delta, 0.0)), delta.shape)
        choice[j] = k
    return choice


def lagrangian_pattern(
    cost: np.ndarray, symbols: np.ndarray, s_max: float, iters: int = 60
) -> np.ndarray | None:
    """Cost-aware monotone pattern [n] for estimated ``cost[n, M]`` (``None`` if none fits).

    Lagrangian relaxation of the budget, then the running maximum along the ranking (which
    only raises orders, so the budget still holds: every row of ``S`` is non-increasing), then
    a monotone greedy fill of the slack. ``symbols``: ``S[m]`` or a table ``S[j, m]``.
    """
    cost = np.asarray(cost, dtype=np.float64)
    choice = _lagrangian_choice(cost, symbols, s_max, iters)
    if choice is None:
        return None
    choice = np.maximum.accumulate(choice) if choice.size else choice
    return _fill_slack(choice, cost, symbols, s_max, monotone=True)


def assign_modulations(
    cost: np.ndarray, symbols: np.ndarray, s_max: float, iters: int = 60
) -> np.ndarray | None:
    """Heuristic minimiser of ``sum_j cost[j, m_j]`` s.t. ``sum_j S[m_j] <= S_max`` (any order).

    The multiple-choice knapsack behind SP3 with powers fixed: Lagrangian relaxation plus a
    greedy fill of the slack. ``None`` when nothing fits. ``symbols``: ``S[m]`` or a table
    ``S[j, m]`` (row ``j`` for ``cost[j]``).
    """
    cost = np.asarray(cost, dtype=np.float64)
    choice = _lagrangian_choice(cost, symbols, s_max, iters)
    if choice is None:
        return None
    return _fill_slack(choice, cost, symbols, s_max, monotone=False)
