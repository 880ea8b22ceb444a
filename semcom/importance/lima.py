"""LiMA (Chen et al., arXiv:2504.00470): feature ranking by submodular subset selection.

LiMA ranks interpretable regions by greedily building the subset that maximises a submodular
score, with a *bidirectional* greedy search that also grows a set of the least important
regions from the other end. Here the regions are the ``N`` features and the model is queried
only through the subset value ``v(S)`` (:mod:`semcom.importance.value_function`); scores are
normalised by the game's range, ``s(S) = (v(S) − v(∅)) / |v(V) − v(∅)|``.

Score of a subset ``S`` (the paper's four terms, mapped onto a reconstruction game):

    F(S) = λ_cons · s(S)                       consistency: the value with only S sent
         + λ_coll · (s(V) − s(V ∖ S))          collaboration: the value lost when S is removed
         + λ_eff  · Σ_{i∈S} min_{j∈S, j≠i} d_ij   effectiveness: diversity of S (1 for |S| = 1)

``d_ij ∈ [0, 1]`` is the angular distance between the features' lone contributions to the
reconstruction (``SubsetValue.contribution_distance``: the paper embeds each region alone with
the model; our "embedding" is ``g(z ⊙ m_{i}) − g(0)`` over the images). The paper's fourth
term, confidence ``1 − H(p(S)) / log C``, needs a predictive distribution over classes; a
reconstruction has none, so it is left out (our choice).

Bidirectional greedy (the authors' efficient variant): with forward list ``S``, tail list
``T`` and the remaining candidates ``C``, each step

1. appends ``a = argmax_{c∈C} F(S ∪ {c})`` to ``S``;
2. while ``|C| > pending``: ranks the candidates by the cheap proxy
   ``λ_cons s(S ∪ {c}) + λ_coll (s(V) − s(V ∖ (S ∪ {c}))) + λ_eff Eff(T ∪ {c})`` (the forward
   values, already computed), keeps the ``pending`` lowest (without ``a``), and appends
   ``b = argmin F(T ∪ {c})`` over them to ``T``;

until ``C`` is empty. The ranking is ``S`` followed by ``T`` reversed (the first tail pick is
the least important). Ties go to the lower feature index, so the result is deterministic.

Importances from the ranking (``weights``):

- ``"gain"`` (default): ``w̃_i = v(R_{≤i}) − v(R_{<i})``, the value that feature ``i`` adds when
  the features join in ranking order (the steps of the insertion curve). For an additive game
  ``v(S) = Σ_{i∈S} w_i`` the ranking is the descending order of ``w`` and ``w̃ = w`` exactly.
- ``"rank"``: ``w̃_i = (N − position_i) / N`` (a Borda count: 1 for the first, 1/N the last).

Cost: about ``Σ 2|C|`` subsets over the steps plus ``2·pending`` per tail pick and ``N + 1``
decoder passes for the distances: 255 subsets at ``N = 16`` with ``pending = 8`` (masking:
17), each one decoder pass per image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from channels.errors import check_int, fail
from semcom.importance.base import IMPORTANCE
from semcom.importance.value_function import (
    SubsetGameEstimator,
    SubsetValue,
    ValueFn,
    check_nonnegative,
    evaluate,
)

WEIGHTS = ("gain", "rank")


@dataclass(frozen=True)
class LimaResult:
    """Outcome of :func:`bidirectional_greedy`.

    Attributes:
        ranking: int64 ``[N]``, a permutation, most important first.
        forward: int64, the forward picks in order.
        tail: int64, the tail picks in order (least important first).
        scores: float64, ``F(S)`` after each forward pick.
    """

    ranking: np.ndarray
    forward: np.ndarray
    tail: np.ndarray
    scores: np.ndarray


def effectiveness(subsets: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """``Σ_{i∈S} min_{j∈S, j≠i} d_ij`` per row of ``subsets`` (bool ``[M, N]``), ``[M]``.

    A single feature scores 1 (its own distance ``d_ii = 0`` is shifted by 1, as in the paper's
    code); the empty set scores 0.
    """
    shifted = distance + np.eye(distance.shape[0])
    inside = np.where(subsets[:, None, :], shifted[None, :, :], np.inf)  # [M, i, j]
    nearest = inside.min(axis=2)
    return np.where(subsets, nearest, 0.0).sum(axis=1)


def check_distance(distance: Any, n: int) -> np.ndarray:
    """A finite float64 ``[n, n]`` matrix or ConfigError."""
    arr = np.asarray(distance, dtype=np.float64)
    if arr.shape != (n, n) or not np.all(np.isfinite(arr)):
        raise fail("distance", f"array of shape {arr.shape}", f"a finite [{n}, {n}] matrix")
    return arr


def bidirectional_greedy(
    value_fn: ValueFn,
    n: int,
    consistency: float = 1.0,
    collaboration: float = 1.0,
    effectiveness_weight: float = 1.0,
    distance: np.ndarray | None = None,
    pending: int = 8,
) -> LimaResult:
    """LiMA's bidirectional greedy ranking of ``n`` players of the game ``value_fn``.

    Args:
        value_fn: bool ``[M, n]`` -> float64 ``[M]``.
        n: number of players.
        consistency, collaboration, effectiveness_weight: ``λ_cons, λ_coll, λ_eff >= 0``.
        distance: ``[n, n]`` distances for the effectiveness term; None: the term is 0.
        pending: candidates examined for each tail pick; the tail grows while more than
            ``pending`` candidates remain (``pending >= n − 1``: forward greedy only).

    Returns:
        A :class:`LimaResult`.

    Examples:
        >>> import numpy as np
        >>> w = np.array([0.1, 0.5, 0.2, 0.9, 0.3])
        >>> bidirectional_greedy(lambda s: s @ w, 5, pending=2).ranking
        array([3, 1, 4, 2, 0])
    """
    n = check_int("n_features", n, 1)
    lam = np.array(
        [
            check_nonnegative("consistency", consistency),
            check_nonnegative("collaboration", collaboration),
            check_nonnegative("effectiveness", effectiveness_weight),
        ]
    )
    if not lam.any():
        raise fail("consistency", consistency, "weights with at least one > 0")
    pending = check_int("pending", pending, 1)
    dist = None if distance is None else check_distance(distance, n)
    ends = evaluate(value_fn, np.array([np.zeros(n, bool), np.ones(n, bool)]))
    v_empty, v_full = float(ends[0]), float(ends[1])
    scale = abs(v_full - v_empty) or 1.0

    def s(values: np.ndarray) -> np.ndarray:
        return (values - v_empty) / scale

    def eff(sets: np.ndarray) -> np.ndarray:
        return np.zeros(sets.shape[0]) if dist is None else effectiveness(sets, dist)

    def terms(sets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Consistency and collaboration of each row of ``sets`` (one batched call)."""
        vals = evaluate(value_fn, np.concatenate([sets, ~sets]))
        m = sets.shape[0]
        return s(vals[:m]), s(v_full) - s(vals[m:])

    forward: list[int] = []
    tail: list[int] = []
    scores: list[float] = []
    remaining = list(range(n))
    in_forward = np.zeros(n, dtype=bool)
    in_tail = np.zeros(n, dtype=bool)
    while remaining:
        cand = np.array(remaining)
        if cand.size == 1:
            sets = in_forward.copy()
            sets[cand[0]] = True
            cons, coll = terms(sets[None])
            scores.append(float(lam @ [cons[0], coll[0], eff(sets[None])[0]]))
            forward.append(int(cand[0]))
            break
        sets = np.repeat(in_forward[None], cand.size, axis=0)
        sets[np.arange(cand.size), cand] = True
        cons, coll = terms(sets)
        score = lam[0] * cons + lam[1] * coll + lam[2] * eff(sets)
        best = int(np.argmax(score))
        if cand.size > pending:
            tails = np.repeat(in_tail[None], cand.size, axis=0)
            tails[np.arange(cand.size), cand] = True
            proxy = lam[0] * cons + lam[1] * coll + lam[2] * eff(tails)
            low = [int(j) for j in np.argsort(proxy, kind="stable")[:pending] if j != best]
            t_cons, t_coll = terms(tails[low])
            t_score = lam[0] * t_cons + lam[1] * t_coll + lam[2] * eff(tails[low])
            worst = int(cand[low[int(np.argmin(t_score))]])
            tail.append(worst)
            in_tail[worst] = True
            remaining.remove(worst)
        pick = int(cand[best])
        forward.append(pick)
        scores.append(float(score[best]))
        in_forward[pick] = True
        remaining.remove(pick)
    ranking = np.array(forward + tail[::-1], dtype=np.int64)
    picks = np.array(forward, np.int64), np.array(tail, np.int64)
    return LimaResult(ranking, *picks, np.array(scores))


def ranking_gains(value_fn: ValueFn, ranking: np.ndarray) -> np.ndarray:
    """``w̃_i = v(R_{≤i}) − v(R_{<i})`` along ``ranking`` (a permutation), float64 ``[N]``."""
    n = ranking.size
    position = np.argsort(ranking)
    prefixes = position[None, :] < np.arange(n + 1)[:, None]  # row k: the first k features
    values = evaluate(value_fn, prefixes)
    gains = np.empty(n)
    gains[ranking] = np.diff(values)
    return gains


@IMPORTANCE.register(
    "lima",
    description="LiMA: bidirectional greedy submodular subset selection ranks the features",
    paper="arXiv:2504.00470",
)
class LimaImportance(SubsetGameEstimator):
    """LiMA ranking of the features in the game ``v(S) = −E_x MSE(x, g(z ⊙ m_S))``.

    Args:
        batch_size: images per encoder pass and per masked decode.
        decode_batch: largest number of latents per decoder call (memory only).
        fill: ``"zero"`` (the link) or ``"other-image"``; see :class:`SubsetValue`.
        consistency: ``λ_cons`` (default 1).
        collaboration: ``λ_coll`` (default 1).
        effectiveness: ``λ_eff`` (default 1; 0 skips the distance computation).
        pending: candidates examined per tail pick (default 8, the authors' setting).
        weights: ``"gain"`` (default) or ``"rank"``: how the ranking becomes importances.

    Attributes (after ``fit``): ``ranking_`` (int64 ``[N]``, most important first),
    ``n_evaluations_``. Deterministic (no random draws).

    Examples:
        >>> import torch
        >>> class Toy(torch.nn.Module):          # x = A z with A = diag(1, 2)
        ...     n_features, scalars_per_feature = 2, 1
        ...     def encode(self, x): return x.reshape(-1, 2, 1) / torch.tensor([[1.0], [2.0]])
        ...     def decode(self, z): return (z * torch.tensor([[1.0], [2.0]])).reshape(-1, 1, 1, 2)
        >>> est = LimaImportance().fit(Toy(), torch.tensor([[[[0.2, 0.6]]]]))
        >>> est.ranking_, est.importances_.round(6)
        (array([1, 0]), array([0.1, 0.9]))
    """

    name = "lima"

    def __init__(
        self,
        batch_size: int = 256,
        decode_batch: int = 4096,
        fill: str = "zero",
        consistency: float = 1.0,
        collaboration: float = 1.0,
        effectiveness: float = 1.0,
        pending: int = 8,
        weights: str = "gain",
    ) -> None:
        super().__init__(batch_size, decode_batch, fill)
        self.consistency = check_nonnegative("consistency", consistency)
        self.collaboration = check_nonnegative("collaboration", collaboration)
        self.effectiveness = check_nonnegative("effectiveness", effectiveness)
        if self.consistency == self.collaboration == self.effectiveness == 0:
            raise fail("consistency", consistency, "weights with at least one > 0")
        self.pending = check_int("pending", pending, 1)
        key = str(weights).strip().lower()
        if key not in WEIGHTS:
            raise fail("weights", weights, " or ".join(WEIGHTS))
        self.weights = key

    def _attribute(self, value_fn: SubsetValue, n: int) -> np.ndarray:
        distance = value_fn.contribution_distance() if self.effectiveness > 0 else None
        result = bidirectional_greedy(
            value_fn,
            n,
            self.consistency,
            self.collaboration,
            self.effectiveness,
            distance,
            self.pending,
        )
        self.ranking_ = result.ranking
        if self.weights == "rank":
            raw = np.empty(n)
            raw[result.ranking] = (n - np.arange(n)) / n
            return raw
        return ranking_gains(value_fn, result.ranking)


__all__ = [
    "LimaImportance",
    "LimaResult",
    "WEIGHTS",
    "bidirectional_greedy",
    "effectiveness",
    "ranking_gains",
]
