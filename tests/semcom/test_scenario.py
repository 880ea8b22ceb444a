"""semcom.scenario: schema, problem messages, overrides, resolution, hash and derived values.

The corpus ``scenario_corpus/``: every ``bad/*.yaml`` starts with comment lines
``# expect: <problem line>`` (one per problem it must yield, ``{file}`` standing for its path)
and may hold ``# set: PATH=VALUE`` lines, passed as overrides; every ``good/*.yaml`` loads.
No model is trained and no data is read beyond the length of a test split.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from channels.errors import ConfigError
from optim.methods import available_methods
from semcom.importance import IMPORTANCE
from semcom.scenario import (
    CONDITION_COLUMNS,
    SWEEP_AXES,
    Scenario,
    ScenarioError,
    apply_overrides,
    load_scenario,
)
from semcom.scheme_estimators import reducing_methods
from semcom.schemes import MODEL_VARIANTS, SCHEMES, Scheme

CORPUS = Path(__file__).parent / "scenario_corpus"
BAD = sorted((CORPUS / "bad").glob("*.yaml"))
GOOD = sorted((CORPUS / "good").glob("*.yaml"))


def _directives(path: Path, kind: str) -> list[str]:
    prefix = f"# {kind}: "
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[len(prefix) :] for line in lines if line.startswith(prefix)]


def _fill(line: str, path: Path) -> str:
    """An expected line with ``{file}`` (the file's path), ``{importance}`` (the registered
    importance estimators), ``{reducers}`` (those with reduce), ``{methods}`` (the
    registered allocation methods), ``{schemes}`` (the built-in schemes) and ``{variants}``
    (the built-in model variants) filled in: the lists grow as methods are added."""
    return (
        line.replace("{file}", str(path))
        .replace("{schemes}", ", ".join(SCHEMES.names()))
        .replace("{variants}", ", ".join(MODEL_VARIANTS))
        .replace("{methods}", ", ".join(available_methods()))
        .replace("{importance}", ", ".join(IMPORTANCE.names()))
        .replace("{reducers}", ", ".join(reducing_methods()))
    )


def _problems(source, overrides=()) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(source, overrides)
    return info.value.problems


# ---------------------------------------------------------------------------------------------
# corpus


def test_corpus_is_large_enough():
    assert len(BAD) >= 25
    assert all(_directives(p, "expect") for p in BAD), "every bad file states its problems"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_corpus_yields_exactly_its_expected_problems(path: Path):
    if "cuda" in path.stem and torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present")
    expected = [_fill(e, path) for e in _directives(path, "expect")]
    problems = _problems(path, _directives(path, "set"))
    assert sorted(problems) == sorted(expected)
    assert all("\n" not in p for p in problems)


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_corpus_loads_and_round_trips(path: Path, tmp_path: Path):
    scenario = load_scenario(path, _directives(path, "set"))
    resolved = scenario.resolved()
    json.dumps(resolved, allow_nan=False)  # JSON-ready
    dumped = scenario.dump(tmp_path / "scenario.yaml")
    again = load_scenario(dumped)
    assert again.resolved() == resolved
    assert again.config_hash() == scenario.config_hash()
    # and the dump is plain YAML that any reader understands
    assert yaml.safe_load(dumped.read_text()) == resolved


# ---------------------------------------------------------------------------------------------
# defaults (the table of the brief / docs/scenarios.md, written out by hand)

DEFAULTS = {
    "description": "",
    "data": {"dataset": "patches", "root": None, "eval_images": 64, "calibration_images": None},
    "model": {"name": "cnn", "n_features": 16},
    "training": {
        "epochs": 15, "batch_size": 64, "lr": 1e-3, "lr_min": 1e-5, "weight_decay": 0.0,
        "classifier_weight": 0.1, "val_fraction": 0.1, "patience": 10, "min_delta": 0.0,
        "amp": True, "checkpoint_dir": "results/checkpoints",
    },
    "importance": {"method": "masking"},
    "channel": {"model": "rayleigh", "rician_k": 3.0, "n_subchannels": 16, "snr_db": 0.0,
                "bits_per_scalar": 8, "code": "binary"},
    "allocation": {"eta": 0.5, "modulations": ["bpsk", "qpsk", "16qam", "64qam"],
                   "ber_model": "exact", "options": {}},
    "sweep": {},
    "metrics": ["psnr", "ssim", "mse", "ber", "accuracy"],
    "stop": {"metric": "psnr_db", "half_width": 0.25, "confidence": 0.95, "min_draws": 2,
             "max_draws": 8},
    "execution": {"executor": "local", "workers": None, "threads": 1, "device": "cpu", "seed": 0,
                  "ray_address": None},
    "output": {"dir": "results/minimal", "plots": True, "parquet": True},
}  # fmt: skip


def test_defaults_are_the_documented_ones():
    resolved = load_scenario({"name": "minimal"}).resolved()
    for key, value in DEFAULTS.items():
        if isinstance(value, dict):
            for field, expected in value.items():
                assert resolved[key][field] == expected, f"{key}.{field}"
        else:
            assert resolved[key] == value, key
    assert [s["name"] for s in resolved["schemes"]] == [
        "isfr-uep",
        "ui-ep",
        "ui-opt",
        "passive-uep",
    ]
    # the library's own option defaults are filled in
    assert resolved["data"]["options"]["size"] == 32
    assert resolved["model"]["options"]["input_shape"] == [3, 32, 32]
    assert resolved["training"]["isfr"]["nested_dropout"] is True
    assert resolved["training"]["conventional"]["profile"] == "uniform"
    assert resolved["importance"]["options"] == {"batch_size": 256, "decode_batch": 4096}


def test_annotated_example_lists_exactly_the_defaults():
    example = load_scenario(CORPUS / "good" / "annotated_defaults.yaml").resolved()
    assert example == load_scenario({"name": "defaults"}).resolved()
    # and it names every field of the schema
    raw = yaml.safe_load((CORPUS / "good" / "annotated_defaults.yaml").read_text())
    for key, field in Scenario.model_fields.items():
        assert key in raw
        sub = getattr(field.annotation, "model_fields", None)
        if sub:
            assert set(raw[key]) == set(sub), key


def test_docs_example_is_the_corpus_file():
    docs = Path(__file__).parents[2] / "docs" / "scenarios.md"
    text = docs.read_text(encoding="utf-8")
    body = (CORPUS / "good" / "annotated_defaults.yaml").read_text(encoding="utf-8")
    body = body.split("\n", 1)[1]  # the corpus file's first line says where it comes from
    assert body.strip() in text


# ---------------------------------------------------------------------------------------------
# types


def test_strict_types_and_int_for_float():
    s = load_scenario(
        {"name": "t", "channel": {"snr_db": 5, "rician_k": 2}, "allocation": {"eta": 1}}
    )
    assert isinstance(s.channel.snr_db, float) and s.channel.snr_db == 5.0
    assert isinstance(s.allocation.eta, float)
    problems = _problems({"name": "t", "model": {"n_features": 8.0}, "stop": {"min_draws": "2"}})
    assert sorted(problems) == [
        "model.n_features: 8.0 is invalid; allowed: an integer in 1..4096",
        "stop.min_draws: '2' is invalid; allowed: an integer in 1..10000",
    ]


def test_yaml_exponent_floats_are_numbers(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text("name: e\ntraining: {lr: 2e-3, lr_min: 1E-6}\nsweep: {snr_db: [-1e1, 1e+1]}\n")
    s = load_scenario(path)
    assert s.training.lr == 2e-3 and s.training.lr_min == 1e-6
    assert s.sweep["snr_db"] == [-10.0, 10.0]
    assert load_scenario(path, ["execution.seed=10"]).execution.seed == 10  # ints stay ints


def test_mapping_source_is_not_modified():
    raw = {"name": "m", "sweep": {"snr_db": [0, 1]}, "channel": {"snr_db": 3}}
    before = copy.deepcopy(raw)
    load_scenario(raw, ["sweep.eta=[0.5]", "channel.model=awgn"])
    assert raw == before


def test_error_type_and_text():
    with pytest.raises(ConfigError) as info:
        load_scenario({"name": "e", "channel": {"model": "x", "snr_db": "y"}})
    err = info.value
    assert isinstance(err, ScenarioError)
    assert str(err) == "\n".join(err.problems) and len(err.problems) == 2
    # lines come grouped by section, in the schema's order
    several = _problems(CORPUS / "bad" / "several_problems.yaml", ["bad"])
    order = ["--set", *Scenario.model_fields]
    heads = [order.index(p.split(":")[0].split(".")[0].split("[")[0]) for p in several]
    assert heads == sorted(heads) and heads[0] == 0


def test_file_problems(tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    assert _problems(missing) == [
        f"scenario: {str(missing)!r} is invalid; allowed: the path of an existing scenario file"
    ]
    assert _problems(5) == ["scenario: 5 is invalid; allowed: a file path or a mapping"]


# ---------------------------------------------------------------------------------------------
# overrides


def test_apply_overrides_parses_yaml_and_creates_mappings():
    raw = {"name": "o", "sweep": None}
    out = apply_overrides(
        raw,
        ["sweep.snr_db=[0,5]", "execution.workers=2", "output.dir=/tmp/x", "a.b.c=d=e",
         "data.root=", "name=renamed"],
    )  # fmt: skip
    assert out == {
        "name": "renamed",
        "sweep": {"snr_db": [0, 5]},
        "execution": {"workers": 2},
        "output": {"dir": "/tmp/x"},
        "a": {"b": {"c": "d=e"}},
        "data": {"root": None},
    }
    assert raw == {"name": "o", "sweep": None}
    with pytest.raises(ScenarioError) as info:
        apply_overrides(raw, ["x", "sweep.snr_db=[0,5]", "y.=1"])
    assert info.value.problems == [
        "--set: 'x' is invalid; allowed: PATH=VALUE (e.g. sweep.snr_db=[0,5])",
        "--set: 'y.=1' is invalid; allowed: PATH=VALUE (e.g. sweep.snr_db=[0,5])",
    ]


def test_overrides_apply_in_order_on_top_of_the_file():
    path = CORPUS / "good" / "digits_mlp.yaml"
    s = load_scenario(path, ["sweep.snr_db=[1, 2]", "sweep.snr_db=[3]", "execution.seed=9"])
    assert s.sweep["snr_db"] == [3.0]
    assert s.execution.seed == 9
    assert list(s.sweep)[:2] == ["eta", "snr_db"]  # overriding keeps the axis in its place
    with pytest.raises(ScenarioError, match=r"^training\.epochs: 0 is invalid"):
        load_scenario(path, ["training.epochs=0"])


# ---------------------------------------------------------------------------------------------
# derived values


def _canonical_hash(s: Scenario) -> str:
    data = s.resolved()
    for key in ("executor", "workers", "ray_address", "threads"):
        del data["execution"][key]
    del data["output"], data["training"]["checkpoint_dir"], data["description"]
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def test_config_hash_ignores_execution_and_output_but_not_results():
    base = {"name": "h", "sweep": {"snr_db": [0, 5]}}
    h = load_scenario(base).config_hash()
    assert h == _canonical_hash(load_scenario(base))
    assert len(h) == 64 and int(h, 16) >= 0
    same = [
        "execution.executor=ray", "execution.workers=3", "execution.ray_address=auto",
        "execution.threads=2", "output.dir=/tmp/elsewhere", "output.plots=false",
        "output.parquet=false", "training.checkpoint_dir=/tmp/ckpt", "description='other words'",
    ]  # fmt: skip
    assert load_scenario(base, same).config_hash() == h
    # spelling out a default does not change it either
    assert (
        load_scenario(base, ["channel.n_subchannels=16", "data.options={size: 32}"]).config_hash()
        == h
    )
    for change in ("sweep.snr_db=[0,6]", "sweep.snr_db=[5,0]", "execution.seed=1",
                   "training.epochs=2", "channel.snr_db=1", "schemes=[isfr-uep]"):  # fmt: skip
        assert load_scenario(base, [change]).config_hash() != h, change


def test_axes_keep_file_order_and_end_with_scheme(tmp_path: Path):
    path = tmp_path / "axes.yaml"
    path.write_text(
        "name: axes\nschemes: [ui-opt, isfr-uep]\n"
        "sweep:\n  seed: [3, 1]\n  eta: [0.5, 0.25]\n  channel: [rician, awgn]\n"
    )
    axes = load_scenario(path).axes()
    assert list(axes) == ["seed", "eta", "channel", "scheme"]
    assert axes == {
        "seed": [3, 1], "eta": [0.5, 0.25], "channel": ["rician", "awgn"],
        "scheme": ["ui-opt", "isfr-uep"],
    }  # fmt: skip
    assert list(load_scenario({"name": "none"}).axes()) == ["scheme"]


def test_base_point_and_condition_columns():
    assert SWEEP_AXES == CONDITION_COLUMNS
    assert CONDITION_COLUMNS == (
        "channel", "snr_db", "eta", "n_subchannels", "rician_k", "bits_per_scalar", "seed",
    )  # fmt: skip
    s = load_scenario({"name": "b", "model": {"n_features": 12}, "execution": {"seed": 77},
                       "channel": {"model": "awgn", "snr_db": -3}})  # fmt: skip
    assert s.base_point() == {
        "channel": "awgn", "snr_db": -3.0, "eta": 0.5, "n_subchannels": 12, "rician_k": 3.0,
        "bits_per_scalar": 8, "seed": 77,
    }  # fmt: skip
    assert list(s.base_point()) == list(CONDITION_COLUMNS)
    assert s.resolved()["channel"]["n_subchannels"] == 12
    explicit = load_scenario({"name": "b", "channel": {"n_subchannels": 4}})
    assert explicit.base_point()["n_subchannels"] == 4


def test_schemes_variants_and_custom_schemes():
    s = load_scenario(CORPUS / "good" / "digits_mlp.yaml")
    assert s.scheme_names() == [
        "isfr-uep", "ui-opt", "isfr-no-dropout-uep", "conv-lowest", "ui-ep",
    ]  # fmt: skip
    assert s.model_variants() == ["isfr", "conventional", "isfr-no-dropout"]
    assert s.scheme("conv-lowest") == Scheme(
        "conventional", "uniform", "lowest-order", {"power": "closed-form"}
    )
    assert s.scheme("isfr-uep") == SCHEMES.get("isfr-uep")
    assert s.scheme("isfr-exact").method == "exact"  # any built-in
    with pytest.raises(ConfigError, match=r"^scheme: 'nope' is invalid"):
        s.scheme("nope")
    resolved = {d["name"]: d for d in s.resolved()["schemes"]}
    assert resolved["ui-ep"] == {"name": "ui-ep", "model": "conventional", "weights": "uniform",
                                 "method": "ui-ep", "options": {}}  # fmt: skip
    assert s.allocation.options["ui-ep"] == {"seed": 7}


def test_train_config_per_variant():
    s = load_scenario(
        {"name": "tc", "training": {"epochs": 3, "isfr": {"rho": 0.3},
                                    "conventional": {"eps_max": 0.02}, "checkpoint_dir": None},
         "execution": {"seed": 5},
         "schemes": ["isfr-uep", "ui-ep", "isfr-no-dropout-uep", "isfr-no-ber-matching-uep"]}
    )  # fmt: skip
    assert s.model_variants() == ["isfr", "conventional", "isfr-no-dropout", "isfr-no-ber-matching"]
    isfr, conv = s.train_config("isfr"), s.train_config("conventional")
    no_dropout, no_ber = s.train_config("isfr-no-dropout"), s.train_config("isfr-no-ber-matching")
    assert isfr.scheme == "isfr" and isfr.isfr["nested_dropout"] is True
    assert isfr.isfr["rho"] == 0.3 and isfr.isfr["distortion"] is True
    assert conv.scheme == "conventional" and conv.isfr["nested_dropout"] is False
    assert conv.isfr["eps_max"] == 0.02 and conv.isfr["rho"] == 0.1  # its own section
    assert no_dropout.scheme == "isfr" and no_dropout.isfr["nested_dropout"] is False
    assert no_dropout.isfr["rho"] == 0.3
    assert no_ber.isfr["distortion"] is False and no_ber.isfr["nested_dropout"] is True
    for c in (isfr, conv, no_dropout, no_ber):
        assert (c.epochs, c.seed, c.device, c.checkpoint_dir) == (3, 5, "cpu", None)
        assert (c.model, c.n_features, c.dataset) == ("cnn", 16, "patches")
    with pytest.raises(ConfigError, match=r"^variant: 'x' is invalid"):
        s.train_config("x")


def test_output_dir():
    assert load_scenario({"name": "od"}).output_dir() == Path("results/od")
    s = load_scenario({"name": "od"}, ["output.dir=/tmp/semcom-od"])
    assert s.output_dir() == Path("/tmp/semcom-od")
    assert s.resolved()["output"]["dir"] == "/tmp/semcom-od"


def test_sweep_values_take_the_base_field_types():
    s = load_scenario({"name": "sw", "sweep": {"snr_db": [0, 2.5], "eta": [1], "seed": [4]}})
    assert s.sweep == {"snr_db": [0.0, 2.5], "eta": [1.0], "seed": [4]}
    assert all(isinstance(v, float) for v in s.sweep["snr_db"] + s.sweep["eta"])
    assert not any(math.isnan(v) for v in s.sweep["snr_db"])


# ---------------------------------------------------------------------------------------------
# hardware and environment checks (made deterministic with monkeypatch)


def test_cuda_device_needs_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert load_scenario({"name": "g", "execution": {"device": "cuda"}}).execution.device == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _problems({"name": "g", "execution": {"device": "cuda"}}) == [
        "execution.device: 'cuda' is invalid; allowed: auto, cpu (no CUDA GPU here)"
    ]
    assert load_scenario({"name": "g", "execution": {"device": "auto"}}).execution.device == "auto"


def test_ray_executor_needs_ray(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    assert _problems({"name": "r", "execution": {"executor": "ray"}}) == [
        "execution.executor: 'ray' is invalid; allowed: local "
        '(Ray is not installed: pip install -e ".[distributed]")'
    ]
