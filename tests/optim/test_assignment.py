"""The compiled Hungarian kernel against SciPy's assignment solver."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from optim.assignment import assignment, assignment_into, assignment_scratch


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
