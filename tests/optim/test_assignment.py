"""The compiled Hungarian kernel against SciPy's assignment solver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from optim.assignment import (
    assignment,
    assignment_into,
    assignment_or_skip_into,
    assignment_scratch,
)


def _optimum(cost: np.ndarray) -> float:
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


def _check(cost: np.ndarray, value: float, col: np.ndarray) -> None:
    n = cost.shape[0]
    assert len(set(col.tolist())) == n and col.min() >= 0  # every row, distinct columns
    assert value == pytest.approx(float(cost[np.arange(n), col].sum()), rel=1e-12, abs=1e-12)
    assert value == pytest.approx(_optimum(cost), rel=1e-12, abs=1e-12)


def _costs(rng: np.random.Generator, n: int, m: int, kind: str) -> np.ndarray:
    cost = rng.normal(size=(n, m))
    if kind == "ties":
        cost = np.round(cost)
    elif kind == "dual":  # the dual starts' shape: costs <= 0, then n "not sent" columns at 0
        cost = np.minimum(cost, 0.0)
        cost[:, m - n :] = 0.0
    return cost


@pytest.mark.parametrize("kind", ["plain", "ties", "dual"])
def test_cold_start_is_optimal(kind):
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 9))
        m = n + int(rng.integers(0, 9))
        cost = _costs(rng, n, m, kind)
        value, col = assignment(cost, n, m)
        _check(cost, value, col)


def test_reused_work_arrays_give_the_same_assignment_as_fresh_ones():
    """The batched solvers reuse one set of work arrays for every assignment of a frame."""
    rng = np.random.default_rng(2)
    scratch = assignment_scratch(8, 16)
    col = np.empty(8, np.int64)
    for _ in range(200):
        n = int(rng.integers(1, 9))
        m = n + int(rng.integers(0, 9))
        cost = _costs(rng, n, m, "ties")
        value = assignment_into(cost, n, m, *scratch, col[:n])
        fresh_value, fresh_col = assignment(cost, n, m)
        assert value == fresh_value and col[:n].tolist() == fresh_col.tolist()


@pytest.mark.parametrize("kind", ["plain", "ties", "negative"])
def test_leaving_rows_out_equals_the_assignment_with_zero_columns_appended(kind):
    """One "left out" column of unlimited capacity against SciPy on ``[cost | 0]`` with a
    zero column per row (what :func:`assignment_into` is given in the dual starts)."""
    rng = np.random.default_rng(4)
    left_out = 0
    for _ in range(400):
        n = int(rng.integers(1, 10))
        k = int(rng.integers(1, 12))
        cost = rng.normal(size=(n, k))
        if kind == "ties":
            cost = np.round(cost)
        elif kind == "negative":
            cost = np.minimum(cost, 0.0)
        col = np.empty(n, np.int64)
        value = assignment_or_skip_into(cost, n, k, *assignment_scratch(n, k + 1), col)
        used = col[col >= 0]
        assert len(set(used.tolist())) == used.size and col.max() < k
        sent = np.flatnonzero(col >= 0)
        assert value == pytest.approx(float(cost[sent, col[sent]].sum()), rel=1e-12, abs=1e-12)
        padded = np.concatenate([cost, np.zeros((n, n))], axis=1)
        assert value == pytest.approx(_optimum(padded), rel=1e-12, abs=1e-12)
        left_out += int((col < 0).sum())
    assert left_out > 100  # the "left out" column is used
