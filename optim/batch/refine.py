"""The hierarchical solver's refinement and dual starts for one frame, compiled
(:func:`optim.hierarchical.refine_candidate`, :func:`optim.hierarchical.refine_allocation`,
:mod:`optim.dual`), and the Numba-parallel loop of the default ``hierarchical`` family.

Per frame: the pipeline's best candidate per prefix length (:mod:`optim.batch.pipeline`),
the ``refine_starts`` of them nearest the best length, the ``dual_starts`` best dual
assignments (:mod:`optim.batch.dual`), then from each start: its exact optimal power
(:mod:`optim.optimal_power`) competes as it is, a local search (:mod:`optim.batch.local`)
and the polish of :func:`refine_allocation` (optimal power, modulations at fixed powers,
Hungarian matching, feature swaps; each step kept only if it lowers (P0)). The best wins.
Every step runs in the per-frame solver's order with its tie rules, so the discrete choices
agree; the constant ``w . drop`` is computed once by NumPy (as the per-frame code does) and
passed in, so that comparisons between states round the same.
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba
import numpy as np

from optim.batch.arith import pairwise_sum
from optim.batch.dual import dual_float_size, dual_int_size, dual_starts_into, log_multiplier_into
from optim.batch.hungarian import assign_rows_into
from optim.batch.local import (
    exact_power_row,
    local_float_size,
    local_int_size,
    local_search_into,
)
from optim.batch.pipeline import (
    frame_objective,
    pipeline_candidates_into,
    pipeline_float_size,
    pipeline_int_size,
)
from optim.batch.power_memo import new_memo
from optim.ber_model import BerModel
from optim.kernels import ber, lagrangian_into
from optim.twin import shared

Shared = namedtuple(
    "Shared",
    ["w", "slope", "floor", "drop", "ws", "wf", "wd", "e", "wd_sum", "dot_drop", "S", "smax",
     "P", "noise", "A", "B", "qw", "qs", "ba", "bb", "exact", "mod", "drop_rank", "offsets",
     "memo"],
)  # fmt: skip
"""Frame-independent inputs of the refinement (decision weights ``w`` and the problem's
terms [N], ``ws = w slope``, ``wf = w floor``, ``wd = w drop``, ``e = w (floor - drop)``,
``wd_sum`` (pairwise sum), ``dot_drop`` (``w @ drop``, NumPy's dot), symbols ``S`` [N, M]
float, budgets, BER tables, the :data:`optim.exact.BerModel`, the drop ranking and the dual
offsets) and the frame's memo of exact pricings (:mod:`optim.batch.power_memo`: a new one per
frame; the plan's is empty)."""

Config = namedtuple(
    "Config",
    ["refine", "iters", "st_power", "st_mod", "st_match", "st_sel", "refine_starts",
     "margin", "local_max", "dual_starts", "dual_applies", "equal", "exact_first"],
)  # fmt: skip
"""Per-batch options of the refinement (resolved defaults; ``equal``: the equal-power rule)."""


@shared()
def _value(c, g, f, s, pat, pw, n, per) -> float:
    """(P0) of a state (:func:`optim.hierarchical._value`): ``w . drop + sum sent``."""
    for j in range(n):
        fj = f[j]
        pb = ber(pat[j], g[s[j]] * pw[j] / c.noise, c.qw, c.qs, c.ba, c.bb, c.exact)
        per[j] = c.w[fj] * (c.floor[fj] + c.slope[fj] * pb - c.drop[fj])
    return c.dot_drop + pairwise_sum(per, n)


@shared()
def _value_of(c, g, f, s, pat, pw, n, a, b) -> float:
    """The polish's value: ``sum wd - sum wd[f] + sum (wf + ws pb)[f]``."""
    for j in range(n):
        fj = f[j]
        pb = ber(pat[j], g[s[j]] * pw[j] / c.noise, c.qw, c.qs, c.ba, c.bb, c.exact)
        a[j] = c.wd[fj]
        b[j] = c.wf[fj] + c.ws[fj] * pb
    return c.wd_sum - pairwise_sum(a, n) + pairwise_sum(b, n)


@shared()
def assign_modulations_into(cost, table, n, m, s_max, choice, best, ch) -> bool:
    """:func:`optim.modulation.assign_modulations` (Lagrangian choice, then a greedy fill of
    the slack) of ``cost``, ``table`` [:n, :m] into ``choice[:n]``; False when nothing fits
    (``best``, ``ch``: scratch [n])."""
    for j in range(n):
        choice[j] = 0
    if n:
        lo_sum = 0.0
        for j in range(n):
            low = table[j, 0]
            for q in range(1, m):
                low = min(low, table[j, q])
            lo_sum += low
        if lo_sum > s_max + 1e-9:
            return False
    total = 0.0
    for j in range(n):
        k = 0
        for q in range(1, m):
            if cost[j, q] < cost[j, k]:
                k = q
        choice[j] = k
        total += table[j, k]
    if not total <= s_max + 1e-9:
        cmin = math.inf
        cmax = -math.inf
        for j in range(n):
            for q in range(m):
                cmin = min(cmin, cost[j, q])
                cmax = max(cmax, cost[j, q])
        spread = cmax - cmin if n * m else 0.0
        gap = 1.0
        for j in range(n):
            for q in range(m):
                for r in range(m):
                    d = table[j, q] - table[j, r]
                    if d > 0 and d < gap:
                        gap = d
        hi = (spread + 1.0) / max(gap, 1e-12) * 2.0 + 1.0
        for j in range(n):
            k = 0
            for q in range(1, m):
                if table[j, q] < table[j, k]:
                    k = q
            best[j] = k
        lagrangian_into(cost, table, n, m, s_max, 0.0, hi, 60, best, ch)
        for j in range(n):
            choice[j] = best[j]
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
    return True


@numba.njit(cache=True)
def assign_modulations(cost, table, s_max):  # noqa: ANN201
    """:func:`optim.modulation.assign_modulations` (Lagrangian choice, then a greedy fill of
    the slack); ``(ok, choice)`` with ``ok`` False when nothing fits."""
    n, m = cost.shape
    choice = np.zeros(n, np.int64)
    ok = assign_modulations_into(cost, table, n, m, s_max, choice, np.zeros(n, np.int64),
                                 np.empty(n, np.int64))  # fmt: skip
    return ok, choice


@shared()
def _swap_features(c, f, s, pat, pw, n, pb, uniform, out_f, out_s, out_p, out_w, fb, ib) -> int:
    """Best non-conflicting swaps (slot ``j`` <- unselected feature) and drops
    (:func:`optim.hierarchical._swap_features`); writes the result, returns its size.
    Scratch: ``fb`` float64 [2 n (N + 1)], ``ib`` int64 [2 N + 2 n] (contiguous)."""
    n_all = c.w.size
    chosen = ib[:n_all]
    others = ib[n_all : 2 * n_all]
    feats = ib[2 * n_all : 2 * n_all + n]
    keep = ib[2 * n_all + n : 2 * n_all + 2 * n]
    for i in range(n_all):
        chosen[i] = 0
    for j in range(n):
        chosen[f[j]] = 1
    nu = 0
    for i in range(n_all):
        if chosen[i] == 0:
            others[nu] = i
            nu += 1
    delta = fb[: n * (nu + 1)].reshape((n, nu + 1))
    extra = fb[n * (nu + 1) : 2 * n * (nu + 1)].reshape((n, nu + 1))
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
    for j in range(n):
        feats[j] = f[j]
        keep[j] = 1
    while True:
        bj = 0
        bu = 0
        bv = math.inf
        first = True
        for j in range(n):
            for q in range(nu + 1):
                v = delta[j, q]
                if not uniform and not extra[j, q] <= slack + 1e-9:
                    v = math.inf
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
            keep[bj] = 0
        else:
            feats[bj] = others[bu]
            for j in range(n):
                delta[j, bu] = math.inf
        for q in range(nu + 1):
            delta[bj, q] = math.inf
    m = 0
    for j in range(n):
        if keep[j] != 0:
            out_f[m] = feats[j]
            out_s[m] = s[j]
            out_p[m] = pat[j]
            out_w[m] = pw[j]
            m += 1
    return m


@shared()
def polish_float_size(n_feat: int, k: int, n_mod: int) -> int:
    """Float64 scratch of :func:`refine_allocation_into`."""
    w = max(n_feat, 1)
    kk = max(k, 1)
    return 5 * w + 8 * w + 2 * w * n_mod + w * kk + w + 2 * kk + 2 * w * (n_feat + 1)


@shared()
def polish_int_size(n_feat: int, k: int) -> int:
    """Int64 scratch of :func:`refine_allocation_into`."""
    w = max(n_feat, 1)
    kk = max(k, 1)
    return 3 * w + 2 * w + 3 * w + 2 * w + w + 4 * kk + 2 * n_feat + 2 * w


@shared()
def refine_allocation_into(c, cfg, g, f, s, pat, pw, n, uniform, fb, ib) -> int:
    """The polish of :func:`optim.hierarchical.refine_allocation` (defaults: ``rtol`` 1e-9,
    Hungarian every round) on the state ``(f, s, pat, pw)[:n]`` in place; returns its new
    size. Scratch: ``fb`` float64 [:func:`polish_float_size`], ``ib`` int64
    [:func:`polish_int_size`] (contiguous)."""
    k = g.size
    m_count = c.A.size
    W = max(n, 1)
    kk = max(k, 1)
    n_all = c.w.size
    o = 0
    a = fb[o : o + W]
    o += W
    b = fb[o : o + W]
    o += W
    p_new = fb[o : o + W]
    o += W
    tw = fb[o : o + W]
    o += W
    pb = fb[o : o + W]
    o += W
    fs = fb[o : o + 8 * W]
    o += 8 * W
    cost_m = fb[o : o + W * m_count]
    o += W * m_count
    table = fb[o : o + W * m_count]
    o += W * m_count
    cost_k = fb[o : o + W * kk]
    o += W * kk
    hf = fb[o : o + W + 2 * kk]
    o += W + 2 * kk
    swap_f = fb[o : o + 2 * W * (n_all + 1)]
    o = 0
    tf = ib[o : o + W]
    o += W
    ts = ib[o : o + W]
    o += W
    tp = ib[o : o + W]
    o += W
    new_m = ib[o : o + W]
    o += W
    new_s = ib[o : o + W]
    o += W
    is_ = ib[o : o + 3 * W]
    o += 3 * W
    best = ib[o : o + W]
    o += W
    ch = ib[o : o + W]
    o += W
    hi = ib[o : o + W + 4 * kk]
    o += W + 4 * kk
    swap_i = ib[o : o + 2 * n_all + 2 * W]
    for j in range(8 * W):
        fs[j] = 0.0
    value = _value_of(c, g, f, s, pat, pw, n, a, b)
    # A step reads only part of the state (power: f, s, pat; modulations: f, s, pw; matching:
    # f, pat, pw; swaps: all of it) and is deterministic. Run again on the parts it read last
    # time, it would propose what it proposed then: kept then, the state already holds it;
    # turned down then, the value it lost to is still the value. So a step is skipped
    # (need_* False) until another step's kept change, or its own for the swaps (whose
    # result they read), touches a part it reads.
    need_power = True
    need_mod = True
    need_match = True
    need_sel = True
    for _ in range(cfg.iters):
        start = value
        if n == 0:
            break
        if cfg.st_power and need_power:
            need_power = False
            for j in range(n):
                p_new[j] = 0.0
            exact_power_row(c, g, f, s, pat, n, p_new, fs, is_)
            v = _value_of(c, g, f, s, pat, p_new, n, a, b)
            if v < value:
                for j in range(n):
                    pw[j] = p_new[j]
                value = v
                need_mod = need_match = need_sel = True
        if cfg.st_mod and need_mod:
            need_mod = False
            cost = cost_m[: n * m_count].reshape((n, m_count))
            tab = table[: n * m_count].reshape((n, m_count))
            for j in range(n):
                esno = g[s[j]] * pw[j] / c.noise
                for q in range(m_count):
                    cost[j, q] = c.ws[f[j]] * ber(q, esno, c.qw, c.qs, c.ba, c.bb, c.exact)
                    tab[j, q] = c.S[f[j], q]
            ok = assign_modulations_into(cost, tab, n, m_count, c.smax, new_m, best, ch)
            differs = False
            for j in range(n):
                if new_m[j] != pat[j]:
                    differs = True
            if ok and differs:
                v = _value_of(c, g, f, s, new_m, pw, n, a, b)
                if v < value:
                    for j in range(n):
                        pat[j] = new_m[j]
                    value = v
                    need_power = need_match = need_sel = True
        if cfg.st_match and need_match:
            need_match = False
            cost = cost_k[: n * k].reshape((n, k))
            for j in range(n):
                for q in range(k):
                    esno = pw[j] * g[q] / c.noise
                    cost[j, q] = c.ws[f[j]] * ber(pat[j], esno, c.qw, c.qs, c.ba, c.bb, c.exact)
            assign_rows_into(cost, n, k, hf, hi, new_s)
            differs = False
            for j in range(n):
                if new_s[j] != s[j]:
                    differs = True
            if differs:
                v = _value_of(c, g, f, new_s, pat, pw, n, a, b)
                if v < value:
                    for j in range(n):
                        s[j] = new_s[j]
                    value = v
                    need_power = need_mod = need_sel = True
        if cfg.st_sel and need_sel:
            need_sel = False
            for j in range(n):
                pb[j] = ber(pat[j], g[s[j]] * pw[j] / c.noise, c.qw, c.qs, c.ba, c.bb, c.exact)
            m = _swap_features(c, f, s, pat, pw, n, pb, uniform, tf, ts, tp, tw, swap_f, swap_i)
            v = _value_of(c, g, tf, ts, tp, tw, m, a, b)
            if v < value:
                for j in range(m):
                    f[j] = tf[j]
                    s[j] = ts[j]
                    pat[j] = tp[j]
                    pw[j] = tw[j]
                n = m
                value = v
                need_power = need_mod = need_match = need_sel = True
        if not value < start - 1e-9 * abs(start):
            break
    return n


@shared()
def refine_frame_float_size(n_feat: int, k: int, n_mod: int) -> int:
    """Float64 scratch of :func:`refine_frame_into`."""
    w = n_feat + 1
    inner = max(local_float_size(n_feat, k, n_mod), polish_float_size(n_feat, k, n_mod))
    return 3 * w + 8 * w + inner


@shared()
def refine_frame_int_size(n_feat: int, k: int, n_mod: int) -> int:
    """Int64 scratch of :func:`refine_frame_into`."""
    w = n_feat + 1
    inner = max(local_int_size(n_feat, k, n_mod), polish_int_size(n_feat, k))
    return 3 * w + 3 * w + inner


@shared()
def refine_frame_into(c, cfg, g, starts_f, starts_s, starts_p, starts_w, starts_n, n_starts,
                      first_ls, uniform, out_f, out_s, out_p, out_w, fb, ib) -> int:  # fmt: skip
    """:func:`optim.hierarchical.refine_candidate` over the rows of ``starts_*`` (pipeline
    starts, then dual starts); the best state goes to ``out_*``; returns its size. Scratch:
    ``fb`` float64 [:func:`refine_frame_float_size`], ``ib`` int64
    [:func:`refine_frame_int_size`] (contiguous)."""
    n_feat = c.w.size
    W = n_feat + 1
    o = 0
    per = fb[o : o + W]
    o += W
    cw = fb[o : o + W]
    o += W
    p0 = fb[o : o + W]
    o += W
    fs = fb[o : o + 8 * W]
    o += 8 * W
    inner_f = fb[o:]
    o = 0
    cf = ib[o : o + W]
    o += W
    cs = ib[o : o + W]
    o += W
    cp = ib[o : o + W]
    o += W
    is_ = ib[o : o + 3 * W]
    o += 3 * W
    inner_i = ib[o:]
    for j in range(8 * W):
        fs[j] = 0.0
    best_n = -1
    best_v = math.inf
    moves = cfg.st_mod or cfg.st_match or cfg.st_sel
    for q in range(n_starts):
        n = starts_n[q]
        for j in range(n):
            cf[j] = starts_f[q, j]
            cs[j] = starts_s[q, j]
            cp[j] = starts_p[q, j]
            cw[j] = starts_w[q, j]
        if n and not cfg.equal and cfg.st_power:
            for j in range(n):
                p0[j] = 0.0
            exact_power_row(c, g, cf, cs, cp, n, p0, fs, is_)
            v0 = _value(c, g, cf, cs, cp, p0, n, per)
            if best_n < 0 or v0 < best_v:
                best_v = v0
                best_n = n
                for j in range(n):
                    out_f[j] = cf[j]
                    out_s[j] = cs[j]
                    out_p[j] = cp[j]
                    out_w[j] = p0[j]
        if moves and n <= cfg.local_max and q >= first_ls:
            n, _ = local_search_into(c, g, cf, cs, cp, n, cfg.exact_first, cfg.equal,
                                     cfg.st_mod, cfg.st_match, cfg.st_sel, cf, cs, cp, cw,
                                     inner_f, inner_i)  # fmt: skip
        if n:
            n = refine_allocation_into(c, cfg, g, cf, cs, cp, cw, n, uniform, inner_f, inner_i)
        v = _value(c, g, cf, cs, cp, cw, n, per)
        if best_n < 0 or v < best_v:
            best_v = v
            best_n = n
            for j in range(n):
                out_f[j] = cf[j]
                out_s[j] = cs[j]
                out_p[j] = cp[j]
                out_w[j] = cw[j]
    return best_n


@shared()
def hierarchical_float_size(n_feat, k, n_mod, n_max, n_off, n_starts, n_dual) -> int:  # noqa: ANN001
    """Float64 scratch of :func:`hierarchical_frame_into` (``n_starts``: ``refine_starts``,
    ``n_dual``: ``dual_starts``)."""
    w = max(n_feat, 1)
    wm = max(n_max, 1)
    total = n_starts + n_dual
    pipe = (pipeline_float_size(n_max, k) + 3 * wm * n_mod + wm * max(k, 1)
            + (n_max + 1) * (1 + wm))  # fmt: skip
    dual = n_dual * w + 6 * w + dual_float_size(n_feat, k, n_mod, n_off, 30)
    return pipe + dual + total * w + refine_frame_float_size(n_feat, k, n_mod)


@shared()
def hierarchical_int_size(n_feat, k, n_mod, n_max, n_off, n_starts, n_dual) -> int:  # noqa: ANN001
    """Int64 scratch of :func:`hierarchical_frame_into`."""
    w = max(n_feat, 1)
    wm = max(n_max, 1)
    total = n_starts + n_dual
    pipe = pipeline_int_size(n_max, k) + (n_max + 1) * (1 + wm)
    dual = 3 * n_dual * w + n_dual + 2 * w + dual_int_size(n_feat, k, n_mod, n_off, 30)
    return (pipe + (n_max + 1) + dual + 3 * total * w + total
            + refine_frame_int_size(n_feat, k, n_mod))  # fmt: skip


@shared()
def hierarchical_frame_into(c, cfg, g, perm, order, ws_r, wf_r, tail, n_max, pats, row_w,
                            n_start, n_count, matching, iters, uniform, f_out, s_out, p_out,
                            w_out, fb, ib) -> int:  # fmt: skip
    """One frame of the refined hierarchical family: the pipeline's candidates, the starts
    near the best length and the dual starts, refined (:func:`refine_frame_into`); the winner
    goes to ``f_out``, ``s_out``, ``p_out``, ``w_out`` [>= N + 1] (feature, subchannel,
    modulation, power); returns its size. Scratch: ``fb`` float64
    [:func:`hierarchical_float_size`], ``ib`` int64 [:func:`hierarchical_int_size`]."""
    nf = order.size
    k = g.size
    n_mod = c.A.size
    W = max(nf, 1)
    wm = max(n_max, 1)
    kk = max(k, 1)
    power_mode = 1 if cfg.equal else 0
    n_dual_max = cfg.dual_starts
    total_max = cfg.refine_starts + n_dual_max
    # float scratch
    o = 0
    pfw = fb[o : o + pipeline_float_size(n_max, k)]
    o += pipeline_float_size(n_max, k)
    lt = fb[o : o + wm * n_mod].reshape((wm, n_mod))
    o += wm * n_mod
    ct = fb[o : o + wm * n_mod].reshape((wm, n_mod))
    o += wm * n_mod
    terms = fb[o : o + wm * n_mod].reshape((wm, n_mod))
    o += wm * n_mod
    cost = fb[o : o + wm * kk].reshape((wm, kk))
    o += wm * kk
    best_v = fb[o : o + n_max + 1]
    o += n_max + 1
    best_p = fb[o : o + (n_max + 1) * wm].reshape((n_max + 1, wm))
    o += (n_max + 1) * wm
    d_w = fb[o : o + n_dual_max * W].reshape((n_dual_max, W))
    o += n_dual_max * W
    lm_f = fb[o : o + 6 * W]
    o += 6 * W
    dual_f = fb[o : o + dual_float_size(nf, k, n_mod, c.offsets.size, 30)]
    o += dual_float_size(nf, k, n_mod, c.offsets.size, 30)
    sw = fb[o : o + total_max * W].reshape((total_max, W))
    o += total_max * W
    rf_f = fb[o:]
    # int scratch
    o = 0
    piw = ib[o : o + pipeline_int_size(n_max, k)]
    o += pipeline_int_size(n_max, k)
    best_row = ib[o : o + n_max + 1]
    o += n_max + 1
    best_s = ib[o : o + (n_max + 1) * wm].reshape((n_max + 1, wm))
    o += (n_max + 1) * wm
    near = ib[o : o + n_max + 1]
    o += n_max + 1
    d_f = ib[o : o + n_dual_max * W].reshape((n_dual_max, W))
    o += n_dual_max * W
    d_s = ib[o : o + n_dual_max * W].reshape((n_dual_max, W))
    o += n_dual_max * W
    d_p = ib[o : o + n_dual_max * W].reshape((n_dual_max, W))
    o += n_dual_max * W
    d_n = ib[o : o + n_dual_max]
    o += n_dual_max
    lm_i = ib[o : o + 2 * W]
    o += 2 * W
    dual_i = ib[o : o + dual_int_size(nf, k, n_mod, c.offsets.size, 30)]
    o += dual_int_size(nf, k, n_mod, c.offsets.size, 30)
    sf = ib[o : o + total_max * W].reshape((total_max, W))
    o += total_max * W
    ss = ib[o : o + total_max * W].reshape((total_max, W))
    o += total_max * W
    sp = ib[o : o + total_max * W].reshape((total_max, W))
    o += total_max * W
    sn = ib[o : o + total_max]
    o += total_max
    rf_i = ib[o:]
    n_best = pipeline_candidates_into(
        g, perm, c.noise, c.P, order, ws_r, wf_r, tail, c.A, c.B, c.qw, c.qs, c.ba, c.bb,
        c.exact, c.mod, n_max, pats, row_w, n_start, n_count, matching, power_mode, iters, pfw,
        piw, lt, ct, cost, terms, best_v, best_row, best_p, best_s)  # fmt: skip
    for j in range(W):
        f_out[j] = 0
        s_out[j] = 0
        p_out[j] = 0
        w_out[j] = 0.0
    n_out = n_best
    for j in range(n_best):
        f_out[j] = order[j]
        s_out[j] = best_s[n_best, j]
        p_out[j] = pats[best_row[n_best], j]
        w_out[j] = best_p[n_best, j]
    if not cfg.refine:
        return n_out
    cv = best_v[n_best]
    limit = cv * (1 + cfg.margin) if math.isfinite(cv) else math.inf
    n_near = 0
    for n in range(n_max + 1):
        if math.isfinite(best_v[n]) and best_v[n] <= limit:
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
    if cfg.dual_starts and cfg.dual_applies and n_best:
        lev = log_multiplier_into(c.mod, c.ws, g, c.noise, f_out, s_out, p_out, n_best, c.P,
                                  lm_f, lm_i, c.memo)  # fmt: skip
        n_dual = dual_starts_into(c.mod, c.ws, c.e, c.dot_drop, g, c.noise, c.P, c.S, c.smax,
                                  lev, c.offsets, 30, cfg.dual_starts, d_f, d_s, d_p, d_w, d_n,
                                  dual_f, dual_i, c.memo)  # fmt: skip
    any_sent = n_dual > 0
    for q in range(n_pipe):
        if near[q] > 0:
            any_sent = True
    if not any_sent:
        return n_out
    total = n_pipe + n_dual
    for q in range(total):
        sn[q] = 0
        for j in range(W):
            sf[q, j] = 0
            ss[q, j] = 0
            sp[q, j] = 0
            sw[q, j] = 0.0
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
        for j in range(W):
            sf[n_pipe + q, j] = d_f[q, j]
            ss[n_pipe + q, j] = d_s[q, j]
            sp[n_pipe + q, j] = d_p[q, j]
            sw[n_pipe + q, j] = d_w[q, j]
    first_ls = n_pipe if (n_dual > 0 and n_pipe == 1) else 0
    return refine_frame_into(c, cfg, g, sf, ss, sp, sw, sn, total, first_ls, uniform, f_out,
                             s_out, p_out, w_out, rf_f, rf_i)  # fmt: skip


def hierarchical_batch(gains, perms, c, cfg, *rest):  # noqa: ANN001, ANN201
    """The hierarchical family with its refinement for every frame of ``gains`` [F, K]
    (``c``: :data:`Shared`, ``cfg``: :data:`Config`; ``rest``: the pipeline's arrays and the
    problem's own weights and terms); returns ``selected, subchannel, modulation,
    power [F, N]`` and ``objective [F]``.

    Numba's parallel loop takes arrays and scalars only, so the tuples travel field by field
    and are rebuilt inside each frame.
    """
    return _hierarchical_batch(gains, perms, *c[:21], *c.mod, *c[22:24], *cfg, *rest)


@numba.njit(cache=True, parallel=True)
def _hierarchical_batch(gains, perms, w, slope, floor, drop, ws, wf, wd, e, wd_sum, dot_drop,
                        S, smax, P, noise, A, B, qw, qs, ba, bb, exact, m_kind, m_a, m_b, m_qw,
                        m_qb, m_nt, m_f0, m_lnmu0, m_h, m_lng, m_h_tab, m_lng0, m_dlng, m_tg,
                        m_tf, m_td, drop_rank, offsets,
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
    n_fs = hierarchical_float_size(nf, k, A.size, n_max, offsets.size, refine_starts,
                                   n_dual_starts)  # fmt: skip
    n_is = hierarchical_int_size(nf, k, A.size, n_max, offsets.size, refine_starts,
                                 n_dual_starts)  # fmt: skip
    for b in numba.prange(frames):
        bm = BerModel(m_kind, m_a, m_b, m_qw, m_qb, m_nt, m_f0, m_lnmu0, m_h, m_lng, m_h_tab,
                  m_lng0, m_dlng, m_tg, m_tf, m_td)  # fmt: skip
        c = Shared(w, slope, floor, drop, ws, wf, wd, e, wd_sum, dot_drop, S, smax, P, noise, A,
                   B, qw, qs, ba, bb, exact, bm, drop_rank, offsets, new_memo(nf + 1))  # fmt: skip
        cfg = Config(refine, r_iters, st_power, st_mod, st_match, st_sel, refine_starts, margin,
                     local_max, n_dual_starts, dual_applies, equal, exact_first)  # fmt: skip
        g = gains[b]
        perm = perms[b] if perms.shape[0] > 1 else perms[0]
        W = max(nf, 1) + 1
        f_out = np.empty(W, np.int64)
        s_out = np.empty(W, np.int64)
        p_out = np.empty(W, np.int64)
        w_out = np.empty(W)
        fb = np.empty(n_fs)
        ib = np.empty(n_is, np.int64)
        n_out = hierarchical_frame_into(c, cfg, g, perm, order, ws_r, wf_r, tail, n_max, pats,
                                        row_w, n_start, n_count, matching, iters, uniform, f_out,
                                        s_out, p_out, w_out, fb, ib)  # fmt: skip
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
