"""Lagrangian dual starts of the refinement for one frame (:mod:`optim.dual`, compiled).

Both budgets are priced (``lambda`` for the power, ``kappa`` for the symbols), which splits
(P0) into one term per (feature ``i``, slot ``s``, modulation ``m``)::

    C(i, m, s) = e_i + alpha_i H_m(lambda / (alpha_i nu_s)) + kappa S_i(m),

an assignment of features to slots (or to "not sent", cost 0) solved by the Hungarian
algorithm. Per ``ln lambda`` (the pipeline's multiplier plus fixed offsets) a bisection on
``kappa`` collects every assignment that meets ``S_max``; the distinct ones are ranked by
(P0) at their exact optimal power (:mod:`optim.optimal_power`). Only the first ``count`` are
kept, so a row is priced only while its dual bound (eq. 2 of :mod:`optim.slots`, the best of
the ``D`` multipliers) does not exceed the ``count``-th best value already met, rows taken in
increasing order of their bound: a row skipped has a larger value than each one kept (the
bound is a lower bound, and a margin of ``1e-9`` of its terms' magnitude covers rounding), so
the starts and their order are those of pricing every row (at ``N = K = 16`` about 1 row
priced in 28). The slot terms and the
bisection are the per-frame solver's own kernels (:func:`optim.slots.slot_terms_into`,
:func:`optim.dual.dual_search_into`); what this module adds is the per-frame workspace and the
ranking, which follows the per-frame code's order (distinct rows sorted lexicographically as
``numpy.unique(axis=0)`` does, then a stable sort by value), so the same starts come out.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from optim.batch.arith import pairwise_sum, subchannel_rank
from optim.batch.power_memo import new_memo, priced_into, priced_row
from optim.dual import dual_search_into, tie_free
from optim.slots import slot_terms_into
from optim.twin import shared


@shared()
def log_multiplier_into(mod, alpha, g, noise, feats, sub, pat, n, budget, fs, is_, memo) -> float:
    """:func:`log_multiplier` with scratch ``fs`` float64 [6 max(n, 1)], ``is_`` int64
    [2 max(n, 1)], priced through the frame's ``memo`` (:mod:`optim.batch.power_memo`)."""
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
    _, lev = priced_into(memo, mod, a, nu, mm, n, budget, p, gam, t, c, idx)
    return lev if math.isfinite(lev) else -math.inf


@numba.njit(cache=True)
def log_multiplier(mod, alpha, g, noise, feats, sub, pat, n, budget) -> float:
    """``ln lambda`` of the optimal power of ``(feats, sub, pat)[:n]`` (``-inf``: none used);
    ``alpha`` [N]: ``w slope`` per feature."""
    nn = max(n, 1)
    return log_multiplier_into(mod, alpha, g, noise, feats, sub, pat, n, budget,
                               np.empty(6 * nn), np.empty(2 * nn, np.int64),
                               new_memo(nn, 0))  # fmt: skip


@shared()
def _row_less(rows, a, b, width) -> bool:
    for i in range(width):
        if rows[a, i] != rows[b, i]:
            return rows[a, i] < rows[b, i]
    return False


@shared()
def row_bound(table, loglam, rows, r, n_feat, base, budget) -> tuple[float, float]:
    """The dual bound (eq. 2 of :mod:`optim.slots`, weak duality) of distinct row ``r`` at the
    best of the ``D`` multipliers, and a margin for its rounding (``1e-9`` of the magnitude of
    its terms); ``-inf`` where it is not a number.

    Every allocation's (P0) at its optimal power is at least
    ``base + sum_i table[d, i, m_i, s_i] - lambda_d P_tot`` for every ``d``."""
    best = -math.inf
    margin = 0.0
    for d in range(loglam.size):
        lam_p = math.exp(loglam[d]) * budget
        acc = 0.0
        mag = abs(base) + lam_p
        for i in range(n_feat):
            slot = rows[r, i]
            if slot >= 0:
                v = table[d, i, rows[r, n_feat + i], slot]
                acc += v
                mag += abs(v)
        bound = base + acc - lam_p
        if bound > best:
            best = bound
            margin = 1e-9 * mag
    return best, margin


@shared()
def kth_smallest(values, flag, n, count) -> float:
    """The ``count``-th smallest of ``values[q]`` over ``q < n`` with ``flag[q] == 0``, counting
    equal values with their multiplicity (``inf`` when fewer; NaN entries are left out)."""
    prev = -math.inf
    got = 0
    while True:
        cur = math.inf
        mult = 0
        for q in range(n):
            if flag[q] == 0:
                v = values[q]
                if v > prev:
                    if v < cur:
                        cur = v
                        mult = 1
                    elif v == cur:
                        mult += 1
        if mult == 0:
            return math.inf
        got += mult
        if got >= count:
            return cur
        prev = cur


@shared()
def dual_float_size(n_feat: int, k: int, n_mod: int, n_off: int, iters: int) -> int:
    """Float64 scratch of :func:`dual_starts_into`."""
    kp = max(min(n_feat, k), 1)
    nf = max(n_feat, 1)
    rows = n_off * (iters + 1)
    cols = kp + nf + 1
    return (kp + n_off + n_off * nf * n_mod * kp + 3 * rows + rows * nf + 9 * nf
            + nf * (kp + nf) + (nf + 1) + 2 * cols)  # fmt: skip


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
                     count, feats, subs, pats, pows, size, fb, ib, memo) -> int:  # fmt: skip
    """:func:`dual_starts` into ``feats``, ``subs``, ``pats`` int and ``pows`` float
    [count, >= max(N, 1)] and ``size`` [count]; returns the number of starts. Scratch: ``fb``
    float64 [:func:`dual_float_size`], ``ib`` int64 [:func:`dual_int_size`] (contiguous);
    rows are priced through the frame's ``memo`` (:mod:`optim.batch.power_memo`)."""
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
    lb = fb[o : o + nr]
    o += nr
    slack = fb[o : o + nr]
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
    slot_terms_into(mod, alpha, e, nu, loglam, n_mod, table, sc_a, sc_v)
    dual_search_into(table, sym, smax, iters, work, best_m, hu, hv, hp, hway, hminv, hdone, col,
                     mods, c2, m2, out_s, out_m, tie_free(alpha, nu, kp))  # fmt: skip
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
        lb[q], slack[q] = row_bound(table, loglam, rows, srt[q], n_feat, base, budget)
        values[q] = math.inf
        taken[q] = 1  # not evaluated (yet): left out of the ranking
    # Rows in increasing order of their bound, until the bound of the next one exceeds the
    # count-th best value met: those left cannot rank among the first count.
    n_eval = 0
    kth = math.inf
    while True:
        nxt = -1
        for q in range(n_rows):
            if taken[q] == 1 and (nxt < 0 or lb[q] < lb[nxt]):
                nxt = q
        if nxt < 0 or (n_eval >= count and lb[nxt] > kth + slack[nxt] + 1e-9 * abs(kth)):
            break
        r = srt[nxt]
        for i in range(n_feat):
            slot = rows[r, i]
            a_row[i] = alpha[i]
            nu_row[i] = g[chan[slot if slot >= 0 else 0]] / noise
            m_row[i] = rows[r, n_feat + i] if slot >= 0 else -1
            ee[i] = e[i] if slot >= 0 else 0.0
        err = priced_row(memo, mod, a_row, nu_row, m_row, n_feat, budget, power[nxt], sc_a,
                         sc_v, sc_m, sc_i, sc_p, sc_g, sc_t, sc_c, sc_ci)  # fmt: skip
        values[nxt] = base + pairwise_sum(ee, n_feat) + err
        taken[nxt] = 0
        n_eval += 1
        if n_eval >= count:
            kth = kth_smallest(values, taken, n_rows, count)
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
                           iters, count, feats, subs, pats, pows, size, fb, ib,
                           new_memo(w, 0))  # fmt: skip
    return out, feats, subs, pats, pows, size
