"""The optimal power of a fixed assignment (features, subchannels, modulations) under the
problem's BER model.

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

The compiled kernels are written once for both targets (:func:`optim.twin.shared`): the
per-frame searches call :func:`candidate_value`, which allocates its scratch; the batched CPU
loop over frames and the GPU twin call :func:`candidate_value_into` and
:func:`optimal_power_row` with scratch from their per-frame workspace. So a batched frame and
:func:`optimal_power` run the same instructions and return the same powers, bit for bit.

Examples:
    >>> import numpy as np
    >>> from optim.problem import random_problem
    >>> p = random_problem(4, 4, seed=2)
    >>> power = optimal_power(p, [0, 1], [0, 1], [p.modulations[0]] * 2)
    >>> bool(np.isclose(power.sum(), p.power_budget))
    True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np

from optim.ber_model import ber_model, ber_value, log_neg_slope, solve_gamma
from optim.feature_terms import feature_terms
from optim.twin import shared

if TYPE_CHECKING:
    from optim.problem import Problem

__all__ = [
    "candidate_value",
    "candidate_value_into",
    "optimal_power",
    "optimal_power_batch",
    "optimal_power_row",
    "used_entries",
]


@shared()
def _power_bound(mod, alpha, nu, mods, n, budget, p, t, c, idx) -> float:
    """Bound-model water-filling; writes ``p[:n]``, returns ``ln lambda`` (+inf: no power).
    ``t``, ``c`` float and ``idx`` int: scratch of ``n``."""
    for s in range(n):
        p[s] = 0.0
    if budget <= 0.0:
        return np.inf
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
    for a1 in range(1, cnt):  # insertion sort by decreasing t
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


@shared()
def _power_exact(mod, alpha, nu, mods, n, budget, p, gam, la) -> float:
    """KKT power of the exact model (Lemma 3); writes ``p[:n]``; returns ``ln lambda``.

    Outer: safeguarded Newton on ``s = ln lambda`` for ``G(s) = sum_s gamma_s(s)/nu_s - P``
    (decreasing), ``dgamma/ds = 1/D'(gamma)``. Inner: :func:`solve_gamma` warm-started.
    ``gam``: scratch SNRs, ``la``: scratch ``ln alpha nu``, both of ``n``.
    """
    for s in range(n):
        p[s] = 0.0
        gam[s] = 0.0
    if budget <= 0.0:
        return np.inf
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
            d, _ = log_neg_slope(mod, mods[s], g)
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
                g = solve_gamma(mod, m, x - la[s], gam[s])
                gam[s] = g
                _, dd = log_neg_slope(mod, m, g)
                gsum += g / nu[s]
                dsum += 1.0 / (dd * nu[s])
        r = gsum - budget
        if abs(r) <= 1e-14 * budget:
            break
        if r > 0.0:
            lo = x
        else:
            hi = x
        # dsum == 0: every slope underflowed (SNRs near 0); fall back on the bracket
        xn = x - r / dsum if dsum != 0.0 else math.nan
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


@shared()
def candidate_value_into(mod, alpha, nu, mods, n, budget, p, gam, t, c, idx) -> tuple[float, float]:
    """:func:`candidate_value` with caller-owned scratch (``t``, ``c`` float and ``idx`` int,
    of ``>= n``), so it allocates nothing: the form the batched CPU and GPU kernels call."""
    if mod.kind == 0:
        lev = _power_bound(mod, alpha, nu, mods, n, budget, p, t, c, idx)
    else:
        lev = _power_exact(mod, alpha, nu, mods, n, budget, p, gam, t)
    v = 0.0
    for s in range(n):
        v += alpha[s] * ber_value(mod, mods[s], nu[s] * p[s])
    return v, lev


@numba.njit(cache=True)
def candidate_value(mod, alpha, nu, mods, n, budget, p, gam) -> tuple[float, float]:
    """(``sum_s alpha_s f_{m_s}(nu_s p_s)`` at the optimal power of the first ``n`` entries,
    ``ln lambda``); writes ``p[:n]`` (``gam``: scratch of ``n``)."""
    t = np.empty(n)
    c = np.empty(n)
    idx = np.empty(n, np.int64)
    return candidate_value_into(mod, alpha, nu, mods, n, budget, p, gam, t, c, idx)


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
    candidate_value(ber_model(problem), alpha, nu, mods, n, float(problem.power_budget), p, g)
    return p


@shared()
def used_entries(alpha, nu, mods, n, p_out, a, v, mm, idx) -> int:
    """Clear ``p_out[:n]`` and gather a row's used entries (``mods >= 0``) into ``a``, ``v``,
    ``mm`` (``alpha``, ``nu``, modulation), their positions into ``idx``; returns their
    count. The form :func:`candidate_value_into` prices."""
    cnt = 0
    for j in range(n):
        p_out[j] = 0.0
        if mods[j] >= 0:
            a[cnt] = alpha[j]
            v[cnt] = nu[j]
            mm[cnt] = mods[j]
            idx[cnt] = j
            cnt += 1
    return cnt


@shared()
def optimal_power_row(mod, alpha, nu, mods, n, budget, p_out, a, v, mm, idx, p, g, t, c,
                      ci) -> float:  # fmt: skip
    """Optimal power of one allocation row ``[:n]`` (``mods < 0``: unused entry, no power)
    into ``p_out``; returns its weighted error. ``a``, ``v``, ``mm``, ``idx``, ``p``, ``g``,
    ``t``, ``c``, ``ci``: scratch of the row's width."""
    cnt = used_entries(alpha, nu, mods, n, p_out, a, v, mm, idx)
    if cnt == 0:
        return 0.0
    val, _ = candidate_value_into(mod, a, v, mm, cnt, budget, p, g, t, c, ci)
    for j in range(cnt):
        p_out[idx[j]] = p[j]
    return val


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
    t = np.empty(n)
    c = np.empty(n)
    ci = np.empty(n, np.int64)
    for r in range(rows):
        err[r] = optimal_power_row(mod, alpha[r], nu[r], mods[r], n, budget, p_out[r], a, v, mm,
                                   idx, p, g, t, c, ci)  # fmt: skip
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
