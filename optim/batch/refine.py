"""The hierarchical solver's refinement and dual starts for one frame, compiled
(:func:`optim.hierarchical.refine_candidate`, :func:`optim.hierarchical.refine_allocation`,
:mod:`optim.dual`), and the Numba-parallel loop of the default ``hierarchical`` family.

Per frame: the pipeline's best candidate per prefix length (:mod:`optim.batch.pipeline`),
the ``refine_starts`` of them nearest the best length, the ``dual_starts`` best dual
assignments (:mod:`optim.batch.dual`), then from each start: its exact optimal power
(:mod:`optim.batch.lemma3`) competes as it is, a local search (:mod:`optim.batch.local`)
and the polish of :func:`refine_allocation` (optimal power, modulations at fixed powers,
Hungarian matching, feature swaps; each step kept only if it lowers (P0)). The best wins.
Every step runs in the per-frame solver's order with its tie rules, so the discrete choices
agree; the constant ``w . drop`` is computed once by NumPy (as the per-frame code does) and
passed in, so that comparisons between states round the same.
"""

from __future__ import annotations

from collections import namedtuple

import numba
import numpy as np

from optim.batch.arith import ber, pairwise_sum
from optim.batch.dual import dual_starts, log_multiplier
from optim.batch.hungarian import assign_rows
from optim.batch.local import exact_power_row, local_search, scratch
from optim.batch.pipeline import frame_objective, pipeline_candidates
from optim.ber_model import BerModel
from optim.kernels import lagrangian_rows

Shared = namedtuple(
    "Shared",
    ["w", "slope", "floor", "drop", "ws", "wf", "wd", "e", "wd_sum", "dot_drop", "S", "smax",
     "P", "noise", "A", "B", "qw", "qs", "ba", "bb", "exact", "mod", "drop_rank", "offsets"],
)  # fmt: skip
"""Frame-independent inputs of the refinement (decision weights ``w`` and the problem's
terms [N], ``ws = w slope``, ``wf = w floor``, ``wd = w drop``, ``e = w (floor - drop)``,
``wd_sum`` (pairwise sum), ``dot_drop`` (``w @ drop``, NumPy's dot), symbols ``S`` [N, M]
float, budgets, BER tables, the :data:`optim.exact.BerModel`, the drop ranking and the dual
offsets)."""

Config = namedtuple(
    "Config",
    ["refine", "iters", "st_power", "st_mod", "st_match", "st_sel", "refine_starts",
     "margin", "local_max", "dual_starts", "dual_applies", "equal", "exact_first"],
)  # fmt: skip
"""Per-batch options of the refinement (resolved defaults; ``equal``: the equal-power rule)."""


@numba.njit(cache=True)
def _value(c, g, f, s, pat, pw, n, per) -> float:
    """(P0) of a state (:func:`optim.hierarchical._value`): ``w . drop + sum sent``."""
    for j in range(n):
        fj = f[j]
        pb = ber(pat[j], g[s[j]] * pw[j] / c.noise, c.qw, c.qs, c.ba, c.bb, c.exact)
        per[j] = c.w[fj] * (c.floor[fj] + c.slope[fj] * pb - c.drop[fj])
    return c.dot_drop + pairwise_sum(per, n)


@numba.njit(cache=True)
def _value_of(c, g, f, s, pat, pw, n, a, b) -> float:
    """The polish's value: ``sum wd - sum wd[f] + sum (wf + ws pb)[f]``."""
    for j in range(n):
        fj = f[j]
        pb = ber(pat[j], g[s[j]] * pw[j] / c.noise, c.qw, c.qs, c.ba, c.bb, c.exact)
        a[j] = c.wd[fj]
        b[j] = c.wf[fj] + c.ws[fj] * pb
    return c.wd_sum - pairwise_sum(a, n) + pairwise_sum(b, n)


@numba.njit(cache=True)
def assign_modulations(cost, table, s_max):  # noqa: ANN201
    """:func:`optim.modulation.assign_modulations` (Lagrangian choice, then a greedy fill of
    the slack); ``(ok, choice)`` with ``ok`` False when nothing fits."""
    n, m = cost.shape
    choice = np.zeros(n, np.int64)
    if n:
        lo_sum = 0.0
        for j in range(n):
            lo_sum += table[j].min()
        if lo_sum > s_max + 1e-9:
            return False, choice
    total = 0.0
    for j in range(n):
        k = 0
        for q in range(1, m):
            if cost[j, q] < cost[j, k]:
                k = q
        choice[j] = k
        total += table[j, k]
    if not total <= s_max + 1e-9:
        cmin = np.inf
        cmax = -np.inf
        for v in cost.ravel():
            cmin = min(cmin, v)
            cmax = max(cmax, v)
        spread = cmax - cmin if cost.size else 0.0
        gap = 1.0
        for j in range(n):
            for q in range(m):
                for r in range(m):
                    d = table[j, q] - table[j, r]
                    if d > 0 and d < gap:
                        gap = d
        hi = (spread + 1.0) / max(gap, 1e-12) * 2.0 + 1.0
        best = np.zeros(n, np.int64)
        for j in range(n):
            k = 0
            for q in range(1, m):
                if table[j, q] < table[j, k]:
                    k = q
            best[j] = k
        choice = lagrangian_rows(cost, table, s_max, 0.0, hi, 60, best)
    for _ in range(4 * n * m + 1):  # fill the slack (not monotone)
        used = 0.0
        for j in range(n):
            used += table[j, choice[j]]
        slack = s_max - used
        bj = -1
        bk = -1
        bd = 0.0
        for j in range(n):
            here = cost[j, choice[j]]
            for q in range(m):
                d = cost[j, q] - here
                if d < 0 and table[j, q] - table[j, choice[j]] <= slack + 1e-9 and d < bd:
                    bd = d
                    bj = j
                    bk = q
        if bj < 0:
            break
        choice[bj] = bk
    return True, choice


@numba.njit(cache=True)
def _swap_features(c, f, s, pat, pw, n, pb, uniform, out_f, out_s, out_p, out_w) -> int:
    """Best non-conflicting swaps (slot ``j`` <- unselected feature) and drops
    (:func:`optim.hierarchical._swap_features`); writes the result, returns its size."""
    n_all = c.w.size
    chosen = np.zeros(n_all, np.bool_)
    for j in range(n):
        chosen[f[j]] = True
    others = np.empty(n_all, np.int64)
    nu = 0
    for i in range(n_all):
        if not chosen[i]:
            others[nu] = i
            nu += 1
    delta = np.empty((n, nu + 1))
    extra = np.empty((n, nu + 1))
    slack = c.smax
    for j in range(n):
        fj = f[j]
        here = c.wf[fj] + c.ws[fj] * pb[j] - c.wd[fj]
        for q in range(nu):
            u = others[q]
            delta[j, q] = (c.wf[u] + c.ws[u] * pb[j] - c.wd[u]) - here
        delta[j, nu] = 0.0 - here
        if not uniform:
            own = c.S[fj, pat[j]]
            for q in range(nu):
                extra[j, q] = c.S[others[q], pat[j]] - own
            extra[j, nu] = -own
    if not uniform:
        own_sum = 0.0
        for j in range(n):
            own_sum += c.S[f[j], pat[j]]
        slack = c.smax - own_sum
    feats = f[:n].copy()
    keep = np.ones(n, np.bool_)
    while True:
        bj = 0
        bu = 0
        bv = np.inf
        first = True
        for j in range(n):
            for q in range(nu + 1):
                v = delta[j, q]
                if not uniform and not extra[j, q] <= slack + 1e-9:
                    v = np.inf
                if first or v < bv:
                    bv = v
                    bj = j
                    bu = q
                    first = False
        if first:
            break
        if not uniform:
            if not (delta[bj, bu] < 0 and extra[bj, bu] <= slack + 1e-9):
                break
            slack -= extra[bj, bu]
        elif not delta[bj, bu] < 0:
            break
        if bu == nu:
            keep[bj] = False
        else:
            feats[bj] = others[bu]
            for j in range(n):
                delta[j, bu] = np.inf
        for q in range(nu + 1):
            delta[bj, q] = np.inf
    m = 0
    for j in range(n):
        if keep[j]:
            out_f[m] = feats[j]
            out_s[m] = s[j]
            out_p[m] = pat[j]
            out_w[m] = pw[j]
            m += 1
    return m


@numba.njit(cache=True)
def refine_allocation(c, cfg, g, f, s, pat, pw, n, uniform):  # noqa: ANN201
    """The polish of :func:`optim.hierarchical.refine_allocation` (defaults: ``rtol`` 1e-9,
    Hungarian every round); returns ``(f, s, pat, pw, n)``."""
    k = g.size
    m_count = c.A.size
    W = max(n, 1)
    a = np.empty(W)
    b = np.empty(W)
    f = f[:n].copy()
    s = s[:n].copy()
    pat = pat[:n].copy()
    pw = pw[:n].copy()
    value = _value_of(c, g, f, s, pat, pw, n, a, b)
    sc = scratch(W)
    tf = np.empty(W, np.int64)
    ts = np.empty(W, np.int64)
    tp = np.empty(W, np.int64)
    tw = np.empty(W)
    pb = np.empty(W)
    for _ in range(cfg.iters):
        start = value
        if n == 0:
            break
        if cfg.st_power:
            p_new = np.zeros(n)
            exact_power_row(c, g, f, s, pat, n, p_new, sc)
            v = _value_of(c, g, f, s, pat, p_new, n, a, b)
            if v < value:
                pw = p_new
                value = v
        if cfg.st_mod:
            cost = np.empty((n, m_count))
            table = np.empty((n, m_count))
            for j in range(n):
                esno = g[s[j]] * pw[j] / c.noise
                for q in range(m_count):
                    cost[j, q] = c.ws[f[j]] * ber(q, esno, c.qw, c.qs, c.ba, c.bb, c.exact)
                    table[j, q] = c.S[f[j], q]
            ok, new = assign_modulations(cost, table, c.smax)
            differs = False
            for j in range(n):
                if new[j] != pat[j]:
                    differs = True
            if ok and differs:
                v = _value_of(c, g, f, s, new, pw, n, a, b)
                if v < value:
                    pat = new
                    value = v
        if cfg.st_match:
            cost = np.empty((n, k))
            for j in range(n):
                for q in range(k):
                    esno = pw[j] * g[q] / c.noise
                    cost[j, q] = c.ws[f[j]] * ber(pat[j], esno, c.qw, c.qs, c.ba, c.bb, c.exact)
            new = assign_rows(cost)
            differs = False
            for j in range(n):
                if new[j] != s[j]:
                    differs = True
            if differs:
                v = _value_of(c, g, f, new, pat, pw, n, a, b)
                if v < value:
                    s = new
                    value = v
        if cfg.st_sel:
            for j in range(n):
                pb[j] = ber(pat[j], g[s[j]] * pw[j] / c.noise, c.qw, c.qs, c.ba, c.bb, c.exact)
            m = _swap_features(c, f, s, pat, pw, n, pb, uniform, tf, ts, tp, tw)
            v = _value_of(c, g, tf, ts, tp, tw, m, a, b)
            if v < value:
                f = tf[:m].copy()
                s = ts[:m].copy()
                pat = tp[:m].copy()
                pw = tw[:m].copy()
                n = m
                value = v
        if not value < start - 1e-9 * abs(start):
            break
    return f, s, pat, pw, n


@numba.njit(cache=True)
def refine_frame(c, cfg, g, starts_f, starts_s, starts_p, starts_w, starts_n, n_starts,
                 first_ls, uniform, out_f, out_s, out_p, out_w):  # fmt: skip
    """:func:`optim.hierarchical.refine_candidate` over the rows of ``starts_*`` (pipeline
    starts, then dual starts); the best state goes to ``out_*``; returns its size."""
    n_feat = c.w.size
    W = max(n_feat, 1)
    per = np.empty(W)
    sc = scratch(W)
    best_n = -1
    best_v = np.inf
    moves = cfg.st_mod or cfg.st_match or cfg.st_sel
    for q in range(n_starts):
        n = starts_n[q]
        f = starts_f[q, :n].copy()
        s = starts_s[q, :n].copy()
        pat = starts_p[q, :n].copy()
        pw = starts_w[q, :n].copy()
        if n and not cfg.equal and cfg.st_power:
            p0 = np.zeros(n)
            exact_power_row(c, g, f, s, pat, n, p0, sc)
            v0 = _value(c, g, f, s, pat, p0, n, per)
            if best_n < 0 or v0 < best_v:
                best_v = v0
                best_n = n
                out_f[:n] = f
                out_s[:n] = s
                out_p[:n] = pat
                out_w[:n] = p0
        if moves and n <= cfg.local_max and q >= first_ls:
            f, s, pat, pw, n, _ = local_search(c, g, f, s, pat, n, cfg.exact_first, cfg.equal,
                                               cfg.st_mod, cfg.st_match, cfg.st_sel)  # fmt: skip
        if n:
            f, s, pat, pw, n = refine_allocation(c, cfg, g, f, s, pat, pw, n, uniform)
        v = _value(c, g, f, s, pat, pw, n, per)
        if best_n < 0 or v < best_v:
            best_v = v
            best_n = n
            out_f[:n] = f
            out_s[:n] = s
            out_p[:n] = pat
            out_w[:n] = pw
    return best_n


def hierarchical_batch(gains, perms, c, cfg, *rest):  # noqa: ANN001, ANN201
    """The hierarchical family with its refinement for every frame of ``gains`` [F, K]
    (``c``: :data:`Shared`, ``cfg``: :data:`Config`; ``rest``: the pipeline's arrays and the
    problem's own weights and terms); returns ``selected, subchannel, modulation,
    power [F, N]`` and ``objective [F]``.

    Numba's parallel loop takes arrays and scalars only, so the tuples travel field by field
    and are rebuilt inside each frame.
    """
    return _hierarchical_batch(gains, perms, *c[:21], *c.mod, *c[22:], *cfg, *rest)


@numba.njit(cache=True, parallel=True)
def _hierarchical_batch(gains, perms, w, slope, floor, drop, ws, wf, wd, e, wd_sum, dot_drop,
                        S, smax, P, noise, A, B, qw, qs, ba, bb, exact, m_kind, m_a, m_b, m_qw,
                        m_qb, m_nt, m_f0, m_lnmu0, m_h, m_lng, m_h_tab, drop_rank, offsets,
                        refine, r_iters, st_power, st_mod, st_match, st_sel, refine_starts,
                        margin, local_max, n_dual_starts, dual_applies, equal, exact_first,
                        order, ws_r, wf_r, tail, n_max, pats, row_w, n_start, n_count, matching,
                        iters, uniform, w0, floor0, slope0, drop0):  # fmt: skip
    frames, k = gains.shape
    nf = order.size
    sel = np.zeros((frames, nf), np.bool_)
    sub = np.full((frames, nf), -1, np.int64)
    mod = np.full((frames, nf), -1, np.int64)
    pw = np.zeros((frames, nf))
    obj = np.zeros(frames)
    power_mode = 1 if equal else 0
    for b in numba.prange(frames):
        bm = BerModel(m_kind, m_a, m_b, m_qw, m_qb, m_nt, m_f0, m_lnmu0, m_h, m_lng, m_h_tab)
        c = Shared(w, slope, floor, drop, ws, wf, wd, e, wd_sum, dot_drop, S, smax, P, noise, A,
                   B, qw, qs, ba, bb, exact, bm, drop_rank, offsets)  # fmt: skip
        cfg = Config(refine, r_iters, st_power, st_mod, st_match, st_sel, refine_starts, margin,
                     local_max, n_dual_starts, dual_applies, equal, exact_first)  # fmt: skip
        g = gains[b]
        perm = perms[b] if perms.shape[0] > 1 else perms[0]
        best_v, best_row, best_p, best_s, n_best = pipeline_candidates(
            g, perm, c.noise, c.P, order, ws_r, wf_r, tail, c.A, c.B, c.qw, c.qs, c.ba, c.bb,
            c.exact, n_max, pats, row_w, n_start, n_count, matching, power_mode, iters)  # fmt: skip
        W = max(nf, 1)
        f_out = np.zeros(W, np.int64)
        s_out = np.zeros(W, np.int64)
        p_out = np.zeros(W, np.int64)
        w_out = np.zeros(W)
        n_out = n_best
        for j in range(n_best):
            f_out[j] = order[j]
            s_out[j] = best_s[n_best, j]
            p_out[j] = pats[best_row[n_best], j]
            w_out[j] = best_p[n_best, j]
        if cfg.refine:
            cv = best_v[n_best]
            limit = cv * (1 + cfg.margin) if np.isfinite(cv) else np.inf
            near = np.empty(n_max + 1, np.int64)
            n_near = 0
            for n in range(n_max + 1):
                if np.isfinite(best_v[n]) and best_v[n] <= limit:
                    near[n_near] = n
                    n_near += 1
            for a1 in range(1, n_near):  # by (|n - n_best|, n)
                x = near[a1]
                b1 = a1 - 1
                while b1 >= 0 and (abs(near[b1] - n_best) > abs(x - n_best) or (
                        abs(near[b1] - n_best) == abs(x - n_best) and near[b1] > x)):  # fmt: skip
                    near[b1 + 1] = near[b1]
                    b1 -= 1
                near[b1 + 1] = x
            n_pipe = min(cfg.refine_starts, n_near)
            n_dual = 0
            d_f = np.zeros((1, W), np.int64)
            d_s = np.zeros((1, W), np.int64)
            d_p = np.zeros((1, W), np.int64)
            d_w = np.zeros((1, W))
            d_n = np.zeros(1, np.int64)
            if cfg.dual_starts and cfg.dual_applies and n_best:
                lev = log_multiplier(c.mod, c.ws, g, c.noise, f_out, s_out, p_out, n_best, c.P)
                n_dual, d_f, d_s, d_p, d_w, d_n = dual_starts(
                    c.mod, c.ws, c.e, c.dot_drop, g, c.noise, c.P, c.S, c.smax, lev, c.offsets,
                    30, cfg.dual_starts)  # fmt: skip
            any_sent = n_dual > 0
            for q in range(n_pipe):
                if near[q] > 0:
                    any_sent = True
            if any_sent:
                total = n_pipe + n_dual
                sf = np.zeros((total, W), np.int64)
                ss = np.zeros((total, W), np.int64)
                sp = np.zeros((total, W), np.int64)
                sw = np.zeros((total, W))
                sn = np.zeros(total, np.int64)
                for q in range(n_pipe):
                    n = near[q]
                    sn[q] = n
                    for j in range(n):
                        sf[q, j] = order[j]
                        ss[q, j] = best_s[n, j]
                        sp[q, j] = pats[best_row[n], j]
                        sw[q, j] = best_p[n, j]
                for q in range(n_dual):
                    sn[n_pipe + q] = d_n[q]
                    sf[n_pipe + q] = d_f[q]
                    ss[n_pipe + q] = d_s[q]
                    sp[n_pipe + q] = d_p[q]
                    sw[n_pipe + q] = d_w[q]
                first_ls = n_pipe if (n_dual > 0 and n_pipe == 1) else 0
                n_out = refine_frame(c, cfg, g, sf, ss, sp, sw, sn, total, first_ls, uniform,
                                     f_out, s_out, p_out, w_out)  # fmt: skip
        for j in range(n_out):
            i = f_out[j]
            sel[b, i] = True
            sub[b, i] = s_out[j]
            mod[b, i] = p_out[j]
            pw[b, i] = w_out[j]
        cost = np.empty(nf)
        obj[b] = frame_objective(sel[b], sub[b], mod[b], pw[b], g, c.noise, w0, floor0, slope0,
                                 drop0, c.qw, c.qs, c.ba, c.bb, c.exact, cost)  # fmt: skip
    return sel, sub, mod, pw, obj
