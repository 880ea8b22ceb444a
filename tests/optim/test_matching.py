"""SP1 (optim.matching): greedy and Hungarian matching against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from channels.errors import ConfigError
from optim.matching import (
    greedy_matching,
    hungarian_matching,
    matching_cost,
    random_matching,
    subchannel_order,
)
from optim.problem import random_problem


def _brute_force(cost: np.ndarray) -> float:
    n, k = cost.shape
    return min(
        sum(cost[j, cols[j]] for j in range(n)) for cols in itertools.permutations(range(k), n)
    )


@pytest.mark.parametrize(("n", "k"), [(0, 3), (1, 4), (3, 3), (3, 5), (4, 6), (5, 5)])
def test_hungarian_is_optimal(n, k):
    rng = np.random.default_rng(n * 10 + k)
    for _ in range(10):
        cost = rng.exponential(size=(n, k))
        sub = hungarian_matching(cost)
        assert len(set(sub.tolist())) == n and np.all((sub >= 0) & (sub < k))
        assert cost[np.arange(n), sub].sum() == pytest.approx(_brute_force(cost) if n else 0.0)


@pytest.mark.parametrize(("n", "k"), [(1, 3), (3, 3), (4, 6), (5, 5)])
def test_greedy_is_optimal_for_product_costs(n, k):
    """Rearrangement inequality: for cost a_j f(g_k), a decreasing in rank and f decreasing in
    gain, giving rank j the j-th strongest subchannel is optimal."""
    rng = np.random.default_rng(7 * n + k)
    for _ in range(10):
        a = np.sort(rng.exponential(size=n))[::-1]
        gains = rng.exponential(size=k)
        cost = a[:, None] * np.exp(-2.0 * gains[None, :])
        sub = greedy_matching(gains, n)
        assert cost[np.arange(n), sub].sum() == pytest.approx(_brute_force(cost), rel=1e-12)


def test_greedy_takes_strongest_in_order_with_stable_ties():
    gains = np.array([0.5, 2.0, 1.0, 2.0, 0.0])
    assert subchannel_order(gains).tolist() == [1, 3, 2, 0, 4]
    assert greedy_matching(gains, 3).tolist() == [1, 3, 2]
    assert greedy_matching(gains, 0).tolist() == []
    with pytest.raises(ConfigError):
        greedy_matching(gains, 6)


def test_random_matching_is_injective_and_seeded():
    a = random_matching(10, 6, seed := 3)
    assert len(set(a.tolist())) == 6 and a.max() < 10
    assert np.array_equal(a, random_matching(10, 6, seed))
    seen = {tuple(random_matching(5, 5, s).tolist()) for s in range(30)}
    assert len(seen) > 10
    with pytest.raises(ConfigError):
        random_matching(3, 4, 0)


def test_hungarian_rejects_bad_shapes():
    with pytest.raises(ConfigError):
        hungarian_matching(np.ones((3, 2)))
    with pytest.raises(ConfigError):
        hungarian_matching(np.ones(3))


def test_matching_cost_is_the_weighted_error_on_each_subchannel():
    from optim.distortion import feature_terms, objective
    from optim.problem import Allocation

    p = random_problem(4, 5, seed=2)
    features, mods, power = np.array([0, 2]), np.array([1, 2]), np.array([3.0, 7.0])
    cost = matching_cost(p, features, mods, power)
    assert cost.shape == (2, 5)
    t = feature_terms(p)
    for k0, k1 in itertools.permutations(range(5), 2):
        alloc = Allocation(features, [k0, k1], ("qpsk", "16qam"), power)
        floor = p.weights[features] @ t.floor[features]
        rest = p.weights[[1, 3]] @ t.drop[[1, 3]]
        assert objective(p, alloc) == pytest.approx(floor + rest + cost[0, k0] + cost[1, k1])
