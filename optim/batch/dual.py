"""Lagrangian dual starts of the refinement for one frame (:mod:`optim.dual`, compiled).

Both budgets are priced (``lambda`` for the power, ``kappa`` for the symbols), which splits
(P0) into one term per (feature ``i``, slot ``s``, modulation ``m``)::

    C(i, m, s) = e_i + alpha_i H_m(lambda / (alpha_i nu_s)) + kappa S_i(m),

an assignment of features to slots (or to "not sent", cost 0) solved by the Hungarian
algorithm. Per ``ln lambda`` (the pipeline's multiplier plus fixed offsets) a bisection on
``kappa`` collects every assignment that meets ``S_max``; the distinct ones get their exact
optimal power (:mod:`optim.batch.lemma3`) and are ranked by (P0). Every step, tie rule and
ordering (distinct rows sorted lexicographically as ``numpy.unique(axis=0)`` does, then a
stable sort by value) follows the per-frame code, so the same starts come out.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from optim.batch.arith import pairwise_sum, subchannel_rank
from optim.batch.lemma3 import candidate_value, h_lower, optimal_power_row
from optim.batch.potentials import potential_assignment_into, scratch_of


@numba.njit(cache=True)
def log_multiplier(mod, alpha, g, noise, feats, sub, pat, n, budget) -> float:
    """``ln lambda`` of the optimal power of ``(feats, sub, pat)[:n]`` (``-inf``: none used);
    ``alpha`` [N]: ``w slope`` per feature."""
    if n == 0:
        return -np.inf
    a = np.empty(n)
    nu = np.empty(n)
    mm = np.empty(n, np.int64)
    for j in range(n):
        a[j] = alpha[feats[j]]
        nu[j] = g[sub[j]] / noise
        mm[j] = pat[j]
    p = np.zeros(n)
    gam = np.zeros(n)
    _, lev = candidate_value(mod, a, nu, mm, n, budget, p, gam)
    return lev if np.isfinite(lev) else -np.inf


@numba.njit(cache=True)
def _bound_terms(mod, alpha, e, nu, loglam, n_mod):
    n_feat = alpha.size
    kp = nu.size
    out = np.empty((loglam.size, n_feat, n_mod, kp))
    la = np.zeros(n_feat)  # the logarithms once (the same values as inside the loop)
    lnu = np.zeros(kp)
    for r in range(n_feat):
        if alpha[r] > 0.0:
            la[r] = math.log(alpha[r])
    for s in range(kp):
        if nu[s] > 0.0:
            lnu[s] = math.log(nu[s])
    for d in range(loglam.size):
        for r in range(n_feat):
            for m in range(n_mod):
                for s in range(kp):
                    a = alpha[r]
                    if a > 0.0 and nu[s] > 0.0:
                        lnmu = loglam[d] - la[r] - lnu[s]
                        out[d, r, m, s] = e[r] + a * h_lower(mod, m, lnmu)
                    else:
                        out[d, r, m, s] = e[r] + a * mod.f0[m]
    return out


@numba.njit(cache=True)
def _pick(table, d, kappa, sym, work, best_m, n_feat, kp, hung, col, mods) -> float:
    """The assignment at symbol price ``kappa`` into ``col``, ``mods`` [N]; returns the
    symbols it uses (``hung``: the Hungarian's reused work arrays)."""
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
    potential_assignment_into(work, n_feat, kp + n_feat, hung, col)
    used = 0.0
    for i in range(n_feat):
        mods[i] = -1
        j = col[i]
        if j < kp and best_m[i, j] >= 0:
            mods[i] = best_m[i, j]
            used += sym[i, best_m[i, j]]
        else:
            col[i] = -1
    return used


@numba.njit(cache=True)
def _dual_search(table, sym, smax, iters):
    n_lam, n_feat, n_mod, kp = table.shape
    work = np.empty((n_feat, kp + n_feat))
    best_m = np.empty((n_feat, kp), np.int64)
    hung = scratch_of(n_feat, kp + n_feat)
    col = np.empty(n_feat, np.int64)
    mods = np.empty(n_feat, np.int64)
    c2 = np.empty(n_feat, np.int64)
    m2 = np.empty(n_feat, np.int64)
    out_s = np.full((n_lam, iters + 1, n_feat), -1, np.int64)
    out_m = np.full((n_lam, iters + 1, n_feat), -1, np.int64)
    spread = 0.0
    for v in table.ravel():
        if np.isfinite(v) and abs(v) > spread:
            spread = abs(v)
    smin = sym.min()
    for d in range(n_lam):
        used = _pick(table, d, 0.0, sym, work, best_m, n_feat, kp, hung, col, mods)
        if used > smax + 1e-9:
            lo = 0.0
            hi = 2.0 * spread / smin + 1.0
            used = _pick(table, d, hi, sym, work, best_m, n_feat, kp, hung, col, mods)
            for it in range(iters):
                mid = 0.5 * (lo + hi)
                u2 = _pick(table, d, mid, sym, work, best_m, n_feat, kp, hung, c2, m2)
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


@numba.njit(cache=True)
def _row_less(a, b) -> bool:
    for i in range(a.size):
        if a[i] != b[i]:
            return a[i] < b[i]
    return False


@numba.njit(cache=True)
def dual_starts(mod, alpha, e, base, g, noise, budget, sym, smax, loglam0, offsets, iters,
                count):  # fmt: skip
    """The ``count`` best distinct dual assignments of one frame (gains ``g`` [K]).

    Args:
        mod: the :data:`optim.exact.BerModel`; ``alpha``, ``e`` [N]: ``w slope`` and
            ``w (floor - drop)``; ``base``: ``w . drop``; ``sym`` [N, M] float symbols;
            ``loglam0``: the pipeline's ``ln lambda``; ``offsets`` [D]; ``iters``: bisection
            steps.

    Returns:
        ``(k, feats, sub, pat, power, size)``: ``k <= count`` starts, row ``r`` holding
        ``size[r]`` entries in feature order.
    """
    n_feat = alpha.size
    k = g.size
    kp = min(n_feat, k)
    feats = np.zeros((count, max(n_feat, 1)), np.int64)
    subs = np.zeros((count, max(n_feat, 1)), np.int64)
    pats = np.zeros((count, max(n_feat, 1)), np.int64)
    pows = np.zeros((count, max(n_feat, 1)))
    size = np.zeros(count, np.int64)
    if kp == 0 or not np.isfinite(loglam0) or budget <= 0 or count == 0:
        return 0, feats, subs, pats, pows, size
    rank = np.empty(k, np.int64)
    subchannel_rank(g, rank)
    chan = rank[:kp].copy()
    nu = np.empty(kp)
    for s in range(kp):
        nu[s] = g[chan[s]] / noise
    loglam = np.empty(offsets.size)
    for d in range(offsets.size):
        loglam[d] = loglam0 + offsets[d]
    table = _bound_terms(mod, alpha, e, nu, loglam, sym.shape[1])
    out_s, out_m = _dual_search(table, sym, smax, iters)
    total = out_s.shape[0] * out_s.shape[1]
    rows = np.empty((total, 2 * n_feat), np.int64)
    n_rows = 0
    for d in range(out_s.shape[0]):
        for it in range(out_s.shape[1]):
            any_sent = False
            for i in range(n_feat):
                if out_s[d, it, i] >= 0:
                    any_sent = True
            if not any_sent:
                continue
            dup = False
            for r in range(n_rows - 1, -1, -1):  # recent rows first: repeats are consecutive
                same = True
                for i in range(n_feat):
                    if rows[r, i] != out_s[d, it, i] or rows[r, n_feat + i] != out_m[d, it, i]:
                        same = False
                        break
                if same:
                    dup = True
                    break
            if dup:
                continue
            for i in range(n_feat):
                rows[n_rows, i] = out_s[d, it, i]
                rows[n_rows, n_feat + i] = out_m[d, it, i]
            n_rows += 1
    if n_rows == 0:
        return 0, feats, subs, pats, pows, size
    srt = np.arange(n_rows)  # lexicographic order of the distinct rows (numpy.unique)
    for a1 in range(1, n_rows):
        v = srt[a1]
        b1 = a1 - 1
        while b1 >= 0 and _row_less(rows[v], rows[srt[b1]]):
            srt[b1 + 1] = srt[b1]
            b1 -= 1
        srt[b1 + 1] = v
    values = np.empty(n_rows)
    power = np.zeros((n_rows, n_feat))
    a_row = np.empty(n_feat)
    nu_row = np.empty(n_feat)
    m_row = np.empty(n_feat, np.int64)
    sc_a = np.empty(n_feat)
    sc_v = np.empty(n_feat)
    sc_m = np.empty(n_feat, np.int64)
    sc_i = np.empty(n_feat, np.int64)
    sc_p = np.zeros(n_feat)
    sc_g = np.zeros(n_feat)
    ee = np.empty(n_feat)
    for q in range(n_rows):
        r = srt[q]
        for i in range(n_feat):
            slot = rows[r, i]
            a_row[i] = alpha[i]
            nu_row[i] = g[chan[slot if slot >= 0 else 0]] / noise
            m_row[i] = rows[r, n_feat + i] if slot >= 0 else -1
            ee[i] = e[i] if slot >= 0 else 0.0
        err = optimal_power_row(mod, a_row, nu_row, m_row, budget, power[q], sc_a, sc_v, sc_m,
                                sc_i, sc_p, sc_g)  # fmt: skip
        values[q] = base + pairwise_sum(ee, n_feat) + err
    taken = np.zeros(n_rows, np.bool_)
    out = 0
    while out < count:
        best = -1
        for q in range(n_rows):  # stable: the first of equal values
            if not taken[q] and (best < 0 or values[q] < values[best]):
                best = q
        if best < 0:
            break
        taken[best] = True
        r = srt[best]
        c = 0
        for i in range(n_feat):
            slot = rows[r, i]
            if slot >= 0:
                feats[out, c] = i
                subs[out, c] = chan[slot]
                pats[out, c] = rows[r, n_feat + i]
                pows[out, c] = power[best, i]
                c += 1
        size[out] = c
        out += 1
    return out, feats, subs, pats, pows, size
