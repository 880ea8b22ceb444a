"""Steepest-descent local search over (P0) allocations with SP4 re-solved for every move.

The hierarchical pipeline fixes SP1 (greedy matching) and SP3 (monotone patterns) before
SP4; its answer can be improved by moves that change the discrete choices *together with*
the power. From an allocation (features, subchannels, modulations), each round scores a
batch of neighbours, every one with its own closed-form water-filling power (or the equal
share when the power rule is ``equal``), evaluates (P0) under the problem's BER model, and
takes the best strict improvement; it stops when no neighbour improves (a local optimum) or
after ``max_iter`` rounds. Neighbourhoods (``steps``):

- ``modulation``: change the modulation of one feature; for pairs (all pairs while
  ``n <= max_pairs``) exchange their modulations or move one a level up and the other a
  level down (trading symbols when the budget is tight); all within ``S_max``:
  up to ``n (M - 1) + 3 n^2 / 2`` moves;
- ``matching``: swap the subchannels of two selected features (pairs as above), move one
  feature to the strongest unused subchannel, or re-match all of them by the Hungarian
  algorithm at the current powers: ``n^2/2 + n + 1``; with ``modulation`` also, exchange
  two features' whole slots (subchannel and modulation): ``n^2/2``;
- ``selection``: replace one selected feature (keeping its slot) by one of the
  ``swap_candidates`` unselected features with the largest drop cost ``w_u D_drop,u``, drop
  one, or add one of those candidates on the strongest unused subchannel with any modulation
  that fits: ``n (swap_candidates + 1) + swap_candidates M``; with ``modulation`` also, add
  one of them at the lowest order that fits after raising one selected feature's order by a
  level (when the budget binds, no single move can add a feature), while ``n <= raise_max``
  (where it is cheap): ``n swap_candidates``.

With per-feature bits ``Q_i`` a feature's symbols depend on the feature, so every move that
puts a different feature on a slot (replace, exchange of slots, add) is checked against the
budget with that feature's own counts ``S_i(m)`` (with equal ``Q`` these checks always pass).

Each round scores all neighbourhoods in one batch (small batches are dominated by per-call
overhead), or, with ``vnd=True``, the one-position moves first and the two-position ones only
when no one-position move improves (variable neighbourhood descent). After the best move,
the disjoint improving moves are also tried all at once. Each round costs one batched water-filling
over its neighbours, O(T n log n) for T neighbours. The objective never increases (moves are
accepted only when they improve it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from channels.theory import bound_coefficients
from optim.distortion import bit_error_rate, feature_terms
from optim.matching import hungarian_matching
from optim.optimal_power import optimal_power_batch
from optim.power import water_filling
from optim.problem import Problem

MOVES = ("modulation", "matching", "selection")


@dataclass
class Neighbourhood:
    """A batch of candidate allocations [T, n] (entries < 0 in ``pattern`` are unused)."""

    features: np.ndarray
    sub: np.ndarray
    pattern: np.ndarray
    a: np.ndarray | None = None  # [T] first rewritten position
    b: np.ndarray | None = None  # [T] second one (-1: none)


class _Moves:
    """Moves that rewrite up to two positions ``a``, ``b`` (``b = -1``: one position)."""

    def __init__(self, features: np.ndarray, sub: np.ndarray, pattern: np.ndarray) -> None:
        self.base = (features, sub, pattern)
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.full: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, a, fa, sa, ma, b=None, fb=None, sb=None, mb=None) -> None:  # noqa: ANN001
        f, s, p = self.base
        a = np.asarray(a, np.int64)
        if b is None:
            b = np.full(a.size, -1, np.int64)
            fb = sb = mb = np.zeros(a.size, np.int64)
        cols = (a, fa, sa, ma, b, fb, sb, mb)
        self.parts.append(tuple(c if np.ndim(c) else np.full(a.size, c, np.int64) for c in cols))

    def add_full(self, f: np.ndarray, s: np.ndarray, p: np.ndarray) -> None:
        """A move that may rewrite every position (e.g. a whole new matching)."""
        self.full.append((f, s, p))

    def build(self) -> Neighbourhood:
        f, s, p = self.base
        n = f.size
        if not self.parts:
            empty = np.zeros((0, n), dtype=np.int64)
            nb = Neighbourhood(empty, empty, empty, empty, empty)
        else:
            nb = self._build_parts()
        if self.full:  # whole rewrites go last, positions marked -2 (not combinable)
            extra = [np.stack(x) for x in zip(*self.full, strict=True)]
            minus = np.full(len(self.full), -2, np.int64)
            nb = Neighbourhood(
                np.concatenate([nb.features, extra[0]]),
                np.concatenate([nb.sub, extra[1]]),
                np.concatenate([nb.pattern, extra[2]]),
                np.concatenate([nb.a, minus]),
                np.concatenate([nb.b, minus]),
            )
        return nb

    def _build_parts(self) -> Neighbourhood:
        f, s, p = self.base
        a, fa, sa, ma, b, fb, sb, mb = (np.concatenate(c) for c in zip(*self.parts, strict=True))
        t = a.size
        rows = np.arange(t)
        out = [np.repeat(v[None, :], t, axis=0) for v in (f, s, p)]
        two = b >= 0
        for arr, va, vb in zip(out, (fa, sa, ma), (fb, sb, mb), strict=True):
            arr[rows, a] = va
            arr[rows[two], b[two]] = vb[two]
        return Neighbourhood(*out, a, b)


def _combine(
    nb: Neighbourhood,
    order: np.ndarray,
    features: np.ndarray,
    sub: np.ndarray,
    pattern: np.ndarray,
    symbols: np.ndarray,
    budget: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Apply several improving moves (best first) that touch disjoint positions and keep the
    allocation valid (distinct features and subchannels, symbol budget with the per-feature
    counts ``symbols[feature, m]``); None if < 2 fit."""
    f, s, p = features.copy(), sub.copy(), pattern.copy()
    used = np.zeros(f.size, dtype=bool)
    taken = 0
    for k in order:
        if nb.a[k] < 0:  # a whole rewrite: not combinable
            continue
        pos = [int(nb.a[k])] + ([int(nb.b[k])] if nb.b[k] >= 0 else [])
        if used[pos].any():
            continue
        trial = f.copy(), s.copy(), p.copy()
        for arr, src in zip(trial, (nb.features, nb.sub, nb.pattern), strict=True):
            arr[pos] = src[k, pos]
        keep = trial[2] >= 0
        if (
            np.unique(trial[0][keep]).size != keep.sum()
            or np.unique(trial[1][keep]).size != keep.sum()
            or symbols[trial[0][keep], trial[2][keep]].sum() > budget + 1e-9
        ):
            continue
        f, s, p = trial
        used[pos] = True
        taken += 1
    return (f, s, p) if taken > 1 else None


@lru_cache(maxsize=256)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(n, 1)``, cached (read-only)."""
    a, b = np.triu_indices(n, k=1)
    a.setflags(write=False)
    b.setflags(write=False)
    return a, b


def _neighbours(
    problem: Problem,
    features: np.ndarray,
    sub: np.ndarray,
    pattern: np.ndarray,
    drop_rank: np.ndarray,
    steps: tuple[str, ...],
    max_pairs: int,
    swap_candidates: int,
    level: int,
    power: np.ndarray,
    weighted_slope: np.ndarray,
    raise_max: int = 10,
) -> Neighbourhood:
    """Level 1: one-position moves; level 2: two-position and whole moves; level 0: all.

    The arrays carry one inactive slot at the end (``pattern = -1``) that "add" moves fill.
    """
    n = features.size - 1  # active positions 0..n-1
    m = len(problem.modulations)
    S = problem.symbol_table  # S[feature, m]: a move that changes a feature changes symbols
    slack = problem.symbol_budget + 1e-9 - S[features[:n], pattern[:n]].sum()
    moves = _Moves(features, sub, pattern)
    idx = np.arange(n)
    single = level in (0, 1)
    pairs = level in (0, 2) and 1 < n <= max_pairs
    a, b = _pairs(n) if pairs else (np.zeros(0, np.int64),) * 2
    if "modulation" in steps and m > 1:
        if single:
            j = np.repeat(idx, m - 1)
            new = (pattern[j] + np.tile(np.arange(1, m), n)) % m
            new = new.astype(np.int64)
            ok = S[features[j], new] - S[features[j], pattern[j]] <= slack
            moves.add(j[ok], features[j[ok]], sub[j[ok]], new[ok])
        if pairs:  # exchange two modulations, or trade one level between two features
            for da, db in ((None, None), (1, -1), (-1, 1)):
                if da is None:
                    ma, mb = pattern[b], pattern[a]
                    ok = ma != mb
                else:
                    ma, mb = pattern[a] + da, pattern[b] + db
                    ok = (ma >= 0) & (ma < m) & (mb >= 0) & (mb < m)
                    ma, mb = np.clip(ma, 0, m - 1), np.clip(mb, 0, m - 1)
                fa, fb = features[a], features[b]
                extra = S[fa, ma] - S[fa, pattern[a]] + S[fb, mb] - S[fb, pattern[b]]
                ok &= extra <= slack
                aa, bb = a[ok], b[ok]
                moves.add(aa, features[aa], sub[aa], ma[ok], bb, features[bb], sub[bb], mb[ok])
    if "matching" in steps:
        if level in (0, 2) and n > 1:  # Hungarian re-matching at the current powers, as one move
            esno = power[:n, None] * problem.gains[None, :] / problem.noise_power
            pb = bit_error_rate(problem, np.broadcast_to(pattern[:n, None], esno.shape), esno)
            new = hungarian_matching(weighted_slope[:n, None] * pb)
            if not np.array_equal(new, sub[:n]):
                moves.add_full(features, np.append(new, sub[n]), pattern)
        if pairs:  # swap two subchannels
            moves.add(a, features[a], sub[b], pattern[a], b, features[b], sub[a], pattern[b])
            if "modulation" in steps:  # exchange two features' whole slots
                fa, fb, ma, mb = features[a], features[b], pattern[a], pattern[b]
                ok = S[fb, ma] + S[fa, mb] - S[fa, ma] - S[fb, mb] <= slack  # per-feature Q
                aa, bb = a[ok], b[ok]
                moves.add(aa, features[bb], sub[aa], pattern[aa], bb, features[aa], sub[bb],
                          pattern[bb])  # fmt: skip
    free_mask = np.ones(problem.n_subchannels, dtype=bool)
    free_mask[sub[:n]] = False
    free = np.flatnonzero(free_mask)
    best_free = int(free[np.argmax(problem.gains[free])]) if free.size else -1
    if "matching" in steps and single and best_free >= 0:
        # move one feature to the strongest unused subchannel
        moves.add(idx, features[:n], best_free, pattern[:n])
    if "selection" in steps and single:
        chosen = np.zeros(problem.n_features, dtype=bool)
        chosen[features[:n]] = True
        ranked = drop_rank[~chosen[drop_rank]]  # unselected, by decreasing drop cost
        top = ranked[:swap_candidates]
        if top.size and n:  # replace a feature, keeping its slot (and its symbols, up to Q)
            j = np.repeat(idx, top.size)
            u = np.tile(top, n)
            ok = S[u, pattern[j]] - S[features[j], pattern[j]] <= slack
            moves.add(j[ok], u[ok], sub[j[ok]], pattern[j[ok]])
        if n:
            moves.add(idx, features[:n], sub[:n], -1)  # drop a feature
        if top.size and best_free >= 0:  # add a feature on the strongest free subchannel
            ui, mm = np.nonzero(S[top] <= slack)  # candidate-major, orders increasing
            u = top[ui]
            moves.add(np.full(u.size, n), u, best_free, mm)
    if "selection" in steps and "modulation" in steps and level in (0, 2) and 0 < n <= raise_max:
        # add a feature (lowest order that fits) while raising one feature's order a level
        # to make room: the symbol budget binds, so no single move adds one
        if top.size and best_free >= 0:
            up = np.flatnonzero(pattern[:n] < m - 1)
            fu = features[up]
            room = slack + S[fu, pattern[up]] - S[fu, pattern[up] + 1]  # [U]
            cand = S[top]  # [T, M]
            fits = cand[None, :, :] <= room[:, None, None]  # [U, T, M]
            lowest = np.argmax(fits, axis=2)  # first order that fits, per (raise, candidate)
            s_low = cand[np.arange(top.size)[None, :], lowest]  # [U, T]
            ok = (s_low <= room[:, None]) & (s_low > slack)  # only where the raise is needed
            ui, ti = np.nonzero(ok)  # raise-major, as one raise per candidate
            j, u, mm = up[ui], top[ti], lowest[ui, ti]
            moves.add(j, features[j], sub[j], pattern[j] + 1, np.full(j.size, n), u, best_free, mm)
    return moves.build()


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


def values_of(
    problem: Problem,
    features: np.ndarray,
    sub: np.ndarray,
    pattern: np.ndarray,
    power: np.ndarray,
    weights: np.ndarray,
) -> np.ndarray:
    """(P0) with ``weights`` of allocations [T, n] with given powers (``pattern < 0``: unused)."""
    terms = feature_terms(problem)
    mask = pattern >= 0
    pb = bit_error_rate(problem, pattern, problem.gains[sub] * power / problem.noise_power)
    wd = weights * terms.drop
    f = features
    sent = weights[f] * (terms.floor[f] + terms.slope[f] * pb) - wd[f]
    return float(wd.sum()) + np.where(mask, sent, 0.0).sum(axis=-1)


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
    rtol: float = 1e-6,
    vnd: bool = False,
    exact_top: int = 4,
    exact_first: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Improve an allocation by steepest descent; returns (features, sub, pattern, power, value).

    ``features``, ``sub``, ``pattern`` (modulation indices) are [n] arrays; the returned
    power is the rule's power for the returned choices; ``value`` is (P0) with ``weights``
    (default: the problem's) under the problem's BER model. A move is taken only when it
    lowers the value by more than ``rtol`` (relative), which bounds the number of rounds.

    Under the exact BER model the bound's water-filling power can misjudge a neighbour (the
    bound is loose for the QAMs at low SNR). So once the descent on water-filling powers stops,
    a second phase continues it with, each round, the ``exact_top`` best neighbours by that
    score getting their globally optimal power under the exact model
    (:func:`optim.optimal_power.optimal_power_batch`, Lemma 3 there) and compared on that basis
    (the rest are not taken). ``exact_top = 0`` skips the second phase; ``exact_first``
    skips the first (better on small problems, slower on large ones).
    """
    w = problem.weights if weights is None else np.asarray(weights, dtype=np.float64)
    terms = feature_terms(problem)
    drop_rank = np.argsort(-(w * terms.drop), kind="stable")
    weighted_slope = w * terms.slope
    features = np.asarray(features, np.int64)
    sub = np.asarray(sub, np.int64)
    pattern = np.asarray(pattern, np.int64)
    can_refine = problem.ber_model == "exact" and power != "equal" and exact_top > 0
    refine = can_refine and exact_first  # else descend on water-filling powers first

    def evaluate(f: np.ndarray, s: np.ndarray, pat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        values, powers = score_batch(problem, f, s, pat, w, power)
        if not refine:
            return values, powers
        top = np.argsort(values, kind="stable")[:exact_top]
        p_top, _ = optimal_power_batch(problem, f[top], s[top], pat[top], w)
        out = np.full(values.shape, np.inf)
        out[top] = values_of(problem, f[top], s[top], pat[top], p_top, w)
        powers = powers.copy()
        powers[top] = p_top
        return out, powers

    values, powers = evaluate(features[None], sub[None], pattern[None])
    value, p = float(values[0]), powers[0]
    if problem.n_subchannels == 0 or problem.n_features == 0:
        return features, sub, pattern, p, value

    def pad(x: np.ndarray, fill: int) -> np.ndarray:
        return np.append(x, fill).astype(x.dtype)

    features, sub, pattern, p = pad(features, 0), pad(sub, 0), pad(pattern, -1), pad(p, 0)
    level = 1 if vnd else 0
    for _ in range(max_iter):
        nb = _neighbours(
            problem,
            features,
            sub,
            pattern,
            drop_rank,
            steps,
            max_pairs,
            swap_candidates,
            level,
            p,
            weighted_slope[features],
        )
        improved = False
        if nb.pattern.shape[0]:
            values, powers = evaluate(nb.features, nb.sub, nb.pattern)
            k = int(np.argmin(values))
            improved = bool(values[k] < value * (1 - rtol))
        if not improved:
            if level == 1:
                level = 2  # variable neighbourhood descent: pairs only at a 1-move optimum
                continue
            if can_refine and not refine:  # second phase: compare on exact-refined powers
                refine = True
                values, powers = evaluate(features[None], sub[None], pattern[None])
                value, p = float(values[0]), powers[0]
                level = 1 if vnd else 0
                continue
            break
        level = 1 if vnd else 0
        f, s, pat, v, pw = nb.features[k], nb.sub[k], nb.pattern[k], float(values[k]), powers[k]
        better = np.flatnonzero(values < value * (1 - rtol))
        if better.size > 1:  # try all disjoint improving moves at once
            both = _combine(
                nb,
                better[np.argsort(values[better])],
                features,
                sub,
                pattern,
                problem.symbol_table,
                problem.symbol_budget,
            )
            if both is not None:
                vals, pws = evaluate(*(x[None] for x in both))
                if vals[0] < v:
                    (f, s, pat), v, pw = both, float(vals[0]), pws[0]
        keep = pat >= 0
        features, sub, pattern = pad(f[keep], 0), pad(s[keep], 0), pad(pat[keep], -1)
        value, p = v, pad(pw[keep], 0)
    return features[:-1], sub[:-1], pattern[:-1], p[:-1], value
