"""ReAGent: ranks a planted linear model, finds a lone relevant feature, paper's update rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, ReagentImportance, make_estimator
from semcom.importance.reagent import reagent
from tests.semcom.vit_helpers import small_images, small_vit


def test_ranks_a_planted_linear_model() -> None:
    w = np.array([0.75, 1.5, 0.25, 1.25, 0.5, 1.0])
    # stop_fraction 1: the top 2 never hold all the value, so every chain runs max_steps
    # (the paper's stopping rule, checked on the way). The updates are noisy (one random
    # replacement per step): the expected drift separates neighbours by about 0.05 per step
    # against a noise of about 0.5, hence 2000 steps.
    res = reagent(lambda s: s @ w, 6, stop_fraction=1.0, max_steps=2000, seed=0)
    assert not res.stopped.any() and (res.steps == 2000).all()
    np.testing.assert_array_equal(np.argsort(-res.importance), np.argsort(-w))
    assert res.importance.sum() == pytest.approx(1.0, abs=1e-12)
    for chain in res.logits:  # each chain alone is already close
        assert stats.spearmanr(chain, w).statistic >= 0.8


def test_a_lone_relevant_feature_gets_the_largest_importance() -> None:
    for k in range(5):
        game = lambda s, k=k: s[:, k].astype(float)  # noqa: E731
        res = reagent(game, 10, stop_fraction=None, max_steps=200, seed=k)
        assert int(res.importance.argmax()) == k and (res.steps == 200).all()
        # with the paper's stopping rule each chain stops once k is among its top 3 logits
        res = reagent(game, 10, seed=k)
        assert res.stopped.all() and (res.steps < 200).all()
        assert all(k in np.argsort(-chain, kind="stable")[:3] for chain in res.logits)


def test_one_step_follows_the_paper_update_rule() -> None:
    w = np.array([0.5, 0.2, 0.1, 0.9, 0.3])
    n, seed = 5, 4
    res = reagent(lambda s: s @ w, n, stop_fraction=1.0, max_steps=1, n_chains=1, seed=seed)
    rng = np.random.default_rng(seed)
    start = rng.random((1, n))[0]
    replaced = np.argsort(rng.random((1, n)), axis=1)[0, :2]  # round(0.3 * 5) = 2
    delta = w[replaced].sum() / w.sum()  # normalised drop of the value
    sign = np.where(np.isin(np.arange(n), replaced), 1.0, -1.0)
    np.testing.assert_allclose(res.logits[0], start + special.logit(0.5 + 0.5 * delta) * sign)


def test_family_contract_on_a_vit() -> None:
    model, x = small_vit(), small_images()
    assert "reagent" in IMPORTANCE and IMPORTANCE.info("reagent").paper == "arXiv:2402.00794"
    est = make_estimator("reagent", max_steps=40, seed=2).fit(model, x)
    w = est.importances_
    assert w.shape == (16,) and w.dtype == np.float64 and (w >= 0).all()
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(est.raw_importances_, w, rtol=1e-12)
    assert est.logits_.shape == (5, 16) and (est.steps_ <= 40).all()
    again = ReagentImportance(max_steps=40, seed=2).fit(model, x)
    np.testing.assert_array_equal(again.raw_importances_, est.raw_importances_)
    other = ReagentImportance(max_steps=40, seed=3).fit(model, x)
    assert not np.array_equal(other.raw_importances_, est.raw_importances_)
    replaced = ReagentImportance(max_steps=10, fill="other-image").fit(model, x)
    assert replaced.importances_.sum() == pytest.approx(1.0)
    for bad in (
        {"ratio": 0.0},
        {"ratio": 1.0},
        {"top_n_ratio": 0},
        {"stop_fraction": 1.5},
        {"max_steps": 0},
        {"n_chains": 0},
        {"seed": -1},
        {"fill": "noise"},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            ReagentImportance(**bad)


def test_a_model_that_ignores_its_features_gets_the_uniform_profile() -> None:
    class Ignores(torch.nn.Module):
        n_features, scalars_per_feature = 3, 2

        def encode(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, :1, None].expand(-1, 3, 2)

        def decode(self, z: torch.Tensor) -> torch.Tensor:
            return torch.zeros(z.shape[0], 1, 2, 2, dtype=z.dtype)

    w = ReagentImportance().fit(Ignores(), torch.rand(4, 1, 2, 2)).importances_
    np.testing.assert_array_equal(w, np.full(3, 1 / 3))
