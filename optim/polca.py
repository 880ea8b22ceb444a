"""The ``polca`` method: a priority-queue search over allocations under noisy evaluations.

After POLCA (X. Ren, A. Nie, T. Xie, C.-A. Cheng, arXiv:2603.14769), a search loop around a
black-box proposer for objectives that can only be evaluated with noise:

- **memory**: an epsilon-net (:class:`EpsNet`): its members are pairwise at least ``eps``
  apart (and distinct) in an embedding; a proposal closer than ``eps`` to a member (or equal to
  it) is not kept, so near-duplicates do not dilute the evaluations;
- **priority**: every member keeps its evaluation history; :class:`UCBQueue` pops the member
  with the largest upper confidence bound ``mean_i + c sqrt(ln(1 + t) / n_i)`` (``n_i``
  evaluations of member ``i``, ``t`` in all; an unevaluated member first);
- **loop** (:func:`polca_search`): pop the ``batch`` best members, evaluate each once more, let
  the proposer derive ``n_proposals`` candidates from each and evaluate each proposal once (a
  proposal equal to a member is skipped); the net keeps it as a new member or, closer than
  ``eps`` to a member, merges its evaluation into the nearest member; when
  the ``budget`` of evaluations is spent, return the member with the best mean evaluation.

The paper's proposer is an LLM fed with feedback and a summary of the memory; here it is
pluggable (``propose``), by default :func:`local_moves`, a random local change of one member
(swap two features' subchannels, move a feature to an unused subchannel, change a modulation,
move power between two features, add or drop a feature). [OUR CHOICE] for (P0):

- a candidate is a selection, matching and modulations with the powers of (P0); after a
  structural move the powers are the optimal ones for that structure
  (:func:`optim.optimal_power.optimal_power`), and the power move explores around them;
- the noisy evaluation is the objective under a perturbation of the gains
  ``g_k exp(noise z_k - noise^2 / 2)``, ``z_k ~ N(0, 1)`` (a log-normal, mean-preserving error
  of the channel knowledge; ``noise=0``: the exact objective), as the reward
  ``1 - J / J_drop`` (``J_drop``: the cost of sending nothing; ``-J`` when that is 0);
- the embedding of an allocation lists, per feature, whether it is sent, its modulation index
  over ``M``, its subchannel's gain over the largest gain and its power over ``P_tot``
  (these determine its objective, so allocations at distance 0 score alike);
- the memory starts with sending nothing and the ``start`` methods' allocations (their
  selection, matching and modulations with the optimal powers).

Every candidate meets the symbol and power budgets and the one-feature-per-subchannel rule
(moves that would not are not proposed), so the result is feasible. A batch of frames
(:func:`polca_batch`) runs the search frame by frame: the search is sequential, each step
depending on the previous evaluations, so it does not vectorise over frames.

Examples:
    >>> from optim.problem import random_problem
    >>> p = random_problem(5, 5, seed=0)
    >>> polca(p, budget=60, seed=1).is_feasible(p)
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from channels.errors import ConfigError, check_int, check_real, check_seed, fail
from optim.batch.score import frame_objectives
from optim.batch.solve import BatchResult, check_gains
from optim.distortion import dropped_cost
from optim.optimal_power import optimal_power
from optim.problem import Allocation, Problem

MOVES = ("swap", "move", "modulation", "power", "add", "drop")
"""The local moves of :func:`local_moves`."""


# ------------------------------------------------------------------- memory and priority
@dataclass
class EpsNet:
    """Members pairwise at least ``eps`` apart (and never equal) in their embeddings.

    Attributes:
        eps: the separation (``>= 0``; 0 keeps every distinct embedding).
        members: the kept candidates, in insertion order.
        embeddings: float64 [n, D] rows, one per member.
    """

    eps: float
    members: list[Any] = field(default_factory=list)
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.members)

    def nearest(self, x: np.ndarray) -> tuple[int, float]:
        """``(index, Euclidean distance)`` of the member nearest ``x`` (``(-1, inf)`` when
        empty; ties to the lower index)."""
        if self.embeddings is None or not len(self.members):
            return -1, math.inf
        d = np.sqrt(((self.embeddings - x) ** 2).sum(axis=1))
        i = int(np.argmin(d))
        return i, float(d[i])

    def add(self, candidate: Any, embedding: Any) -> tuple[int, bool]:
        """Insert ``candidate`` when it is at least ``eps`` from every member and equal to
        none; returns ``(its index, True)``, else ``(index of the nearest member, False)``."""
        x = np.asarray(embedding, dtype=np.float64).reshape(-1)
        i, d = self.nearest(x)
        if i >= 0 and (d < self.eps or d == 0.0):
            return i, False
        self.members.append(candidate)
        row = x[None, :]
        self.embeddings = row if self.embeddings is None else np.vstack([self.embeddings, row])
        return len(self.members) - 1, True


class UCBQueue:
    """Members waiting to be evaluated, popped by the largest upper confidence bound.

    ``ucb(i) = mean_i + c sqrt(ln(1 + t) / n_i)``: ``n_i`` evaluations of member ``i`` with mean
    ``mean_i``, ``t`` evaluations of all members; ``+inf`` while ``n_i = 0``. Priorities change
    with every evaluation, so :meth:`pop` scans the queued members (the memory is small).
    """

    def __init__(self, c: float = 1.0) -> None:
        self.c = float(c)
        self.counts: list[int] = []
        self.sums: list[float] = []
        self.total = 0
        self._queued: set[int] = set()

    def __len__(self) -> int:
        return len(self._queued)

    def _grow(self, i: int) -> None:
        while len(self.counts) <= i:
            self.counts.append(0)
            self.sums.append(0.0)

    def push(self, i: int) -> None:
        """Queue member ``i`` (again)."""
        self._grow(i)
        self._queued.add(i)

    def update(self, i: int, reward: float) -> None:
        """Record one evaluation of member ``i``."""
        self._grow(i)
        self.counts[i] += 1
        self.sums[i] += float(reward)
        self.total += 1

    def mean(self, i: int) -> float:
        """Mean evaluation of member ``i`` (``-inf`` when never evaluated)."""
        return self.sums[i] / self.counts[i] if self.counts[i] else -math.inf

    def ucb(self, i: int) -> float:
        """The priority of member ``i``."""
        n = self.counts[i]
        if n == 0:
            return math.inf
        return self.sums[i] / n + self.c * math.sqrt(math.log(1 + self.total) / n)

    def pop(self) -> int:
        """Remove and return the queued member with the largest UCB (ties: lower index)."""
        if not self._queued:
            raise IndexError("pop from an empty UCBQueue")
        best = max(sorted(self._queued), key=self.ucb)  # max keeps the first of equal ones
        self._queued.discard(best)
        return best

    def best(self) -> int:
        """The evaluated member with the largest mean (ties: more evaluations, lower index);
        -1 when none is evaluated."""
        seen = [i for i in range(len(self.counts)) if self.counts[i]]
        if not seen:
            return -1
        return max(seen, key=lambda i: (self.mean(i), self.counts[i], -i))


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`polca_search`: the ``best`` member, its index and mean reward, the
    memory ``net``, the ``queue`` with every member's evaluations, ``evaluations`` spent."""

    best: Any
    index: int
    mean: float
    net: EpsNet
    queue: UCBQueue
    evaluations: int


def polca_search(
    initial: Sequence[Any],
    evaluate: Callable[[Any, np.random.Generator], float],
    propose: Callable[[Any, np.random.Generator], Sequence[Any]],
    embed: Callable[[Any], np.ndarray],
    *,
    budget: int,
    eps: float,
    ucb_c: float = 1.0,
    batch: int = 1,
    n_proposals: int = 2,
    rng: np.random.Generator | None = None,
) -> SearchResult:
    """The POLCA loop (module docstring) over any candidates; rewards are maximised.

    Args:
        initial: the first candidates (at least one), each evaluated once and filtered by the
            net like proposals.
        evaluate: ``(candidate, rng) -> reward``, one noisy evaluation.
        propose: ``(candidate, rng) -> candidates`` derived from a member.
        embed: ``candidate -> float vector``, the space of the net.
        budget: number of evaluations (``>= 1``).
        eps: the net's separation (``>= 0``).
        ucb_c: the exploration weight ``c >= 0``.
        batch: members popped per iteration (``>= 1``).
        n_proposals: ``propose`` calls per popped member (``>= 1``).
        rng: the generator of evaluations and proposals.

    Returns:
        :class:`SearchResult`.
    """
    budget = check_int("budget", budget, 1)
    eps = check_real("eps", eps, 0)
    ucb_c = check_real("ucb_c", ucb_c, 0)
    batch = check_int("batch", batch, 1)
    n_proposals = check_int("n_proposals", n_proposals, 1)
    if not len(initial):
        raise fail("initial", initial, "at least one candidate")
    rng = np.random.default_rng() if rng is None else rng
    net, queue = EpsNet(eps), UCBQueue(ucb_c)
    used = 0

    def visit(candidate: Any) -> None:
        nonlocal used
        x = np.asarray(embed(candidate), dtype=np.float64).reshape(-1)
        if net.nearest(x)[1] == 0.0:
            return  # a member again: nothing new to learn from it
        reward = evaluate(candidate, rng)
        used += 1
        i, new = net.add(candidate, x)
        queue.update(i, reward)  # a near-duplicate's evaluation counts for its nearest member
        if new:
            queue.push(i)

    for candidate in initial:
        if used < budget:
            visit(candidate)
    while used < budget and len(queue):
        picks = [queue.pop() for _ in range(min(batch, len(queue)))]
        for i in picks:
            if used < budget:
                queue.update(i, evaluate(net.members[i], rng))
                used += 1
        for i in picks:
            for _ in range(n_proposals):
                for candidate in propose(net.members[i], rng):
                    if used < budget:
                        visit(candidate)
            queue.push(i)
    best = queue.best()
    return SearchResult(net.members[best], best, queue.mean(best), net, queue, used)


# ---------------------------------------------------------------- allocations as candidates
@dataclass(frozen=True, eq=False)
class Candidate:
    """An allocation in per-feature form: ``subchannel``, ``modulation`` int64 [N] (``-1``:
    not sent) and ``power`` float64 [N] (0 when not sent)."""

    subchannel: np.ndarray
    modulation: np.ndarray
    power: np.ndarray

    @property
    def sent(self) -> np.ndarray:
        """Indices of the features sent."""
        return np.flatnonzero(self.subchannel >= 0)

    def allocation(self, problem: Problem) -> Allocation:
        """As an :class:`~optim.problem.Allocation` (features in index order)."""
        f = self.sent
        mods = tuple(problem.modulations[m] for m in self.modulation[f])
        return Allocation(f, self.subchannel[f], mods, self.power[f])


def from_allocation(problem: Problem, allocation: Allocation) -> Candidate:
    """The :class:`Candidate` of an allocation."""
    n = problem.n_features
    sub, mod, power = np.full(n, -1), np.full(n, -1), np.zeros(n)
    sel = allocation.selected
    sub[sel] = allocation.subchannel
    mod[sel] = [problem.modulation_index(m) for m in allocation.modulation]
    power[sel] = allocation.power
    return Candidate(sub, mod, power)


def embed_candidate(problem: Problem, candidate: Candidate) -> np.ndarray:
    """Per feature: sent, modulation ``(m + 1) / M``, gain ``g / max g``, power ``p / P_tot``
    (each 0 when not sent or when the scale is 0), flattened to float64 [4 N]."""
    sent = candidate.subchannel >= 0
    g_max = float(problem.gains.max()) if problem.n_subchannels else 0.0
    gain = problem.gains[np.maximum(candidate.subchannel, 0)] if problem.n_subchannels else 0.0
    rows = np.stack([
        sent.astype(np.float64),
        np.where(sent, (candidate.modulation + 1) / len(problem.modulations), 0.0),
        np.where(sent, gain / g_max, 0.0) if g_max > 0 else np.zeros(sent.size),
        candidate.power / problem.power_budget if problem.power_budget > 0 else np.zeros(sent.size),
    ])  # fmt: skip
    return rows.T.reshape(-1)


def optimal_candidate(problem: Problem, sub: np.ndarray, mod: np.ndarray) -> Candidate:
    """The candidate of a structure (subchannel, modulation [N]) with its optimal powers."""
    f = np.flatnonzero(sub >= 0)
    power = np.zeros(sub.size)
    if f.size:
        names = [problem.modulations[m] for m in mod[f]]
        power[f] = optimal_power(problem, f, sub[f], names)
    return Candidate(sub, mod, power)


def local_moves(
    problem: Problem,
    candidate: Candidate,
    rng: np.random.Generator,
    moves: Sequence[str] = MOVES,
) -> list[Candidate]:
    """One random local change of ``candidate`` among those of ``moves`` (default all of
    :data:`MOVES`) that apply (none: an empty list); always within the symbol and power
    budgets."""
    sub, mod = candidate.subchannel, candidate.modulation
    sent = np.flatnonzero(sub >= 0)
    unsent = np.flatnonzero((sub < 0) & (problem.weights > 0))
    free = np.setdiff1d(np.arange(problem.n_subchannels), sub[sent])
    table = problem.symbol_table
    used = int(table[sent, mod[sent]].sum())
    applies = {
        "swap": sent.size >= 2,
        "power": sent.size >= 2,
        "move": sent.size > 0 and free.size > 0,
        "modulation": sent.size > 0 and len(problem.modulations) > 1,
        "drop": sent.size > 0,
        "add": unsent.size > 0 and free.size > 0 and problem.power_budget > 0,
    }
    options = [m for m in MOVES if m in moves and applies[m]]
    if not options:
        return []
    move = options[int(rng.integers(len(options)))]
    sub, mod = sub.copy(), mod.copy()
    if move == "power":
        i, j = rng.choice(sent, size=2, replace=False)
        power = candidate.power.copy()
        shift = float(rng.uniform()) * power[i]
        power[i] -= shift
        power[j] += shift
        return [Candidate(sub, mod, power)]
    if move == "swap":
        i, j = rng.choice(sent, size=2, replace=False)
        sub[i], sub[j] = sub[j], sub[i]
    elif move == "move":
        sub[rng.choice(sent)] = rng.choice(free)
    elif move == "drop":
        i = rng.choice(sent)
        sub[i], mod[i] = -1, -1
    elif move == "modulation":
        i = rng.choice(sent)
        fits = np.flatnonzero(used - table[i, mod[i]] + table[i] <= problem.symbol_budget)
        fits = fits[fits != mod[i]]
        if not fits.size:
            return []
        mod[i] = rng.choice(fits)
    else:  # add
        i = rng.choice(unsent)
        fits = np.flatnonzero(used + table[i] <= problem.symbol_budget)
        if not fits.size:
            return []
        sub[i], mod[i] = rng.choice(free), rng.choice(fits)
    return [optimal_candidate(problem, sub, mod)]


def candidate_objective(problem: Problem, candidate: Candidate, gains: np.ndarray) -> float:
    """(P0) of ``candidate`` with the subchannel gains ``gains [K]``."""
    sel = candidate.subchannel >= 0
    return float(
        frame_objectives(
            problem, gains[None, :], sel[None], candidate.subchannel[None],
            candidate.modulation[None], candidate.power[None],
        )[0]
    )  # fmt: skip


# ---------------------------------------------------------------------------- the method
def _check(options: dict[str, Any]) -> dict[str, Any]:
    from optim.methods import METHODS

    out = {
        "budget": check_int("budget", options["budget"], 1, 1_000_000),
        "eps": check_real("eps", options["eps"], 0),
        "noise": check_real("noise", options["noise"], 0, 10),
        "ucb_c": check_real("ucb_c", options["ucb_c"], 0),
        "batch": check_int("batch", options["batch"], 1),
        "n_proposals": check_int("n_proposals", options["n_proposals"], 1),
    }
    propose = options["propose"]
    if propose is not None and not callable(propose):
        raise fail("propose", propose, "None or a function (problem, candidate, rng) -> list")
    out["propose"] = propose
    start = options["start"]
    start = (start,) if isinstance(start, str) else start
    if not isinstance(start, Sequence):
        raise fail("start", start, "a list of deterministic method names")
    names = []
    for name in start:
        entry = METHODS[name]
        if entry.randomised or entry.name == "polca":
            raise fail("start", name, "deterministic method names other than polca")
        names.append(entry.name)
    out["start"] = tuple(names)
    moves = options["moves"]
    moves = (moves,) if isinstance(moves, str) else moves
    if not isinstance(moves, Sequence) or not moves or any(m not in MOVES for m in moves):
        raise fail("moves", moves, "a non-empty list of " + ", ".join(MOVES))
    out["moves"] = tuple(moves)
    return out


def polca(
    problem: Problem,
    *,
    budget: int = 200,
    eps: float = 0.05,
    noise: float = 0.2,
    ucb_c: float = 0.01,
    batch: int = 1,
    n_proposals: int = 2,
    propose: Callable[[Problem, Candidate, np.random.Generator], list[Candidate]] | None = None,
    start: Sequence[str] = ("lowest-order",),
    moves: Sequence[str] = MOVES,
    seed: int | np.random.Generator | None = 0,
) -> Allocation:
    """The ``polca`` allocation of one problem (module docstring).

    Args:
        problem: the instance.
        budget: noisy evaluations in all (``1..1000000``).
        eps: separation of the memory in the embedding (``>= 0``).
        noise: standard deviation of the log-normal gain perturbation of each evaluation
            (``0..10``; 0: exact evaluations).
        ucb_c: exploration weight of the priority (rewards are ``1 - J / J_drop``, so
            differences between allocations are fractions of the cost of sending nothing).
        batch: members popped per iteration.
        n_proposals: proposals per popped member.
        propose: ``(problem, candidate, rng) -> list of Candidate`` (default
            :func:`local_moves`); proposals that break a budget are discarded.
        start: deterministic methods whose allocations join the first memory (with
            sending nothing).
        moves: the local moves of the default proposer, a subset of :data:`MOVES`.
        seed: seed of the evaluations and proposals.

    Returns:
        A feasible :class:`~optim.problem.Allocation`: the member with the best mean reward.

    Raises:
        ConfigError: a bad option value, before any work.
    """
    if not isinstance(problem, Problem):
        raise ConfigError(f"problem: {type(problem).__name__} is invalid; allowed: optim.Problem")
    opts = _check(dict(budget=budget, eps=eps, noise=noise, ucb_c=ucb_c, batch=batch,
                       n_proposals=n_proposals, propose=propose, start=start,
                       moves=moves))  # fmt: skip
    rng = np.random.default_rng(check_seed("seed", seed, generator=True))
    return _search(problem, opts, rng)


def _search(problem: Problem, opts: dict[str, Any], rng: np.random.Generator) -> Allocation:
    from optim.methods import solve

    n = problem.n_features
    nothing = Candidate(np.full(n, -1), np.full(n, -1), np.zeros(n))
    initial = [nothing]
    for name in opts["start"]:  # the start's structure, with the optimal powers of (P0)
        c = from_allocation(problem, solve(problem, name).allocation)
        initial.append(optimal_candidate(problem, c.subchannel, c.modulation))
    drop = dropped_cost(problem)
    noise = opts["noise"]

    def evaluate(candidate: Candidate, gen: np.random.Generator) -> float:
        gains = problem.gains
        if noise > 0:
            gains = gains * np.exp(noise * gen.standard_normal(gains.size) - 0.5 * noise**2)
        value = candidate_objective(problem, candidate, gains)
        return 1.0 - value / drop if drop > 0 else -value

    user = opts["propose"]

    def propose(candidate: Candidate, gen: np.random.Generator) -> list[Candidate]:
        if user is None:  # feasible by construction
            return local_moves(problem, candidate, gen, opts["moves"])
        out = user(problem, candidate, gen)
        return [c for c in out if c.allocation(problem).is_feasible(problem)]

    result = polca_search(
        initial, evaluate, propose, lambda c: embed_candidate(problem, c),
        budget=opts["budget"], eps=opts["eps"], ucb_c=opts["ucb_c"], batch=opts["batch"],
        n_proposals=opts["n_proposals"], rng=rng,
    )  # fmt: skip
    return result.best.allocation(problem)


def polca_batch(template: Problem, gains: Any, **options: Any) -> BatchResult:
    """``polca`` for every frame of ``gains [B, K]``, frame by frame (the search is
    sequential); an integer ``seed`` is every frame's seed, None a fresh one per frame."""
    defaults = dict(budget=200, eps=0.05, noise=0.2, ucb_c=0.01, batch=1, n_proposals=2,
                    propose=None, start=("lowest-order",), moves=MOVES)  # fmt: skip
    for key in options:
        if key not in (*defaults, "seed"):
            raise ConfigError(
                f"option: {key!r} is not accepted by method 'polca'; allowed: "
                + ", ".join((*defaults, "seed"))
            )
    seed = check_seed("seed", options.pop("seed", 0), generator=True)
    if isinstance(seed, np.random.Generator):
        raise ConfigError("seed: Generator is not supported by solve_batch; allowed: an "
                          "integer >= 0 or None")  # fmt: skip
    opts = _check({**defaults, **options})
    arr = check_gains(gains, template)
    frames, k = arr.shape
    if k != template.n_subchannels:
        template = template.replace(gains=np.zeros(k))
    n = template.n_features
    selected = np.zeros((frames, n), dtype=bool)
    subchannel = np.full((frames, n), -1, dtype=np.int64)
    modulation = np.full((frames, n), -1, dtype=np.int64)
    power = np.zeros((frames, n))
    for b in range(frames):
        problem = template.replace(gains=arr[b])
        c = from_allocation(problem, _search(problem, opts, np.random.default_rng(seed)))
        selected[b] = c.subchannel >= 0
        subchannel[b], modulation[b], power[b] = c.subchannel, c.modulation, c.power
    objective = frame_objectives(template, arr, selected, subchannel, modulation, power)
    return BatchResult("polca", selected, subchannel, modulation, power, objective)
