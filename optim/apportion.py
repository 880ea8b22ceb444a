"""Apportionment: integer seats in proportion to votes, and the ``dhondt`` allocation method.

**The rules** (:func:`apportion`). ``S`` seats are shared among parties with votes ``v_i >= 0``:

- ``dhondt`` (Jefferson): highest averages with divisors ``s + 1``: seat after seat goes to the
  party with the largest ``v_i / (s_i + 1)``, ``s_i`` its seats so far;
- ``sainte-lague`` (Webster): highest averages with divisors ``2 s + 1``;
- ``hamilton`` (largest remainder, Hare quota): each party gets ``floor(q_i)`` of its quota
  ``q_i = S v_i / V`` (``V = sum v``), the seats left go to the largest remainders.

The highest-averages rules are computed at once, not seat by seat: the ``S``-th largest
quotient is at least ``lambda = V / (S + n delta)`` (``delta = 1`` D'Hondt, ``1/2``
Sainte-Laguë, quotients ``v / (s + delta)``; at ``lambda`` every party has at least
``v_i / lambda - delta`` quotients above it), so party ``i`` can hold at most
``floor(v_i / lambda - delta) + 1`` seats; the at most ``S + n`` candidate quotients are sorted
once. Ties (equal quotients or remainders) go to the party with more votes, then to the lower
index. Options, as in DhondtXAI (T. B. Donmez, arXiv:2411.05196):

- ``threshold``: a party (or an alliance) whose votes are below ``threshold`` times the total
  gets nothing and its votes leave the count;
- ``alliances``: one label per party; parties with the same label pool their votes, the
  alliances are apportioned first, then each alliance's seats are shared among its members by
  the same rule (the threshold applies to the alliances, not to their members).

Seats always sum to ``S``, unless no party with positive votes passes the threshold (then all
are zero).

**The ``dhondt`` method** ([OUR CHOICE] mapping of the paper's idea, importance as votes and
resources as seats, onto (P0)): the feature importances ``w_i`` are the votes, and the frame's
integer resources are the seats.

1. *Which features*: those with ``w_i > 0`` and ``w_i >= threshold * sum w`` are candidates,
   at most ``K`` of them (the most important ones: one feature per subchannel).
2. *Symbols*: the symbol budget ``floor(S_max)`` is apportioned among the candidates (seats of
   one symbol each; of ``u = ceil(S_max / 2^20)`` symbols above ``2^20``); feature ``i``'s
   seats ``sigma_i`` buy its most robust modulation that fits, the lowest order ``m`` with
   ``S_i(m) <= sigma_i``, so ``sum_i S_i(m_i) <= sum_i sigma_i <= S_max``.
3. *Power*: ``P_tot`` is split into ``power_levels`` equal levels, apportioned the same way:
   ``p_i = l_i P_tot / power_levels``, so ``sum_i p_i <= P_tot``.
4. A candidate whose symbol seats cannot carry it even at the highest order, or that gets no
   power level, leaves the candidates (the least important such one at a time) and both
   budgets are apportioned again among the rest.
5. *Subchannels*: the features are ranked by seats (power levels, then votes, then index) and
   the strongest subchannels go to the most seats, one each (distinct by construction).
6. A feature whose subchannel has zero gain, or whose weighted distortion when sent at its
   power would not be below its drop cost, is not sent (its resources stay unused).

Steps 1-4 read the template only (weights, symbol table, budgets), so a batch of frames shares
them; steps 5-6 are vectorised over the frames' gains ``[B, K]`` (:func:`dhondt_batch`), and
:func:`dhondt` is the batch of one frame. Every result is feasible for (P0).

Examples:
    >>> apportion([100_000, 80_000, 30_000, 20_000], 8).tolist()
    [4, 3, 1, 0]
    >>> apportion([100_000, 80_000, 30_000, 20_000], 8, method="sainte-lague").tolist()
    [3, 3, 1, 1]
    >>> apportion([47, 16, 15.8, 12, 6.1, 3.1], 10, method="hamilton").tolist()
    [5, 2, 1, 1, 1, 0]
    >>> apportion([60, 25, 15], 10, alliances=[0, 1, 1]).tolist()
    [6, 3, 1]
    >>> from optim.problem import random_problem
    >>> p = random_problem(6, 6, seed=0)
    >>> dhondt(p).is_feasible(p)
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from channels.errors import ConfigError, check_int, check_name, check_real, check_vector, fail
from optim.batch.score import frame_objectives, sent_costs
from optim.batch.solve import BatchResult, check_gains
from optim.distortion import feature_terms
from optim.problem import Allocation, Problem

RULES = ("dhondt", "sainte-lague", "hamilton")
"""Apportionment rules of :func:`apportion` (``sainte_lague`` is read as ``sainte-lague``)."""

_DIVISOR_OFFSET = {"dhondt": 1.0, "sainte-lague": 0.5}
_MAX_SEATS = 1 << 20  # symbol seats of one apportionment (larger budgets use coarser seats)
_MAX_REPR = 80


def check_rule(field: str, value: Any) -> str:
    """The canonical rule name (``_`` read as ``-``), else a one-line ConfigError."""
    return check_name(field, str(value).replace("_", "-"), RULES)


def apportion(
    votes: Any,
    seats: int,
    *,
    method: str = "dhondt",
    threshold: float = 0.0,
    alliances: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """Integer seats in proportion to ``votes`` (module docstring: rules, ties, options).

    Args:
        votes: float array [N], finite and ``>= 0``.
        seats: ``S``, an integer ``>= 0``.
        method: ``dhondt``, ``sainte-lague`` or ``hamilton``.
        threshold: share of the total votes in ``[0, 1]`` below which a party (an alliance
            when ``alliances`` is given) gets nothing.
        alliances: None, or one integer label per party (equal labels: one alliance).

    Returns:
        int64 [N], summing to ``S`` (0 everywhere when no party with positive votes passes
        the threshold).

    Raises:
        ConfigError: before any work, for a bad value of any argument.

    Examples:
        >>> apportion([3, 2], 0).tolist()
        [0, 0]
        >>> apportion([50, 30, 20], 5, threshold=0.25).tolist()
        [3, 2, 0]
    """
    v = check_vector("votes", votes, 0, max_repr=_MAX_REPR)
    seats = check_int("seats", seats, 0)
    rule = check_rule("method", method)
    threshold = check_real("threshold", threshold, 0, 1)
    labels = _labels(alliances, v.size)
    if labels is None:
        return _apportion(_above(v, threshold), seats, rule)
    ids, member_of = np.unique(labels, return_inverse=True)
    totals = _above(np.bincount(member_of, weights=v, minlength=ids.size), threshold)
    top = _apportion(totals, seats, rule)
    out = np.zeros(v.size, dtype=np.int64)
    for a in np.flatnonzero(top):
        members = np.flatnonzero(member_of == a)
        out[members] = _apportion(v[members], int(top[a]), rule)
    return out


def _labels(alliances: Any, n: int) -> np.ndarray | None:
    if alliances is None:
        return None
    allowed = f"None or one integer label per party ({n} labels)"
    try:
        arr = np.asarray(alliances)
    except (TypeError, ValueError):
        raise fail("alliances", alliances, allowed, max_repr=_MAX_REPR) from None
    if arr.shape != (n,) or (n and arr.dtype.kind not in "iu"):
        raise fail("alliances", alliances, allowed, max_repr=_MAX_REPR)
    return arr.astype(np.int64)


def _above(v: np.ndarray, threshold: float) -> np.ndarray:
    """Votes with those below ``threshold`` times the total set to zero."""
    if threshold <= 0:
        return v
    return np.where(v >= threshold * v.sum(), v, 0.0)


def _apportion(v: np.ndarray, seats: int, rule: str) -> np.ndarray:
    out = np.zeros(v.size, dtype=np.int64)
    pos = np.flatnonzero(v > 0)
    if seats == 0 or pos.size == 0:
        return out
    if rule == "hamilton":
        out[pos] = _largest_remainder(v[pos], seats, pos)
    else:
        out[pos] = _highest_averages(v[pos], seats, _DIVISOR_OFFSET[rule], pos)
    return out


def _highest_averages(v: np.ndarray, seats: int, delta: float, index: np.ndarray) -> np.ndarray:
    """Seats of parties with votes ``v > 0`` under divisors ``s + delta``: the ``seats``
    largest quotients ``v_i / (s + delta)``, ties to more votes, then lower ``index``."""
    n = v.size
    scaled = v / v.max()  # the bound in units of the largest vote: no overflow of the sum
    low = scaled.sum() / (seats + n * delta) * (1.0 - 1e-9)  # below the seats-th quotient
    cap = np.floor(scaled / low - delta).astype(np.int64) + 1  # quotients >= low: seat bound
    cap = np.maximum(cap, 0)
    party = np.repeat(np.arange(n), cap)
    start = np.repeat(np.cumsum(cap) - cap, cap)
    s = np.arange(party.size) - start
    quotient = v[party] / (s + delta)
    order = np.lexsort((s, index[party], -v[party], -quotient))
    assert order.size >= seats  # sum(cap) >= seats by the choice of low
    return np.bincount(party[order[:seats]], minlength=n).astype(np.int64)


def _largest_remainder(v: np.ndarray, seats: int, index: np.ndarray) -> np.ndarray:
    """Hamilton: ``floor(q_i)`` of ``q_i = S v_i / V``, the rest to the largest remainders
    (ties to more votes, then lower ``index``)."""
    scaled = v / v.max()
    quota = seats * (scaled / scaled.sum())
    base = np.floor(quota).astype(np.int64)
    remainder = quota - base
    left = seats - int(base.sum())
    order = np.lexsort((index, -v, -remainder))
    if left >= 0:
        base[order[:left]] += 1
    else:  # rounding put a quota just above an integer: take back from the smallest remainders
        for i in order[::-1][:-left]:
            base[i] -= 1
    return base


# ------------------------------------------------------------------------ the dhondt method
@dataclass(frozen=True)
class DhondtPlan:
    """The frame-independent part of the ``dhondt`` method (steps 1-4 of the module docstring).

    Attributes:
        features: int64 [n], the features sent, in subchannel rank order (the ``j``-th gets
            the ``j``-th strongest subchannel).
        modulation: int64 [n], index into the problem's modulations.
        power: float64 [n], per-symbol power.
        symbol_seats: int64 [n], the symbols apportioned to each feature.
        power_levels: int64 [n], the power levels apportioned to each feature.
    """

    features: np.ndarray
    modulation: np.ndarray
    power: np.ndarray
    symbol_seats: np.ndarray
    power_levels: np.ndarray


def check_dhondt_options(threshold: Any, power_levels: Any, rule: Any) -> tuple[float, int, str]:
    """Validated ``(threshold, power_levels, rule)`` of the ``dhondt`` method."""
    return (
        check_real("threshold", threshold, 0, 1),
        check_int("power_levels", power_levels, 1, 1 << 20),
        check_rule("rule", rule),
    )


def dhondt_plan(
    problem: Problem, *, threshold: float = 0.0, power_levels: int = 64, rule: str = "dhondt"
) -> DhondtPlan:
    """Features, modulations and powers of the ``dhondt`` method (the gains are not read).

    Args:
        problem: the (template) problem.
        threshold: share of the total importance below which a feature is never sent.
        power_levels: number of equal power levels ``P_tot`` is split into.
        rule: the apportionment rule for symbols and power levels.

    Returns:
        :class:`DhondtPlan`.
    """
    threshold, power_levels, rule = check_dhondt_options(threshold, power_levels, rule)
    w = problem.weights
    empty = np.zeros(0, dtype=np.int64)
    none = DhondtPlan(empty, empty, np.zeros(0), empty, empty)
    total = float(w.sum())
    if total <= 0 or problem.n_subchannels == 0 or problem.power_budget <= 0:
        return none
    order = np.lexsort((np.arange(w.size), -w))
    cand = order[(w[order] > 0) & (w[order] >= threshold * total)][: problem.n_subchannels]
    unit = max(1, -(-int(problem.symbol_budget) // _MAX_SEATS))
    symbol_seats = int(problem.symbol_budget) // unit
    table = problem.symbol_table
    while cand.size:
        sym = _apportion(w[cand], symbol_seats, rule) * unit
        lev = _apportion(w[cand], power_levels, rule)
        bad = np.flatnonzero((sym < table[cand, -1]) | (lev < 1))
        if bad.size == 0:
            break
        cand = np.delete(cand, bad[-1])  # the least important unservable candidate
    if cand.size == 0:
        return none
    mods = np.argmax(table[cand] <= sym[:, None], axis=1).astype(np.int64)
    rank = np.lexsort((cand, -w[cand], -lev))
    return DhondtPlan(
        cand[rank],
        mods[rank],
        lev[rank] * (problem.power_budget / power_levels),
        sym[rank],
        lev[rank],
    )


def dhondt_batch(
    template: Problem,
    gains: Any,
    *,
    threshold: float = 0.0,
    power_levels: int = 64,
    rule: str = "dhondt",
) -> BatchResult:
    """The ``dhondt`` method for every frame of ``gains [B, K]`` (vectorised over frames).

    Frame ``b`` equals ``dhondt(template.replace(gains=gains[b]), ...)``.
    """
    check_dhondt_options(threshold, power_levels, rule)
    arr = check_gains(gains, template)
    frames, k = arr.shape
    if k != template.n_subchannels:
        template = template.replace(gains=np.zeros(k))
    plan = dhondt_plan(template, threshold=threshold, power_levels=power_levels, rule=rule)
    n_feat, n = template.n_features, plan.features.size
    selected = np.zeros((frames, n_feat), dtype=bool)
    subchannel = np.full((frames, n_feat), -1, dtype=np.int64)
    modulation = np.full((frames, n_feat), -1, dtype=np.int64)
    power = np.zeros((frames, n_feat))
    if n:
        strongest = np.argsort(-arr, axis=1, kind="stable")[:, :n]  # ties: lower index
        rows = np.arange(frames)[:, None]
        subchannel[rows, plan.features] = strongest
        modulation[rows, plan.features] = plan.modulation
        power[rows, plan.features] = plan.power
        gain = np.take_along_axis(arr, np.maximum(subchannel, 0), axis=1)
        cost = sent_costs(template, modulation, gain, power)
        dropped = template.weights * feature_terms(template).drop
        selected = (subchannel >= 0) & (gain > 0) & (cost < dropped)
        subchannel[~selected] = -1
        modulation[~selected] = -1
        power[~selected] = 0.0
    objective = frame_objectives(template, arr, selected, subchannel, modulation, power)
    return BatchResult("dhondt", selected, subchannel, modulation, power, objective)


def dhondt(
    problem: Problem,
    *,
    threshold: float = 0.0,
    power_levels: int = 64,
    rule: str = "dhondt",
) -> Allocation:
    """The ``dhondt`` allocation of one problem (module docstring, steps 1-6).

    Args:
        problem: the instance.
        threshold: share of the total importance (in ``[0, 1]``) below which a feature is
            never sent.
        power_levels: ``P_tot`` is split into this many equal levels (integer ``>= 1``).
        rule: ``dhondt``, ``sainte-lague`` or ``hamilton``, for symbols and power levels.

    Returns:
        A feasible :class:`~optim.problem.Allocation`.

    Raises:
        ConfigError: a bad option value, before any work.
    """
    if not isinstance(problem, Problem):
        raise ConfigError(f"problem: {type(problem).__name__} is invalid; allowed: optim.Problem")
    out = dhondt_batch(
        problem, problem.gains[None, :], threshold=threshold, power_levels=power_levels,
        rule=rule,
    )  # fmt: skip
    return out.allocation(0, problem.modulations)
