"""The exact BER's tangent lower bound (:func:`optim.ber_model.ber_lower`) and the checks of the
batched solver that use it to skip computing a candidate's BER terms.

The bound is checked against the Gray BER summed with SciPy's normal tail (a reference we did
not write), the skips against the values they stand in for. That a skip never changes a
choice is tested with the per-frame solver, which computes every value, in
``test_solve_batch``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from channels.theory import ber_terms
from optim.batch.local import log_tables, row_exceeds, score_row
from optim.batch.pipeline import _row_power, _row_value
from optim.batch.plan import pipeline_plan
from optim.ber_model import _build_tangents, ber_lower, ber_model, lower_sum_exceeds
from optim.problem import random_problem
from tests.optim.pipeline_rows import rank_tables

MODULATIONS = ("bpsk", "qpsk", "16qam", "64qam", "256qam")


def _reference(name: str, gamma: np.ndarray) -> np.ndarray:
    w, b = ber_terms(name)
    return (w[:, None] * norm.sf(b[:, None] * np.sqrt(gamma)[None, :])).sum(axis=0)


@pytest.fixture(scope="module")
def model():
    return ber_model(random_problem(3, 3, seed=0, modulations=MODULATIONS))


def test_the_bound_is_below_the_ber_everywhere_and_close_to_it_on_its_grid(model):
    special = [0.0, 5e-324, 1e-300, 1e-20, 1e-10, 1e7, 1e9, 1e300]
    grid = np.exp(np.linspace(math.log(1e-12), math.log(1e8), 40_001))
    gamma = np.concatenate([special, grid])
    for m, name in enumerate(MODULATIONS):
        ref = _reference(name, gamma)
        low = np.array([ber_lower(model, m, x) for x in gamma])
        # SciPy's tail underflows to 0 a little before erfc does: an absolute 1e-300 spare
        assert np.all(low <= ref * (1 + 1e-12) + 1e-300), name
        assert np.all((low >= 0) & (low <= 0.5))
        inside = (gamma >= 1e-9) & (gamma <= 1e6)
        for floor, gap in ((1e-3, 3e-4), (1e-6, 2e-3), (1e-12, 1e-2)):
            near = inside & (ref >= floor)
            assert np.max((ref - low)[near] / ref[near]) < gap, (name, floor)


def test_a_ber_that_is_not_convex_on_the_grid_gets_no_tangents(model):
    # 1.5 Q(1.2 x) - Q(x) is negative at large x: not a BER, and not convex
    bad = model._replace(
        qw=np.array([[1.0, -1.5]]), qb=np.array([[1.0, 1.2]]), nt=np.array([2], np.int64)
    )
    tf = np.ones(model.tg.size)
    td = np.ones(model.tg.size)
    _build_tangents(bad, 0, model.tg, tf, td)
    assert not tf.any() and not td.any()
    _build_tangents(model, 2, model.tg, tf, td)
    assert np.array_equal(tf, model.tf[2]) and np.array_equal(td, model.td[2])


def _pipeline_case(rng):
    n_feat = int(rng.choice([4, 8, 12, 16]))
    p = random_problem(
        n_feat,
        int(rng.choice([n_feat, n_feat + 3])),
        seed=int(rng.integers(2**31)),
        profile=str(rng.choice(["ordered", "flat", "random"])),
        snr_db=float(rng.choice([-5.0, 5.0, 10.0, 20.0])),
    )
    a = pipeline_plan(p, "hierarchical", {"refine": False}).arrays
    g = rng.exponential(size=p.n_subchannels)
    g[rng.random(g.size) < 0.1] = 0.0
    return p, a, g


def test_a_pattern_found_above_a_limit_has_a_value_above_it():
    rng = np.random.default_rng(7)
    checked = skipped = 0
    for _ in range(12):
        p, a, g = _pipeline_case(rng)
        m, mod, n_max, wmax, _, rate, lt, ct = rank_tables(p, a, g)
        t, c, pw, per = (np.zeros(wmax) for _ in range(4))
        order = np.zeros(wmax, np.int64)
        for n in range(1, n_max + 1):
            for r in range(a["n_start"][n], a["n_start"][n] + a["n_count"][n]):
                pat, width = a["pats"][r], a["row_w"][r]
                _row_power(pat, n, width, lt, ct, p.power_budget, 0, t, c, pw, order)
                v = _row_value(pat, width, rate, a["ws"], a["wf"], a["tail"][n], m["qw"],
                               m["qs"], m["ba"], m["bb"], m["exact"], pw, per)  # fmt: skip
                for limit in (v, v * (1 - 1e-12), v - 1e-4 * abs(v), v - 0.02 * abs(v)):
                    above = lower_sum_exceeds(mod, pat, width, rate, pw, a["tail"][n], a["wf"],
                                              a["ws"], limit)  # fmt: skip
                    assert not above or v > limit
                    skipped += above
                    checked += 1
    assert checked > 4000
    assert skipped > checked / 8  # the bound is tight: 2% below a value is mostly found


def test_a_neighbour_found_above_a_limit_scores_above_it():
    rng = np.random.default_rng(8)
    checked = skipped = 0
    for _ in range(30):
        p, a, g = _pipeline_case(rng)
        c, _ = pipeline_plan(p, "hierarchical", {}).arrays["refine"]
        lg = log_tables(c, g)
        width = p.n_features + 1
        f = np.zeros(width, np.int64)
        s = np.zeros(width, np.int64)
        pat = np.full(width, -1, np.int64)
        for _ in range(20):
            used = int(rng.integers(1, min(p.n_features, p.n_subchannels) + 1))
            f[:used] = rng.choice(p.n_features, used, replace=False)
            s[:used] = rng.choice(p.n_subchannels, used, replace=False)
            pat[:] = -1
            pat[:used] = rng.integers(0, len(p.modulations), used)
            t, cc, pw, rate, per, lo_a, lo_b = (np.zeros(width) for _ in range(7))
            order = np.zeros(width, np.int64)
            for equal in (False, True):
                v = score_row(c, g, lg, f, s, pat, width, equal, t, cc, order, pw, rate, per,
                              math.inf)  # fmt: skip
                for limit in (v, v - 1e-4 * abs(v), v - 0.02 * abs(v)):
                    above = row_exceeds(c, f, pat, width, pw, rate, lo_a, lo_b, limit)
                    assert not above or v > limit
                    again = score_row(c, g, lg, f, s, pat, width, equal, t, cc, order, pw, rate,
                                      per, limit)  # fmt: skip
                    assert again == (math.inf if above else v)
                    skipped += above
                    checked += 1
    assert checked > 3000
    assert skipped > checked / 8
