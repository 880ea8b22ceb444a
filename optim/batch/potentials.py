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

import math

import numba
import numpy as np

from optim.twin import shared


@numba.njit(cache=True)
def potential_assignment(cost: np.ndarray, n_rows: int, n_cols: int):  # noqa: ANN201
    """Every row of ``cost[:n_rows, :n_cols]`` (float64, finite, ``n_rows <= n_cols``) to a
    distinct column at minimum total cost. Returns ``(value, col int64 [n_rows])``."""
    col = np.full(n_rows, -1, np.int64)
    u, v, p, way, minv, done = scratch_of(n_rows, n_cols)
    total = potential_assignment_into(cost, n_rows, n_cols, u, v, p, way, minv, done, col)
    return total, col


@numba.njit(cache=True)
def scratch_of(n_rows: int, n_cols: int):  # noqa: ANN201
    """Work arrays of :func:`potential_assignment_into` for up to ``n_rows x n_cols``."""
    return (
        np.zeros(n_rows + 1),
        np.zeros(n_cols + 1),
        np.zeros(n_cols + 1, np.int64),
        np.zeros(n_cols + 1, np.int64),
        np.empty(n_cols + 1),
        np.zeros(n_cols + 1, np.bool_),
    )


@shared()
def potential_assignment_into(cost, n_rows, n_cols, u, v, p, way, minv, done, col):  # noqa: ANN001, ANN201
    """:func:`potential_assignment` with its work arrays given (those of :func:`scratch_of`,
    reused between calls; ``done`` bool or int) and the columns written into ``col``
    [n_rows]; returns the value. Same arithmetic in the same order, so the same assignment."""
    inf = math.inf
    for i in range(n_rows + 1):
        u[i] = 0.0
    for j in range(n_cols + 1):
        v[j] = 0.0
        p[j] = 0
        way[j] = 0
    for i in range(1, n_rows + 1):
        p[0] = i
        j0 = 0
        for j in range(n_cols + 1):
            minv[j] = inf
            done[j] = False
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
    for i in range(n_rows):
        col[i] = -1
    for j in range(1, n_cols + 1):
        if p[j] > 0:
            col[p[j] - 1] = j - 1
    total = 0.0
    for i in range(n_rows):
        total += cost[i, col[i]]
    return total
