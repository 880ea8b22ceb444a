"""Data Shapley (Ghorbani & Zou, arXiv:1904.02868) on the features: TMC-, G- and exact Shapley.

The players are the ``N`` features and the game is a subset value function ``v`` (for a model,
``v(S) = −E_x MSE(x, g(z ⊙ m_S))``, :mod:`semcom.importance.value_function`). The Shapley value
of feature ``i`` is its marginal contribution averaged over the ``N!`` orders in which the
features can join:

    φ_i = E_π[ v(P_π^i ∪ {i}) − v(P_π^i) ]
        = Σ_{S ⊆ V∖{i}} |S|! (N − |S| − 1)! / N! · (v(S ∪ {i}) − v(S)),

``P_π^i`` the features before ``i`` in the order ``π``. It is the only attribution with
efficiency (``Σ_i φ_i = v(V) − v(∅)``), symmetry (interchangeable players get equal values),
the null-player property and linearity. Masking is the marginal to the full coalition only
(``v(V) − v(V∖{i})``); the two differ when features are redundant or interact.

Algorithms:

- ``exact_shapley``: enumeration of the ``2^N`` subsets, ``N <= 10`` (the reference).
- ``tmc_shapley`` (truncated Monte Carlo): random orders; along each order the marginals of
  the prefixes. Truncation, as in the paper: once the prefix value is within
  ``tolerance · |v(V) − v(∅)|`` of ``v(V)`` for more than ``patience`` consecutive positions,
  the rest of the order gets marginal 0. The paper's tolerance is relative to ``v(V)`` itself
  (an accuracy); a value here is minus an MSE that may be near 0, so the range is used.
  ``v(V)`` is exact (no bagging: the game is deterministic). Stops early when the running
  means moved by less than ``convergence`` (mean relative change over the last
  :data:`CONVERGENCE_WINDOW` orders, the paper's criterion), else after ``n_permutations``.
- ``g_shapley`` (gradient Shapley): the paper replaces "retrain on the prefix" by one SGD step
  per point, the marginal being the change that step makes. Nothing is trained here, so the
  mapping is the first-order one: the mask becomes real, ``m ∈ [0, 1]^N``, and the marginal of
  ``π_k`` is the gradient step's linear change ``∂v/∂m_{π_k}`` at the prefix mask
  (``SubsetValue.continuous``). For a multilinear game this equals the exact marginal; for a
  decoder it is a linearisation. It needs gradients and is not cheaper than TMC here (one
  forward and backward pass per prefix): it is offered for comparison, not speed.

Cost (decoder passes per image): exact ``2^N``; TMC at most ``n_permutations · N`` (less with
truncation and with repeated prefixes, which are cached); G ``n_permutations · N`` forward and
backward passes. Masking needs ``N + 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from channels.errors import ConfigError, check_int, fail
from semcom.importance.base import IMPORTANCE
from semcom.importance.value_function import (
    SubsetGameEstimator,
    SubsetValue,
    ValueFn,
    check_nonnegative,
    check_seed,
    evaluate,
)

EXACT_MAX_PLAYERS = 10
"""Largest ``N`` for :func:`exact_shapley` (``2^10 = 1024`` subsets)."""

CONVERGENCE_WINDOW = 50
"""Orders over which the running means must have settled (the convergence criterion)."""

ALGORITHMS = ("tmc", "g", "exact")


@dataclass(frozen=True)
class ShapleyEstimate:
    """A Monte Carlo Shapley estimate.

    Attributes:
        values: float64 ``[N]``, the mean marginal of each player.
        marginals: float64 ``[P, N]``, one row per order (0 after a truncation).
        permutations: int64 ``[P, N]``, the orders (``permutations[p, k]`` joins k-th).
        evaluated: int64 ``[P]``, positions evaluated per order (``N`` unless truncated).
    """

    values: np.ndarray
    marginals: np.ndarray
    permutations: np.ndarray
    evaluated: np.ndarray

    @property
    def stderr(self) -> np.ndarray:
        """Standard error of ``values`` over the orders, float64 ``[N]`` (NaN for one order)."""
        p = self.marginals.shape[0]
        if p < 2:
            return np.full(self.marginals.shape[1], np.nan)
        return self.marginals.std(axis=0, ddof=1) / math.sqrt(p)


def _players(n: Any) -> int:
    return check_int("n_features", n, 1)


def all_subsets(n: int) -> np.ndarray:
    """Every subset of ``n`` players as bool ``[2^n, n]``; row ``k`` holds the bits of ``k``."""
    codes = np.arange(2**n, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(bool)


def exact_shapley(value_fn: ValueFn, n: int) -> np.ndarray:
    """Shapley values by enumeration of all ``2^n`` subsets (``n <= 10``), float64 ``[n]``.

    Examples:
        >>> import numpy as np
        >>> def glove(s):          # v = 1 when player 0 and one of players 1, 2 are in
        ...     return (s[:, 0] & (s[:, 1] | s[:, 2])).astype(float)
        >>> exact_shapley(glove, 3).round(6)
        array([0.666667, 0.166667, 0.166667])
    """
    n = _players(n)
    if n > EXACT_MAX_PLAYERS:
        raise fail("n_features", n, f"at most {EXACT_MAX_PLAYERS} for exact enumeration")
    subsets = all_subsets(n)
    values = evaluate(value_fn, subsets)
    sizes = subsets.sum(axis=1)
    weight = np.array([1.0 / (n * math.comb(n - 1, s)) for s in range(n)])  # s!(n-s-1)!/n!
    codes = np.arange(2**n, dtype=np.int64)
    phi = np.empty(n, dtype=np.float64)
    for i in range(n):
        without = codes[((codes >> i) & 1) == 0]
        gain = values[without | (1 << i)] - values[without]
        phi[i] = float(np.sum(weight[sizes[without]] * gain))
    return phi


def _draw_orders(rng: np.random.Generator, count: int, n: int) -> np.ndarray:
    return np.stack([rng.permutation(n) for _ in range(count)]).astype(np.int64)


def _running_error(marginals: np.ndarray, window: int) -> float:
    """The paper's convergence error: max over the last ``window`` running means of the mean
    relative distance to the latest running mean; 1 while fewer than ``window`` orders."""
    p = marginals.shape[0]
    if p < window:
        return 1.0
    running = np.cumsum(marginals, axis=0) / np.arange(1, p + 1)[:, None]
    last = running[-window:]
    rel = np.abs(last - last[-1:]) / (np.abs(last[-1:]) + 1e-12)
    return float(rel.mean(axis=1).max())


def _tmc_round(
    value_fn: ValueFn,
    orders: np.ndarray,
    ends: tuple[float, float],
    tolerance: float,
    patience: int,
    chunk: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Marginals ``[P, N]`` and evaluated positions ``[P]`` of a batch of orders.

    Prefixes are evaluated ``chunk`` positions at a time for every order still running, so one
    value-function call covers many subsets; an order stops once truncated.
    """
    p, n = orders.shape
    v_empty, v_full = ends
    span = abs(v_full - v_empty)
    position = np.argsort(orders, axis=1)  # position[p, i]: when player i joins order p
    values = np.zeros((p, n + 1))
    values[:, 0] = v_empty
    evaluated = np.full(p, n, dtype=np.int64)
    counter = np.zeros(p, dtype=np.int64)
    active = np.ones(p, dtype=bool)
    for start in range(1, n + 1, chunk):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        ks = np.arange(start, min(start + chunk, n + 1))
        masks = position[rows][:, None, :] < ks[None, :, None]  # prefix k: first k players
        vals = evaluate(value_fn, masks.reshape(-1, n)).reshape(rows.size, ks.size)
        values[rows[:, None], ks[None, :]] = vals
        for j, row in enumerate(rows):
            for t, k in enumerate(ks):
                if abs(vals[j, t] - v_full) <= tolerance * span:
                    counter[row] += 1
                    if counter[row] > patience:
                        evaluated[row] = k
                        active[row] = False
                        break
                else:
                    counter[row] = 0
    steps = np.diff(values, axis=1)  # steps[p, k-1] = v(prefix k) - v(prefix k-1)
    steps[np.arange(n)[None, :] >= evaluated[:, None]] = 0.0
    marginals = np.zeros((p, n))
    np.put_along_axis(marginals, orders, steps, axis=1)
    return marginals, evaluated


def tmc_shapley(
    value_fn: ValueFn,
    n: int,
    n_permutations: int = 100,
    tolerance: float = 0.01,
    patience: int = 5,
    convergence: float = 0.0,
    seed: int = 0,
    batch_permutations: int = 16,
    chunk: int = 4,
) -> ShapleyEstimate:
    """Truncated Monte Carlo Shapley values of ``value_fn`` over ``n`` players.

    Args:
        value_fn: bool ``[M, n]`` -> float64 ``[M]``.
        n: number of players.
        n_permutations: largest number of random orders.
        tolerance: truncation band, a fraction of ``|v(V) − v(∅)|``; 0 disables truncation
            unless prefixes reach ``v(V)`` exactly.
        patience: a truncation needs more than this many consecutive prefixes in the band.
        convergence: stop once the running means settled to this relative change (over
            :data:`CONVERGENCE_WINDOW` orders); 0: always ``n_permutations`` orders.
        seed: seeds the orders (``numpy.random.default_rng``).
        batch_permutations: orders evaluated together (speed only).
        chunk: prefix positions per value-function call (speed only).

    Returns:
        A :class:`ShapleyEstimate`. Each untruncated order's marginals sum to
        ``v(V) − v(∅)`` exactly (a telescoping sum).
    """
    n = _players(n)
    n_permutations = check_int("n_permutations", n_permutations, 1)
    tolerance = check_nonnegative("tolerance", tolerance)
    patience = check_int("patience", patience, 0)
    convergence = check_nonnegative("convergence", convergence)
    rng = np.random.default_rng(check_seed(seed))
    ends = evaluate(value_fn, np.array([np.zeros(n, bool), np.ones(n, bool)]))
    parts, orders_all, evaluated_all = [], [], []
    done = 0
    while done < n_permutations:
        count = min(batch_permutations, n_permutations - done)
        orders = _draw_orders(rng, count, n)
        marginals, evaluated = _tmc_round(
            value_fn, orders, (float(ends[0]), float(ends[1])), tolerance, patience, chunk
        )
        parts.append(marginals)
        orders_all.append(orders)
        evaluated_all.append(evaluated)
        done += count
        if convergence > 0 and _running_error(np.concatenate(parts), CONVERGENCE_WINDOW) < (
            convergence
        ):
            break
    marginals = np.concatenate(parts)
    return ShapleyEstimate(
        marginals.mean(axis=0), marginals, np.concatenate(orders_all), np.concatenate(evaluated_all)
    )


def g_shapley(
    value_fn: Any,
    n: int,
    n_permutations: int = 100,
    seed: int = 0,
) -> ShapleyEstimate:
    """Gradient Shapley: first-order marginals ``∂v/∂m_{π_k}`` at each prefix mask.

    Args:
        value_fn: has ``continuous(masks: Tensor [M, n]) -> Tensor [M]``, differentiable in the
            masks and equal to the game on 0/1 masks (e.g. :class:`SubsetValue`).
        n: number of players.
        n_permutations: number of random orders.
        seed: seeds the orders.

    Returns:
        A :class:`ShapleyEstimate` (never truncated). For a multilinear extension the gradient
        at a 0/1 prefix is exactly the discrete marginal, so the estimate is then unbiased.
    """
    n = _players(n)
    n_permutations = check_int("n_permutations", n_permutations, 1)
    if not callable(getattr(value_fn, "continuous", None)):
        raise fail("value_fn", type(value_fn).__name__, "a game with continuous(masks) (G-Shapley)")
    rng = np.random.default_rng(check_seed(seed))
    orders = _draw_orders(rng, n_permutations, n)
    marginals = np.zeros((n_permutations, n))
    steps = np.arange(n)
    for p, order in enumerate(orders):
        position = np.argsort(order)
        prefixes = torch.from_numpy(position[None, :] < steps[:, None]).to(torch.float64)
        masks = prefixes.clone().requires_grad_(True)
        with torch.enable_grad():
            out = value_fn.continuous(masks)
            (grad,) = torch.autograd.grad(out.sum(), masks, allow_unused=True)
        if grad is None:  # the game ignores the mask
            continue
        joining = torch.from_numpy(order).to(grad.device)
        marginals[p, order] = grad[torch.arange(n, device=grad.device), joining].cpu().numpy()
    return ShapleyEstimate(
        marginals.mean(axis=0), marginals, orders, np.full(n_permutations, n, dtype=np.int64)
    )


@IMPORTANCE.register(
    "data-shapley",
    description="Data Shapley: Shapley value of each feature in v(S) = -E MSE (TMC, G or exact)",
    paper="arXiv:1904.02868",
)
class DataShapleyImportance(SubsetGameEstimator):
    """Shapley value of each feature in the game ``v(S) = −E_x MSE(x, g(z ⊙ m_S))``.

    ``raw_importances_`` are the Shapley values (they sum to ``v(V) − v(∅)`` for exact
    Shapley and untruncated TMC); negative values clip to 0 in ``importances_``.

    Args:
        batch_size: images per encoder pass and per masked decode.
        decode_batch: largest number of latents per decoder call (memory only).
        fill: ``"zero"`` (the link) or ``"other-image"``; see :class:`SubsetValue`.
        algorithm: ``"tmc"`` (default), ``"g"`` or ``"exact"`` (``N <= 10``).
        n_permutations: (largest) number of random orders for TMC and G.
        tolerance: TMC truncation band, a fraction of ``|v(V) − v(∅)|``.
        patience: TMC truncates after more than this many consecutive prefixes in the band.
        convergence: TMC stops early once the running means settle to this relative change.
        seed: seeds the orders.

    Attributes (after ``fit``): ``stderr_`` (``[N]``, Monte Carlo standard error; zeros for
    exact), ``n_permutations_`` (orders used; 0 for exact), ``n_evaluations_``.

    Cost: see the module docstring (TMC with 100 orders at ``N = 16``: at most 1600 subsets).

    Examples:
        >>> import torch
        >>> class Toy(torch.nn.Module):          # x = A z with A = diag(1, 2)
        ...     n_features, scalars_per_feature = 2, 1
        ...     def encode(self, x): return x.reshape(-1, 2, 1) / torch.tensor([[1.0], [2.0]])
        ...     def decode(self, z): return (z * torch.tensor([[1.0], [2.0]])).reshape(-1, 1, 1, 2)
        >>> x = torch.tensor([[[[0.6, 0.2]]]])      # additive game: phi_i = x_i^2 / 2
        >>> DataShapleyImportance(algorithm="exact").fit(Toy(), x).importances_.round(6)
        array([0.9, 0.1])
    """

    name = "data-shapley"

    def __init__(
        self,
        batch_size: int = 256,
        decode_batch: int = 4096,
        fill: str = "zero",
        algorithm: str = "tmc",
        n_permutations: int = 100,
        tolerance: float = 0.01,
        patience: int = 5,
        convergence: float = 0.05,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, decode_batch, fill)
        key = str(algorithm).strip().lower()
        if key not in ALGORITHMS:
            raise fail("algorithm", algorithm, ", ".join(ALGORITHMS))
        self.algorithm = key
        self.n_permutations = check_int("n_permutations", n_permutations, 1)
        self.tolerance = check_nonnegative("tolerance", tolerance)
        self.patience = check_int("patience", patience, 0)
        self.convergence = check_nonnegative("convergence", convergence)
        self.seed = check_seed(seed)

    def _check_players(self, n: int) -> None:
        if self.algorithm == "exact" and n > EXACT_MAX_PLAYERS:
            raise ConfigError(
                f"algorithm: 'exact' is invalid for n_features={n}; allowed: exact for "
                f"n_features <= {EXACT_MAX_PLAYERS}, else tmc or g"
            )

    def _attribute(self, value_fn: SubsetValue, n: int) -> np.ndarray:
        if self.algorithm == "exact":
            self.stderr_ = np.zeros(n)
            self.n_permutations_ = 0
            return exact_shapley(value_fn, n)
        if self.algorithm == "g":
            est = g_shapley(value_fn, n, self.n_permutations, self.seed)
        else:
            est = tmc_shapley(
                value_fn,
                n,
                self.n_permutations,
                self.tolerance,
                self.patience,
                self.convergence,
                self.seed,
            )
        self.stderr_ = est.stderr
        self.n_permutations_ = int(est.marginals.shape[0])
        return est.values


__all__ = [
    "ALGORITHMS",
    "DataShapleyImportance",
    "EXACT_MAX_PLAYERS",
    "ShapleyEstimate",
    "all_subsets",
    "exact_shapley",
    "g_shapley",
    "tmc_shapley",
]
