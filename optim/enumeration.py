"""The exact optimum of (P0) by exhaustive enumeration of the slot-form candidates.

The search space, its reductions (Lemmas 1-2) and the dual bound (2) are those of
:mod:`optim.slots`; each candidate not pruned gets its optimal power
(:mod:`optim.optimal_power`, Lemma 3).

Algorithm. An incumbent comes from the ordered-prior candidates (top ranks on the top slots,
modulation orders non-decreasing along the slots) solved exactly; its multiplier
``lambda_n`` per candidate size ``n`` fixes the bound (2). A depth-first walk over all
candidates of Lemmas 1-2 accumulates (2) slot by slot; a candidate whose bound is at least
``UB - (rtol UB + atol)`` is skipped (it cannot improve the incumbent by more than the
tolerance), every other one gets its exact optimal power (Lemma 3). So the result is within
``rtol`` (default 1e-9, relative) of the optimum of (P0), ``J >= 0`` always. The walk is
compiled with Numba (one core). Above ``max_candidates`` (default 2e8, i.e. ``N >= 9``)
:func:`optim.exact.solve_exact` switches to the certified branch and bound of
:mod:`optim.bnb_search`, which searches the same space with stronger bounds.

Time limit. The walk runs in slices with the clock checked between them
(:mod:`optim.timebox`). Stopped by ``time_limit`` it returns its incumbent with a proven lower
bound: the visited candidates are at least ``UB - (rtol UB + atol)``, and the unvisited ones
(the subtrees of the untried children of the current path) at least the node bounds of the
branch and bound (:func:`optim.bnb_search.walk_bound`, eq. 3 there: both budgets dualised, an
assignment completion). When that bound already proves the incumbent optimal within the
tolerance, the answer is reported optimal although the walk did not finish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from math import comb, factorial
from typing import TYPE_CHECKING, Any

import numba
import numpy as np

from optim.ber_model import ber_model
from optim.bnb_search import walk_bound
from optim.distortion import objective
from optim.optimal_power import candidate_value
from optim.problem import Allocation
from optim.slots import (
    backtrack,
    column_min,
    dual_bound_terms,
    next_child,
    ordered_prior_incumbent,
    slot_model,
    take_child,
)

if TYPE_CHECKING:
    from optim.problem import Problem
    from optim.timebox import Deadline

__all__ = ["ExactResult", "candidate_count", "enumerate_optimum", "enumerate_walk"]


@dataclass(frozen=True)
class ExactResult:
    """Outcome of :func:`solve_exact_result`.

    allocation: the best allocation found (feature order); objective:
    ``optim.distortion.objective`` of it; candidates: candidates visited (Lemmas 1-2), or
    nodes for the B&B engine; solved: candidates given the exact power solve (the rest were
    pruned by the dual bound (2)), -1 for the B&B engine; seconds: wall time; engine:
    "enumerate" or "bnb"; lower_bound: a proven lower bound on the optimum of (P0);
    optimal: whether ``objective`` is proven optimal within the tolerance
    (``objective - lower_bound <= rtol objective + atol``); stopped_by: None when the search
    completed, else the limit that stopped it ("time_limit" or "node_limit": the allocation
    is then the best incumbent, optimal only if the bound proves it).
    """

    allocation: Allocation
    objective: float
    candidates: int
    solved: int
    seconds: float
    engine: str = "enumerate"
    lower_bound: float = 0.0
    optimal: bool = True
    stopped_by: str | None = None

    @property
    def gap(self) -> float:
        """``(objective - lower_bound) / objective`` (0 when ``objective = 0``)."""
        if self.objective <= 0:
            return 0.0
        return max(0.0, (self.objective - self.lower_bound) / self.objective)

    def status(self) -> dict[str, Any]:
        """JSON-ready certificate: optimal, lower_bound, gap, stopped_by."""
        return {
            "optimal": bool(self.optimal),
            "lower_bound": float(self.lower_bound),
            "gap": float(self.gap),
            "stopped_by": self.stopped_by,
        }


def candidate_count(n_features: int, n_subchannels: int, n_modulations: int) -> int:
    """Number of candidates of Lemmas 1-2 (symbol budget ignored).

    ``sum_n C(N, n) sum_{c} multinomial(n; c)^2`` over compositions ``c`` of ``n`` into
    ``M`` class sizes, ``n <= min(N, K)``: choose the features, which of them gets each
    modulation, and which slots each class occupies (the order inside a class is fixed).
    """
    kp = min(n_features, n_subchannels)
    # sum over compositions of (n! / prod c!)^2 = (n!)^2 [x^n] (sum_j x^j / (j!)^2)^M
    series = [1.0 / factorial(j) ** 2 for j in range(kp + 1)]
    poly = [1.0] + [0.0] * kp
    for _ in range(n_modulations):
        new = [0.0] * (kp + 1)
        for a, va in enumerate(poly):
            for b in range(kp + 1 - a):
                new[a + b] += va * series[b]
        poly = new
    total = 0
    for n in range(kp + 1):
        total += comb(n_features, n) * round(factorial(n) ** 2 * poly[n])
    return int(total)


@numba.njit(cache=True)
def enumerate_walk(
    mod,
    alpha_r,
    e_r,
    nu,
    sym,
    smax,
    budget,
    base,
    bterm,
    lam,
    rtol,
    atol,
    state,
    cursor,
    cur_r,
    cur_m,
    prev_last,
    last,
    used,
    symu,
    pre,
    best_r,
    best_m,
    ub_arr,
    max_visits,
):
    """Resume the depth-first walk over all candidates for at most ``max_visits`` of them;
    True when the walk is complete. See the module docstring.

    ``alpha_r``, ``e_r`` [N] are in rank order; ``bterm[d, r, m, s]`` is the slot term of (2)
    at ``lambda_d`` (``d`` = candidate size - 1) for rank ``r``, modulation ``m`` on slot
    ``s``; ``lam[d]`` the multiplier. ``state = [depth, best_n, visited, solved]`` (int64)
    and the other arrays hold the walk's position between calls (start: depth 0, cursors and
    ``last`` -1, nothing ``used``, ``symu`` and ``pre`` 0, ``visited = 1`` for the empty
    candidate) and the incumbent (``best_r``, ``best_m``, value ``ub_arr[0]``).
    """
    n_feat = alpha_r.size
    n_mod = sym.shape[1]
    symmin = column_min(sym)
    kp = nu.size
    ub = ub_arr[0]
    a_buf = np.empty(kp)
    n_buf = np.empty(kp)
    m_buf = np.empty(kp, np.int64)
    p_buf = np.zeros(kp)
    g_buf = np.zeros(kp)
    depth = state[0]
    count = 0
    while depth >= 0:
        if count >= max_visits:
            state[0] = depth
            ub_arr[0] = ub
            return False
        if depth == kp:
            depth = backtrack(depth, cur_r, cur_m, prev_last, last, used)
            continue
        c = next_child(cursor[depth] + 1, n_mod, n_feat, sym, symmin, symu[depth], smax, last, used)
        if c < 0:
            depth = backtrack(depth, cur_r, cur_m, prev_last, last, used)
            continue
        m, r = take_child(c, depth, n_feat, cursor, cur_r, cur_m, prev_last, last, used)
        symu[depth + 1] = symu[depth] + sym[r, m]
        for d in range(depth, kp):
            pre[depth + 1, d] = pre[depth, d] + bterm[d, r, m, depth]
        n = depth + 1
        count += 1
        state[2] += 1
        lb = base + pre[n, n - 1] - lam[n - 1] * budget
        if lb < ub - (rtol * ub + atol):
            for s in range(n):
                a_buf[s] = alpha_r[cur_r[s]]
                n_buf[s] = nu[s]
                m_buf[s] = cur_m[s]
            v, _ = candidate_value(mod, a_buf, n_buf, m_buf, n, budget, p_buf, g_buf)
            for s in range(n):
                v += e_r[cur_r[s]]
            v += base
            state[3] += 1
            if v < ub:
                ub = v
                state[1] = n
                for s in range(n):
                    best_r[s] = cur_r[s]
                    best_m[s] = cur_m[s]
        depth += 1
        cursor[depth] = -1
    state[0] = -1
    ub_arr[0] = ub
    return True


def enumerate_optimum(
    problem: Problem,
    *,
    rtol: float,
    atol: float,
    deadline: Deadline,
    node_limit: int | None,
    start: float,
) -> ExactResult:
    """The enumeration of the module docstring, with its certificate.

    Args:
        problem: The instance (its candidate count is the caller's to check,
            :func:`candidate_count`).
        rtol, atol: Pruning tolerance (checked by the caller): the result is within
            ``rtol J + atol`` of the optimum when ``optimal``.
        deadline: The wall-clock limit of the whole call (:class:`optim.timebox.Deadline`).
        node_limit: Maximum candidates visited, or None.
        start: ``time.perf_counter()`` when the caller's clock started (for ``seconds``).

    Returns:
        An :class:`ExactResult` with ``engine = "enumerate"``.
    """
    sm = slot_model(problem)
    mod = ber_model(problem)
    kp = sm.nu.size
    if kp == 0:
        alloc = Allocation.send_nothing()
        value = objective(problem, alloc)
        return ExactResult(alloc, value, 1, 0, time.perf_counter() - start, lower_bound=value)
    ub, r0, m0, n0, loglam = ordered_prior_incumbent(problem, sm, mod, deadline)
    bterm = dual_bound_terms(problem, sm, loglam)
    lam = np.where(np.isfinite(loglam), np.exp(loglam), 0.0)
    alpha_r = sm.alpha[sm.order].copy()
    e_r = sm.gain_cost[sm.order].copy()
    n_mod = sm.symbols.shape[1]
    walk = {
        "state": np.array([0, n0, 1, 0], dtype=np.int64),  # depth, best n, visited, solved
        "cursor": np.full(kp + 1, -1, np.int64),
        "cur_r": np.zeros(kp, np.int64),
        "cur_m": np.zeros(kp, np.int64),
        "prev_last": np.zeros(kp, np.int64),
        "last": np.full(n_mod, -1, np.int64),
        "used": np.zeros(alpha_r.size, np.bool_),
        "symu": np.zeros(kp + 1),
        "pre": np.zeros((kp + 1, kp)),  # pre[depth, d]: partial sum of (2) at lambda_d
    }
    best_r, best_m = r0.copy(), m0.copy()
    ub_arr = np.array([ub])

    def step(units: int) -> bool:
        return enumerate_walk(
            mod, alpha_r, e_r, sm.nu, sm.symbols, sm.symbol_budget, sm.power_budget, sm.base,
            bterm, lam, float(rtol), float(atol), *walk.values(), best_r, best_m, ub_arr,
            units,
        )  # fmt: skip

    complete, stopped_by = deadline.run(step, first=1 << 14, limit=node_limit)
    state = walk["state"]
    n = int(state[1])
    if n == 0:
        alloc = Allocation.send_nothing()
    else:  # the optimal powers of the winner (the walk keeps no powers)
        p = np.zeros(n)
        g = np.zeros(n)
        a = alpha_r[best_r[:n]].copy()
        candidate_value(mod, a, sm.nu[:n].copy(), best_m[:n].copy(), n, sm.power_budget, p, g)
        alloc = Allocation(
            sm.order[best_r[:n]],
            sm.slot_channel[:n],
            tuple(problem.modulations[m] for m in best_m[:n]),
            p,
        ).sorted()
    value = objective(problem, alloc)
    tol = rtol * value + atol
    lower = value - tol  # every visited candidate is >= this (solved, or pruned by (2))
    if not complete:
        lower = min(lower, walk_bound(problem, sm, mod, loglam, value, walk, deadline))
    lower = min(max(lower, 0.0), value)
    return ExactResult(
        alloc, value, int(state[2]), int(state[3]), time.perf_counter() - start, "enumerate",
        lower, complete or lower >= value - tol, stopped_by,
    )  # fmt: skip
