"""The exact optimum of (P0): enumeration for small instances, branch and bound above.

The entry point of the reference optimum. The method is split by concept:

- :mod:`optim.slots`: the slot form of (P0), Lemmas 1-2 (which candidates suffice), the dual
  bound (2) and the ordered-prior incumbent;
- :mod:`optim.ber_model`: the compiled BER model and the dual function ``H_m`` of (2);
- :mod:`optim.optimal_power`: Lemma 3, the optimal power of one candidate;
- :mod:`optim.enumeration`: the exhaustive walk over the candidates with the bound (2);
- :mod:`optim.bnb_search` (entry :func:`optim.bnb.solve_bnb`): the certified branch and bound.

:func:`solve_exact_result` picks the enumeration up to ``max_candidates`` candidates
(:func:`candidate_count`; default 2e8, i.e. every ``N <= 8``) and the branch and bound above.
Both give the optimum within ``rtol`` (default 1e-9, relative) when they complete, and a
proven lower bound when a limit stops them.

Examples:
    >>> from optim.problem import random_problem
    >>> result = solve_exact_result(random_problem(4, 4, seed=1))
    >>> result.engine, result.optimal
    ('enumerate', True)
"""

from __future__ import annotations

import time
import warnings

from channels.errors import ConfigError, check_name, check_real
from optim.ber_model import BerModel, ber_model, h_lower
from optim.bnb import solve_bnb
from optim.enumeration import ExactResult, candidate_count, enumerate_optimum
from optim.optimal_power import optimal_power, optimal_power_batch
from optim.problem import Allocation, Problem, random_problem
from optim.slots import SlotModel, dual_bound_terms, slot_model
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
    "optimal_power_batch",
    "slot_model",
    "solve_exact",
    "solve_exact_result",
    "warm_up",
]

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
    return enumerate_optimum(
        problem, rtol=rtol, atol=atol, deadline=deadline, node_limit=node_limit, start=start
    )


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
    for model in ("bound", "exact"):
        tiny = random_problem(3, 3, seed=0, ber_model=model)
        solve_exact_result(tiny, engine="enumerate", time_limit=1e-9)  # + the stopped path
        solve_exact_result(tiny, engine="enumerate")
        solve_bnb(tiny, node_limit=2)  # its initial (hierarchical) solver and stopped path
        solve_bnb(tiny)
