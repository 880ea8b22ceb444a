"""The hierarchical decoupling solver of (P0): SP1-SP4 composed (docs/method.md §5.4).

Features are ranked (``ordered_prior=True``: natural index, the ISFR assumption; ``False``:
by decreasing weight, the passive baseline). Then:

1. SP1, once per channel draw: rank ``j`` gets the ``j``-th strongest subchannel
   (:func:`optim.matching.greedy_matching`; or random, or Hungarian-improved, see below).
2. SP2: for each prefix length ``n`` (:func:`optim.selection.select_prefix`) ...
3. SP3: ... every admissible monotone modulation pattern
   (:func:`optim.modulation.monotone_patterns`; the polynomial variant at large ``n``) ...
4. SP4: ... gets its closed-form water-filling power (:func:`optim.power.water_filling`,
   batched over all patterns of an ``n``), and is scored by (P0) under the problem's own BER
   model. The best candidate wins.
5. Refinement (``refine``, on by default; ``refine=False`` is the paper's pipeline alone).
   From the best candidates of the ``refine_starts`` prefix lengths nearest the best one
   (default: 5 when ``n_max <= 6``, 3 when ``n_max <= 10``, else 1), each
   a. a steepest-descent local search (:func:`optim.local_search.local_search`, while
      ``n <= local_search_max``) over modulation, matching and selection moves with SP4
      re-solved for every neighbour, which leaves the ordered prior's restrictions (prefix,
      monotone patterns, greedy matching) wherever that pays;
   b. :func:`refine_allocation`: alternate SP4 at its global optimum under the problem's
      own BER model (:func:`optim.optimal_power.optimal_power_batch`, Lemma 3 of
      :mod:`optim.optimal_power`; the bound-optimal power is not optimal under the exact BER), SP3
      at fixed powers (:func:`optim.modulation.assign_modulations`), SP1 by the Hungarian
      algorithm and SP2 swaps, each step accepted only if it improves.
   Each start at its optimal power also competes as it is. The best result wins. Every
   accepted step lowers the objective, so the refined answer is never worse than the
   pipeline's (``refine_steps`` selects the kinds of steps).
6. Dual starts (``dual_starts``; default 3 when ``n_max <= 10``, else 1; 0 disables; only
   while ``min(N, K) <= dual_max`` and the refinement may change selection, matching and
   modulations): the best distinct Lagrangian dual assignments of :mod:`optim.dual` (both
   budgets priced, features assigned to subchannels and modulations by the Hungarian
   algorithm, exact optimal power), which ignore the ordered prior's restrictions, are
   refined like the pipeline's starts. They reach optima the prior excludes (e.g. BPSK on
   the weakest subchannel, 16-QAM on the strongest). With a single pipeline start
   (``n_max > 10``), only the dual start gets the local search and the pipeline's start
   the polish (b), to keep one local search per solve.

Pattern search (``patterns``): ``"all"`` enumerates ``C(n+M-1, M-1)`` patterns per ``n``;
``"fast"`` takes the two-level frontier patterns and the greedy pattern per ``n``, then adds
cost-aware Lagrangian patterns around the best ``n``; ``"auto"`` (default) uses ``"all"``
while a prefix has at most ``max_patterns`` monotone patterns and ``"fast"`` above. Prefix
search (``n_search``): ``"all"`` tries every ``n``; ``"coarse"`` a stride-``s`` grid
(``s = ceil(n_max / 64)``) and then every ``n`` within ``s`` of the grid's best;
``"auto"`` is ``"all"`` up to ``n_max = 128``.

Matching (``matching``): ``"greedy"`` (SP1); ``"random"`` (one seeded random injective map
of ranks to subchannels); ``"hungarian"`` (for the prefix lengths within 2 of the best one,
starting from the greedy best, alternate ``linear_sum_assignment`` on the cost matrix at
fixed powers and SP4, accepting improvements, so never worse than greedy).
Power (``power``): ``"closed-form"``, ``"bisection"``, ``"cvxpy"`` or ``"equal"``
(``P_tot / n`` each, the equal-power baseline).

Per-feature bits ``Q_i`` ([OUR CHOICE], :class:`optim.problem.Problem`): symbols depend on the
feature, so SP2 and SP3 use the ranked features' own counts ``S_r(m)`` (the largest prefix
whose highest-order symbols fit, :func:`optim.selection.max_selectable`; monotone patterns
filtered by ``sum_r S_r(m_r) <= S_max``, :mod:`optim.modulation`), and every refinement step
that puts another feature on a slot checks the budget with that feature's counts. The
ordered prior stays a heuristic restriction: with unequal ``Q`` a less important feature may
be cheaper to protect, which the refinement and the dual starts (no monotone or prefix
restriction) can still reach. A feature that fits in no modulation on its own is ranked last,
so it cannot block the prefixes behind it (it is in no feasible allocation). With equal
``Q_i`` (a scalar or a constant vector) nothing changes.

Candidates are compared with the decision weights (``weights``; the problem's unless a
baseline passes uniform ones); the caller reports the objective with the problem's own.

Cost (measured, one core; BENCHMARKS.md, ``## optim``): about 1 ms without and 7-9 ms with
the refinement at ``N = K = 16``; about 0.4 s at ``N = K = 1024``, where the local search and
the dual starts are skipped (above ``local_search_max`` selected features, above
``dual_max``) and the Hungarian step runs once.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import ceil

import numpy as np

from channels.errors import ConfigError, check_flag, check_int, check_name, check_real, check_seed
from channels.theory import bound_coefficients
from optim.distortion import bit_error_rate, feature_terms
from optim.dual import dual_candidates, log_multiplier
from optim.local_search import MOVES, local_search
from optim.matching import hungarian_matching, random_matching, subchannel_order
from optim.modulation import (
    assign_modulations,
    count_monotone_patterns,
    fast_patterns,
    lagrangian_pattern,
    monotone_patterns,
)
from optim.optimal_power import optimal_power_batch
from optim.power import (
    equal_power,
    water_filling,
    water_filling_cvxpy,
)
from optim.problem import Allocation, Problem
from optim.selection import max_selectable, priority_order, select_prefix

MATCHINGS = ("greedy", "hungarian", "random")
POWERS = ("closed-form", "bisection", "cvxpy", "equal")
PATTERN_MODES = ("auto", "all", "fast")
N_SEARCH = ("auto", "all", "coarse")


@dataclass
class _Candidate:
    """Best assignment found for one prefix length (rank order)."""

    n: int
    value: float
    pattern: np.ndarray  # [n] modulation indices
    sub: np.ndarray  # [n] subchannel indices
    power: np.ndarray  # [n]


class _Engine:
    """Batched scoring of (prefix, pattern) candidates for one problem and ranking."""

    def __init__(
        self,
        problem: Problem,
        order: np.ndarray,
        weights: np.ndarray,
        matching: str,
        power: str,
        seed: int | np.random.Generator | None,
    ) -> None:
        self.problem = problem
        self.order = order
        terms = feature_terms(problem)
        self.w = weights[order]
        self.floor = terms.floor[order]
        self.slope = terms.slope[order]
        self.ws = self.w * self.slope
        self.wf = self.w * terms.floor[order]
        # tail[n] = sum_{j >= n} w_j drop_j: cost of the dropped ranks (all terms >= 0, so
        # candidate values carry no cancellation and match objective() to rounding)
        wdrop = self.w * terms.drop[order]
        self.tail = np.concatenate([np.cumsum(wdrop[::-1])[::-1], [0.0]])
        coef = np.array([bound_coefficients(m) for m in problem.modulations])
        self.A, self.B = coef[:, 0], coef[:, 1]
        # S[m] when every feature has the same Q; else per-rank rows S[r, m] (module docstring)
        self.S = problem.symbols_of(order)
        self.n_max = max_selectable(problem, order)
        if matching == "random":
            self.sub = random_matching(problem.n_subchannels, self.n_max, seed)
        else:
            self.sub = subchannel_order(problem.gains)[: self.n_max]
        self.power = power
        self.matching = matching

    def score(
        self, n: int, patterns: np.ndarray, sub: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(values [P], powers [P, n]) of patterns [P, n] on subchannels ``sub`` [n]."""
        prob = self.problem
        sub = self.sub[:n] if sub is None else sub
        rate = prob.gains[sub] / prob.noise_power  # [n]
        if self.power == "equal":
            p = np.broadcast_to(equal_power(n, prob.power_budget), patterns.shape)
        else:
            alpha = self.ws[:n] * self.A[patterns]
            c = self.B[patterns] * rate
            if self.power == "cvxpy":
                p = (
                    np.stack(
                        [
                            water_filling_cvxpy(a, cc, prob.power_budget)
                            for a, cc in zip(alpha, c, strict=True)
                        ]
                    )
                    if len(alpha)
                    else np.zeros(patterns.shape)
                )
            else:
                p = water_filling(alpha, c, prob.power_budget, method=self.power)
        pb = bit_error_rate(prob, patterns, rate * p)
        values = self.tail[n] + (self.wf[:n] + self.ws[:n] * pb).sum(axis=-1)
        return values, np.asarray(p)

    def score_padded(self, ns: np.ndarray, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Score rows of different prefix lengths at once on the default matching.

        ``patterns`` [P, W] holds row r's pattern in its first ``ns[r]`` entries and -1 after;
        returns (values [P], powers [P, W]) with zero power on the padding.
        """
        prob = self.problem
        width = patterns.shape[1]
        mask = patterns >= 0
        safe = np.where(mask, patterns, 0)
        rate = prob.gains[self.sub[:width]] / prob.noise_power  # [W]
        if self.power == "equal":
            share = prob.power_budget / np.maximum(ns, 1)
            p = np.where(mask, share[:, None], 0.0)
        elif self.power == "cvxpy":
            p = np.zeros(patterns.shape)
            for r, n in enumerate(ns):
                p[r, :n] = self.score(int(n), safe[r : r + 1, :n])[1][0]
        else:
            alpha = np.where(mask, self.ws[:width] * self.A[safe], 0.0)
            p = water_filling(alpha, self.B[safe] * rate, prob.power_budget, method=self.power)
        pb = bit_error_rate(prob, patterns, rate * p)
        per_rank = np.where(mask, self.wf[:width] + self.ws[:width] * pb, 0.0)
        return self.tail[ns] + per_rank.sum(axis=-1), p

    def best_of(self, n: int, patterns: np.ndarray, sub: np.ndarray | None = None) -> _Candidate:
        if patterns.shape[0] == 0:
            return _Candidate(n, np.inf, np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n))
        values, p = self.score(n, patterns, sub)
        k = int(np.argmin(values))
        sub = self.sub[:n] if sub is None else sub
        return _Candidate(n, float(values[k]), patterns[k].copy(), sub.copy(), p[k].copy())

    def errors(self, cand: _Candidate, esno: np.ndarray) -> np.ndarray:
        """Per-rank weighted error cost ``[n, M]`` at per-rank SNRs ``esno`` [n]."""
        m = len(self.problem.modulations)
        mods = np.broadcast_to(np.arange(m), (cand.n, m))
        pb = bit_error_rate(self.problem, mods, np.broadcast_to(esno[:, None], (cand.n, m)))
        return self.ws[: cand.n, None] * pb


def _hungarian_improve(engine: _Engine, cand: _Candidate, iters: int) -> _Candidate:
    """Alternate optimal matching at fixed powers and SP4 at fixed matching; keep improvements."""
    prob = engine.problem
    if cand.n == 0 or not np.isfinite(cand.value):
        return cand
    m = len(prob.modulations)
    for _ in range(iters):
        esno = cand.power[:, None] * prob.gains[None, :] / prob.noise_power  # [n, K]
        pb = bit_error_rate(prob, np.broadcast_to(cand.pattern[:, None], esno.shape), esno)
        cost = engine.ws[: cand.n, None] * pb
        sub = hungarian_matching(cost)
        if np.array_equal(sub, cand.sub):
            break
        trial = engine.best_of(cand.n, cand.pattern[None, :], sub)
        if not trial.value < cand.value:
            break
        cand = trial
    del m
    return cand


REFINE_STEPS = ("power", "modulation", "matching", "selection")


@dataclass
class _State:
    """A general allocation during refinement (feature indices, not ranks)."""

    features: np.ndarray  # [n]
    sub: np.ndarray  # [n]
    pattern: np.ndarray  # [n]
    power: np.ndarray  # [n]
    value: float


def refine_allocation(
    problem: Problem,
    features: np.ndarray,
    sub: np.ndarray,
    pattern: np.ndarray,
    power: np.ndarray,
    weights: np.ndarray | None = None,
    steps: tuple[str, ...] = REFINE_STEPS,
    iters: int = 10,
    rtol: float = 1e-9,
    hungarian_max: int = 256,
    hungarian_large_runs: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Local improvement of an allocation under the problem's BER model; never worse.

    Alternates, for at most ``iters`` rounds and while a round gains more than ``rtol``
    (relative), the ``steps`` in this order, each accepted only if the objective (with
    ``weights``, default the problem's) decreases:

    - ``power`` (SP4): the optimal power for the fixed choices under the problem's BER
      model (:func:`optim.optimal_power.optimal_power_batch`);
    - ``modulation`` (SP3): :func:`optim.modulation.assign_modulations` at fixed powers
      (no monotone constraint);
    - ``matching`` (SP1): Hungarian assignment of the selected features (with their
      modulations and powers) to subchannels: every round while ``n <= hungarian_max``, in
      the first ``hungarian_large_runs`` rounds above (one assignment of 600 x 1024 takes
      about 0.3 s);
    - ``selection`` (SP2): swap a selected feature for an unselected one on its slot
      (subchannel, modulation, power), or drop it, whenever that lowers the cost.

    Arguments are the allocation's arrays (``pattern``: indices into
    ``problem.modulations``); returns the improved ``(features, sub, pattern, power)``.
    """
    from optim.distortion import feature_terms

    for step in steps:
        check_name("refine_steps", step, REFINE_STEPS)
    w = problem.weights if weights is None else np.asarray(weights, dtype=np.float64)
    terms = feature_terms(problem)
    wf, ws, wd = w * terms.floor, w * terms.slope, w * terms.drop
    table = None if problem.uniform_bits else problem.symbol_table
    total_drop = float(wd.sum())
    m_count = len(problem.modulations)

    def pb_of(pattern: np.ndarray, sub: np.ndarray, power: np.ndarray) -> np.ndarray:
        return bit_error_rate(problem, pattern, problem.gains[sub] * power / problem.noise_power)

    def value_of(st: _State) -> float:
        f = st.features
        pb = pb_of(st.pattern, st.sub, st.power)
        return float(total_drop - wd[f].sum() + (wf[f] + ws[f] * pb).sum())

    state = _State(
        np.asarray(features, np.int64),
        np.asarray(sub, np.int64),
        np.asarray(pattern, np.int64),
        np.asarray(power, np.float64),
        0.0,
    )
    state.value = value_of(state)

    def accept(trial: _State) -> None:
        nonlocal state
        trial.value = value_of(trial)
        if trial.value < state.value:
            state = trial

    hungarian_runs = 0
    for _ in range(iters):
        start = state.value
        n = state.features.size
        if n == 0:
            break
        if "power" in steps:  # the global optimum for the fixed choices (exact.Lemma 3)
            p = optimal_power_batch(problem, state.features, state.sub, state.pattern, w)[0][0]
            accept(_State(state.features, state.sub, state.pattern, p, 0.0))
        if "modulation" in steps:
            esno = problem.gains[state.sub] * state.power / problem.noise_power
            mods = np.broadcast_to(np.arange(m_count), (n, m_count))
            pb = bit_error_rate(problem, mods, np.broadcast_to(esno[:, None], (n, m_count)))
            new = assign_modulations(
                ws[state.features, None] * pb,
                problem.symbols_of(state.features),
                problem.symbol_budget,
            )
            if new is not None and not np.array_equal(new, state.pattern):
                accept(_State(state.features, state.sub, new, state.power, 0.0))
        if "matching" in steps and (n <= hungarian_max or hungarian_runs < hungarian_large_runs):
            hungarian_runs += 1
            esno = state.power[:, None] * problem.gains[None, :] / problem.noise_power
            pb = bit_error_rate(problem, np.broadcast_to(state.pattern[:, None], esno.shape), esno)
            sub = hungarian_matching(ws[state.features, None] * pb)
            if not np.array_equal(sub, state.sub):
                accept(_State(state.features, sub, state.pattern, state.power, 0.0))
        if "selection" in steps:
            pb = pb_of(state.pattern, state.sub, state.power)
            accept(_swap_features(state, pb, wf, ws, wd, table, problem.symbol_budget))
        if not state.value < start - rtol * abs(start):
            break
    return state.features, state.sub, state.pattern, state.power


def _swap_features(
    state: _State,
    pb: np.ndarray,
    wf: np.ndarray,
    ws: np.ndarray,
    wd: np.ndarray,
    table: np.ndarray | None = None,
    s_max: float = np.inf,
) -> _State:
    """Best non-conflicting swaps (selected slot j <- unselected feature u) and drops.

    With per-feature symbol counts ``table`` [N, M] (None: every feature has the same, so a
    swap keeps the symbols), a swap changes the symbols by ``S[u, m_j] - S[f_j, m_j]`` and is
    taken only while the budget ``s_max`` still holds.
    """
    n_all = wf.size
    chosen = state.features
    others = np.setdiff1d(np.arange(n_all), chosen)
    here = wf[chosen] + ws[chosen] * pb - wd[chosen]  # [n] current net cost of each slot
    # net cost if u took slot j: wf_u + ws_u pb_j - wd_u ; dropping slot j: 0
    options = wf[others][None, :] + ws[others][None, :] * pb[:, None] - wd[others][None, :]
    options = np.concatenate([options, np.zeros((chosen.size, 1))], axis=1)  # last: drop
    delta = options - here[:, None]
    features = chosen.copy()
    keep = np.ones(chosen.size, dtype=bool)
    if table is not None:  # symbols added by each option (the drop frees the slot's symbols)
        own = table[chosen, state.pattern]
        extra = table[others][:, state.pattern].T - own[:, None]
        extra = np.concatenate([extra, -own[:, None]], axis=1)
        slack = s_max - own.sum()
    while True:
        if table is not None:
            j, u = np.unravel_index(
                np.argmin(np.where(extra <= slack + 1e-9, delta, np.inf)), delta.shape
            )
            if not (delta[j, u] < 0 and extra[j, u] <= slack + 1e-9):
                break
            slack -= extra[j, u]
        else:
            j, u = np.unravel_index(np.argmin(delta), delta.shape)
            if not delta[j, u] < 0:
                break
        if u == others.size:
            keep[j] = False
        else:
            features[j] = others[u]
            delta[:, u] = np.inf
        delta[j, :] = np.inf
    return _State(features[keep], state.sub[keep], state.pattern[keep], state.power[keep], 0.0)


def refine_candidate(
    engine: _Engine,
    starts: list[_Candidate],
    iters: int,
    steps: tuple[str, ...] = REFINE_STEPS,
    local_max: int = 64,
    extra: list[_State] | None = None,
    polish_only: bool = False,
) -> _State:
    """Local search (:func:`optim.local_search.local_search`, for starts of at most
    ``local_max`` features) from each start (the pipeline's ``starts``, then the general
    allocations ``extra``), then :func:`refine_allocation` of each result, with the engine's
    weights and power rule; the best wins."""
    prob = engine.problem
    weights = np.zeros(prob.n_features)
    weights[engine.order] = engine.w
    if engine.power == "equal":
        steps = tuple(s for s in steps if s != "power")
    moves = tuple(s for s in steps if s in MOVES)
    rule = engine.power if engine.power in ("bisection", "equal") else "closed-form"
    best: _State | None = None
    states = [_State(engine.order[: c.n], c.sub, c.pattern, c.power, c.value) for c in starts]
    first_ls = len(states) if polish_only else 0
    for q, state in enumerate(states + list(extra or [])):
        if state.features.size and rule != "equal" and "power" in steps:
            # the start itself at its optimal power competes too (a descent on bound-power
            # scores may leave it for a worse allocation under the problem's BER model)
            p = optimal_power_batch(prob, state.features, state.sub, state.pattern, weights)[0]
            start = _State(state.features, state.sub, state.pattern, p[0], 0.0)
            start.value = _value(prob, start, weights)
            if best is None or start.value < best.value:
                best = start
        if moves and state.features.size <= local_max and q >= first_ls:
            found = local_search(
                prob, *state_arrays(state)[:3], weights, rule, moves, exact_first=engine.n_max <= 8
            )
            state = _State(*found)
        if state.features.size:  # polish under the problem's own BER model before comparing
            f, sub, pat, p = refine_allocation(prob, *state_arrays(state), weights, steps, iters)
            state = _State(f, sub, pat, p, 0.0)
        state.value = _value(prob, state, weights)
        if best is None or state.value < best.value:
            best = state
    assert best is not None
    return best


def _dual_applies(engine: _Engine, steps: tuple[str, ...], dual_max: int) -> bool:
    """Dual starts change selection, matching and modulations and use optimal power: only
    when the refinement may change all of those (not for the random-matching or equal-power
    baselines) and ``min(N, K) <= dual_max``."""
    prob = engine.problem
    return (
        engine.power != "equal"
        and engine.matching != "random"
        and all(s in steps for s in ("modulation", "matching", "selection"))
        and min(prob.n_features, prob.n_subchannels) <= dual_max
    )


def _value(problem: Problem, state: _State, weights: np.ndarray) -> float:
    """(P0) of a state with ``weights`` under the problem's BER model."""
    terms = feature_terms(problem)
    f = state.features
    pb = bit_error_rate(
        problem, state.pattern, problem.gains[state.sub] * state.power / problem.noise_power
    )
    sent = weights[f] * (terms.floor[f] + terms.slope[f] * pb - terms.drop[f])
    return float(weights @ terms.drop + sent.sum())


def state_arrays(state: _State) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, sub, pattern, power) of a state."""
    return state.features, state.sub, state.pattern, state.power


def _patterns(engine: _Engine, n: int, mode: str, max_patterns: int) -> tuple[np.ndarray, bool]:
    """Patterns to score for prefix ``n`` and whether they are all admissible monotone ones."""
    S, smax = engine.S, engine.problem.symbol_budget
    few = count_monotone_patterns(n, S.shape[-1]) <= max_patterns
    if mode == "all" or (mode == "auto" and few):
        return monotone_patterns(n, S, smax), True
    return fast_patterns(n, S, smax), False


def _lagrangian_polish(engine: _Engine, cand: _Candidate) -> _Candidate:
    """Add cost-aware monotone patterns (equal-power and current-power estimates) for ``n``."""
    prob = engine.problem
    n = cand.n
    if n == 0:
        return cand
    rate = prob.gains[cand.sub] / prob.noise_power
    rows = []
    for p in (equal_power(n, prob.power_budget), cand.power):
        pat = lagrangian_pattern(engine.errors(cand, rate * p), engine.S, prob.symbol_budget)
        if pat is not None:
            rows.append(pat)
    if not rows:
        return cand
    trial = engine.best_of(n, np.unique(np.stack(rows), axis=0), cand.sub)
    return trial if trial.value < cand.value else cand


_CHUNK_ELEMENTS = 1 << 17  # padded pattern entries scored per batch


def _evaluate_many(
    engine: _Engine, ns: list[int], mode: str, max_patterns: int
) -> dict[int, tuple[_Candidate, bool]]:
    """Best candidate per prefix length in ``ns`` (and whether its search was exhaustive),
    scoring the patterns of many lengths in padded batches of about ``_CHUNK_ELEMENTS``."""
    out: dict[int, tuple[_Candidate, bool]] = {}
    pending: list[tuple[int, np.ndarray, bool]] = []

    def flush() -> None:
        if not pending:
            return
        width = max(n for n, _, _ in pending)
        rows = sum(len(p) for _, p, _ in pending)
        padded = np.full((rows, width), -1, dtype=np.int64)
        lengths = np.empty(rows, dtype=np.int64)
        r = 0
        for n, pats, _ in pending:
            padded[r : r + len(pats), :n] = pats
            lengths[r : r + len(pats)] = n
            r += len(pats)
        values, power = engine.score_padded(lengths, padded)
        r = 0
        for n, pats, full in pending:
            k = r + int(np.argmin(values[r : r + len(pats)]))
            cand = _Candidate(
                n,
                float(values[k]),
                padded[k, :n].copy(),
                engine.sub[:n].copy(),
                power[k, :n].copy(),
            )
            out[n] = (cand, full)
            r += len(pats)
        pending.clear()

    size = 0
    for n in sorted(ns):
        pats, full = _patterns(engine, n, mode, max_patterns)
        if pats.shape[0] == 0:
            out[n] = (
                _Candidate(n, np.inf, np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n)),
                full,
            )
            continue
        width = max([n] + [m for m, _, _ in pending])
        if pending and (size + len(pats)) * width > _CHUNK_ELEMENTS:
            flush()
            size = 0
        pending.append((n, pats, full))
        size += len(pats)
    flush()
    return out


def solve_hierarchical(
    problem: Problem,
    *,
    ordered_prior: bool = True,
    weights: np.ndarray | None = None,
    matching: str = "greedy",
    power: str = "closed-form",
    patterns: str = "auto",
    n_search: str = "auto",
    early_stop: bool = False,
    patience: int = 2,
    refine: bool | None = True,
    refine_iters: int = 10,
    refine_steps: tuple[str, ...] | list[str] = REFINE_STEPS,
    refine_starts: int | None = None,
    start_margin: float | None = None,
    local_search_max: int = 64,
    dual_starts: int | None = None,
    dual_max: int = 64,
    matching_iters: int = 5,
    max_patterns: int = 1500,
    seed: int | np.random.Generator | None = None,
) -> Allocation:
    """Solve (P0) by the hierarchical decoupling (module docstring: the algorithm).

    Options: ``ordered_prior`` (rank by index, else by weight), ``weights`` (decision
    weights [N], default the problem's), ``matching`` (greedy | hungarian | random),
    ``power`` (closed-form | bisection | cvxpy | equal), ``patterns`` (auto | all | fast),
    ``max_patterns`` (the auto switch), ``n_search`` (auto | all | coarse), ``early_stop``
    and ``patience`` (SP2's stop rule), ``refine`` (True; None means True),
    ``refine_iters``, ``refine_steps`` (subset of power, modulation, matching, selection),
    ``refine_starts`` (None: automatic), ``start_margin`` (only starts within this relative
    margin of the best; None: any), ``local_search_max``, ``dual_starts`` (None:
    automatic) and ``dual_max`` (step 6), ``matching_iters`` (Hungarian
    rounds of ``matching="hungarian"``), ``seed`` (random matching). Bad values raise
    ConfigError.

    Returns the best :class:`~optim.problem.Allocation` found (feature-index order); the
    empty allocation when nothing can be sent (``K = 0``, ``S_max`` below one feature's
    symbols) or when sending does not pay (e.g. ``P_tot = 0``).
    """
    matching = check_name("matching", matching, MATCHINGS)
    power = check_name("power", power, POWERS)
    patterns = check_name("patterns", patterns, PATTERN_MODES)
    n_search = check_name("n_search", n_search, N_SEARCH)
    early_stop = bool(check_flag("early_stop", early_stop, allowed="true, false"))
    ordered_prior = bool(check_flag("ordered_prior", ordered_prior, allowed="true, false"))
    refine = check_flag("refine", refine, none_ok=True, allowed="true, false or null (auto)")
    patience = check_int("patience", patience, 1)
    refine_iters = check_int("refine_iters", refine_iters, 0)
    if isinstance(refine_steps, str):
        refine_steps = (refine_steps,)
    try:
        refine_steps = tuple(check_name("refine_steps", s, REFINE_STEPS) for s in refine_steps)
    except TypeError:
        allowed = ", ".join(REFINE_STEPS)
        raise ConfigError(
            f"refine_steps: {refine_steps!r} is invalid; allowed: a list of {allowed}"
        ) from None
    matching_iters = check_int("matching_iters", matching_iters, 0)
    if refine_starts is not None:
        refine_starts = check_int("refine_starts", refine_starts, 1)
    if start_margin is None:
        start_margin = np.inf
    start_margin = check_real("start_margin", start_margin, 0, allow_inf=True)
    local_search_max = check_int("local_search_max", local_search_max, 0)
    if dual_starts is not None:
        dual_starts = check_int("dual_starts", dual_starts, 0)
    dual_max = check_int("dual_max", dual_max, 0)
    max_patterns = check_int("max_patterns", max_patterns, 1)
    seed = check_seed("seed", seed, generator=True)
    if weights is None:
        weights = problem.weights
    weights = np.asarray(weights, dtype=np.float64)
    order = priority_order(weights, ordered_prior)
    if not problem.uniform_bits:  # a feature that fits in no modulation is never sent: rank it
        fits = problem.symbol_table[order, -1] <= problem.symbol_budget + 1e-9  # last
        order = np.concatenate([order[fits], order[~fits]])
    engine = _Engine(problem, order, weights, matching, power, seed)
    if refine is None:
        refine = True
    best: dict[int, _Candidate] = {}
    exhaustive: dict[int, bool] = {}
    n_max = engine.n_max

    def evaluate_many(ns: list[int]) -> None:
        todo = [n for n in ns if n not in best]
        for n, (cand, full) in _evaluate_many(engine, todo, patterns, max_patterns).items():
            best[n] = cand
            exhaustive[n] = full

    def evaluate(n: int) -> float:
        if n not in best:  # next batch of lengths, so an early stop still saves work
            evaluate_many(list(range(n, min(n_max, n + max(8, n_max // 8)) + 1)))
        return best[n].value

    if n_search == "coarse" or (n_search == "auto" and n_max > 128):
        stride = max(1, ceil(n_max / 64))
        evaluate_many(sorted(set(range(0, n_max + 1, stride)) | {n_max}))
        n0 = min(best, key=lambda n: (best[n].value, n))
        evaluate_many(list(range(max(0, n0 - stride + 1), min(n_max, n0 + stride - 1) + 1)))
        n_best = min(best, key=lambda n: (best[n].value, n))
    elif early_stop:
        n_best = select_prefix(evaluate, n_max, early_stop, patience).best_n
    else:
        evaluate_many(list(range(n_max + 1)))
        n_best = select_prefix(lambda n: best[n].value, n_max).best_n

    # Polynomial variant: cost-aware patterns for the prefixes near the best one.
    if not all(exhaustive.values()):
        for n in sorted(best):
            if abs(n - n_best) <= 2 and not exhaustive[n]:
                best[n] = _lagrangian_polish(engine, best[n])
        n_best = min(best, key=lambda n: (best[n].value, n))
    if matching == "hungarian":  # improve the matching of the prefixes near the best one
        for n in sorted(best):
            if abs(n - n_best) <= 2:
                best[n] = _hungarian_improve(engine, best[n], matching_iters)
        n_best = min(best, key=lambda n: (best[n].value, n))
    cand = best[n_best]
    # the best candidates of the prefix lengths nearest n_best (n_best first)
    # and within start_margin (relative) of the best value
    limit = cand.value * (1 + start_margin) if np.isfinite(cand.value) else np.inf
    near = [n for n in best if np.isfinite(best[n].value) and best[n].value <= limit]
    near.sort(key=lambda n: (abs(n - n_best), n))
    if refine_starts is None:  # more starts where they are cheap (few features)
        refine_starts = 5 if n_max <= 6 else 3 if n_max <= 10 else 1
    starts = [best[n] for n in near[:refine_starts]]
    extra: list[_State] = []
    if dual_starts is None:  # like refine_starts: more where they are cheap
        dual_starts = 3 if n_max <= 10 else 1
    if refine and dual_starts and _dual_applies(engine, refine_steps, dual_max) and cand.n:
        lev = log_multiplier(problem, weights, order[: cand.n], cand.sub, cand.pattern)
        for f, sub, pat, p, v in dual_candidates(problem, weights, lev)[:dual_starts]:
            extra.append(_State(f, sub, pat, p, v))
    # with a single pipeline start (N > 10), only the dual start gets the local search, the
    # pipeline's answer the cheaper polish (one local search fits the time budget)
    polish_only = bool(extra) and len(starts) == 1
    if refine and (extra or any(c.n > 0 for c in starts)):
        state = refine_candidate(
            engine, starts, refine_iters, refine_steps, local_search_max, extra, polish_only
        )
    else:
        state = _State(order[: cand.n], cand.sub, cand.pattern, cand.power, cand.value)
    if state.features.size == 0:
        return Allocation.send_nothing()
    alloc = Allocation(
        state.features,
        state.sub,
        tuple(problem.modulations[m] for m in state.pattern),
        np.asarray(state.power, dtype=np.float64),
    )
    return alloc.sorted()
