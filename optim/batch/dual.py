"""Lagrangian dual starts of the refinement for one frame (:mod:`optim.dual`, compiled).

Both budgets are priced (``lambda`` for the power, ``kappa`` for the symbols), which splits
(P0) into one term per (feature ``i``, slot ``s``, modulation ``m``)::

    C(i, m, s) = e_i + alpha_i H_m(lambda / (alpha_i nu_s)) + kappa S_i(m),

an assignment of features to slots (or to "not sent", cost 0) solved by the Hungarian
algorithm. Per ``ln lambda`` (the pipeline's multiplier plus fixed offsets) a bisection on
``kappa`` collects every assignment that meets ``S_max``; the distinct ones get their exact
optimal power (:mod:`optim.optimal_power`) and are ranked by (P0). Every step, tie rule and
ordering (distinct rows sorted lexicographically as ``numpy.unique(axis=0)`` does, then a
stable sort by value) follows the per-frame code, so the same starts come out.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from optim.batch.arith import pairwise_sum, subchannel_rank
from optim.batch.potentials import potential_assignment_into
from optim.ber_model import h_bound
from optim.optimal_power import candidate_value_into, optimal_power_row
from optim.twin import shared


@shared()
def log_multiplier_into(mod, alpha, g, noise, feats, sub, pat, n, budget, fs, is_) -> float:
    """:func:`log_multiplier` with scratch ``fs`` float64 [6 max(n, 1)], ``is_`` int64
    [2 max(n, 1)]."""
    if n == 0:
        return -math.inf
    a = fs[:n]
    nu = fs[n : 2 * n]
    p = fs[2 * n : 3 * n]
    gam = fs[3 * n : 4 * n]
    t = fs[4 * n : 5 * n]
    c = fs[5 * n : 6 * n]
    mm = is_[:n]
    idx = is_[n : 2 * n]
    for j in range(n):
        a[j] = alpha[feats[j]]
        nu[j] = g[sub[j]] / noise
        mm[j] = pat[j]
        p[j] = 0.0
        gam[j] = 0.0
    _, lev = candidate_value_into(mod, a, nu, mm, n, budget, p, gam, t, c, idx)
    return lev if math.isfinite(lev) else -math.inf


@numba.njit(cache=True)
def log_multiplier(mod, alpha, g, noise, feats, sub, pat, n, budget) -> float:
    """``ln lambda`` of the optimal power of ``(feats, sub, pat)[:n]`` (``-inf``: none used);
    ``alpha`` [N]: ``w slope`` per feature."""
    nn = max(n, 1)
    return log_multiplier_into(mod, alpha, g, noise, feats, sub, pat, n, budget,
                               np.empty(6 * nn), np.empty(2 * nn, np.int64))  # fmt: skip


@shared()
def _bound_terms(mod, alpha, e, nu, loglam, n_mod, out, la, lnu) -> None:
    """``out[d, r, m, s]``: the slot terms (``la`` [N], ``lnu`` [Kp]: scratch logarithms)."""
    n_feat = alpha.size
    kp = nu.size
    for r in range(n_feat):  # the logarithms once (the same values as inside the loop)
        la[r] = 0.0
        if alpha[r] > 0.0:
            la[r] = math.log(alpha[r])
    for s in range(kp):
        lnu[s] = 0.0
        if nu[s] > 0.0:
            lnu[s] = math.log(nu[s])
    for d in range(loglam.size):
        for r in range(n_feat):
            for m in range(n_mod):
                for s in range(kp):
                    a = alpha[r]
                    if a > 0.0 and nu[s] > 0.0:
                        lnmu = loglam[d] - la[r] - lnu[s]
                        out[d, r, m, s] = e[r] + a * h_bound(mod, m, lnmu)
                    else:
                        out[d, r, m, s] = e[r] + a * mod.f0[m]


@shared()
def _pick(table, d, kappa, sym, work, best_m, n_feat, kp, hu, hv, hp, hway, hminv, hdone, col,
          mods) -> float:  # fmt: skip
    """The assignment at symbol price ``kappa`` into ``col``, ``mods`` [N]; returns the
    symbols it uses (``hu`` .. ``hdone``: the Hungarian's reused work arrays)."""
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
    potential_assignment_into(work, n_feat, kp + n_feat, hu, hv, hp, hway, hminv, hdone, col)
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


@shared()
def _dual_search(table, sym, smax, iters, work, best_m, hu, hv, hp, hway, hminv, hdone, col,
                 mods, c2, m2, out_s, out_m) -> None:  # fmt: skip
    """Per ``ln lambda`` the bisection on ``kappa``: ``out_s``, ``out_m`` [D, iters + 1, N]
    (slots and modulations; -1 where no feasible assignment was met)."""
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
        used = _pick(table, d, 0.0, sym, work, best_m, n_feat, kp, hu, hv, hp, hway, hminv,
                     hdone, col, mods)  # fmt: skip
        if used > smax + 1e-9:
            lo = 0.0
            hi = 2.0 * spread / smin + 1.0
            used = _pick(table, d, hi, sym, work, best_m, n_feat, kp, hu, hv, hp, hway, hminv,
                         hdone, col, mods)  # fmt: skip
            for it in range(iters):
                mid = 0.5 * (lo + hi)
                u2 = _pick(table, d, mid, sym, work, best_m, n_feat, kp, hu, hv, hp, hway,
                           hminv, hdone, c2, m2)  # fmt: skip
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


@shared()
def _row_less(rows, a, b, width) -> bool:
    for i in range(width):
        if rows[a, i] != rows[b, i]:
            return rows[a, i] < rows[b, i]
    return False


@shared()
def dual_float_size(n_feat: int, k: int, n_mod: int, n_off: int, iters: int) -> int:
    """Float64 scratch of :func:`dual_starts_into`."""
    kp = max(min(n_feat, k), 1)
    nf = max(n_feat, 1)
    rows = n_off * (iters + 1)
    cols = kp + nf + 1
    return (kp + n_off + n_off * nf * n_mod * kp + rows + rows * nf + 9 * nf + nf * (kp + nf)
            + (nf + 1) + 2 * cols)  # fmt: skip


@shared()
def dual_int_size(n_feat: int, k: int, n_mod: int, n_off: int, iters: int) -> int:
    """Int64 scratch of :func:`dual_starts_into`."""
    kp = max(min(n_feat, k), 1)
    nf = max(n_feat, 1)
    rows = n_off * (iters + 1)
    cols = kp + nf + 1
    return (max(k, 1) + kp + 2 * rows * nf + rows * 2 * nf + rows + 4 * nf + rows + nf * kp
            + 3 * cols + 4 * nf)  # fmt: skip


@shared()
def dual_starts_into(mod, alpha, e, base, g, noise, budget, sym, smax, loglam0, offsets, iters,
                     count, feats, subs, pats, pows, size, fb, ib) -> int:  # fmt: skip
    """:func:`dual_starts` into ``feats``, ``subs``, ``pats`` int and ``pows`` float
    [count, >= max(N, 1)] and ``size`` [count]; returns the number of starts. Scratch: ``fb``
    float64 [:func:`dual_float_size`], ``ib`` int64 [:func:`dual_int_size`] (contiguous)."""
    n_feat = alpha.size
    k = g.size
    kp = min(n_feat, k)
    for q in range(count):
        size[q] = 0
        for i in range(feats.shape[1]):
            feats[q, i] = 0
            subs[q, i] = 0
            pats[q, i] = 0
            pows[q, i] = 0.0
    if kp == 0 or not math.isfinite(loglam0) or budget <= 0 or count == 0:
        return 0
    n_mod = sym.shape[1]
    n_off = offsets.size
    nr = n_off * (iters + 1)
    cols = kp + n_feat + 1
    # float scratch
    o = 0
    nu = fb[o : o + kp]
    o += kp
    loglam = fb[o : o + n_off]
    o += n_off
    table = fb[o : o + n_off * n_feat * n_mod * kp].reshape((n_off, n_feat, n_mod, kp))
    o += n_off * n_feat * n_mod * kp
    values = fb[o : o + nr]
    o += nr
    power = fb[o : o + nr * n_feat].reshape((nr, n_feat))
    o += nr * n_feat
    a_row = fb[o : o + n_feat]
    o += n_feat
    nu_row = fb[o : o + n_feat]
    o += n_feat
    sc_a = fb[o : o + n_feat]
    o += n_feat
    sc_v = fb[o : o + n_feat]
    o += n_feat
    sc_p = fb[o : o + n_feat]
    o += n_feat
    sc_g = fb[o : o + n_feat]
    o += n_feat
    sc_t = fb[o : o + n_feat]
    o += n_feat
    sc_c = fb[o : o + n_feat]
    o += n_feat
    ee = fb[o : o + n_feat]
    o += n_feat
    work = fb[o : o + n_feat * (kp + n_feat)].reshape((n_feat, kp + n_feat))
    o += n_feat * (kp + n_feat)
    hu = fb[o : o + n_feat + 1]
    o += n_feat + 1
    hv = fb[o : o + cols]
    o += cols
    hminv = fb[o : o + cols]
    o += cols
    # int scratch
    o = 0
    rank = ib[o : o + k]
    o += k
    chan = ib[o : o + kp]
    o += kp
    out_s = ib[o : o + nr * n_feat].reshape((n_off, iters + 1, n_feat))
    o += nr * n_feat
    out_m = ib[o : o + nr * n_feat].reshape((n_off, iters + 1, n_feat))
    o += nr * n_feat
    rows = ib[o : o + nr * 2 * n_feat].reshape((nr, 2 * n_feat))
    o += nr * 2 * n_feat
    srt = ib[o : o + nr]
    o += nr
    m_row = ib[o : o + n_feat]
    o += n_feat
    sc_m = ib[o : o + n_feat]
    o += n_feat
    sc_i = ib[o : o + n_feat]
    o += n_feat
    sc_ci = ib[o : o + n_feat]
    o += n_feat
    taken = ib[o : o + nr]
    o += nr
    best_m = ib[o : o + n_feat * kp].reshape((n_feat, kp))
    o += n_feat * kp
    hp = ib[o : o + cols]
    o += cols
    hway = ib[o : o + cols]
    o += cols
    hdone = ib[o : o + cols]
    o += cols
    col = ib[o : o + n_feat]
    o += n_feat
    mods = ib[o : o + n_feat]
    o += n_feat
    c2 = ib[o : o + n_feat]
    o += n_feat
    m2 = ib[o : o + n_feat]
    o += n_feat
    subchannel_rank(g, rank)
    for s in range(kp):
        chan[s] = rank[s]
        nu[s] = g[chan[s]] / noise
    for d in range(n_off):
        loglam[d] = loglam0 + offsets[d]
    _bound_terms(mod, alpha, e, nu, loglam, n_mod, table, sc_a, sc_v)
    _dual_search(table, sym, smax, iters, work, best_m, hu, hv, hp, hway, hminv, hdone, col,
                 mods, c2, m2, out_s, out_m)  # fmt: skip
    n_rows = 0
    for d in range(n_off):
        for it in range(iters + 1):
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
        return 0
    for q in range(n_rows):  # lexicographic order of the distinct rows (numpy.unique)
        srt[q] = q
    for a1 in range(1, n_rows):
        v = srt[a1]
        b1 = a1 - 1
        while b1 >= 0 and _row_less(rows, v, srt[b1], 2 * n_feat):
            srt[b1 + 1] = srt[b1]
            b1 -= 1
        srt[b1 + 1] = v
    for q in range(n_rows):
        for i in range(n_feat):
            power[q, i] = 0.0
    for i in range(n_feat):
        sc_p[i] = 0.0
        sc_g[i] = 0.0
    for q in range(n_rows):
        r = srt[q]
        for i in range(n_feat):
            slot = rows[r, i]
            a_row[i] = alpha[i]
            nu_row[i] = g[chan[slot if slot >= 0 else 0]] / noise
            m_row[i] = rows[r, n_feat + i] if slot >= 0 else -1
            ee[i] = e[i] if slot >= 0 else 0.0
        err = optimal_power_row(mod, a_row, nu_row, m_row, n_feat, budget, power[q], sc_a, sc_v,
                                sc_m, sc_i, sc_p, sc_g, sc_t, sc_c, sc_ci)  # fmt: skip
        values[q] = base + pairwise_sum(ee, n_feat) + err
    for q in range(n_rows):
        taken[q] = 0
    out = 0
    while out < count:
        best = -1
        for q in range(n_rows):  # stable: the first of equal values
            if taken[q] == 0 and (best < 0 or values[q] < values[best]):
                best = q
        if best < 0:
            break
        taken[best] = 1
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
    return out


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
    w = max(n_feat, 1)
    feats = np.zeros((count, w), np.int64)
    subs = np.zeros((count, w), np.int64)
    pats = np.zeros((count, w), np.int64)
    pows = np.zeros((count, w))
    size = np.zeros(count, np.int64)
    n_mod = sym.shape[1]
    fb = np.empty(dual_float_size(n_feat, k, n_mod, offsets.size, iters))
    ib = np.empty(dual_int_size(n_feat, k, n_mod, offsets.size, iters), np.int64)
    out = dual_starts_into(mod, alpha, e, base, g, noise, budget, sym, smax, loglam0, offsets,
                           iters, count, feats, subs, pats, pows, size, fb, ib)  # fmt: skip
    return out, feats, subs, pats, pows, size
