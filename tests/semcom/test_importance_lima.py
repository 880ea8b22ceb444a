"""LiMA: permutation output, additive-game recovery, greedy guarantee, family contract."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, LimaImportance, make_estimator
from semcom.importance.lima import bidirectional_greedy, effectiveness, ranking_gains
from semcom.importance.value_function import SubsetValue
from tests.semcom.vit_helpers import small_images, small_vit


@pytest.mark.parametrize("n, pending", [(10, 3), (10, 8), (12, 1), (7, 20)])
def test_additive_game_recovers_the_order_and_the_weights(n: int, pending: int) -> None:
    w = np.random.default_rng(n + pending).permutation(np.linspace(0.1, 2.0, n))
    game = lambda s: s @ w  # noqa: E731
    result = bidirectional_greedy(game, n, pending=pending)
    assert sorted(result.ranking.tolist()) == list(range(n))
    np.testing.assert_array_equal(result.ranking, np.argsort(-w))
    assert len(result.tail) == (max(0, math.ceil((n - pending) / 2)) if pending < n - 1 else 0)
    np.testing.assert_allclose(ranking_gains(game, result.ranking), w, rtol=1e-12)
    # a distance matrix with equal off-diagonal entries makes Eff a function of |S| only
    flat = np.full((n, n), 0.4) - 0.4 * np.eye(n)
    same = bidirectional_greedy(game, n, distance=flat, pending=pending)
    np.testing.assert_array_equal(same.ranking, result.ranking)


def test_forward_greedy_meets_the_submodular_guarantee_against_brute_force() -> None:
    """Coverage game (monotone submodular): greedy's first k picks reach (1 − 1/e) of the best
    k-subset found by enumeration (Nemhauser, Wolsey & Fisher 1978), for every k."""
    rng = np.random.default_rng(0)
    n, universe = 8, 30
    cover = rng.random((n, universe)) < 0.2
    cover[:, :6] |= rng.random((n, 6)) < 0.6  # overlapping, so greedy is not trivially optimal

    def game(s: np.ndarray) -> np.ndarray:
        return ((s.astype(int) @ cover.astype(int)) > 0).sum(axis=1).astype(float)

    result = bidirectional_greedy(game, n, collaboration=0.0, effectiveness_weight=0.0, pending=n)
    for k in range(1, n + 1):
        picked = np.zeros((1, n), bool)
        picked[0, result.ranking[:k]] = True
        best = max(
            game(np.isin(np.arange(n), c)[None])[0] for c in itertools.combinations(range(n), k)
        )
        assert game(picked)[0] >= (1 - 1 / math.e) * best - 1e-12


def test_effectiveness_matches_its_definition() -> None:
    rng = np.random.default_rng(1)
    d = rng.random((5, 5))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    sets = rng.random((20, 5)) < 0.5
    for row, got in zip(sets, effectiveness(sets, d), strict=True):
        members = np.flatnonzero(row)
        if members.size == 1:
            want = 1.0
        else:
            want = sum(min(d[i, j] for j in members if j != i) for i in members)
        assert got == pytest.approx(want, abs=1e-12)


def test_tail_takes_the_least_valuable_candidate() -> None:
    w = np.array([1.0, 5.0, 0.2, 3.0, 0.1, 4.0])
    result = bidirectional_greedy(lambda s: s @ w, 6, pending=2)
    assert result.tail[0] == 4 and result.forward[0] == 1
    assert result.ranking[-1] == 4


def test_family_contract_on_a_vit() -> None:
    model, x = small_vit(), small_images()
    assert "lima" in IMPORTANCE and IMPORTANCE.info("lima").paper == "arXiv:2504.00470"
    est = make_estimator("lima").fit(model, x)
    w = est.importances_
    assert w.shape == (16,) and w.dtype == np.float64 and (w >= 0).all()
    assert w.sum() == pytest.approx(1.0)
    assert sorted(est.ranking_.tolist()) == list(range(16))
    # gains telescope: they sum to v(V) − v(∅)
    value = SubsetValue(model, x)
    ends = value(np.array([np.zeros(16, bool), np.ones(16, bool)]))
    assert est.raw_importances_.sum() == pytest.approx(ends[1] - ends[0], rel=1e-6)
    assert 0 < est.n_evaluations_ <= 300
    again = LimaImportance().fit(model, x)
    np.testing.assert_array_equal(again.raw_importances_, est.raw_importances_)
    ranks = LimaImportance(weights="rank", effectiveness=0.0).fit(model, x)
    assert sorted(ranks.raw_importances_ * 16) == pytest.approx(list(range(1, 17)))
    for bad in (
        {"weights": "score"},
        {"pending": 0},
        {"consistency": -1.0},
        {"effectiveness": float("inf")},
        {"fill": "mean"},
        {"batch_size": 0},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            LimaImportance(**bad)
    with pytest.raises(ConfigError, match="consistency"):
        LimaImportance(consistency=0, collaboration=0, effectiveness=0)
