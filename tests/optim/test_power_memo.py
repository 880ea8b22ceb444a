"""A frame's memo of exact optimal powers (:mod:`optim.batch.power_memo`): a pricing taken from
it equals the pricing it stands in for, bit for bit; a different input is never taken for a
stored one. That the batched solver's results do not change is tested in ``test_solve_batch``
(every frame against the per-frame solver, which has no memo)."""

from __future__ import annotations

import numpy as np
import pytest

from optim.batch.power_memo import CAPACITY, new_memo, no_memo, priced_into, priced_row
from optim.ber_model import ber_model
from optim.optimal_power import candidate_value_into, optimal_power_row
from optim.problem import random_problem

WIDTH = 9


def _rows(rng, model_rows: int):
    alpha = rng.exponential(size=(model_rows, WIDTH)) * 1e-3
    nu = rng.exponential(size=(model_rows, WIDTH)) * 10.0
    mods = rng.integers(-1, 4, size=(model_rows, WIDTH))
    return alpha, nu, mods


def _scratch():
    f = [np.zeros(WIDTH) for _ in range(6)]
    i = [np.zeros(WIDTH, np.int64) for _ in range(3)]
    return f, i


def _priced(memo, mod, alpha, nu, mods):
    (a, v, p, g, t, c), (mm, idx, ci) = _scratch()
    out = np.full(WIDTH, np.nan)
    if memo is None:
        val = optimal_power_row(mod, alpha, nu, mods, WIDTH, 40.0, out, a, v, mm, idx, p, g, t, c,
                                ci)  # fmt: skip
    else:
        val = priced_row(memo, mod, alpha, nu, mods, WIDTH, 40.0, out, a, v, mm, idx, p, g, t, c,
                         ci)  # fmt: skip
    return val, out


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_a_pricing_from_the_memo_equals_the_pricing(model):
    mod = ber_model(random_problem(3, 3, seed=0, ber_model=model))
    rng = np.random.default_rng(0)
    alpha, nu, mods = _rows(rng, 2 * CAPACITY)
    memo = new_memo(WIDTH)
    order = list(range(2 * CAPACITY)) + list(rng.integers(0, 2 * CAPACITY, 60))
    for r in order:
        want = _priced(None, mod, alpha[r], nu[r], mods[r])
        got = _priced(memo, mod, alpha[r], nu[r], mods[r])
        assert got[0] == want[0]
        assert np.array_equal(got[1], want[1])
    assert memo.state[0] == CAPACITY


def test_a_repeat_is_taken_from_the_memo_and_a_near_miss_is_not():
    mod = ber_model(random_problem(3, 3, seed=0))
    rng = np.random.default_rng(1)
    alpha, nu, mods = _rows(rng, 1)
    mods[0, :] = np.abs(mods[0, :])  # every entry used
    n = WIDTH
    memo = new_memo(WIDTH)
    (a, v, p, g, t, c), (mm, idx, ci) = _scratch()
    first = priced_into(memo, mod, alpha[0], nu[0], mods[0], n, 40.0, p, g, t, c, idx)
    memo.p[0, 0] = -1.0  # mark the stored powers: a hit returns them
    priced_into(memo, mod, alpha[0], nu[0], mods[0], n, 40.0, p, g, t, c, idx)
    assert p[0] == -1.0
    near = nu[0].copy()
    near[-1] = np.nextafter(near[-1], np.inf)
    again = priced_into(memo, mod, alpha[0], near, mods[0], n, 40.0, p, g, t, c, idx)
    assert p[0] != -1.0 and memo.state[0] == 2
    direct = candidate_value_into(mod, alpha[0], near, mods[0], n, 40.0, np.zeros(n),
                                  np.zeros(n), np.zeros(n), np.zeros(n),
                                  np.zeros(n, np.int64))  # fmt: skip
    assert again == direct
    assert first != again or not np.array_equal(memo.p[0], memo.p[1])
    priced_into(memo, mod, alpha[0], nu[0], mods[0], n, 41.0, p, g, t, c, idx)  # other budget
    assert memo.state[0] == 3


def test_an_empty_memo_remembers_nothing():
    mod = ber_model(random_problem(3, 3, seed=0))
    alpha, nu, mods = _rows(np.random.default_rng(2), 1)
    memo = no_memo(WIDTH)
    for _ in range(3):
        _priced(memo, mod, alpha[0], nu[0], mods[0])
    assert memo.state[0] == 0 and memo.state[1] == 0
