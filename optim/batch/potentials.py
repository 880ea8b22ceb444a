"""Minimum-cost assignment by the Hungarian algorithm with potentials (shortest augmenting
paths over columns, ``O(n_rows^2 n_cols)``), the variant the branch and bound and the dual
starts of the per-frame solver use; written out again here so that the batched dual starts
break ties exactly as they do (it differs from :mod:`optim.batch.hungarian`, SciPy's
variant, on ties).

Examples:
    >>> import numpy as np
    >>> value, col = potential_assignment(np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0]]), 2, 3)
    >>> float(value), col.tolist()
    (3.0, [1, 0])
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def potential_assignment(cost: np.ndarray, n_rows: int, n_cols: int):  # noqa: ANN201
    """Every row of ``cost[:n_rows, :n_cols]`` (float64, finite, ``n_rows <= n_cols``) to a
    distinct column at minimum total cost. Returns ``(value, col int64 [n_rows])``."""
    inf = np.inf
    u = np.zeros(n_rows + 1)
    v = np.zeros(n_cols + 1)
    p = np.zeros(n_cols + 1, np.int64)
    way = np.zeros(n_cols + 1, np.int64)
    minv = np.empty(n_cols + 1)
    done = np.zeros(n_cols + 1, np.bool_)
    for i in range(1, n_rows + 1):
        p[0] = i
        j0 = 0
        minv[:] = inf
        done[:] = False
        while True:
            done[j0] = True
            i0 = p[j0]
            delta = inf
            j1 = 0
            for j in range(1, n_cols + 1):
                if not done[j]:
                    cur = cost[i0 - 1, j - 1] - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(n_cols + 1):
                if done[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break
    col = np.full(n_rows, -1, np.int64)
    for j in range(1, n_cols + 1):
        if p[j] > 0:
            col[p[j] - 1] = j - 1
    total = 0.0
    for i in range(n_rows):
        total += cost[i, col[i]]
    return total, col
