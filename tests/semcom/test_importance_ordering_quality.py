"""Ordering quality: Spearman vs scipy, insertion/deletion AUC vs hand values and brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.importance import MaskingImportance
from semcom.importance.ordering_quality import (
    deletion_auc,
    deletion_curve,
    insertion_auc,
    insertion_curve,
    masking_ground_truth,
    order_from_importance,
    ordering_quality,
    spearman,
)
from semcom.importance.value_function import SubsetValue
from semcom.models.build import build_model


def test_hand_derived_curves_and_areas() -> None:
    game = lambda s: s @ np.array([3.0, 2.0, 1.0])  # noqa: E731
    np.testing.assert_allclose(insertion_curve(game, [0, 1, 2]), [0, 1 / 2, 5 / 6, 1])
    np.testing.assert_allclose(deletion_curve(game, [0, 1, 2]), [1, 1 / 2, 1 / 6, 0])
    assert insertion_auc(game, [0, 1, 2]) == pytest.approx(11 / 18)
    assert deletion_auc(game, [0, 1, 2]) == pytest.approx(7 / 18)
    # the worst order inserts the smallest first: 0, 1/6, 1/2, 1 -> (1/12 + 1/3 + 3/4) / 3
    assert insertion_auc(game, [2, 1, 0]) == pytest.approx(7 / 18)
    # a game that is not additive: v = 1 only with both features 0 and 1
    both = lambda s: (s[:, 0] & s[:, 1]).astype(float)  # noqa: E731
    np.testing.assert_allclose(insertion_curve(both, [0, 2, 1]), [0, 0, 0, 1])
    assert insertion_auc(both, [0, 2, 1]) == pytest.approx(1 / 6)
    assert deletion_auc(both, [0, 2, 1]) == pytest.approx(1 / 6)  # 1, 0, 0, 0
    assert deletion_auc(both, [2, 0, 1]) == pytest.approx(1 / 2)  # 1, 1, 0, 0


def test_areas_equal_numpy_trapezoid_and_the_best_order_is_found_by_brute_force() -> None:
    rng = np.random.default_rng(0)
    w = rng.permutation(np.array([5.0, 4.0, 3.0, 2.0, 1.0]))
    game = lambda s: s @ w  # noqa: E731
    areas = {}
    for order in itertools.permutations(range(5)):
        curve = insertion_curve(game, order)
        ins = insertion_auc(game, order)
        assert ins == pytest.approx(np.trapezoid(curve, dx=1 / 5), abs=1e-12)
        dele = deletion_auc(game, order)
        assert dele == pytest.approx(np.trapezoid(deletion_curve(game, order), dx=1 / 5))
        assert ins + dele == pytest.approx(1.0)  # additive: ṽ(S) + ṽ(V∖S) = 1
        areas[order] = (ins, dele)
    best_ins = max(areas, key=lambda o: areas[o][0])
    best_del = min(areas, key=lambda o: areas[o][1])
    assert list(best_ins) == list(np.argsort(-w)) == list(best_del)
    assert list(order_from_importance(w)) == list(best_ins)


def test_spearman_matches_scipy_and_handles_constants() -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        a, b = rng.normal(size=9), rng.normal(size=9)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-15)
    assert spearman([3, 2, 1], [30, 20, 10]) == 1.0
    assert spearman([3, 2, 1], [1, 2, 3]) == -1.0
    assert spearman([0.25] * 4, [1, 2, 3, 4]) == 0.0
    with pytest.raises(ConfigError, match="reference"):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ConfigError, match="w"):
        spearman([1, np.nan], [1, 2])


@pytest.mark.parametrize(
    ("w", "allowed"),
    [
        ("ab", "a vector of finite numbers"),
        ([[1.0], [1.0, 2.0]], "a vector of finite numbers"),
        ([], "a non-empty vector of finite numbers"),
        (0.5, "a non-empty vector of finite numbers"),
        ([[0.5, 0.5]], "a non-empty vector of finite numbers"),
        ([0.5, np.inf], "a non-empty vector of finite numbers"),
    ],
)
def test_importance_vector_messages(w, allowed: str) -> None:
    for call in (order_from_importance, lambda w: spearman(w, [1.0, 2.0])):
        with pytest.raises(ConfigError) as info:
            call(w)
        assert str(info.value) == f"w: {w!r} is invalid; allowed: {allowed}"


def test_order_validation_and_a_flat_game() -> None:
    class Game:
        n_features = 3  # the order must then have length 3

        def __call__(self, s: np.ndarray) -> np.ndarray:
            return s.sum(axis=1).astype(float)

    game = Game()
    assert insertion_auc(game, [2, 0, 1]) == pytest.approx(0.5)
    for bad in ([0, 0, 1], [0, 1], [0.0, 1.0, 2.0], [[0, 1, 2]]):
        with pytest.raises(ConfigError, match="order"):
            insertion_auc(game, bad)
    with pytest.raises(ConfigError, match="v\\(V\\)"):
        insertion_auc(lambda s: np.zeros(len(s)), [0, 1, 2])
    assert order_from_importance([0.2, 0.5, 0.2, 0.1]).tolist() == [1, 0, 2, 3]


def test_masking_ground_truth_on_a_vit() -> None:
    torch.manual_seed(0)
    model = build_model("vit", 4, input_shape=[3, 16, 16], dim=16, heads=2, depth=1, L=4).double()
    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(2)).double()
    truth = masking_ground_truth(model, x, batch_size=2)
    np.testing.assert_array_equal(
        truth, MaskingImportance(batch_size=2).fit(model, x).raw_importances_
    )
    value = SubsetValue(model, x)
    full = value(np.ones(4, bool))[0]
    np.testing.assert_allclose(truth, full - value(~np.eye(4, dtype=bool)), rtol=1e-10)
    quality = ordering_quality(value, truth, truth)
    assert quality.spearman == 1.0
    assert quality.insertion_auc == pytest.approx(
        insertion_auc(value, order_from_importance(truth))
    )
    assert quality.deletion_auc == pytest.approx(deletion_auc(value, np.argsort(-truth)))
