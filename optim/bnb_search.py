"""Branch and bound for (P0) at medium sizes (N, K ~ 8-16): a certified optimum or a bound.

Search space. That of :mod:`optim.slots` (its Lemmas 1-2, proven there): a node fixes the
contents ``(feature rank r, modulation m)`` of slots ``0..n-1`` (slot ``s`` is the ``s``-th
strongest subchannel, ``nu_0 >= nu_1 >= ...``), with the symbol budget met and, per
modulation, ranks increasing along the slots. The node's own candidate is "send exactly
these" (exact optimal power, Lemma 3 of :mod:`optim.optimal_power`); its children add one pair on
slot ``n``. Depth-first, children in (modulation, rank) order.

Node bound. For multipliers ``lambda >= 0`` (power) and ``kappa >= 0`` (symbols) let::

    C(r, m, s) = e_r + alpha_r H_m(lambda / (alpha_r nu_s)) + kappa S_r(m)

(``H`` from eq. 2 of :mod:`optim.slots`, replaced there by a valid lower bound). Weak duality
on both budgets (``alpha f(nu p) >= alpha H(lambda/(alpha nu)) - lambda p``,
``sum p <= P``, ``sum S_r(m) <= S_max``; ``S_r(m)`` the symbols of the feature of rank
``r``, equal for all ranks unless ``Q`` is per feature) gives, for every candidate with pairs
on slots ``s``::

    J >= base - lambda P - kappa S_max + sum_s C(r_s, m_s, s).                     (3)

At a node with ``n`` slots filled, split the sum into the fixed prefix and the completion.
Every completion puts distinct unused features on distinct free slots (``>= n``), each with a
modulation *allowed* at the node (rank above the last rank of that class, ``S_r(m)`` within
the symbols left: both hold for any pair a completion adds). So the completion costs at least
``min`` over partial assignments of features to free slots of
``sum c(r, s)``, ``c(r, s) = min(0, min_{m allowed} C(r, m, s))`` (``min(0, .)``: leaving a
feature out costs 0), an assignment problem solved exactly (Hungarian algorithm with one
"not sent" column per feature, :func:`optim.assignment.assignment`). The node bound is the
maximum of (3) with this completion over a few fixed multiplier pairs; a node whose bound is
``>= UB - (rtol UB + atol)`` is pruned with its subtree. The node's own candidate is solved
only when (3) without completion (for the same pairs and for ``(lambda_d, 0)``, ``lambda_d``
the multiplier of the best ordered-prior candidate of size ``d + 1``) is below that.

Multipliers. Chosen once, at the root: a grid of ``(ln lambda, ln kappa)`` around the largest
``lambda_d``, refined by a pattern search, maximising the root bound; the best pair (and the
best pair with ``kappa = 0``) are kept. The Hungarian solution of every grid pair is also a
primal candidate: when it meets the symbol budget it is solved exactly and may become the
first incumbent (as may ``initial``, e.g. the hierarchical solution).

Lower bound under a limit. Every unexplored candidate lies in the subtree of a not yet
visited child of a node on the current path; the bound returned is the minimum of
``UB - (rtol UB + atol)`` (the pruned nodes) and of the node bounds of all those children,
computed when the search stops. When the search completes, or that bound is within the
tolerance of the incumbent, the incumbent is optimal within the tolerance (``certified``).

Time limit. ``time_limit`` bounds the wall time of the whole call: the search runs in slices
of nodes with the clock checked between them (:mod:`optim.timebox`), and the setup checks it
too (the ordered-prior pass between sizes, the multiplier refinement between steps), and
:func:`optim.bnb.solve_bnb` skips its warm-start solver once the time is up. What cannot be cut
short: one ordered-prior size, the root multiplier grid (one compiled call) and the final
bound.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numba
import numpy as np

from channels.errors import ConfigError, check_real
from optim.assignment import assignment
from optim.ber_model import BerModel, ber_model
from optim.distortion import objective
from optim.optimal_power import candidate_value
from optim.problem import Allocation, Problem
from optim.slots import (
    SlotModel,
    backtrack,
    column_min,
    dual_bound_terms,
    next_child,
    ordered_prior_incumbent,
    slot_model,
    take_child,
)
from optim.timebox import Deadline, check_limits

__all__ = ["MAX_SLOTS", "BnBResult", "branch_and_bound", "check_bnb_options", "walk_bound"]

MAX_SLOTS = 64
"""Largest ``min(N, K)`` accepted (tables of ``(min(N, K) + 2) x N x M x min(N, K)``)."""


@dataclass(frozen=True)
class BnBResult:
    """Outcome of :func:`branch_and_bound` (and :func:`optim.bnb.solve_bnb`).

    allocation: best allocation found (feature order); objective: its
    ``optim.distortion.objective``; lower_bound: a proven lower bound on the optimum of (P0);
    gap: ``(objective - lower_bound) / objective`` (0 when ``objective = 0``); nodes: nodes
    visited; seconds: wall time; certified: ``objective`` is proven optimal within the
    tolerance (the search completed, or the bound of the unexplored part proves it);
    stopped_by: None when the search completed, else "time_limit" or "node_limit".
    """

    allocation: Allocation
    objective: float
    lower_bound: float
    gap: float
    nodes: int
    seconds: float
    certified: bool
    stopped_by: str | None = None


@numba.njit(cache=True)
def _completion(cq, n, kp, used, last, left, sym, work, pick_r, pick_s, pick_m):
    """Completion bound of the module docstring for one multiplier pair (``cq[r, m, s]``).

    Rows: unused features; columns: free slots ``n..kp-1``, then one "not sent" column per
    feature (cost 0). Returns the assignment value and writes the chosen pairs into
    ``pick_*`` (``-1`` padded), a primal completion for heuristics.
    """
    n_feat = used.size
    n_mod = sym.shape[1]
    pick_r[:] = -1
    pick_s[:] = -1
    pick_m[:] = -1
    rows = np.empty(n_feat, np.int64)
    a = 0
    for r in range(n_feat):
        if not used[r]:
            rows[a] = r
            a += 1
    b = kp - n
    if a == 0 or b <= 0:
        return 0.0
    best_m = np.full((a, b), -1, np.int64)
    for i in range(a):
        r = rows[i]
        for j in range(b):
            c = 0.0
            for m in range(n_mod):
                if r > last[m] and sym[r, m] <= left:
                    t = cq[r, m, n + j]
                    if t < c:
                        c = t
                        best_m[i, j] = m
            work[i, j] = c
        for j in range(b, b + a):
            work[i, j] = 0.0
    total, col = assignment(work, a, a + b)
    k = 0
    for i in range(a):
        j = col[i]
        if j < b and best_m[i, j] >= 0:
            pick_r[k] = rows[i]
            pick_s[k] = n + j
            pick_m[k] = best_m[i, j]
            k += 1
    return total


@numba.njit(cache=True)
def _node_bound(cq, const, pre_n, q0, n, kp, used, last, symu_n, sym, smax, work):
    """Max over pairs ``q >= q0`` of (3) with the assignment completion."""
    best = -np.inf
    pr = np.empty(kp, np.int64)
    ps = np.empty(kp, np.int64)
    pm = np.empty(kp, np.int64)
    left = smax - symu_n
    for q in range(q0, const.size):
        z = _completion(cq[q], n, kp, used, last, left, sym, work, pr, ps, pm)
        lb = const[q] + pre_n[q] + z
        if lb > best:
            best = lb
    return best


@numba.njit(cache=True)
def _stop_bound(const, pre_n):
    """Max over all pairs of (3) for the node's own candidate (no completion)."""
    best = -np.inf
    for q in range(const.size):
        v = const[q] + pre_n[q]
        if v > best:
            best = v
    return best


@numba.njit(cache=True)
def _solve_pairs(mod, alpha_r, e_r, nu, base, budget, ranks, mods, slots, n, pbuf, gbuf):
    """Exact value of sending ranks ``ranks[:n]`` with ``mods`` on slots ``slots``."""
    a = np.empty(n)
    v = np.empty(n)
    mm = np.empty(n, np.int64)
    for j in range(n):
        a[j] = alpha_r[ranks[j]]
        v[j] = nu[slots[j]]
        mm[j] = mods[j]
    val, _ = candidate_value(mod, a, v, mm, n, budget, pbuf, gbuf)
    for j in range(n):
        val += e_r[ranks[j]]
    return val + base


@numba.njit(cache=True)
def _bnb_walk(
    mod,
    alpha_r,
    e_r,
    nu,
    sym,
    smax,
    budget,
    base,
    cq,
    const,
    q0,
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
    best_s,
    ub_arr,
    max_nodes,
    heur_depth,
):
    """Resume the depth-first search for at most ``max_nodes`` nodes; True when finished.

    ``state = [depth, best_n, nodes, solved, started]`` (int64); the other arrays hold the
    search position between calls and the incumbent (``best_*``, value ``ub_arr[0]``).
    At nodes with at most ``heur_depth`` slots filled that are not pruned, the prefix plus the
    assignment completion of the first node pair is solved as a primal candidate when it
    meets the symbol budget.
    """
    n_feat = alpha_r.size
    n_mod = sym.shape[1]
    symmin = column_min(sym)
    kp = nu.size
    n_pair = const.size
    work = np.empty((n_feat, n_feat + kp))
    p_buf = np.zeros(kp)
    g_buf = np.zeros(kp)
    slots = np.arange(kp)
    hr = np.empty(kp, np.int64)
    hm = np.empty(kp, np.int64)
    hs = np.empty(kp, np.int64)
    pr = np.empty(kp, np.int64)
    ps = np.empty(kp, np.int64)
    pm = np.empty(kp, np.int64)
    depth = state[0]
    ub = ub_arr[0]
    count = 0
    if state[4] == 0:  # root
        state[4] = 1
        state[2] += 1
        lb = _node_bound(cq, const, pre[0], q0, 0, kp, used, last, 0.0, sym, smax, work)
        if kp == 0 or lb >= ub - (rtol * ub + atol):
            state[0] = -1
            return True
        cursor[0] = -1
        depth = 0
        count = 1
    while depth >= 0:
        if count >= max_nodes:
            state[0] = depth
            ub_arr[0] = ub
            return False
        c = next_child(cursor[depth] + 1, n_mod, n_feat, sym, symmin, symu[depth], smax, last, used)
        if c < 0:
            depth = backtrack(depth, cur_r, cur_m, prev_last, last, used)
            continue
        m, r = take_child(c, depth, n_feat, cursor, cur_r, cur_m, prev_last, last, used)
        n = depth + 1
        symu[n] = symu[depth] + sym[r, m]
        for q in range(n_pair):
            pre[n, q] = pre[depth, q] + cq[q, r, m, depth]
        count += 1
        state[2] += 1
        tol = rtol * ub + atol
        if _stop_bound(const, pre[n]) < ub - tol:
            v = _solve_pairs(
                mod, alpha_r, e_r, nu, base, budget, cur_r, cur_m, slots, n, p_buf, g_buf
            )
            state[3] += 1
            if v < ub:
                ub = v
                ub_arr[0] = ub
                state[1] = n
                for s in range(n):
                    best_r[s] = cur_r[s]
                    best_m[s] = cur_m[s]
                    best_s[s] = s
                tol = rtol * ub + atol
        descend = n < kp
        if descend:
            lb = _node_bound(cq, const, pre[n], q0, n, kp, used, last, symu[n], sym, smax, work)
            descend = lb < ub - tol
        if descend and n <= heur_depth:
            _completion(cq[q0], n, kp, used, last, smax - symu[n], sym, work, pr, ps, pm)
            k = n
            symbols = symu[n]
            for s in range(n):
                hr[s] = cur_r[s]
                hm[s] = cur_m[s]
                hs[s] = s
            j = 0
            while j < kp and pr[j] >= 0:
                hr[k] = pr[j]
                hm[k] = pm[j]
                hs[k] = ps[j]
                symbols += sym[pr[j], pm[j]]
                k += 1
                j += 1
            if k > n and symbols <= smax:
                v = _solve_pairs(mod, alpha_r, e_r, nu, base, budget, hr, hm, hs, k, p_buf, g_buf)
                state[3] += 1
                if v < ub:
                    ub = v
                    ub_arr[0] = ub
                    state[1] = k
                    for s in range(k):
                        best_r[s] = hr[s]
                        best_m[s] = hm[s]
                        best_s[s] = hs[s]
                    tol = rtol * ub + atol
                    descend = lb < ub - tol
        if descend:
            depth = n
            cursor[depth] = -1
        else:  # this child is done: undo it, stay at this depth
            used[r] = False
            last[m] = prev_last[depth]
    state[0] = -1
    ub_arr[0] = ub
    return True


@numba.njit(cache=True)
def _open_bound(
    cq,
    const,
    q0,
    nu,
    sym,
    smax,
    state,
    cursor,
    cur_r,
    cur_m,
    prev_last,
    last,
    used,
    symu,
    pre,
    ub,
):
    """Minimum node bound over the unvisited children of the current path, capped by ``ub``."""
    n_feat = used.size
    n_mod = sym.shape[1]
    kp = nu.size
    n_pair = const.size
    work = np.empty((n_feat, n_feat + kp))
    depth = state[0]
    out = ub
    used2 = used.copy()
    last2 = last.copy()
    pre_c = np.empty(n_pair)
    for lev in range(depth, -1, -1):
        for c in range(cursor[lev] + 1, n_mod * n_feat):
            m = c // n_feat
            r = c % n_feat
            if symu[lev] + sym[r, m] > smax or r <= last2[m] or used2[r]:
                continue
            for q in range(n_pair):
                pre_c[q] = pre[lev, q] + cq[q, r, m, lev]
            pl = last2[m]
            last2[m] = r
            used2[r] = True
            lb = _stop_bound(const, pre_c)
            if lev + 1 < kp:
                nb = _node_bound(
                    cq,
                    const,
                    pre_c,
                    q0,
                    lev + 1,
                    kp,
                    used2,
                    last2,
                    symu[lev] + sym[r, m],
                    sym,
                    smax,
                    work,
                )
                lb = min(lb, nb)
            used2[r] = False
            last2[m] = pl
            if lb < out:
                out = lb
        if lev > 0:
            used2[cur_r[lev - 1]] = False
            last2[cur_m[lev - 1]] = prev_last[lev - 1]
    return out


@numba.njit(cache=True)
def _root_search(mod, alpha_r, e_r, nu, sym, smax, budget, base, cq, const, ub0):
    """Root bound of every pair and the best primal candidate among their assignments.

    Returns (bounds [Q], best value, ranks, mods, slots, n) of the primal candidates that
    meet the symbol budget (value ``ub0`` and ``n = -1`` when none beats ``ub0``).
    """
    n_feat = alpha_r.size
    kp = nu.size
    n_pair = const.size
    work = np.empty((n_feat, n_feat + kp))
    used = np.zeros(n_feat, np.bool_)
    last = np.full(sym.shape[1], -1, np.int64)
    pr = np.empty(kp, np.int64)
    ps = np.empty(kp, np.int64)
    pm = np.empty(kp, np.int64)
    pbuf = np.zeros(kp)
    gbuf = np.zeros(kp)
    bounds = np.empty(n_pair)
    best = ub0
    br = np.zeros(kp, np.int64)
    bm = np.zeros(kp, np.int64)
    bs = np.zeros(kp, np.int64)
    bn = -1
    for q in range(n_pair):
        z = _completion(cq[q], 0, kp, used, last, smax, sym, work, pr, ps, pm)
        bounds[q] = const[q] + z
        k = 0
        symbols = 0.0
        while k < kp and pr[k] >= 0:
            symbols += sym[pr[k], pm[k]]
            k += 1
        if k == 0 or symbols > smax:
            continue
        v = _solve_pairs(mod, alpha_r, e_r, nu, base, budget, pr, pm, ps, k, pbuf, gbuf)
        if v < best:
            best = v
            bn = k
            for j in range(k):
                br[j] = pr[j]
                bm[j] = pm[j]
                bs[j] = ps[j]
    return bounds, best, br, bm, bs, bn


def _pair_tables(
    problem: Problem, sm: SlotModel, log_lambda: np.ndarray, kappa: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``C[q, r, m, s]`` of the module docstring and ``const[q] = base - lambda P - kappa S``."""
    t = dual_bound_terms(problem, sm, log_lambda)  # [Q, N, M, Kp]
    kappa = np.asarray(kappa, dtype=np.float64)
    cq = t + kappa[:, None, None, None] * sm.symbols[None, :, :, None]
    lam = np.where(np.isfinite(log_lambda), np.exp(log_lambda), 0.0)
    const = sm.base - lam * sm.power_budget - kappa * sm.symbol_budget
    return np.ascontiguousarray(cq), const


def _multipliers(
    problem: Problem,
    sm: SlotModel,
    mod: BerModel,
    loglam: np.ndarray,
    ub: float,
    deadline: Deadline | None = None,
) -> tuple[np.ndarray, np.ndarray, float, tuple | None]:
    """Root multiplier pairs (ln lambda [Q], kappa [Q]) and the best root primal candidate.

    Past the ``deadline`` (any multipliers give valid bounds, only looser ones) the grid is
    coarse (13 x 10 instead of 49 x 38 pairs) and the pattern search stops.
    """
    coarse = deadline is not None and deadline.passed()
    alpha_r = sm.alpha[sm.order].copy()
    e_r = sm.gain_cost[sm.order].copy()
    # The best lambda is near the largest multiplier of the ordered-prior candidates (those
    # with many slots share the power); small ones (few slots, huge SNR) are far too low.
    fin = loglam[np.isfinite(loglam)]
    top = float(fin.max()) if fin.size else 0.0
    lo, hi = top - 12.0, top + 4.0
    grid_l = np.linspace(lo, hi, 13 if coarse else 49)
    # kappa scale: the largest slot term per symbol
    t_top = dual_bound_terms(problem, sm, np.array([top]))
    scale = max(float(np.abs(t_top).max()), 1e-300) / float(sm.symbols.max())
    grid_k = np.concatenate([[0.0], scale * np.logspace(-10, 2, 9 if coarse else 37)])
    ll, kk = np.meshgrid(grid_l, grid_k, indexing="ij")
    ll, kk = ll.ravel(), kk.ravel()
    cq, const = _pair_tables(problem, sm, ll, kk)
    bounds, best, br, bm, bs, bn = _root_search(
        mod,
        alpha_r,
        e_r,
        sm.nu,
        sm.symbols,
        sm.symbol_budget,
        sm.power_budget,
        sm.base,
        cq,
        const,
        ub,
    )
    primal = (best, br, bm, bs, int(bn)) if bn > 0 else None
    k = int(np.argmax(bounds))
    x, y = float(ll[k]), float(kk[k])
    val = float(bounds[k])
    step_l, step_k = (hi - lo) / (grid_l.size - 1), 0.4
    for _ in range(12):  # pattern search in (ln lambda, ln kappa)
        if deadline is not None and deadline.passed():
            break
        trial_l = [x + step_l, x - step_l, x, x]
        trial_k = [y, y, y * math.exp(step_k) if y > 0 else scale * 1e-6, y * math.exp(-step_k)]
        cq, const = _pair_tables(problem, sm, np.array(trial_l), np.array(trial_k))
        b, *_ = _root_search(
            mod,
            alpha_r,
            e_r,
            sm.nu,
            sm.symbols,
            sm.symbol_budget,
            sm.power_budget,
            sm.base,
            cq,
            const,
            -np.inf,
        )
        j = int(np.argmax(b))
        if b[j] > val:
            x, y, val = trial_l[j], trial_k[j], float(b[j])
        else:
            step_l *= 0.5
            step_k *= 0.5
    zero = kk == 0.0
    k0 = int(np.argmax(np.where(zero, bounds, -np.inf)))
    return np.array([x, ll[k0]]), np.array([y, 0.0]), val, primal


def walk_bound(
    problem: Problem,
    sm: SlotModel,
    mod: BerModel,
    loglam: np.ndarray,
    ub: float,
    walk: dict[str, np.ndarray],
    deadline: Deadline | None = None,
) -> float:
    """Lower bound (3) on every candidate a paused depth-first walk over the search space of
    :mod:`optim.slots` (Lemmas 1-2, children in (modulation, rank) order) has not visited yet.

    ``walk`` holds the walk's ``state`` (``state[0]``: the depth whose next child comes next),
    ``cursor``, ``cur_r``, ``cur_m``, ``prev_last``, ``last``, ``used`` and ``symu`` as in
    :mod:`optim.enumeration` (unchanged here). The multipliers come from the root
    search (:func:`_multipliers`, coarse past the ``deadline``), ``loglam`` from the
    ordered-prior candidates. Returns at most ``ub``.
    """
    kp = sm.nu.size
    depth = int(walk["state"][0])
    if depth < 0:  # the walk is complete: nothing left
        return ub
    used = walk["used"].copy()
    last = walk["last"].copy()
    cur_r, cur_m, prev_last = walk["cur_r"], walk["cur_m"], walk["prev_last"]
    if depth == kp:  # a full path has no children: its parent level is next
        depth -= 1
        used[cur_r[depth]] = False
        last[cur_m[depth]] = prev_last[depth]
    ll_pairs, k_pairs, _, _ = _multipliers(problem, sm, mod, loglam, ub, deadline)
    q0 = loglam.size
    cq, const = _pair_tables(
        problem,
        sm,
        np.concatenate([loglam, ll_pairs]),
        np.concatenate([np.zeros(loglam.size), k_pairs]),
    )
    pre = np.zeros((kp + 1, const.size))
    for lev in range(depth):
        pre[lev + 1] = pre[lev] + cq[:, cur_r[lev], cur_m[lev], lev]
    state = np.array([depth, 0, 0, 0, 1], dtype=np.int64)
    bound = _open_bound(
        cq, const, q0, sm.nu, sm.symbols, sm.symbol_budget, state, walk["cursor"], cur_r,
        cur_m, prev_last, last, used, walk["symu"], pre, ub,
    )  # fmt: skip
    return float(bound)


def check_bnb_options(
    problem: Problem, time_limit: float, node_limit: int | None, rtol: float, atol: float
) -> tuple[float, float]:
    """Validate the options of :func:`branch_and_bound` (before any work); returns the checked
    ``(rtol, atol)``.

    Raises:
        ConfigError: Invalid limits or tolerances, or ``min(N, K) > MAX_SLOTS``.
    """
    check_limits(time_limit, node_limit)
    rtol = check_real("rtol", rtol, 0.0, allowed="a finite number >= 0")
    atol = check_real("atol", atol, 0.0, allowed="a finite number >= 0")
    kp = min(problem.n_features, problem.n_subchannels)
    if kp > MAX_SLOTS:
        raise ConfigError(
            f"bnb: min(N, K) = {kp} is invalid; allowed: at most {MAX_SLOTS} (the bound tables "
            "grow as min(N, K)^2 N; use the hierarchical solver at this size)"
        )
    return rtol, atol


def branch_and_bound(
    problem: Problem,
    *,
    initial: Allocation | None,
    time_limit: float = 10.0,
    node_limit: int | None = None,
    rtol: float = 1e-9,
    atol: float = 1e-300,
    heur_depth: int = 2,
    start: float | None = None,
) -> BnBResult:
    """Branch and bound on (P0) from the warm start ``initial``; see the module docstring.

    Args:
        initial: A feasible allocation to start from, returned if never beaten (an
            infeasible one is ignored), or None: start from the ordered-prior candidates and
            the root's Lagrangian candidates only.
        time_limit: Wall-clock seconds since ``start`` (``inf``: none), setup included
            (module docstring, "Time limit").
        node_limit: Maximum nodes visited.
        rtol, atol: Pruning tolerance: when certified, ``J <= J* + rtol J + atol``.
        heur_depth: Nodes with at most this many slots filled also try their Lagrangian
            completion as a primal candidate (0 disables; the root always does).
        start: ``time.perf_counter()`` at which the caller's clock started (default: now);
            the time limit and ``seconds`` count from it.

    Returns:
        A :class:`BnBResult`.

    Raises:
        ConfigError: As :func:`check_bnb_options`.
    """
    start = time.perf_counter() if start is None else start
    rtol, atol = check_bnb_options(problem, time_limit, node_limit, rtol, atol)
    deadline = Deadline(time_limit, start)
    sm = slot_model(problem)
    kp = sm.nu.size
    mod = ber_model(problem)
    if kp == 0:
        alloc = Allocation.send_nothing()
        v = objective(problem, alloc)
        return BnBResult(alloc, v, v, 0.0, 1, time.perf_counter() - start, True)
    alpha_r = sm.alpha[sm.order].copy()
    e_r = sm.gain_cost[sm.order].copy()
    ub, r0, m0, n0, loglam = ordered_prior_incumbent(problem, sm, mod, deadline)
    best_r = r0.copy()
    best_m = m0.copy()
    best_s = np.arange(kp, dtype=np.int64)
    init_alloc = None
    if initial is not None and initial.is_feasible(problem):
        v0 = objective(problem, initial)
        if v0 < ub:
            ub, init_alloc = v0, initial
    ll_pairs, k_pairs, _, primal = _multipliers(problem, sm, mod, loglam, ub, deadline)
    if primal is not None and primal[0] < ub:
        ub, pr, pm, ps, n0 = primal
        best_r[:n0], best_m[:n0], best_s[:n0] = pr[:n0], pm[:n0], ps[:n0]
        init_alloc = None
    # pairs: (lambda_d, 0) for the stop bound, then the root pairs (node bound from q0 on)
    q0 = loglam.size
    cq, const = _pair_tables(
        problem,
        sm,
        np.concatenate([loglam, ll_pairs]),
        np.concatenate([np.zeros(loglam.size), k_pairs]),
    )
    n_feat = alpha_r.size
    n_mod = sm.symbols.shape[1]
    state = np.array([0, n0, 0, 0, 0], dtype=np.int64)
    cursor = np.full(kp + 1, -1, np.int64)
    cur_r = np.zeros(kp, np.int64)
    cur_m = np.zeros(kp, np.int64)
    prev_last = np.zeros(kp, np.int64)
    last = np.full(n_mod, -1, np.int64)
    used = np.zeros(n_feat, np.bool_)
    symu = np.zeros(kp + 1)
    pre = np.zeros((kp + 1, const.size))
    ub_arr = np.array([ub])

    def step(nodes: int) -> bool:
        return _bnb_walk(
            mod, alpha_r, e_r, sm.nu, sm.symbols, sm.symbol_budget, sm.power_budget, sm.base,
            cq, const, q0, float(rtol), float(atol), state, cursor, cur_r, cur_m, prev_last,
            last, used, symu, pre, best_r, best_m, best_s, ub_arr, nodes, heur_depth,
        )  # fmt: skip

    # the root is always processed, so the bound below covers the whole space
    finished, stopped_by = deadline.run(step, first=16, limit=node_limit)
    ub_new = float(ub_arr[0])
    n = int(state[1])
    if init_alloc is not None and not ub_new < ub:
        alloc = init_alloc
    elif n == 0:
        alloc = Allocation.send_nothing()
    else:
        p = np.zeros(n)
        g = np.zeros(n)
        candidate_value(
            mod,
            alpha_r[best_r[:n]].copy(),
            sm.nu[best_s[:n]].copy(),
            best_m[:n].copy(),
            n,
            sm.power_budget,
            p,
            g,
        )
        alloc = Allocation(
            sm.order[best_r[:n]],
            sm.slot_channel[best_s[:n]],
            tuple(problem.modulations[m] for m in best_m[:n]),
            p,
        ).sorted()
    value = objective(problem, alloc)
    tol = rtol * value + atol
    lower = value - tol  # every pruned node's bound is >= this
    if not finished:
        open_bound = _open_bound(
            cq,
            const,
            q0,
            sm.nu,
            sm.symbols,
            sm.symbol_budget,
            state,
            cursor,
            cur_r,
            cur_m,
            prev_last,
            last,
            used,
            symu,
            pre,
            ub_new,
        )
        lower = min(lower, float(open_bound))
    lower = min(max(0.0, lower), value)
    gap = (value - lower) / value if value > 0 else 0.0
    return BnBResult(
        alloc,
        value,
        lower,
        max(gap, 0.0),
        int(state[2]),
        time.perf_counter() - start,
        bool(finished or lower >= value - tol),
        stopped_by,
    )
