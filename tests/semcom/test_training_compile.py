"""Compiling the matched training channel's allocation solver before training
(:func:`semcom.prepare.train_models`, :func:`semcom.training.channel_bank.compile_solver`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from semcom import prepare
from semcom.train import TrainConfig
from semcom.training import channel_bank


def _config(tmp_path: Path, **fields: object) -> TrainConfig:
    return TrainConfig(model="mlp", n_features=4, dataset="digits", epochs=1, batch_size=32,
                       device="cpu", seed=3, checkpoint_dir=str(tmp_path), **fields)  # fmt: skip


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the warm-up and the trainings instead of running them."""
    seen: list[str] = []
    monkeypatch.setattr(prepare, "compile_solver", lambda: seen.append("compile"))

    def fake_train(config: TrainConfig, threads: int, report: object, reuse: bool) -> object:
        seen.append("train")
        return prepare._Trained(str(Path(config.checkpoint_dir) / "x.pt"), False, 0.0, 1)

    monkeypatch.setattr(prepare, "_train_one", fake_train)
    return seen


def test_a_matched_channel_compiles_the_solver_once_before_any_training(
    tmp_path: Path, calls: list[str]
) -> None:
    plain = _config(tmp_path)
    matched = dataclasses.replace(plain, seed=4, channel={"fading": "rayleigh", "snr_db": 0})
    lines: list[str] = []
    prepare.train_models({"a": plain, "b": matched, "c": matched}, 1, 1, lines.append, False)
    assert calls == ["compile", "train", "train", "train"]
    assert not [line for line in lines if line.startswith(("compiling", "kernels compiled"))]


def test_without_a_matched_channel_nothing_is_compiled_first(
    tmp_path: Path, calls: list[str]
) -> None:
    prepare.train_models({"a": _config(tmp_path)}, 1, 1, lambda line: None, False)
    assert calls == ["train"]


def test_compile_solver_builds_a_bank_and_keeps_none() -> None:
    channel_bank.clear_cache()
    channel_bank.compile_solver()
    assert channel_bank._bank.cache_info().currsize == 0
