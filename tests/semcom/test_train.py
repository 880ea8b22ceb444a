"""semcom.train: reload, resume, config-hash reuse, early stopping, config validation.

Short CPU runs on scikit-learn's digits with the small MLP (a fraction of a second per epoch).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from channels.errors import ConfigError
from semcom.data import load_dataset
from semcom.train import (
    TrainConfig,
    checkpoint_path,
    config_hash,
    load_checkpoint,
    resolve_config,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _config(tmp: Path | None = None, **changes: object) -> TrainConfig:
    base = TrainConfig(
        model="mlp",
        n_features=8,
        dataset="digits",
        dataset_options={"limit": 512},
        epochs=3,
        batch_size=64,
        patience=None,
        device="cpu",
        checkpoint_dir=None if tmp is None else str(tmp),
    )
    return dataclasses.replace(base, **changes)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def test_images() -> torch.Tensor:
    return load_dataset("digits", "test", limit=64).images


def test_checkpoint_reloads_to_identical_outputs(tmp_path: Path, test_images: torch.Tensor) -> None:
    run = train(_config(tmp_path), progress=False)
    assert run.checkpoint is not None and run.checkpoint.is_file() and not run.reused
    assert [h["epoch"] for h in run.history] == [1, 2, 3]
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert all(h["val_loss"] is not None for h in run.history)
    loaded = load_checkpoint(run.checkpoint)
    assert loaded.finished and loaded.config == run.config
    assert loaded.config_hash == run.config_hash == config_hash(run.config)
    assert not loaded.model.training
    with torch.no_grad():
        assert torch.equal(loaded.model(test_images), run.model(test_images))
        z = run.model.encode(test_images)
        assert torch.equal(loaded.model.encode(test_images), z)


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path: Path) -> None:
    full = train(_config(tmp_path / "a", isfr={"rho": 0.3}), progress=False)

    def stop_after_first_epoch(entry: dict) -> None:
        if entry["epoch"] == 1:
            raise _Interrupt

    config = _config(tmp_path / "b", isfr={"rho": 0.3})
    with pytest.raises(_Interrupt):
        train(config, progress=False, on_epoch_end=stop_after_first_epoch)
    partial = load_checkpoint(checkpoint_path(config))
    assert not partial.finished and len(partial.history) == 1
    seen: list[int] = []
    resumed = train(config, progress=False, on_epoch_end=lambda e: seen.append(e["epoch"]))
    assert seen == [2, 3]  # only the remaining epochs ran
    assert not resumed.reused
    assert _same_weights(resumed.model, full.model)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in full.history]


def test_same_config_hash_reuses_the_checkpoint(tmp_path: Path) -> None:
    first = train(_config(tmp_path, epochs=2), progress=False)
    ran: list[int] = []
    again = train(_config(tmp_path, epochs=2), progress=False, on_epoch_end=lambda e: ran.append(1))
    assert again.reused and ran == [] and again.checkpoint == first.checkpoint
    assert again.history == first.history
    assert _same_weights(again.model, first.model)
    # a different config trains anew, into another file
    other = train(_config(tmp_path, epochs=2, lr=2e-3), progress=False)
    assert not other.reused and other.checkpoint != first.checkpoint


def test_config_hash_is_canonical() -> None:
    c = _config()
    h = config_hash(c)
    assert len(h) == 64 and int(h, 16) >= 0
    assert config_hash(resolve_config(c)) == h  # resolving is idempotent
    assert config_hash(dataclasses.replace(c, checkpoint_dir="/elsewhere")) == h
    assert config_hash(dataclasses.replace(c, lr=1e-3 + 1e-12)) != h
    # spelling out a default or using an alias does not change the hash
    assert config_hash(dataclasses.replace(c, model_options={"L": 4})) == h
    assert config_hash(dataclasses.replace(c, isfr={"rho": 0.1, "law": "geometric"})) == h
    assert config_hash(dataclasses.replace(c, lr=1)) == config_hash(dataclasses.replace(c, lr=1.0))
    resolved = resolve_config(c)
    assert resolved.model_options["input_shape"] == [1, 8, 8]
    assert resolved.isfr["profile"] == "log-linear" and resolved.amp is False


def test_same_seed_same_weights_and_early_stopping() -> None:
    a = train(_config(epochs=2), progress=False)
    b = train(_config(epochs=2), progress=False)
    assert _same_weights(a.model, b.model)
    c = train(_config(epochs=2, seed=1), progress=False)
    assert not _same_weights(a.model, c.model)
    # an improvement threshold no epoch can meet stops after `patience` epochs, best = epoch 1
    stopped = train(_config(epochs=5, patience=2, min_delta=10.0), progress=False)
    assert len(stopped.history) == 3 and stopped.best_epoch == 1


def test_classifier_head_and_other_schemes(test_images: torch.Tensor) -> None:
    run = train(
        _config(epochs=2, model_options={"num_classes": 10}, scheme="conventional"),
        progress=False,
    )
    assert run.model.classify(run.model(test_images)).shape == (64, 10)
    cnn = train(
        _config(epochs=1, model="cnn", n_features=4, scheme="none", val_fraction=0.0),
        progress=False,
    )
    assert cnn.model.input_shape == (1, 8, 8) and cnn.history[0]["val_loss"] is None


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"model": "resnet"}, "model: 'resnet'"),
        ({"dataset": "imagenet"}, "dataset: 'imagenet'"),
        ({"scheme": "bsc"}, "scheme: 'bsc'"),
        ({"epochs": 0}, "epochs: 0"),
        ({"batch_size": 1.5}, "batch_size: 1.5"),
        ({"lr": -1.0}, "lr: -1.0"),
        ({"lr_min": 1.0}, "lr_min: 1.0"),
        ({"val_fraction": 1.0}, "val_fraction: 1.0"),
        ({"patience": 0}, "patience: 0"),
        ({"device": "tpu"}, "device: 'tpu'"),
        ({"amp": "yes"}, "amp: 'yes'"),
        ({"isfr": {"seed": 3}}, "isfr.seed: 3"),
        ({"isfr": {"rho": 2.0}}, "rho: 2.0"),
        ({"model_options": {"input_shape": [3, 32, 32]}}, "input_shape"),
        ({"model_options": {"width": 3}}, "mlp option: 'width'"),
        ({"dataset_options": {"size": 8}}, "digits option: 'size'"),
    ],
)
def test_invalid_config_is_rejected_before_work(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        train(_config(**changes), progress=False)


def test_load_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ConfigError, match="could not be read"):
        load_checkpoint(tmp_path / "junk.pt")
    run = train(_config(tmp_path, epochs=1), progress=False)
    state = torch.load(run.checkpoint, weights_only=True)
    state["config"]["lr"] = 0.5  # tampered: no longer matches its hash
    torch.save(state, tmp_path / "tampered.pt")
    with pytest.raises(ConfigError, match="does not match its hash"):
        load_checkpoint(tmp_path / "tampered.pt")


@pytest.mark.gpu
def test_cuda_mixed_precision_run_loads_on_cpu(tmp_path: Path, test_images: torch.Tensor) -> None:
    run = train(_config(tmp_path, device="auto", model="cnn", n_features=4), progress=False)
    assert run.config.device == "cuda" and run.config.amp
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in run.history)
    cpu = load_checkpoint(run.checkpoint, device="cpu")
    with torch.no_grad():
        out = cpu.model(test_images)
    assert out.device.type == "cpu" and out.shape == test_images.shape
