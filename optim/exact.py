"""The exact optimum of (P0) by exhaustive enumeration, with proven reductions.

Slot form of (P0)
-----------------
Write ``e_i = w_i (floor_i - drop_i)`` and ``alpha_i = w_i slope_i`` (:func:`optim.distortion.
feature_terms`), ``base = sum_i w_i drop_i``, and sort the subchannels by decreasing gain:
slot ``s = 0, 1, ...`` has SNR per unit power ``nu_s = g_(s) / sigma^2``,
``nu_0 >= nu_1 >= ...``. An allocation that sends features ``i_0, ..., i_{n-1}`` on slots
``0..n-1`` with modulations ``m_s`` and powers ``p_s`` costs::

    J = base + sum_s [ e_{i_s} + alpha_{i_s} f_{m_s}(nu_s p_s) ]        (1)
    s.t.  sum_s S(m_s) <= S_max,   sum_s p_s <= P_tot,   p >= 0

with ``f_m`` the problem's BER model: ``A_m exp(-B_m gamma)`` (``bound``) or the exact Gray
BER ``sum_t w_t Q(b_t sqrt(gamma))`` (``exact``, :func:`channels.theory.ber_awgn`).

Per-feature bits. With per-feature ``Q_i`` (:class:`optim.problem.Problem`) the symbol budget
reads ``sum_s S_{i_s}(m_s) <= S_max``: a feature's symbols depend on the feature and its
modulation, not on its slot. The lemmas below hold unchanged (generalised, not a fallback):
Lemma 1 keeps every feature's modulation and Lemma 2 swaps two features *of the same
modulation*, each keeping its own ``S_i(m)``, so neither changes the symbols used; the bounds
(2) and (3) of :mod:`optim.bnb` price ``S_i(m)`` per feature. Only the walk's budget test is
per pair ``(rank, modulation)`` (:func:`next_child`).

Lemma 1 (strongest slots). Some optimum uses a prefix ``0..n-1`` of the slots.
*Proof.* Take an optimum using subchannels ``k_1, ..., k_n`` (any order) with SNRs
``gamma_j = g_{k_j} p_j / sigma^2``. Move the feature on the ``r``-th strongest used
subchannel to slot ``r``, the ``r``-th strongest of all (its gain is at least as large: the
``r`` strongest used subchannels are ``r`` distinct subchannels with gains at least that of
the ``r``-th used one), keeping every SNR: each power ``gamma_j sigma^2 / g`` does not increase,
the cost (a function of the SNRs) and the symbol count are unchanged. No monotonicity of
``f`` is needed. []

Lemma 2 (same-modulation order). Rank the features by ``(-alpha_i, i)``. Some optimum
(among those of Lemma 1) gives, within every modulation class, the stronger slot to the
better-ranked feature. *Proof.* Let ``i`` rank before ``j`` (``alpha_i >= alpha_j``), both
with modulation ``m``, ``i`` on slot ``b``, ``j`` on a stronger slot ``a`` (``nu_a >= nu_b``)
with SNRs ``gamma_i``, ``gamma_j``. If ``gamma_i >= gamma_j``, move ``i`` to ``a`` and ``j``
to ``b`` keeping the SNRs: the cost is unchanged and the power changes by
``(gamma_i - gamma_j)(1/nu_a - 1/nu_b) <= 0``. If ``gamma_i < gamma_j``, swap slots and SNRs
(``i`` gets ``gamma_j`` on ``a``, ``j`` gets ``gamma_i`` on ``b``): the power is unchanged and
the cost changes by ``(alpha_i - alpha_j)(f(gamma_j) - f(gamma_i)) <= 0`` because ``f`` is
non-increasing (both models: Lemma 3). Each swap sorts one inverted pair of a class, keeping
the selection, modulations and budgets, so finitely many swaps reach the stated order. []

Together: a candidate is a sequence of ``(feature, modulation)`` pairs for slots ``0..n-1``
with the symbol budget met and, per modulation, ranks increasing along the slots. For
``N = K`` and ``M = 4`` there are 622,465 such candidates at ``N = 6`` (3.8 million with Lemma
1 alone, 8.9 million without either), 8.4 million at ``N = 7``, 118 million at ``N = 8``
(:func:`candidate_count`; the symbol budget removes most of them in practice).

Lemma 3 (convex per-candidate power). Both BER models are convex and decreasing in
``gamma``. Bound: obvious. Exact: ``f(gamma) = sum_t w_t Q(b_t sqrt gamma)`` with
``b_0 < b_1 < ...`` and ``w_0 > 0``; differentiating,
``-f'(gamma) = e^{-b_0^2 gamma/2} S1(gamma) / (2 sqrt(2 pi gamma))`` and
``f''(gamma) = e^{-b_0^2 gamma/2} S2(gamma) / (4 sqrt(2 pi) gamma^{3/2})`` with
``S1 = sum_t w_t b_t e^{-(b_t^2 - b_0^2) gamma/2}`` and
``S2 = sum_t w_t b_t (1 + b_t^2 gamma) e^{-(b_t^2 - b_0^2) gamma/2}``. BPSK and QPSK have one
term. For the QAMs, ``S1, S2 > 0`` is checked by ``tests/optim/test_exact.py`` on a dense grid
up to a ``gamma_T`` beyond which the leading term provably dominates
(``sum_{t>0} |w_t| b_t (b_t / b_0)^2 e^{-(b_1^2 - b_0^2) gamma/2} < w_0 b_0``). So for a fixed
candidate ``min sum_s alpha_s f_s(nu_s p_s)`` s.t. ``sum p <= P`` is convex and its KKT
point is the global optimum: ``alpha_s nu_s (-f'_s(nu_s p_s)) = lambda`` for every slot with
``alpha_s nu_s > 0`` (``-f'(0+) = +inf`` for the exact model, so all such slots get power;
for the bound model ``p_s = max(0, ln(alpha_s A B nu_s / lambda) / (B nu_s))``, the
water-filling), and ``sum p = P`` when ``P > 0``. :func:`optimal_power` solves it: closed
form for the bound (sorted active set), safeguarded Newton on ``ln lambda`` with inner
safeguarded Newton on ``gamma`` for the exact model, to ~1e-13 relative.

Lemma 4 (dual bound). For every ``lambda >= 0``, each candidate's optimum satisfies::

    J* >= base + sum_s [ e_s + alpha_s H_{m_s}( lambda / (alpha_s nu_s) ) ] - lambda P_tot,
    H_m(mu) = min_{gamma >= 0} f_m(gamma) + mu gamma                         (2)

(weak duality: ``alpha f(nu p) >= alpha H(lambda/(alpha nu)) - lambda p`` term by term and
``sum p <= P``; a slot with ``alpha nu = 0`` contributes ``alpha f(0) = alpha H(inf)``).
``H_m`` is concave and non-decreasing (a minimum of affine functions of ``mu``). Bound:
``H(mu) = (mu/B)(1 + ln(AB/mu))`` for ``mu < AB``, else ``A``. Exact: ``H`` is tabulated
on a fine log grid of ``mu``; by concavity the chord between two grid points is below ``H``,
and below the grid ``H >= 0``, above it ``H >= H(mu_max)``, so the interpolant used is a
valid lower bound.

Algorithm. An incumbent comes from the ordered-prior candidates (top ranks on the top slots,
modulation orders non-decreasing along the slots) solved exactly; its multiplier
``lambda_n`` per candidate size ``n`` fixes the bound (2). A depth-first walk over all
candidates of Lemmas 1-2 accumulates (2) slot by slot; a candidate whose bound is at least
``UB - (rtol UB + atol)`` is skipped (it cannot improve the incumbent by more than the
tolerance), every other one gets its exact optimal power (Lemma 3). So the result is within
``rtol`` (default 1e-9, relative) of the optimum of (P0), ``J >= 0`` always. The walk is
compiled with Numba (one core). Above ``max_candidates`` (default 2e8, i.e. ``N >= 9``)
:func:`solve_exact` switches to the certified branch and bound of :mod:`optim.bnb`, which
searches the same space with stronger bounds.

Time limit. The walk runs in slices with the clock checked between them
(:mod:`optim.timebox`). Stopped by ``time_limit`` it returns its incumbent with a proven lower
bound: the visited candidates are at least ``UB - (rtol UB + atol)``, and the unvisited ones
(the subtrees of the untried children of the current path) at least the node bounds of the
branch and bound (:func:`optim.bnb.walk_bound`, eq. 3 there: both budgets dualised, an
assignment completion). When that bound already proves the incumbent optimal within the
tolerance, the answer is reported optimal although the walk did not finish.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import namedtuple
from dataclasses import dataclass
from functools import lru_cache
from math import comb, factorial
from typing import Any

import numba
import numpy as np

from channels.errors import ConfigError, check_name, check_real
from channels.theory import ber_terms, bound_coefficients
from optim.distortion import feature_terms, objective
from optim.problem import Allocation, Problem
from optim.timebox import Deadline, check_limits

__all__ = [
    "ENGINES",
    "BerModel",
    "ExactResult",
    "NotProvenOptimalWarning",
    "SlotModel",
    "ber_model",
    "candidate_count",
    "dual_bound_terms",
    "h_lower",
    "optimal_power",
    "slot_model",
    "solve_exact",
    "solve_exact_result",
    "warm_up",
]

_SQRT2 = math.sqrt(2.0)
_LOG_8PI = math.log(8.0 * math.pi)
_TABLE_LNMU = (math.log(1e-150), math.log(1e15))
_TABLE_SIZE = 60_001

BerModel = namedtuple(
    "BerModel", ["kind", "A", "B", "qw", "qb", "nt", "f0", "lnmu0", "h", "lng", "H"]
)
"""Numba-friendly BER model of one problem, ``M`` modulations in the problem's order.

kind: 0 bound, 1 exact. A, B [M]: bound coefficients. qw, qb [M, T]: exact BER terms
``sum_t qw Q(qb sqrt(gamma))`` (``qb`` increasing, zero-padded), nt [M] term counts.
f0 [M]: ``f(0)``. lnmu0, h: log-grid ``ln mu_k = lnmu0 + k h``; lng [M, G]: ``ln gamma*(mu_k)``;
H [M, G]: ``H(mu_k)`` (slightly lowered), both ``[M, 1]`` dummies for the bound model.
"""


# =============================================================================================
# Scalar kernels of the BER models (Numba)
# =============================================================================================
@numba.njit(cache=True, inline="always")
def next_child(c, n_mod, n_feat, sym, symmin, symu_depth, smax, last, used):  # noqa: ANN001, ANN201
    """The first admissible child code ``>= c`` of a search node, or -1 when there is none.

    A child code ``c = m * n_feat + r`` puts feature rank ``r`` in the next slot with
    modulation ``m``. It is admissible when the symbol budget still holds
    (``symu_depth + sym[r, m] <= smax``, ``sym`` [N, M] the symbols of rank ``r``), when ``r``
    is above the last rank already given ``m`` (within one modulation, ranks are taken in
    increasing order: the same-modulation swap argument of the module docstring), and when
    ``r`` is unused. A code that breaks the second rule, or the first for every rank
    (``symmin[m] = min_r sym[r, m]``), skips straight to the next candidate that can pass them.
    """
    while c < n_mod * n_feat:
        m = c // n_feat
        r = c % n_feat
        if symu_depth + symmin[m] > smax:
            c = (m + 1) * n_feat
        elif r <= last[m]:
            c = m * n_feat + last[m] + 1
        elif used[r] or symu_depth + sym[r, m] > smax:
            c += 1
        else:
            return c
    return -1


@numba.njit(cache=True)
def column_min(sym):  # noqa: ANN001, ANN201
    """``min_r sym[r, m]`` per modulation (the whole-modulation skip of :func:`next_child`)."""
    n_feat, n_mod = sym.shape
    out = np.zeros(n_mod, sym.dtype)
    for m in range(n_mod):
        v = sym[0, m] if n_feat else 0
        for r in range(1, n_feat):
            if sym[r, m] < v:
                v = sym[r, m]
        out[m] = v
    return out


@numba.njit(cache=True, inline="always")
def take_child(c, depth, n_feat, cursor, cur_r, cur_m, prev_last, last, used):  # noqa: ANN001, ANN201
    """Take child code ``c`` at ``depth``: record it and mark its rank used; returns ``(m, r)``.

    ``prev_last`` keeps the previous last rank of modulation ``m`` so :func:`backtrack` can
    restore it.
    """
    cursor[depth] = c
    m = c // n_feat
    r = c % n_feat
    cur_r[depth] = r
    cur_m[depth] = m
    prev_last[depth] = last[m]
    last[m] = r
    used[r] = True
    return m, r


@numba.njit(cache=True, inline="always")
def backtrack(depth, cur_r, cur_m, prev_last, last, used):  # noqa: ANN001, ANN201
    """Leave ``depth``: undo the choice of the parent slot (inverse of :func:`take_child`)."""
    depth -= 1
    if depth >= 0:
        used[cur_r[depth]] = False
        last[cur_m[depth]] = prev_last[depth]
    return depth


@numba.njit(cache=True)
def _ber(mod, m: int, gam: float) -> float:
    """``f_m(gamma)`` clipped to [0, 1/2], as :func:`optim.distortion.ber_of`."""
    if mod.kind == 0:
        v = mod.A[m] * math.exp(-mod.B[m] * gam)
    else:
        v = 0.0
        r = math.sqrt(gam) / _SQRT2
        for t in range(mod.nt[m]):
            v += mod.qw[m, t] * 0.5 * math.erfc(mod.qb[m, t] * r)
    return min(max(v, 0.0), 0.5)


@numba.njit(cache=True)
def _dlog(mod, m: int, gam: float) -> tuple[float, float]:
    """Exact model: ``D = ln(-f'(gamma))`` and ``dD/dgamma = -S2 / (2 gamma S1)``."""
    b0 = mod.qb[m, 0]
    s1 = 0.0
    s2 = 0.0
    for t in range(mod.nt[m]):
        bt = mod.qb[m, t]
        e = mod.qw[m, t] * bt * math.exp(-0.5 * (bt * bt - b0 * b0) * gam)
        s1 += e
        s2 += e * (1.0 + bt * bt * gam)
    d = -0.5 * b0 * b0 * gam - 0.5 * (_LOG_8PI + math.log(gam)) + math.log(s1)
    return d, -s2 / (2.0 * gam * s1)


@numba.njit(cache=True)
def _gamma_newton(mod, m: int, lnmu: float, guess: float) -> float:
    """Exact model: the ``gamma > 0`` with ``ln(-f'(gamma)) = ln mu`` (``D`` is decreasing).

    Bracket by geometric expansion around ``guess``, then Newton steps kept inside the
    bracket (bisection in ``ln gamma`` otherwise); relative accuracy ~1e-15.
    """
    g = guess if guess > 0.0 and math.isfinite(guess) else 1.0
    lo = g
    hi = g
    d, _ = _dlog(mod, m, lo)
    step = 0.5
    while d < lnmu:  # lo too large
        hi = lo
        lo *= math.exp(-step)
        step *= 2.0
        if lo < 1e-300:
            return lo
        d, _ = _dlog(mod, m, lo)
    d, _ = _dlog(mod, m, hi)
    step = 0.5
    while d > lnmu:  # hi too small
        lo = hi
        hi *= math.exp(step)
        step *= 2.0
        d, _ = _dlog(mod, m, hi)
    x = min(max(g, lo), hi)
    for _ in range(200):
        d, dd = _dlog(mod, m, x)
        r = d - lnmu
        if r > 0.0:
            lo = x
        else:
            hi = x
        xn = x - r / dd
        if not (xn > lo and xn < hi):
            xn = math.sqrt(lo * hi)
        if abs(xn - x) <= 1e-15 * x or hi - lo <= 1e-15 * hi:
            return xn
        x = xn
    return x


@numba.njit(cache=True)
def _gamma_star(mod, m: int, lnmu: float) -> float:
    """``argmin_gamma f_m(gamma) + mu gamma`` (``-f'(gamma) = mu``); ``lnmu`` may be +inf."""
    if lnmu == np.inf:
        return 0.0
    if mod.kind == 0:
        a = math.log(mod.A[m] * mod.B[m])
        return max(0.0, (a - lnmu) / mod.B[m]) if lnmu < a else 0.0
    x = (lnmu - mod.lnmu0) / mod.h
    g_count = mod.lng.shape[1]
    if x <= 0.0:
        guess = -2.0 * (lnmu - mod.lnmu0) / (mod.qb[m, 0] ** 2) + math.exp(mod.lng[m, 0])
    elif x >= g_count - 1:
        guess = math.exp(mod.lng[m, g_count - 1] - 2.0 * (lnmu - mod.lnmu0 - mod.h * (g_count - 1)))
    else:
        k = int(x)
        fr = x - k
        guess = math.exp(mod.lng[m, k] * (1.0 - fr) + mod.lng[m, k + 1] * fr)
    return _gamma_newton(mod, m, lnmu, guess)


@numba.njit(cache=True)
def _h_lower(mod, m: int, lnmu: float) -> float:
    """A lower bound on ``H_m(mu)`` of (2): exact for the bound model, chord for the exact one."""
    if lnmu == np.inf:
        return mod.f0[m]
    if mod.kind == 0:
        a = mod.A[m]
        ab = math.log(a * mod.B[m])
        if lnmu >= ab:
            return a
        mu = math.exp(lnmu)
        return (mu / mod.B[m]) * (1.0 + ab - lnmu)
    x = (lnmu - mod.lnmu0) / mod.h
    g_count = mod.H.shape[1]
    if x >= g_count - 1:
        return mod.H[m, g_count - 1]
    if x < 0.0:
        return 0.0
    k = int(x)
    frac = math.expm1((x - k) * mod.h) / math.expm1(mod.h)  # position in mu, not ln mu
    return mod.H[m, k] + (mod.H[m, k + 1] - mod.H[m, k]) * frac


@numba.njit(cache=True)
def _build_table(mod, m: int, lnmu: np.ndarray, lng: np.ndarray, hv: np.ndarray) -> None:
    """Fill ``ln gamma*(mu_k)`` and ``H(mu_k)`` (continuation from large to small ``mu``)."""
    g_count = lnmu.size
    s10 = 0.0
    for t in range(mod.nt[m]):
        s10 += mod.qw[m, t] * mod.qb[m, t]
    # -f'(gamma) ~ S1(0) / (2 sqrt(2 pi gamma)) for small gamma
    guess = (s10 / (2.0 * math.sqrt(2.0 * math.pi))) ** 2 * math.exp(-2.0 * lnmu[g_count - 1])
    for k in range(g_count - 1, -1, -1):
        gam = _gamma_newton(mod, m, lnmu[k], guess)
        lng[k] = math.log(gam)
        f = _ber(mod, m, gam)
        h = f + math.exp(lnmu[k]) * gam
        hv[k] = h - 1e-14 * h - 1e-300  # safety margin for rounding: stays a lower bound
        guess = gam
    return None


# =============================================================================================
# Per-candidate optimal power (Lemma 3)
# =============================================================================================
@numba.njit(cache=True)
def _power_bound(mod, alpha, nu, mods, n, budget, p) -> float:
    """Bound-model water-filling; writes ``p[:n]``, returns ``ln lambda`` (+inf: no power)."""
    for s in range(n):
        p[s] = 0.0
    if budget <= 0.0:
        return np.inf
    t = np.empty(n)
    c = np.empty(n)
    idx = np.empty(n, np.int64)
    cnt = 0
    for s in range(n):
        m = mods[s]
        cs = mod.B[m] * nu[s]
        a = alpha[s] * mod.A[m]
        if a > 0.0 and cs > 0.0:
            t[cnt] = math.log(a) + math.log(cs)
            c[cnt] = cs
            idx[cnt] = s
            cnt += 1
    if cnt == 0:
        return np.inf
    # insertion sort by t descending
    for a1 in range(1, cnt):
        tv, cv, iv = t[a1], c[a1], idx[a1]
        b1 = a1 - 1
        while b1 >= 0 and t[b1] < tv:
            t[b1 + 1] = t[b1]
            c[b1 + 1] = c[b1]
            idx[b1 + 1] = idx[b1]
            b1 -= 1
        t[b1 + 1] = tv
        c[b1 + 1] = cv
        idx[b1 + 1] = iv
    s1 = 0.0
    s2 = 0.0
    level = np.inf
    for r in range(cnt):
        s1 += 1.0 / c[r]
        s2 += t[r] / c[r]
        lv = (s2 - budget) / s1
        if t[r] > lv:
            level = lv
        else:
            break
    total = 0.0
    for r in range(cnt):
        if t[r] > level:
            v = (t[r] - level) / c[r]
            p[idx[r]] = v
            total += v
    if total > budget:
        sc = budget / total
        for s in range(n):
            p[s] *= sc
    return level


@numba.njit(cache=True)
def _power_exact(mod, alpha, nu, mods, n, budget, p, gam) -> float:
    """KKT power of the exact model (Lemma 3); writes ``p[:n]``; returns ``ln lambda``.

    Outer: safeguarded Newton on ``s = ln lambda`` for ``G(s) = sum_s gamma_s(s)/nu_s - P``
    (decreasing), ``dgamma/ds = 1/D'(gamma)``. Inner: :func:`_gamma_newton` warm-started.
    """
    for s in range(n):
        p[s] = 0.0
        gam[s] = 0.0
    if budget <= 0.0:
        return np.inf
    la = np.empty(n)
    cnt = 0
    for s in range(n):
        if alpha[s] > 0.0 and nu[s] > 0.0:
            la[s] = math.log(alpha[s]) + math.log(nu[s])
            cnt += 1
        else:
            la[s] = -np.inf
    if cnt == 0:
        return np.inf
    # start: equal power split -> lambda_s estimates; mean of ln lambda
    s0 = 0.0
    for s in range(n):
        if la[s] > -np.inf:
            g = nu[s] * budget / cnt
            d, _ = _dlog(mod, mods[s], g)
            s0 += la[s] + d
            gam[s] = g
    x = s0 / cnt
    lo = -np.inf  # G(lo) > 0
    hi = np.inf  # G(hi) < 0
    for _ in range(300):
        gsum = 0.0
        dsum = 0.0
        for s in range(n):
            if la[s] > -np.inf:
                m = mods[s]
                g = _gamma_newton(mod, m, x - la[s], gam[s])
                gam[s] = g
                _, dd = _dlog(mod, m, g)
                gsum += g / nu[s]
                dsum += 1.0 / (dd * nu[s])
        r = gsum - budget
        if abs(r) <= 1e-14 * budget:
            break
        if r > 0.0:
            lo = x
        else:
            hi = x
        xn = x - r / dsum
        if lo > -np.inf and hi < np.inf:
            if not (xn > lo and xn < hi):
                xn = 0.5 * (lo + hi)
            if hi - lo <= 1e-15 * max(1.0, abs(x)):
                break
        elif not math.isfinite(xn):
            xn = x + (1.0 if r > 0.0 else -1.0)
        x = xn
    total = 0.0
    for s in range(n):
        if la[s] > -np.inf:
            p[s] = gam[s] / nu[s]
            total += p[s]
    if total > budget:
        sc = budget / total
        for s in range(n):
            p[s] *= sc
    return x


@numba.njit(cache=True)
def _candidate_value(mod, alpha, nu, mods, n, budget, p, gam) -> tuple[float, float]:
    """(``sum_s alpha_s f(nu_s p_s)`` at the optimal power, ``ln lambda``); writes ``p``."""
    if mod.kind == 0:
        lev = _power_bound(mod, alpha, nu, mods, n, budget, p)
    else:
        lev = _power_exact(mod, alpha, nu, mods, n, budget, p, gam)
    v = 0.0
    for s in range(n):
        v += alpha[s] * _ber(mod, mods[s], nu[s] * p[s])
    return v, lev


# =============================================================================================
# Enumeration (Lemmas 1, 2, 4)
# =============================================================================================
@numba.njit(cache=True)
def _enumerate_walk(
    mod,
    alpha_r,
    e_r,
    nu,
    sym,
    smax,
    budget,
    base,
    bterm,
    lam,
    rtol,
    atol,
    state,
    cursor,
    cur_r,
    cur_m,
    prev_last,
    last,
    used,
    symu,
    pre,
    best_r,
    best_m,
    ub_arr,
    max_visits,
):
    """Resume the depth-first walk over all candidates for at most ``max_visits`` of them;
    True when the walk is complete. See the module docstring.

    ``alpha_r``, ``e_r`` [N] are in rank order; ``bterm[d, r, m, s]`` is the slot term of (2)
    at ``lambda_d`` (``d`` = candidate size - 1) for rank ``r``, modulation ``m`` on slot
    ``s``; ``lam[d]`` the multiplier. ``state = [depth, best_n, visited, solved]`` (int64)
    and the other arrays hold the walk's position between calls (start: depth 0, cursors and
    ``last`` -1, nothing ``used``, ``symu`` and ``pre`` 0, ``visited = 1`` for the empty
    candidate) and the incumbent (``best_r``, ``best_m``, value ``ub_arr[0]``).
    """
    n_feat = alpha_r.size
    n_mod = sym.shape[1]
    symmin = column_min(sym)
    kp = nu.size
    ub = ub_arr[0]
    a_buf = np.empty(kp)
    n_buf = np.empty(kp)
    m_buf = np.empty(kp, np.int64)
    p_buf = np.zeros(kp)
    g_buf = np.zeros(kp)
    depth = state[0]
    count = 0
    while depth >= 0:
        if count >= max_visits:
            state[0] = depth
            ub_arr[0] = ub
            return False
        if depth == kp:
            depth = backtrack(depth, cur_r, cur_m, prev_last, last, used)
            continue
        c = next_child(cursor[depth] + 1, n_mod, n_feat, sym, symmin, symu[depth], smax, last, used)
        if c < 0:
            depth = backtrack(depth, cur_r, cur_m, prev_last, last, used)
            continue
        m, r = take_child(c, depth, n_feat, cursor, cur_r, cur_m, prev_last, last, used)
        symu[depth + 1] = symu[depth] + sym[r, m]
        for d in range(depth, kp):
            pre[depth + 1, d] = pre[depth, d] + bterm[d, r, m, depth]
        n = depth + 1
        count += 1
        state[2] += 1
        lb = base + pre[n, n - 1] - lam[n - 1] * budget
        if lb < ub - (rtol * ub + atol):
            for s in range(n):
                a_buf[s] = alpha_r[cur_r[s]]
                n_buf[s] = nu[s]
                m_buf[s] = cur_m[s]
            v, _ = _candidate_value(mod, a_buf, n_buf, m_buf, n, budget, p_buf, g_buf)
            for s in range(n):
                v += e_r[cur_r[s]]
            v += base
            state[3] += 1
            if v < ub:
                ub = v
                state[1] = n
                for s in range(n):
                    best_r[s] = cur_r[s]
                    best_m[s] = cur_m[s]
        depth += 1
        cursor[depth] = -1
    state[0] = -1
    ub_arr[0] = ub
    return True


# =============================================================================================
# Python layer
# =============================================================================================
@lru_cache(maxsize=16)
def _ber_model(kind: str, modulations: tuple[str, ...]) -> BerModel:
    """The :data:`BerModel` for a modulation set; exact-model tables built once per set."""
    mcount = len(modulations)
    coef = np.array([bound_coefficients(m) for m in modulations], dtype=np.float64)
    terms = [ber_terms(m) for m in modulations]
    tmax = max(len(w) for w, _ in terms)
    qw = np.zeros((mcount, tmax))
    qb = np.zeros((mcount, tmax))
    nt = np.zeros(mcount, np.int64)
    for j, (w, b) in enumerate(terms):
        order = np.argsort(b)
        qw[j, : len(w)] = w[order]
        qb[j, : len(w)] = b[order]
        nt[j] = len(w)
    if kind == "bound":
        f0 = np.minimum(coef[:, 0], 0.5)
        dummy = np.zeros((mcount, 1))
        return BerModel(
            0, coef[:, 0].copy(), coef[:, 1].copy(), qw, qb, nt, f0, 0.0, 1.0, dummy, dummy
        )
    f0 = np.minimum(0.5 * qw.sum(axis=1), 0.5)
    lnmu = np.linspace(_TABLE_LNMU[0], _TABLE_LNMU[1], _TABLE_SIZE)
    h = float(lnmu[1] - lnmu[0])
    lng = np.zeros((mcount, _TABLE_SIZE))
    hv = np.zeros((mcount, _TABLE_SIZE))
    mod = BerModel(
        1, coef[:, 0].copy(), coef[:, 1].copy(), qw, qb, nt, f0, float(lnmu[0]), h, lng, hv
    )
    for j in range(mcount):
        _build_table(mod, j, lnmu, lng[j], hv[j])
    return mod


def ber_model(problem: Problem) -> BerModel:
    """The Numba BER model (and tables) of ``problem``'s BER model and modulation set."""
    return _ber_model(problem.ber_model, tuple(problem.modulations))


@dataclass(frozen=True)
class SlotModel:
    """(P0) in slot form (module docstring, eq. 1). Arrays are float64 unless noted.

    base: ``sum_i w_i drop_i``. gain_cost [N]: ``e_i``. alpha [N]: ``alpha_i``.
    order [N] int: features by rank ``(-alpha_i, i)``; rank [N] int: its inverse.
    nu [Kp]: ``g/sigma^2`` of the ``Kp = min(N, K)`` strongest subchannels, non-increasing;
    slot_channel [Kp] int: their subchannel indices. symbols [N, M] int: ``S_r(m)``, the
    symbols of the feature of rank ``r`` (rows equal unless ``Q`` is per feature).
    """

    base: float
    gain_cost: np.ndarray
    alpha: np.ndarray
    order: np.ndarray
    rank: np.ndarray
    nu: np.ndarray
    slot_channel: np.ndarray
    symbols: np.ndarray
    symbol_budget: float
    power_budget: float


def slot_model(problem: Problem) -> SlotModel:
    """The slot form of ``problem`` (Lemma 1: only the ``min(N, K)`` strongest slots)."""
    terms = feature_terms(problem)
    w = problem.weights
    alpha = w * terms.slope
    gain_cost = w * (terms.floor - terms.drop)
    order = np.lexsort((np.arange(w.size), -alpha)).astype(np.int64)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    kp = min(problem.n_features, problem.n_subchannels)
    chan = np.lexsort((np.arange(problem.n_subchannels), -problem.gains))[:kp].astype(np.int64)
    return SlotModel(
        base=float(w @ terms.drop),
        gain_cost=gain_cost,
        alpha=alpha,
        order=order,
        rank=rank,
        nu=problem.gains[chan] / problem.noise_power,
        slot_channel=chan,
        symbols=np.ascontiguousarray(problem.symbol_table[order], dtype=np.int64),
        symbol_budget=float(problem.symbol_budget),
        power_budget=float(problem.power_budget),
    )


def h_lower(problem: Problem, modulation: int, ln_mu: float) -> float:
    """Lower bound on ``H_m(mu) = min_gamma f_m(gamma) + mu gamma`` (eq. 2) at ``ln mu``."""
    return float(_h_lower(ber_model(problem), int(modulation), float(ln_mu)))


def dual_bound_terms(problem: Problem, sm: SlotModel, log_lambda: np.ndarray) -> np.ndarray:
    """Slot terms of (2): ``out[d, r, m, s] = e + alpha H_m(lambda_d / (alpha nu_s))``.

    ``log_lambda`` [D] (``-inf`` for ``lambda = 0``); ``r`` is a rank; returns float64
    ``[D, N, M, Kp]``.
    """
    mod = ber_model(problem)
    return _bound_terms(
        mod,
        sm.alpha[sm.order],
        sm.gain_cost[sm.order],
        sm.nu,
        np.asarray(log_lambda, dtype=np.float64),
        len(problem.modulations),
    )


@numba.njit(cache=True)
def _bound_terms(mod, alpha_r, e_r, nu, loglam, n_mod):
    n_feat = alpha_r.size
    kp = nu.size
    out = np.empty((loglam.size, n_feat, n_mod, kp))
    for d in range(loglam.size):
        for r in range(n_feat):
            for m in range(n_mod):
                for s in range(kp):
                    a = alpha_r[r]
                    if a > 0.0 and nu[s] > 0.0:
                        lnmu = loglam[d] - math.log(a) - math.log(nu[s])
                        out[d, r, m, s] = e_r[r] + a * _h_lower(mod, m, lnmu)
                    else:
                        out[d, r, m, s] = e_r[r] + a * mod.f0[m]
    return out


def optimal_power(
    problem: Problem,
    selected: np.ndarray,
    subchannel: np.ndarray,
    modulation: tuple[str, ...] | list[str],
) -> np.ndarray:
    """The optimal powers [n] for a fixed selection, matching and modulations (Lemma 3).

    Exact under the problem's own BER model (both models are convex in the power): sum of
    powers ``P_tot`` whenever some entry has positive weight and gain.
    """
    sel = np.asarray(selected, dtype=np.int64).reshape(-1)
    sub = np.asarray(subchannel, dtype=np.int64).reshape(-1)
    n = sel.size
    if n == 0:
        return np.zeros(0)
    mods = np.array([problem.modulation_index(m) for m in modulation], dtype=np.int64)
    terms = feature_terms(problem)
    alpha = problem.weights[sel] * terms.slope[sel]
    nu = problem.gains[sub] / problem.noise_power
    p = np.zeros(n)
    g = np.zeros(n)
    _candidate_value(ber_model(problem), alpha, nu, mods, n, float(problem.power_budget), p, g)
    return p


def candidate_count(n_features: int, n_subchannels: int, n_modulations: int) -> int:
    """Number of candidates of Lemmas 1-2 (symbol budget ignored).

    ``sum_n C(N, n) sum_{c} multinomial(n; c)^2`` over compositions ``c`` of ``n`` into
    ``M`` class sizes, ``n <= min(N, K)``: choose the features, which of them gets each
    modulation, and which slots each class occupies (the order inside a class is fixed).
    """
    kp = min(n_features, n_subchannels)
    # sum over compositions of (n! / prod c!)^2 = (n!)^2 [x^n] (sum_j x^j / (j!)^2)^M
    series = [1.0 / factorial(j) ** 2 for j in range(kp + 1)]
    poly = [1.0] + [0.0] * kp
    for _ in range(n_modulations):
        new = [0.0] * (kp + 1)
        for a, va in enumerate(poly):
            for b in range(kp + 1 - a):
                new[a + b] += va * series[b]
        poly = new
    total = 0
    for n in range(kp + 1):
        total += comb(n_features, n) * round(factorial(n) ** 2 * poly[n])
    return int(total)


@dataclass(frozen=True)
class ExactResult:
    """Outcome of :func:`solve_exact_result`.

    allocation: the best allocation found (feature order); objective:
    ``optim.distortion.objective`` of it; candidates: candidates visited (Lemmas 1-2), or
    nodes for the B&B engine; solved: candidates given the exact power solve (the rest were
    pruned by the dual bound (2)), -1 for the B&B engine; seconds: wall time; engine:
    "enumerate" or "bnb"; lower_bound: a proven lower bound on the optimum of (P0);
    optimal: whether ``objective`` is proven optimal within the tolerance
    (``objective - lower_bound <= rtol objective + atol``); stopped_by: None when the search
    completed, else the limit that stopped it ("time_limit" or "node_limit": the allocation
    is then the best incumbent, optimal only if the bound proves it).
    """

    allocation: Allocation
    objective: float
    candidates: int
    solved: int
    seconds: float
    engine: str = "enumerate"
    lower_bound: float = 0.0
    optimal: bool = True
    stopped_by: str | None = None

    @property
    def gap(self) -> float:
        """``(objective - lower_bound) / objective`` (0 when ``objective = 0``)."""
        if self.objective <= 0:
            return 0.0
        return max(0.0, (self.objective - self.lower_bound) / self.objective)

    def status(self) -> dict[str, Any]:
        """JSON-ready certificate: optimal, lower_bound, gap, stopped_by."""
        return {
            "optimal": bool(self.optimal),
            "lower_bound": float(self.lower_bound),
            "gap": float(self.gap),
            "stopped_by": self.stopped_by,
        }


def _count_vectors(n: int, n_mod: int, limit: int = 3000) -> list[tuple[int, ...]]:
    """Modulation counts ``(c_0, ..., c_{M-1})`` summing to ``n`` (a non-decreasing pattern
    each): all of them while there are at most ``limit``, else those with at most two
    non-zero counts (two-level patterns, ``O(n M^2)``)."""
    if comb(n + n_mod - 1, n_mod - 1) <= limit:
        out: list[tuple[int, ...]] = []
        stack = [()]
        while stack:
            head = stack.pop()
            if len(head) == n_mod - 1:
                out.append((*head, n - sum(head)))
                continue
            for c in range(n - sum(head) + 1):
                stack.append((*head, c))
        return out
    vecs = set()
    for lo in range(n_mod):
        for hi in range(lo, n_mod):
            for a in range(n + 1):
                v = [0] * n_mod
                v[lo] += a
                v[hi] += n - a
                vecs.add(tuple(v))
    return sorted(vecs)


def _ordered_prior_incumbent(
    problem: Problem, sm: SlotModel, mod: BerModel, deadline: Deadline | None = None
) -> tuple[float, np.ndarray, np.ndarray, int, np.ndarray]:
    """Best ordered-prior candidate per size, solved exactly: (UB, ranks, mods, n, ln lambda).

    Candidates: ranks ``0..n-1`` on slots ``0..n-1`` with non-decreasing bits per symbol
    along the slots (every such pattern while there are at most 3000 per size, else the
    two-level ones), symbol budget met. ``ln lambda[n-1]`` is the multiplier of the best
    candidate of size ``n`` (``-inf``, i.e. ``lambda = 0``, when none or no power is used).
    Only a heuristic: it seeds the incumbent and the multipliers of the bounds. The two-level
    patterns of every size come first (``O(n M^2)`` per size), then the others size by size
    until the ``deadline``: cut short, the bounds stay valid (any ``lambda >= 0`` is), only
    looser.
    """
    kp = sm.nu.size
    n_mod = sm.symbols.shape[1]
    loglam = np.full(max(kp, 1), -np.inf)
    best_value = np.full(max(kp, 1), np.inf)
    alpha_r = sm.alpha[sm.order]
    e_r = sm.gain_cost[sm.order]
    p = np.zeros(max(kp, 1))
    g = np.zeros(max(kp, 1))
    incumbent = [sm.base, np.zeros(max(kp, 1), np.int64), np.zeros(max(kp, 1), np.int64), 0]

    def size_pass(n: int, vectors: list[tuple[int, ...]]) -> None:
        a_n = alpha_r[:n].copy()
        nu_n = sm.nu[:n].copy()
        fixed = sm.base + e_r[:n].sum()
        for counts in vectors:
            mods = np.repeat(np.arange(n_mod, dtype=np.int64), counts)
            if float(sm.symbols[np.arange(n), mods].sum()) > sm.symbol_budget:
                continue
            v, lev = _candidate_value(mod, a_n, nu_n, mods, n, sm.power_budget, p, g)
            v += fixed
            if v < best_value[n - 1]:
                best_value[n - 1] = v
                loglam[n - 1] = lev if np.isfinite(lev) else -np.inf
            if v < incumbent[0]:
                r = np.zeros(max(kp, 1), np.int64)
                r[:n] = np.arange(n)
                mm = np.zeros(max(kp, 1), np.int64)
                mm[:n] = mods
                incumbent[:] = [v, r, mm, n]

    for n in range(1, kp + 1):
        size_pass(n, _count_vectors(n, n_mod, limit=0))  # the two-level patterns
    for n in range(1, kp + 1):
        if deadline is not None and deadline.passed():
            break
        more = [v for v in _count_vectors(n, n_mod) if np.count_nonzero(v) > 2]
        size_pass(n, more)
    for n in range(2, kp + 1):
        if not np.isfinite(best_value[n - 1]):
            loglam[n - 1] = loglam[n - 2]
    ub, r0, m0, n0 = incumbent
    return ub, r0, m0, n0, loglam


ENGINES = ("auto", "enumerate", "bnb")


def solve_exact_result(
    problem: Problem,
    *,
    engine: str = "auto",
    rtol: float = 1e-9,
    atol: float = 1e-300,
    max_candidates: float = 2e8,
    time_limit: float = 60.0,
    node_limit: int | None = None,
) -> ExactResult:
    """The optimum of (P0) with its certificate; see the module docstring for the method.

    Args:
        engine: "auto" | "enumerate" | "bnb". ``enumerate``: the enumeration of the module
            docstring (ConfigError when :func:`candidate_count` exceeds ``max_candidates``);
            ``bnb``: :func:`optim.bnb.solve_bnb`; ``auto`` (default): enumeration up to
            ``max_candidates``, B&B above. Both give the optimum within the tolerance when they
            complete.
        rtol, atol: Tolerance: the returned objective ``J`` satisfies
            ``J <= J* + rtol J + atol`` (``J* >= 0`` the optimum) whenever ``optimal`` is True.
        max_candidates: Enumeration limit (default 2e8: every ``N <= 8``; about 6 s per 1e8
            candidates on one core, far fewer when ``S_max`` binds).
        time_limit: Wall-clock seconds for the whole call (default 60; ``inf``: none), both
            engines. The searches run in slices of about 50 ms with the clock checked between
            them (:mod:`optim.timebox`), so the call ends within about one slice of the limit
            plus the final bound (milliseconds for the enumeration; see
            :func:`optim.bnb.solve_bnb`). Stopped by it, the result is the best allocation
            found with ``stopped_by = "time_limit"``, a proven ``lower_bound`` and ``optimal``
            True only if that bound proves the allocation optimal within the tolerance (a "zero
            gap" answer is kept, not discarded). Numba compilation on the very first use is not
            excluded: see :func:`warm_up`.
        node_limit: Maximum nodes (B&B) or candidates (enumeration) visited; ``stopped_by =
            "node_limit"`` when it stops the search (then as for ``time_limit``).

    Raises:
        ConfigError: Invalid tolerance, engine or limits, or too many candidates for
            ``enumerate``.
    """
    start = time.perf_counter()
    rtol = check_real("rtol", rtol, 0.0, allowed="a finite number >= 0")
    atol = check_real("atol", atol, 0.0, allowed="a finite number >= 0")
    check_limits(time_limit, node_limit)
    deadline = Deadline(time_limit, start)
    key = check_name("engine", engine, ENGINES)
    count = candidate_count(problem.n_features, problem.n_subchannels, len(problem.modulations))
    if key == "bnb" or (key == "auto" and count > max_candidates):
        from optim.bnb import solve_bnb

        left = max(deadline.left(), 1e-9)
        res = solve_bnb(problem, time_limit=left, node_limit=node_limit, rtol=rtol, atol=atol)
        return ExactResult(
            res.allocation, res.objective, res.nodes, -1, time.perf_counter() - start, "bnb",
            res.lower_bound, res.certified, res.stopped_by,
        )  # fmt: skip
    if count > max_candidates:
        raise ConfigError(
            f"exact: {count} candidates (N = {problem.n_features}, K = "
            f"{problem.n_subchannels}) exceed max_candidates = {max_candidates:g}; "
            "use engine='bnb' or optim.bnb.solve_bnb"
        )
    sm = slot_model(problem)
    mod = ber_model(problem)
    kp = sm.nu.size
    if kp == 0:
        alloc = Allocation.send_nothing()
        value = objective(problem, alloc)
        return ExactResult(alloc, value, 1, 0, time.perf_counter() - start, lower_bound=value)
    ub, r0, m0, n0, loglam = _ordered_prior_incumbent(problem, sm, mod, deadline)
    bterm = dual_bound_terms(problem, sm, loglam)
    lam = np.where(np.isfinite(loglam), np.exp(loglam), 0.0)
    alpha_r = sm.alpha[sm.order].copy()
    e_r = sm.gain_cost[sm.order].copy()
    n_mod = sm.symbols.shape[1]
    walk = {
        "state": np.array([0, n0, 1, 0], dtype=np.int64),  # depth, best n, visited, solved
        "cursor": np.full(kp + 1, -1, np.int64),
        "cur_r": np.zeros(kp, np.int64),
        "cur_m": np.zeros(kp, np.int64),
        "prev_last": np.zeros(kp, np.int64),
        "last": np.full(n_mod, -1, np.int64),
        "used": np.zeros(alpha_r.size, np.bool_),
        "symu": np.zeros(kp + 1),
        "pre": np.zeros((kp + 1, kp)),  # pre[depth, d]: partial sum of (2) at lambda_d
    }
    best_r, best_m = r0.copy(), m0.copy()
    ub_arr = np.array([ub])

    def step(units: int) -> bool:
        return _enumerate_walk(
            mod, alpha_r, e_r, sm.nu, sm.symbols, sm.symbol_budget, sm.power_budget, sm.base,
            bterm, lam, float(rtol), float(atol), *walk.values(), best_r, best_m, ub_arr,
            units,
        )  # fmt: skip

    complete, stopped_by = deadline.run(step, first=1 << 14, limit=node_limit)
    state = walk["state"]
    n = int(state[1])
    if n == 0:
        alloc = Allocation.send_nothing()
    else:  # the optimal powers of the winner (the walk keeps no powers)
        p = np.zeros(n)
        g = np.zeros(n)
        a = alpha_r[best_r[:n]].copy()
        _candidate_value(mod, a, sm.nu[:n].copy(), best_m[:n].copy(), n, sm.power_budget, p, g)
        alloc = Allocation(
            sm.order[best_r[:n]],
            sm.slot_channel[:n],
            tuple(problem.modulations[m] for m in best_m[:n]),
            p,
        ).sorted()
    value = objective(problem, alloc)
    tol = rtol * value + atol
    lower = value - tol  # every visited candidate is >= this (solved, or pruned by (2))
    if not complete:
        from optim.bnb import walk_bound

        lower = min(lower, walk_bound(problem, sm, mod, loglam, value, walk, deadline))
    lower = min(max(lower, 0.0), value)
    return ExactResult(
        alloc, value, int(state[2]), int(state[3]), time.perf_counter() - start, "enumerate",
        lower, complete or lower >= value - tol, stopped_by,
    )  # fmt: skip


def solve_exact(
    problem: Problem,
    *,
    engine: str = "auto",
    rtol: float = 1e-9,
    atol: float = 1e-300,
    max_candidates: float = 2e8,
    time_limit: float = 60.0,
    node_limit: int | None = None,
) -> Allocation:
    """The optimal allocation of (P0) (within ``rtol``, default 1e-9 relative).

    Exhaustive enumeration over subsets x injective matchings x modulation patterns within
    ``S_max`` with the optimal power of each candidate, reduced by Lemmas 1-2 and the dual
    bound (2) (module docstring); N = K = 6 takes under 0.1 s, 7 about 0.3 s, 8 up to ~7 s.
    Above ``max_candidates`` (every N >= 9) the certified branch and bound of
    :mod:`optim.bnb`. Options: see :func:`solve_exact_result`.

    When ``time_limit`` (60 s) or ``node_limit`` stops the search before optimality is
    proven, the best allocation found is returned with a :class:`NotProvenOptimalWarning`
    giving the proven gap; :func:`solve_exact_result` (and ``optim.solve``, whose result
    carries it as ``status``) returns that certificate as data.
    """
    result = solve_exact_result(
        problem,
        engine=engine,
        rtol=rtol,
        atol=atol,
        max_candidates=max_candidates,
        time_limit=time_limit,
        node_limit=node_limit,
    )
    if not result.optimal:
        warnings.warn(
            f"exact: stopped by {result.stopped_by} before proving optimality; the allocation "
            f"is the best found, gap {result.gap:.3g} to the lower bound "
            f"{result.lower_bound:.6g}",
            NotProvenOptimalWarning,
            stacklevel=2,
        )
    return result.allocation


class NotProvenOptimalWarning(UserWarning):
    """:func:`solve_exact` returned an allocation whose optimality a limit kept unproven."""


def warm_up() -> None:
    """Compile (or load from Numba's on-disk cache) the enumeration and branch-and-bound
    kernels on a tiny problem, so that a later ``time_limit`` and ``seconds`` exclude it."""
    from optim.bnb import solve_bnb
    from optim.problem import random_problem

    for model in ("bound", "exact"):
        tiny = random_problem(3, 3, seed=0, ber_model=model)
        solve_exact_result(tiny, engine="enumerate", time_limit=1e-9)  # + the stopped path
        solve_exact_result(tiny, engine="enumerate")
        solve_bnb(tiny, node_limit=2)  # its initial (hierarchical) solver and stopped path
        solve_bnb(tiny)


@numba.njit(cache=True)
def _optimal_power_rows(mod, alpha, nu, mods, budget):
    """Rows of :func:`optimal_power` (``mods < 0``: unused entry): (p [T, n], error [T])."""
    rows, n = alpha.shape
    p_out = np.zeros((rows, n))
    err = np.zeros(rows)
    a = np.empty(n)
    v = np.empty(n)
    mm = np.empty(n, np.int64)
    idx = np.empty(n, np.int64)
    p = np.zeros(n)
    g = np.zeros(n)
    for r in range(rows):
        cnt = 0
        for j in range(n):
            if mods[r, j] >= 0:
                a[cnt] = alpha[r, j]
                v[cnt] = nu[r, j]
                mm[cnt] = mods[r, j]
                idx[cnt] = j
                cnt += 1
        if cnt == 0:
            continue
        val, _ = _candidate_value(mod, a, v, mm, cnt, budget, p, g)
        err[r] = val
        for j in range(cnt):
            p_out[r, idx[j]] = p[j]
    return p_out, err


def optimal_power_batch(
    problem: Problem,
    features: np.ndarray,
    subchannel: np.ndarray,
    modulation: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`optimal_power` for allocations given as index arrays [T, n] (modulation indices,
    ``< 0``: unused entry), with decision ``weights`` (default the problem's).

    Returns ``(p [T, n], weighted error [T])``, the error ``sum_j w slope Pb`` at that power.
    """
    w = problem.weights if weights is None else np.asarray(weights, dtype=np.float64)
    f = np.atleast_2d(np.asarray(features, dtype=np.int64))
    mods = np.atleast_2d(np.asarray(modulation, dtype=np.int64))
    sub = np.atleast_2d(np.asarray(subchannel, dtype=np.int64))
    alpha = np.ascontiguousarray((w * feature_terms(problem).slope)[f], dtype=np.float64)
    nu = np.ascontiguousarray(problem.gains[sub] / problem.noise_power, dtype=np.float64)
    return _optimal_power_rows(
        ber_model(problem), alpha, nu, np.ascontiguousarray(mods), float(problem.power_budget)
    )
