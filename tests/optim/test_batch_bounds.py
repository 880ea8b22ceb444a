"""The dual bounds that let the batched solver skip candidates: the pipeline's patterns
(:mod:`optim.batch.pipeline`) and the local search's neighbours (:mod:`optim.batch.local`).

A candidate is skipped only when its bound shows that scoring it could not change a choice,
so the results are those of scoring every candidate; that is tested against the per-frame
solver, which scores them all, in ``test_solve_batch``. Here the bounds themselves: weak
duality (eq. 2 of :mod:`optim.slots`) says that no power within the budget gives a candidate
a lower (P0) than its bound, and strong duality (the BER models are convex) that the bound
of an allocation at its own optimal power and multiplier is its value.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from optim.batch.arith import log_terms
from optim.batch.local import (
    _keep_smallest,
    current_bound,
    exact_power_row,
    log_tables,
    row_bounds,
    score_row,
    scratch,
    slot_term,
    value_row,
)
from optim.batch.pipeline import _pattern_multiplier, _prefix_terms, _score_row
from optim.batch.plan import pipeline_plan
from optim.ber_model import BerModel, ber_model, bound_applies, dual_term
from optim.problem import random_problem
from tests.optim.pipeline_rows import rank_tables


def test_keep_smallest_keeps_the_smallest_values_in_order():
    rng = np.random.default_rng(0)
    for _ in range(300):
        size = int(rng.integers(1, 6))
        values = rng.integers(0, 6, int(rng.integers(0, 15))).astype(np.float64)
        values[rng.random(values.size) < 0.1] = np.nan
        best = np.full(size, np.inf)
        for v in values:
            _keep_smallest(best, v)
        expected = sorted(v for v in values if not np.isnan(v))[:size]
        expected += [math.inf] * (size - len(expected))
        assert best.tolist() == expected


def _case(rng, model):
    n = int(rng.choice([3, 5, 8, 12, 16]))
    k = int(rng.choice([2, n, n + 4]))
    p = random_problem(
        n,
        k,
        seed=int(rng.integers(2**31)),
        profile=str(rng.choice(["ordered", "flat", "random"])),
        snr_db=float(rng.choice([-10.0, 0.0, 10.0, 25.0])),
        ber_model=model,
    )
    c, _ = pipeline_plan(p, "hierarchical", {}).arrays["refine"]
    g = rng.exponential(size=k)
    g[rng.random(k) < 0.15] = 0.0
    return p, c, g


def _allocation(rng, p, width):
    """Random features on distinct subchannels with random modulations (the symbol budget
    plays no part in the bound), padded to ``width`` with unused entries."""
    f = np.zeros(width, np.int64)
    s = np.zeros(width, np.int64)
    pat = np.full(width, -1, np.int64)
    used = int(rng.integers(1, min(p.n_features, p.n_subchannels, width - 1) + 1))
    f[:used] = rng.choice(p.n_features, used, replace=False)
    s[:used] = rng.choice(p.n_subchannels, used, replace=False)
    pat[:used] = rng.integers(0, len(p.modulations), used)
    return f, s, pat


def _neighbour(rng, p, f, s, pat):
    """Change one or two entries (feature, subchannel, modulation, or drop or add one)."""
    f, s, pat = f.copy(), s.copy(), pat.copy()
    for j in rng.choice(f.size, int(rng.integers(1, 3)), replace=False):
        kind = int(rng.integers(4))
        if kind == 0:
            f[j] = rng.integers(p.n_features)
        elif kind == 1:
            s[j] = rng.integers(p.n_subchannels)
        elif kind == 2:
            pat[j] = rng.integers(-1, len(p.modulations))
        else:
            f[j], s[j] = rng.integers(p.n_features), rng.integers(p.n_subchannels)
            pat[j] = rng.integers(0, len(p.modulations))
    return f, s, pat


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_no_power_within_the_budget_beats_a_neighbours_bound(model):
    rng = np.random.default_rng(1 if model == "exact" else 2)
    checked = 0
    for _ in range(40):
        p, c, g = _case(rng, model)
        lg = log_tables(c, g)
        width = p.n_features + 1
        f, s, pat = _allocation(rng, p, width)
        w = np.zeros(width)
        per, t, cc, rate, pw = (np.zeros(width) for _ in range(5))
        order = np.zeros(width, np.int64)
        score_row(c, g, lg, f, s, pat, width, False, t, cc, order, pw, rate, per, math.inf)
        terms = np.zeros(width)
        lnlam, total = current_bound(c, g, lg, f, s, pat, pw, width, terms)
        if lnlam == -math.inf:
            continue
        rows = [_neighbour(rng, p, f, s, pat) for _ in range(30)]
        rows_f, rows_s, rows_p = (np.array([r[i] for r in rows]) for i in range(3))
        lb, slack = np.zeros(len(rows)), np.zeros(len(rows))
        row_bounds(c, g, lg, f, s, pat, width, lnlam, terms, total, rows_f, rows_s, rows_p,
                   len(rows), lb, slack)  # fmt: skip
        fs, is_ = scratch(width)
        for q in range(len(rows)):
            for equal in (False, True):
                sc = score_row(c, g, lg, rows_f[q], rows_s[q], rows_p[q], width, equal, t, cc,
                               order, w, rate, per, math.inf)  # fmt: skip
                assert lb[q] <= sc + slack[q]
            exact_power_row(c, g, rows_f[q], rows_s[q], rows_p[q], width, w, fs, is_)
            assert w.sum() <= p.power_budget * (1 + 1e-12)
            best = value_row(c, g, rows_f[q], rows_s[q], rows_p[q], w, width, per)
            assert lb[q] <= best + slack[q]
            assert 0 < slack[q] < 1e-6 * (abs(best) + abs(lb[q]) + 1.0)
            checked += 1
    assert checked > 500


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_the_bound_of_an_allocation_at_its_optimal_power_is_its_value(model):
    rng = np.random.default_rng(3 if model == "exact" else 4)
    gaps = []
    for _ in range(40):
        p, c, g = _case(rng, model)
        lg = log_tables(c, g)
        width = p.n_features + 1
        f, s, pat = _allocation(rng, p, width)
        pw, per = np.zeros(width), np.zeros(width)
        fs, is_ = scratch(width)
        exact_power_row(c, g, f, s, pat, width, pw, fs, is_)
        if not (pw > 0).any():
            continue
        value = value_row(c, g, f, s, pat, pw, width, per)
        terms = np.zeros(width)
        lnlam, total = current_bound(c, g, lg, f, s, pat, pw, width, terms)
        bound = c.wd_sum + total - math.exp(lnlam) * c.P
        assert bound <= value + 1e-9 * (abs(value) + math.exp(lnlam) * c.P)
        gaps.append((value - bound) / max(abs(value), 1e-300))
    assert len(gaps) > 30
    # the exact model's H is tabulated (chords of a fine grid), so a tiny gap remains
    assert max(gaps) < (1e-4 if model == "exact" else 1e-9)


def test_bound_applies_only_while_the_clip_at_one_half_never_binds():
    for model in ("exact", "bound"):
        assert bound_applies(ber_model(random_problem(3, 3, seed=0, ber_model=model)))
    mod = ber_model(random_problem(3, 3, seed=0, ber_model="bound"))
    assert not bound_applies(mod._replace(A=np.array([0.5, 0.7, 0.2, 0.2])))
    exact = ber_model(random_problem(3, 3, seed=0))
    assert not bound_applies(exact._replace(qw=exact.qw * 1.5))
    assert isinstance(mod, BerModel)


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_no_power_within_the_budget_beats_a_patterns_bound(model):
    """Every pattern of every prefix, at a multiplier from another pattern (as the pipeline
    takes one from the prefixes before): its bound is at most its score, water-filled or at
    equal shares; at its own multiplier (the bound model: water-filling is its optimal
    power) the bound is its value."""
    rng = np.random.default_rng(5 if model == "exact" else 6)
    checked = 0
    tight = []
    for _ in range(12):
        n_feat = int(rng.choice([4, 6, 9, 12]))
        p = random_problem(
            n_feat,
            int(rng.choice([n_feat, n_feat + 3])),
            seed=int(rng.integers(2**31)),
            snr_db=float(rng.choice([-5.0, 5.0, 15.0])),
            ber_model=model,
        )
        a = pipeline_plan(p, "hierarchical", {"refine": False}).arrays
        g = rng.exponential(size=p.n_subchannels)
        m, mod, n_max, wmax, n_mod, rate, lt, ct = rank_tables(p, a, g)
        t, c, pw, per = (np.zeros(wmax) for _ in range(4))
        order = np.zeros(wmax, np.int64)
        terms = np.zeros((wmax, n_mod))
        for n in range(1, n_max + 1):
            rows = range(a["n_start"][n], a["n_start"][n] + a["n_count"][n])
            scores = {}
            for r in rows:
                for mode in (0, 1):
                    scores[r, mode] = _score_row(
                        a["pats"][r], n, a["row_w"][r], rate, lt, ct, p.power_budget, a["ws"],
                        a["wf"], a["tail"][n], m["qw"], m["qs"], m["ba"], m["bb"], m["exact"],
                        mode, t, c, pw, order, per,
                    )  # fmt: skip
                    if mode == 0:
                        own = _pattern_multiplier(mod, a["pats"][r], n, rate, a["ws"], pw)
                scores[r, "ln"] = own
            for r in rows:
                other = scores[int(rng.choice(list(rows))), "ln"]
                for ln in (other, scores[r, "ln"]):
                    if not np.isfinite(ln):
                        continue
                    lam_p, margin = _prefix_terms(mod, n, rate, a["ws"], a["wf"], a["tail"][n],
                                                  p.power_budget, ln, terms)  # fmt: skip
                    pat = a["pats"][r][:n]
                    bound = a["tail"][n] + terms[np.arange(n), pat].sum() - lam_p
                    assert bound <= min(scores[r, 0], scores[r, 1]) + margin
                    checked += 1
                if np.isfinite(scores[r, "ln"]):
                    tight.append((scores[r, 0] - bound) / abs(scores[r, 0]))
    assert checked > 500
    if model == "bound":
        assert max(tight) < 1e-9
    else:  # water-filling is the bound model's optimum, not the exact one's: looser
        assert np.quantile(tight, 0.1) < 0.01


@pytest.mark.parametrize("kind", ["exact", "bound"])
def test_the_terms_of_every_modulation_at_once_are_those_of_one_at_a_time(kind):
    """``dual_terms_into`` (one grid position of ``mu`` for every modulation) and the slot
    terms built the same way give the values of ``dual_term`` bit for bit, below, on and
    beyond the grid of ``H`` and where ``alpha nu = 0``."""
    from optim.ber_model import dual_terms_into
    from optim.slots import slot_terms

    names = ("bpsk", "qpsk", "16qam", "64qam", "256qam")
    mod = ber_model(random_problem(3, 3, seed=1, ber_model=kind, modulations=names))
    n_mod = mod.f0.size
    rng = np.random.default_rng(2)
    alphas = np.concatenate([[0.0, 1e-300, 1.0, 1e300], rng.lognormal(0, 3, 20)])
    nus = np.concatenate([[0.0, 1e-300, 1.0, 1e300], rng.lognormal(0, 4, 20)])
    lnlams = np.concatenate([[-math.inf, math.inf, -700.0, 0.0, 700.0], rng.normal(0, 20, 40)])
    out = np.empty(n_mod)
    for a, nu, ln in zip(rng.choice(alphas, 4000), rng.choice(nus, 4000),
                         rng.choice(lnlams, 4000), strict=True):  # fmt: skip
        dual_terms_into(mod, a, nu, ln, 0.25, out)
        ref = np.array([0.25 + dual_term(mod, m, a, nu, ln) for m in range(n_mod)])
        np.testing.assert_array_equal(out, ref)
    e = rng.normal(size=alphas.size)
    table = slot_terms(mod, alphas, e, nus, lnlams, n_mod)
    for d, ln in enumerate(lnlams):
        for r, a in enumerate(alphas):
            for s, nu in enumerate(nus):
                dual_terms_into(mod, a, nu, ln, e[r], out)
                np.testing.assert_array_equal(table[d, r, :, s], out)


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_the_local_searchs_log_tables_give_the_per_entry_values_bit_for_bit(model):
    """:func:`optim.batch.local.log_tables` replaces per-entry logarithms: the water-filling
    level of an entry (:func:`optim.batch.arith.log_terms`) and the dual bound's term
    (:func:`optim.ber_model.dual_term`) must come out the same to the last bit, zero and
    infinite gains included."""
    rng = np.random.default_rng(11 if model == "exact" else 12)
    checked = 0
    for _ in range(30):
        p, c, g = _case(rng, model)
        g = g.copy()
        g[rng.random(g.size) < 0.2] = 0.0
        g[rng.random(g.size) < 0.1] = 1e-320
        lg = log_tables(c, g)
        for f in range(p.n_features):
            for sub in range(p.n_subchannels):
                nu = g[sub] / c.noise
                for m in range(len(p.modulations)):
                    level = log_terms(c.w[f] * c.slope[f] * c.A[m], c.B[m] * nu)
                    assert lg.sa[f, m] + lg.cb[sub, m] == level or (
                        math.isnan(level) and math.isnan(lg.sa[f, m] + lg.cb[sub, m])
                    )
                    for lnlam in rng.normal(0.0, 6.0, 3):
                        term = c.e[f] + dual_term(c.mod, m, c.ws[f], nu, lnlam)
                        assert slot_term(c, g, lg, f, sub, m, lnlam) == term
                        checked += 1
    assert checked > 10000
