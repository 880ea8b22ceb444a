"""Compression steps in scenarios: a scheme's codec is compressed before evaluation.

- the scenario side: resolved specs, one compressed codec per (variant, method, options), the
  calibration plan keyed by codec, the config hash of scenarios without compression unchanged,
  one-line validation errors (unknown method, unknown option, an option the constructor
  refuses);
- ``semcom run`` end to end at smoke size (digits MLP, 1 epoch on 120 images): a compressed
  scheme's rows carry the size measured on its codec (checked against an independent count
  of the encoder's weights), its weights and drop distortions are measured on the compressed
  codec, and the rows of the uncompressed schemes are bit-identical to those of a run without
  the compressed schemes, with the dense codec's size.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from semcom.cli import main
from semcom.compression import COMPRESSION
from semcom.scenario import ScenarioError, load_scenario
from semcom.scheme_compression import (
    SIZE_COLUMNS,
    codec_name,
    compress_codec,
    resolve_compression,
)


def _scheme(name: str, model: str = "isfr", **extra) -> dict:  # noqa: ANN003
    return {"name": name, "model": model, "weights": "importance", "method": "hierarchical",
            **extra}  # fmt: skip


MAG = {"method": "magnitude", "options": {"sparsity": 0.5}}
QUANT = {"method": "uniform-quant", "options": {"bits": 4}}
BASE = {"name": "comp", "data": {"dataset": "digits"}, "model": {"name": "mlp"}}


# ---------------------------------------------------------------------------------------------
# scenario side


def test_plan_one_codec_per_variant_method_and_resolved_options():
    s = load_scenario({**BASE, "schemes": [
        "isfr-uep", "ui-opt",
        _scheme("a", compression=MAG),
        # the same compression with a default spelled out: the same codec
        _scheme("b", compression={"method": "magnitude",
                                  "options": {"sparsity": 0.5, "scope": "global"}}),
        _scheme("c", model="conventional", compression=MAG),
        _scheme("d", compression=QUANT),
    ]})  # fmt: skip
    mag = resolve_compression("magnitude", {"sparsity": 0.5})
    assert s.scheme_codec("a") == s.scheme_codec("b") == codec_name("isfr", mag)
    assert s.scheme_codec("isfr-uep") == "isfr" and s.scheme_compression("ui-opt") is None
    plan = s.compression_plan()
    assert list(plan) == [
        codec_name("isfr", mag),
        codec_name("conventional", mag),
        codec_name("isfr", resolve_compression("uniform-quant", {"bits": 4})),
    ]
    assert plan[codec_name("conventional", mag)] == ("conventional", mag)
    # every codec gets the scenario's estimator fitted on it
    estimators = s.estimator_plan()
    assert list(estimators) == ["isfr", "conventional", *plan]
    assert all([e.method for e in specs] == ["masking"] for specs in estimators.values())
    # the resolved file keeps the resolved options and loads to the same scenario
    entry = s.resolved()["schemes"][2]
    assert entry["compression"] == {"method": "magnitude", "options": mag.options}
    assert load_scenario(s.resolved()).config_hash() == s.config_hash()


def test_scenarios_without_compression_keep_their_hash():
    plain = {**BASE, "schemes": ["isfr-uep", _scheme("x")]}
    s = load_scenario(plain)
    assert "compression" not in s.resolved()["schemes"][1]
    with_it = {**BASE, "schemes": ["isfr-uep", _scheme("x", compression=MAG)]}
    assert load_scenario(with_it).config_hash() != s.config_hash()


def test_validation_lines():
    bad = {**BASE, "schemes": [
        _scheme("a", compression={"method": "zip"}),
        _scheme("b", compression={"method": "magnitude", "options": {"bogus": 1}}),
        _scheme("c", compression={"method": "magnitude", "options": {"sparsity": 1.5}}),
        _scheme("d", compression={"method": "uniform-quant", "options": {"bits": 0}}),
        _scheme("e", compression={"options": {}}),
    ]}  # fmt: skip
    with pytest.raises(ScenarioError) as info:
        load_scenario(bad)
    problems = info.value.problems
    assert len(problems) == 5 and all("\n" not in p for p in problems)
    assert (f"schemes[0].compression.method: 'zip' is invalid; allowed: "
            f"{', '.join(COMPRESSION.names())}") in problems  # fmt: skip
    assert any(p.startswith("schemes[1].compression.options.bogus: unknown key; allowed: ")
               and "sparsity" in p for p in problems)  # fmt: skip
    assert any(p.startswith("schemes[2].compression.options.sparsity: 1.5 is invalid")
               for p in problems)  # fmt: skip
    assert any(p.startswith("schemes[3].compression.options.bits: 0 is invalid")
               for p in problems)  # fmt: skip
    assert any(p.startswith("schemes[4].compression.method") for p in problems)


def test_compress_codec_round_trips_and_leaves_the_rng_alone():
    from semcom.models.build import build_model

    torch.manual_seed(0)
    model = build_model("mlp", 16, input_shape=(1, 8, 8)).eval()
    images = torch.rand(8, 1, 8, 8)
    state = torch.random.get_rng_state()
    codec = compress_codec(
        "isfr", model, images, resolve_compression("magnitude", {"sparsity": 0.75})
    )
    assert torch.equal(torch.random.get_rng_state(), state)
    loaded = codec.load()
    weights = [p for n, p in loaded.named_parameters() if n.startswith("encoder.")]
    nonzero = sum(int((p != 0).sum()) for p in weights)
    assert codec.size.params == sum(p.numel() for p in weights)
    assert codec.size.nonzero_params == nonzero < codec.size.params
    again = compress_codec("isfr", model, images, codec.spec)
    assert again.size == codec.size and again.row()["details"] == codec.row()["details"]


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


def test_run_compressed_rows_carry_the_measured_size_and_others_are_unchanged(tmp_path: Path):
    existing = ["isfr-uep", "ui-opt"]
    compressed = {**BASE, "schemes": [
        *existing, _scheme("isfr-mag", compression=MAG), _scheme("isfr-q4", compression=QUANT),
    ]}  # fmt: skip
    runs = {}
    for label, raw in (("compressed", compressed), ("existing", {**BASE, "schemes": existing})):
        path = tmp_path / f"{label}.yaml"
        path.write_text(json.dumps(raw))
        out = tmp_path / label
        assert main(["run", str(path), "--out", str(out), *_smoke(tmp_path / "ckpt")]) == 0
        runs[label] = out
    results = pd.read_csv(runs["compressed"] / "results.csv").set_index("scheme")
    dense = results.loc["isfr-uep"]
    # the mlp encoder: Linear(64, h) and Linear(h, 16) with biases; the dense codec's size
    assert dense["compression"] == "none" and dense["encoder_weight_bits"] == 32.0
    assert dense["encoder_nonzero_params"] <= dense["encoder_params"]
    assert results.loc["ui-opt", "encoder_params"] == dense["encoder_params"]
    mag, q4 = results.loc["isfr-mag"], results.loc["isfr-q4"]
    assert mag["compression"] == "magnitude" and q4["compression"] == "uniform-quant"
    assert mag["encoder_params"] == dense["encoder_params"]
    assert mag["encoder_nonzero_params"] < 0.75 * dense["encoder_nonzero_params"]
    assert mag["encoder_effective_flops"] < dense["encoder_effective_flops"]
    assert 4.0 <= q4["encoder_weight_bits"] < 32.0  # weights at 4 bits, biases stay float
    # compression.csv: the same sizes, one row per compressed codec
    table = pd.read_csv(runs["compressed"] / "compression.csv").set_index("compression")
    for name, row in (("magnitude", mag), ("uniform-quant", q4)):
        for column in SIZE_COLUMNS:
            assert table.loc[name, column] == row[column]
    # the weights were measured on the compressed codecs (their own importance.csv blocks)
    importance = pd.read_csv(runs["compressed"] / "importance.csv")
    codecs = set(importance["model"])
    assert set(table["codec"]) <= codecs and {"isfr", "conventional"} <= codecs
    w = {c: importance[importance["model"] == c]["weight"].to_numpy() for c in codecs}
    assert np.allclose([w[c].sum() for c in codecs], 1.0)
    assert not np.allclose(w[table.loc["magnitude", "codec"]], w["isfr"])
    # the uncompressed schemes: bit-identical rows to those of the run without compression
    before = pd.read_csv(runs["existing"] / "results.csv").set_index("scheme")
    columns = [c for c in before.columns if c not in ("point", "seconds")]
    pd.testing.assert_frame_equal(results.loc[existing, columns], before[columns])
    assert (before["compression"] == "none").all()
