"""Per-frame kernels of the batched solver and their Numba-parallel loops over frames.

One frame is one channel draw: gains ``g[K]`` with everything else (weights, budgets,
modulations, models) shared by the batch, so every frame-independent quantity (ranking,
prefix limit, pattern lists, decision weights) is computed once by :mod:`optim.batch.plan`
and the frames run in a ``numba.prange`` loop without Python.

- :func:`pipeline_batch`: the hierarchical pipeline without the refinement
  (:func:`optim.hierarchical.solve_hierarchical` with ``refine=False``): SP1 matching
  (greedy, seeded random, or greedy then Hungarian-improved), for every prefix ``n`` every
  admissible monotone pattern scored with SP4 power (closed-form water-filling of the bound,
  or equal shares) under the problem's BER model, the best ``(n, pattern)`` kept;
- :func:`fixed_batch`: the no-search baselines ``lowest-order`` and ``ui-ep`` (fixed prefix
  and modulation, greedy or random matching, water-filling or equal power).

Every arithmetic step is written in the order of the per-frame NumPy code so that the
discrete choices and the objective agree (see :mod:`optim.batch.arith`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from optim.batch.arith import log_terms, pairwise_sum, subchannel_rank, water_fill
from optim.batch.hungarian import assign_rows_into
from optim.ber_model import (
    BerModel,
    bound_applies,
    dual_terms_into,
    log_marginal,
    lower_sum_exceeds,
    tangents_pay,
)
from optim.kernels import ber
from optim.twin import shared

GREEDY, RANDOM, HUNGARIAN = 0, 1, 2
CLOSED_FORM, EQUAL = 0, 1


@shared()
def _rate_tables(g, chan, width, noise, ws, A, B, rate, lt, ct):
    """Per rank ``j < width`` on subchannel ``chan[j]``: ``rate[j] = g / sigma^2`` and, per
    modulation ``m``, ``ct[j, m] = B_m rate_j`` and ``lt[j, m] = ln(ws_j A_m) + ln(ct[j, m])``
    (the water-filling's ``ln(alpha c)``; computed once per frame, not once per pattern)."""
    for j in range(width):
        rate[j] = g[chan[j]] / noise
        for m in range(A.size):
            ct[j, m] = B[m] * rate[j]
            lt[j, m] = log_terms(ws[j] * A[m], ct[j, m])


@shared(inline="always")
def _row_power(pat, n, width, lt, ct, P, power_mode, t, c, p, order) -> None:
    """SP4 power of one pattern row (``pat[:width]``, -1 beyond ``n``) into ``p[:width]``:
    closed-form water-filling with the rank tables of :func:`_rate_tables`, or equal shares."""
    if power_mode == EQUAL:
        for j in range(width):
            p[j] = P / max(n, 1) if j < n else 0.0
    else:
        for j in range(n):
            m = pat[j]
            c[j] = ct[j, m]
            t[j] = lt[j, m]
        water_fill(t, c, width, P, order, p, n)


@shared(inline="always")
def _row_value(pat, width, rate, ws, wf, tail_n, qw, qs, ba, bb, exact, p, per) -> float:
    """(P0) of one pattern row at its powers ``p[:width]``."""
    for j in range(width):
        m = pat[j]
        if m >= 0:
            per[j] = wf[j] + ws[j] * ber(m, rate[j] * p[j], qw, qs, ba, bb, exact)
        else:
            per[j] = 0.0
    return tail_n + pairwise_sum(per, width)


@shared()
def _score_row(pat, n, width, rate, lt, ct, P, ws, wf, tail_n, qw, qs, ba, bb, exact,
               power_mode, t, c, p, order, per):  # fmt: skip
    """Value of one pattern row (``pat[:width]``, -1 beyond ``n``) with the rank tables of
    :func:`_rate_tables`; its powers are left in ``p[:width]``."""
    _row_power(pat, n, width, lt, ct, P, power_mode, t, c, p, order)
    return _row_value(pat, width, rate, ws, wf, tail_n, qw, qs, ba, bb, exact, p, per)


def _forward() -> bool:
    """GPU twin of :func:`_backward`: the list's own order (with it the GPU ran equal-power 8%
    slower on an H100, the other methods within noise: its threads skip rows together, and
    gain nothing from meeting the best pattern early)."""
    return False


@shared(cuda=_forward, inline="always")
def _backward() -> bool:
    """Whether the pipeline visits a prefix's patterns from the last to the first: on the CPU,
    where the tangent bounds then skip more of them."""
    return True


@shared()
def frame_objective(
    sel, sub, mod, pw, g, noise, w, floor, slope, drop, qw, qs, ba, bb, exact, cost
):
    """(P0) of one frame's allocation in feature order, as :func:`optim.distortion.objective`."""
    for i in range(w.size):
        if sel[i]:
            esno = g[sub[i]] * pw[i] / noise
            cost[i] = w[i] * (floor[i] + slope[i] * ber(mod[i], esno, qw, qs, ba, bb, exact))
        else:
            cost[i] = w[i] * drop[i]
    return pairwise_sum(cost, w.size)


@shared()
def _pattern_multiplier(mod, pat, n, rate, ws, p) -> float:
    """``ln lambda`` of a pattern at its powers ``p[:n]``: the mean of
    ``ln(ws_j nu_j |f'_m(nu_j p_j)|)`` over the ranks with power and gain (all equal at the
    optimal power); nan where there is none."""
    total = 0.0
    count = 0
    for j in range(n):
        m = pat[j]
        gam = rate[j] * p[j]
        if m < 0 or not (ws[j] > 0.0 and gam > 0.0):
            continue
        ln = log_marginal(mod, m, ws[j], rate[j], gam)
        if math.isfinite(ln):
            total += ln
            count += 1
    return total / count if count else math.nan


@shared()
def _prefix_terms(mod, n, rate, ws, wf, tail_n, P, lnlam, terms) -> tuple[float, float]:
    """The bound terms of prefix ``n`` at ``ln lambda``: ``terms[j, m] = wf_j + ws_j
    H_m(lambda / (ws_j nu_j))`` for ``j < n`` and every ``m``; returns ``(lambda P, margin)``,
    the margin ``1e-9`` of the largest magnitude of a bound (``(nan, 0)``: no bound)."""
    lam_p = math.exp(lnlam) * P
    if not math.isfinite(lam_p):
        return math.nan, 0.0
    mag = abs(tail_n) + lam_p
    for j in range(n):
        dual_terms_into(mod, ws[j], rate[j], lnlam, wf[j], terms[j])
        big = 0.0
        for m in range(terms.shape[1]):
            big = max(big, abs(terms[j, m]))
        mag += big
    return lam_p, 1e-9 * mag


@numba.njit(cache=True)
def pipeline_candidates(g, perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                        mod, n_max, pats, row_w, n_start, n_count, matching, power_mode,
                        iters):  # noqa: ANN201  # fmt: skip
    """The best candidate of every prefix length of one frame: ``(best_v [n_max + 1],
    best_row`` (its pattern's row of ``pats``), ``best_p``, ``best_s [n_max + 1, W]``
    (powers and subchannels per rank), ``n_best)`` after the optional Hungarian step
    (:func:`pipeline_candidates_into` with freshly allocated work arrays)."""
    k = g.size
    wmax = max(n_max, 1)
    kk = max(k, 1)
    fw = np.empty(pipeline_float_size(n_max, k))
    iw = np.empty(pipeline_int_size(n_max, k), np.int64)
    lt = np.empty((wmax, A.size))
    ct = np.empty((wmax, A.size))
    terms = np.empty((wmax, A.size))
    cost = np.empty((wmax, kk))
    best_v = np.empty(n_max + 1)
    best_row = np.empty(n_max + 1, np.int64)
    best_p = np.empty((n_max + 1, wmax))
    best_s = np.empty((n_max + 1, wmax), np.int64)
    n_best = pipeline_candidates_into(
        g, perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact, mod, n_max, pats,
        row_w, n_start, n_count, matching, power_mode, iters, fw, iw, lt, ct, cost, terms, best_v,
        best_row, best_p, best_s)  # fmt: skip
    return best_v, best_row, best_p, best_s, n_best


@numba.njit(cache=True)
def pipeline_float_size(n_max: int, k: int) -> int:
    """Float64 scratch of :func:`pipeline_candidates_into`: ``t, c, p, per, rate`` [W] and the
    Hungarian's ``W + 2 K`` (``W = max(n_max, 1)``)."""
    wmax = max(n_max, 1)
    return 6 * wmax + 2 * max(k, 1)


@numba.njit(cache=True)
def pipeline_int_size(n_max: int, k: int) -> int:
    """Int64 scratch of :func:`pipeline_candidates_into`: ``chan`` [K], ``order, pat, new``
    [W] and the Hungarian's ``W + 4 K``."""
    wmax = max(n_max, 1)
    kk = max(k, 1)
    return kk + 4 * wmax + 4 * kk


@shared()
def pipeline_candidates_into(g, perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb,
                             exact, mod, n_max, pats, row_w, n_start, n_count, matching,
                             power_mode, iters, fw, iw, lt, ct, cost, terms, best_v, best_row,
                             best_p, best_s):  # noqa: ANN001  # fmt: skip
    """:func:`pipeline_candidates` into given arrays, allocation-free; returns ``n_best``.

    Scratch: ``fw`` float64 [:func:`pipeline_float_size`], ``iw`` int64
    [:func:`pipeline_int_size`], ``lt``, ``ct``, ``terms`` [W, M], ``cost`` [W, max(K, 1)];
    results ``best_v``, ``best_row`` [n_max + 1], ``best_p``, ``best_s`` [n_max + 1, W].
    ``mod``: the problem's :data:`optim.ber_model.BerModel`, for the bounds that skip
    patterns.

    Skipping patterns. Once a prefix has a best pattern, every later pattern is first bounded
    from below by the dual bound of eq. 2 of :mod:`optim.slots`: ``O(n)`` additions from a
    table of terms per rank and modulation (:func:`_prefix_terms`), filled once per prefix at
    a multiplier extrapolated from the best patterns of the two prefixes before
    (:func:`_pattern_multiplier`: the geometric mean of ``w_j slope_j nu_j |f'(gamma_j)|`` at
    a pattern's powers; any multiplier gives a valid bound, a close one a tight one). No power
    within the budget gives a pattern a lower (P0) than its bound, so a pattern whose bound
    exceeds the best value met (with a margin of ``1e-9`` of the terms' magnitude for
    rounding) cannot replace it, and is not scored. Under the exact BER model (on the CPU) a
    pattern that passes gets its SP4 power and a second, tighter bound at that power before
    its BER terms are computed (:func:`optim.ber_model.lower_sum_exceeds`: the BER's
    tangents, one ``log`` per entry instead of one ``erfc`` per Q-term). The patterns
    of a prefix are visited from the last to the first (on the CPU, :func:`_backward`), which
    meets good patterns early (the list ends with the lowest, most robust orders on the first
    ranks), and a pattern then replaces the best at an equal value, so ties still go to the
    first pattern in the list. So the best pattern per prefix, and the choices that follow, are
    those of scoring every pattern in order. At ``N = K = 16``, 10 dB, about 8% of the
    patterns are scored, against 59% with the dual bound alone in list order (counted on 300
    Rayleigh frames of ``random_problem(16, 16, seed=0)``; BENCHMARKS.md).
    """
    k = g.size
    wmax = max(n_max, 1)
    kk = max(k, 1)
    t = fw[:wmax]
    c = fw[wmax : 2 * wmax]
    p = fw[2 * wmax : 3 * wmax]
    per = fw[3 * wmax : 4 * wmax]
    rate = fw[4 * wmax : 5 * wmax]
    hf = fw[5 * wmax : 6 * wmax + 2 * kk]
    can_skip = bound_applies(mod)
    use_tangents = can_skip and mod.kind == 1 and tangents_pay()
    backward = _backward()
    chan = iw[:kk]
    scratch = iw[kk : kk + wmax]
    pat = iw[kk + wmax : kk + 2 * wmax]
    new = iw[kk + 2 * wmax : kk + 3 * wmax]
    hi = iw[kk + 3 * wmax : kk + 4 * wmax + 4 * kk]
    for j in range(kk):
        chan[j] = 0
    if matching == RANDOM:
        for j in range(n_max):
            chan[j] = perm[j]
    elif k > 0:
        subchannel_rank(g, chan)
    _rate_tables(g, chan, n_max, noise, ws, A, B, rate, lt, ct)
    for n in range(n_max + 1):
        best_v[n] = math.inf
        best_row[n] = -1
        for j in range(wmax):
            best_p[n, j] = 0.0
            best_s[n, j] = 0
    lnlam = math.nan  # the multiplier of this prefix's bounds (nan: none yet)
    lnprev = math.nan  # that of the previous prefix's best pattern
    for n in range(n_max + 1):
        lam_p = math.nan  # no bound for this prefix
        slack = 0.0
        if can_skip and lnlam == lnlam:
            lam_p, slack = _prefix_terms(mod, n, rate, ws, wf, tail[n], P, lnlam, terms)
        last = n_start[n] + n_count[n] - 1
        for i in range(n_count[n]):
            r = last - i if backward else n_start[n] + i  # ties: the first row (below)
            if lam_p == lam_p and best_row[n] >= 0:
                acc = 0.0
                for j in range(n):
                    m = pats[r, j]
                    if m >= 0:
                        acc += terms[j, m]
                if tail[n] + acc - lam_p > best_v[n] + slack:
                    continue
            width = row_w[r]
            _row_power(pats[r], n, width, lt, ct, P, power_mode, t, c, p, scratch)
            if use_tangents and best_row[n] >= 0:
                if lower_sum_exceeds(mod, pats[r], width, rate, p, tail[n], wf, ws, best_v[n]):
                    continue
            v = _row_value(pats[r], width, rate, ws, wf, tail[n], qw, qs, ba, bb, exact, p, per)
            if v < best_v[n] or (backward and v == best_v[n]) or best_row[n] < 0:
                best_v[n] = v
                best_row[n] = r
                for j in range(n):
                    best_p[n, j] = p[j]
        if can_skip and best_row[n] >= 0:
            ln = _pattern_multiplier(mod, pats[best_row[n]], n, rate, ws, best_p[n])
            if ln == ln:
                # the next prefix's multiplier, extrapolated from the last two prefixes' best
                lnlam = 2.0 * ln - lnprev if lnprev == lnprev else ln
                lnprev = ln
        for j in range(n):
            best_s[n, j] = chan[j]
    n_best = 0
    for n in range(1, n_max + 1):
        if best_v[n] < best_v[n_best]:
            n_best = n
    if matching == HUNGARIAN:
        for n in range(max(0, n_best - 2), min(n_max, n_best + 2) + 1):
            if n == 0 or not math.isfinite(best_v[n]):
                continue
            for j in range(n):
                pat[j] = pats[best_row[n], j]
            for _ in range(iters):
                for j in range(n):
                    for q in range(k):
                        esno = best_p[n, j] * g[q] / noise
                        cost[j, q] = ws[j] * ber(pat[j], esno, qw, qs, ba, bb, exact)
                assign_rows_into(cost, n, k, hf, hi, new)
                same = True
                for j in range(n):
                    if new[j] != best_s[n, j]:
                        same = False
                if same:
                    break
                _rate_tables(g, new, n, noise, ws, A, B, rate, lt, ct)
                v = _score_row(pat, n, n, rate, lt, ct, P, ws, wf, tail[n], qw, qs, ba, bb, exact,
                               power_mode, t, c, p, scratch, per)  # fmt: skip
                if not v < best_v[n]:
                    break
                best_v[n] = v
                for j in range(n):
                    best_s[n, j] = new[j]
                    best_p[n, j] = p[j]
        n_best = 0
        for n in range(1, n_max + 1):
            if best_v[n] < best_v[n_best]:
                n_best = n
    return n_best


@shared()
def pipeline_frame_into(g, perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                        mod, n_max, pats, row_w, n_start, n_count, matching, power_mode, iters,
                        fw, iw, lt, ct, cost, terms, best_v, best_row, best_p, best_s,
                        sel, sub_out, mod_out, pw_out) -> None:  # noqa: ANN001  # fmt: skip
    """One frame of :func:`pipeline_batch` into its output rows (``sel``, ``sub_out``,
    ``mod_out``, ``pw_out`` [N], already cleared to False / -1 / -1 / 0)."""
    n_best = pipeline_candidates_into(
        g, perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact, mod, n_max, pats,
        row_w, n_start, n_count, matching, power_mode, iters, fw, iw, lt, ct, cost, terms, best_v,
        best_row, best_p, best_s)  # fmt: skip
    for j in range(n_best):
        f = order[j]
        sel[f] = True
        sub_out[f] = best_s[n_best, j]
        mod_out[f] = pats[best_row[n_best], j]
        pw_out[f] = best_p[n_best, j]


@numba.njit(cache=True, parallel=True)
def pipeline_batch(gains, perms, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                   n_max, pats, row_w, n_start, n_count, matching, power_mode, iters,
                   w, floor, slope, drop, m_kind, m_a, m_b, m_qw, m_qb, m_nt, m_f0, m_lnmu0, m_h,
                   m_lng, m_h_tab, m_lng0, m_dlng, m_tg, m_tf, m_td):  # fmt: skip
    """The pipeline for every frame of ``gains`` [F, K] (``perms`` [F or 1, n_max]: random
    matchings; ``m_*``: the fields of the problem's :data:`optim.ber_model.BerModel`, which a
    parallel loop takes one by one). Returns ``selected [F, N]``, ``subchannel``,
    ``modulation`` (-1 unsent), ``power`` and ``objective [F]`` (with the problem's weights
    ``w``)."""
    frames, k = gains.shape
    nf = order.size
    wmax = max(n_max, 1)
    sel = np.zeros((frames, nf), np.bool_)
    sub = np.full((frames, nf), -1, np.int64)
    mod = np.full((frames, nf), -1, np.int64)
    pw = np.zeros((frames, nf))
    obj = np.zeros(frames)
    for b in numba.prange(frames):
        bm = BerModel(m_kind, m_a, m_b, m_qw, m_qb, m_nt, m_f0, m_lnmu0, m_h, m_lng, m_h_tab,
                  m_lng0, m_dlng, m_tg, m_tf, m_td)  # fmt: skip
        perm = perms[b] if perms.shape[0] > 1 else perms[0]
        fw = np.empty(pipeline_float_size(n_max, k))
        iw = np.empty(pipeline_int_size(n_max, k), np.int64)
        lt = np.empty((wmax, A.size))
        ct = np.empty((wmax, A.size))
        cost = np.empty((wmax, max(k, 1)))
        terms = np.empty((wmax, A.size))
        best_v = np.empty(n_max + 1)
        best_row = np.empty(n_max + 1, np.int64)
        best_p = np.empty((n_max + 1, wmax))
        best_s = np.empty((n_max + 1, wmax), np.int64)
        pipeline_frame_into(gains[b], perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb,
                            exact, bm, n_max, pats, row_w, n_start, n_count, matching, power_mode,
                            iters, fw, iw, lt, ct, cost, terms, best_v, best_row, best_p, best_s,
                            sel[b], sub[b], mod[b], pw[b])  # fmt: skip
        cost_n = np.empty(nf)
        obj[b] = frame_objective(sel[b], sub[b], mod[b], pw[b], gains[b], noise, w, floor, slope,
                                 drop, qw, qs, ba, bb, exact, cost_n)  # fmt: skip
    return sel, sub, mod, pw, obj


@shared()
def fixed_frame_into(g, perm, noise, P, n, m, alpha, A, B, matching, power_mode, iw, fw,
                     sel, sub_out, mod_out, pw_out) -> None:  # noqa: ANN001  # fmt: skip
    """One frame of :func:`fixed_batch` into its output rows (cleared); scratch ``iw`` int64
    [max(K, 1) + max(n, 1)], ``fw`` float64 [3 max(n, 1)]."""
    k = g.size
    kk = max(k, 1)
    nn = max(n, 1)
    chan = iw[:kk]
    order = iw[kk : kk + nn]
    p = fw[:nn]
    t = fw[nn : 2 * nn]
    c = fw[2 * nn : 3 * nn]
    for j in range(kk):
        chan[j] = 0
    for j in range(nn):
        p[j] = 0.0
    if matching == RANDOM:
        for j in range(n):
            chan[j] = perm[j]
    elif k > 0:
        subchannel_rank(g, chan)
    if power_mode == EQUAL:
        for j in range(n):
            p[j] = P / n
    else:
        for j in range(n):
            c[j] = B[m] * g[chan[j]] / noise
            t[j] = log_terms(alpha[j], c[j])
        water_fill(t, c, n, P, order, p, n)
    for j in range(n):
        sel[j] = True
        sub_out[j] = chan[j]
        mod_out[j] = m
        pw_out[j] = p[j]


@numba.njit(cache=True, parallel=True)
def fixed_batch(gains, perms, noise, P, n, m, alpha, A, B, matching, power_mode,
                w, floor, slope, drop, qw, qs, ba, bb, exact):  # fmt: skip
    """``lowest-order`` / ``ui-ep``: features ``0..n-1``, all at modulation ``m``, on the
    strongest subchannels (``matching`` GREEDY) or ``perms``' (RANDOM); water-filling with
    ``alpha [n]`` (``w slope A_m``) and ``c = B_m g / sigma^2``, or equal shares."""
    frames, k = gains.shape
    nf = w.size
    sel = np.zeros((frames, nf), np.bool_)
    sub = np.full((frames, nf), -1, np.int64)
    mod = np.full((frames, nf), -1, np.int64)
    pw = np.zeros((frames, nf))
    obj = np.zeros(frames)
    for b in numba.prange(frames):
        perm = perms[b] if perms.shape[0] > 1 else perms[0]
        iw = np.empty(max(k, 1) + max(n, 1), np.int64)
        fw = np.empty(3 * max(n, 1))
        fixed_frame_into(gains[b], perm, noise, P, n, m, alpha, A, B, matching, power_mode, iw,
                         fw, sel[b], sub[b], mod[b], pw[b])  # fmt: skip
        cost = np.empty(nf)
        obj[b] = frame_objective(sel[b], sub[b], mod[b], pw[b], gains[b], noise, w, floor, slope,
                                 drop, qw, qs, ba, bb, exact, cost)  # fmt: skip
    return sel, sub, mod, pw, obj
