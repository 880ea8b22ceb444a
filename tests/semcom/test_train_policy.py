"""``semcom train-policy``: trains the policies a scenario's rl:<kind> schemes name, reuses
them, and reports usage errors with exit status 2; the link runs an rl:<kind> method unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from semcom.link import SemanticLink, drop_distortion
from tests.semcom.test_link import TanhModel, images

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAIN = {"iterations": 2, "frames": 4, "group": 2, "levels": 4, "hidden": 8, "imitation": 1}


def semcom(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "semcom.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)  # fmt: skip


def scenario(tmp_path: Path, schemes: list) -> Path:
    data = {
        "name": "tiny-rl",
        "data": {"dataset": "digits", "eval_images": 8, "calibration_images": 16},
        "model": {"name": "mlp", "n_features": 4},
        "training": {"epochs": 1, "checkpoint_dir": str(tmp_path / "models")},
        "channel": {"model": "rayleigh", "n_subchannels": 4},
        "schemes": schemes,
        "sweep": {"snr_db": [0, 10]},
        "output": {"dir": str(tmp_path / "out")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_trains_each_policy_once_then_reuses_it(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    rl = {"name": "isfr-rl", "model": "isfr", "weights": "importance", "method": "rl:pg",
          "options": {"train": TINY_TRAIN, "checkpoint_dir": str(policies)}}  # fmt: skip
    path = scenario(tmp_path, ["isfr-uep", rl])
    first = semcom("train-policy", str(path))
    assert first.returncode == 0, first.stderr
    lines = [line for line in first.stdout.splitlines() if line.startswith("rl:pg:")]
    assert len(lines) == 2 and all(": trained -> " in line for line in lines)  # two SNRs
    assert "rl:pg: iteration 3/3" in first.stderr  # progress: 1 imitation + 2 iterations
    files = sorted(policies.glob("policy-pg-N4-K4-*.pt"))
    assert len(files) == 2
    second = semcom("train-policy", str(path), "--kind", "pg")
    assert second.returncode == 0, second.stderr
    lines = [line for line in second.stdout.splitlines() if line.startswith("rl:pg:")]
    assert len(lines) == 2 and all(": reused -> " in line for line in lines)
    assert sorted(policies.glob("*.pt")) == files


@pytest.mark.parametrize(
    ("schemes", "args", "message"),
    [
        (["isfr-uep"], [], "schemes: none allocates with a learned policy"),
        ([{"name": "r", "model": "isfr", "weights": "importance", "method": "rl:pg"}],
         ["--kind", "hapo"], "kind: 'hapo' is invalid; allowed: a kind of the scenario's rl:"),
        ([{"name": "r", "model": "isfr", "weights": "importance", "method": "rl:pg"}],
         ["--device", "tpu"], "device: 'tpu' is invalid"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_one_line(tmp_path: Path, schemes, args, message) -> None:
    done = semcom("train-policy", str(scenario(tmp_path, schemes)), *args)
    lines = done.stderr.splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith(f"semcom train-policy: error: {message}")
    assert not (tmp_path / "models").exists()  # nothing was trained


def test_the_link_allocates_with_a_learned_policy(tmp_path: Path) -> None:
    model, x = TanhModel(n=3, length=2), images(4)
    weights, drop = np.array([0.6, 0.3, 0.1]), drop_distortion(model, x)
    options = {"train": TINY_TRAIN, "checkpoint_dir": str(tmp_path), "progress": False}
    link = SemanticLink(model, weights, drop, channel="rayleigh", n_subchannels=3, snr_db=8.0,
                        eta=0.75, method="rl:pg", method_options=options)  # fmt: skip
    frames = link.simulate(x)
    assert frames.x_hat.shape == x.shape and torch.isfinite(frames.x_hat).all()
    symbols = np.where(frames.sent, np.ceil(2 * 8 / np.maximum(frames.bits_per_symbol, 1)), 0)
    assert np.all(symbols.sum(axis=1) <= 0.75 * 3 * 2 * 8 / 2)  # S_max respected
    assert len(list(tmp_path.glob("policy-pg-N3-K3-*.pt"))) == 1
