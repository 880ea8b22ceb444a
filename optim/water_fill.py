"""Closed-form water-filling of one row, compiled once for the per-frame and the batched solver.

For terms ``alpha_i Pb`` with the bound ``Pb = a exp(-b g p)`` (:mod:`optim.power`), the
optimal powers under ``sum_i p_i = P`` are ``p_i = max(0, (t_i - nu) / c_i)`` with
``t_i = ln(alpha_i c_i)`` and the rates ``c_i``. The active set is the largest top-``j`` by
``t`` with ``sum_{r < j} (t_r - t_(j)) / c_r < P``; on it, in a cancellation-free form,
``p_i = (u_i - ubar) / c_i + P (1 / c_i) / sum_A 1/c`` with ``u = t - t_(1)`` and
``ubar = sum_A u / c / sum_A 1/c`` (the NumPy reference ``closed_form`` of the tests).

:func:`water_fill_levels` is that formula for one row, :func:`sort_decreasing` its ordering
(both :func:`optim.twin.shared`: the same code on the CPU and the GPU);
:func:`optim.kernels.water_fill_rows` loops it over rows and
:func:`optim.batch.arith.water_fill` adds the per-frame solver's rescaling onto the budget.
"""

from __future__ import annotations

import math

import numpy as np

from optim.twin import shared

__all__ = ["insertion_sort_decreasing", "sort_decreasing", "water_fill_levels"]

INSERTION_MAX = 32
"""Longest row :func:`sort_decreasing` sorts by insertion (longer ones by ``np.argsort``)."""


@shared(inline="always")
def insertion_sort_decreasing(t: np.ndarray, order: np.ndarray, active: int) -> None:
    """Write into ``order[:active]`` the indices of ``t[:active]`` by decreasing value, ties
    by index (an insertion sort: no allocation)."""
    for j in range(active):
        v = t[j]
        k = j
        while k > 0 and t[order[k - 1]] < v:
            order[k] = order[k - 1]
            k -= 1
        order[k] = j


def _sort_decreasing_device(t: np.ndarray, order: np.ndarray, active: int) -> None:
    """GPU twin of :func:`sort_decreasing`: insertion sort at every length (no allocation)."""
    insertion_sort_decreasing(t, order, active)


@shared(cuda=_sort_decreasing_device, nrt=True)  # np.argsort allocates
def sort_decreasing(t: np.ndarray, order: np.ndarray, active: int) -> None:
    """Write into ``order[:active]`` the indices of ``t[:active]`` by decreasing value.

    Up to 32 entries an insertion sort (ties by index); longer rows ``np.argsort(-t)``, whose
    order of exact ties both CPU solvers share. The GPU twin sorts every length by insertion,
    so on rows of more than 32 useful entries with exactly equal ``t`` it may visit ties in
    another order (the powers then agree to rounding).
    """
    if active <= INSERTION_MAX:
        insertion_sort_decreasing(t, order, active)
    else:
        order[:active] = np.argsort(-t[:active])


@shared()
def water_fill_levels(t: np.ndarray, c: np.ndarray, width: int, budget: float,
                      order: np.ndarray, p: np.ndarray, active: int) -> None:  # fmt: skip
    """Write into ``p[:width]`` the powers ``max(0, (t_i - nu)/c_i)`` summing to ``budget``
    (module docstring), without rescaling their rounding error.

    ``t[:width]`` is ``ln(alpha c)`` (``-inf``: no gain from power), ``c`` the rates;
    ``order`` is scratch of at least ``width`` entries. Zeros when ``budget <= 0`` or no entry
    is useful. ``active`` (-1: ``width``): only ``t[:active]`` may be finite (a padded row):
    the rest get no power.
    """
    for j in range(width):
        p[j] = 0.0
    if active < 0:
        active = width
    if not budget > 0 or active == 0:
        return
    sort_decreasing(t, order, active)
    top = t[order[0]]
    if not math.isfinite(top):
        return
    s1 = 0.0
    s2 = 0.0
    count = 0
    for j in range(active):
        i = order[j]
        if not math.isfinite(t[i]):
            break
        u = t[i] - top
        inv = 1.0 / c[i]
        if s2 + u * inv - u * (s1 + inv) < budget:
            s1 += inv
            s2 += u * inv
            count += 1
        else:
            break
    if count == 0:
        return
    ubar = s2 / s1
    for j in range(count):
        i = order[j]
        inv = 1.0 / c[i]
        v = (t[i] - top - ubar) * inv + budget * inv / s1
        p[i] = v if v > 0.0 else 0.0
