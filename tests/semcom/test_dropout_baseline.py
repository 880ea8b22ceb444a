"""The dropout-trained uniform-importance baseline (``conventional-dropout`` and its schemes).

- :class:`semcom.isfr.RandomDropout` keeps every feature at the target rate
  ``r̄ = (1/N) Σ r_i`` of the nested dropout it mirrors (each feature's count inside its exact
  binomial interval), so the expected kept count equals the nested retention sum;
- its masks are not nested (many kept sets are not prefixes, which nested dropout never
  produces) and features are dropped independently (pairwise joint rate ``r̄²``, chi-square
  test of independence);
- ``training_channel(random_dropout=True)`` validates its switch (one-line errors) and the
  ``conventional-dropout`` variant takes ISFR's dropout law from ``training.isfr``;
- the variant trains and its three schemes run in a scenario.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.cli import main
from semcom.isfr import NestedDropout, RandomDropout, TrainingChannel, training_channel
from semcom.scenario import load_scenario
from semcom.schemes import DROPOUT_BASELINES, MODEL_VARIANTS, SCHEMES
from tests.semcom.tiny_run import tiny_run_args

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
N = 16
BATCH = 20_000


@pytest.mark.parametrize(("law", "rho", "n_min", "p_nd"),
                         [("geometric", 0.1, 1, 1.0), ("uniform", 0.5, 3, 0.7)])  # fmt: skip
def test_per_feature_rate_is_the_mean_nested_retention(
    law: str, rho: float, n_min: int, p_nd: float
) -> None:
    nested = NestedDropout(N, law, rho, n_min, p_nd)
    target = float(nested.retention().mean())
    mask = RandomDropout(N, law, rho, n_min, p_nd, seed=3).sample_mask(BATCH).numpy()
    counts = mask.sum(axis=0).astype(int)
    # each feature's count inside the two-sided 99.9 % binomial interval of the target rate
    low, high = stats.binom.interval(0.999, BATCH, target)
    assert np.all((counts >= low) & (counts <= high)), (counts, low, high)
    # the expected number of kept features equals the nested retention sum, which the nested
    # dropout's own sampled masks reproduce too (a check of the sum we target)
    kept = mask.sum(axis=1)
    half = 4 * kept.std() / np.sqrt(BATCH)
    assert abs(kept.mean() - float(nested.retention().sum())) < half
    nested_kept = nested.reseed(5) or nested.sample_mask(BATCH).sum(axis=1).numpy()
    assert abs(kept.mean() - nested_kept.mean()) < half + 4 * nested_kept.std() / np.sqrt(BATCH)


def test_masks_are_not_nested_and_features_independent() -> None:
    mask = RandomDropout(N, seed=11).sample_mask(BATCH).numpy().astype(bool)
    r = mask.mean()
    # a nested mask is a prefix: kept features 1..k. Under independence the share of prefixes
    # is tiny; nested dropout gives only prefixes
    prefix = np.all(np.diff(mask.astype(int), axis=1) <= 0, axis=1)
    assert prefix.mean() < 0.05
    nested = NestedDropout(N, seed=11).sample_mask(2000).numpy()
    assert np.all(np.diff(nested, axis=1) <= 0)
    # a later feature kept while an earlier one is dropped: rate r(1-r) under independence
    later_only = (~mask[:, 0] & mask[:, N - 1]).sum()
    low, high = stats.binom.interval(0.999, BATCH, r * (1 - r))
    assert low <= later_only <= high
    # chi-square independence test of every pair of features (Bonferroni over the pairs)
    pairs = [(i, j) for i in range(N) for j in range(i + 1, N)]
    pvalues = []
    for i, j in pairs:
        a, b = mask[:, i], mask[:, j]
        table = np.array([[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]])
        pvalues.append(stats.chi2_contingency(table, correction=False).pvalue)
    assert min(pvalues) > 0.001 / len(pairs)


def test_forward_zeroes_whole_features_in_training_only() -> None:
    drop = RandomDropout(N, seed=0)
    z = torch.rand(64, N, 5) + 0.1
    out = drop.train()(z)
    zero = (out == 0).all(dim=2)
    assert torch.equal(out[~zero], z[~zero]) and bool(zero.any())
    assert torch.equal(drop.eval()(z), z)
    drop.reseed(0)
    assert torch.equal(drop.train()(z), out)  # seeded: the same masks again


def test_training_channel_switch_and_errors() -> None:
    ch = training_channel("conventional", N, random_dropout=True, rho=0.2, seed=0)
    assert isinstance(ch, TrainingChannel) and isinstance(ch.nested_dropout, RandomDropout)
    assert ch.options["random_dropout"] is True and ch.options["nested_dropout"] is False
    rebuilt = training_channel("conventional", N, **ch.options)
    assert rebuilt.options == ch.options
    expected = float(NestedDropout(N, rho=0.2).retention().mean())
    assert ch.nested_dropout.keep_probability == pytest.approx(expected, abs=1e-15)
    # off: the key is absent, so the options (and checkpoint hashes) of older channels stay
    assert "random_dropout" not in training_channel("conventional", N).options
    # isfr kind: random dropout replaces the nested one unless that is explicitly on
    assert isinstance(training_channel("isfr", N, random_dropout=True).nested_dropout,
                      RandomDropout)  # fmt: skip
    with pytest.raises(ConfigError, match="random_dropout: True is invalid.*nested_dropout"):
        training_channel("isfr", N, random_dropout=True, nested_dropout=True)
    with pytest.raises(ConfigError, match="random_dropout.*kind='none'"):
        training_channel("none", N, random_dropout=True)
    with pytest.raises(ConfigError, match="random_dropout"):
        training_channel("conventional", N, random_dropout="yes")
    with pytest.raises(ConfigError, match="rho"):
        training_channel("conventional", N, random_dropout=True, rho=1.5)


def test_variant_and_schemes_are_registered() -> None:
    variant = MODEL_VARIANTS["conventional-dropout"]
    assert variant.training_scheme == "conventional"
    assert variant.isfr_overrides == {"random_dropout": True}
    for name, base in zip(DROPOUT_BASELINES, ("ui-ep", "ui-opt", "passive-uep"), strict=True):
        scheme, twin = SCHEMES.get(name), SCHEMES.get(base)
        assert scheme.model == "conventional-dropout"
        assert (scheme.weights, scheme.method) == (twin.weights, twin.method)


def test_variant_follows_the_isfr_dropout_law() -> None:
    scenario = load_scenario(QUICKSTART, ["training.isfr.rho=0.3", "training.isfr.n_min=2",
                                          "schemes=[isfr-uep, ui-opt-dropout]"])  # fmt: skip
    config = scenario.train_config("conventional-dropout")
    assert config.scheme == "conventional"
    assert (config.isfr["rho"], config.isfr["n_min"], config.isfr["random_dropout"]) == (
        0.3,
        2,
        True,
    )
    assert config.isfr["nested_dropout"] is False and config.isfr["profile"] == "uniform"
    # the plain conventional variant keeps its own (default) law and no dropout
    plain = scenario.train_config("conventional")
    assert plain.isfr["rho"] == 0.1 and "random_dropout" not in plain.isfr
    assert config.isfr["eps_min"] == plain.isfr["eps_min"]


@pytest.mark.usefixtures("one_thread")
def test_variant_trains_and_runs_in_a_scenario(tmp_path: Path) -> None:
    out = tmp_path / "out"
    status = main(
        tiny_run_args(QUICKSTART, out, tmp_path / "ck", "[ui-opt-dropout, passive-uep-dropout]", 10)
    )
    assert status == 0
    frame = pd.read_csv(out / "results.csv")
    assert sorted(frame["scheme"]) == ["passive-uep-dropout", "ui-opt-dropout"]
    assert set(frame["model"]) == {"conventional-dropout"}
    assert np.all(np.isfinite(frame["psnr_db"]))
    models = pd.read_csv(out / "models.csv")
    assert models["model"].tolist() == ["conventional-dropout"]


def test_channel_state_training_keeps_the_random_dropout() -> None:
    from semcom.training.matched_channel import matched_training_channel, resolve_channel_options

    isfr = training_channel("conventional", N, random_dropout=True).options
    channel = resolve_channel_options({"fading": "rayleigh", "snr_db": 5}, N, "conventional")
    out = matched_training_channel("conventional", N, 4, isfr, channel, bank_seed=0)
    assert isinstance(out.nested_dropout, RandomDropout)
    assert out.nested_dropout.keep_probability == pytest.approx(
        float(NestedDropout(N).retention().mean()), abs=1e-15
    )
    plain = training_channel("conventional", N).options
    assert matched_training_channel("conventional", N, 4, plain, channel, 0).nested_dropout is None
