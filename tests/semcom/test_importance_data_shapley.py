"""Data Shapley (TMC, G, exact): closed forms, the permutation definition, axioms, convergence."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, DataShapleyImportance, make_estimator
from semcom.importance.data_shapley import (
    all_subsets,
    exact_shapley,
    g_shapley,
    tmc_shapley,
)
from semcom.importance.value_function import SubsetValue
from semcom.models.build import build_model


class TableGame:
    """A game given by its value on each of the 2^n subsets (row k of ``all_subsets``)."""

    def __init__(self, table: np.ndarray) -> None:
        self.table = np.asarray(table, dtype=np.float64)
        self.n = int(round(math.log2(self.table.size)))

    def __call__(self, subsets: np.ndarray) -> np.ndarray:
        codes = (subsets.astype(np.int64) << np.arange(self.n)).sum(axis=1)
        return self.table[codes]


def random_game(n: int, seed: int) -> TableGame:
    return TableGame(np.random.default_rng(seed).normal(size=2**n))


def permutation_shapley(game: TableGame) -> np.ndarray:
    """The definition: average marginal over all n! orders (independent of the subset formula)."""
    n = game.n
    phi = np.zeros(n)
    orders = list(itertools.permutations(range(n)))
    for order in orders:
        present = np.zeros(n, dtype=bool)
        before = game(present[None])[0]
        for player in order:
            present[player] = True
            after = game(present[None])[0]
            phi[player] += after - before
            before = after
    return phi / len(orders)


class MultilinearGame:
    """v(m) = Σ w_i m_i + Σ_{i<j} u_ij m_i m_j + c m_0 m_1 m_2 (multilinear in m)."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.w = torch.tensor(rng.normal(size=n))
        self.u = torch.tensor(np.triu(rng.normal(size=(n, n)), 1))
        self.c = 1.5

    def continuous(self, m: torch.Tensor) -> torch.Tensor:
        pair = torch.einsum("bi,ij,bj->b", m, self.u, m)
        return m @ self.w + pair + self.c * m[:, 0] * m[:, 1] * m[:, 2]

    def __call__(self, subsets: np.ndarray) -> np.ndarray:
        return self.continuous(torch.tensor(subsets, dtype=torch.float64)).numpy()

    def shapley(self) -> np.ndarray:
        """Closed form: w_i + ½ Σ_j (u_ij + u_ji) + c/3 for i in {0, 1, 2}."""
        u = self.u.numpy()
        phi = self.w.numpy() + 0.5 * (u.sum(axis=1) + u.sum(axis=0))
        phi[:3] += self.c / 3
        return phi


def test_exact_equals_the_permutation_definition_on_random_games() -> None:
    for n, seed in [(1, 0), (3, 1), (5, 2)]:
        game = random_game(n, seed)
        np.testing.assert_allclose(exact_shapley(game, n), permutation_shapley(game), atol=1e-12)


def test_exact_closed_forms_additive_unanimity_pairwise() -> None:
    w = np.array([3.0, -1.0, 0.5, 2.0])
    np.testing.assert_allclose(exact_shapley(lambda s: s @ w, 4), w, atol=1e-12)
    # unanimity game of T = {1, 3, 4}: v(S) = 1 iff T ⊆ S, φ_i = 1/|T| on T
    phi = exact_shapley(lambda s: (s[:, [1, 3, 4]].all(axis=1)).astype(float), 6)
    np.testing.assert_allclose(phi, [0, 1 / 3, 0, 1 / 3, 1 / 3, 0], atol=1e-12)
    game = MultilinearGame(6, seed=4)
    np.testing.assert_allclose(exact_shapley(game, 6), game.shapley(), atol=1e-12)


def test_exact_axioms_efficiency_symmetry_null_player() -> None:
    n = 6
    rng = np.random.default_rng(7)
    subsets = all_subsets(n)
    # v depends on players 1 and 2 only through their count (duplicates) and ignores player 5
    key = {}
    table = np.empty(2**n)
    for k, s in enumerate(subsets):
        sig = (s[0], int(s[1]) + int(s[2]), s[3], s[4])
        key.setdefault(sig, rng.normal())
        table[k] = key[sig]
    game = TableGame(table)
    phi = exact_shapley(game, n)
    assert phi.sum() == pytest.approx(table[-1] - table[0], abs=1e-12)
    assert phi[1] == pytest.approx(phi[2], abs=1e-12)
    assert phi[5] == pytest.approx(0.0, abs=1e-12)


def test_tmc_untruncated_orders_are_efficient_and_converge_to_exact() -> None:
    n = 6
    game = random_game(n, seed=11)
    exact = exact_shapley(game, n)
    est = tmc_shapley(game, n, n_permutations=3000, tolerance=0.0, seed=0)
    span = game.table[-1] - game.table[0]
    np.testing.assert_allclose(est.marginals.sum(axis=1), span, atol=1e-12)
    assert (est.evaluated == n).all()
    # unbiased: every player's exact value within 4 standard errors (fixed seed)
    z = np.abs(est.values - exact) / est.stderr
    assert z.max() < 4.0, z
    # and the interval shrinks like 1/sqrt(P)
    small = tmc_shapley(game, n, n_permutations=300, tolerance=0.0, seed=1)
    assert np.median(small.stderr / est.stderr) == pytest.approx(math.sqrt(10), rel=0.2)


def test_tmc_truncation_stops_inside_the_band() -> None:
    n = 8
    w = np.array([5.0, 4.0, 3.0, 0.001, 0.001, 0.001, 0.001, 0.001])
    game = lambda s: np.minimum(s @ w, 12.0)  # noqa: E731 - saturates once the big three are in
    est = tmc_shapley(game, n, n_permutations=200, tolerance=0.01, patience=2, seed=3)
    span = 12.0
    assert (est.evaluated < n).any()
    gap = np.abs(est.marginals.sum(axis=1) - span)
    assert gap.max() <= 0.01 * span + 1e-12
    # truncated positions carry marginal 0
    for order, marg, k in zip(est.permutations, est.marginals, est.evaluated, strict=True):
        assert np.all(marg[order[k:]] == 0.0)


def test_g_shapley_on_a_multilinear_game_is_exact_per_order() -> None:
    n = 6
    game = MultilinearGame(n, seed=5)
    est = g_shapley(game, n, n_permutations=2000, seed=0)
    span = game(np.ones((1, n), bool))[0] - game(np.zeros((1, n), bool))[0]
    np.testing.assert_allclose(est.marginals.sum(axis=1), span, atol=1e-12)
    z = np.abs(est.values - game.shapley()) / est.stderr
    assert z.max() < 4.0, z
    with pytest.raises(ConfigError, match="value_fn"):
        g_shapley(lambda s: s.sum(axis=1), n)


def tiny_vit(n: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("vit", n, input_shape=[3, 16, 16], dim=16, heads=2, depth=1, L=4)
    return model.double()


def images(b: int = 6) -> torch.Tensor:
    return torch.rand(b, 3, 16, 16, generator=torch.Generator().manual_seed(2)).double()


def test_estimator_on_a_vit_tmc_agrees_with_exact_and_sums_to_the_range() -> None:
    model, x = tiny_vit(), images()
    exact = DataShapleyImportance(algorithm="exact").fit(model, x)
    value = SubsetValue(model, x)
    ends = value(np.array([[0, 0, 0, 0], [1, 1, 1, 1]], dtype=bool))
    assert exact.raw_importances_.sum() == pytest.approx(ends[1] - ends[0], rel=1e-10)
    tmc = DataShapleyImportance(n_permutations=600, tolerance=0.0, convergence=0.0).fit(model, x)
    assert tmc.n_evaluations_ <= 16  # every prefix of 4 features is one of 16 cached subsets
    z = np.abs(tmc.raw_importances_ - exact.raw_importances_) / tmc.stderr_
    assert z.max() < 4.0, z
    g = DataShapleyImportance(algorithm="g", n_permutations=20).fit(model, x)
    assert g.raw_importances_.shape == (4,) and np.isfinite(g.raw_importances_).all()


def test_family_contract() -> None:
    model, x = tiny_vit(), images()
    assert "data-shapley" in IMPORTANCE
    assert IMPORTANCE.info("data-shapley").paper == "arXiv:1904.02868"
    est = make_estimator("data-shapley", n_permutations=30, seed=5).fit(model, x)
    w = est.importances_
    assert w.shape == (4,) and w.dtype == np.float64 and (w >= 0).all()
    assert w.sum() == pytest.approx(1.0)
    again = DataShapleyImportance(n_permutations=30, seed=5).fit(model, x)
    np.testing.assert_array_equal(again.raw_importances_, est.raw_importances_)
    other = DataShapleyImportance(n_permutations=30, seed=6, tolerance=0.0).fit(model, x)
    assert not np.array_equal(other.raw_importances_, est.raw_importances_)
    for bad in (
        {"algorithm": "kernel"},
        {"n_permutations": 0},
        {"tolerance": -0.1},
        {"patience": -1},
        {"convergence": float("nan")},
        {"seed": -1},
        {"fill": "noise"},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            DataShapleyImportance(**bad)
    big = build_model("vit", 16, input_shape=[3, 16, 16], dim=16, heads=2, depth=1, L=2)
    with pytest.raises(ConfigError, match="algorithm: 'exact'.*n_features <= 10"):
        DataShapleyImportance(algorithm="exact").fit(big, x.float())
    with pytest.raises(ConfigError, match="n_features"):
        exact_shapley(lambda s: s.sum(axis=1), 11)
