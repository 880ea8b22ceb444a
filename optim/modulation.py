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
from math import comb

import numpy as np


def count_monotone_patterns(n: int, n_modulations: int) -> int:
    """``C(n + M - 1, M - 1)``: the number of monotone patterns before the budget check."""
    return comb(n + n_modulations - 1, n_modulations - 1)


def pattern_symbols(patterns: np.ndarray, symbols: np.ndarray) -> np.ndarray:
    """Total symbols ``sum_j S[m_j]`` of patterns [..., n] -> [...]."""
    return np.asarray(symbols)[np.asarray(patterns)].sum(axis=-1)


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

    Rows are in lexicographic order of the cut points; the result is read-only and cached.
    """
    return _patterns_cached(int(n), tuple(int(s) for s in symbols), float(s_max))


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
    """
    counts = greedy_counts(n, symbols, s_max)
    return None if counts is None else patterns_from_counts(counts, n)[0]


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
    O(1) candidates per ``n`` for the polynomial search at large ``n``.
    """
    return patterns_from_counts(two_level_counts(n, symbols, s_max), n)


def fast_patterns(n: int, symbols: np.ndarray, s_max: float) -> np.ndarray:
    """The polynomial variant's candidates for ``n``: two-level patterns and the greedy one."""
    counts = two_level_counts(n, symbols, s_max)
    g = greedy_counts(n, symbols, s_max)
    if g is not None and not np.any(np.all(counts == g, axis=1)):
        counts = np.vstack([counts, g[None, :]])
    return patterns_from_counts(counts, n)


def _lagrangian_choice(
    cost: np.ndarray, symbols: np.ndarray, s_max: float, iters: int = 60
) -> np.ndarray | None:
    """Per-row argmin of ``cost[j, m] + mu S[m]`` for the smallest ``mu`` that fits."""
    n, m = cost.shape
    symbols = np.asarray(symbols, dtype=np.float64)
    if n * symbols.min() > s_max + 1e-9:
        return None
    choice = np.argmin(cost, axis=1)
    if symbols[choice].sum() <= s_max + 1e-9:
        return choice
    spread = float(np.ptp(cost)) if cost.size else 0.0
    gap = float(np.min(np.diff(np.sort(np.unique(symbols))), initial=1.0))
    lo, hi = 0.0, (spread + 1.0) / max(gap, 1e-12) * 2.0 + 1.0
    from optim.kernels import lagrangian_rows

    best = np.full(n, int(np.argmin(symbols)), dtype=np.int64)
    return lagrangian_rows(np.ascontiguousarray(cost), symbols, float(s_max), lo, hi, iters, best)


def _fill_slack(
    choice: np.ndarray, cost: np.ndarray, symbols: np.ndarray, s_max: float, monotone: bool
) -> np.ndarray:
    """Greedy single-feature changes that lower the cost and still fit (best gain first)."""
    symbols = np.asarray(symbols, dtype=np.float64)
    choice = choice.copy()
    rows = np.arange(choice.size)
    for _ in range(4 * choice.size * symbols.size + 1):
        slack = s_max - symbols[choice].sum()
        delta = cost - cost[rows, choice][:, None]  # gain < 0 is an improvement
        extra = symbols[None, :] - symbols[choice][:, None]
        ok = (delta < 0) & (extra <= slack + 1e-9)
        if monotone and choice.size:
            left = np.concatenate([[0], choice[:-1]])
            right = np.concatenate([choice[1:], [symbols.size - 1]])
            idx = np.arange(symbols.size)[None, :]
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
    only raises orders, so the budget still holds), then a monotone greedy fill of the slack.
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
    greedy fill of the slack. ``None`` when nothing fits.
    """
    cost = np.asarray(cost, dtype=np.float64)
    choice = _lagrangian_choice(cost, symbols, s_max, iters)
    if choice is None:
        return None
    return _fill_slack(choice, cost, symbols, s_max, monotone=False)
