"""Hierarchical vs exact optimality gap, and properties of the exact optimum (issue 3, item 7).

Gap study: 240 fixed random instances, ordered importance profile, exact BER (the default),
``N, K`` uniform in 2..6, average SNR in {-5, ..., 20} dB, eta in {0.25, 0.5, 0.75, 1}: the
same draws as ``benchmarks/bench_optim.py`` (its ``gap_instance``; BENCHMARKS.md has the
distribution over 1000 instances per profile). The thresholds asserted on this unbiased sample
are those the benchmark supports with margin. The issue's worst-case target (<= 5% for ordered
profiles) is met over the benchmark's 1000 instances since the refinement also starts from
Lagrangian dual assignments (:mod:`optim.dual`): worst 0.88% under the exact BER (i = 535),
below 1e-6 under the bound. The former worst instances (487: 155%, the optimum gives the
weakest subchannel BPSK; 795: 5.1%, a duality-gap case that needs the second and third dual
starts) are kept as regression cases.

Properties (hypothesis, small N, K): more power or more symbols never increases the exact
optimum; the exact optimum is at most every registered heuristic's objective (and every
heuristic returns a feasible allocation); permuting features (weights and drop distortions
together) or subchannels does not change it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optim
from optim.exact import solve_exact_result
from optim.methods import METHODS, available_methods
from optim.problem import Problem, random_problem

GAP_INSTANCES = 240
REGRESSION_INSTANCES = (487, 795, 535)  # former / current worst ordered instances (BENCHMARKS.md)
SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
ETAS = (0.25, 0.5, 0.75, 1.0)
EXACT_RTOL = 1e-9  # solve_exact's default tolerance


def gap_instance(i: int, profile: str, ber_model: str = "exact") -> Problem:
    """Instance ``i`` of the gap study (identical to ``bench_optim.gap_instance``)."""
    rng = np.random.default_rng([7, i])
    n, k = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    snr = float(rng.choice(SNRS_DB))
    eta = float(rng.choice(ETAS))
    seed = int(rng.integers(2**31))
    return random_problem(
        n, k, seed=seed, profile=profile, snr_db=snr, eta=eta, ber_model=ber_model
    )


def relative_gap(value: float, best: float) -> float:
    if best > 0:
        return (value - best) / best
    return 0.0 if value <= 0 else float("inf")


@pytest.fixture(scope="module")
def ordered_gaps() -> np.ndarray:
    gaps = []
    for i in range(GAP_INSTANCES):
        p = gap_instance(i, "ordered")
        exact = solve_exact_result(p).objective
        hier = optim.solve(p, method="hierarchical")
        assert hier.feasible
        gaps.append(relative_gap(hier.objective, exact))
    return np.array(gaps)


def test_exact_is_a_lower_bound_for_hierarchical(ordered_gaps):
    assert ordered_gaps.min() >= -2 * EXACT_RTOL


def test_gap_median_meets_the_target(ordered_gaps):
    """Issue target: median gap <= 0.5% for ordered profiles (measured: 0)."""
    assert np.median(ordered_gaps) <= 0.005


def test_gap_distribution(ordered_gaps):
    """Measured over 1000 instances (exact BER): 99.9% within 0.5%, all within 5%, p99 ~1e-15."""
    assert np.quantile(ordered_gaps, 0.9) <= 0.005
    assert np.mean(ordered_gaps <= 0.005) >= 0.98
    assert np.mean(ordered_gaps <= 0.05) >= 0.995


@pytest.fixture(scope="module")
def worst_gap(ordered_gaps) -> float:
    worst = ordered_gaps.max()
    for i in REGRESSION_INSTANCES:
        p = gap_instance(i, "ordered")
        hier = optim.solve(p, method="hierarchical").objective
        worst = max(worst, relative_gap(hier, solve_exact_result(p).objective))
    return float(worst)


def test_gap_worst_case_target(worst_gap):
    """Issue target: worst gap <= 5% for ordered profiles (sample plus regression cases)."""
    assert worst_gap <= 0.05


def test_gap_worst_case_measured(worst_gap):
    """The benchmark's worst ordered gap is 0.88% (exact BER, 1000 instances, i = 535);
    2% is that with a factor ~2 of headroom for platform-dependent rounding."""
    assert worst_gap <= 0.02


# ----------------------------------------------------------------------------- properties
@st.composite
def problems(draw, n_max: int = 4, k_max: int = 4) -> Problem:
    n = draw(st.integers(1, n_max))
    k = draw(st.integers(1, k_max))
    return random_problem(
        n,
        k,
        seed=draw(st.integers(0, 2**31 - 1)),
        profile=draw(st.sampled_from(["ordered", "flat", "random"])),
        snr_db=draw(st.sampled_from(SNRS_DB)),
        eta=draw(st.sampled_from((0.25, 0.5, 0.75, 1.0, 1.5))),
        ber_model=draw(st.sampled_from(["exact", "bound"])),
        fading=draw(st.sampled_from(["rayleigh", "rayleigh", "awgn"])),
    )


PROPS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def exact_value(p: Problem) -> float:
    return solve_exact_result(p).objective


def no_worse(a: float, b: float) -> bool:
    """``a <= b`` up to the exact solver's tolerance."""
    return a <= b * (1 + 2 * EXACT_RTOL) + 1e-300


@PROPS
@given(problems(), st.floats(1.0, 20.0))
def test_more_power_never_increases_the_optimum(p, factor):
    richer = p.replace(power_budget=p.power_budget * factor)
    assert no_worse(exact_value(richer), exact_value(p))


@PROPS
@given(problems(), st.floats(0.0, 2.0))
def test_more_symbols_never_increase_the_optimum(p, extra):
    richer = p.replace(symbol_budget=p.symbol_budget + extra * p.bits_per_feature)
    assert no_worse(exact_value(richer), exact_value(p))


@PROPS
@given(problems())
def test_exact_is_below_every_heuristic(p):
    best = exact_value(p)
    for name in available_methods():
        if name == "exact" or name.startswith("rl:"):  # learned: tests/optim/learned
            continue
        options = {"seed": 0} if METHODS[name].randomised else {}
        res = optim.solve(p, method=name, **options)
        assert res.feasible, name
        assert no_worse(best, res.objective), name


@PROPS
@given(problems(), st.integers(0, 2**31 - 1))
def test_permuting_features_or_subchannels_keeps_the_optimum(p, seed):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(p.n_features)
    shuffled = p.replace(weights=p.weights[perm], drop_distortion=p.drop_distortion[perm])
    base = exact_value(p)
    assert exact_value(shuffled) == pytest.approx(base, rel=4 * EXACT_RTOL, abs=1e-300)
    perm_k = rng.permutation(p.n_subchannels)
    moved = p.replace(gains=p.gains[perm_k])
    assert exact_value(moved) == pytest.approx(base, rel=4 * EXACT_RTOL, abs=1e-300)
