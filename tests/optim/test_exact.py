"""optim.exact and optim.bnb against brute force (issue 3, items 4 and 7).

What is proven here:

- the exponential and exact Gray BERs are convex and decreasing in the SNR (the certificate
  Lemma 3 of :mod:`optim.exact` relies on), and the tabulated dual function is a valid lower
  bound (Lemma 4);
- the per-candidate power is optimal: equal to the core engineer's water-filling under the
  bound model, and never beaten by a power grid or multi-start local search under the exact
  model (plus KKT);
- the pruning (strongest slots, same-modulation order, dual bound) loses nothing: the exact
  solver equals a plain enumeration of every subset x injective matching x modulation
  pattern, and a brute force with a power grid on tiny cases;
- the branch and bound returns the exact optimum when it completes, and valid bounds when a
  limit stops it.
"""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize

import optim
from channels.theory import ber_awgn, ber_bound, ber_terms
from optim.bnb import solve_bnb
from optim.distortion import bit_error_rate, feature_terms, objective
from optim.exact import (
    NotProvenOptimalWarning,
    candidate_count,
    h_lower,
    optimal_power,
    solve_exact,
    solve_exact_result,
)
from optim.power import allocate_power, water_filling
from optim.problem import Allocation, Problem, random_problem

MODELS = ("bound", "exact")
SNRS = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
ETAS = (0.25, 0.5, 0.75, 1.0, 1.5)


def instance(seed: int, n_max: int, k_max: int, ber_model: str, profile: str = "ordered"):
    """A reproducible random problem with N, K, SNR and eta drawn from ``seed``."""
    rng = np.random.default_rng([11, seed])
    n = int(rng.integers(1, n_max + 1))
    k = int(rng.integers(1, k_max + 1))
    return random_problem(
        n,
        k,
        seed=int(rng.integers(2**31)),
        profile=profile,
        snr_db=float(rng.choice(SNRS)),
        eta=float(rng.choice(ETAS)),
        ber_model=ber_model,
    )


def _value_of(problem: Problem, sel, sub, mods, power: np.ndarray) -> np.ndarray:
    """Objective of (sel, sub, mods) for every power row of ``power`` [G, n] (vectorised)."""
    terms = feature_terms(problem)
    w = problem.weights
    sel = np.asarray(sel, dtype=np.int64)
    midx = np.array([problem.modulation_index(m) for m in mods], dtype=np.int64)
    esno = power * problem.gains[np.asarray(sub, dtype=np.int64)] / problem.noise_power
    pb = bit_error_rate(problem, np.broadcast_to(midx, esno.shape), esno)
    base = float(w @ terms.drop)
    sent = w[sel] * (terms.floor[sel] + terms.slope[sel] * pb - terms.drop[sel])
    return base + sent.sum(axis=-1)


def _simplex_grid(n: int, steps: int) -> np.ndarray:
    """All points of the n-simplex (sum = 1) with coordinates in multiples of 1/steps."""
    rows = [c + (steps - sum(c),) for c in itertools.product(range(steps + 1), repeat=n - 1)]
    rows = [r for r in rows if r[-1] >= 0]
    return np.array(rows, dtype=np.float64) / steps


def _power_cost(x: np.ndarray, p: Problem, sel, sub, mods) -> float:
    """Objective at powers ``|x|`` scaled back onto the budget when above it."""
    x = np.abs(x)
    s = x.sum()
    x = x * (p.power_budget / s) if s > p.power_budget else x
    return float(_value_of(p, sel, sub, mods, x[None, :])[0])


def _slack(x: np.ndarray, budget: float) -> float:
    return budget - float(np.sum(x))


def plain_enumeration(problem: Problem, power_fn) -> float:
    """min over ALL subsets x injective maps onto ALL subchannels x patterns (no pruning)."""
    best = objective(problem, Allocation.send_nothing())
    n_feat, n_sub = problem.n_features, problem.n_subchannels
    for n in range(1, min(n_feat, n_sub) + 1):
        for sel in itertools.combinations(range(n_feat), n):
            for sub in itertools.permutations(range(n_sub), n):
                for mods in itertools.product(problem.modulations, repeat=n):
                    alloc = Allocation(sel, sub, mods, np.zeros(n))
                    if alloc.symbols_needed(problem) > problem.symbol_budget:
                        continue
                    p = power_fn(problem, np.array(sel), np.array(sub), mods)
                    best = min(best, objective(problem, Allocation(sel, sub, mods, p)))
    return best


def core_bound_power(problem, sel, sub, mods):
    """The core engineer's SP4 water-filling (independent of optim.exact)."""
    midx = np.array([problem.modulation_index(m) for m in mods])
    return allocate_power(problem, sel, sub, midx)


# ------------------------------------------------------------------------ BER certificates
@pytest.mark.parametrize("mod", ["16qam", "64qam", "256qam"])
def test_exact_ber_is_convex_and_decreasing(mod):
    """S1, S2 > 0 (Lemma 3): on a dense grid up to gamma_T, analytically beyond it."""
    w, b = ber_terms(mod)
    order = np.argsort(b)
    w, b = w[order], b[order]
    assert w[0] > 0 and np.all(np.diff(b) > 0)
    # tail: sum_{t>0} |w_t| b_t (b_t/b_0)^2 exp(-(b_1^2-b_0^2) g/2) < w_0 b_0 for g >= g_T
    tail = np.sum(np.abs(w[1:]) * b[1:] * (b[1:] / b[0]) ** 2)
    g_t = max(0.0, 2.0 * np.log(tail / (w[0] * b[0])) / (b[1] ** 2 - b[0] ** 2)) + 1.0
    g = np.concatenate([np.linspace(0.0, 1e-3, 2001), np.linspace(1e-3, g_t, 400001)])
    ex = np.exp(-0.5 * (b[None, :] ** 2 - b[0] ** 2) * g[:, None])
    s1 = (w * b * ex).sum(axis=1)
    s2 = (w * b * (1.0 + b**2 * g[:, None]) * ex).sum(axis=1)
    assert s1.min() > 0.1 * w[0] * b[0]
    assert s2.min() > 0.1 * w[0] * b[0]
    # the tail inequality at g_T (it only improves beyond)
    assert tail * np.exp(-0.5 * (b[1] ** 2 - b[0] ** 2) * g_t) < w[0] * b[0]
    # and the library BER is non-increasing and convex numerically on a log grid
    gg = np.logspace(-3, 3, 20001)
    f = ber_awgn(mod, gg)
    assert np.all(np.diff(f) <= 1e-17)


def test_bound_and_exact_ber_at_zero():
    for mod in ("bpsk", "qpsk", "16qam", "64qam"):
        assert float(ber_awgn(mod, 0.0)) == pytest.approx(0.5, abs=1e-15)
        assert float(ber_bound(mod, 0.0)) <= 0.5


@pytest.mark.parametrize("model", MODELS)
def test_h_lower_is_a_valid_tight_lower_bound(model):
    """h_lower <= min_gamma f(gamma) + mu gamma (dense grid), and close to it."""
    p = random_problem(2, 2, seed=0, ber_model=model)
    gam = np.concatenate([[0.0], np.logspace(-12, 4.5, 200001)])
    for m, name in enumerate(p.modulations):
        f = ber_awgn(name, gam) if model == "exact" else ber_bound(name, gam)
        for ln_mu in np.linspace(np.log(1e-12), np.log(1e3), 37):
            true = float(np.min(f + np.exp(ln_mu) * gam))
            lo = h_lower(p, m, ln_mu)
            assert lo <= true * (1 + 1e-12) + 1e-300
            assert lo >= true * (1 - 2e-4) - 1e-12
        assert h_lower(p, m, np.inf) == pytest.approx(float(f[0]))


# --------------------------------------------------------------------- per-candidate power
def test_bound_power_equals_core_water_filling():
    rng = np.random.default_rng(5)
    for trial in range(300):
        p = random_problem(6, 6, seed=trial, ber_model="bound", snr_db=float(rng.uniform(-10, 25)))
        n = int(rng.integers(1, 7))
        sel = rng.permutation(6)[:n]
        sub = rng.permutation(6)[:n]
        gains = p.gains.copy()
        if trial % 7 == 0:
            gains[sub[0]] = 0.0  # a useless subchannel
        p = p.replace(gains=gains)
        mods = tuple(rng.choice(p.modulations, size=n))
        mine = optimal_power(p, sel, sub, mods)
        core = core_bound_power(p, sel, sub, mods)
        midx = np.array([p.modulation_index(m) for m in mods])
        from optim.power import bound_terms

        alpha, c = bound_terms(p, sel, sub, midx)
        bis = water_filling(alpha, c, p.power_budget, method="bisection")
        np.testing.assert_allclose(mine, core, rtol=1e-8, atol=1e-9 * p.power_budget)
        np.testing.assert_allclose(mine, bis, rtol=1e-7, atol=1e-8 * p.power_budget)
        v_mine = objective(p, Allocation(sel, sub, mods, mine))
        v_core = objective(p, Allocation(sel, sub, mods, core))
        assert v_mine <= v_core * (1 + 1e-12)
        assert mine.sum() <= p.power_budget * (1 + 1e-12)


def test_exact_power_beats_power_grid_and_meets_kkt():
    """Exact BER, n <= 3: never beaten by a simplex grid or a local search from its best."""
    rng = np.random.default_rng(8)
    for trial in range(40):
        p = random_problem(
            3, 3, seed=100 + trial, ber_model="exact", snr_db=float(rng.choice(SNRS))
        )
        n = int(rng.integers(1, 4))
        sel, sub = rng.permutation(3)[:n], rng.permutation(3)[:n]
        mods = tuple(rng.choice(p.modulations, size=n))
        mine = optimal_power(p, sel, sub, mods)
        v_mine = float(_value_of(p, sel, sub, mods, mine[None, :])[0])
        grid = _simplex_grid(n, 120 if n <= 2 else 60) * p.power_budget
        vals = _value_of(p, sel, sub, mods, grid)
        assert v_mine <= vals.min() * (1 + 1e-12) + 1e-15
        x0 = grid[int(np.argmin(vals))]
        res = minimize(
            _power_cost,
            x0,
            args=(p, sel, sub, mods),
            method="Nelder-Mead",
            options={"xatol": 1e-10, "fatol": 1e-16, "maxiter": 4000},
        )
        assert v_mine <= res.fun * (1 + 1e-9) + 1e-15
        # KKT: equal marginal gains alpha nu (-f'(gamma)) on every slot (all get power)
        if n > 1:
            terms = feature_terms(p)
            alpha = p.weights[sel] * terms.slope[sel]
            nu = p.gains[sub] / p.noise_power
            h = 1e-6 * mine
            esno_hi, esno_lo = nu * (mine + h), nu * (mine - h)
            pb_hi = np.array([ber_awgn(m, e) for m, e in zip(mods, esno_hi, strict=True)])
            pb_lo = np.array([ber_awgn(m, e) for m, e in zip(mods, esno_lo, strict=True)])
            marginal = alpha * (pb_lo - pb_hi) / (2 * h)
            ok = marginal > 1e-250
            if ok.sum() > 1:
                assert np.ptp(np.log(marginal[ok])) < 1e-4
        assert mine.sum() == pytest.approx(p.power_budget, rel=1e-12)


def test_exact_power_beats_multistart_local_search():
    """Exact BER, n up to 6: SLSQP from 8 random starts never beats the KKT power."""
    rng = np.random.default_rng(9)
    for trial in range(12):
        p = random_problem(
            6, 6, seed=300 + trial, ber_model="exact", snr_db=float(rng.choice(SNRS))
        )
        n = int(rng.integers(2, 7))
        sel, sub = rng.permutation(6)[:n], rng.permutation(6)[:n]
        mods = tuple(rng.choice(p.modulations, size=n))
        mine = optimal_power(p, sel, sub, mods)
        v_mine = float(_value_of(p, sel, sub, mods, mine[None, :])[0])
        scale = p.power_budget
        for _ in range(8):
            x0 = rng.dirichlet(np.ones(n)) * scale
            res = minimize(
                _power_cost,
                x0,
                args=(p, sel, sub, mods),
                method="SLSQP",
                bounds=[(0, scale)] * n,
                constraints=[{"type": "ineq", "fun": _slack, "args": (scale,)}],
                options={"ftol": 1e-15, "maxiter": 500},
            )
            if np.sum(np.maximum(res.x, 0)) <= scale * (1 + 1e-9):
                assert v_mine <= res.fun * (1 + 1e-9) + 1e-15


# ----------------------------------------------------------------- the enumeration itself
@pytest.mark.parametrize("model", MODELS)
def test_exact_equals_plain_enumeration(model):
    """Lemmas 1, 2 and the dual-bound pruning lose nothing (N, K <= 3, every instance)."""
    power_fn = core_bound_power if model == "bound" else optimal_power
    for seed in range(25):
        p = instance(seed, 3, 3, model)
        r = solve_exact_result(p)
        ref = plain_enumeration(p, power_fn)
        assert r.objective == pytest.approx(ref, rel=1e-9, abs=1e-15), seed
        assert r.allocation.is_feasible(p)


def test_exact_equals_brute_force_with_power_grid():
    """Fully independent brute force under the exact BER: subsets x matchings x patterns,
    power on a simplex grid and then a local search for the best candidate."""
    for seed in range(5):
        p = instance(40 + seed, 3, 3, "exact")
        r = solve_exact_result(p)
        best, arg = objective(p, Allocation.send_nothing()), None
        nf, ns = p.n_features, p.n_subchannels
        for n in range(1, min(nf, ns) + 1):
            grid = _simplex_grid(n, 40) * p.power_budget
            for sel in itertools.combinations(range(nf), n):
                for sub in itertools.permutations(range(ns), n):
                    for mods in itertools.product(p.modulations, repeat=n):
                        if Allocation(sel, sub, mods, np.zeros(n)).symbols_needed(p) > (
                            p.symbol_budget
                        ):
                            continue
                        vals = _value_of(p, sel, sub, mods, grid)
                        k = int(np.argmin(vals))
                        if vals[k] < best:
                            best, arg = float(vals[k]), (sel, sub, mods, grid[k])
        atol = 1e-12 * objective(p, Allocation.send_nothing())  # cancellation in sums
        assert r.objective <= best * (1 + 1e-12) + atol
        if arg is not None:
            sel, sub, mods, x0 = arg
            refined = objective(p, Allocation(sel, sub, mods, optimal_power(p, sel, sub, mods)))
            assert r.objective == pytest.approx(min(refined, best), rel=1e-9, abs=atol)


def test_candidate_count_matches_the_walk():
    for n, k in [(1, 1), (2, 3), (3, 3), (4, 2), (4, 4), (5, 5)]:
        p = random_problem(n, k, seed=1, eta=5.0)  # every pattern fits
        assert solve_exact_result(p).candidates == candidate_count(n, k, len(p.modulations))
    assert candidate_count(6, 6, 4) == 622_465


def test_exact_via_registry_and_tolerance():
    p = random_problem(5, 5, seed=2)
    r = solve_exact_result(p)
    res = optim.solve(p, method="exact")
    assert res.feasible
    assert res.objective == pytest.approx(r.objective, rel=1e-12)
    assert optim.solve(p, method="exact", seed=None).objective == res.objective
    from channels.errors import ConfigError

    with pytest.raises(ConfigError):
        optim.solve(p, method="exact", bogus=1)
    loose = solve_exact_result(p, rtol=1e-3)
    assert r.objective <= loose.objective <= r.objective * (1 + 1e-3)
    assert loose.solved <= r.solved


def test_edge_cases():
    base = random_problem(3, 3, seed=4)
    cases = [
        base.replace(gains=[]),  # K = 0
        base.replace(power_budget=0.0),
        base.replace(symbol_budget=10.0),  # nothing fits
        base.replace(gains=[0.0, 0.0, 0.0]),
        base.replace(weights=[0.0, 0.0, 0.0]),
        base.replace(weights=[1.0, 0.0, 0.0], ber_model="bound"),
    ]
    for p in cases:
        r = solve_exact_result(p)
        assert np.isfinite(r.objective) and r.allocation.is_feasible(p)
        ref = plain_enumeration(p, optimal_power)
        assert r.objective == pytest.approx(ref, rel=1e-9, abs=1e-15)
        b = solve_bnb(p)
        assert b.certified and b.objective == pytest.approx(r.objective, rel=1e-9, abs=1e-15)
    nothing = base.replace(symbol_budget=10.0)
    assert solve_exact(nothing).n_selected == 0


def test_engines_above_the_enumeration_limit():
    from channels.errors import ConfigError

    p = random_problem(9, 9, seed=0)
    with pytest.raises(ConfigError, match="bnb"):
        solve_exact(p, engine="enumerate")
    r = solve_exact_result(p)  # auto: certified B&B
    assert r.engine == "bnb"
    b = solve_bnb(p)
    assert b.certified and r.objective == pytest.approx(b.objective, rel=1e-9)
    with pytest.warns(NotProvenOptimalWarning, match="stopped by node_limit"):
        stopped = solve_exact(p, engine="bnb", node_limit=1)
    assert stopped.is_feasible(p) and objective(p, stopped) >= r.objective * (1 - 1e-9)
    small = random_problem(5, 5, seed=3)
    assert solve_exact_result(small, engine="bnb").objective == pytest.approx(
        solve_exact_result(small).objective, rel=1e-9
    )


@pytest.mark.parametrize("model", MODELS)
def test_six_by_six_in_seconds(model):
    """N = K = 6 with every pattern admissible (622,465 candidates) on one core."""
    solve_exact(random_problem(4, 4, seed=0, ber_model=model))  # compile / tables
    worst = 0.0
    for seed in range(3):
        for snr in (0.0, 10.0):
            p = random_problem(6, 6, seed=seed, ber_model=model, eta=2.0, snr_db=snr)
            t = time.perf_counter()
            r = solve_exact_result(p)
            worst = max(worst, time.perf_counter() - t)
            assert r.candidates == 622_465
    assert worst < 2.0


# -------------------------------------------------------------------------- branch and bound
@pytest.mark.parametrize("model", MODELS)
def test_bnb_equals_exact(model):
    for seed in range(30):
        profile = ("ordered", "flat", "random")[seed % 3]
        p = instance(200 + seed, 6, 6, model, profile)
        r = solve_exact_result(p)
        b = solve_bnb(p, time_limit=30)
        assert b.certified, seed
        assert b.objective == pytest.approx(r.objective, rel=1e-9, abs=1e-15), seed
        assert b.lower_bound <= r.objective * (1 + 1e-12)
        assert b.gap <= 1e-8
        assert b.allocation.is_feasible(p)


def test_bnb_equals_exact_at_seven():
    for model in MODELS:
        p = random_problem(7, 7, seed=3, ber_model=model, eta=1.0, snr_db=5.0)
        r = solve_exact_result(p)
        b = solve_bnb(p, time_limit=30)
        assert b.certified
        assert b.objective == pytest.approx(r.objective, rel=1e-9)


@pytest.mark.parametrize("model", MODELS)
def test_bnb_limits_give_valid_bounds(model):
    """Stopped early (no hierarchical start, so the trees are larger), the bound is valid."""
    stopped = 0
    for seed in range(8):
        p = instance(300 + seed, 7, 7, model)
        r = solve_exact_result(p)
        for limit in (1, 5, 50):
            b = solve_bnb(p, node_limit=limit, initial=None)
            assert b.lower_bound <= r.objective * (1 + 1e-9) + 1e-15, (seed, limit)
            assert b.objective >= r.objective * (1 - 1e-9)
            assert b.allocation.is_feasible(p)
            if b.objective > 0:
                assert b.gap == pytest.approx((b.objective - b.lower_bound) / b.objective)
            assert b.nodes <= limit or b.certified
            stopped += not b.certified
    assert stopped > 0  # the limits did bite somewhere


def test_bnb_keeps_a_better_initial_allocation():
    p = random_problem(6, 6, seed=1)
    opt = solve_exact(p)
    b = solve_bnb(p, initial=opt, node_limit=1)
    assert b.objective <= objective(p, opt) * (1 + 1e-12)


def test_lagrangian_heuristic_is_feasible_and_not_below_exact():
    from optim.bnb import lagrangian_heuristic

    for seed in range(10):
        p = instance(500 + seed, 6, 6, MODELS[seed % 2])
        a = lagrangian_heuristic(p)
        assert a.is_feasible(p)
        assert objective(p, a) >= solve_exact_result(p).objective * (1 - 1e-9)


# ------------------------------------------------------------------------------ limits
def _check_stopped(p: Problem, r, optimum: float) -> None:
    """A result stopped by a limit: the incumbent is feasible and its certificate valid."""
    assert r.allocation.is_feasible(p)
    assert r.objective == pytest.approx(objective(p, r.allocation), rel=1e-12)
    assert r.objective >= optimum * (1 - 1e-9) - 1e-15
    assert 0.0 <= r.lower_bound <= optimum * (1 + 1e-9) + 1e-15
    assert r.lower_bound <= r.objective
    if r.objective > 0:
        assert r.gap == pytest.approx((r.objective - r.lower_bound) / r.objective)
    if r.optimal:  # proven: within the tolerance of the optimum
        assert r.objective <= optimum * (1 + 1e-9) + 1e-15
    else:
        assert r.gap > 1e-9


@pytest.mark.parametrize("engine", ["enumerate", "bnb"])
def test_stopped_search_returns_incumbent_with_valid_bound(engine):
    """node_limit stops both engines deterministically at many points of the search; the
    bound is checked against the optimum of the complete search."""
    stopped = 0
    for seed in range(6):
        p = instance(700 + seed, 7, 7, MODELS[seed % 2])
        optimum = solve_exact_result(p).objective
        for limit in (1, 4, 40, 400):
            r = solve_exact_result(p, engine=engine, node_limit=limit)
            if r.stopped_by is None:
                assert r.optimal and r.objective == pytest.approx(optimum, rel=1e-9, abs=1e-15)
                continue
            assert r.stopped_by == "node_limit" and r.candidates <= limit + 1
            _check_stopped(p, r, optimum)
            stopped += 1
    assert stopped >= 8  # the limits did bite


@pytest.mark.parametrize(
    ("engine", "seed", "snr_db", "eta", "limit"),
    [("enumerate", 9, 5.0, 1.0, 3), ("bnb", 8, 0.0, 0.5, 10)],
)
def test_zero_gap_answer_is_kept_when_a_limit_stops_the_search(engine, seed, snr_db, eta, limit):
    """The limit stops the search, but the bound of the unexplored part already proves the
    incumbent optimal: it is returned as optimal (it used to be discarded with an error)."""
    p = random_problem(5, 5, seed, snr_db=snr_db, eta=eta)
    optimum = solve_exact_result(p).objective
    r = solve_exact_result(p, engine=engine, node_limit=limit)
    assert r.stopped_by == "node_limit" and r.optimal and r.gap <= 1.01e-9
    assert r.objective == pytest.approx(optimum, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # proven optimal: no warning
        alloc = solve_exact(p, engine=engine, node_limit=limit)
    assert objective(p, alloc) == pytest.approx(optimum, rel=1e-9)
    status = optim.solve(p, "exact", engine=engine, node_limit=limit).status
    assert status["optimal"] and status["stopped_by"] == "node_limit"


@pytest.mark.parametrize(
    ("engine", "n", "eta", "limit"),
    [("enumerate", 8, 2.0, 0.1), ("bnb", 20, 0.5, 0.2)],
)
def test_time_limit_bounds_wall_time(engine, n, eta, limit):
    """Problems needing far longer than the limit (the N = 8 enumeration with every pattern
    admissible visits 118 million candidates, ~7 s; N = 20 takes the B&B minutes) stop by the
    limit and report so; the wall time is checked against a generous 20 x the limit (the
    overshoot is about one 50 ms slice plus the final bound)."""
    solve_exact_result(random_problem(3, 3, seed=0), time_limit=1.0)  # compile outside
    p = random_problem(n, n, seed=1, eta=eta)
    r = solve_exact_result(p, engine=engine, time_limit=limit)
    assert r.stopped_by == "time_limit" and r.engine == engine
    assert r.seconds < 20 * limit
    assert r.allocation.is_feasible(p) and 0.0 < r.lower_bound <= r.objective
    # optimal or not depends on how far the search got (the bound may prove it early)
    assert r.optimal == (r.objective - r.lower_bound <= 1e-9 * r.objective + 1e-300)


def test_not_proven_optimal_is_marked():
    """Stopped before the bound proves anything: a warning from solve_exact, the certificate
    in solve_exact_result and in optim.solve's status."""
    p = random_problem(7, 7, seed=3, snr_db=5.0)
    for engine in ("enumerate", "bnb"):
        r = solve_exact_result(p, engine=engine, node_limit=1)
        assert r.stopped_by == "node_limit" and not r.optimal and r.gap > 1e-9
        with pytest.warns(NotProvenOptimalWarning, match="stopped by node_limit"):
            solve_exact(p, engine=engine, node_limit=1)
        status = optim.solve(p, "exact", engine=engine, node_limit=1).status
        assert status == r.status() and not status["optimal"]


def test_solved_within_the_limit_is_optimal():
    for engine in ("enumerate", "bnb"):
        p = random_problem(6, 6, seed=2)
        r = solve_exact_result(p, engine=engine, time_limit=30.0)
        assert r.optimal and r.stopped_by is None and r.gap <= 1.01e-9
        status = optim.solve(p, "exact", engine=engine, time_limit=30.0).status
        assert status == {"optimal": True, "lower_bound": pytest.approx(r.lower_bound),
                          "gap": pytest.approx(r.gap), "stopped_by": None}  # fmt: skip


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "1", True])
def test_invalid_time_limit(bad):
    from channels.errors import ConfigError

    with pytest.raises(ConfigError, match="time_limit"):
        solve_exact_result(random_problem(3, 3, seed=0), time_limit=bad)
    with pytest.raises(ConfigError, match="node_limit"):
        solve_exact_result(random_problem(3, 3, seed=0), node_limit=0)
