"""The Hungarian kernel: a minimum-cost assignment of rows to distinct columns (Numba).

Used inside compiled searches (the branch and bound's completion bound, the Lagrangian dual
starts of the per-frame and the batched solver), where SciPy's ``linear_sum_assignment``
cannot be called. The algorithm is the Hungarian method with potentials (shortest augmenting
paths over columns), ``O(n_rows^2 n_cols)``; on ties it may pick another optimal assignment
than SciPy (whose variant :mod:`optim.batch.hungarian` reproduces), so every search that must
break ties alike calls this one. :func:`assignment_into` is written once for both targets
(:func:`optim.twin.shared`): the batched CPU loop and the GPU twin call it with reused work
arrays, :func:`assignment` allocates them. :func:`assignment_or_skip_into` solves the form in
which a row may also be left out at cost 0 with one extra column of unlimited capacity instead
of a zero column per row.

Examples:
    >>> import numpy as np
    >>> cost = np.array([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0]])
    >>> value, col = assignment(cost, 2, 3)
    >>> float(value), col.tolist()
    (3.0, [1, 0])
"""

from __future__ import annotations

import math

import numba
import numpy as np

from optim.twin import shared

__all__ = ["assignment", "assignment_into", "assignment_or_skip_into", "assignment_scratch"]


@numba.njit(cache=True)
def assignment(cost, n_rows, n_cols):  # noqa: ANN001, ANN201
    """Minimum-cost assignment of every row to a distinct column, ``n_rows <= n_cols``.

    ``cost`` (float64, finite) is read in ``[:n_rows, :n_cols]``. Returns
    ``(value, col int64 [n_rows])``, the column of each row.
    """
    col = np.full(n_rows, -1, np.int64)
    u, v, p, way, minv, done = assignment_scratch(n_rows, n_cols)
    total = assignment_into(cost, n_rows, n_cols, u, v, p, way, minv, done, col)
    return total, col


@numba.njit(cache=True)
def assignment_scratch(n_rows: int, n_cols: int):  # noqa: ANN201
    """Work arrays ``(u, v, p, way, minv, done)`` of :func:`assignment_into` for up to
    ``n_rows x n_cols``."""
    return (
        np.zeros(n_rows + 1),
        np.zeros(n_cols + 1),
        np.zeros(n_cols + 1, np.int64),
        np.zeros(n_cols + 1, np.int64),
        np.empty(n_cols + 1),
        np.zeros(n_cols + 1, np.bool_),
    )


@shared()
def _shortest_paths(cost, n_rows, n_cols, skip, u, v, p, way, minv, done) -> None:  # noqa: ANN001
    """The Hungarian method's phases from zero potentials: row ``i`` (1-based) is matched by a
    shortest augmenting path over the reduced costs ``c - u[row] - v[column]``. Columns of the
    work arrays are 1-based: real column ``j`` of ``cost`` at ``j + 1``, or at ``j + 2``
    with ``skip``, where column 1 is the "left out" column (cost 0, unlimited capacity: it
    ends every path that reaches it and is never added to the search tree, so its potential
    stays 0 and a row in it stays tight). ``p[j]``: the row of column ``j`` (0: free)."""
    inf = math.inf
    first = 2 if skip else 1
    last = n_cols + first - 1
    for i in range(n_rows + 1):
        u[i] = 0.0
    for j in range(last + 1):
        v[j] = 0.0
        p[j] = 0
        way[j] = 0
    for i in range(1, n_rows + 1):
        p[0] = i
        j0 = 0
        for j in range(last + 1):
            minv[j] = inf
            done[j] = False
        while True:
            done[j0] = True
            i0 = p[j0]
            delta = inf
            j1 = 0
            for j in range(1, last + 1):
                if not done[j]:
                    c = cost[i0 - 1, j - first] if j >= first else 0.0
                    cur = c - u[i0] - v[j]
                    if cur < minv[j]:
                        minv[j] = cur
                        way[j] = j0
                    if minv[j] < delta:
                        delta = minv[j]
                        j1 = j
            for j in range(last + 1):
                if done[j]:
                    u[p[j]] += delta
                    v[j] -= delta
                else:
                    minv[j] -= delta
            j0 = j1
            if p[j0] == 0 or j0 < first:
                break
        while True:
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
            if j0 == 0:
                break


@shared()
def _columns_into(cost, n_rows, n_cols, skip, p, col) -> float:  # noqa: ANN001
    """The column of each row from ``p`` into ``col`` (-1: left out) and the assignment's cost
    (by rows)."""
    first = 2 if skip else 1
    for i in range(n_rows):
        col[i] = -1
    for j in range(first, n_cols + first):
        if p[j] > 0:
            col[p[j] - 1] = j - first
    total = 0.0
    for i in range(n_rows):
        if col[i] >= 0:
            total += cost[i, col[i]]
    return total


@shared()
def assignment_into(cost, n_rows, n_cols, u, v, p, way, minv, done, col):  # noqa: ANN001, ANN201
    """:func:`assignment` with its work arrays given (those of :func:`assignment_scratch`,
    reused between calls; ``done`` bool or int) and the columns written into ``col``
    [n_rows]; returns the value."""
    _shortest_paths(cost, n_rows, n_cols, False, u, v, p, way, minv, done)
    return _columns_into(cost, n_rows, n_cols, False, p, col)


@shared()
def assignment_or_skip_into(cost, n_rows, n_cols, u, v, p, way, minv, done, col):  # noqa: ANN001, ANN201
    """A minimum-cost assignment in which a row may also be left out at cost 0: columns
    ``cost[:n_rows, :n_cols]`` each take at most one row; ``col[i]`` is the column of row
    ``i``, -1 if left out. Returns the value. Work arrays: those of
    :func:`assignment_scratch` ``(n_rows, n_cols + 1)``.

    The same problem as :func:`assignment_into` on ``[cost | 0]`` with ``n_rows`` zero
    columns appended, solved with one "left out" column of unlimited capacity in their place
    (:func:`_shortest_paths`), so each augmenting path scans ``n_cols + 1`` columns instead
    of ``n_cols + n_rows``. The optimum is the same; where several assignments are optimal it
    may pick another one than :func:`assignment_into` does.
    """
    _shortest_paths(cost, n_rows, n_cols, True, u, v, p, way, minv, done)
    return _columns_into(cost, n_rows, n_cols, True, p, col)
