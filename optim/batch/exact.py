"""``exact`` for small instances, one enumeration per frame inside the parallel loop.

Per frame this is :func:`optim.enumeration.enumerate_optimum` (the engine ``optim.solve(...,
"exact")`` picks up to ``max_candidates`` candidates, i.e. every ``N <= 8``) with its
Python parts compiled:

1. the slot form (:func:`optim.slots.slot_model`): the ``Kp = min(N, K)`` strongest
   subchannels by a stable sort of ``-g`` (ties by index), ``nu = g / sigma^2``; the ranks,
   ``alpha``, ``e`` and symbols are frame-independent and built once;
2. the ordered-prior incumbent (:func:`optim.slots.ordered_prior_incumbent`): ranks
   ``0..n-1`` on slots ``0..n-1`` with every modulation-count vector in the per-frame code's
   order (the two-level vectors of every size, then the others), each solved exactly by
   :func:`optim.optimal_power.candidate_value`; the best value per size gives the
   multipliers ``ln lambda_n`` of the dual bound (2);
3. the slot terms of (2) (:func:`optim.slots.slot_terms`) and the depth-first walk with
   pruning (:func:`optim.enumeration.enumerate_walk`), run to completion;
4. the winner's optimal power (:func:`optim.optimal_power.candidate_value`).

The same kernels in the same order give the same choices and the same objective. The
per-frame call checks a wall clock between slices of the walk (``time_limit``, 60 s by
default); a slice boundary does not change the walk (it resumes from its saved state), and a
batched frame has no clock: it always completes.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from channels.errors import ConfigError, check_name, check_real
from optim.batch.pipeline import frame_objective
from optim.ber_model import ber_model
from optim.distortion import feature_terms
from optim.enumeration import candidate_count, enumerate_walk
from optim.optimal_power import candidate_value
from optim.problem import Problem
from optim.slots import count_vectors, slot_terms

EXACT_OPTIONS = ("engine", "rtol", "atol", "max_candidates", "time_limit", "node_limit")


def exact_plan(problem: Problem, k: int, options: dict[str, Any]) -> dict[str, Any]:
    """Check ``exact``'s options and build the frame-independent arrays for ``K = k``.

    Raises:
        ConfigError: an unknown option, ``engine`` ``bnb`` or more candidates than
            ``max_candidates`` (the branch and bound is not batched), or a ``time_limit`` /
            ``node_limit`` (a batched frame always completes its enumeration).
    """
    for key in options:
        if key not in EXACT_OPTIONS:
            raise ConfigError(
                f"option: {key!r} is not accepted by method 'exact'; "
                f"allowed: {', '.join(EXACT_OPTIONS)}"
            )
    engine = check_name("engine", options.get("engine", "auto"), ("auto", "enumerate", "bnb"))
    rtol = check_real("rtol", options.get("rtol", 1e-9), 0.0, allowed="a finite number >= 0")
    atol = check_real("atol", options.get("atol", 1e-300), 0.0, allowed="a finite number >= 0")
    max_candidates = float(options.get("max_candidates", 2e8))
    for name in ("time_limit", "node_limit"):
        if options.get(name) is not None:
            raise ConfigError(
                f"{name}: {options[name]!r} is not supported by solve_batch; allowed: "
                "none (every frame's enumeration runs to completion)"
            )
    n_feat = problem.n_features
    n_mod = len(problem.modulations)
    count = candidate_count(n_feat, k, n_mod)
    if engine == "bnb" or count > max_candidates:
        raise ConfigError(
            f"exact: {count} candidates (N = {n_feat}, K = {k}) exceed max_candidates = "
            f"{max_candidates:g} or engine 'bnb' was asked; solve_batch runs the enumeration "
            "only (N <= 8 by default)"
        )
    terms = feature_terms(problem)
    w = problem.weights
    alpha = w * terms.slope
    gain_cost = w * (terms.floor - terms.drop)
    order = np.lexsort((np.arange(w.size), -alpha)).astype(np.int64)
    kp = min(n_feat, k)
    alpha_r = np.ascontiguousarray(alpha[order], dtype=np.float64)
    e_r = np.ascontiguousarray(gain_cost[order], dtype=np.float64)
    fixed = np.zeros(max(kp, 1) + 1)
    base = float(w @ terms.drop)
    for n in range(1, kp + 1):
        fixed[n] = base + e_r[:n].sum()  # as the per-frame incumbent sums it
    rows: list[tuple[int, tuple[int, ...]]] = []
    for n in range(1, kp + 1):
        rows += [(n, v) for v in count_vectors(n, n_mod, limit=0)]
    for n in range(1, kp + 1):
        rows += [(n, v) for v in count_vectors(n, n_mod) if np.count_nonzero(v) > 2]
    row_n = np.array([n for n, _ in rows] or [0], dtype=np.int64)
    row_c = np.array([v for _, v in rows] or [[0] * n_mod], dtype=np.int64).reshape(-1, n_mod)
    return {
        "mod": ber_model(problem),
        "order": order,
        "alpha_r": alpha_r,
        "e_r": e_r,
        "sym": np.ascontiguousarray(problem.symbol_table[order], dtype=np.int64),
        "smax": float(problem.symbol_budget),
        "budget": float(problem.power_budget),
        "noise": float(problem.noise_power),
        "base": base,
        "fixed": fixed,
        "row_n": row_n,
        "row_c": row_c,
        "n_rows": len(rows),
        "rtol": float(rtol),
        "atol": float(atol),
    }


@numba.njit(cache=True)
def _exact_frame(g, mod, order, alpha_r, e_r, sym, smax, budget, noise, base, fixed, row_n,
                 row_c, n_rows, rtol, atol, sel, sub, mdx, pw):  # fmt: skip
    """Frame ``g`` [K]: the optimum written into ``sel, sub, mdx, pw`` [N] (feature order)."""
    n_feat = alpha_r.size
    n_mod = sym.shape[1]
    kp = min(n_feat, g.size)
    if kp == 0:
        return
    chan = np.argsort(-g, kind="mergesort")[:kp]  # stable: ties by index, as np.lexsort
    nu = np.empty(kp)
    for s in range(kp):
        nu[s] = g[chan[s]] / noise
    # -- the ordered-prior incumbent and the multipliers of (2)
    width = max(kp, 1)
    loglam = np.full(width, -np.inf)
    best_value = np.full(width, np.inf)
    p = np.zeros(width)
    gam = np.zeros(width)
    mods = np.zeros(width, np.int64)
    ub = base
    r0 = np.zeros(width, np.int64)
    m0 = np.zeros(width, np.int64)
    n0 = 0
    for q in range(n_rows):
        n = row_n[q]
        j = 0
        for m in range(n_mod):
            for _ in range(row_c[q, m]):
                mods[j] = m
                j += 1
        used = 0
        for s in range(n):
            used += sym[s, mods[s]]
        if float(used) > smax:
            continue
        v, lev = candidate_value(mod, alpha_r[:n].copy(), nu[:n].copy(), mods[:n].copy(), n,
                                 budget, p, gam)  # fmt: skip
        v += fixed[n]
        if v < best_value[n - 1]:
            best_value[n - 1] = v
            loglam[n - 1] = lev if np.isfinite(lev) else -np.inf
        if v < ub:
            ub = v
            for s in range(width):
                r0[s] = s if s < n else 0
                m0[s] = mods[s] if s < n else 0
            n0 = n
    for n in range(2, kp + 1):
        if not np.isfinite(best_value[n - 1]):
            loglam[n - 1] = loglam[n - 2]
    # -- the walk of optim.enumeration, run to completion
    bterm = slot_terms(mod, alpha_r, e_r, nu, loglam, n_mod)
    lam = np.zeros(width)
    for d in range(width):
        if np.isfinite(loglam[d]):
            lam[d] = np.exp(loglam[d])
    state = np.array([0, n0, 1, 0], dtype=np.int64)
    cursor = np.full(kp + 1, -1, np.int64)
    cur_r = np.zeros(kp, np.int64)
    cur_m = np.zeros(kp, np.int64)
    prev_last = np.zeros(kp, np.int64)
    last = np.full(n_mod, -1, np.int64)
    used_r = np.zeros(n_feat, np.bool_)
    symu = np.zeros(kp + 1)
    pre = np.zeros((kp + 1, kp))
    ub_arr = np.array([ub])
    enumerate_walk(mod, alpha_r, e_r, nu, sym, smax, budget, base, bterm, lam, rtol, atol,
                   state, cursor, cur_r, cur_m, prev_last, last, used_r, symu, pre, r0, m0,
                   ub_arr, np.int64(1) << 62)  # fmt: skip
    n = state[1]
    if n == 0:
        return
    pn = np.zeros(n)
    gn = np.zeros(n)
    a = np.empty(n)
    for s in range(n):
        a[s] = alpha_r[r0[s]]
    candidate_value(mod, a, nu[:n].copy(), m0[:n].copy(), n, budget, pn, gn)
    for s in range(n):
        i = order[r0[s]]
        sel[i] = True
        sub[i] = chan[s]
        mdx[i] = m0[s]
        pw[i] = pn[s]


@numba.njit(cache=True, parallel=True)
def exact_batch(gains, mod, order, alpha_r, e_r, sym, smax, budget, noise, base, fixed, row_n,
                row_c, n_rows, rtol, atol, qw, qs, ba, bb, exact, w, floor, slope,
                drop):  # fmt: skip
    """:func:`_exact_frame` for every frame of ``gains`` [F, K]; returns ``selected,
    subchannel, modulation, power [F, N]`` and ``objective [F]`` (as ``optim.solve``)."""
    frames = gains.shape[0]
    nf = alpha_r.size
    sel = np.zeros((frames, nf), np.bool_)
    sub = np.full((frames, nf), -1, np.int64)
    mdx = np.full((frames, nf), -1, np.int64)
    pw = np.zeros((frames, nf))
    obj = np.zeros(frames)
    for b in numba.prange(frames):
        g = gains[b]
        _exact_frame(g, mod, order, alpha_r, e_r, sym, smax, budget, noise, base, fixed, row_n,
                     row_c, n_rows, rtol, atol, sel[b], sub[b], mdx[b], pw[b])  # fmt: skip
        cost = np.empty(nf)
        obj[b] = frame_objective(sel[b], sub[b], mdx[b], pw[b], g, noise, w, floor, slope, drop,
                                 qw, qs, ba, bb, exact, cost)  # fmt: skip
    return sel, sub, mdx, pw, obj
