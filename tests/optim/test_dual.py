"""optim.dual (Lagrangian dual starts) and optim.exact.optimal_power_batch."""

from __future__ import annotations

import numpy as np
import pytest

from optim.distortion import feature_terms, objective
from optim.dual import dual_candidates, log_multiplier
from optim.exact import optimal_power, optimal_power_batch, solve_exact_result
from optim.hierarchical import solve_hierarchical
from optim.problem import Allocation, random_problem


def _instances(count, seed, **kwargs):
    rng = np.random.default_rng(seed)
    for i in range(count):
        yield random_problem(
            int(rng.integers(2, 7)),
            int(rng.integers(2, 7)),
            seed=int(rng.integers(2**31)),
            profile=["ordered", "flat", "random"][i % 3],
            snr_db=float(rng.choice([-5.0, 0.0, 10.0, 20.0])),
            eta=float(rng.choice([0.25, 0.5, 1.0])),
            **kwargs,
        )


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_dual_candidates_are_feasible_and_correctly_valued(model):
    seen = 0
    for p in _instances(20, 3, ber_model=model):
        pipeline = solve_hierarchical(p, refine=False)
        if pipeline.n_selected == 0:
            continue
        mods = np.array([p.modulation_index(m) for m in pipeline.modulation])
        lev = log_multiplier(p, p.weights, pipeline.selected, pipeline.subchannel, mods)
        values = []
        for f, sub, pat, power, value in dual_candidates(p, p.weights, lev):
            alloc = Allocation(f, sub, tuple(p.modulations[m] for m in pat), power)
            assert alloc.is_feasible(p)
            assert objective(p, alloc) == pytest.approx(value, rel=1e-9)
            assert np.allclose(power, optimal_power(p, f, sub, alloc.modulation), rtol=1e-9)
            values.append(value)
            seen += 1
        assert values == sorted(values)
    assert seen > 20


def test_optimal_power_batch_matches_single_rows():
    p = random_problem(5, 6, seed=4, snr_db=5.0)
    f = np.array([[0, 1, 2, 3], [4, 2, 0, 1]])
    s = np.array([[0, 1, 2, 3], [5, 4, 3, 2]])
    m = np.array([[0, 1, 2, -1], [3, 2, 1, 0]])
    power, err = optimal_power_batch(p, f, s, m)
    for r in range(2):
        used = m[r] >= 0
        mods = tuple(p.modulations[k] for k in m[r][used])
        ref = optimal_power(p, f[r][used], s[r][used], mods)
        assert np.allclose(power[r][used], ref, rtol=1e-12)
        assert np.all(power[r][~used] == 0)
        alloc = Allocation(f[r][used], s[r][used], mods, ref)
        sel = f[r][used]
        terms = feature_terms(p)
        fixed = p.weights @ terms.drop + p.weights[sel] @ (terms.floor[sel] - terms.drop[sel])
        assert objective(p, alloc) == pytest.approx(fixed + err[r], rel=1e-12)


def test_dual_start_fixes_the_weak_subchannel_case():
    """The benchmark's former worst instance (487; BENCHMARKS.md): the optimum gives the
    weakest subchannel BPSK, outside the ordered prior; the best dual start is it."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_optim import gap_instance

    p = gap_instance(487, "ordered")
    best = solve_exact_result(p).objective
    pipeline = solve_hierarchical(p, refine=False)
    assert objective(p, pipeline) > 2 * best  # the ordered prior alone
    mods = np.array([p.modulation_index(m) for m in pipeline.modulation])
    lev = log_multiplier(p, p.weights, pipeline.selected, pipeline.subchannel, mods)
    assert dual_candidates(p, p.weights, lev)[0][4] <= best * (1 + 1e-9)
    assert objective(p, solve_hierarchical(p)) <= best * (1 + 1e-6)
