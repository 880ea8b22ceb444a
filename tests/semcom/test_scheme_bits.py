"""A custom scheme's ``bits``: per-feature quantiser bits from a bit allocator, end to end.

- the scenario side: one-line validation errors (unknown allocator, bad options, budgets that
  break :func:`semcom.bitalloc.check_budget`'s rules), the resolved config (a scheme without
  ``bits`` hashes as before) and the shipped experiment scenario;
- the link side (no training): a scheme with ``bits`` gets the allocator's ``Q[N]`` of its own
  weights in its link (quantiser, problem and symbol budget), ``uniform`` bits with an integer
  average give exactly the rows of the single-``Q`` scheme, non-uniform bits change them;
- ``semcom run`` at smoke size writes ``bits.csv`` and the ``bit_allocation, average_bits``
  columns.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from optim.problem import Problem
from semcom.bitalloc import BIT_ALLOCATION
from semcom.cli import main
from semcom.link_task import LinkPointTask
from semcom.models.build import build_model
from semcom.prepare import Calibration
from semcom.runner import grid
from semcom.scenario import ScenarioError, load_scenario

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = ROOT / "scenarios" / "bit_allocation.yaml"
N = 16


def _scheme(name: str, model: str = "conventional", **extra) -> dict:  # noqa: ANN003
    return {"name": name, "model": model, "weights": "importance", "method": "hierarchical",
            **extra}  # fmt: skip


def _bits(method: str, average: float, **extra) -> dict:  # noqa: ANN003
    return {"method": method, "average_bits": average, **extra}


def _scenario(schemes: list, **channel) -> dict:  # noqa: ANN003
    return {"name": "bits", "data": {"dataset": "digits", "eval_images": 4},
            "model": {"name": "mlp", "n_features": N}, "channel": {"snr_db": 5, **channel},
            "schemes": schemes, "stop": {"min_draws": 1, "max_draws": 2}}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# scenario side


@pytest.mark.parametrize(
    ("bits", "line"),
    [
        (_bits("nope", 4), r"schemes\[0\]\.bits\.method: 'nope' is invalid; allowed: uniform"),
        (_bits("uniform", 4.3),
         r"schemes\[0\]\.bits\.average_bits: 4\.3 is invalid; allowed: a multiple of 1/N = 1/16"),
        (_bits("greedy-distortion", 4, q_min=5),
         r"schemes\[0\]\.bits\.average_bits: 4\.0 is invalid; allowed: a number in \[5, 16\]"),
        (_bits("uniform", 4, q_min=6, q_max=3),
         r"schemes\[0\]\.bits\.q_max: 3 is invalid; allowed: an integer in 6\.\.16"),
        (_bits("uniform", 4, options={"x": 1}), r"schemes\[0\]\.bits\.options\.x: unknown key"),
        (_bits("edgeqat", 4, options={"low_bits": 2}),
         r"schemes\[0\]\.bits\.options\.high_bits: None is invalid"),
        (_bits("edgeqat", 4, q_max=6, options={"low_bits": 2, "high_bits": 8}),
         r"schemes\[0\]\.bits\.options\.high_bits: 8 is invalid; allowed: an integer <= q_max"),
        (_bits("edgeqat", 4.0625, options={"low_bits": 2, "high_bits": 8}),
         r"schemes\[0\]\.bits\.average_bits: 4\.0625 is invalid; allowed: 2 \+ k·6/16"),
        (_bits("uniform", 17), r"schemes\[0\]\.bits\.average_bits: 17 is invalid"),
    ],
)  # fmt: skip
def test_bad_bits_is_one_line(bits: dict, line: str):
    with pytest.raises(ScenarioError, match=line) as info:
        load_scenario(_scenario([_scheme("a", bits=bits)]))
    assert len(str(info.value).strip().splitlines()) == 1, str(info.value)


def test_resolved_bits_and_unchanged_hash_without_them():
    plain = load_scenario(_scenario([_scheme("a")]))
    assert "bits" not in plain.resolved()["schemes"][0]
    assert plain.scheme("a").bits is None
    s = load_scenario(_scenario([_scheme("a"), _scheme("b", bits=_bits("edgeqat", 6))]))
    resolved = s.resolved()["schemes"][1]["bits"]
    assert resolved == {"method": "edgeqat", "average_bits": 6.0, "q_min": 1, "q_max": 16,
                        "options": {"low_bits": None, "high_bits": None}}  # fmt: skip
    again = load_scenario({**s.resolved(), "name": "bits"})
    assert again.config_hash() == s.config_hash()
    # the scheme "a" of both files is the same scheme, and "b" makes the hash differ
    assert plain.config_hash() != s.config_hash()


def test_the_experiment_scenario_validates():
    s = load_scenario(EXPERIMENT)
    assert s.model.name == "mlp" and s.allocation.eta == 0.5 and s.channel.model == "rayleigh"
    assert s.sweep["snr_db"] == [0.0, 15.0]
    found = {(s.scheme(n).model, (s.scheme(n).bits or {}).get("method"),
              (s.scheme(n).bits or {}).get("average_bits")) for n in s.scheme_names()}  # fmt: skip
    for variant in ("isfr", "conventional"):
        assert (variant, None, None) in found  # the single-Q reference
        for method in ("uniform", "greedy-distortion", "edgeqat"):
            assert {(variant, method, 4.0), (variant, method, 6.0)} <= found
    assert {s.scheme(n).method for n in s.scheme_names()} == {"hierarchical"}


# ---------------------------------------------------------------------------------------------
# link side, no training


@pytest.fixture(scope="module")
def task() -> tuple[LinkPointTask, dict]:
    schemes = [
        _scheme("conv-q4"),
        _scheme("conv-uniform-b4", bits=_bits("uniform", 4)),
        _scheme("conv-greedy-b4", bits=_bits("greedy-distortion", 4, q_max=10)),
        {**_scheme("conv-ui-greedy-b4", bits=_bits("greedy-distortion", 4)), "weights": "uniform"},
        _scheme("isfr-edgeqat-b6", "isfr",
                bits=_bits("edgeqat", 6, options={"low_bits": 4, "high_bits": 8})),
    ]  # fmt: skip
    s = load_scenario(_scenario(schemes, bits_per_scalar=4))
    torch.manual_seed(0)
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    models = {v: build_model("mlp", N).eval() for v in s.model_variants()}
    # decreasing weights with a tail of zeros (as ISFR's clipped masking weights have)
    w = np.r_[0.5 ** np.arange(12), np.zeros(4)]
    weights = {"conventional": w / w.sum(), "isfr": w[::-1] / w.sum()}
    calibration = Calibration({}, weights, weights, {v: np.full(N, 0.1) for v in models},
                              dict.fromkeys(models, float("nan")), np.arange(4),
                              np.arange(4, 12))  # fmt: skip
    t = LinkPointTask(s, calibration)
    t.use_models(models, images)
    return t, {p["scheme"]: p for p in grid(s)}


def test_link_gets_the_allocators_bits(task):
    t, points = task
    w = t.calibration.weights["conventional"]
    link = t.link(points["conv-greedy-b4"])
    expected = BIT_ALLOCATION.get("greedy-distortion")().allocate(w, 4, 1, 10)
    np.testing.assert_array_equal(link.bits_per_scalar, expected)
    assert expected.sum() == 4 * N and len(set(expected.tolist())) > 1
    assert np.all(np.diff(expected) <= 0), "more important features never get fewer bits"
    assert expected[-4:].tolist() == [1] * 4, "zero-weight features stay at q_min"
    # the problem sees Q[N]; the symbol budget uses the mean Q = average_bits
    problem = Problem(gains=np.ones(N), **link._template)  # each frame's problem, unit gains
    np.testing.assert_array_equal(problem.bits_per_scalar, expected)
    assert problem.symbol_budget == pytest.approx(0.5 * N * link.scalars_per_feature * 4 / 2)
    # the isfr scheme's edgeqat bits follow its own (reversed) weights: 8 top features at 8
    q = t.link(points["isfr-edgeqat-b6"]).bits_per_scalar
    assert q.tolist() == [4] * 8 + [8] * 8
    # uniform weights: every greedy gain ties, so the bits are equal (the lower index first)
    assert t.link(points["conv-ui-greedy-b4"]).bits_per_scalar.tolist() == [4] * N
    # no bits: the condition's single Q
    assert t.link(points["conv-q4"]).bits_per_scalar == 4


def test_uniform_integer_average_equals_the_single_q_scheme(task):
    t, points = task
    same = (
        "channel snr_db eta n_subchannels rician_k bits_per_scalar seed model weights "
        "method estimator selection keep average_bits"
    ).split()
    rows = {name: t(points[name]).row for name in ("conv-q4", "conv-uniform-b4",
                                                    "conv-greedy-b4")}  # fmt: skip
    reference, uniform = rows["conv-q4"], rows["conv-uniform-b4"]
    skip = {"point", "key", "scheme", "bit_allocation", "seconds"}
    assert uniform.keys() == reference.keys()
    differ = [k for k in reference if k not in skip and not _same(uniform[k], reference[k])]
    assert differ == [], {k: (uniform[k], reference[k]) for k in differ}
    assert reference["n_draws"] >= 1 and np.isfinite(reference["psnr_db"])
    assert reference["bit_allocation"] == "none" and reference["average_bits"] == 4.0
    assert uniform["bit_allocation"] == "uniform" and uniform["average_bits"] == 4.0
    # non-uniform bits send other bits: the rows differ
    greedy = rows["conv-greedy-b4"]
    assert all(greedy[k] == reference[k] for k in same if k != "bit_allocation")
    assert greedy["bits_sent"] != reference["bits_sent"]


def _same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN (exactly: no tolerance)."""
    nan = isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b)
    return nan or a == b


def test_bits_rows_record_q(task):
    t, _ = task
    table = pd.DataFrame(t.bits_rows())
    assert list(table.columns) == ["scheme", "model", "bit_allocation", "average_bits",
                                   "feature", "weight", "bits"]  # fmt: skip
    assert "conv-q4" not in set(table["scheme"])
    sums = table.groupby("scheme")["bits"].sum()
    assert sums["conv-greedy-b4"] == 4 * N and sums["isfr-edgeqat-b6"] == 6 * N
    greedy = table[table["scheme"] == "conv-greedy-b4"]["bits"].to_numpy()
    np.testing.assert_array_equal(greedy, t.link(_point(t, "conv-greedy-b4")).bits_per_scalar)


def _point(t: LinkPointTask, name: str):  # noqa: ANN202
    return next(p for p in grid(t.scenario) if p["scheme"] == name)


# ---------------------------------------------------------------------------------------------
# semcom run end to end


def test_run_writes_bits_csv_and_columns(tmp_path: Path):
    raw = _scenario(["isfr-uep", _scheme("conv-greedy-b3", bits=_bits("greedy-distortion", 3))])
    path = tmp_path / "bits.yaml"
    path.write_text(json.dumps(raw))
    out = tmp_path / "out"
    smoke = [
        "--set", "training.epochs=1", "--set", "data.options={limit: 120}",
        "--set", "data.calibration_images=12", "--set", "stop.max_draws=1",
        "--set", f"training.checkpoint_dir={tmp_path / 'ckpt'}", "--set", "output.plots=false",
        "--no-progress", "--workers", "1",
    ]  # fmt: skip
    assert main(["run", str(path), "--out", str(out), *smoke]) == 0
    results = pd.read_csv(out / "results.csv").set_index("scheme")
    assert results.loc["isfr-uep", "bit_allocation"] == "none"
    assert results.loc["isfr-uep", "average_bits"] == 8.0
    assert results.loc["conv-greedy-b3", "bit_allocation"] == "greedy-distortion"
    assert results.loc["conv-greedy-b3", "average_bits"] == 3.0
    bits = pd.read_csv(out / "bits.csv")
    assert set(bits["scheme"]) == {"conv-greedy-b3"} and bits["bits"].sum() == 3 * N
    # Q follows the scheme's calibrated weights (importance.csv, the scenario's masking)
    importance = pd.read_csv(out / "importance.csv")
    w = importance[importance["model"] == "conventional"]["weight"].to_numpy()
    np.testing.assert_allclose(bits["weight"].to_numpy(), w)
    expected = BIT_ALLOCATION.get("greedy-distortion")().allocate(w, 3, 1, 16)
    np.testing.assert_array_equal(bits["bits"].to_numpy(), expected)
