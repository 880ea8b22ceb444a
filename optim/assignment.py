"""The Hungarian kernel: a minimum-cost assignment of rows to distinct columns (Numba).

Used inside compiled searches (the branch and bound's completion bound, the Lagrangian dual
starts), where SciPy's ``linear_sum_assignment`` cannot be called.

Examples:
    >>> import numpy as np
    >>> cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0]])
    >>> value, col = assignment(cost, 2, 3)
    >>> float(value), col.tolist()
    (3.0, [1, 0])
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["assignment"]


@numba.njit(cache=True)
def assignment(cost, n_rows, n_cols):
    """Minimum-cost assignment of every row to a distinct column, ``n_rows <= n_cols``.

    Hungarian algorithm with potentials (shortest augmenting paths), O(n_rows^2 n_cols);
    ``cost`` is read in ``[:n_rows, :n_cols]``. Returns (value, column of each row).
    """
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
