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

import math

import numba
import numpy as np

from optim.twin import shared


@numba.njit(cache=True)
def assign_rows(cost: np.ndarray) -> np.ndarray:
    """Column of each row of the minimum-cost injective assignment.

    Args:
        cost: float64 [n, K], finite, ``n <= K``.

    Returns:
        int64 [n]: row ``i``'s column (distinct).
    """
    nr, nc = cost.shape
    col4row = np.full(nr, -1, np.int64)
    assign_rows_into(cost, nr, nc, np.empty(nr + 2 * nc), np.empty(nr + 4 * nc, np.int64),
                     col4row)  # fmt: skip
    return col4row


@shared()
def assign_rows_into(cost, nr, nc, fwork, iwork, col4row) -> None:  # noqa: ANN001
    """:func:`assign_rows` of ``cost[:nr, :nc]`` into ``col4row[:nr]``, allocation-free
    (``fwork``: float64 scratch of ``nr + 2 nc``, ``iwork``: int64 scratch of ``nr + 4 nc``);
    the same steps, so the same assignment."""
    u = fwork[:nr]
    v = fwork[nr : nr + nc]
    short = fwork[nr + nc : nr + 2 * nc]
    path = iwork[:nc]
    row4col = iwork[nc : 2 * nc]
    remaining = iwork[2 * nc : 3 * nc]
    seen_c = iwork[3 * nc : 4 * nc]
    seen_r = iwork[4 * nc : 4 * nc + nr]
    for i in range(nr):
        u[i] = 0.0
        col4row[i] = -1
    for j in range(nc):
        v[j] = 0.0
        path[j] = -1
        row4col[j] = -1
    for cur in range(nr):
        # shortest augmenting path from row `cur`
        min_val = 0.0
        left = nc
        for it in range(nc):
            remaining[it] = nc - it - 1
        for i in range(nr):
            seen_r[i] = 0
        for j in range(nc):
            seen_c[j] = 0
            short[j] = math.inf
        sink = -1
        i = cur
        while sink == -1:
            index = -1
            lowest = math.inf
            seen_r[i] = 1
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
            if index < 0 or min_val == math.inf:  # not reached for finite costs
                return
            j = remaining[index]
            if row4col[j] == -1:
                sink = j
            else:
                i = row4col[j]
            seen_c[j] = 1
            left -= 1
            remaining[index] = remaining[left]
        u[cur] += min_val
        for i in range(nr):
            if seen_r[i] != 0 and i != cur:
                u[i] += min_val - short[col4row[i]]
        for j in range(nc):
            if seen_c[j] != 0:
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
