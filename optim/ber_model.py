"""The compiled BER model of a problem: ``f_m(gamma)`` and the dual function ``H_m`` (Numba).

``f_m`` is the problem's BER model of modulation ``m`` at per-symbol SNR ``gamma``: the bound
``A_m exp(-B_m gamma)`` (``bound``) or the exact Gray BER ``sum_t w_t Q(b_t sqrt(gamma))``
(``exact``, :func:`channels.theory.ber_awgn`). Both are convex and decreasing in ``gamma``
(:mod:`optim.optimal_power`, Lemma 3). ``H_m(mu) = min_{gamma >= 0} f_m(gamma) + mu gamma``
is the term of the dual bound (:mod:`optim.slots`, eq. 2): closed form for the bound model,
tabulated on a fine log grid of ``mu`` for the exact one, where by concavity the chord between
two grid points is below ``H``, below the grid ``H >= 0`` and above it ``H >= H(mu_max)``, so
the interpolant :func:`h_bound` is a valid lower bound. :func:`ber_lower` bounds the exact
``f_m`` itself from below by its tangents on a fine log grid of ``gamma`` (``f_m`` is convex),
for the batched solver's scoring to skip candidates that cannot win.

:data:`BerModel` holds it all as a Numba-friendly named tuple; the scalar kernels here take
it as their first argument and are called from the other compiled searches of :mod:`optim`.
:func:`ber_value`, :func:`log_neg_slope`, :func:`solve_gamma` and :func:`h_bound` are compiled
for the CPU and, through :func:`optim.twin.shared`, as CUDA device functions from the same
source, for the batched GPU solver.

Examples:
    >>> from optim.problem import random_problem
    >>> p = random_problem(3, 3, seed=0, ber_model="bound")
    >>> mod = ber_model(p)
    >>> bool(mod.kind == 0 and ber_value(mod, 0, 0.0) == min(mod.A[0], 0.5))
    True
"""

from __future__ import annotations

import math
from collections import namedtuple
from functools import lru_cache
from typing import TYPE_CHECKING

import numba
import numpy as np

from channels.coded import is_coded
from channels.theory import ber_terms, bound_coefficients
from optim.term_sums import q_terms_negligible, slope_terms_negligible
from optim.twin import shared

if TYPE_CHECKING:
    from optim.problem import Problem

__all__ = [
    "BerModel",
    "ber_model",
    "ber_lower",
    "bound_applies",
    "dual_term",
    "dual_terms_into",
    "ber_value",
    "gamma_star",
    "h_at",
    "h_bound",
    "h_bound_eh",
    "h_cell",
    "h_lower",
    "log_marginal",
    "log_neg_slope",
    "lower_sum_exceeds",
    "solve_gamma",
    "tangents_pay",
]

_SQRT2 = math.sqrt(2.0)

_LOG_8PI = math.log(8.0 * math.pi)

_TABLE_LNMU = (math.log(1e-150), math.log(1e15))

_TABLE_SIZE = 60_001

_TANGENT_LNG = (math.log(1e-9), math.log(1e6))

_TANGENT_STEP = 1.0 / 128.0

BerModel = namedtuple(
    "BerModel",
    ["kind", "A", "B", "qw", "qb", "nt", "f0", "lnmu0", "h", "lng", "H", "lng0", "dlng", "tg",
     "tf", "td"],
)  # fmt: skip
"""Numba-friendly BER model of one problem, ``M`` modulations in the problem's order.

kind: 0 bound, 1 exact. A, B [M]: bound coefficients. qw, qb [M, T]: exact BER terms
``sum_t qw Q(qb sqrt(gamma))`` (``qb`` increasing, zero-padded), nt [M] term counts.
f0 [M]: ``f(0)``. lnmu0, h: log-grid ``ln mu_k = lnmu0 + k h``; lng [M, G]: ``ln gamma*(mu_k)``;
H [M, G]: ``H(mu_k)`` (slightly lowered), both ``[M, 1]`` dummies for the bound model.
lng0, dlng: log-grid of SNRs ``ln gamma_k = lng0 + k dlng``; tg [G']: ``gamma_k``;
tf, td [M, G']: ``f(gamma_k)`` and ``f'(gamma_k)``, the tangents of :func:`ber_lower`
(``[1]`` and ``[M, 1]`` dummies for the bound model; a row of zeros where ``f`` is not
convex on the grid).
"""


@shared()
def ber_value(mod, m: int, gam: float) -> float:
    """``f_m(gamma)`` clipped to [0, 1/2], as :func:`optim.distortion.ber_of`."""
    if mod.kind == 0:
        v = mod.A[m] * math.exp(-mod.B[m] * gam)
    else:
        v = 0.0
        r = math.sqrt(gam) / _SQRT2
        for t in range(mod.nt[m]):
            q = math.erfc(mod.qb[m, t] * r)
            v += mod.qw[m, t] * 0.5 * q
            if q_terms_negligible(mod.qw, m, t, mod.nt[m], q, v):
                break  # the rest cannot change v (optim.term_sums)
    return min(max(v, 0.0), 0.5)


@shared()
def log_neg_slope(mod, m: int, gam: float) -> tuple[float, float]:
    """Exact model: ``D = ln(-f'(gamma))`` and ``dD/dgamma = -S2 / (2 gamma S1)``; at
    ``gamma <= 0`` (an SNR that underflowed) their limits ``(+inf, -inf)``."""
    if gam <= 0.0:
        return math.inf, -math.inf
    b0 = mod.qb[m, 0]
    s1 = 0.0
    s2 = 0.0
    for t in range(mod.nt[m]):
        bt = mod.qb[m, t]
        x = -0.5 * (bt * bt - b0 * b0) * gam
        big_e = 1.0 if x == 0.0 else math.exp(x)  # exp(+-0) is 1 exactly
        e = mod.qw[m, t] * bt * big_e
        s1 += e
        s2 += e * (1.0 + bt * bt * gam)
        if slope_terms_negligible(mod.qw, mod.qb, m, t, mod.nt[m], big_e, gam, min(s1, s2)):
            break  # the rest cannot change s1 or s2 (optim.term_sums)
    d = -0.5 * b0 * b0 * gam - 0.5 * (_LOG_8PI + math.log(gam)) + math.log(s1)
    return d, -s2 / (2.0 * gam * s1)


@shared()
def solve_gamma(mod, m: int, lnmu: float, guess: float) -> float:
    """Exact model: the ``gamma > 0`` with ``ln(-f'(gamma)) = ln mu`` (``D`` is decreasing).

    Bracket by geometric expansion around ``guess``, then Newton steps kept inside the
    bracket (bisection in ``ln gamma`` otherwise); relative accuracy ~1e-15. Newton stops as
    soon as its step is below ``1e-15 gamma`` (a zero residual included), before the
    bracket's safeguard: a step that small has reached the root to rounding, and the
    safeguard would otherwise bisect the bracket down to ``1e-15`` for nothing. The point
    Newton starts from was evaluated while bracketing, so its values are kept, not
    recomputed.
    """
    g = guess if guess > 0.0 and math.isfinite(guess) else 1.0
    lo = g
    hi = g
    d, dd = log_neg_slope(mod, m, lo)
    x_d = d  # D and D' at the point Newton starts from: min(max(g, lo), hi)
    x_dd = dd
    step = 0.5
    expanded = False
    while d < lnmu:  # lo too large
        hi = lo
        x_d = d
        x_dd = dd
        lo *= math.exp(-step)
        step *= 2.0
        if lo < 1e-300:
            return lo
        d, dd = log_neg_slope(mod, m, lo)
        expanded = True
    step = 0.5
    while not expanded and d > lnmu:  # hi too small
        lo = hi
        x_d = d
        x_dd = dd
        hi *= math.exp(step)
        step *= 2.0
        d, dd = log_neg_slope(mod, m, hi)
    x = min(max(g, lo), hi)
    d = x_d
    dd = x_dd
    for it in range(200):
        if it > 0:
            d, dd = log_neg_slope(mod, m, x)
        r = d - lnmu
        if r > 0.0:
            lo = x
        else:
            hi = x
        xn = x - r / dd
        if abs(xn - x) <= 1e-15 * x:
            return xn
        if not (xn > lo and xn < hi):
            xn = math.sqrt(lo * hi)
        if abs(xn - x) <= 1e-15 * x or hi - lo <= 1e-15 * hi:
            return xn
        x = xn
    return x


@numba.njit(cache=True)
def gamma_star(mod, m: int, lnmu: float) -> float:
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
    return solve_gamma(mod, m, lnmu, guess)


@shared()
def h_bound(mod, m: int, lnmu: float) -> float:
    """A lower bound on ``H_m(mu)`` of (2): exact for the bound model, chord for the exact one."""
    if mod.kind == 0:  # the bound model's closed form has no grid: no expm1(h) to compute
        return h_bound_eh(mod, m, lnmu, 1.0)
    return h_bound_eh(mod, m, lnmu, math.expm1(mod.h))


@shared()
def h_bound_eh(mod, m: int, lnmu: float, eh: float) -> float:
    """:func:`h_bound` with ``eh = expm1(mod.h)`` (:func:`h_cell`) given, for a caller that
    evaluates many bounds with one model and computes it once (the bound model ignores it)."""
    if lnmu == np.inf:
        return mod.f0[m]
    if mod.kind == 0:
        a = mod.A[m]
        ab = math.log(a * mod.B[m])
        if lnmu >= ab:
            return a
        mu = math.exp(lnmu)
        return (mu / mod.B[m]) * (1.0 + ab - lnmu)
    k, frac = h_cell(mod, lnmu, eh)
    return h_at(mod, m, k, frac)


@shared()
def h_cell(mod, lnmu: float, eh: float) -> tuple[int, float]:
    """Where ``ln mu`` falls on the exact model's grid of ``H`` (``ln mu_k = lnmu0 + k h``):
    the cell ``k <= x = (ln mu - lnmu0) / h < k + 1`` and the position in it measured in
    ``mu``, ``frac = (e^{(x - k) h} - 1) / (e^h - 1)`` (``eh``: ``expm1(h)``, passed in so that a
    caller computes it once); ``k = -1`` below the grid, ``k = G - 1`` at or beyond its last
    point (``frac`` 0). The same for every modulation: a caller that needs ``H_m`` of all ``m``
    at one ``mu`` locates it once and calls :func:`h_at` per ``m``."""
    x = (lnmu - mod.lnmu0) / mod.h
    g_count = mod.H.shape[1]
    if x >= g_count - 1:
        return g_count - 1, 0.0
    if x < 0.0:
        return -1, 0.0
    k = int(x)
    return k, math.expm1((x - k) * mod.h) / eh


@shared()
def h_at(mod, m: int, k: int, frac: float) -> float:
    """The exact model's chord of ``H_m`` at the position ``(k, frac)`` of :func:`h_cell`:
    ``H_m(mu_k) + (H_m(mu_{k+1}) - H_m(mu_k)) frac``, 0 below the grid, the last value beyond
    it (``H_m`` is concave and increasing in ``mu``, so the chord lies below it)."""
    g_count = mod.H.shape[1]
    if k < 0:
        return 0.0
    if k >= g_count - 1:
        return mod.H[m, g_count - 1]
    return mod.H[m, k] + (mod.H[m, k + 1] - mod.H[m, k]) * frac


def _tangents_off() -> bool:
    """GPU twin of :func:`tangents_pay`: the threads of a warp price a candidate together
    whenever one of them must, so the bounds would rarely spare a warp any work."""
    return False


@shared(cuda=_tangents_off, inline="always")
def tangents_pay() -> bool:
    """Whether the batched solver bounds a candidate by :func:`ber_lower` before computing its
    BER: on the CPU (``True``), not on the GPU (its twin answers ``False``)."""
    return True


@shared()
def ber_lower(mod, m: int, gam: float) -> float:
    """A lower bound on the exact ``f_m(gamma)``: the larger of its tangents at the two grid
    SNRs around ``gamma`` (the first or the last one outside the grid), clipped to [0, 1/2].

    ``f_m`` is convex (Lemma 3 of :mod:`optim.optimal_power`), so every tangent lies below it:
    ``f(gamma) >= f(gamma_k) + f'(gamma_k) (gamma - gamma_k)``. Between two grid points
    ``dlng = 1/128`` apart the gap is about ``f''(gamma) (gamma dlng / 4)^2 / 2``: a few 1e-4 of
    ``f`` where the BER is ~1e-6, so the bound is nearly the value, at the cost of one ``log``
    instead of one ``erfc`` per Q-term. Exact model only (``kind == 1``)."""
    g_count = mod.tg.size
    x = (math.log(gam) - mod.lng0) / mod.dlng if gam > 0.0 else -1.0
    if not x > 0.0:
        k = 0
    elif x >= g_count - 1:
        k = g_count - 1
    else:
        k = int(x)
    v = mod.tf[m, k] + mod.td[m, k] * (gam - mod.tg[k])
    if k + 1 < g_count:
        v = max(v, mod.tf[m, k + 1] + mod.td[m, k + 1] * (gam - mod.tg[k + 1]))
    if not v > 0.0:
        return 0.0
    return min(v, 0.5)


@shared()
def lower_sum_exceeds(mod, pat, width, rate, p, base, a, b, limit) -> bool:
    """Whether ``base + sum_j (a_j + b_j f_{pat_j}(rate_j p_j))`` over a row's used entries
    (``pat[:width] >= 0``) provably exceeds ``limit``: its lower bound with :func:`ber_lower`
    for each ``f`` (``b >= 0``) does, by more than ``1e-9`` of the terms' magnitude (the bound
    holds in real arithmetic; the margin covers the rounding of the tables, the bound and the
    value it stands for). How the batched solver skips computing a candidate's BER."""
    acc = base
    mag = abs(base)
    for j in range(width):
        m = pat[j]
        if m >= 0:
            term = a[j] + b[j] * ber_lower(mod, m, rate[j] * p[j])
            acc += term
            mag += abs(term)
    return acc > limit + 1e-9 * mag


@shared()
def bound_applies(mod) -> bool:
    """Whether ``H`` of :func:`h_bound` is that of the BER as the solvers evaluate it, clipped
    to [0, 1/2]: only while the clip never binds (``A_m <= 1/2`` for the bound, ``f_m(0) <=
    1/2`` for the exact model; true of every plain modulation). The dual bounds that let the
    batched solver skip candidates are used only then."""
    for m in range(mod.A.size):
        if mod.kind == 0:
            if mod.A[m] > 0.5:
                return False
        else:
            half = 0.0
            for t in range(mod.nt[m]):
                half += 0.5 * mod.qw[m, t]
            if half > 0.5 * (1.0 + 1e-12):
                return False
    return True


@shared()
def log_marginal(mod, m: int, alpha: float, nu: float, gam: float) -> float:
    """``ln(alpha nu |f_m'(gamma)|)``: the power multiplier ``lambda`` at which an entry of
    weight ``alpha`` and SNR per unit power ``nu`` at SNR ``gamma > 0`` meets the KKT condition
    (all such values are equal at the optimal power of an allocation)."""
    if mod.kind == 0:
        d = math.log(mod.A[m] * mod.B[m]) - mod.B[m] * gam
    else:
        d, _ = log_neg_slope(mod, m, gam)
    return math.log(alpha) + math.log(nu) + d


@shared()
def dual_terms_into(mod, alpha: float, nu: float, lnlam: float, base: float, out) -> None:  # noqa: ANN001
    """``out[m] = base + dual_term(mod, m, alpha, nu, lnlam)`` for every modulation ``m <
    out.size``, the same values with the logarithms and (exact model) the grid position of
    ``mu = lambda / (alpha nu)`` taken once for all ``m``."""
    if alpha > 0.0 and nu > 0.0:
        lnmu = lnlam - math.log(alpha) - math.log(nu)
        if mod.kind == 1 and lnmu != np.inf:
            k, frac = h_cell(mod, lnmu, math.expm1(mod.h))
            for m in range(out.size):
                out[m] = base + alpha * h_at(mod, m, k, frac)
        else:
            for m in range(out.size):
                out[m] = base + alpha * h_bound(mod, m, lnmu)
    else:
        for m in range(out.size):
            out[m] = base + alpha * mod.f0[m]


@shared()
def dual_term(mod, m: int, alpha: float, nu: float, lnlam: float) -> float:
    """``alpha H_m(lambda / (alpha nu))`` (:func:`h_bound`), the term of one sent entry in the
    dual bound of eq. 2 of :mod:`optim.slots`: at most ``alpha f_m(nu p) + lambda p`` for every
    power ``p >= 0``; ``alpha f_m(0)`` where ``alpha nu = 0``."""
    if alpha > 0.0 and nu > 0.0:
        return alpha * h_bound(mod, m, lnlam - math.log(alpha) - math.log(nu))
    return alpha * mod.f0[m]


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
        gam = solve_gamma(mod, m, lnmu[k], guess)
        lng[k] = math.log(gam)
        f = ber_value(mod, m, gam)
        h = f + math.exp(lnmu[k]) * gam
        hv[k] = h - 1e-14 * h - 1e-300  # safety margin for rounding: stays a lower bound
        guess = gam
    return None


@numba.njit(cache=True)
def _build_tangents(mod, m: int, tg: np.ndarray, tf: np.ndarray, td: np.ndarray) -> None:
    """Fill ``tf = f(tg)`` and ``td = f'(tg)`` (``-exp(ln(-f'))``); zeros where the values do
    not show ``f`` convex on the grid (slopes not increasing, or a tangent above a neighbour's
    value), so that :func:`ber_lower` falls back on the trivial bound 0."""
    g_count = tg.size
    for k in range(g_count):
        tf[k] = ber_value(mod, m, tg[k])
        d, _ = log_neg_slope(mod, m, tg[k])
        td[k] = -math.exp(d)
    for k in range(g_count - 1):
        ahead = tf[k] + td[k] * (tg[k + 1] - tg[k])
        behind = tf[k + 1] + td[k + 1] * (tg[k] - tg[k + 1])
        tol = 1e-12 * (tf[k] + tf[k + 1]) + 1e-300
        if td[k + 1] < td[k] or ahead > tf[k + 1] + tol or behind > tf[k] + tol:
            for j in range(g_count):
                tf[j] = 0.0
                td[j] = 0.0
            return None
    return None


@lru_cache(maxsize=16)
def _ber_model(kind: str, modulations: tuple[str, ...]) -> BerModel:
    """The :data:`BerModel` for a modulation set; exact-model tables built once per set."""
    mcount = len(modulations)
    coef = np.array([bound_coefficients(m) for m in modulations], dtype=np.float64)
    terms = [_terms(m) for m in modulations]
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
            0, coef[:, 0].copy(), coef[:, 1].copy(), qw, qb, nt, f0, 0.0, 1.0, dummy, dummy, 0.0,
            1.0, np.zeros(1), dummy, dummy,
        )  # fmt: skip
    f0 = np.minimum(0.5 * qw.sum(axis=1), 0.5)
    lnmu = np.linspace(_TABLE_LNMU[0], _TABLE_LNMU[1], _TABLE_SIZE)
    h = float(lnmu[1] - lnmu[0])
    lng = np.zeros((mcount, _TABLE_SIZE))
    hv = np.zeros((mcount, _TABLE_SIZE))
    t_count = round((_TANGENT_LNG[1] - _TANGENT_LNG[0]) / _TANGENT_STEP) + 1
    tg = np.exp(_TANGENT_LNG[0] + _TANGENT_STEP * np.arange(t_count))
    tf = np.zeros((mcount, t_count))
    td = np.zeros((mcount, t_count))
    mod = BerModel(
        1, coef[:, 0].copy(), coef[:, 1].copy(), qw, qb, nt, f0, float(lnmu[0]), h, lng, hv,
        _TANGENT_LNG[0], _TANGENT_STEP, tg, tf, td,
    )  # fmt: skip
    for j in range(mcount):
        _build_table(mod, j, lnmu, lng[j], hv[j])
        _build_tangents(mod, j, tg, tf[j], td[j])
    return mod


def ber_model(problem: Problem) -> BerModel:
    """The Numba BER model (and tables) of ``problem``'s BER model and modulation set."""
    return _ber_model(problem.ber_model, tuple(problem.modulations))


def h_lower(problem: Problem, modulation: int, ln_mu: float) -> float:
    """Lower bound on ``H_m(mu) = min_gamma f_m(gamma) + mu gamma`` (eq. 2) at ``ln mu``."""
    return float(h_bound(ber_model(problem), int(modulation), float(ln_mu)))


def _terms(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact-BER Q-terms of a modulation; a coded entry (bound model only) gets a null term."""
    return (np.zeros(1), np.ones(1)) if is_coded(name) else ber_terms(name)
