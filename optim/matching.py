"""SP1: matching selected features to subchannels (docs/method.md §5.4).

A matching assigns each of the ``n`` selected features (in priority order, most important
first) a distinct subchannel out of ``K >= n``; it is an int array ``sub[n]``.

- :func:`greedy_matching`: the j-th most important feature gets the j-th strongest subchannel
  (sort by gain, O(K log K)). The rearrangement-inequality heuristic of the paper: the largest
  weights should see the smallest error probabilities.
- :func:`hungarian_matching`: the optimal assignment for a given cost matrix
  ``cost[j, k]`` (cost of feature j on subchannel k) by ``scipy.optimize.linear_sum_assignment``.
- :func:`random_matching`: a uniformly random injective matching (the ``random-matching``
  and ``ui-ep`` baselines).
- :func:`matching_cost` builds the cost matrix for fixed modulations and powers.

Examples:
    >>> import numpy as np
    >>> greedy_matching(np.array([0.5, 2.0, 1.0]), 2).tolist()
    [1, 2]
    >>> hungarian_matching(np.array([[1.0, 0.0], [0.0, 5.0]])).tolist()
    [1, 0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment

from channels.errors import ConfigError

if TYPE_CHECKING:
    from optim.problem import Problem


def _check_n(n: int, k: int) -> None:
    if n < 0 or n > k:
        raise ConfigError(
            f"n: {n!r} is invalid; allowed: 0..{k} (at most one feature per subchannel)"
        )


def subchannel_order(gains: np.ndarray) -> np.ndarray:
    """Subchannel indices sorted by decreasing gain (ties by index), int64 [K]."""
    gains = np.asarray(gains, dtype=np.float64)
    return np.lexsort((np.arange(gains.size), -gains)).astype(np.int64)


def greedy_matching(gains: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` strongest subchannels in decreasing gain: feature rank j -> ``out[j]``."""
    gains = np.asarray(gains, dtype=np.float64)
    _check_n(n, gains.size)
    return subchannel_order(gains)[:n]


def hungarian_matching(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost injective assignment of rows (features) to columns (subchannels).

    ``cost`` is float [n, K] with ``n <= K`` (finite); returns ``sub[n]``, row j's column.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2 or cost.shape[0] > cost.shape[1]:
        raise ConfigError(f"cost: shape {cost.shape} is invalid; allowed: [n, K] with n <= K")
    if cost.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    rows, cols = linear_sum_assignment(cost)
    out = np.empty(cost.shape[0], dtype=np.int64)
    out[rows] = cols
    return out


def random_matching(
    n_subchannels: int, n: int, rng: np.random.Generator | int | None
) -> np.ndarray:
    """A uniformly random injective matching of ``n`` features to ``n_subchannels``."""
    _check_n(n, n_subchannels)
    gen = np.random.default_rng(rng)
    return gen.permutation(n_subchannels)[:n].astype(np.int64)


def matching_cost(
    problem: Problem,
    features: np.ndarray,
    modulation: np.ndarray,
    power: np.ndarray,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Cost matrix ``C[j, k] = w_j slope_j Pb(m_j, g_k p_j / sigma^2)`` [n, K].

    The weighted error of feature ``features[j]`` (modulation index ``modulation[j]``,
    power ``power[j]``) if it rode subchannel k, under the problem's BER model. For fixed
    modulations and powers, the optimal matching is :func:`hungarian_matching` of it.
    """
    from optim.distortion import bit_error_rate, feature_terms

    w = problem.weights if weights is None else np.asarray(weights, dtype=np.float64)
    features = np.asarray(features, dtype=np.int64)
    coeff = w[features] * feature_terms(problem).slope[features]
    esno = np.asarray(power)[:, None] * problem.gains[None, :] / problem.noise_power
    pb = bit_error_rate(problem, np.asarray(modulation)[:, None], esno)
    return coeff[:, None] * pb
