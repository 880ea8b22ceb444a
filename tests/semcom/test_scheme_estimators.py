"""Several importance estimators in one scenario: per-scheme estimators and selection steps.

- the scenario side: resolved specs (one fit per estimator and options), the calibration plan,
  ``keep`` counts, validation lines, and the shipped experiment scenario;
- the link side (no training): two schemes with different estimators get their own fitted
  weights, a scheme without one the scenario's, a selection scheme its reducer and keep;
- ordering rows against a hand-checkable ground truth;
- ``semcom run`` end to end at smoke size (digits MLP, 1 epoch on 120 images): importance.csv,
  ordering.csv and the results' estimator columns; adding schemes leaves the rows of the
  existing ones bit-identical.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from channels.errors import ConfigError
from semcom.cli import main
from semcom.importance import IMPORTANCE, make_estimator
from semcom.link_task import LinkPointTask
from semcom.models.build import build_model
from semcom.prepare import Calibration
from semcom.report import load_results
from semcom.runner import grid
from semcom.scenario import ScenarioError, load_scenario
from semcom.scheme_estimators import (
    INDEX_ORDER,
    fit_profile,
    keep_count,
    ordering_rows,
    reducing_methods,
    resolve_estimator,
)

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "scenarios" / "importance_methods.yaml"
ISSUE_ESTIMATORS = (
    "masking", "gradient", "elastic-cache", "adaptive-sparse-vit", "gaam", "var", "optiprune",
    "vflowopt", "zero-tprune", "lima", "reagent", "data-shapley",
)  # fmt: skip

VIT = {"name": "vit", "n_features": 16, "options": {"dim": 16, "depth": 1, "heads": 2}}


def _scheme(name: str, **extra) -> dict:  # noqa: ANN003
    return {"name": name, "model": "conventional", "weights": "importance",
            "method": "hierarchical", **extra}  # fmt: skip


def _vit_scenario() -> dict:
    return {
        "name": "est", "data": {"dataset": "digits", "eval_images": 4, "calibration_images": 8},
        "model": VIT,
        "schemes": [
            "isfr-uep", "ui-opt",
            _scheme("conv-gradient", importance={"method": "gradient"}),
            _scheme("conv-masking",
                    importance={"method": "masking", "options": {"batch_size": 256}}),
            _scheme("conv-zt", importance={"method": "zero-tprune"},
                    selection={"method": "zero-tprune", "keep": 0.5}),
            {**_scheme("conv-op-uniform", selection={"method": "optiprune", "keep": 3}),
             "weights": "uniform"},
        ],
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# scenario side


def test_keep_count_integers_and_fractions():
    assert [keep_count(k, 16) for k in (1, 16, 0.5, 1.0, 0.09375, 0.03)] == [1, 16, 8, 16, 2, 1]
    # 0.09375 * 16 = 1.5 rounds half up; 0.03 * 16 = 0.48 rounds to 0, kept at 1
    for bad in (0, 17, 0.0, 1.5, -0.5, float("nan"), True, "4", None):
        with pytest.raises(ConfigError, match=r"^keep: .* is invalid; allowed: an integer in 1"):
            keep_count(bad, 16)


def test_specs_resolve_defaults_so_equal_estimators_are_fitted_once():
    a, b = resolve_estimator("masking", {}), resolve_estimator("masking", {"batch_size": 256})
    assert a == b and a.key == b.key
    assert resolve_estimator("masking", {"batch_size": 8}).key != a.key
    assert json.loads(a.options_json) == a.options == make_estimator("masking").get_params()
    assert set(reducing_methods()) >= {"optiprune", "vflowopt", "zero-tprune"}
    assert "masking" not in reducing_methods() and "lima" not in reducing_methods()


def test_plan_and_scheme_estimators():
    s = load_scenario(_vit_scenario())
    masking, gradient = resolve_estimator("masking", {}), resolve_estimator("gradient", {})
    zt, op = resolve_estimator("zero-tprune", {}), resolve_estimator("optiprune", {})
    assert s.default_estimator() == masking
    assert s.scheme_estimator("isfr-uep") == masking  # no own estimator: the scenario's
    assert s.scheme_estimator("ui-opt") is None and s.scheme_estimator("conv-op-uniform") is None
    assert s.scheme_estimator("conv-gradient") == gradient
    assert s.scheme_selection("conv-zt") == (zt, 8) and s.scheme_selection("conv-op-uniform") == (
        op, 3,
    )  # fmt: skip
    assert s.scheme_selection("conv-gradient") is None
    # the scenario's first, then each distinct estimator once (masking spelled out is masking)
    assert s.estimator_plan() == {"isfr": [masking], "conventional": [masking, gradient, zt, op]}
    resolved = {d["name"]: d for d in s.resolved()["schemes"]}
    assert "importance" not in resolved["isfr-uep"] and "selection" not in resolved["ui-opt"]
    assert resolved["conv-zt"]["selection"] == {"method": "zero-tprune", "keep": 0.5,
                                                "options": zt.options}  # fmt: skip
    assert resolved["conv-gradient"]["importance"] == {"method": "gradient",
                                                       "options": gradient.options}  # fmt: skip


def test_scenarios_without_scheme_estimators_keep_their_hash():
    plain = {
        "name": "h",
        "schemes": [
            "isfr-uep",
            {"name": "c", "model": "conventional", "weights": "uniform", "method": "ui-ep"},
        ],
    }
    s = load_scenario(plain)
    assert [sorted(d) for d in s.resolved()["schemes"]] == [
        ["method", "model", "name", "options", "weights"]] * 2  # fmt: skip
    own = _scheme("c", importance={"method": "gradient"})
    assert load_scenario({**plain, "schemes": ["isfr-uep", own]}).config_hash() != s.config_hash()


def test_validation_lines():
    bad = {
        "name": "bad", "model": {"name": "vit", "n_features": 16},
        "schemes": [
            _scheme("a", importance={"method": "shap"}),
            _scheme("b", selection={"method": "masking", "keep": 4}),
            _scheme("c", selection={"method": "zero-tprune", "keep": 17}),
            _scheme("d", selection={"method": "zero-tprune", "keep": 1.5}),
            {**_scheme("e", importance={"method": "gradient"}), "weights": "uniform"},
            _scheme("f", importance={"method": "gradient", "options": {"bogus": 1}}),
        ],
    }  # fmt: skip
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    names, reducers = ", ".join(IMPORTANCE.names()), ", ".join(reducing_methods())
    assert sorted(info.value.problems) == sorted([
        f"schemes[0].importance.method: 'shap' is invalid; allowed: {names}",
        f"schemes[1].selection.method: 'masking' is invalid; allowed: an importance estimator "
        f"with reduce ({reducers})",
        "schemes[2].selection.keep: 17 is invalid; allowed: an integer in 1..16 "
        "(model.n_features) or a fraction in (0, 1]",
        "schemes[3].selection.keep: 1.5 is invalid; allowed: an integer in 1..model.n_features "
        "or a fraction in (0, 1]",
        "schemes[4].importance: {'method': 'gradient', 'options': {}} is invalid; allowed: null "
        "(weights: uniform uses no estimator)",
        "schemes[5].importance.options.bogus: unknown key; allowed: batch_size, loss",
    ])  # fmt: skip


def test_the_experiment_scenario_validates():
    """scenarios/importance_methods.yaml: every estimator on both models, the issue's link."""
    s = load_scenario(EXPERIMENT)
    assert s.model.name == "vit" and s.allocation.eta == 0.5 and s.channel.model == "rayleigh"
    assert s.sweep["snr_db"] == [-5.0, 0.0, 15.0]
    used = {(s.scheme(n).model, (s.scheme_estimator(n) or s.default_estimator()).method)
            for n in s.scheme_names()}  # fmt: skip
    for variant in ("isfr", "conventional"):
        assert {m for v, m in used if v == variant} >= set(ISSUE_ESTIMATORS), variant
    assert "isfr-uep" in s.scheme_names()


# ---------------------------------------------------------------------------------------------
# link side, no training


@pytest.fixture(scope="module")
def vit_task() -> tuple[LinkPointTask, dict]:
    s = load_scenario(_vit_scenario())
    torch.manual_seed(0)
    calibration_images = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    models, profiles, weights, raw, drop = {}, {}, {}, {}, {}
    for variant in s.model_variants():
        model = build_model("vit", 16, input_shape=[1, 8, 8], **VIT["options"]).eval()
        models[variant] = model
        for spec in s.estimator_plan()[variant]:
            profiles[(variant, spec.key)] = fit_profile(variant, model, calibration_images, spec)
        default = profiles[(variant, s.default_estimator().key)]
        weights[variant], raw[variant] = default.weights, default.raw
        drop[variant] = np.full(16, 0.1)
    calibration = Calibration({}, weights, raw, drop, dict.fromkeys(models, float("nan")),
                              np.arange(4), np.arange(4, 12), profiles)  # fmt: skip
    task = LinkPointTask(s, calibration)
    task.use_models(models, calibration_images[:4])
    return task, {p["scheme"]: p for p in grid(s)}


def test_each_scheme_gets_its_own_estimators_weights(vit_task):
    task, points = vit_task
    s, cal = task.scenario, task.calibration
    gradient = cal.profile("conventional", resolve_estimator("gradient", {})).weights
    masking = cal.weights["conventional"]
    assert not np.allclose(gradient, masking), "two estimators, two profiles"
    np.testing.assert_array_equal(task.link(points["conv-gradient"]).weights, gradient)
    np.testing.assert_array_equal(task.link(points["conv-masking"]).weights, masking)
    np.testing.assert_array_equal(task.link(points["isfr-uep"]).weights, cal.weights["isfr"])
    np.testing.assert_array_equal(task.link(points["ui-opt"]).weights, np.full(16, 1 / 16))
    zt = task.link(points["conv-zt"])
    assert zt.keep == 8 and zt.selection is cal.profile("conventional", s.scheme_selection(
        "conv-zt")[0]).estimator  # fmt: skip
    assert task.link(points["conv-op-uniform"]).keep == 3
    assert task.link(points["conv-gradient"]).selection is None
    assert task.estimator_columns("conv-zt") == {
        "estimator": "zero-tprune",
        "selection": "zero-tprune",
        "keep": 8,
    }
    assert task.estimator_columns("ui-opt") == {"estimator": "none", "selection": "none",
                                                "keep": 16}  # fmt: skip
    with pytest.raises(ConfigError, match=r"^estimator: .* is invalid; allowed: an estimator"):
        cal.profile("isfr", resolve_estimator("gradient", {}))
    row = task(points["conv-zt"]).row
    assert row["estimator"] == "zero-tprune" and row["keep"] == 8 and row["mean_selected"] <= 8


def test_ordering_rows():
    """ρ of masking itself is 1; index-order row present; areas lie in [0, 1] for these."""
    torch.manual_seed(0)
    model = build_model("mlp", 6).eval()
    images = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    specs = [resolve_estimator("masking", {}), resolve_estimator("gradient", {})]
    profiles = [fit_profile("conventional", model, images, spec) for spec in specs]
    rows = ordering_rows("conventional", model, images, profiles)
    assert [r["estimator"] for r in rows] == ["masking", "gradient", INDEX_ORDER]
    assert rows[0]["spearman"] == pytest.approx(1.0)
    assert all(r["model"] == "conventional" for r in rows)
    for r in rows:
        assert -1.0 <= r["spearman"] <= 1.0 and r["seconds"] >= 0.0
    # computing the ground truth instead of reusing masking's profile gives the same rows
    again = ordering_rows("conventional", model, images, profiles[1:])
    assert again[0] == rows[1] | {"seconds": rows[1]["seconds"]}


# ---------------------------------------------------------------------------------------------
# semcom run end to end


def _smoke(checkpoints: Path) -> list[str]:
    return [
        "--set", "training.epochs=1", "--set", "data.options={limit: 120}",
        "--set", "data.eval_images=6", "--set", "data.calibration_images=12",
        "--set", "sweep.snr_db=[0]", "--set", "stop.min_draws=1", "--set", "stop.max_draws=1",
        "--set", f"training.checkpoint_dir={checkpoints}", "--set", "output.plots=false",
        "--no-progress", "--workers", "1",
    ]  # fmt: skip


def test_run_writes_estimators_and_keeps_existing_schemes_identical(tmp_path: Path):
    base = {"name": "est-run", "data": {"dataset": "digits"}, "model": {"name": "mlp"}}
    with_estimators = {**base, "schemes": [
        "isfr-uep", "ui-opt",
        _scheme("conv-gradient", importance={"method": "gradient"}),
        {**_scheme("isfr-gradient", importance={"method": "gradient"}), "model": "isfr"},
    ]}  # fmt: skip
    only_existing = {**base, "schemes": ["isfr-uep", "ui-opt"]}
    runs = {}
    for label, raw in (("estimators", with_estimators), ("existing", only_existing)):
        path = tmp_path / f"{label}.yaml"
        path.write_text(json.dumps(raw))
        out = tmp_path / label
        assert main(["run", str(path), "--out", str(out), *_smoke(tmp_path / "ckpt")]) == 0
        runs[label] = out
    out = runs["estimators"]
    importance = pd.read_csv(out / "importance.csv")
    blocks = importance.groupby(["model", "estimator"])["weight"]
    assert sorted(blocks.groups) == [("conventional", "gradient"), ("conventional", "masking"),
                                     ("isfr", "gradient"), ("isfr", "masking")]  # fmt: skip
    assert np.allclose(blocks.sum().to_numpy(), 1.0) and (importance["seconds"] >= 0).all()
    conv = importance[importance["model"] == "conventional"]
    w_grad = conv[conv["estimator"] == "gradient"]["weight"].to_numpy()
    assert not np.allclose(w_grad, conv[conv["estimator"] == "masking"]["weight"].to_numpy())
    ordering = pd.read_csv(out / "ordering.csv")
    assert list(ordering.columns) == ["model", "estimator", "options", "seconds", "cpu_seconds",
                                      "spearman", "insertion_auc", "deletion_auc"]  # fmt: skip
    assert len(ordering) == 2 * 3
    masking = ordering[ordering["estimator"] == "masking"]
    assert np.allclose(masking["spearman"], 1.0)
    results = pd.read_csv(out / "results.csv").set_index("scheme")
    assert results.loc["conv-gradient", "estimator"] == "gradient"
    assert results.loc["isfr-uep", "estimator"] == "masking"
    assert results.loc["ui-opt", "estimator"] == "none"
    assert (results["selection"] == "none").all() and (results["keep"] == 16).all()
    # the existing schemes' rows are those of the run without the new schemes
    existing = pd.read_csv(runs["existing"] / "results.csv").set_index("scheme")
    columns = [c for c in existing.columns if c not in ("point", "seconds")]
    pd.testing.assert_frame_equal(results.loc[["isfr-uep", "ui-opt"], columns], existing[columns])
    # one profile line per (model, estimator) in the importance figure
    from semcom.plots import plot_importance

    assert len(plot_importance(load_results(out)).get_lines()) == 4


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_attention_estimator_on_a_model_without_attention_is_refused_at_load(model: str) -> None:
    """A white-box estimator that reads attention is refused when the scenario loads (one line
    naming the field), for the scenario's importance and for a scheme's own estimator."""
    attention = [m for m in IMPORTANCE.names() if IMPORTANCE.get(m).models == ("vit",)]
    assert {"elastic-cache", "zero-tprune", "optiprune", "vflowopt", "var"} <= set(attention)
    for method in attention:
        with pytest.raises(ScenarioError) as err:
            load_scenario({"name": "x", "model": {"name": model}, "importance": {"method": method}})
        (line,) = err.value.problems
        assert line.startswith(f"importance.method: '{method}' is invalid") and "vit" in line
    scheme = {"name": "own", "model": "isfr", "weights": "importance", "method": "hierarchical",
              "importance": {"method": "zero-tprune"}}  # fmt: skip
    with pytest.raises(ScenarioError) as err:
        load_scenario({"name": "x", "model": {"name": model}, "schemes": [scheme]})
    assert err.value.problems[0].startswith("schemes[0].importance.method: 'zero-tprune'")
    load_scenario({"name": "x", "model": {"name": "vit"}, "schemes": [scheme]})  # fine on a ViT
