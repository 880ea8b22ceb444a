"""Lagrangian dual starts for the refinement: assignments priced by both budgets' multipliers.

The hierarchical pipeline's restrictions (prefix selection, monotone modulation patterns,
greedy matching) can exclude the optimum entirely, e.g. when the optimum sends a weak
subchannel's feature in BPSK and pays for it with two 16-QAM features on strong ones, a
three-position change that no single or pair move of the local search reaches while the
symbol budget binds. This module builds starting points that ignore those restrictions.

Relax the power budget with a multiplier ``lambda`` and the symbol budget with ``kappa``
(weak duality, eq. 2 of :mod:`optim.slots` and eq. 3 of :mod:`optim.bnb_search`): (P0) separates
into one term per (feature ``i``, subchannel slot ``s``, modulation ``m``)::

    C(i, m, s) = e_i + alpha_i H_m(lambda / (alpha_i nu_s)) + kappa S_i(m),
    H_m(mu) = min_gamma f_m(gamma) + mu gamma,

(``S_i(m)``: the feature's own symbols, so per-feature bits ``Q_i`` change nothing else), and
the relaxed problem is an assignment of features to slots (or to "not sent", cost 0),
each pair taking its cheapest modulation: solved exactly by the Hungarian algorithm. For a
fixed ``lambda``, the smallest ``kappa`` whose assignment meets ``S_max`` is found by
bisection (the symbols used do not increase with ``kappa``); that assignment is a feasible
allocation whose value is then computed with its exact optimal power
(:func:`optim.optimal_power.candidate_value`). ``lambda`` runs over a few multiples of the
multiplier of the pipeline's best candidate. It is the branch and bound's root primal
heuristic (:func:`optim.bnb.lagrangian_heuristic`) without its multiplier search, which costs
most of its time.

Cost: ``D`` multipliers x ``~30`` bisection steps (about 20 where no two features and no two
slots are alike: :func:`dual_search_into` then stops once no other piece is left to find)
x one ``n x (K' + n)`` assignment (``K' = min(N, K)``), all compiled.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from optim.assignment import assignment_into, assignment_or_skip_into, assignment_scratch
from optim.ber_model import ber_model
from optim.distortion import feature_terms
from optim.matching import subchannel_order
from optim.optimal_power import candidate_value, optimal_power_batch
from optim.problem import Problem
from optim.slots import slot_terms
from optim.twin import shared

__all__ = [
    "DEFAULT_OFFSETS",
    "WIDE_MAX",
    "WIDE_OFFSETS",
    "dual_assignment_into",
    "dual_candidates",
    "dual_search_into",
    "log_multiplier",
    "tie_free",
]

DEFAULT_OFFSETS = (-2.0, -1.0, 0.0, 1.0, 2.0)
"""Offsets of ``ln lambda`` around the pipeline's multiplier (factors e^-2 .. e^2)."""
WIDE_OFFSETS = tuple(np.arange(-16, 17) / 4.0)
"""Used while ``min(N, K) <= WIDE_MAX`` (assignments are tiny): e^-4 .. e^4, step e^0.25."""
WIDE_MAX = 8


@shared()
def dual_assignment_into(table, d, kappa, sym, work, best_m, n_feat, kp, hu, hv, hp, hway, hminv,
                         hdone, col, mods, unique) -> float:  # fmt: skip
    """The assignment at (``lambda_d``, ``kappa``) into ``col`` (slot per feature, -1: not
    sent) and ``mods`` [N] (``sym[i, m]``: symbols of feature ``i`` in modulation ``m``);
    returns the symbols it uses. ``work`` [N, Kp + N], ``best_m`` [N, Kp] and ``hu`` ..
    ``hdone`` (:func:`optim.assignment.assignment_scratch`) are scratch.

    ``unique``: the optimal assignment is unique (:func:`tie_free` holds for the frame and
    :func:`_slots_distinct` for the multiplier), so any exact solver returns it: the one with
    a single "not sent" column (:func:`optim.assignment.assignment_or_skip_into`, about half
    the work) is used. Otherwise the ``N`` "not sent" columns of
    :func:`optim.assignment.assignment_into`, whose choice among tied assignments the results
    keep."""
    n_mod = sym.shape[1]
    gain = False
    for i in range(n_feat):
        for j in range(kp):
            work[i, j] = 0.0
            best_m[i, j] = -1
        for m in range(n_mod):  # increasing m with a strict "<": ties keep the first
            ks = kappa * sym[i, m]
            for j in range(kp):
                t = table[d, i, m, j] + ks
                if t < work[i, j]:
                    work[i, j] = t
                    best_m[i, j] = m
        for j in range(kp):
            gain = gain or best_m[i, j] >= 0
        if not unique:  # the "not sent" columns of assignment_into
            for j in range(kp, kp + n_feat):
                work[i, j] = 0.0
    if not gain:  # no pair worth sending: whatever the assignment, nothing is sent
        for i in range(n_feat):
            col[i] = -1
            mods[i] = -1
        return 0.0
    if unique:
        assignment_or_skip_into(work, n_feat, kp, hu, hv, hp, hway, hminv, hdone, col)
    else:
        assignment_into(work, n_feat, kp + n_feat, hu, hv, hp, hway, hminv, hdone, col)
    used = 0.0
    for i in range(n_feat):
        mods[i] = -1
        j = col[i]
        if 0 <= j < kp and best_m[i, j] >= 0:
            mods[i] = best_m[i, j]
            used += sym[i, best_m[i, j]]
        else:
            col[i] = -1
    return used


CERTIFY_FROM = 12
"""Bisection step from which :func:`dual_search_into` tries to end early (earlier tries
mostly fail while the bracket still holds several breakpoints, and cost an assignment each)."""


@shared()
def tie_free(alpha, nu, kp) -> bool:
    """Whether the assignments of :func:`dual_assignment_into` can tie only by coincidence:
    every ``alpha_i`` and every slot's ``nu_s`` (``s < kp``) positive and distinct. Equal ones
    make whole families of equally good assignments (two features, or two slots, exchanged)."""
    for i in range(alpha.size):
        if not alpha[i] > 0.0:
            return False
        for j in range(i):
            if alpha[i] == alpha[j]:
                return False
    for s in range(kp):
        if not nu[s] > 0.0:
            return False
        for j in range(s):
            if nu[s] == nu[j]:
                return False
    return True


@shared()
def _slots_distinct(table, d) -> bool:
    """Whether every feature's and modulation's slot terms ``table[d, i, m, :]`` increase
    strictly along the slots (they never decrease: the slots come by decreasing gain). Equal
    ones, e.g. where ``H`` saturates at zero power, make exchanges of slots tie."""
    n_feat, n_mod, kp = table.shape[1], table.shape[2], table.shape[3]
    for i in range(n_feat):
        for m in range(n_mod):
            for j in range(kp - 1):
                if not table[d, i, m, j] < table[d, i, m, j + 1]:
                    return False
    return True


@shared()
def empty_above(table, d, sym) -> float:
    """A ``kappa`` above which :func:`dual_assignment_into` sends nothing at multiplier ``d``:
    every ``table[d, i, m, j] + kappa sym[i, m]`` is then ``>= 0``, so no pair is worth
    sending (0 when no term is negative). It is ``max(-table / sym)`` over the negative
    terms, raised by ``1e-12`` of itself: with ``kappa`` at least that, ``fl(kappa sym)``
    exceeds ``-table`` despite the rounding of the quotient and the product, so the rounded
    sum is not negative either (positive ``sym``)."""
    top = 0.0
    for i in range(table.shape[1]):
        for m in range(table.shape[2]):
            for j in range(table.shape[3]):
                t = table[d, i, m, j]
                if t < 0.0:
                    top = max(top, -t / sym[i, m])
    return top * (1.0 + 1e-12)


@shared()
def _assignment_below(table, d, kappa, empty, sym, work, best_m, n_feat, kp, hu, hv, hp, hway,
                      hminv, hdone, col, mods, quiet) -> float:  # fmt: skip
    """:func:`dual_assignment_into`, answered without an assignment above ``empty``
    (:func:`empty_above`): there every feature is left out and no symbol used."""
    if kappa > empty:
        for i in range(n_feat):
            col[i] = -1
            mods[i] = -1
        return 0.0
    return dual_assignment_into(table, d, kappa, sym, work, best_m, n_feat, kp, hu, hv, hp,
                                hway, hminv, hdone, col, mods, quiet)  # fmt: skip


@shared()
def _line(table, d, n_feat, col, mods) -> float:
    """``sum_i table[d, i, m_i, s_i]`` over the sent features: with the symbols used ``S``,
    the assignment's cost at any ``kappa`` is ``C + kappa S``."""
    acc = 0.0
    for i in range(n_feat):
        if col[i] >= 0:
            acc += table[d, i, mods[i], col[i]]
    return acc


@shared()
def dual_search_into(table, sym, smax, iters, work, best_m, hu, hv, hp, hway, hminv, hdone, col,
                     mods, c2, m2, out_s, out_m, certify) -> None:  # fmt: skip
    """Per multiplier ``d``: bisection for the smallest ``kappa`` whose assignment fits.

    Writes ``out_s [D, iters + 1, N]`` (slot per feature, -1: not sent) and ``out_m`` of the
    same shape: every feasible assignment met on the way (rows of -1 where the step was
    infeasible). ``col``, ``mods``, ``c2``, ``m2`` int [N] and the rest (those of
    :func:`dual_assignment_into`) are scratch.

    Ending early (``certify``: :func:`tie_free` holds, and the multiplier's slot terms differ
    between slots: :func:`_slots_distinct`). The optimal cost ``V(kappa)`` of the
    assignment is concave and piecewise linear, one piece ``C_A + kappa S_A`` per assignment.
    With ``A_lo`` optimal at ``lo`` (infeasible) and ``A_hi`` at ``hi`` (feasible), let
    ``kappa_x`` be where their lines cross. If ``V(kappa_x)`` is on both lines, concavity
    leaves no other piece in ``[lo, hi]``: every later step returns ``A_lo`` (infeasible,
    not recorded) or ``A_hi`` (recorded already), so the bisection stops with the rows it
    would have recorded. One assignment at ``kappa_x`` checks it; it is tried from step
    :data:`CERTIFY_FROM` on, after a step that found no new piece. Without ties (which
    ``certify`` excludes) each step's assignment is the unique optimum, so the rows are the
    same; the check allows ``1e-13`` of the costs' magnitude for rounding.

    Steps above :func:`empty_above` (no pair worth sending: about a quarter of them, the first
    halvings of the wide initial bracket) get that answer without an assignment.
    """
    n_lam, n_feat, n_mod, kp = table.shape
    for d in range(n_lam):
        for it in range(iters + 1):
            for i in range(n_feat):
                out_s[d, it, i] = -1
                out_m[d, it, i] = -1
    spread = 0.0
    for d in range(n_lam):
        for i in range(n_feat):
            for m in range(n_mod):
                for j in range(kp):
                    v = table[d, i, m, j]
                    if math.isfinite(v) and abs(v) > spread:
                        spread = abs(v)
    smin = math.inf
    for i in range(sym.shape[0]):
        for m in range(sym.shape[1]):
            smin = min(smin, sym[i, m])
    for d in range(n_lam):
        quiet = certify and _slots_distinct(table, d)  # no ties: each optimum unique
        used = dual_assignment_into(table, d, 0.0, sym, work, best_m, n_feat, kp, hu, hv, hp,
                                    hway, hminv, hdone, col, mods, quiet)  # fmt: skip
        if used > smax + 1e-9:
            empty = empty_above(table, d, sym) if smin > 0.0 else math.inf  # steps above: no pair
            lo = 0.0
            c_lo = _line(table, d, n_feat, col, mods)
            s_lo = used
            hi = 2.0 * spread / smin + 1.0
            used = _assignment_below(table, d, hi, empty, sym, work, best_m, n_feat, kp, hu,
                                     hv, hp, hway, hminv, hdone, col, mods, quiet)  # fmt: skip
            c_hi = _line(table, d, n_feat, col, mods)
            s_hi = used
            unchanged = False
            can_stop = quiet and iters > CERTIFY_FROM
            for it in range(iters):
                if can_stop and unchanged and it >= CERTIFY_FROM:
                    unchanged = False
                    kx = (c_hi - c_lo) / (s_lo - s_hi)
                    if lo < kx < hi:
                        ux = _assignment_below(table, d, kx, empty, sym, work, best_m,
                                               n_feat, kp, hu, hv, hp, hway, hminv, hdone,
                                               c2, m2, quiet)  # fmt: skip
                        vx = _line(table, d, n_feat, c2, m2) + kx * ux
                        tol = 1e-13 * (abs(c_lo) + abs(c_hi) + kx * (s_lo + s_hi))
                        if vx >= c_lo + kx * s_lo - tol:
                            break
                mid = 0.5 * (lo + hi)
                u2 = _assignment_below(table, d, mid, empty, sym, work, best_m, n_feat, kp,
                                       hu, hv, hp, hway, hminv, hdone, c2, m2, quiet)  # fmt: skip
                c_mid = _line(table, d, n_feat, c2, m2)
                if u2 <= smax + 1e-9:
                    unchanged = u2 == s_hi and c_mid == c_hi
                    hi = mid
                    c_hi = c_mid
                    s_hi = u2
                    for i in range(n_feat):
                        out_s[d, it + 1, i] = c2[i]
                        out_m[d, it + 1, i] = m2[i]
                else:
                    unchanged = u2 == s_lo and c_mid == c_lo
                    lo = mid
                    c_lo = c_mid
                    s_lo = u2
        for i in range(n_feat):
            out_s[d, 0, i] = col[i]
            out_m[d, 0, i] = mods[i]


@numba.njit(cache=True)
def _dual_search(table, sym, smax, iters, certify):
    """:func:`dual_search_into` with its scratch allocated: ``(out_s, out_m)``."""
    n_lam, n_feat, _, kp = table.shape
    work = np.empty((n_feat, kp + n_feat))
    best_m = np.empty((n_feat, kp), np.int64)
    hu, hv, hp, hway, hminv, hdone = assignment_scratch(n_feat, kp + n_feat)
    col = np.empty(n_feat, np.int64)
    mods = np.empty(n_feat, np.int64)
    c2 = np.empty(n_feat, np.int64)
    m2 = np.empty(n_feat, np.int64)
    out_s = np.empty((n_lam, iters + 1, n_feat), np.int64)
    out_m = np.empty((n_lam, iters + 1, n_feat), np.int64)
    dual_search_into(table, sym, smax, iters, work, best_m, hu, hv, hp, hway, hminv, hdone, col,
                     mods, c2, m2, out_s, out_m, certify)  # fmt: skip
    return out_s, out_m


def log_multiplier(
    problem: Problem,
    weights: np.ndarray,
    features: np.ndarray,
    sub: np.ndarray,
    pattern: np.ndarray,
) -> float:
    """``ln lambda`` of the exact optimal power of an allocation (``-inf`` if none is used)."""
    n = int(np.size(features))
    if n == 0:
        return -np.inf
    alpha = np.asarray(weights)[features] * feature_terms(problem).slope[features]
    nu = problem.gains[sub] / problem.noise_power
    p, g = np.zeros(n), np.zeros(n)
    _, lev = candidate_value(
        ber_model(problem),
        np.ascontiguousarray(alpha, dtype=np.float64),
        np.ascontiguousarray(nu, dtype=np.float64),
        np.ascontiguousarray(pattern, dtype=np.int64),
        n,
        float(problem.power_budget),
        p,
        g,
    )
    return float(lev) if np.isfinite(lev) else -np.inf


def dual_candidates(
    problem: Problem,
    weights: np.ndarray,
    log_lambda: float,
    offsets: tuple[float, ...] | None = None,
    iters: int = 30,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]]:
    """Distinct dual assignments (module docstring) for ``ln lambda = log_lambda + offsets``
    (default :data:`WIDE_OFFSETS` while ``min(N, K) <= WIDE_MAX``, else
    :data:`DEFAULT_OFFSETS`).

    Each is ``(features, sub, pattern, power, value)``: feature indices, subchannels,
    modulation indices, the exact optimal power and (P0) with ``weights`` under the problem's
    BER model; sorted by value, empty allocations left out.
    """
    w = np.asarray(weights, dtype=np.float64)
    n_feat, k = problem.n_features, problem.n_subchannels
    kp = min(n_feat, k)
    if kp == 0 or not np.isfinite(log_lambda) or problem.power_budget <= 0:
        return []
    terms = feature_terms(problem)
    alpha = w * terms.slope
    e = w * (terms.floor - terms.drop)
    base = float(w @ terms.drop)
    chan = subchannel_order(problem.gains)[:kp]
    nu = problem.gains[chan] / problem.noise_power
    mod = ber_model(problem)
    if offsets is None:
        offsets = WIDE_OFFSETS if kp <= WIDE_MAX else DEFAULT_OFFSETS
    loglam = log_lambda + np.asarray(offsets, dtype=np.float64)
    table = slot_terms(mod, alpha, e, nu, loglam, len(problem.modulations))
    sym = np.ascontiguousarray(problem.symbol_table, dtype=np.float64)  # [N, M]
    certify = bool(tie_free(np.ascontiguousarray(alpha, dtype=np.float64), nu, kp))
    slots, mods = _dual_search(table, sym, float(problem.symbol_budget), iters, certify)
    slots = slots.reshape(-1, n_feat)
    mods = mods.reshape(-1, n_feat)
    keep = (slots >= 0).any(axis=1)
    both = np.unique(np.concatenate([slots[keep], mods[keep]], axis=1), axis=0)
    if both.shape[0] == 0:
        return []
    slots, mods = both[:, :n_feat], both[:, n_feat:]
    sent = slots >= 0
    feats = np.broadcast_to(np.arange(n_feat), slots.shape)
    sub = chan[np.where(sent, slots, 0)]
    pat = np.where(sent, mods, -1)
    power, err = optimal_power_batch(problem, feats, sub, pat, w)
    values = base + np.where(sent, e[None, :], 0.0).sum(axis=1) + err
    out = []
    for r in np.argsort(values, kind="stable"):
        f = np.flatnonzero(sent[r])
        out.append((f, sub[r, f], pat[r, f], power[r, f], float(values[r])))
    return out
