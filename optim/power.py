"""SP4: power allocation for fixed selection, matching and modulations (docs/method.md §5.4).

With the exponential BER bound ``Pb <= A_m exp(-B_m gamma)``, ``gamma = g_k p / sigma^2``, the
part of (P0) that depends on power is::

    min_p  sum_i alpha_i exp(-c_i p_i)   s.t.  sum_i p_i <= P_tot,  p_i >= 0
    alpha_i = w_i slope_i A_{m_i}  (slope_i = L Delta^2 (4^Q - 1)/3 in the absolute model)
    c_i     = B_{m_i} g_{k(i)} / sigma^2

a convex problem. Its KKT conditions (multiplier ``lambda`` on the budget) give the
water-filling solution::

    p_i* = max(0, ln(alpha_i c_i / lambda) / c_i),   sum_i p_i* = P_tot   (budget active)

Entries with ``alpha_i c_i = 0`` (zero weight, zero gain) gain nothing from power and get
``p_i = 0``; when every entry is such, or ``P_tot = 0``, ``p = 0``.

Solvers (all batched over leading dimensions ``[..., n]`` except cvxpy):

- ``"closed-form"`` (default): exact water level from the sorted active set, O(n log n);
- ``"bisection"``: bisection on ``nu = ln lambda`` (the textbook variant; same answer);
- ``"cvxpy"``: the same problem in cvxpy (exponential cone; Clarabel, SCS as fallback), a
  cross-check and a selectable solver (about 1000x slower).

:func:`kkt_residuals` measures stationarity, dual feasibility, complementary slackness and
primal feasibility of any candidate ``p``. :func:`refine_power` improves powers under the
problem's own BER model (the exact Q-function BER is not an exponential): successive
exponential fits matching value and slope at the current point, each solved by water-filling,
accepted only when the objective decreases (so monotone, stopping at a KKT point of the exact
problem when it converges).

Examples:
    >>> import numpy as np
    >>> p = water_filling(np.array([1.0, 1.0]), np.array([1.0, 1.0]), 2.0)
    >>> np.allclose(p, [1.0, 1.0])
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from channels.errors import ConfigError
from channels.theory import bound_coefficients

if TYPE_CHECKING:
    from optim.problem import Problem

POWER_SOLVERS = ("closed-form", "bisection", "cvxpy")


def _prepare(
    alpha: np.ndarray | None, c: np.ndarray, log_alpha: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, c, useful): ``t = ln(alpha c)`` (-inf where useless), broadcast to one shape."""
    c = np.asarray(c, dtype=np.float64)
    if log_alpha is None:
        alpha = np.asarray(alpha, dtype=np.float64)
        alpha, c = np.broadcast_arrays(alpha, c)
        useful = (alpha > 0) & (c > 0) & np.isfinite(alpha) & np.isfinite(c)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(useful, np.log(np.where(useful, alpha, 1.0)), -np.inf)
    else:
        log_alpha = np.asarray(log_alpha, dtype=np.float64)
        log_alpha, c = np.broadcast_arrays(log_alpha, c)
        useful = np.isfinite(log_alpha) & (c > 0) & np.isfinite(c)
        t = np.where(useful, log_alpha, -np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(useful, t + np.log(np.where(useful, c, 1.0)), -np.inf)
    return t, c, useful


def water_filling(
    alpha: np.ndarray | None,
    c: np.ndarray,
    budget: float | np.ndarray,
    method: str = "closed-form",
    *,
    log_alpha: np.ndarray | None = None,
    tol: float = 1e-13,
    max_iter: int = 200,
) -> np.ndarray:
    """Minimise ``sum_i alpha_i exp(-c_i p_i)`` s.t. ``sum_i p_i <= budget``, ``p >= 0``.

    Args:
        alpha: float array [..., n], >= 0 (or None with ``log_alpha`` given).
        c: float array [..., n], >= 0 (exponent rates).
        budget: float or array [...] >= 0 (``P_tot``).
        method: "closed-form" | "bisection".
        log_alpha: optional ``ln alpha`` instead of ``alpha`` (avoids overflow in fits).
        tol: bisection stopping rule on ``nu = ln lambda`` (with ``max_iter``).
        max_iter: bisection stopping rule on ``nu = ln lambda`` (with ``tol``).

    Returns:
        The powers ``p``, float64 array [..., n], with ``sum p = budget`` whenever some entry
        has ``alpha c > 0`` and ``budget > 0``, else zeros.
    """
    t, c, useful = _prepare(alpha, c, log_alpha)
    budget = np.asarray(budget, dtype=np.float64)
    if t.shape[-1:] == (0,) or t.size == 0:
        return np.zeros(t.shape)
    if method == "closed-form":
        p = _closed_form_fast(t, c, budget)
    elif method == "bisection":
        nu = _level_bisection(t, c, useful, budget, tol, max_iter)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            safe_c = np.where(useful, c, 1.0)
            p = np.where(useful, np.maximum(0.0, (t - nu[..., None]) / safe_c), 0.0)
        p = np.where(np.isfinite(p), p, 0.0)
    else:
        raise ConfigError(f"power solver: {method!r} is not one of closed-form, bisection")
    # Rounding may overshoot the budget by a few ulps: scale back onto it.
    total = p.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(total > budget, budget / np.where(total > 0, total, 1.0), 1.0)
    return p * scale[..., None]


def _closed_form_fast(t: np.ndarray, c: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Exact water-filling through the Numba row kernel :func:`optim.kernels.water_fill_rows`.

    Its NumPy reference (same result to rounding) lives with the tests, in
    ``tests/optim/reference.py``.
    """
    from optim.kernels import contiguous, water_fill_rows  # Numba loads on first use

    n = t.shape[-1]
    b = np.broadcast_to(budget, t.shape[:-1]).reshape(-1)
    p = water_fill_rows(
        contiguous(t.reshape(-1, n)),
        contiguous(np.broadcast_to(c, t.shape).reshape(-1, n)),
        contiguous(b),
    )
    return p.reshape(t.shape)


def _level_bisection(
    t: np.ndarray, c: np.ndarray, useful: np.ndarray, budget: np.ndarray, tol: float, max_iter: int
) -> np.ndarray:
    """Water level by bisection on ``nu``: ``f(nu) = sum max(0, (t - nu)/c)`` is decreasing."""
    budget = np.broadcast_to(budget, t.shape[:-1])
    any_useful = useful.any(axis=-1)
    safe_c = np.where(useful, c, 1.0)
    hi = np.where(any_useful, np.max(np.where(useful, t, -np.inf), axis=-1), 0.0)
    lo = np.where(any_useful, np.min(np.where(useful, t - c * budget[..., None], np.inf), -1), 0.0)
    lo = np.minimum(lo, hi) - 1.0
    for _ in range(max_iter):
        mid = 0.5 * (lo + hi)
        total = np.where(useful, np.maximum(0.0, (t - mid[..., None]) / safe_c), 0.0).sum(-1)
        big = total > budget
        lo = np.where(big, mid, lo)
        hi = np.where(big, hi, mid)
        if np.all(hi - lo <= tol * np.maximum(1.0, np.abs(hi))):
            break
    nu = hi  # f(hi) <= budget: feasible side
    return np.where(any_useful & (budget > 0), nu, np.inf)


def water_filling_cvxpy(
    alpha: np.ndarray, c: np.ndarray, budget: float, solver: str | None = None
) -> np.ndarray:
    """The same convex problem in cvxpy (exponential cone); one instance, ``[n]`` arrays.

    Solved as ``min log sum_i exp(ln alpha_i - c_i p_i)`` (log-sum-exp, the same minimiser),
    which is invariant to the scale of ``alpha`` and so accurate even for tiny optima.
    ``solver`` defaults to Clarabel, falling back to SCS.
    """
    t, c, useful = _prepare(alpha, c)
    alpha = np.asarray(alpha, dtype=np.float64)
    p = np.zeros(t.shape)
    idx = np.flatnonzero(useful)
    if idx.size == 0 or budget <= 0:
        return p
    p[idx] = _cvxpy_solve(np.log(alpha[idx]), c[idx], float(budget), solver)
    total = p.sum()
    return p * min(1.0, budget / total) if total > 0 else p


def _cvxpy_solve(log_a: np.ndarray, c: np.ndarray, budget: float, solver: str | None) -> np.ndarray:
    """``min log sum_i exp(ln a_i - c_i p_i)``: same minimiser, invariant to the scale of
    ``a`` (the exponential-cone entries stay <= 1), so tiny optima are solved accurately."""
    import warnings

    import cvxpy as cp

    var = cp.Variable(log_a.size, nonneg=True)
    shift = float(np.max(log_a))
    prob = cp.Problem(
        cp.Minimize(cp.log_sum_exp(log_a - shift - cp.multiply(c, var))),
        [cp.sum(var) <= budget],
    )
    solvers = [solver] if solver else ["CLARABEL", "SCS"]
    last: Exception | None = None
    for name in solvers:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prob.solve(solver=name)
        except (cp.error.SolverError, ValueError) as err:
            last = err
            continue
        if var.value is not None and prob.status in ("optimal", "optimal_inaccurate"):
            return np.maximum(np.asarray(var.value, dtype=np.float64), 0.0)
    raise ConfigError(f"power solver: cvxpy found no solution ({last or prob.status})")


def exp_objective(alpha: np.ndarray, c: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``sum_i alpha_i exp(-c_i p_i)`` over the last axis."""
    return np.sum(np.asarray(alpha) * np.exp(-np.asarray(c) * np.asarray(p)), axis=-1)


@dataclass(frozen=True)
class KKTReport:
    """Relative KKT residuals of a candidate ``p`` for the water-filling problem (all >= 0).

    - ``stationarity``: ``max_i |alpha_i c_i e^{-c_i p_i} - lambda| / lambda`` over ``p_i > 0``;
    - ``dual_feasibility``: ``max_i (alpha_i c_i e^{-c_i p_i} - lambda)_+ / lambda`` over
      ``p_i = 0`` (the marginal gain of an unpowered entry must not beat the water level);
    - ``complementary_slackness``: ``(P_tot - sum p) / P_tot`` when ``lambda > 0``;
    - ``primal_feasibility``: ``max((sum p - P_tot)_+ / P_tot, max_i (-p_i)_+)``;
    - ``multiplier``: the estimate of ``lambda`` used.
    """

    stationarity: float
    dual_feasibility: float
    complementary_slackness: float
    primal_feasibility: float
    multiplier: float

    def worst(self) -> float:
        """The largest residual."""
        return max(
            self.stationarity,
            self.dual_feasibility,
            self.complementary_slackness,
            self.primal_feasibility,
        )


def kkt_residuals(
    alpha: np.ndarray, c: np.ndarray, budget: float, p: np.ndarray, active_tol: float = 1e-9
) -> KKTReport:
    """KKT residuals of ``p`` ([n]) for ``min sum alpha e^{-c p}``, ``sum p <= budget``.

    ``lambda`` is estimated as the median marginal gain ``alpha_i c_i e^{-c_i p_i}`` over
    entries with ``p_i > active_tol * budget``; with none, as the largest marginal gain at 0.
    """
    alpha, c, p = (np.asarray(v, dtype=np.float64) for v in (alpha, c, p))
    # marginal gains in the log domain (they underflow at high SNR)
    with np.errstate(divide="ignore"):
        log_gain = np.log(alpha) + np.log(c) - c * p
    scale = max(budget, 1e-300)
    active = p > active_tol * scale
    primal = max(max(0.0, p.sum() - budget) / scale, float(np.max(-p, initial=0.0)))
    if active.any():
        log_lam = float(np.median(log_gain[active]))
    else:
        log_lam = float(np.max(log_gain, initial=-np.inf))
    if not np.isfinite(log_lam):
        return KKTReport(0.0, 0.0, 0.0, primal, 0.0)
    rel = np.expm1(log_gain - log_lam)
    stat = float(np.max(np.abs(rel[active]), initial=0.0))
    dual = float(np.max(np.maximum(rel[~active], 0.0), initial=0.0))
    slack = max(0.0, budget - p.sum()) / scale if budget > 0 else 0.0
    return KKTReport(stat, dual, slack, primal, float(np.exp(log_lam)))


def equal_power(n: int, budget: float) -> np.ndarray:
    """``p_i = P_tot / n`` for ``n`` selected features (the equal-power baseline)."""
    return np.full(n, budget / n) if n else np.zeros(0)


# --------------------------------------------------------------------- SP4 on a Problem
def bound_terms(
    problem: Problem,
    features: np.ndarray,
    subchannel: np.ndarray,
    modulation: np.ndarray,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(alpha, c)`` of the water-filling problem for an assignment (any matching shape).

    ``features``, ``subchannel``, ``modulation`` (indices into ``problem.modulations``) are
    integer arrays of one shape; ``weights`` [N] replaces the problem's (baselines decide
    with uniform importance).
    """
    from optim.distortion import feature_terms

    w = problem.weights if weights is None else np.asarray(weights, dtype=np.float64)
    coef = np.array([bound_coefficients(m) for m in problem.modulations])  # [M, 2]
    slope = feature_terms(problem).slope
    alpha = w[features] * slope[features] * coef[modulation, 0]
    c = coef[modulation, 1] * problem.gains[subchannel] / problem.noise_power
    return alpha, c


def allocate_power(
    problem: Problem,
    features: np.ndarray,
    subchannel: np.ndarray,
    modulation: np.ndarray,
    solver: str = "closed-form",
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """SP4 for one assignment: per-symbol powers [n] minimising the bound objective.

    ``solver`` is one of :data:`POWER_SOLVERS`; ``weights`` as in :func:`bound_terms`.
    """
    features = np.asarray(features, dtype=np.int64)
    if features.size == 0:
        return np.zeros(0)
    alpha, c = bound_terms(problem, features, subchannel, modulation, weights)
    if solver == "cvxpy":
        return water_filling_cvxpy(alpha, c, problem.power_budget)
    if solver not in POWER_SOLVERS:
        raise ConfigError(f"power solver: {solver!r} is not one of {', '.join(POWER_SOLVERS)}")
    return water_filling(alpha, c, problem.power_budget, method=solver)


def _weighted_error(
    problem: Problem,
    coeff: np.ndarray,
    modulation: np.ndarray,
    gain: np.ndarray,
    p: np.ndarray,
) -> np.ndarray:
    """``coeff_i Pb(m_i, gain_i p_i / sigma^2)`` under the problem's BER model."""
    from optim.distortion import bit_error_rate

    return coeff * bit_error_rate(problem, modulation, gain * p / problem.noise_power)


def refine_power(
    problem: Problem,
    features: np.ndarray,
    subchannel: np.ndarray,
    modulation: np.ndarray,
    p0: np.ndarray,
    weights: np.ndarray | None = None,
    max_iter: int = 30,
    rtol: float = 1e-10,
) -> np.ndarray:
    """Improve powers ``p0`` [n] under the problem's own BER model; never increases the cost.

    Each step fits ``Pb_i(p) ~ A'_i exp(-B'_i p)`` through the current point with the same
    value and log-slope (numerical derivative), water-fills the fit, and backtracks along the
    segment from ``p`` to the fit's optimum (which stays within the budget) until the true
    weighted error ``sum_i w_i slope_i Pb_i`` decreases. Under the bound model the first
    step is exact. Stops after ``max_iter`` steps or a relative gain below ``rtol``.
    """
    from optim.distortion import feature_terms

    features = np.asarray(features, dtype=np.int64)
    modulation = np.asarray(modulation, dtype=np.int64)
    p = np.asarray(p0, dtype=np.float64).copy()
    if features.size == 0 or problem.power_budget <= 0:
        return p
    w = problem.weights if weights is None else np.asarray(weights, dtype=np.float64)
    coeff = w[features] * feature_terms(problem).slope[features]
    gain = problem.gains[np.asarray(subchannel, dtype=np.int64)]
    rate = gain / problem.noise_power
    cost = _weighted_error(problem, coeff, modulation, gain, p).sum()
    budget = problem.power_budget
    for _ in range(max_iter):
        # log-slope of Pb in p at the current point (one-sided at p = 0)
        h = np.maximum(1e-6 * p, 1e-7 * max(budget, 1e-12) / max(features.size, 1))
        lo = np.maximum(p - h, 0.0)
        hi = p + h
        pb_lo = _weighted_error(problem, np.ones_like(coeff), modulation, gain, lo)
        pb_hi = _weighted_error(problem, np.ones_like(coeff), modulation, gain, hi)
        pb = _weighted_error(problem, np.ones_like(coeff), modulation, gain, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (np.log(pb_lo) - np.log(pb_hi)) / (hi - lo)
            ok = (pb > 0) & np.isfinite(slope) & (slope > 0) & (rate > 0) & (coeff > 0)
            log_alpha = np.where(ok, np.log(np.where(ok, coeff * pb, 1.0)) + slope * p, -np.inf)
        target = water_filling(None, np.where(ok, slope, 0.0), budget, log_alpha=log_alpha)
        step = 1.0
        improved = False
        for _ in range(30):
            trial = p + step * (target - p)
            trial_cost = _weighted_error(problem, coeff, modulation, gain, trial).sum()
            if trial_cost < cost:
                improved = True
                break
            step *= 0.5
        if not improved:
            break
        gain_rel = (cost - trial_cost) / max(cost, 1e-300)
        p, cost = np.maximum(trial, 0.0), trial_cost
        if gain_rel < rtol:
            break
    return p


def refine_power_batch(
    problem: Problem,
    features: np.ndarray,
    subchannel: np.ndarray,
    modulation: np.ndarray,
    p0: np.ndarray,
    weights: np.ndarray | None = None,
    max_iter: int = 8,
    halvings: int = 12,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`refine_power` for a batch of allocations [T, n] at once (``modulation < 0``:
    unused entry). Returns ``(p [T, n], weighted error [T])``; each row's cost never
    increases. The backtracking tries the steps ``1, 1/2, ..., 2^-halvings`` together and
    keeps, per row, the longest that improves."""
    from optim.distortion import bit_error_rate, feature_terms

    features = np.asarray(features, dtype=np.int64)
    modulation = np.asarray(modulation, dtype=np.int64)
    p = np.asarray(p0, dtype=np.float64).copy()
    w = problem.weights if weights is None else np.asarray(weights, dtype=np.float64)
    used = modulation >= 0
    coeff = np.where(used, w[features] * feature_terms(problem).slope[features], 0.0)
    rate = problem.gains[np.asarray(subchannel, dtype=np.int64)] / problem.noise_power

    def err(q: np.ndarray) -> np.ndarray:
        return bit_error_rate(problem, modulation, rate * q)

    cost = (coeff * err(p)).sum(axis=-1)
    budget = problem.power_budget
    if p.size == 0 or budget <= 0:
        return p, cost
    n = max(int(used.sum(axis=-1).max()), 1)
    steps = 0.5 ** np.arange(halvings + 1)
    active = np.ones(p.shape[0], dtype=bool)
    for _ in range(max_iter):
        h = np.maximum(1e-6 * p, 1e-7 * budget / n)
        lo, hi = np.maximum(p - h, 0.0), p + h
        pb, pb_lo, pb_hi = err(p), err(lo), err(hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = (np.log(pb_lo) - np.log(pb_hi)) / (hi - lo)
            ok = used & (pb > 0) & np.isfinite(slope) & (slope > 0) & (rate > 0) & (coeff > 0)
            log_alpha = np.where(ok, np.log(np.where(ok, coeff * pb, 1.0)) + slope * p, -np.inf)
        target = water_filling(None, np.where(ok, slope, 0.0), budget, log_alpha=log_alpha)
        trials = p[None] + steps[:, None, None] * (target - p)[None]  # [S, T, n]
        costs = (coeff[None] * bit_error_rate(
            problem, np.broadcast_to(modulation, trials.shape), rate[None] * trials
        )).sum(axis=-1)  # fmt: skip
        better = costs < cost[None]
        first = np.argmax(better, axis=0)  # longest improving step per row
        moved = better.any(axis=0) & active
        rows = np.flatnonzero(moved)
        gain = np.zeros(p.shape[0])
        gain[rows] = (cost[rows] - costs[first[rows], rows]) / np.maximum(cost[rows], 1e-300)
        p[rows] = np.maximum(trials[first[rows], rows], 0.0)
        cost[rows] = costs[first[rows], rows]
        active = moved & (gain > 1e-10)
        if not active.any():
            break
    return p, cost
