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

Cost: ``D`` multipliers x ``~30`` bisection steps x one ``n x (K' + n)`` assignment
(``K' = min(N, K)``), all compiled: well under a millisecond at ``N = K = 16``.
"""

from __future__ import annotations

import numba
import numpy as np

from optim.assignment import assignment
from optim.ber_model import ber_model
from optim.distortion import feature_terms
from optim.matching import subchannel_order
from optim.optimal_power import candidate_value, optimal_power_batch
from optim.problem import Problem
from optim.slots import slot_terms

__all__ = ["DEFAULT_OFFSETS", "WIDE_MAX", "WIDE_OFFSETS", "dual_candidates", "log_multiplier"]

DEFAULT_OFFSETS = (-2.0, -1.0, 0.0, 1.0, 2.0)
"""Offsets of ``ln lambda`` around the pipeline's multiplier (factors e^-2 .. e^2)."""
WIDE_OFFSETS = tuple(np.arange(-16, 17) / 4.0)
"""Used while ``min(N, K) <= WIDE_MAX`` (assignments are tiny): e^-4 .. e^4, step e^0.25."""
WIDE_MAX = 8


@numba.njit(cache=True)
def _pick(table, d, kappa, sym, work, best_m, n_feat, kp):
    """Assignment at (``lambda_d``, ``kappa``): column per feature, modulation per feature
    (``sym[i, m]``: symbols of feature ``i`` in modulation ``m``)."""
    n_mod = sym.shape[1]
    for i in range(n_feat):
        for j in range(kp):
            c = 0.0
            bm = -1
            for m in range(n_mod):
                t = table[d, i, m, j] + kappa * sym[i, m]
                if t < c:
                    c = t
                    bm = m
            work[i, j] = c
            best_m[i, j] = bm
        for j in range(kp, kp + n_feat):
            work[i, j] = 0.0
    _, col = assignment(work, n_feat, kp + n_feat)
    used = 0.0
    mods = np.full(n_feat, -1, np.int64)
    for i in range(n_feat):
        j = col[i]
        if j < kp and best_m[i, j] >= 0:
            mods[i] = best_m[i, j]
            used += sym[i, best_m[i, j]]
        else:
            col[i] = -1
    return col, mods, used


@numba.njit(cache=True)
def _dual_search(table, sym, smax, iters):
    """Per multiplier ``d``: bisection for the smallest ``kappa`` whose assignment fits.

    Returns ``slot [D, iters + 1, N]`` (-1: not sent) and ``mods`` of the same shape: every
    feasible assignment met on the way (rows of -1 where the step was infeasible).
    """
    n_lam, n_feat, n_mod, kp = table.shape
    work = np.empty((n_feat, kp + n_feat))
    best_m = np.empty((n_feat, kp), np.int64)
    out_s = np.full((n_lam, iters + 1, n_feat), -1, np.int64)
    out_m = np.full((n_lam, iters + 1, n_feat), -1, np.int64)
    spread = 0.0
    for v in table.ravel():
        if np.isfinite(v) and abs(v) > spread:
            spread = abs(v)
    smin = sym.min()
    for d in range(n_lam):
        col, mods, used = _pick(table, d, 0.0, sym, work, best_m, n_feat, kp)
        if used > smax + 1e-9:
            lo = 0.0
            hi = 2.0 * spread / smin + 1.0
            col, mods, used = _pick(table, d, hi, sym, work, best_m, n_feat, kp)
            for it in range(iters):
                mid = 0.5 * (lo + hi)
                c2, m2, u2 = _pick(table, d, mid, sym, work, best_m, n_feat, kp)
                if u2 <= smax + 1e-9:
                    hi = mid
                    for i in range(n_feat):
                        out_s[d, it + 1, i] = c2[i]
                        out_m[d, it + 1, i] = m2[i]
                else:
                    lo = mid
        for i in range(n_feat):
            out_s[d, 0, i] = col[i]
            out_m[d, 0, i] = mods[i]
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
    slots, mods = _dual_search(table, sym, float(problem.symbol_budget), iters)
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
