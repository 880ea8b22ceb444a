"""SP2: feature selection via the ordered prior (docs/method.md §5.4).

Features are ranked by importance (ISFR: the natural index; baselines: sorted by ``w_i``).
Only prefixes of the ranking are candidates: ``{r_0, ..., r_{n-1}}``, ``n in 0..n_max``, with
``n_max = min(N, K, floor(S_max / S_min))`` (``S_min`` = symbols of the highest-order
modulation), beyond which no modulation pattern fits (with per-feature ``Q``: the largest
prefix whose features' ``S_min,i`` sum to at most ``S_max``). This cuts ``2^N`` subsets to
``n_max + 1`` and matches nested-dropout training (the decoder has learned "first n present").

:func:`select_prefix` searches ``n`` by 1-D enumeration, optionally stopping once the
objective has risen ``patience`` times in a row (``early_stop``; a heuristic, off by default).

Examples:
    >>> values = {0: 5.0, 1: 3.0, 2: 2.0, 3: 2.5, 4: 2.7, 5: 1.0}
    >>> select_prefix(values.__getitem__, 5).best_n
    5
    >>> r = select_prefix(values.__getitem__, 5, early_stop=True)
    >>> r.best_n, r.evaluated
    (2, 5)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from optim.problem import Problem


def priority_order(weights: np.ndarray, ordered_prior: bool = True) -> np.ndarray:
    """Feature ranking [N]: the natural index (``ordered_prior``) or by decreasing weight.

    Sorting is stable, so equal weights keep their natural order.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if ordered_prior:
        return np.arange(weights.size, dtype=np.int64)
    return np.lexsort((np.arange(weights.size), -weights)).astype(np.int64)


def max_selectable(problem: Problem, order: np.ndarray | None = None) -> int:
    """``n_max = min(N, K, floor(S_max / S_min))``: the largest prefix some pattern fits.

    With per-feature ``Q`` (``S_min,i`` = symbols of feature ``i`` at the highest order) it is
    the largest ``n <= min(N, K)`` with ``sum_{j<n} S_min,order[j] <= S_max`` for the ranking
    ``order`` (default: the features by increasing ``S_min,i``, i.e. the most features any
    selection can send).
    """
    if problem.uniform_bits:
        if problem.n_features == 0:
            return 0
        s_min = int(problem.symbols_per_feature.min())
        fit = int(np.floor(problem.symbol_budget / s_min + 1e-12))
        return max(0, min(problem.n_features, problem.n_subchannels, fit))
    s_min = problem.symbol_table.min(axis=1)
    s_min = np.sort(s_min) if order is None else s_min[np.asarray(order, dtype=np.int64)]
    fit = int(np.count_nonzero(np.cumsum(s_min) <= problem.symbol_budget + 1e-9))
    return max(0, min(problem.n_features, problem.n_subchannels, fit))


def prefix_candidates(problem: Problem, order: np.ndarray | None = None) -> range:
    """Candidate prefix lengths ``0..n_max`` (``order`` as in :func:`max_selectable`)."""
    return range(max_selectable(problem, order) + 1)


@dataclass(frozen=True)
class PrefixSearch:
    """Result of :func:`select_prefix`: best length, its value, and how many were evaluated."""

    best_n: int
    best_value: float
    values: np.ndarray
    """float64 [n_max + 1]; ``inf`` for lengths not evaluated (after an early stop)."""
    evaluated: int


def select_prefix(
    evaluate: Callable[[int], float],
    n_max: int,
    early_stop: bool = False,
    patience: int = 2,
) -> PrefixSearch:
    """Minimise ``evaluate(n)`` over ``n = 0..n_max`` (ties: the smallest ``n``).

    With ``early_stop``, stop after ``patience`` consecutive increases of the value.
    """
    values = np.full(n_max + 1, np.inf)
    rises = 0
    evaluated = 0
    for n in range(n_max + 1):
        values[n] = float(evaluate(n))
        evaluated += 1
        if n > 0 and values[n] > values[n - 1]:
            rises += 1
        else:
            rises = 0
        if early_stop and rises >= patience:
            break
    best = int(np.argmin(values))
    return PrefixSearch(best, float(values[best]), values, evaluated)
