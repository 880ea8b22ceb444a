"""ReAGent (Zhao & Shan, arXiv:2402.00794): recursive replacement-based feature attribution.

ReAGent attributes a generative LM's next-token prediction to its context tokens without
gradients: it repeatedly replaces a random part of the context and moves the importance logits
of the replaced tokens up, and those of the kept tokens down, by how much the prediction
dropped. Here the tokens are the ``N`` features, the "prediction" is the subset value
``v(S) = −E_x MSE(x, g(z ⊙ m_S))`` (:mod:`semcom.importance.value_function`), and a replaced
feature is filled as the game fills an absent one: zero-filled by default, as the link does for
a lost feature, or taken from another image with ``fill="other-image"`` (closer to the paper's
in-distribution replacement; the paper samples replacement tokens from RoBERTa).

One chain, with ``s(S) = (v(S) − v(∅)) / |v(V) − v(∅)|``:

1. ``l ~ U[0, 1)^N`` (random initial logits).
2. Repeat: draw ``R``, ``round(ratio · N)`` features (at least 1, at most ``N − 1``), uniformly;
   ``Δ = s(V) − s(V ∖ R)``, the normalised drop of the value when ``R`` is replaced, clipped
   to ``(−1, 1)``; update

       l_j ← l_j + logit(½ + ½ Δ) · (+1 if j ∈ R else −1),     logit(½ + ½ Δ) = 2 artanh Δ.

3. Stop when the ``top_n = ceil(top_n_ratio · N)`` features of largest ``l`` are sufficient:
   ``v(T) − v(∅) >= stop_fraction · (v(V) − v(∅))`` with everything else replaced (the paper:
   the target stays among the top-k predictions), or after ``max_steps`` steps.
   ``stop_fraction=None`` skips the check (always ``max_steps`` steps, half the evaluations).

The importance is ``softmax(l)``; ``n_chains`` independent chains (the paper's aggregation
batch) run in parallel and their softmax distributions are averaged. The paper averages over
the chains that met the stopping condition only; here every chain counts (a chain that ran
``max_steps`` steps is, if anything, better converged). A game with ``v(V) = v(∅)`` has nothing
to attribute and gets the uniform profile.

For a linear game ``v(S) = Σ_{i∈S} w_i`` the expected update of ``l_j`` increases with ``w_j``
(replacing a heavier feature drops the value more), so the logits rank the features by ``w``.
Because the logits accumulate, ``softmax(l)`` sharpens with the number of steps: the weights
are more concentrated than masking's even when the ranking agrees.

Cost: at most ``2 · n_chains`` subsets per step (the update and the stopping check), so
``2000`` subsets for the defaults at most (masking at ``N = 16``: 17), each one decoder pass
per image; repeated subsets are cached.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from channels.errors import check_int, fail
from semcom.importance.base import IMPORTANCE
from semcom.importance.value_function import (
    SubsetGameEstimator,
    SubsetValue,
    ValueFn,
    check_seed,
    check_unit,
    evaluate,
)

DELTA_CLIP = 1.0 - 1e-6
"""``|Δ|`` is clipped below 1 so that ``logit(½ + ½ Δ)`` stays finite (at most about 14.5)."""


@dataclass(frozen=True)
class ReagentResult:
    """Outcome of :func:`reagent`.

    Attributes:
        importance: float64 ``[N]``, the mean over chains of ``softmax(l)`` (sums to 1).
        logits: float64 ``[chains, N]``, the final logits.
        steps: int64 ``[chains]``, update steps run.
        stopped: bool ``[chains]``, whether the stopping condition was met.
    """

    importance: np.ndarray
    logits: np.ndarray
    steps: np.ndarray
    stopped: np.ndarray


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _ratio(field: str, value: float) -> float:
    number = check_unit(field, value)
    if number >= 1.0:
        raise fail(field, value, "a number in (0, 1)")
    return number


def _stop_fraction(value: float | None) -> float | None:
    return None if value is None else check_unit("stop_fraction", value)


def reagent(
    value_fn: ValueFn,
    n: int,
    ratio: float = 0.3,
    top_n_ratio: float = 0.3,
    stop_fraction: float | None = 0.9,
    max_steps: int = 200,
    n_chains: int = 5,
    seed: int = 0,
) -> ReagentResult:
    """ReAGent importance of ``n`` players of ``value_fn``; see the module docstring.

    Args:
        value_fn: bool ``[M, n]`` -> float64 ``[M]``.
        n: number of players.
        ratio: fraction of the players replaced per step, in (0, 1).
        top_n_ratio: the stopping check keeps the ``ceil(top_n_ratio · n)`` top players.
        stop_fraction: share of ``v(V) − v(∅)`` the kept players must retain to stop, in (0, 1];
            None: no stopping condition.
        max_steps: largest number of update steps per chain.
        n_chains: independent chains averaged.
        seed: seeds the initial logits and the replacements.

    Returns:
        A :class:`ReagentResult`.

    Examples:
        >>> import numpy as np
        >>> only_two = lambda s: s[:, 2].astype(float)     # the value depends on player 2 only
        >>> res = reagent(only_two, 6, seed=1)
        >>> int(res.importance.argmax()), bool(res.stopped.all()), float(res.importance.sum())
        (2, True, 1.0)
    """
    n = check_int("n_features", n, 1)
    ratio = _ratio("ratio", ratio)
    top_n_ratio = check_unit("top_n_ratio", top_n_ratio)
    stop_fraction = _stop_fraction(stop_fraction)
    max_steps = check_int("max_steps", max_steps, 1)
    n_chains = check_int("n_chains", n_chains, 1)
    rng = np.random.default_rng(check_seed(seed))
    logits = rng.random((n_chains, n))
    steps = np.zeros(n_chains, dtype=np.int64)
    stopped = np.zeros(n_chains, dtype=bool)
    ends = evaluate(value_fn, np.array([np.zeros(n, bool), np.ones(n, bool)]))
    v_empty, v_full = float(ends[0]), float(ends[1])
    if n == 1 or v_full == v_empty:
        return ReagentResult(np.full(n, 1.0 / n), logits, steps, stopped)
    scale = abs(v_full - v_empty)
    replaced = min(max(1, round(ratio * n)), n - 1)
    top_n = min(n, math.ceil(top_n_ratio * n))
    active = np.ones(n_chains, dtype=bool)
    for _ in range(max_steps):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        picks = np.argsort(rng.random((rows.size, n)), axis=1)[:, :replaced]
        mask = np.zeros((rows.size, n), dtype=bool)
        np.put_along_axis(mask, picks, True, axis=1)
        delta = (v_full - evaluate(value_fn, ~mask)) / scale
        gain = 2.0 * np.arctanh(np.clip(delta, -DELTA_CLIP, DELTA_CLIP))  # logit(½ + ½Δ)
        logits[rows] += gain[:, None] * np.where(mask, 1.0, -1.0)
        steps[rows] += 1
        if stop_fraction is None:
            continue
        top = np.argsort(-logits[rows], axis=1, kind="stable")[:, :top_n]
        kept = np.zeros((rows.size, n), dtype=bool)
        np.put_along_axis(kept, top, True, axis=1)
        hit = evaluate(value_fn, kept) - v_empty >= stop_fraction * (v_full - v_empty)
        stopped[rows[hit]] = True
        active[rows[hit]] = False
    return ReagentResult(_softmax(logits).mean(axis=0), logits, steps, stopped)


@IMPORTANCE.register(
    "reagent",
    description="ReAGent: recursive replacement-based attribution (softmax of accumulated logits)",
    paper="arXiv:2402.00794",
)
class ReagentImportance(SubsetGameEstimator):
    """ReAGent importance of the features in the game ``v(S) = −E_x MSE(x, g(z ⊙ m_S))``.

    ``raw_importances_`` is the chain-averaged ``softmax(l)`` (positive, sums to 1).

    Args:
        batch_size: images per encoder pass and per masked decode.
        decode_batch: largest number of latents per decoder call (memory only).
        fill: how a replaced feature is filled: ``"zero"`` (default, the link's erasure) or
            ``"other-image"`` (the same feature of another image); see :class:`SubsetValue`.
        ratio: fraction of the features replaced per step (default 0.3, the paper's).
        top_n_ratio: features kept by the stopping check (default 0.3 of ``N``).
        stop_fraction: value share the kept features must retain to stop (default 0.9);
            None: no stopping condition.
        max_steps: largest number of steps per chain (default 200).
        n_chains: chains averaged (default 5, the paper's aggregation batch).
        seed: seeds the initial logits, the replacements and the ``other-image`` derangement.

    Attributes (after ``fit``): ``logits_`` ``[n_chains, N]``, ``steps_``, ``stopped_``,
    ``n_evaluations_``.

    Examples:
        >>> import torch
        >>> class Toy(torch.nn.Module):          # x = A z with A = diag(1, 2, 1)
        ...     n_features, scalars_per_feature = 3, 1
        ...     a = torch.tensor([[1.0], [2.0], [1.0]])
        ...     def encode(self, x): return x.reshape(-1, 3, 1) / self.a
        ...     def decode(self, z): return (z * self.a).reshape(-1, 1, 1, 3)
        >>> x = torch.tensor([[[[0.1, 0.9, 0.3]]]])
        >>> ReagentImportance(seed=0).fit(Toy(), x).importances_.argmax()
        np.int64(1)
    """

    name = "reagent"

    def __init__(
        self,
        batch_size: int = 256,
        decode_batch: int = 4096,
        fill: str = "zero",
        ratio: float = 0.3,
        top_n_ratio: float = 0.3,
        stop_fraction: float | None = 0.9,
        max_steps: int = 200,
        n_chains: int = 5,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, decode_batch, fill)
        self.ratio = _ratio("ratio", ratio)
        self.top_n_ratio = check_unit("top_n_ratio", top_n_ratio)
        self.stop_fraction = _stop_fraction(stop_fraction)
        self.max_steps = check_int("max_steps", max_steps, 1)
        self.n_chains = check_int("n_chains", n_chains, 1)
        self.seed = check_seed(seed)

    def _attribute(self, value_fn: SubsetValue, n: int) -> np.ndarray:
        result = reagent(
            value_fn,
            n,
            self.ratio,
            self.top_n_ratio,
            self.stop_fraction,
            self.max_steps,
            self.n_chains,
            self.seed,
        )
        self.logits_ = result.logits
        self.steps_ = result.steps
        self.stopped_ = result.stopped
        return result.importance


__all__ = ["DELTA_CLIP", "ReagentImportance", "ReagentResult", "reagent"]
