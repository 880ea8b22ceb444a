"""SP2 (optim.selection): prefix candidates and the 1-D search."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optim.problem import random_problem
from optim.selection import max_selectable, prefix_candidates, priority_order, select_prefix


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=20))
def test_select_prefix_is_the_argmin(values):
    result = select_prefix(values.__getitem__, len(values) - 1)
    assert result.best_value == min(values)
    assert result.best_n == values.index(min(values))  # ties: smallest n
    assert result.evaluated == len(values)


def test_early_stop_after_consecutive_rises():
    values = [5.0, 3.0, 4.0, 2.0, 2.5, 2.6, 0.0]
    full = select_prefix(values.__getitem__, 6)
    assert full.best_n == 6
    stopped = select_prefix(values.__getitem__, 6, early_stop=True, patience=2)
    assert (stopped.best_n, stopped.evaluated) == (3, 6)
    assert np.isinf(stopped.values[6])
    once = select_prefix(values.__getitem__, 6, early_stop=True, patience=1)
    assert (once.best_n, once.evaluated) == (1, 3)


def test_max_selectable_matches_brute_force():
    for n, k, eta in [(6, 4, 0.5), (8, 8, 0.1), (3, 9, 1.0), (5, 0, 1.0), (4, 4, 0.0)]:
        p = random_problem(n, k, seed=1, eta=eta)
        s_min = p.symbols_per_feature.min()
        brute = max(m for m in range(min(n, k) + 1) if m * s_min <= p.symbol_budget)
        assert max_selectable(p) == brute
        assert list(prefix_candidates(p)) == list(range(brute + 1))


def test_priority_order():
    w = np.array([0.1, 0.5, 0.1, 0.3])
    assert priority_order(w).tolist() == [0, 1, 2, 3]
    assert priority_order(w, ordered_prior=False).tolist() == [1, 3, 0, 2]


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_early_stop_never_changes_a_unimodal_answer(patience):
    values = [(n - 7) ** 2 for n in range(15)]
    assert select_prefix(values.__getitem__, 14, True, patience).best_n == 7
