"""Branch and bound for (P0) at medium sizes (N, K ~ 8-16): a certified optimum or a bound.

The entry point: :func:`solve_bnb` computes its warm start (by default the hierarchical
solution, :func:`optim.hierarchical.solve_hierarchical`) and runs the search of
:mod:`optim.bnb_search`, where the method, its bounds and its certificate are described.

Examples:
    >>> from optim.problem import random_problem
    >>> result = solve_bnb(random_problem(4, 4, seed=0), time_limit=float("inf"))
    >>> result.certified, result.stopped_by
    (True, None)
"""

from __future__ import annotations

import time
from collections.abc import Callable

from channels.errors import ConfigError
from optim.bnb_search import MAX_SLOTS, BnBResult, branch_and_bound, check_bnb_options, walk_bound
from optim.hierarchical import solve_hierarchical
from optim.problem import Allocation, Problem
from optim.timebox import Deadline

__all__ = ["MAX_SLOTS", "BnBResult", "lagrangian_heuristic", "solve_bnb", "walk_bound"]

WarmStart = Allocation | Callable[[Problem], Allocation] | None
"""A warm start of :func:`solve_bnb`: an allocation, a solver that makes one, or none."""


def solve_bnb(
    problem: Problem,
    *,
    time_limit: float = 10.0,
    node_limit: int | None = None,
    rtol: float = 1e-9,
    atol: float = 1e-300,
    initial: WarmStart = solve_hierarchical,
    heur_depth: int = 2,
) -> BnBResult:
    """Branch and bound on (P0); see :mod:`optim.bnb_search`.

    Args:
        time_limit: Wall-clock seconds for the whole call (``inf``: none), warm start and setup
            included. The search is checked between slices of about 50 ms; what cannot be cut
            short (one ordered-prior size, the root multiplier grid, the final bound) measured
            0.01-0.2 s at ``N = K = 8-16`` and about 2 s at 32 on one core.
        node_limit: Maximum nodes visited.
        rtol, atol: Pruning tolerance: when certified, ``J <= J* + rtol J + atol``.
        initial: The warm start, as a value: an Allocation (returned if never beaten), a
            function ``problem -> Allocation`` run first (default
            :func:`optim.hierarchical.solve_hierarchical`: a good first incumbent prunes far
            more; its time counts in ``seconds`` and against ``time_limit``; skipped once the
            time is up), or None: start from the ordered-prior candidates and the root's
            Lagrangian candidates only. A method name is not accepted: pass
            ``optim.solve(problem, method=name).allocation``.
        heur_depth: Nodes with at most this many slots filled also try their Lagrangian
            completion as a primal candidate (0 disables; the root always does).

    Returns:
        A :class:`BnBResult`. Stopped by a limit, the best allocation found with a proven
        ``lower_bound``; ``certified`` when the search completed or that bound proves
        optimality.

    Raises:
        ConfigError: Invalid limits, tolerances or warm start, or ``min(N, K) > MAX_SLOTS``.
    """
    start = time.perf_counter()
    check_bnb_options(problem, time_limit, node_limit, rtol, atol)
    if initial is not None and not isinstance(initial, Allocation):
        if not callable(initial):
            raise ConfigError(
                f"initial: {initial!r} is invalid; allowed: an Allocation, a function "
                "problem -> Allocation (e.g. optim.solve_hierarchical) or None"
            )
        empty = min(problem.n_features, problem.n_subchannels) == 0
        initial = None if empty or Deadline(time_limit, start).passed() else initial(problem)
    return branch_and_bound(
        problem,
        initial=initial,
        time_limit=time_limit,
        node_limit=node_limit,
        rtol=rtol,
        atol=atol,
        heur_depth=heur_depth,
        start=start,
    )


def lagrangian_heuristic(problem: Problem) -> Allocation:
    """The branch and bound's root primal candidates alone, as a heuristic (no search).

    Best of the ordered-prior candidates (top ranks on the top slots, non-decreasing
    modulation orders, exact power) and of the Hungarian assignments of the root's multiplier
    grid (module docstring), each solved with its exact optimal power. About 10 ms for
    ``N, K <= 6``. Over the 1000 ordered / exact-BER gap instances of
    ``benchmarks/bench_optim.py`` it is within 0.5% of the optimum on 94% of them (worst
    59%); the better of it and the (earlier, pre-dual-start) hierarchical solver was within
    0.5% on 99.7% (worst 5.1%). The hierarchical solver now refines a cheaper version of these
    candidates itself (:mod:`optim.dual`, without this multiplier search).
    """
    return solve_bnb(problem, node_limit=1, initial=None, heur_depth=0).allocation
