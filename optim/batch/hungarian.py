"""Minimum-cost assignment (the Hungarian problem) as a Numba kernel callable per frame.

The shortest-augmenting-path method of Crouse (IEEE TAES 52(4), 2016), the algorithm SciPy's
``linear_sum_assignment`` implements, step for step and with the same tie rules (lowest
reduced cost first, an unassigned column preferred on a tie, columns scanned in decreasing
index order), so both return the same assignment whenever the optimum is unique and, in
practice, on ties as well. Rows ``n`` <= columns ``K``; every row gets a distinct column.

Examples:
    >>> import numpy as np
    >>> assign_rows(np.array([[1.0, 0.0], [0.0, 5.0]])).tolist()
    [1, 0]
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def assign_rows(cost: np.ndarray) -> np.ndarray:
    """Column of each row of the minimum-cost injective assignment.

    Args:
        cost: float64 [n, K], finite, ``n <= K``.

    Returns:
        int64 [n]: row ``i``'s column (distinct).
    """
    nr, nc = cost.shape
    u = np.zeros(nr)
    v = np.zeros(nc)
    short = np.empty(nc)
    path = np.full(nc, -1, np.int64)
    col4row = np.full(nr, -1, np.int64)
    row4col = np.full(nc, -1, np.int64)
    seen_r = np.zeros(nr, np.bool_)
    seen_c = np.zeros(nc, np.bool_)
    remaining = np.empty(nc, np.int64)
    for cur in range(nr):
        # shortest augmenting path from row `cur`
        min_val = 0.0
        left = nc
        for it in range(nc):
            remaining[it] = nc - it - 1
        seen_r[:] = False
        seen_c[:] = False
        short[:] = np.inf
        sink = -1
        i = cur
        while sink == -1:
            index = -1
            lowest = np.inf
            seen_r[i] = True
            for it in range(left):
                j = remaining[it]
                r = min_val + cost[i, j] - u[i] - v[j]
                if r < short[j]:
                    path[j] = i
                    short[j] = r
                if short[j] < lowest or (short[j] == lowest and row4col[j] == -1):
                    lowest = short[j]
                    index = it
            min_val = lowest
            if index < 0 or min_val == np.inf:  # not reached for finite costs
                return col4row
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            seen_c[j] = True
            left -= 1
            remaining[index] = remaining[left]
        u[cur] += min_val
        for i in range(nr):
            if seen_r[i] and i != cur:
                u[i] += min_val - short[col4row[i]]
        for j in range(nc):
            if seen_c[j]:
                v[j] -= min_val - short[j]
        j = sink
        while True:
            i = path[j]
            row4col[j] = i
            prev = col4row[i]
            col4row[i] = j
            j = prev
            if i == cur:
                break
    return col4row
