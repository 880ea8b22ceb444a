"""optim.harmony: the Bayes action and the imperfect-CSI ``harmony`` method.

References: the normal quantile of scipy.stats.norm (the Bayes action of a Gaussian
forecast), brute-force minimisation of the empirical expected cost, the order-statistic
coverage ``j / (n + 1)``, and held-out channel draws from the estimation model itself (the
outage rate must match ``sla_eps`` within a binomial confidence interval).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm

import optim
from channels.errors import ConfigError
from optim.harmony import bayes_action, design_gains, harmony, posterior
from optim.problem import random_problem


@pytest.mark.parametrize(("c_over", "c_under"), [(1.0, 1.0), (1.0, 4.0), (3.0, 1.0)])
def test_gaussian_forecast_gives_mu_plus_sigma_times_the_normal_quantile(c_over, c_under):
    mu, sigma, n = 2.5, 0.7, 200_000
    samples = np.random.default_rng(0).normal(mu, sigma, size=n)
    level = c_under / (c_over + c_under)
    expected = mu + sigma * norm.ppf(level)
    # standard error of a sample quantile: sqrt(p (1 - p) / n) / f(q)
    se = math.sqrt(level * (1 - level) / n) * sigma / norm.pdf(norm.ppf(level))
    assert abs(float(bayes_action(samples, c_over, c_under)) - expected) < 5 * se


def test_bayes_action_minimises_the_empirical_expected_cost():
    rng = np.random.default_rng(1)
    for trial in range(30):
        y = rng.gamma(2.0, size=int(rng.integers(1, 60)))
        c_over, c_under = (float(c) for c in rng.uniform(0.1, 5.0, size=2))
        a = float(bayes_action(y, c_over, c_under))
        # cost of provision y_i: convex piecewise linear with kinks at the samples, so its
        # minimum over the real line is attained at a sample
        d = y[:, None] - y[None, :]
        cost = c_over * np.maximum(d, 0).sum(axis=1) + c_under * np.maximum(-d, 0).sum(axis=1)
        minimisers = y[cost <= cost.min() * (1 + 1e-12) + 1e-300]
        assert a == minimisers.min(), trial  # the smallest minimiser


def test_sla_quantile_is_the_distribution_free_order_statistic():
    x = np.arange(1.0, 20.0)  # n = 19
    assert float(bayes_action(x, sla_eps=0.1)) == 18.0  # ceil(0.9 * 20) = 18
    assert float(bayes_action(x, sla_eps=0.05)) == 19.0
    assert float(bayes_action(x, sla_eps=0.01)) == math.inf  # 19 samples cannot certify 1 %
    assert float(bayes_action(x, c_over=1.0, c_under=99.0, sla_eps=0.5)) == 19.0  # cost binds
    # coverage of a fresh draw: P(U > U_(j)) = 1 - j / (n + 1) for uniforms, here 0.1 exactly
    rng = np.random.default_rng(2)
    u = rng.uniform(size=(19, 20_000))
    a = bayes_action(u, sla_eps=0.1, axis=0)
    fresh = rng.uniform(size=20_000)
    assert binomtest(int((fresh > a).sum()), fresh.size, 0.1).pvalue > 1e-3


@pytest.mark.parametrize(
    ("error", "options"),
    [("gaussian", {"error_var": 0.1}), ("gaussian", {"error_var": 1.0}),
     ("outdated", {"rho": 0.8})],
)  # fmt: skip
def test_held_out_outage_rate_matches_sla_eps(error, options):
    """True gains drawn from the model's prior; the rate at which the true gain falls below
    the design gain is ``floor(eps (n+1)) / (n+1) = eps`` for ``n_samples = 199``."""
    rng = np.random.default_rng(3)
    g = rng.exponential(size=(1, 4000))  # |h|^2 of h ~ CN(0, 1)
    for eps in (0.1, 0.05):
        d = design_gains(g, error=error, n_samples=199, sla_eps=eps, seed=4, **options)
        outages = int((g < d).sum())
        assert binomtest(outages, g.size, eps).pvalue > 1e-3, (eps, outages / g.size)
    plug = design_gains(g, error=error, decision="plug-in", seed=4, **options)
    assert (g < plug).mean() > 0.3  # the point estimate is no provision at all


def test_sent_features_meet_their_planned_snr_except_with_probability_eps():
    """The allocation plans each sent feature's SNR with the design gain of its subchannel;
    choosing the subchannels by the estimates does not bias the outage: the true gain falls
    below the design gain for a fraction ``eps`` of the sent features (independent frames)."""
    template = random_problem(6, 8, seed=11, eta=1.0)
    g = np.random.default_rng(12).exponential(size=(400, 8))
    design = design_gains(g, n_samples=199, sla_eps=0.1, seed=None)
    out = optim.solve_batch(template, design, "lowest-order")
    rows, cols = np.nonzero(out.selected)
    k = out.subchannel[rows, cols]
    outages = int((g[rows, k] < design[rows, k]).sum())
    assert rows.size > 1000 and binomtest(outages, rows.size, 0.1).pvalue > 1e-3


def test_posterior_of_the_two_error_models():
    assert posterior(1.0, math.sqrt(0.25)) == pytest.approx((0.8, math.sqrt(0.2)))
    assert posterior(0.6, 0.8) == pytest.approx((0.6, 0.8))  # outdated rho = 0.6
    rng = np.random.default_rng(5)  # Monte Carlo: E[h | h^] = m h^ by linear regression
    h = (rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000)) * math.sqrt(0.5)
    e = (rng.standard_normal(200_000) + 1j * rng.standard_normal(200_000)) * math.sqrt(0.5)
    h_hat = h + 0.5 * e
    m, s = posterior(1.0, 0.5)
    slope = np.vdot(h_hat, h).real / np.vdot(h_hat, h_hat).real
    assert slope == pytest.approx(m, abs=0.01)
    assert np.var(h - m * h_hat) == pytest.approx(s**2, rel=0.02)


def test_perfect_csi_reduces_to_the_base_method():
    for seed in range(6):
        p = random_problem(6, 6, seed=seed, ber_model=("exact", "bound")[seed % 2])
        base = optim.solve(p, "hierarchical")
        for options in ({"error_var": 0.0}, {"error": "outdated", "rho": 1.0}):
            r = optim.solve(p, "harmony", **options)
            assert r.allocation.selected.tolist() == base.allocation.selected.tolist()
            assert r.objective == pytest.approx(base.objective, rel=1e-9)


def test_harmony_is_feasible_and_conservative():
    rng = np.random.default_rng(6)
    for i in range(40):
        n, k = (int(x) for x in rng.integers(0, 8, size=2))
        snr, eta = float(rng.uniform(-5, 25)), float(rng.uniform(0, 1.2))
        p = random_problem(n, k, seed=i, snr_db=snr, eta=eta, ber_model=("exact", "bound")[i % 2])
        for options in ({}, {"error": "outdated", "base": "lowest-order"}, {"sla_eps": None}):
            r = optim.solve(p, "harmony", seed=i, **options)
            assert r.feasible, r.allocation.violations(p)
    g = rng.exponential(size=(20, 8))
    assert np.mean(design_gains(g, seed=1) < g) > 0.8  # planning below the truth, mostly


def test_solve_batch_equals_solve_frame_by_frame():
    rng = np.random.default_rng(7)
    cases = [
        (random_problem(5, 6, seed=1), {"base": "lowest-order"}),
        (random_problem(4, 4, seed=2, ber_model="bound"), {"error": "outdated", "rho": 0.7,
                                                           "base": "lowest-order", "seed": 9}),
        (random_problem(5, 5, seed=3), {"base_options": {"refine": False}, "c_under": 3.0}),
    ]  # fmt: skip
    for p, options in cases:
        gains = rng.exponential(size=(15, p.n_subchannels))
        out = optim.solve_batch(p, gains, "harmony", **options)
        for b in range(gains.shape[0]):
            ref = optim.solve(p.replace(gains=gains[b]), "harmony", **options)
            got = out.allocation(b, p.modulations)
            assert got.selected.tolist() == ref.allocation.selected.tolist()
            assert got.subchannel.tolist() == ref.allocation.subchannel.tolist()
            assert got.modulation == ref.allocation.modulation
            assert math.isclose(out.objective[b], ref.objective, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"error": "rician"}, r"^error: 'rician' is not one of gaussian, outdated$"),
        ({"error_var": -1.0}, r"^error_var: -1.0 is invalid"),
        ({"rho": 1.5}, r"^rho: 1.5 is invalid"),
        ({"sla_eps": 1.0}, r"^sla_eps: 1.0 is invalid"),
        ({"c_over": 0.0}, r"^c_over: 0.0 is invalid"),
        ({"n_samples": 0}, r"^n_samples: 0 is invalid"),
        ({"decision": "mean"}, r"^decision: 'mean' is not one of bayes, plug-in$"),
        ({"base": "polca"}, r"^base: 'polca' is not one of hierarchical"),
        ({"base_options": 3}, r"^base_options: 3 is invalid"),
        ({"seed": -2}, r"^seed: -2 is invalid"),
    ],
)
def test_bad_options_are_one_line_config_errors(options, message):
    p = random_problem(3, 3, seed=0)
    with pytest.raises(ConfigError, match=message):
        harmony(p, **options)
    with pytest.raises(ConfigError, match=message):
        optim.solve_batch(p, np.ones((2, 3)), "harmony", **options)
    with pytest.raises(ConfigError, match=r"^option: 'budget' is not accepted by method"):
        optim.solve_batch(p, np.ones((2, 3)), "harmony", budget=3)
