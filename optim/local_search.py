"""Steepest-descent local search over (P0) allocations with SP4 re-solved for every move.

The hierarchical pipeline fixes SP1 (greedy matching) and SP3 (monotone patterns) before
SP4; its answer can be improved by moves that change the discrete choices *together with*
the power. From an allocation (features, subchannels, modulations), each round scores a
batch of neighbours, every one with its own closed-form water-filling power (or the equal
share when the power rule is ``equal``), evaluates (P0) under the problem's BER model, and
takes the best strict improvement; it stops when no neighbour improves (a local optimum) or
after ``max_iter`` rounds. Neighbourhoods (``steps``):

- ``modulation``: change the modulation of one feature, or of two at once (all pairs while
  ``n <= max_pairs``), within ``S_max``: up to ``n (M - 1) + n^2 (M - 1)^2 / 2`` moves (the
  pairs trade symbols between features when the budget is tight);
- ``matching``: swap the subchannels of two selected features (pairs as above), or move one
  feature to the strongest unused subchannel: ``n^2/2 + n``; with ``modulation`` also,
  exchange two features' whole slots (subchannel and modulation): ``n^2/2``;
- ``selection``: replace one selected feature (keeping its slot) by one of the
  ``swap_candidates`` unselected features with the largest drop cost ``w_u D_drop,u``, or
  drop it: ``n (swap_candidates + 1)``.

Each round costs one batched water-filling over all neighbours, O(T n log n) for T
neighbours. The objective never increases (moves are accepted only when they improve it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from channels.theory import bound_coefficients
from optim.distortion import bit_error_rate, feature_terms
from optim.power import water_filling
from optim.problem import Problem

MOVES = ("modulation", "matching", "selection")


@dataclass
class Neighbourhood:
    """A batch of candidate allocations [T, n] (entries < 0 in ``pattern`` are unused)."""

    features: np.ndarray
    sub: np.ndarray
    pattern: np.ndarray


def _neighbours(
    problem: Problem,
    features: np.ndarray,
    sub: np.ndarray,
    pattern: np.ndarray,
    drop_cost: np.ndarray,
    steps: tuple[str, ...],
    max_pairs: int,
    swap_candidates: int,
) -> Neighbourhood:
    n = features.size
    m = len(problem.modulations)
    feats, subs, pats = [], [], []

    def add(f: np.ndarray, s: np.ndarray, p: np.ndarray) -> None:
        feats.append(f)
        subs.append(s)
        pats.append(p)

    if "modulation" in steps and m > 1:
        j = np.repeat(np.arange(n), m - 1)
        new = (pattern[j] + np.tile(np.arange(1, m), n)) % m
        p = np.tile(pattern, (j.size, 1))
        p[np.arange(j.size), j] = new
        used = problem.symbols_per_feature[p].sum(axis=1)
        keep = used <= problem.symbol_budget + 1e-9
        add(np.tile(features, (int(keep.sum()), 1)), np.tile(sub, (int(keep.sum()), 1)), p[keep])
        if 1 < n <= max_pairs:  # change two features' modulations at once (within S_max)
            a, b = np.triu_indices(n, k=1)
            shift = np.arange(1, m)
            da, db = np.repeat(shift, m - 1), np.tile(shift, m - 1)
            a, b = np.repeat(a, da.size), np.repeat(b, da.size)
            da, db = np.tile(da, a.size // da.size), np.tile(db, a.size // db.size)
            p = np.tile(pattern, (a.size, 1))
            rows = np.arange(a.size)
            p[rows, a] = (pattern[a] + da) % m
            p[rows, b] = (pattern[b] + db) % m
            keep = problem.symbols_per_feature[p].sum(axis=1) <= problem.symbol_budget + 1e-9
            k = int(keep.sum())
            add(np.tile(features, (k, 1)), np.tile(sub, (k, 1)), p[keep])
    if "matching" in steps and "modulation" in steps and 1 < n <= max_pairs:
        # exchange two features' slots (subchannel and modulation together)
        a, b = np.triu_indices(n, k=1)
        f = np.tile(features, (a.size, 1))
        rows = np.arange(a.size)
        f[rows, a], f[rows, b] = features[b], features[a]
        add(f, np.tile(sub, (a.size, 1)), np.tile(pattern, (a.size, 1)))
    if "matching" in steps:
        if 1 < n <= max_pairs:
            a, b = np.triu_indices(n, k=1)
            s = np.tile(sub, (a.size, 1))
            rows = np.arange(a.size)
            s[rows, a], s[rows, b] = sub[b], sub[a]
            add(np.tile(features, (a.size, 1)), s, np.tile(pattern, (a.size, 1)))
        free = np.setdiff1d(np.arange(problem.n_subchannels), sub)
        if free.size:
            best_free = free[np.argmax(problem.gains[free])]
            s = np.tile(sub, (n, 1))
            s[np.arange(n), np.arange(n)] = best_free
            add(np.tile(features, (n, 1)), s, np.tile(pattern, (n, 1)))
    if "selection" in steps:
        others = np.setdiff1d(np.arange(problem.n_features), features)
        if others.size and swap_candidates > 0:
            top = others[np.argsort(-drop_cost[others], kind="stable")[:swap_candidates]]
            j = np.repeat(np.arange(n), top.size)
            f = np.tile(features, (j.size, 1))
            f[np.arange(j.size), j] = np.tile(top, n)
            add(f, np.tile(sub, (j.size, 1)), np.tile(pattern, (j.size, 1)))
        p = np.tile(pattern, (n, 1))
        p[np.arange(n), np.arange(n)] = -1  # drop feature j
        add(np.tile(features, (n, 1)), np.tile(sub, (n, 1)), p)
    if not feats:
        empty = np.zeros((0, n), dtype=np.int64)
        return Neighbourhood(empty, empty, empty)
    return Neighbourhood(np.concatenate(feats), np.concatenate(subs), np.concatenate(pats))


def score_batch(
    problem: Problem,
    features: np.ndarray,
    sub: np.ndarray,
    pattern: np.ndarray,
    weights: np.ndarray,
    power: str = "closed-form",
) -> tuple[np.ndarray, np.ndarray]:
    """(values [T], powers [T, n]) of allocations given as [T, n] arrays.

    Entries with ``pattern < 0`` are not sent. Power per row: water-filling of the bound
    (``closed-form`` / ``bisection``) or ``equal`` shares; values are (P0) with ``weights``
    under the problem's BER model.
    """
    terms = feature_terms(problem)
    coef = np.array([bound_coefficients(m) for m in problem.modulations])
    mask = pattern >= 0
    safe = np.where(mask, pattern, 0)
    rate = problem.gains[sub] / problem.noise_power
    ws = weights[features] * terms.slope[features]
    if power == "equal":
        count = np.maximum(mask.sum(axis=1), 1)
        p = np.where(mask, (problem.power_budget / count)[:, None], 0.0)
    else:
        alpha = np.where(mask, ws * coef[safe, 0], 0.0)
        p = water_filling(alpha, coef[safe, 1] * rate, problem.power_budget, method=power)
    pb = bit_error_rate(problem, pattern, rate * p)
    wd = weights * terms.drop
    sent = np.where(mask, weights[features] * terms.floor[features] + ws * pb - wd[features], 0.0)
    return float(wd.sum()) + sent.sum(axis=1), p


def local_search(
    problem: Problem,
    features: np.ndarray,
    sub: np.ndarray,
    pattern: np.ndarray,
    weights: np.ndarray | None = None,
    power: str = "closed-form",
    steps: tuple[str, ...] = MOVES,
    max_iter: int = 50,
    max_pairs: int = 24,
    swap_candidates: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Improve an allocation by steepest descent; returns (features, sub, pattern, power, value).

    ``features``, ``sub``, ``pattern`` (modulation indices) are [n] arrays; the returned
    power is the rule's power for the returned choices; ``value`` is (P0) with ``weights``
    (default: the problem's) under the problem's BER model.
    """
    w = problem.weights if weights is None else np.asarray(weights, dtype=np.float64)
    drop_cost = w * feature_terms(problem).drop
    features = np.asarray(features, np.int64)
    sub = np.asarray(sub, np.int64)
    pattern = np.asarray(pattern, np.int64)
    values, powers = score_batch(problem, features[None], sub[None], pattern[None], w, power)
    value, p = float(values[0]), powers[0]
    for _ in range(max_iter):
        if features.size == 0:
            break
        nb = _neighbours(
            problem, features, sub, pattern, drop_cost, steps, max_pairs, swap_candidates
        )
        if nb.pattern.shape[0] == 0:
            break
        values, powers = score_batch(problem, nb.features, nb.sub, nb.pattern, w, power)
        k = int(np.argmin(values))
        if not values[k] < value * (1 - 1e-12):
            break
        keep = nb.pattern[k] >= 0
        features, sub, pattern = nb.features[k][keep], nb.sub[k][keep], nb.pattern[k][keep]
        value, p = float(values[k]), powers[k][keep]
    return features, sub, pattern, p, value
