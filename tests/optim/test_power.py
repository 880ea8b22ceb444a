"""SP4 (optim.power): closed form vs bisection vs cvxpy vs brute force, KKT, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.errors import ConfigError
from optim.distortion import objective
from optim.power import (
    allocate_power,
    bound_terms,
    equal_power,
    exp_objective,
    kkt_residuals,
    refine_power,
    water_filling,
    water_filling_cvxpy,
)
from optim.problem import Allocation, random_problem


def _instances(count: int, n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        alpha = rng.exponential(size=n) * 10.0 ** rng.uniform(-3, 1)
        c = rng.exponential(size=n) * rng.choice([0.05, 0.5, 2.0])
        budget = float(rng.uniform(0.1, 30.0))
        yield alpha, c, budget


def _grid_minimum(alpha, c, budget, steps=400):
    """Brute force on the budget simplex (the optimum uses the whole budget)."""
    if alpha.size == 2:
        p1 = np.linspace(0, budget, steps + 1)
        p = np.stack([p1, budget - p1], axis=1)
    else:
        grid = np.linspace(0, budget, steps // 4 + 1)
        a, b = np.meshgrid(grid, grid, indexing="ij")
        keep = a + b <= budget + 1e-12
        p = np.stack([a[keep], b[keep], budget - a[keep] - b[keep]], axis=1)
        p = np.maximum(p, 0)
    return float(exp_objective(alpha, c, p).min())


@pytest.mark.parametrize("n", [2, 3])
def test_closed_form_beats_brute_force_grid(n):
    for alpha, c, budget in _instances(25, n, seed=n):
        p = water_filling(alpha, c, budget)
        assert p.sum() == pytest.approx(budget, rel=1e-12)
        assert exp_objective(alpha, c, p) <= _grid_minimum(alpha, c, budget) * (1 + 1e-12)


@pytest.mark.parametrize("n", [1, 4, 16])
def test_closed_form_bisection_and_cvxpy_agree_and_satisfy_kkt(n):
    for alpha, c, budget in _instances(8, n, seed=10 + n):
        p_cf = water_filling(alpha, c, budget)
        p_bi = water_filling(alpha, c, budget, method="bisection")
        p_cv = water_filling_cvxpy(alpha, c, budget)
        f_cf, f_bi, f_cv = (exp_objective(alpha, c, p) for p in (p_cf, p_bi, p_cv))
        assert f_bi == pytest.approx(f_cf, rel=1e-9)
        assert f_cv == pytest.approx(f_cf, rel=1e-6)
        assert f_cf <= f_cv * (1 + 1e-9)  # the closed form is the optimum
        kkt = kkt_residuals(alpha, c, budget, p_cf)
        assert kkt.worst() < 1e-9, kkt
        assert kkt_residuals(alpha, c, budget, p_bi).worst() < 1e-8
        # cvxpy's interior point leaves tiny powers on inactive entries: looser activity test
        kkt_cv = kkt_residuals(alpha, c, budget, p_cv, active_tol=1e-5)
        assert kkt_cv.primal_feasibility < 1e-9
        assert kkt_cv.complementary_slackness < 1e-6
        assert kkt_cv.stationarity < 1e-3


def test_batched_equals_row_by_row():
    rng = np.random.default_rng(3)
    alpha = rng.exponential(size=(5, 7, 6))
    c = rng.exponential(size=(5, 7, 6))
    budget = rng.uniform(0, 10, size=(5, 7))
    p = water_filling(alpha, c, budget)
    for i, j in np.ndindex(5, 7):
        assert np.allclose(p[i, j], water_filling(alpha[i, j], c[i, j], budget[i, j]), atol=1e-12)


def test_edge_cases():
    alpha = np.array([1.0, 0.0, 2.0, 3.0])
    c = np.array([1.0, 5.0, 0.0, 2.0])
    p = water_filling(alpha, c, 4.0)
    assert p[1] == 0 and p[2] == 0  # zero weight, zero gain: no power
    assert p.sum() == pytest.approx(4.0)
    assert np.all(water_filling(alpha, c, 0.0) == 0)  # P_tot = 0
    assert np.all(water_filling(np.zeros(3), np.ones(3), 5.0) == 0)  # nothing useful
    assert np.all(water_filling(np.ones(3), np.zeros(3), 5.0) == 0)
    assert water_filling(np.zeros(0), np.zeros(0), 5.0).shape == (0,)
    assert np.all(water_filling_cvxpy(np.zeros(2), np.ones(2), 5.0) == 0)
    for method in ("closed-form", "bisection"):
        q = water_filling(np.array([1.0, 1.0]), np.array([1.0, 1.0]), 2.0, method=method)
        assert np.allclose(q, [1.0, 1.0])
    with pytest.raises(ConfigError):
        water_filling(alpha, c, 1.0, method="newton")


def test_extreme_dynamic_range_stays_finite():
    alpha = np.array([1e-300, 1e300, 1.0])
    c = np.array([1e-200, 1e100, 1e-5])
    for method in ("closed-form", "bisection"):
        p = water_filling(alpha, c, 1e3, method=method)
        assert np.all(np.isfinite(p)) and np.all(p >= 0) and p.sum() <= 1e3 * (1 + 1e-12)


@settings(max_examples=60, deadline=None)
@given(
    alpha=st.lists(st.floats(0, 1e3), min_size=1, max_size=8),
    seed=st.integers(0, 1000),
    budget=st.floats(0, 1e3),
)
def test_water_filling_properties(alpha, seed, budget):
    alpha = np.array(alpha)
    c = np.random.default_rng(seed).exponential(size=alpha.size) * (seed % 3)
    p = water_filling(alpha, c, budget)
    assert np.all(p >= 0) and p.sum() <= budget * (1 + 1e-12) + 1e-300
    assert kkt_residuals(alpha, c, budget, p).worst() < 1e-7
    # never worse than equal power
    f = exp_objective(alpha, c, p)
    assert f <= exp_objective(alpha, c, equal_power(alpha.size, budget)) * (1 + 1e-12) + 1e-300


def test_allocate_power_on_a_problem_matches_terms():
    prob = random_problem(4, 4, seed=5, ber_model="bound")
    features, sub, mods = np.array([0, 1, 2]), np.array([3, 0, 1]), np.array([0, 1, 3])
    alpha, c = bound_terms(prob, features, sub, mods)
    slope = 64 * prob.quantiser_step**2 * (4**8 - 1) / 3
    assert np.allclose(alpha, prob.weights[:3] * slope * np.array([0.5, 0.5, 0.2]))
    assert np.allclose(c, np.array([1.0, 0.5, 1.5 / 63]) * prob.gains[sub])
    p_cf = allocate_power(prob, features, sub, mods)
    p_cv = allocate_power(prob, features, sub, mods, solver="cvxpy")
    names = tuple(prob.modulations[m] for m in mods)
    j_cf = objective(prob, Allocation(features, sub, names, p_cf))
    j_cv = objective(prob, Allocation(features, sub, names, p_cv))
    assert j_cv == pytest.approx(j_cf, rel=1e-6)
    assert j_cf <= j_cv * (1 + 1e-9)
    with pytest.raises(ConfigError):
        allocate_power(prob, features, sub, mods, solver="newton")


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_refine_power_never_increases_the_cost_and_reaches_a_kkt_point(model):
    for seed in range(6):
        prob = random_problem(5, 5, seed=seed, snr_db=[0.0, 10.0][seed % 2], ber_model=model)
        features, sub = np.arange(4), np.array([4, 2, 0, 1])
        mods = np.array([0, 1, 2, 3])
        names = tuple(prob.modulations[m] for m in mods)
        p0 = allocate_power(prob, features, sub, mods)
        p1 = refine_power(prob, features, sub, mods, p0, max_iter=100)
        j0 = objective(prob, Allocation(features, sub, names, p0))
        j1 = objective(prob, Allocation(features, sub, names, p1))
        assert j1 <= j0 * (1 + 1e-14)
        assert p1.sum() <= prob.power_budget * (1 + 1e-12)
        if model == "bound":
            assert j1 == pytest.approx(j0, rel=1e-10)  # already optimal
        # brute-force check: no single pairwise power transfer improves noticeably
        base = j1
        for i in range(4):
            for k in range(4):
                if i == k:
                    continue
                q = p1.copy()
                move = 0.01 * q[i]
                q[i] -= move
                q[k] += move
                assert objective(prob, Allocation(features, sub, names, q)) >= base - 1e-6 * base


def test_refine_power_trivial_inputs():
    prob = random_problem(3, 3, seed=0)
    assert refine_power(prob, [], [], [], np.zeros(0)).shape == (0,)
    zero = prob.replace(power_budget=0.0)
    assert np.all(refine_power(zero, [0], [0], [0], np.zeros(1)) == 0)
