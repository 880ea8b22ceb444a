"""The optimal power of one fixed allocation under the problem's BER model (Lemma 3 of
:mod:`optim.exact`), as Numba kernels a per-frame loop can call.

Both BER models are convex and decreasing in the SNR, so for fixed features, subchannels
and modulations ``min sum_s alpha_s f_s(nu_s p_s)`` s.t. ``sum_s p_s <= P`` has its global
optimum at the KKT point ``alpha_s nu_s (-f'_s(nu_s p_s)) = lambda``: water-filling for the
bound ``A exp(-B gamma)``, a safeguarded Newton iteration on ``ln lambda`` (inner Newton on
each ``gamma``) for the exact Gray BER. The kernels take the model as the
:data:`optim.exact.BerModel` tuple of :func:`optim.exact.ber_model` and follow the per-frame
code step for step (same iterations, same stopping rules), so they return the same powers.

- :func:`candidate_value`: ``(sum_s alpha_s f(nu_s p_s), ln lambda)`` at the optimal power;
- :func:`h_lower`: the lower bound on ``H_m(mu) = min_gamma f_m(gamma) + mu gamma`` the dual
  starts price slots with (exact for the bound model, a chord of the tabulated ``H`` for the
  exact one).
"""

from __future__ import annotations

import math

import numpy as np

from optim.batch.twin import shared

_SQRT2 = math.sqrt(2.0)
_LOG_8PI = math.log(8.0 * math.pi)


@shared()
def ber_model_value(mod, m: int, gam: float) -> float:
    """``f_m(gamma)`` clipped to ``[0, 1/2]`` (terms in increasing scale order)."""
    if mod.kind == 0:
        v = mod.A[m] * math.exp(-mod.B[m] * gam)
    else:
        v = 0.0
        r = math.sqrt(gam) / _SQRT2
        for t in range(mod.nt[m]):
            v += mod.qw[m, t] * 0.5 * math.erfc(mod.qb[m, t] * r)
    return min(max(v, 0.0), 0.5)


@shared()
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


@shared()
def _gamma_newton(mod, m: int, lnmu: float, guess: float) -> float:
    """Exact model: the ``gamma > 0`` with ``ln(-f'(gamma)) = ln mu``: geometric bracket
    around ``guess``, then Newton kept inside it (bisection in ``ln gamma`` otherwise)."""
    g = guess if guess > 0.0 and math.isfinite(guess) else 1.0
    lo = g
    hi = g
    d, _ = _dlog(mod, m, lo)
    step = 0.5
    while d < lnmu:
        hi = lo
        lo *= math.exp(-step)
        step *= 2.0
        if lo < 1e-300:
            return lo
        d, _ = _dlog(mod, m, lo)
    d, _ = _dlog(mod, m, hi)
    step = 0.5
    while d > lnmu:
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


@shared()
def _power_bound(mod, alpha, nu, mods, n, budget, p, t, c, idx) -> float:
    """Bound model: water-filling into ``p[:n]``; returns ``ln lambda`` (+inf: no power).
    ``t``, ``c`` float, ``idx`` int: scratch of ``n``."""
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
    """Exact model: KKT power into ``p[:n]`` (``gam``: scratch SNRs, ``la``: scratch ``ln
    alpha nu``); returns ``ln lambda``."""
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
    s0 = 0.0
    for s in range(n):
        if la[s] > -np.inf:
            g = nu[s] * budget / cnt
            d, _ = _dlog(mod, mods[s], g)
            s0 += la[s] + d
            gam[s] = g
    x = s0 / cnt
    lo = -np.inf
    hi = np.inf
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


@shared()
def candidate_value(mod, alpha, nu, mods, n, budget, p, gam, t, c, idx) -> tuple[float, float]:
    """``(sum_s alpha_s f_{m_s}(nu_s p_s), ln lambda)`` at the optimal power of the first
    ``n`` entries (``alpha``, ``nu`` float [>= n], ``mods`` int [>= n]); writes ``p[:n]``
    (``gam``, ``t``, ``c`` float and ``idx`` int: scratch of ``n``)."""
    if mod.kind == 0:
        lev = _power_bound(mod, alpha, nu, mods, n, budget, p, t, c, idx)
    else:
        lev = _power_exact(mod, alpha, nu, mods, n, budget, p, gam, t)
    v = 0.0
    for s in range(n):
        v += alpha[s] * ber_model_value(mod, mods[s], nu[s] * p[s])
    return v, lev


@shared()
def optimal_power_row(mod, alpha, nu, mods, n, budget, p_out, a, v, mm, idx, p, g, t, c,
                      ci) -> float:  # fmt: skip
    """Optimal power of one allocation row ``[:n]`` (``mods < 0``: unused entry, no power)
    into ``p_out``; returns its weighted error. ``a``, ``v``, ``mm``, ``idx``, ``p``, ``g``,
    ``t``, ``c``, ``ci``: scratch of the row's width."""
    cnt = 0
    for j in range(n):
        p_out[j] = 0.0
        if mods[j] >= 0:
            a[cnt] = alpha[j]
            v[cnt] = nu[j]
            mm[cnt] = mods[j]
            idx[cnt] = j
            cnt += 1
    if cnt == 0:
        return 0.0
    val, _ = candidate_value(mod, a, v, mm, cnt, budget, p, g, t, c, ci)
    for j in range(cnt):
        p_out[idx[j]] = p[j]
    return val


@shared()
def h_lower(mod, m: int, lnmu: float) -> float:
    """A lower bound on ``H_m(mu)``: exact for the bound model, chord for the exact one."""
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
    frac = math.expm1((x - k) * mod.h) / math.expm1(mod.h)
    return mod.H[m, k] + (mod.H[m, k + 1] - mod.H[m, k]) * frac
