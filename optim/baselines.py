"""The proposed solver and the baselines of docs/method.md §6.2, one function per method name.

Every function has the signature ``f(problem, **options) -> Allocation`` and is registered in
:mod:`optim.methods` under the name in brackets. They decide with their own assumptions; the
objective is always reported with the problem's own weights and BER model
(:func:`optim.methods.solve`).

- [hierarchical] the proposed SP1-SP4 solver with the ordered prior
  (:func:`optim.hierarchical.solve_hierarchical`, all its options).
- [passive] features sorted by ``w_i`` first (post-hoc importance), then the same solver.
- [ui-opt] uniform importance ``w_i = 1/N`` for every decision, same solver, natural order.
- [hungarian] the solver with SP1 improved by Hungarian assignment (never worse than greedy
  for the same prefix under the decision objective).
- [equal-power] the solver with SP4 replaced by ``p_i = P_tot / n`` (its refinement keeps
  equal shares).
- [random-matching] the solver with SP1 replaced by a seeded random injective matching (its
  refinement never re-matches).
- [lowest-order] send the largest prefix that fits (``n_max``), all at the lowest order that
  fits ``S_max``, greedy matching, water-filling power; no search (with per-feature ``Q``:
  the largest prefix in index order whose highest-order symbols fit, and the lowest order
  whose symbols ``sum_i S_i(m)`` over that prefix fit).
- [ui-ep] the "traditional uniform" scheme: the ``n_max`` first features, one modulation
  (the lowest order that fits), equal power, seeded random matching; no optimisation.

The solver-based methods accept the options of
:func:`optim.hierarchical.solve_hierarchical` except the one they fix, refinement included.
What is guaranteed (tests assert only these), with the refinement off, the same pattern set
(``patterns="all"``), and the bound BER model for the power-related ones:
``hierarchical <= lowest-order`` (the uniform pattern is a candidate with the same matching
and power rule) under either BER model; ``hierarchical <= equal-power`` and
``hierarchical <= ui-opt`` under the bound model (for every candidate the water-filling
power is optimal for the true weights); ``hungarian <= hierarchical`` under either model.
With the (default) refinement on, ``hierarchical <= hierarchical(refine=False)`` and so
``hierarchical <= lowest-order`` still hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from channels.errors import ConfigError
from optim.hierarchical import solve_hierarchical
from optim.matching import random_matching, subchannel_order
from optim.power import allocate_power, equal_power
from optim.problem import Allocation, Problem
from optim.selection import max_selectable

SOLVER_OPTIONS = (
    "matching",
    "power",
    "patterns",
    "n_search",
    "early_stop",
    "patience",
    "refine",
    "refine_iters",
    "refine_steps",
    "refine_starts",
    "start_margin",
    "local_search_max",
    "dual_starts",
    "dual_max",
    "matching_iters",
    "max_patterns",
    "seed",
)
"""Options of :func:`optim.hierarchical.solve_hierarchical` a caller may pass through."""


def _check_options(method: str, options: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in options:
        if key not in allowed:
            raise ConfigError(
                f"option: {key!r} is not accepted by method {method!r}; "
                f"allowed: {', '.join(allowed) or 'none'}"
            )


def _solver(method: str, problem: Problem, fixed: dict[str, Any], options: dict[str, Any]):
    allowed = tuple(k for k in SOLVER_OPTIONS if k not in fixed)
    _check_options(method, options, allowed)
    return solve_hierarchical(problem, **fixed, **options)


def hierarchical(problem: Problem, **options: Any) -> Allocation:
    """The proposed solver (ordered prior: features in natural index order)."""
    return _solver("hierarchical", problem, {}, options)


def passive(problem: Problem, **options: Any) -> Allocation:
    """Passive UEP: rank features by decreasing ``w_i``, then the hierarchical solver."""
    return _solver("passive", problem, {"ordered_prior": False}, options)


def ui_opt(problem: Problem, **options: Any) -> Allocation:
    """Uniform importance (``w_i = 1/N``) for every decision, the hierarchical solver."""
    n = max(problem.n_features, 1)
    fixed = {"weights": np.full(problem.n_features, 1.0 / n), "ordered_prior": True}
    return _solver("ui-opt", problem, fixed, options)


def hungarian(problem: Problem, **options: Any) -> Allocation:
    """The hierarchical solver with Hungarian-improved matching."""
    return _solver("hungarian", problem, {"matching": "hungarian"}, options)


def equal_power_method(problem: Problem, **options: Any) -> Allocation:
    """The hierarchical solver with equal power ``P_tot / n`` per selected feature."""
    return _solver("equal-power", problem, {"power": "equal"}, options)


def random_matching_method(problem: Problem, **options: Any) -> Allocation:
    """The hierarchical solver with a seeded random matching (``seed`` option)."""
    fixed = {"matching": "random", "refine_steps": ("power", "modulation", "selection")}
    return _solver("random-matching", problem, fixed, options)


def _lowest_fitting(problem: Problem, n: int) -> int:
    """Index of the lowest-order modulation with ``n S(m) <= S_max`` (``n <= n_max``); with
    per-feature ``Q``, ``sum_{i<n} S_i(m) <= S_max`` for the first ``n`` features."""
    if problem.uniform_bits:
        fits = np.flatnonzero(n * problem.symbols_per_feature <= problem.symbol_budget + 1e-9)
    else:
        used = problem.symbol_table[:n].sum(axis=0)
        fits = np.flatnonzero(used <= problem.symbol_budget + 1e-9)
    return int(fits[0])


def lowest_order(problem: Problem, *, power: str = "closed-form", seed: Any = None) -> Allocation:
    """Send the first ``n_max`` features, all at the lowest order that fits ``S_max``.

    Greedy matching, SP4 power (``power`` = closed-form | bisection | cvxpy | equal).
    """
    del seed  # deterministic
    power = str(power).strip().lower()
    if power not in ("closed-form", "bisection", "cvxpy", "equal"):
        raise ConfigError(f"power: {power!r} is not one of closed-form, bisection, cvxpy, equal")
    n = max_selectable(problem, np.arange(problem.n_features))
    if n == 0:
        return Allocation.send_nothing()
    m = _lowest_fitting(problem, n)
    features = np.arange(n)
    sub = subchannel_order(problem.gains)[:n]
    mods = np.full(n, m)
    if power == "equal":
        p = equal_power(n, problem.power_budget)
    else:
        p = allocate_power(problem, features, sub, mods, solver=power)
    return Allocation(features, sub, (problem.modulations[m],) * n, p)


def ui_ep(problem: Problem, *, seed: int | np.random.Generator | None = None) -> Allocation:
    """Traditional uniform scheme: first ``n_max`` features, lowest fitting order, equal power,
    random matching (seeded)."""
    if seed is not None and not isinstance(seed, np.random.Generator):
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"seed: {seed!r} is invalid; allowed: an integer >= 0")
    n = max_selectable(problem, np.arange(problem.n_features))
    if n == 0:
        return Allocation.send_nothing()
    m = _lowest_fitting(problem, n)
    sub = random_matching(problem.n_subchannels, n, seed)
    return Allocation(
        np.arange(n), sub, (problem.modulations[m],) * n, equal_power(n, problem.power_budget)
    )
