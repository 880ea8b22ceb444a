"""optim.batch.dual: the batched dual starts price only the rows that can rank, and rank them
as pricing every row does (the per-frame :func:`optim.dual.dual_candidates`)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from optim.batch.dual import dual_starts, kth_smallest, row_bound
from optim.ber_model import ber_model
from optim.distortion import feature_terms
from optim.dual import DEFAULT_OFFSETS, WIDE_MAX, WIDE_OFFSETS, dual_candidates, log_multiplier
from optim.hierarchical import solve_hierarchical
from optim.matching import subchannel_order
from optim.problem import random_problem
from optim.slots import slot_terms


def test_kth_smallest_counts_equal_values_and_skips_flagged_ones():
    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(0, 12))
        values = rng.integers(0, 5, n).astype(np.float64)  # many ties
        values[rng.random(n) < 0.1] = np.nan
        flag = (rng.random(n) < 0.3).astype(np.int64)
        count = int(rng.integers(1, 6))
        kept = sorted(v for v, f in zip(values, flag, strict=True) if f == 0 and not np.isnan(v))
        expected = kept[count - 1] if len(kept) >= count else math.inf
        assert kth_smallest(values, flag, n, count) == expected


def _frames(count, seed, model):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n = int(rng.choice([4, 6, 9, 12, 16]))
        yield random_problem(
            n,
            int(rng.choice([n // 2 + 1, n, n + 3])),
            seed=int(rng.integers(2**31)),
            profile=str(rng.choice(["ordered", "flat", "random"])),
            snr_db=float(rng.choice([-5.0, 0.0, 10.0, 20.0])),
            eta=float(rng.choice([0.25, 0.5, 1.0])),
            ber_model=model,
        )


def _start_multiplier(problem):
    pipeline = solve_hierarchical(problem, refine=False)
    if pipeline.n_selected == 0:
        return None
    mods = np.array([problem.modulation_index(m) for m in pipeline.modulation])
    lev = log_multiplier(problem, problem.weights, pipeline.selected, pipeline.subchannel, mods)
    return lev if np.isfinite(lev) else None


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_row_bound_is_below_each_rows_optimal_value(model):
    """Weak duality: the bound of every distinct dual row is at most its (P0) at its exact
    optimal power, up to the rounding margin that comes with it (under the bound model at the
    row's own multiplier the two are equal in exact arithmetic, so rounding alone decides)."""
    checked = 0
    tight = math.inf
    for p in _frames(25, 1, model):
        lev = _start_multiplier(p)
        if lev is None:
            continue
        terms = feature_terms(p)
        w = p.weights
        alpha, e, base = w * terms.slope, w * (terms.floor - terms.drop), float(w @ terms.drop)
        kp = min(p.n_features, p.n_subchannels)
        chan = subchannel_order(p.gains)[:kp]
        slot_of = {int(c): s for s, c in enumerate(chan)}
        loglam = lev + np.asarray(WIDE_OFFSETS if kp <= WIDE_MAX else DEFAULT_OFFSETS)
        table = slot_terms(ber_model(p), alpha, e, p.gains[chan] / p.noise_power, loglam,
                           len(p.modulations))  # fmt: skip
        for f, sub, pat, _, value in dual_candidates(p, w, lev):
            rows = np.full((1, 2 * p.n_features), -1, np.int64)
            rows[0, f] = [slot_of[int(s)] for s in sub]
            rows[0, p.n_features + f] = pat
            bound, margin = row_bound(table, loglam, rows, 0, p.n_features, base,
                                      float(p.power_budget))  # fmt: skip
            assert bound <= value + margin
            assert 0 <= margin < 1e-6 * (abs(value) + abs(bound) + 1.0)
            tight = min(tight, (value - bound) / abs(value))
            checked += 1
    assert checked > 100
    assert tight < 1e-3  # the bound is not vacuous: some row's is within 0.1% of its value


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_dual_starts_equal_the_full_ranking(model):
    """The batched starts, pricing only the rows that can rank, are the first ``count`` of the
    per-frame ranking, which prices every row: same rows in the same order, same values."""
    frames = 0
    for p in _frames(40, 2, model):
        lev = _start_multiplier(p)
        if lev is None:
            continue
        full = dual_candidates(p, p.weights, lev)
        terms = feature_terms(p)
        w = p.weights
        kp = min(p.n_features, p.n_subchannels)
        offsets = np.asarray(WIDE_OFFSETS if kp <= WIDE_MAX else DEFAULT_OFFSETS)
        for count in (1, 2, 3, 7, len(full) + 2):
            k, feats, subs, pats, pows, size = dual_starts(
                ber_model(p), w * terms.slope, w * (terms.floor - terms.drop),
                float(w @ terms.drop), p.gains, float(p.noise_power), float(p.power_budget),
                np.ascontiguousarray(p.symbol_table, dtype=np.float64),
                float(p.symbol_budget), lev, offsets, 30, count,
            )  # fmt: skip
            assert k == min(count, len(full))
            for r, (f, sub, pat, power, _) in enumerate(full[:k]):
                n = size[r]
                np.testing.assert_array_equal(feats[r, :n], f)
                np.testing.assert_array_equal(subs[r, :n], sub)
                np.testing.assert_array_equal(pats[r, :n], pat)
                np.testing.assert_allclose(pows[r, :n], power, rtol=1e-12, atol=0)
        frames += 1
    assert frames > 25
