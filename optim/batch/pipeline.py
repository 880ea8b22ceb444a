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

import numba
import numpy as np

from optim.batch.arith import ber, log_terms, pairwise_sum, subchannel_rank, water_fill
from optim.batch.hungarian import assign_rows

GREEDY, RANDOM, HUNGARIAN = 0, 1, 2
CLOSED_FORM, EQUAL = 0, 1


@numba.njit(cache=True)
def _rate_tables(g, chan, width, noise, ws, A, B, rate, lt, ct):
    """Per rank ``j < width`` on subchannel ``chan[j]``: ``rate[j] = g / sigma^2`` and, per
    modulation ``m``, ``ct[j, m] = B_m rate_j`` and ``lt[j, m] = ln(ws_j A_m) + ln(ct[j, m])``
    (the water-filling's ``ln(alpha c)``; computed once per frame, not once per pattern)."""
    for j in range(width):
        rate[j] = g[chan[j]] / noise
        for m in range(A.size):
            ct[j, m] = B[m] * rate[j]
            lt[j, m] = log_terms(ws[j] * A[m], ct[j, m])


@numba.njit(cache=True)
def _score_row(pat, n, width, rate, lt, ct, P, ws, wf, tail_n, qw, qs, ba, bb, exact,
               power_mode, t, c, p, order, per):  # fmt: skip
    """Value of one pattern row (``pat[:width]``, -1 beyond ``n``) with the rank tables of
    :func:`_rate_tables`; its powers are left in ``p[:width]``."""
    if power_mode == EQUAL:
        for j in range(width):
            p[j] = P / max(n, 1) if j < n else 0.0
    else:
        for j in range(n):
            m = pat[j]
            c[j] = ct[j, m]
            t[j] = lt[j, m]
        water_fill(t, c, width, P, order, p, n)
    for j in range(width):
        m = pat[j]
        if m >= 0:
            per[j] = wf[j] + ws[j] * ber(m, rate[j] * p[j], qw, qs, ba, bb, exact)
        else:
            per[j] = 0.0
    return tail_n + pairwise_sum(per, width)


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def pipeline_candidates(g, perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                        n_max, pats, row_w, n_start, n_count, matching, power_mode, iters):  # noqa: ANN201  # fmt: skip
    """The best candidate of every prefix length of one frame: ``(best_v [n_max + 1],
    best_row`` (its pattern's row of ``pats``), ``best_p``, ``best_s [n_max + 1, W]``
    (powers and subchannels per rank), ``n_best)`` after the optional Hungarian step."""
    k = g.size
    wmax = max(n_max, 1)
    chan = np.zeros(max(k, 1), np.int64)
    if matching == RANDOM:
        for j in range(n_max):
            chan[j] = perm[j]
    elif k > 0:
        subchannel_rank(g, chan)
    t = np.empty(wmax)
    c = np.empty(wmax)
    p = np.zeros(wmax)
    scratch = np.empty(wmax, np.int64)
    per = np.empty(wmax)
    rate = np.empty(wmax)
    lt = np.empty((wmax, A.size))
    ct = np.empty((wmax, A.size))
    _rate_tables(g, chan, n_max, noise, ws, A, B, rate, lt, ct)
    best_v = np.full(n_max + 1, np.inf)
    best_row = np.full(n_max + 1, -1, np.int64)
    best_p = np.zeros((n_max + 1, wmax))
    best_s = np.zeros((n_max + 1, wmax), np.int64)
    for n in range(n_max + 1):
        for r in range(n_start[n], n_start[n] + n_count[n]):
            width = row_w[r]
            v = _score_row(pats[r], n, width, rate, lt, ct, P, ws, wf, tail[n], qw, qs, ba, bb,
                           exact, power_mode, t, c, p, scratch, per)  # fmt: skip
            if v < best_v[n] or best_row[n] < 0:
                best_v[n] = v
                best_row[n] = r
                for j in range(n):
                    best_p[n, j] = p[j]
        for j in range(n):
            best_s[n, j] = chan[j]
    n_best = 0
    for n in range(1, n_max + 1):
        if best_v[n] < best_v[n_best]:
            n_best = n
    if matching == HUNGARIAN:
        cost = np.empty((wmax, max(k, 1)))
        pat = np.empty(wmax, np.int64)
        for n in range(max(0, n_best - 2), min(n_max, n_best + 2) + 1):
            if n == 0 or not np.isfinite(best_v[n]):
                continue
            for j in range(n):
                pat[j] = pats[best_row[n], j]
            for _ in range(iters):
                for j in range(n):
                    for q in range(k):
                        esno = best_p[n, j] * g[q] / noise
                        cost[j, q] = ws[j] * ber(pat[j], esno, qw, qs, ba, bb, exact)
                new = assign_rows(cost[:n, :k])
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
    return best_v, best_row, best_p, best_s, n_best


@numba.njit(cache=True)
def _pipeline_frame(g, perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                    n_max, pats, row_w, n_start, n_count, matching, power_mode, iters,
                    sel, sub_out, mod_out, pw_out):  # fmt: skip
    best_v, best_row, best_p, best_s, n_best = pipeline_candidates(
        g, perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact, n_max, pats, row_w,
        n_start, n_count, matching, power_mode, iters)  # fmt: skip
    for j in range(n_best):
        f = order[j]
        sel[f] = True
        sub_out[f] = best_s[n_best, j]
        mod_out[f] = pats[best_row[n_best], j]
        pw_out[f] = best_p[n_best, j]


@numba.njit(cache=True, parallel=True)
def pipeline_batch(gains, perms, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb, exact,
                   n_max, pats, row_w, n_start, n_count, matching, power_mode, iters,
                   w, floor, slope, drop):  # fmt: skip
    """The pipeline for every frame of ``gains`` [F, K] (``perms`` [F or 1, n_max]: random
    matchings). Returns ``selected [F, N]``, ``subchannel``, ``modulation`` (-1 unsent),
    ``power`` and ``objective [F]`` (with the problem's weights ``w``)."""
    frames = gains.shape[0]
    nf = order.size
    sel = np.zeros((frames, nf), np.bool_)
    sub = np.full((frames, nf), -1, np.int64)
    mod = np.full((frames, nf), -1, np.int64)
    pw = np.zeros((frames, nf))
    obj = np.zeros(frames)
    for b in numba.prange(frames):
        perm = perms[b] if perms.shape[0] > 1 else perms[0]
        _pipeline_frame(gains[b], perm, noise, P, order, ws, wf, tail, A, B, qw, qs, ba, bb,
                        exact, n_max, pats, row_w, n_start, n_count, matching, power_mode, iters,
                        sel[b], sub[b], mod[b], pw[b])  # fmt: skip
        cost = np.empty(nf)
        obj[b] = frame_objective(sel[b], sub[b], mod[b], pw[b], gains[b], noise, w, floor, slope,
                            drop, qw, qs, ba, bb, exact, cost)  # fmt: skip
    return sel, sub, mod, pw, obj


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
        g = gains[b]
        chan = np.zeros(max(k, 1), np.int64)
        if matching == RANDOM:
            perm = perms[b] if perms.shape[0] > 1 else perms[0]
            for j in range(n):
                chan[j] = perm[j]
        elif k > 0:
            subchannel_rank(g, chan)
        p = np.zeros(max(n, 1))
        if power_mode == EQUAL:
            for j in range(n):
                p[j] = P / n
        else:
            t = np.empty(max(n, 1))
            c = np.empty(max(n, 1))
            order = np.empty(max(n, 1), np.int64)
            for j in range(n):
                c[j] = B[m] * g[chan[j]] / noise
                t[j] = log_terms(alpha[j], c[j])
            water_fill(t, c, n, P, order, p)
        for j in range(n):
            sel[b, j] = True
            sub[b, j] = chan[j]
            mod[b, j] = m
            pw[b, j] = p[j]
        cost = np.empty(nf)
        obj[b] = frame_objective(sel[b], sub[b], mod[b], pw[b], g, noise, w, floor, slope, drop, qw,
                            qs, ba, bb, exact, cost)  # fmt: skip
    return sel, sub, mod, pw, obj
