"""Steepest-descent local search of one frame's allocation (:mod:`optim.local_search`,
compiled for the batched solver).

From an allocation (features, subchannels, modulations) every round builds the same
neighbourhood as the per-frame search, in the same order (modulation moves, pair trades,
subchannel swaps and slot exchanges, a move to the strongest free subchannel, replace /
drop / add a feature, add while raising one order, and last the Hungarian re-matching at the
current powers), scores every neighbour with its own water-filling power (or equal shares)
under the problem's BER model, takes the best strict improvement and then tries all disjoint
improving moves at once. Under the exact BER model a second phase compares the four best
neighbours at their exact optimal power (:mod:`optim.optimal_power`). Arrays carry one
inactive slot at the end (modulation -1) that "add" moves fill.

Skipping what cannot matter. Every round first bounds each neighbour from below by the dual
bound of eq. 2 of :mod:`optim.slots` at the multiplier of the current allocation
(:func:`current_bound`, :func:`row_bounds`: the current terms with the changed entries'
replaced, O(1) per move); no power within the budget, water-filled, equal or optimal, gives a
neighbour a lower (P0). So a neighbour is not scored when its bound exceeds the value it would
have to beat (before the exact phase: the improvement threshold; in it: the fourth best score,
since only the four best are priced exactly), with a margin of ``1e-9`` of the terms'
magnitude for rounding. Under the exact BER model (on the CPU) a neighbour that passes is
water-filled and bounded once more at that power, by the BER's tangents
(:func:`row_exceeds`, :func:`optim.ber_model.ber_lower`), against the same value, before its
BER terms are computed. Every choice of the round (the best move, the improving moves and
their order, the four priced exactly) is the one scoring every neighbour makes, so results
equal the per-frame search's; at ``N = K = 16`` about a quarter of the neighbours pass the
dual bound.

The frame-independent inputs come in one :class:`Shared` tuple (:mod:`optim.batch.refine`).
"""

from __future__ import annotations

import math
from collections import namedtuple

import numba
import numpy as np

from optim.batch.arith import pairwise_sum, water_fill
from optim.batch.hungarian import assign_rows_into
from optim.batch.power_memo import priced_row
from optim.ber_model import (
    bound_applies,
    h_bound_eh,
    log_marginal,
    lower_sum_exceeds,
    tangents_pay,
)
from optim.kernels import ber
from optim.twin import shared

LogTables = namedtuple("LogTables", ["sa", "cb", "ws", "nu", "eh"])
"""Logarithms that a local search reads many times, computed once per search
(:func:`log_tables_into`): ``sa`` [N, M] ``ln(w_f slope_f A_m)`` and ``cb`` [K, M]
``ln(B_m g_s / noise)``, the two halves of a row's water-filling levels (``-inf`` where
:func:`optim.batch.arith.log_terms` gives ``-inf``); ``ws`` [N] ``ln(w_f slope_f)`` and
``nu`` [K] ``ln(g_s / noise)``, those of the dual bound's terms (:func:`slot_term`; read only
where positive); ``eh = expm1(h)`` of the exact model's grid (:func:`optim.ber_model.h_cell`).
Each entry is the very expression the per-entry code evaluated, so values are the same bit
for bit."""

MAX_ITER = 50
MAX_PAIRS = 24
SWAP_CANDIDATES = 8
RTOL = 1e-6
EXACT_TOP = 4
RAISE_MAX = 10


@shared()
def log_tables_into(c, g, sa, cb, ws, nu) -> float:  # noqa: ANN001
    """Fill the arrays of the :data:`LogTables` of frame gains ``g`` [K]: ``sa`` [N, M], ``cb``
    [K, M], ``ws`` [N] and ``nu`` [K]; returns its ``eh``."""
    n_mod = c.A.size
    for f in range(c.w.size):
        a = c.ws[f]
        ws[f] = math.log(a) if a > 0.0 else -math.inf
        for m in range(n_mod):
            x = c.w[f] * c.slope[f] * c.A[m]
            sa[f, m] = math.log(x) if x > 0 and math.isfinite(x) else -math.inf
    for j in range(g.size):
        rate = g[j] / c.noise
        nu[j] = math.log(rate) if rate > 0.0 else -math.inf
        for m in range(n_mod):
            y = c.B[m] * rate
            cb[j, m] = math.log(y) if y > 0 and math.isfinite(y) else -math.inf
    return math.expm1(c.mod.h)


@numba.njit(cache=True)
def log_tables(c, g):  # noqa: ANN001, ANN201
    """The :data:`LogTables` of frame gains ``g`` [K] in new arrays (:func:`log_tables_into`)."""
    n_feat, n_mod = c.w.size, c.A.size
    sa = np.empty((n_feat, n_mod))
    cb = np.empty((g.size, n_mod))
    ws = np.empty(n_feat)
    nu = np.empty(g.size)
    return LogTables(sa, cb, ws, nu, log_tables_into(c, g, sa, cb, ws, nu))


@shared(inline="always")
def score_row(c, g, lg, f, s, pat, width, equal, t, cc, order, p, rate, per, limit) -> float:
    """(P0) of one row with its water-filling (or equal) power, left in ``p[:width]``
    (:func:`optim.local_search.score_batch`); ``inf`` when ``limit`` is finite and the row's
    lower bound at that power (:func:`row_exceeds`) shows that its value exceeds ``limit``.
    ``lg``: the search's :data:`LogTables`."""
    cnt = 0
    for j in range(width):
        rate[j] = g[s[j]] / c.noise
        m = pat[j]
        if m >= 0:
            cnt += 1
            fj = f[j]
            cc[j] = c.B[m] * rate[j]
            t[j] = lg.sa[fj, m] + lg.cb[s[j], m]
        else:
            t[j] = -math.inf
            cc[j] = 1.0
    if equal:
        share = c.P / max(cnt, 1)
        for j in range(width):
            p[j] = share if pat[j] >= 0 else 0.0
    else:
        water_fill(t, cc, width, c.P, order, p, width)
    if limit < math.inf and row_exceeds(c, f, pat, width, p, rate, t, cc, limit):
        return math.inf
    for j in range(width):
        m = pat[j]
        if m >= 0:
            fj = f[j]
            pb = ber(m, rate[j] * p[j], c.qw, c.qs, c.ba, c.bb, c.exact)
            per[j] = c.w[fj] * c.floor[fj] + c.w[fj] * c.slope[fj] * pb - c.wd[fj]
        else:
            per[j] = 0.0
    return c.wd_sum + pairwise_sum(per, width)


@shared()
def row_exceeds(c, f, pat, width, p, rate, a, b, limit) -> bool:
    """Whether a row's (P0) at powers ``p[:width]`` provably exceeds ``limit``
    (:func:`optim.ber_model.lower_sum_exceeds` with its terms ``w (floor - drop) +
    w slope Pb`` gathered into ``a``, ``b`` [width]; exact model on the CPU only,
    :func:`optim.ber_model.tangents_pay`; ``False`` otherwise)."""
    if c.mod.kind != 1 or not tangents_pay():
        return False
    for j in range(width):
        if pat[j] >= 0:
            a[j] = c.wf[f[j]] - c.wd[f[j]]
            b[j] = c.ws[f[j]]
    return lower_sum_exceeds(c.mod, pat, width, rate, p, c.wd_sum, a, b, limit)


@shared()
def value_row(c, g, f, s, pat, pw, width, per) -> float:
    """(P0) of one row at given powers (:func:`optim.local_search.values_of`)."""
    for j in range(width):
        m = pat[j]
        if m >= 0:
            fj = f[j]
            pb = ber(m, g[s[j]] * pw[j] / c.noise, c.qw, c.qs, c.ba, c.bb, c.exact)
            per[j] = c.w[fj] * (c.floor[fj] + c.slope[fj] * pb) - c.wd[fj]
        else:
            per[j] = 0.0
    return c.wd_sum + pairwise_sum(per, width)


@shared()
def exact_power_row(c, g, f, s, pat, width, p_out, fs, is_) -> float:
    """Optimal power of one row under the problem's BER model into ``p_out[:width]``
    (scratch: ``fs`` float64 [8 W], ``is_`` int64 [3 W], ``W >= max(width, 1)``, as
    :func:`scratch` allocates)."""
    w = max(width, 1)
    a = fs[:w]
    v = fs[w : 2 * w]
    p = fs[2 * w : 3 * w]
    gm = fs[3 * w : 4 * w]
    alpha = fs[4 * w : 5 * w]
    nu = fs[5 * w : 6 * w]
    t = fs[6 * w : 7 * w]
    cc = fs[7 * w : 8 * w]
    mm = is_[:w]
    idx = is_[w : 2 * w]
    ci = is_[2 * w : 3 * w]
    for j in range(width):
        alpha[j] = c.ws[f[j]]
        nu[j] = g[s[j]] / c.noise
    return priced_row(c.memo, c.mod, alpha, nu, pat, width, c.P, p_out, a, v, mm, idx, p, gm, t,
                      cc, ci)  # fmt: skip


@numba.njit(cache=True)
def scratch(width):  # noqa: ANN201
    """Scratch of :func:`exact_power_row` for rows of at most ``width`` entries: ``(fs, is_)``
    (the float part zeroed, as the per-frame code's power and SNR scratch start)."""
    w = max(width, 1)
    return np.zeros(8 * w), np.empty(3 * w, np.int64)


@shared()
def slot_term(c, g, lg, fj, sj, m, lnlam) -> float:
    """``e_f + alpha_f H_m(lambda / (alpha_f nu_s))`` of feature ``fj`` on subchannel ``sj``
    with modulation ``m`` (``m < 0``: not sent, 0), the term of eq. 2 of :mod:`optim.slots`
    (:func:`optim.ber_model.dual_term`, with the logarithms of ``alpha`` and ``nu`` read from
    ``lg``)."""
    if m < 0:
        return 0.0
    alpha = c.ws[fj]
    nu = g[sj] / c.noise
    if alpha > 0.0 and nu > 0.0:
        return c.e[fj] + alpha * h_bound_eh(c.mod, m, lnlam - lg.ws[fj] - lg.nu[sj], lg.eh)
    return c.e[fj] + alpha * c.mod.f0[m]


@shared()
def current_bound(c, g, lg, f, s, pat, pw, width, terms) -> tuple[float, float]:
    """The multiplier ``ln lambda`` for the dual bounds of a round's neighbours: of the
    ``lambda_j = alpha_j nu_j |f'(gamma_j)|`` of the current allocation's used entries (all
    equal at its optimal power), the one whose bound on the allocation itself is largest.
    Writes its terms (:func:`slot_term`) into ``terms[:width]``; returns ``(ln lambda, sum of
    the terms)``, ``ln lambda = -inf`` when no entry has power and gain (no bound)."""
    best_ln = -math.inf
    best = -math.inf
    for j in range(width):
        m = pat[j]
        a = c.ws[f[j]] if m >= 0 else 0.0
        nu = g[s[j]] / c.noise
        gam = nu * pw[j]
        if m < 0 or not (a > 0.0 and gam > 0.0):
            continue
        lnlam = log_marginal(c.mod, m, a, nu, gam)
        if not math.isfinite(lnlam):
            continue
        acc = 0.0
        for i in range(width):
            acc += slot_term(c, g, lg, f[i], s[i], pat[i], lnlam)
        bound = acc - math.exp(lnlam) * c.P
        if bound > best:
            best = bound
            best_ln = lnlam
    total = 0.0
    for i in range(width):
        terms[i] = 0.0
        if best_ln > -math.inf:
            terms[i] = slot_term(c, g, lg, f[i], s[i], pat[i], best_ln)
        total += terms[i]
    return best_ln, total


@shared()
def row_bounds(c, g, lg, f, s, pat, width, lnlam, terms, total, rows_f, rows_s, rows_p, count,
               lb, slack) -> None:  # fmt: skip
    """Dual bound (eq. 2 of :mod:`optim.slots`) at ``ln lambda`` of each neighbour into
    ``lb[:count]``: the current allocation's ``terms`` with those of the entries the move
    changes replaced; ``slack``: ``1e-9`` of the magnitude of the terms, a margin for
    rounding. Each neighbour's score, at any power within ``P_tot``, is at least its bound."""
    lam_p = math.exp(lnlam) * c.P
    mag0 = abs(c.wd_sum) + lam_p
    for j in range(width):
        mag0 += abs(terms[j])
    for q in range(count):
        acc = total
        mag = mag0
        for j in range(width):
            if rows_f[q, j] != f[j] or rows_s[q, j] != s[j] or rows_p[q, j] != pat[j]:
                t = slot_term(c, g, lg, rows_f[q, j], rows_s[q, j], rows_p[q, j], lnlam)
                acc += t - terms[j]
                mag += abs(t)
        bound = c.wd_sum + acc - lam_p
        lb[q] = bound if bound == bound else -math.inf
        slack[q] = 1e-9 * mag


@shared()
def _add(mv, cnt, a, fa, sa, ma, b, fb, sb, mb) -> int:
    mv[cnt, 0] = a
    mv[cnt, 1] = fa
    mv[cnt, 2] = sa
    mv[cnt, 3] = ma
    mv[cnt, 4] = b
    mv[cnt, 5] = fb
    mv[cnt, 6] = sb
    mv[cnt, 7] = mb
    return cnt + 1


@shared()
def moves_capacity(n_feat: int, n_mod: int) -> int:
    """Most moves :func:`_neighbours` lists for at most ``n_feat`` positions."""
    n = max(n_feat, 1)
    npairs = n * (n - 1) // 2
    cap = n * (n_mod - 1) + 5 * npairs + n * (2 + 2 * SWAP_CANDIDATES)
    return cap + SWAP_CANDIDATES * n_mod + 1 + n * SWAP_CANDIDATES


@shared()
def _neighbours(c, g, f, s, pat, n, p, st_mod, st_match, st_sel, mv, new_sub, fb, ib):  # noqa: ANN201
    """Moves into ``mv`` [>= :func:`moves_capacity`, 8] ``(a, fa, sa, ma, b, fb, sb, mb)``
    (``b = -1``: one position) and the Hungarian re-matching ``new_sub`` [>= n] that goes
    last; returns ``(count, has_full)``. Scratch: ``fb`` float64 [n K + n + 2 K], ``ib`` int64
    [K + N + SWAP_CANDIDATES + n + 4 K] (contiguous)."""
    n_feat = c.w.size
    k = g.size
    m_count = c.A.size
    S = c.S
    used_sym = 0.0
    for j in range(n):
        used_sym += S[f[j], pat[j]]
    slack = c.smax + 1e-9 - used_sym
    kk = max(k, 1)
    cost = fb[: n * k].reshape((n, k))
    hf = fb[n * k : n * k + n + 2 * kk]
    taken = ib[:kk]
    chosen = ib[kk : kk + n_feat]
    top = ib[kk + n_feat : kk + n_feat + SWAP_CANDIDATES]
    hi = ib[kk + n_feat + SWAP_CANDIDATES : kk + n_feat + SWAP_CANDIDATES + n + 4 * kk]
    cnt = 0
    pairs = 1 < n <= MAX_PAIRS
    if st_mod and m_count > 1:
        for j in range(n):
            for d in range(1, m_count):
                new = (pat[j] + d) % m_count
                if S[f[j], new] - S[f[j], pat[j]] <= slack:
                    cnt = _add(mv, cnt, j, f[j], s[j], new, -1, 0, 0, 0)
        if pairs:
            for kind in range(3):
                for a in range(n):
                    for b in range(a + 1, n):
                        if kind == 0:
                            ma, mb = pat[b], pat[a]
                            ok = ma != mb
                        else:
                            da = 1 if kind == 1 else -1
                            ma, mb = pat[a] + da, pat[b] - da
                            ok = 0 <= ma < m_count and 0 <= mb < m_count
                            ma = min(max(ma, 0), m_count - 1)
                            mb = min(max(mb, 0), m_count - 1)
                        fa, fb = f[a], f[b]
                        extra = S[fa, ma] - S[fa, pat[a]] + S[fb, mb] - S[fb, pat[b]]
                        if ok and extra <= slack:
                            cnt = _add(mv, cnt, a, fa, s[a], ma, b, fb, s[b], mb)
    has_full = False
    for j in range(max(n, 1)):
        new_sub[j] = 0
    if st_match:
        if n > 1:
            for j in range(n):
                wsj = c.ws[f[j]]
                for q in range(k):
                    esno = p[j] * g[q] / c.noise
                    cost[j, q] = wsj * ber(pat[j], esno, c.qw, c.qs, c.ba, c.bb, c.exact)
            assign_rows_into(cost, n, k, hf, hi, new_sub)
            for j in range(n):
                if new_sub[j] != s[j]:
                    has_full = True
        if pairs:
            for a in range(n):
                for b in range(a + 1, n):
                    cnt = _add(mv, cnt, a, f[a], s[b], pat[a], b, f[b], s[a], pat[b])
            if st_mod:
                for a in range(n):
                    for b in range(a + 1, n):
                        fa, fb, ma, mb = f[a], f[b], pat[a], pat[b]
                        if S[fb, ma] + S[fa, mb] - S[fa, ma] - S[fb, mb] <= slack:
                            cnt = _add(mv, cnt, a, fb, s[a], ma, b, fa, s[b], mb)
    for q in range(k):
        taken[q] = 0
    for j in range(n):
        taken[s[j]] = 1
    best_free = -1
    for q in range(k):
        if taken[q] == 0 and (best_free < 0 or g[q] > g[best_free]):
            best_free = q
    if st_match and best_free >= 0:
        for j in range(n):
            cnt = _add(mv, cnt, j, f[j], best_free, pat[j], -1, 0, 0, 0)
    n_top = 0
    if st_sel:
        for i in range(n_feat):
            chosen[i] = 0
        for j in range(n):
            chosen[f[j]] = 1
        for r in range(n_feat):
            u = c.drop_rank[r]
            if chosen[u] == 0 and n_top < SWAP_CANDIDATES:
                top[n_top] = u
                n_top += 1
        if n_top and n:
            for j in range(n):
                for ti in range(n_top):
                    u = top[ti]
                    if S[u, pat[j]] - S[f[j], pat[j]] <= slack:
                        cnt = _add(mv, cnt, j, u, s[j], pat[j], -1, 0, 0, 0)
        for j in range(n):
            cnt = _add(mv, cnt, j, f[j], s[j], -1, -1, 0, 0, 0)
        if n_top and best_free >= 0:
            for ti in range(n_top):
                for mm in range(m_count):
                    if S[top[ti], mm] <= slack:
                        cnt = _add(mv, cnt, n, top[ti], best_free, mm, -1, 0, 0, 0)
        if st_mod and 0 < n <= RAISE_MAX and n_top and best_free >= 0:
            for j in range(n):
                if pat[j] < m_count - 1:
                    fu = f[j]
                    room = slack + S[fu, pat[j]] - S[fu, pat[j] + 1]
                    for ti in range(n_top):
                        u = top[ti]
                        low = 0
                        for mm in range(m_count):
                            if S[u, mm] <= room:
                                low = mm
                                break
                        s_low = S[u, low]
                        if s_low <= room and s_low > slack:
                            cnt = _add(mv, cnt, j, fu, s[j], pat[j] + 1, n, u, best_free, low)
    return cnt, has_full


@shared(inline="always")
def _apply(mv, k, f, s, pat, width, rf, rs, rp) -> None:
    for j in range(width):
        rf[j] = f[j]
        rs[j] = s[j]
        rp[j] = pat[j]
    a = mv[k, 0]
    rf[a] = mv[k, 1]
    rs[a] = mv[k, 2]
    rp[a] = mv[k, 3]
    b = mv[k, 4]
    if b >= 0:
        rf[b] = mv[k, 5]
        rs[b] = mv[k, 6]
        rp[b] = mv[k, 7]


@shared()
def _score_into(c, g, lg, rows_f, rows_s, rows_p, r, width, equal, vals, pws, t, cc, order, p,
                rate, per, limit) -> None:  # fmt: skip
    """Score row ``r`` into ``vals[r]`` and its powers into ``pws[r]`` (``limit``: as
    :func:`score_row`; a row found above it keeps its powers and gets ``inf``)."""
    vals[r] = score_row(c, g, lg, rows_f[r], rows_s[r], rows_p[r], width, equal, t, cc, order,
                        p, rate, per, limit)  # fmt: skip
    if vals[r] == math.inf:
        return
    for j in range(width):
        pws[r, j] = p[j]


@shared()
def _evaluate(c, g, lg, rows_f, rows_s, rows_p, count, width, equal, refine, vals, pws, t, cc,
              order, p, rate, per, fs, is_, top, out, prune, lb, slack, limit, unscored,
              best) -> None:  # fmt: skip
    """Values [count] and powers [count, width] of rows (the per-frame ``evaluate``); ``t``
    .. ``per``: the scoring scratch [W], ``fs``, ``is_``: :func:`exact_power_row`'s, ``top``
    int and ``out``, ``best`` float: [EXACT_TOP], ``unscored`` int [count].

    With ``prune``, ``lb`` and ``slack`` [count] are the rows' dual bounds and their margins
    (:func:`row_bounds`) and ``limit`` the value that a row must beat to improve; rows whose
    bound shows that they cannot matter are not scored (value ``inf``, powers left as they
    are): before the exact phase, a row whose bound exceeds ``limit``; in it, one whose bound
    exceeds the ``EXACT_TOP``-th best score met (it cannot be among the rows priced exactly),
    and a row among those whose bound exceeds ``limit`` is not priced exactly. A row that passes
    is water-filled and then bounded once more at that power (:func:`row_exceeds`) against the
    same value before its BER is computed. The choices that follow (best row, improving rows,
    their order) are those of scoring every row.
    """
    if not refine:
        for r in range(count):
            if prune and lb[r] > limit + slack[r]:
                vals[r] = math.inf
            else:
                _score_into(c, g, lg, rows_f, rows_s, rows_p, r, width, equal, vals, pws, t, cc,
                            order, p, rate, per, limit if prune else math.inf)  # fmt: skip
        return
    if prune:
        for r in range(count):
            unscored[r] = 1
            vals[r] = math.inf
        for q in range(EXACT_TOP):
            best[q] = math.inf
        # the rows of smallest bound first, then every row that can still rank
        for _ in range(min(EXACT_TOP, count)):
            nxt = -1
            for r in range(count):
                if unscored[r] == 1 and (nxt < 0 or lb[r] < lb[nxt]):
                    nxt = r
            _score_into(c, g, lg, rows_f, rows_s, rows_p, nxt, width, equal, vals, pws, t, cc,
                        order, p, rate, per, math.inf)  # fmt: skip
            unscored[nxt] = 0
            _keep_smallest(best, vals[nxt])
        for r in range(count):
            if unscored[r] == 0:
                continue
            kth = best[EXACT_TOP - 1]
            if lb[r] > kth + slack[r] + 1e-9 * abs(kth):
                continue
            _score_into(c, g, lg, rows_f, rows_s, rows_p, r, width, equal, vals, pws, t, cc, order,
                        p, rate, per, kth)  # fmt: skip
            unscored[r] = 0
            _keep_smallest(best, vals[r])
    else:
        for r in range(count):
            _score_into(c, g, lg, rows_f, rows_s, rows_p, r, width, equal, vals, pws, t, cc, order,
                        p, rate, per, math.inf)  # fmt: skip
    n_top = 0
    for _ in range(min(EXACT_TOP, count)):  # stable argsort, first EXACT_TOP
        pick = -1
        for r in range(count):
            skip = False
            for q in range(n_top):
                if top[q] == r:
                    skip = True
            if skip:
                continue
            if pick < 0 or vals[r] < vals[pick]:
                pick = r
        top[n_top] = pick
        n_top += 1
    for q in range(n_top):
        r = top[q]
        if prune and lb[r] > limit + slack[r]:
            out[q] = math.inf
            continue
        exact_power_row(c, g, rows_f[r], rows_s[r], rows_p[r], width, pws[r], fs, is_)
        out[q] = value_row(c, g, rows_f[r], rows_s[r], rows_p[r], pws[r], width, per)
    for r in range(count):
        keep = False
        for q in range(n_top):
            if top[q] == r:
                keep = True
        if not keep:
            vals[r] = math.inf
    for q in range(n_top):
        vals[top[q]] = out[q]


@shared()
def _keep_smallest(best, v) -> None:
    """Insert ``v`` into ``best``, the smallest values met in increasing order (NaN: left
    out)."""
    k = best.size
    if not v < best[k - 1]:
        return
    j = k - 1
    while j > 0 and best[j - 1] > v:
        best[j] = best[j - 1]
        j -= 1
    best[j] = v


@shared()
def local_float_size(n_feat: int, k: int, n_mod: int) -> int:
    """Float64 scratch of :func:`local_search_into`."""
    w = n_feat + 1
    total = moves_capacity(n_feat, n_mod) + 1
    kk = max(k, 1)
    return (10 * w + 8 * w + 2 * EXACT_TOP + 3 * total + total * w + n_feat * kk + n_feat
            + 2 * kk + (n_feat + kk) * (n_mod + 1))  # fmt: skip


@shared()
def local_int_size(n_feat: int, k: int, n_mod: int) -> int:
    """Int64 scratch of :func:`local_search_into`."""
    w = n_feat + 1
    total = moves_capacity(n_feat, n_mod) + 1
    kk = max(k, 1)
    return (14 * w + 3 * w + EXACT_TOP + 8 * total + w + 3 * total * w + 2 * total
            + kk + n_feat + SWAP_CANDIDATES + n_feat + 4 * kk)  # fmt: skip


@shared()
def local_search_into(c, g, f_in, s_in, p_in, n, exact_first, equal, st_mod, st_match, st_sel,
                      f_out, s_out, p_out, w_out, fb, ib):  # noqa: ANN201  # fmt: skip
    """:func:`local_search` into ``f_out``, ``s_out``, ``p_out``, ``w_out`` [>= N + 1];
    returns ``(n, value)``. Scratch: ``fb`` float64 [:func:`local_float_size`], ``ib`` int64
    [:func:`local_int_size`] (contiguous)."""
    n_feat = c.w.size
    k = g.size
    m_count = c.A.size
    W = n_feat + 1
    cap_total = moves_capacity(n_feat, m_count) + 1
    can_refine = c.exact and not equal
    refine = can_refine and exact_first
    use_bounds = bound_applies(c.mod)
    # float scratch
    o = 0
    t = fb[o : o + W]
    o += W
    cc = fb[o : o + W]
    o += W
    p = fb[o : o + W]
    o += W
    rate = fb[o : o + W]
    o += W
    per = fb[o : o + W]
    o += W
    pw = fb[o : o + W]
    o += W
    one_v = fb[o : o + 1]
    o += W
    one_p = fb[o : o + W].reshape((1, W))
    o += W
    rpw = fb[o : o + W]
    o += W
    fs = fb[o : o + 8 * W]
    o += 8 * W
    out4 = fb[o : o + EXACT_TOP]
    o += EXACT_TOP
    best4 = fb[o : o + EXACT_TOP]
    o += EXACT_TOP
    terms = fb[o : o + W]
    o += W
    lb_all = fb[o : o + cap_total]
    o += cap_total
    slack_all = fb[o : o + cap_total]
    o += cap_total
    vals_all = fb[o : o + cap_total]
    o += cap_total
    pws_all = fb[o : o + cap_total * W]
    o += cap_total * W
    kk = max(k, 1)
    lg_sa = fb[o : o + n_feat * m_count].reshape((n_feat, m_count))
    o += n_feat * m_count
    lg_cb = fb[o : o + kk * m_count].reshape((kk, m_count))
    o += kk * m_count
    lg_ws = fb[o : o + n_feat]
    o += n_feat
    lg_nu = fb[o : o + kk]
    o += kk
    nb_f = fb[o:]
    # int scratch
    o = 0
    order = ib[o : o + W]
    o += W
    f = ib[o : o + W]
    o += W
    s = ib[o : o + W]
    o += W
    pat = ib[o : o + W]
    o += W
    rf = ib[o : o + W]
    o += W
    rs = ib[o : o + W]
    o += W
    rp = ib[o : o + W]
    o += W
    cf = ib[o : o + W]
    o += W
    cs = ib[o : o + W]
    o += W
    cp = ib[o : o + W]
    o += W
    tf = ib[o : o + W]
    o += W
    ts = ib[o : o + W]
    o += W
    tp = ib[o : o + W]
    o += W
    used = ib[o : o + W]
    o += W
    is_ = ib[o : o + 3 * W]
    o += 3 * W
    top4 = ib[o : o + EXACT_TOP]
    o += EXACT_TOP
    mv = ib[o : o + 8 * cap_total].reshape((cap_total, 8))
    o += 8 * cap_total
    new_sub = ib[o : o + W]
    o += W
    rows_all = ib[o : o + 3 * cap_total * W]
    o += 3 * cap_total * W
    better = ib[o : o + cap_total]
    o += cap_total
    unscored = ib[o : o + cap_total]
    o += cap_total
    nb_i = ib[o:]
    for j in range(8 * W):
        fs[j] = 0.0
    for j in range(W):
        p[j] = 0.0
        f[j] = 0
        s[j] = 0
        pat[j] = -1
        pw[j] = 0.0
        one_p[0, j] = 0.0
    for j in range(n):
        f[j] = f_in[j]
        s[j] = s_in[j]
        pat[j] = p_in[j]
    lg = LogTables(lg_sa, lg_cb, lg_ws, lg_nu, log_tables_into(c, g, lg_sa, lg_cb, lg_ws, lg_nu))
    _evaluate(c, g, lg, f.reshape((1, W)), s.reshape((1, W)), pat.reshape((1, W)), 1, n, equal,
              refine, one_v, one_p, t, cc, order, p, rate, per, fs, is_, top4, out4, False, lb_all,
              slack_all, math.inf, unscored, best4)  # fmt: skip
    value = one_v[0]
    for j in range(n):
        pw[j] = one_p[0, j]
    if k == 0 or n_feat == 0:
        for j in range(n):
            f_out[j] = f[j]
            s_out[j] = s[j]
            p_out[j] = pat[j]
            w_out[j] = pw[j]
        return n, value
    for _ in range(MAX_ITER):
        width = n + 1
        cnt, has_full = _neighbours(c, g, f, s, pat, n, pw, st_mod, st_match, st_sel, mv, new_sub,
                                    nb_f, nb_i)  # fmt: skip
        total = cnt + (1 if has_full else 0)
        improved = False
        kbest = 0
        rows_f = rows_all[: total * width].reshape((total, width))
        rows_s = rows_all[total * width : 2 * total * width].reshape((total, width))
        rows_p = rows_all[2 * total * width : 3 * total * width].reshape((total, width))
        vals = vals_all[:total]
        pws = pws_all[: total * width].reshape((total, width))
        if total:
            for q in range(cnt):
                _apply(mv, q, f, s, pat, width, rows_f[q], rows_s[q], rows_p[q])
            if has_full:
                for j in range(width):
                    rows_f[cnt, j] = f[j]
                    rows_s[cnt, j] = new_sub[j] if j < n else s[j]
                    rows_p[cnt, j] = pat[j]
            for q in range(total):
                for j in range(width):
                    pws[q, j] = 0.0
            prune = use_bounds
            if prune:
                lnlam, total_terms = current_bound(c, g, lg, f, s, pat, pw, width, terms)
                prune = lnlam > -math.inf
                if prune:
                    row_bounds(c, g, lg, f, s, pat, width, lnlam, terms, total_terms, rows_f,
                               rows_s, rows_p, total, lb_all, slack_all)  # fmt: skip
            _evaluate(c, g, lg, rows_f, rows_s, rows_p, total, width, equal, refine, vals, pws, t,
                      cc, order, p, rate, per, fs, is_, top4, out4, prune, lb_all, slack_all,
                      value * (1 - RTOL), unscored, best4)  # fmt: skip
            for q in range(1, total):
                if vals[q] < vals[kbest]:
                    kbest = q
            improved = vals[kbest] < value * (1 - RTOL)
        if not improved:
            if can_refine and not refine:
                refine = True
                _evaluate(c, g, lg, f.reshape((1, W))[:, :width], s.reshape((1, W))[:, :width],
                          pat.reshape((1, W))[:, :width], 1, width, equal, refine, one_v,
                          one_p, t, cc, order, p, rate, per, fs, is_, top4, out4, False, lb_all,
                          slack_all, math.inf, unscored, best4)  # fmt: skip
                value = one_v[0]
                for j in range(width):
                    pw[j] = one_p[0, j]
                continue
            break
        for j in range(width):
            rf[j] = rows_f[kbest, j]
            rs[j] = rows_s[kbest, j]
            rp[j] = rows_p[kbest, j]
        v = vals[kbest]
        for j in range(width):
            rpw[j] = pws[kbest, j]
        limit = value * (1 - RTOL)
        n_better = 0
        for q in range(total):
            if vals[q] < limit:
                n_better += 1
        if n_better > 1:
            i = 0
            for q in range(total):
                if vals[q] < limit:
                    better[i] = q
                    i += 1
            for a1 in range(1, n_better):  # by value (insertion: stable)
                x = better[a1]
                b1 = a1 - 1
                while b1 >= 0 and vals[better[b1]] > vals[x]:
                    better[b1 + 1] = better[b1]
                    b1 -= 1
                better[b1 + 1] = x
            for j in range(width):
                cf[j] = f[j]
                cs[j] = s[j]
                cp[j] = pat[j]
                used[j] = 0
            taken = 0
            for q in range(n_better):
                kk = better[q]
                if kk >= cnt:  # the whole re-matching: not combinable
                    continue
                a = mv[kk, 0]
                b = mv[kk, 4]
                if used[a] != 0 or (b >= 0 and used[b] != 0):
                    continue
                for j in range(width):
                    tf[j] = cf[j]
                    ts[j] = cs[j]
                    tp[j] = cp[j]
                tf[a] = rows_f[kk, a]
                ts[a] = rows_s[kk, a]
                tp[a] = rows_p[kk, a]
                if b >= 0:
                    tf[b] = rows_f[kk, b]
                    ts[b] = rows_s[kk, b]
                    tp[b] = rows_p[kk, b]
                ok = True
                sym = 0.0
                for x in range(width):
                    if tp[x] < 0:
                        continue
                    sym += c.S[tf[x], tp[x]]
                    for y in range(x + 1, width):
                        if tp[y] >= 0 and (tf[y] == tf[x] or ts[y] == ts[x]):
                            ok = False
                if not ok or sym > c.smax + 1e-9:
                    continue
                for j in range(width):
                    cf[j] = tf[j]
                    cs[j] = ts[j]
                    cp[j] = tp[j]
                used[a] = 1
                if b >= 0:
                    used[b] = 1
                taken += 1
            if taken > 1:
                _evaluate(c, g, lg, cf[:width].reshape((1, width)), cs[:width].reshape((1, width)),
                          cp[:width].reshape((1, width)), 1, width, equal, refine, one_v, one_p,
                          t, cc, order, p, rate, per, fs, is_, top4, out4, False, lb_all,
                          slack_all, math.inf, unscored, best4)  # fmt: skip
                if one_v[0] < v:
                    for j in range(width):
                        rf[j] = cf[j]
                        rs[j] = cs[j]
                        rp[j] = cp[j]
                        rpw[j] = one_p[0, j]
                    v = one_v[0]
        m_new = 0
        for j in range(width):
            if rp[j] >= 0:
                f[m_new] = rf[j]
                s[m_new] = rs[j]
                pat[m_new] = rp[j]
                pw[m_new] = rpw[j]
                m_new += 1
        n = m_new
        f[n] = 0
        s[n] = 0
        pat[n] = -1
        pw[n] = 0.0
        value = v
    for j in range(n):
        f_out[j] = f[j]
        s_out[j] = s[j]
        p_out[j] = pat[j]
        w_out[j] = pw[j]
    return n, value


@numba.njit(cache=True)
def local_search(c, g, f_in, s_in, p_in, n, exact_first, equal, st_mod, st_match, st_sel):  # noqa: ANN201
    """Steepest descent from ``(f_in, s_in, p_in)[:n]`` (features, subchannels, modulation
    indices) with the decision weights of ``c``; returns ``(f, s, pat, power, n, value)``
    (:func:`optim.local_search.local_search` with its defaults)."""
    n_feat = c.w.size
    k = g.size
    m_count = c.A.size
    W = n_feat + 1
    f = np.zeros(W, np.int64)
    s = np.zeros(W, np.int64)
    pat = np.zeros(W, np.int64)
    pw = np.zeros(W)
    fb = np.empty(local_float_size(n_feat, k, m_count))
    ib = np.empty(local_int_size(n_feat, k, m_count), np.int64)
    m, value = local_search_into(c, g, f_in, s_in, p_in, n, exact_first, equal, st_mod,
                                 st_match, st_sel, f, s, pat, pw, fb, ib)  # fmt: skip
    return f[:m].copy(), s[:m].copy(), pat[:m].copy(), pw[:m].copy(), m, value
