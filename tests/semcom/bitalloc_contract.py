"""Properties shared by every bit allocator's tests (not a test module itself): the budget is
met exactly and a more important feature never gets fewer bits."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from semcom.bitalloc import BitAllocator


@st.composite
def budgets(draw: st.DrawFn, max_features: int = 12) -> tuple[list[float], float, int, int]:
    """``(weights, average_bits, q_min, q_max)``: a feasible budget, weights with ties and
    zeros (drawn from a small set), not all zero."""
    n = draw(st.integers(1, max_features))
    q_min = draw(st.integers(1, 8))
    q_max = draw(st.integers(q_min, min(16, q_min + 8)))
    total = draw(st.integers(n * q_min, n * q_max))
    values = st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0])
    w = draw(st.lists(values, min_size=n, max_size=n).filter(lambda v: sum(v) > 0))
    return w, total / n, q_min, q_max


def check_budget_and_monotone(
    allocator: BitAllocator, w: list[float], average: float, q_min: int, q_max: int
) -> np.ndarray:
    """Allocate; assert the exact total, the bounds and monotonicity in importance."""
    q = allocator.allocate(w, average, q_min, q_max)
    n = len(w)
    assert q.dtype == np.int64 and q.shape == (n,)
    assert int(q.sum()) == round(average * n)
    assert q.min() >= q_min and q.max() <= q_max
    wa = np.asarray(w)
    more = wa[:, None] > wa[None, :]  # more[i, j]: feature i strictly more important than j
    assert bool(np.all((q[:, None] >= q[None, :])[more]))
    return q
