"""The training, adapter and routing families as a whole (issue: learning-side methods III).

- every method is registered with an arXiv id and listed by ``semcom methods --json``;
- every method is selectable in a scenario (a variant naming it loads and resolves; a
  routing method that needs a vit is refused on an mlp with one line naming ``model.name``);
- every routing method builds a codec of each architecture it accepts whose ``encode`` and
  ``decode`` keep the link's shapes with and without a channel state (so no base option can
  collide with a method's own);
- a scenario run trains an adapted and a routed variant through the one loop and records, in
  ``models.csv``, the adapter's trainable parameters (closed form: LoRA's ``r (a + b)`` per
  wrapped layer) and the parent it started from.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from channels.errors import ConfigError
from semcom.adapters import ADAPTER
from semcom.channel_state import ChannelState
from semcom.models import build_model
from semcom.routing import ROUTING, build_routing
from semcom.scenario import load_scenario
from semcom.train import config_hash
from semcom.training import TRAINING

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "mlp": ("mlp", 4, {"hidden": [16, 16]}, (1, 8, 8)),
    "vit": ("vit", 4, {"input_shape": [1, 8, 8], "dim": 8, "depth": 1, "heads": 2}, (1, 8, 8)),
    "cnn": ("cnn", 4, {"widths": [8, 8]}, (3, 32, 32)),
}
FAMILIES = {"training": TRAINING, "adapter": ADAPTER, "routing": ROUTING}
ISSUE_METHODS = {
    "training": {"ist", "satimp", "doubly-robust", "pada", "entropy-attention"},
    "adapter": {"mos"},
    "routing": {"oasis", "ddm", "informed-routing", "expert-merging", "dit-redundancy", "doit",
                "adaptdhm", "shrp", "ec-dlm"},
}  # fmt: skip


def test_the_fifteen_methods_are_listed_with_arxiv_ids() -> None:
    command = [sys.executable, "-m", "semcom.cli", "methods", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    listed = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    for family, names in ISSUE_METHODS.items():
        papers = {r["name"]: r["paper"] for r in listed if r["family"] == family}
        assert names <= set(papers), (family, names - set(papers))
        for name in FAMILIES[family].names():
            assert papers[name].startswith("arXiv:"), (family, name, papers[name])
    assert sum(len(n) for n in ISSUE_METHODS.values()) == 15


def _scenario(model: str, variant: dict) -> dict:
    name, n, options, _ = TINY[model]
    dataset = "digits" if model != "cnn" else "patches"
    options = {k: v for k, v in options.items() if k != "input_shape"}
    return {
        "name": "family", "data": {"dataset": dataset, "eval_images": 8,
                                   "calibration_images": 16},
        "model": {"name": name, "n_features": 16 if model == "vit" else n, "options": options},
        "training": {"epochs": 1},
        "variants": {"v": variant},
        "schemes": [{"name": "s", "model": "v", "weights": "importance",
                     "method": "hierarchical"}],
    }  # fmt: skip


def _variant(family: str, name: str) -> dict:
    if family == "training":
        return {"method": name}
    if family == "adapter":
        return {"init_from": "isfr", "adapter": {"method": name}}
    return {"routing": {"method": name}}


@pytest.mark.parametrize(
    "family,name", [(f, n) for f, reg in FAMILIES.items() for n in reg.names()]
)
def test_every_method_is_selectable_in_a_scenario(family: str, name: str) -> None:
    needs_vit = (family == "routing" and ROUTING.get(name).models == ("vit",)) or (
        name == "entropy-attention"
    )
    model = "vit" if needs_vit else "mlp"
    scenario = load_scenario(_scenario(model, _variant(family, name)))
    config = scenario.train_config("v")
    field = {"training": "method", "adapter": "adapter", "routing": "routing"}[family]
    assert getattr(config, field) == name
    if needs_vit and family == "routing":
        with pytest.raises(ConfigError, match=r"^model\.name: 'mlp' is invalid; allowed: vit"):
            load_scenario(_scenario("mlp", _variant(family, name)))


def test_a_variant_error_names_the_variant_field() -> None:
    bad = _scenario("mlp", {"routing": {"method": "ddm", "options": {"experts": 99}}})
    with pytest.raises(ConfigError, match=r"variants\.v\.routing\.options\.experts: 99"):
        load_scenario(bad)
    loop = _scenario("mlp", {"init_from": "v"})
    with pytest.raises(ConfigError, match=r"variants\.v\.init_from: 'v' is invalid"):
        load_scenario(loop)


@pytest.mark.parametrize("name", ROUTING.names())
def test_every_routing_method_builds_link_shaped_codecs(name: str) -> None:
    method = build_routing(name, {})
    for arch in method.models or ("mlp", "vit", "cnn"):
        base, n, options, shape = TINY[arch]
        torch.manual_seed(0)
        model = method.build(base, n, dict(options, input_shape=list(shape)), seed=0)
        x = torch.rand(3, *shape)
        state = ChannelState.constant(5.0, "rayleigh", batch=3)
        model.eval()
        with torch.no_grad():
            for s in (None, state):
                z = model.encode(x, s)
                assert z.shape == (3, n, model.scalars_per_feature), (name, arch)
                assert model.decode(z, s).shape == x.shape, (name, arch)


def test_a_run_trains_adapted_and_routed_variants(tmp_path: Path) -> None:
    spec = _scenario("mlp", {})
    spec["data"]["options"] = {"limit": 240}
    spec["training"].update(checkpoint_dir=str(tmp_path / "checkpoints"), batch_size=32)
    spec["variants"] = {
        "lora": {"init_from": "isfr", "adapter": {"method": "lora", "options": {"rank": 2}},
                 "method": "ist"},
        "ddm": {"channel": {"fading": "rayleigh", "snr_db": [0, 10]},
                "routing": {"method": "ddm", "options": {"experts": 2}}},
    }  # fmt: skip
    spec["schemes"] = [{"name": v, "model": v, "weights": "importance", "method": "hierarchical"}
                       for v in ("lora", "ddm")]  # fmt: skip
    spec["stop"] = {"min_draws": 1, "max_draws": 1}
    spec["output"] = {"plots": False, "dir": str(tmp_path / "out")}
    path = tmp_path / "s.yaml"
    import yaml

    path.write_text(yaml.safe_dump(spec))
    done = subprocess.run([sys.executable, "-m", "semcom.cli", "run", str(path), "--workers", "1",
                           "--no-progress"], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    models = pd.read_csv(tmp_path / "out" / "models.csv").set_index("model")
    scenario = load_scenario(spec)
    # LoRA rank 2 on the mlp's Linear layers (encoder 64-16-16, decoder 16... widths read off
    # the unadapted model): trainable = r * sum(in + out)
    plain = build_model("mlp", 4, hidden=[16, 16], input_shape=[1, 8, 8])
    linears = [m for m in plain.modules() if isinstance(m, torch.nn.Linear)]
    head = (
        0
        if plain.head is None
        else len([m for m in plain.head.modules() if isinstance(m, torch.nn.Linear)])
    )
    assert head == 0
    expected = 2 * sum(m.in_features + m.out_features for m in linears)
    assert models.loc["lora", "trainable_parameters"] == expected
    assert models.loc["lora", "adapter"] == "lora"
    assert models.loc["lora", "training_method"] == "ist"
    parent = config_hash(scenario.train_config("isfr"))[:16]
    assert models.loc["lora", "init_from"] == parent
    assert models.loc["ddm", "routing"] == "ddm"
    assert json.loads(models.loc["ddm", "channel_training"])["snr_db"] == [0.0, 10.0]
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    assert set(results["scheme"]) == {"lora", "ddm"}
