"""The compiled polish of the batched solver (:func:`optim.batch.refine.refine_allocation_into`)
against the per-frame :func:`optim.hierarchical.refine_allocation`, which it mirrors.

The compiled polish skips a step whose inputs have not changed since it last ran (it would
propose what it proposed then). The per-frame code runs every step of every round, so equal
results from many random states, for every subset of the steps, show that nothing a step
would have changed was skipped.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np
import pytest

from optim.batch.plan import pipeline_plan
from optim.batch.power_memo import new_memo
from optim.batch.refine import polish_float_size, polish_int_size, refine_allocation_into
from optim.hierarchical import REFINE_STEPS, refine_allocation
from optim.problem import random_problem


@numba.njit(cache=True)
def _polish(c, cfg, g, f, s, pat, pw, n, uniform):  # noqa: ANN001, ANN202
    """The compiled polish on copies of the state: ``(f, s, pat, pw)[:n']``."""
    n_feat, k, n_mod = c.w.size, g.size, c.A.size
    f, s, pat, pw = f.copy(), s.copy(), pat.copy(), pw.copy()
    fb = np.empty(polish_float_size(n_feat, k, n_mod))
    ib = np.empty(polish_int_size(n_feat, k), np.int64)
    m = refine_allocation_into(c, cfg, g, f, s, pat, pw, n, uniform, fb, ib)
    return f[:m].copy(), s[:m].copy(), pat[:m].copy(), pw[:m].copy()


def _state(rng, problem):
    """A random allocation within the symbol budget: distinct features on distinct
    subchannels, random modulations, the budget's power split at random."""
    n_max = min(problem.n_features, problem.n_subchannels)
    table = problem.symbol_table
    for _ in range(100):
        n = int(rng.integers(1, n_max + 1))
        f = rng.choice(problem.n_features, n, replace=False)
        pat = rng.integers(0, len(problem.modulations), n)
        if table[f, pat].sum() <= problem.symbol_budget:
            break
    else:
        f, pat = f[:1], np.zeros(1, np.int64)
    s = rng.choice(problem.n_subchannels, f.size, replace=False)
    power = rng.dirichlet(np.ones(f.size)) * problem.power_budget
    return f.astype(np.int64), s.astype(np.int64), pat.astype(np.int64), power


STEP_SETS = [s for r in range(1, 5) for s in itertools.combinations(REFINE_STEPS, r)]


@pytest.mark.parametrize("steps", STEP_SETS, ids="-".join)
def test_polish_equals_the_per_frame_polish(steps):
    rng = np.random.default_rng(len(steps) * 101 + sum(map(len, steps)))
    states = 0
    for case in range(6):
        problem = random_problem(
            int(rng.choice([4, 8, 16])),
            int(rng.choice([4, 8, 16])),
            seed=case,
            profile=str(rng.choice(["ordered", "random"])),
            snr_db=float(rng.choice([0.0, 10.0, 20.0])),
            ber_model=str(rng.choice(["exact", "bound"])),
        )
        c, cfg = pipeline_plan(problem, "hierarchical", {"refine_steps": list(steps)}).arrays[
            "refine"
        ]
        for _ in range(8):
            g = rng.exponential(size=problem.n_subchannels)
            frame = problem.replace(gains=g)
            f, s, pat, pw = _state(rng, frame)
            want = refine_allocation(frame, f, s, pat, pw, weights=c.w, steps=steps)
            memo = new_memo(problem.n_features + 1)  # a frame's own, as the batch gives it
            got = _polish(c._replace(memo=memo), cfg, g, f, s, pat, pw, f.size, frame.uniform_bits)
            for a, b in zip(got, want, strict=True):  # features, subchannels, modulations, powers
                np.testing.assert_array_equal(a, b)
            states += 1
    assert states == 48
