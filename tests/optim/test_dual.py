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


def _search_inputs(count, seed):
    """(table, sym, smax, certify) of the dual search of random frames' pipeline answers."""
    from optim.ber_model import ber_model
    from optim.dual import DEFAULT_OFFSETS, WIDE_MAX, WIDE_OFFSETS, tie_free
    from optim.matching import subchannel_order
    from optim.slots import slot_terms

    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.choice([4, 6, 9, 12, 16]))
        p = random_problem(
            n,
            int(rng.choice([n // 2 + 1, n, n + 3])),
            seed=int(rng.integers(2**31)),
            profile=str(rng.choice(["ordered", "random"])),
            snr_db=float(rng.choice([-5.0, 0.0, 10.0, 20.0])),
            eta=float(rng.choice([0.25, 0.5, 1.0])),
            ber_model=str(rng.choice(["exact", "bound"])),
        )
        pipeline = solve_hierarchical(p, refine=False)
        if pipeline.n_selected == 0:
            continue
        mods = np.array([p.modulation_index(m) for m in pipeline.modulation])
        lev = log_multiplier(p, p.weights, pipeline.selected, pipeline.subchannel, mods)
        terms = feature_terms(p)
        alpha = p.weights * terms.slope
        kp = min(p.n_features, p.n_subchannels)
        chan = subchannel_order(p.gains)[:kp]
        nu = p.gains[chan] / p.noise_power
        loglam = lev + np.asarray(WIDE_OFFSETS if kp <= WIDE_MAX else DEFAULT_OFFSETS)
        table = slot_terms(ber_model(p), alpha, p.weights * (terms.floor - terms.drop), nu,
                           loglam, len(p.modulations))  # fmt: skip
        sym = np.ascontiguousarray(p.symbol_table, dtype=np.float64)
        yield table, sym, float(p.symbol_budget), bool(tie_free(alpha, nu, kp))


def _rows(slots, mods):
    n = slots.shape[-1]
    both = np.concatenate([slots.reshape(-1, n), mods.reshape(-1, n)], axis=1)
    return {tuple(r) for r in both if (r[:n] >= 0).any()}


def test_bisection_that_ends_early_records_the_rows_of_the_whole_bisection():
    """The certificate (a check at the crossing of the bracket's two lines, concavity of the
    dual function) stops a bisection only where its remaining steps would find nothing new."""
    from optim.dual import _dual_search

    frames = skipped = 0
    for table, sym, smax, certify in _search_inputs(60, 8):
        assert certify  # distinct weights and Rayleigh gains: no ties
        full = _dual_search(table, sym, smax, 30, False)
        early = _dual_search(table, sym, smax, 30, True)
        assert _rows(*early) == _rows(*full)
        skipped += int((early[0] < 0).all(axis=2).sum() - (full[0] < 0).all(axis=2).sum())
        frames += 1
    assert frames > 40
    assert skipped > 20 * frames  # steps not run (the rows of -1 they leave)


def _sends_something(table, d, kappa, sym) -> bool:
    """Whether the assignment at (``lambda_d``, ``kappa``) sends a feature."""
    from optim.assignment import assignment_scratch
    from optim.dual import dual_assignment_into

    _, n_feat, _, kp = table.shape
    col, mods = np.empty(n_feat, np.int64), np.empty(n_feat, np.int64)
    work, best_m = np.empty((n_feat, kp + n_feat)), np.empty((n_feat, kp), np.int64)
    scratch = assignment_scratch(n_feat, kp + n_feat)
    used = dual_assignment_into(table, d, kappa, sym, work, best_m, n_feat, kp, *scratch, col,
                                mods, False)  # fmt: skip
    return bool(used > 0 or (col >= 0).any())


def test_above_empty_above_no_pair_is_worth_sending_and_just_below_one_is():
    """The bisection answers its steps above ``empty_above`` without an assignment ("nothing
    sent"): checked against the assignment itself, above the threshold and just below it."""
    from optim.dual import empty_above

    rng = np.random.default_rng(5)
    checked = 0
    for table, sym, _, _ in _search_inputs(30, 9):
        for d in range(table.shape[0]):
            top = empty_above(table, d, sym)
            worth = table[d] < 0  # [N, M, Kp]: pairs worth sending at kappa = 0
            if not worth.any():
                assert top == 0.0
                continue
            exact = float(np.max((-table[d] / sym[:, :, None])[worth]))
            assert exact < top <= exact * (1 + 2e-12)
            above = (top, np.nextafter(top, np.inf), top * 1.5, top * 1e6)
            for kappa in (*above, *(top * (1 + rng.exponential(size=3)))):
                assert not _sends_something(table, d, kappa, sym)
            assert _sends_something(table, d, exact * (1 - 1e-9), sym)
            checked += 1
    assert checked > 50


def test_tie_free_needs_distinct_positive_weights_and_slots():
    from optim.dual import tie_free

    a, nu = np.array([3.0, 1.0, 2.0]), np.array([5.0, 4.0])
    assert tie_free(a, nu, 2)
    assert not tie_free(np.array([3.0, 1.0, 3.0]), nu, 2)
    assert not tie_free(np.array([3.0, 0.0, 2.0]), nu, 2)
    assert not tie_free(a, np.array([4.0, 4.0]), 2)
    assert not tie_free(a, np.array([4.0, 0.0]), 2)
    assert tie_free(a, np.array([4.0, 4.0]), 1)  # only the first kp slots are used
