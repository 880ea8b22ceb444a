"""The trainer's channel-state training, init_from, adapter/routing plumbing, HookChain and
probe replay; the link's per-frame channel state."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from channels.fading import fading_coefficients
from semcom.adapters import ADAPTER, Adapter
from semcom.channel_state import ChannelState
from semcom.data import load_dataset
from semcom.link import SemanticLink, drop_distortion
from semcom.models import build_model
from semcom.models.mlp import MLPAutoencoder
from semcom.registry import MethodInfo
from semcom.routing import ROUTING, RoutingMethod
from semcom.train import TrainConfig, config_hash, load_checkpoint, resolve_config, train
from semcom.training import TRAINING, TrainingHook
from semcom.training.base import HookChain

pytestmark = pytest.mark.usefixtures("one_thread_module")

CHANNEL = {"fading": ["awgn", "rayleigh"], "snr_db": [0, 3], "draws": 3}


def _config(**changes: Any) -> TrainConfig:
    base = TrainConfig(
        model="mlp", n_features=4, dataset="digits", dataset_options={"limit": 192}, epochs=1,
        batch_size=64, patience=None, device="cpu",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def _register(monkeypatch: pytest.MonkeyPatch, registry: Any, name: str, cls: type) -> None:
    info = MethodInfo(registry.family, name, "test method", "")
    monkeypatch.setitem(registry._entries, name, (cls, info))


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return load_dataset("digits", "test", limit=16).images


# ---------------------------------------------------------------------------------------------
# config and hash


def test_unset_new_fields_keep_the_hash_computed_on_main() -> None:
    # literals computed with the trainer before channel/init_from/adapter/routing existed
    cfg = TrainConfig(model="mlp", n_features=4, dataset="digits", epochs=2, batch_size=32,
                      device="cpu", seed=3)  # fmt: skip
    assert config_hash(cfg) == "3be02ff5dabaa78bae753d191ebe80102dc52b8f562e90dbe793ce5182499e7c"
    assert config_hash(dataclasses.replace(cfg, method="satimp")) == (
        "89dbc83d573c281a1305b2831ffec5ddb2f4492cdb3e5b685cea1e30d6ea6172"
    )
    assert config_hash(dataclasses.replace(cfg, channel={})) == config_hash(cfg)
    with_channel = dataclasses.replace(cfg, channel={"fading": "rayleigh", "snr_db": 0})
    assert config_hash(with_channel) != config_hash(cfg)
    resolved = resolve_config(with_channel).channel
    assert resolved == {"fading": ["rayleigh"], "snr_db": [0.0, 0.0], "n_subchannels": 4,
                        "eta": 0.5, "rician_k": 3.0, "draws": 64, "prior": "isfr"}  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"channel": {"fading": "awgn", "snr_db": "x"}}, "channel.snr_db: 'x'"),
        ({"channel": {"fading": "awgn", "snr_db": 0}, "scheme": "none"}, "scheme: 'none'"),
        ({"adapter": "nope"}, "adapter: 'nope' is invalid; allowed: None or one of lora"),
        ({"adapter_options": {"r": 2}}, "adapter_options: {'r': 2}"),
        ({"routing": "nope"}, "routing: 'nope' is invalid; allowed: None or one of"),
        ({"init_from": {"n_features": 8}}, "init_from.n_features: 8"),
        ({"init_from": {"lr": -1}}, "init_from.lr: -1"),
        ({"init_from": {"colour": 1}}, "init_from.colour: 1"),
        ({"init_from": {"checkpoint_dir": "/x"}}, "init_from.checkpoint_dir"),
    ],
)
def test_bad_new_fields_are_one_line_errors(changes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as info:
        resolve_config(_config(**changes))
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# hooks: chain, probe replay, channel states


class _A(TrainingHook):
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.loaded: dict = {}

    def setup(self, n: int, epochs: int) -> None:
        self.calls.append("setup")

    def sample_weights(self, step: int, x: Any, loss: torch.Tensor) -> torch.Tensor:
        return torch.arange(1.0, len(loss) + 1)

    def extra_loss(self, model: Any, x: Any, x_hat: Any, z: torch.Tensor, state: Any = None):  # noqa: ANN201
        return z.pow(2).mean()

    def layer_mask(self, step: int, model: Any) -> set[str]:
        return {"a", "b"}

    def state_dict(self) -> dict:
        return {"who": "a"}

    def load_state_dict(self, state: dict) -> None:
        self.loaded = state


class _B(_A):
    def sampler(self, epoch: int, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.arange(n - 1, -1, -1)

    def sample_weights(self, step: int, x: Any, loss: torch.Tensor) -> torch.Tensor:
        return torch.full_like(loss, 0.5)

    def extra_loss(self, model: Any, x: Any, x_hat: Any, z: torch.Tensor, state: Any = None):  # noqa: ANN201
        return z.abs().sum()

    def layer_mask(self, step: int, model: Any) -> set[str]:
        return {"b", "c"}

    def state_dict(self) -> dict:
        return {"who": "b"}


def test_hook_chain_equals_the_manual_combination() -> None:
    a, b, plain = _A(), _B(), TrainingHook()
    chain = HookChain([a, plain, b])
    loss, z = torch.rand(5), torch.randn(5, 4, 3)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(chain.sample_weights(0, None, loss), torch.arange(1.0, 6) * 0.5)
    assert torch.equal(chain.extra_loss(None, None, None, z), z.pow(2).mean() + z.abs().sum())
    assert chain.layer_mask(0, None) == {"b"}
    assert torch.equal(chain.sampler(1, 4, gen), torch.tensor([3, 2, 1, 0]))
    assert torch.equal(HookChain([a, plain]).sampler(1, 4, torch.Generator().manual_seed(0)),
                       torch.randperm(4, generator=torch.Generator().manual_seed(0)))  # fmt: skip
    chain.setup(10, 2)
    assert a.calls == b.calls == ["setup"]
    assert chain.state_dict() == {"0": {"who": "a"}, "1": {}, "2": {"who": "b"}}
    chain.load_state_dict({"0": {"x": 1}, "2": {"y": 2}})
    assert a.loaded == {"x": 1} and b.loaded == {"y": 2}
    assert HookChain([plain, plain]).sample_weights(0, None, loss) is None


class _Probe(TrainingHook):
    """Calls evaluate() around a perturbation of the model and records what it saw."""

    log: list[tuple[float, float, float, float]] = []
    states: list[ChannelState] = []

    def probe(self, step: int, model: Any, evaluate: Any) -> None:
        first, second = evaluate(), evaluate()
        weight = model.decoder[-2].bias
        saved = weight.detach().clone()
        with torch.no_grad():
            weight += 1.0
            moved = evaluate()
            weight.copy_(saved)
        type(self).log.append((first, second, moved, evaluate()))

    def extra_loss(self, model: Any, x: Any, x_hat: Any, z: Any, state: Any = None) -> None:
        type(self).states.append(state)

    def observe(self, epoch: int, indices: Any, x: Any, x_hat: Any, loss: torch.Tensor) -> None:
        type(self).log.append(("loss", float(loss.mean())))


@pytest.mark.parametrize("channel", [{}, CHANNEL])
def test_probe_evaluate_replays_the_step_noise_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, channel: dict
) -> None:
    _register(monkeypatch, TRAINING, "probe-test", _Probe)
    _Probe.log, _Probe.states = [], []
    probed = train(_config(method="probe-test", channel=channel, epochs=2), progress=False)
    plain = train(_config(channel=channel, epochs=2), progress=False)
    # the run with probes trains bit-identically to the run without a method
    sa, sb = probed.model.state_dict(), plain.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert [h["step"] for h in probed.history] == [3, 6]
    evaluations, losses = _Probe.log[0::2], _Probe.log[1::2]
    assert len(evaluations) == 6
    for (first, second, moved, back), (_, real) in zip(evaluations, losses, strict=True):
        assert first == second == back != moved
        assert first == pytest.approx(real, rel=1e-6)  # the real forward saw the same noise
    if channel:
        s = _Probe.states[0]
        assert isinstance(s, ChannelState) and len(s) == 64
        assert set(s.snr_db.tolist()) <= {0.0, 1.0, 2.0, 3.0} and set(s.channel.tolist()) <= {0, 1}
    else:
        assert _Probe.states[0] is None


def test_channel_training_changes_the_run_and_is_deterministic() -> None:
    a = train(_config(channel=CHANNEL), progress=False)
    b = train(_config(channel=CHANNEL), progress=False)
    c = train(_config(), progress=False)
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert np.isfinite(a.history[0]["train_loss"]) and a.history[0]["val_loss"] is not None


# ---------------------------------------------------------------------------------------------
# init_from, adapter, routing


def _file_digest(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


class _Snapshot(TrainingHook):
    first: dict[str, torch.Tensor] | None = None

    def probe(self, step: int, model: Any, evaluate: Any) -> None:
        if step == 0:
            type(self).first = {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_init_from_starts_from_the_parents_best_weights_and_reuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _register(monkeypatch, TRAINING, "snapshot-test", _Snapshot)
    parent_cfg = _config(epochs=2, val_fraction=0.25, checkpoint_dir=str(tmp_path))
    parent = train(parent_cfg, progress=False)
    before = _file_digest(parent.checkpoint)
    child_cfg = _config(
        init_from={"epochs": 2, "val_fraction": 0.25}, lr=1e-12, lr_min=0.0,
        method="snapshot-test", channel={"fading": "rayleigh", "snr_db": 0, "draws": 2},
        checkpoint_dir=str(tmp_path),
    )  # fmt: skip
    child = train(child_cfg, progress=False)
    assert _file_digest(parent.checkpoint) == before  # reused, not retrained
    best = parent.trained_state
    assert all(torch.equal(_Snapshot.first[k], best[k]) for k in best)
    after = child.model.state_dict()
    assert all(torch.allclose(after[k], best[k], atol=1e-8) for k in best)
    # the parent's hash enters the child's; the child's checkpoint reloads the same model
    other = dataclasses.replace(child_cfg, init_from={"epochs": 3, "val_fraction": 0.25})
    assert (
        config_hash(other)
        != config_hash(child_cfg)
        != config_hash(dataclasses.replace(child_cfg, init_from=None))
    )
    assert resolve_config(child_cfg).init_from["model"] == "mlp"
    again = train(child_cfg, progress=False)
    assert again.reused and again.config_hash == child.config_hash
    assert load_checkpoint(child.checkpoint).config_hash == child.config_hash


CALLS: list[tuple[str, Any]] = []


class _TestAdapter(Adapter):
    """A zero-initialised additive vector on the output of the decoder's first linear layer."""

    def __init__(self, gain: float = 1.0) -> None:
        self.gain = gain

    def attach(self, model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
        CALLS.append(("attach", {k: v.detach().clone() for k, v in model.state_dict().items()}))
        for p in model.parameters():
            p.requires_grad_(False)
        model.test_delta = torch.nn.Parameter(torch.zeros(model.decoder[1].out_features))
        gain = self.gain
        model.decoder[1].register_forward_hook(lambda m, i, out: out + gain * model.test_delta)
        return model

    def layers(self, model: torch.nn.Module) -> dict[str, list[str]]:
        return {"delta": ["test_delta"]}

    def set_scale(self, model: torch.nn.Module, scales: dict[str, float]) -> None:
        pass


class _CountHook(TrainingHook):
    def __init__(self) -> None:
        self.steps = 0

    def observe(self, *args: Any) -> None:
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps}


class _TestRouting(RoutingMethod):
    """build: the plain model; hook: step counter; finalize: the mean reconstruction of the
    images; apply: adds that mean to the last decoder bias (deterministic, changes outputs)."""

    def __init__(self, shift: float = 1.0) -> None:
        self.shift = shift
        self.offset = torch.zeros(())

    def build(self, model: str, n_features: int, model_options: dict, seed: int = 0) -> Any:
        CALLS.append(("build", (model, n_features, seed)))
        return build_model(model, n_features, **model_options)

    def hook(self) -> TrainingHook:
        CALLS.append(("hook", None))
        self._hook = _CountHook()
        return self._hook

    def finalize(self, model: Any, images: torch.Tensor, states: Any) -> None:
        CALLS.append(("finalize", (images.shape[0], None if states is None else len(states))))
        with torch.no_grad():
            self.offset = model(images, None, states).mean() * self.shift

    def apply(self, model: Any) -> Any:
        CALLS.append(("apply", None))
        with torch.no_grad():
            model.decoder[-2].bias += self.offset
        return model

    def state_dict(self) -> dict:
        return {"offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.offset = state["offset"]


def test_adapter_and_routing_are_plumbed_and_reload_identically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, images: torch.Tensor
) -> None:
    _register(monkeypatch, ADAPTER, "test-adapter", _TestAdapter)
    _register(monkeypatch, ROUTING, "test-routing", _TestRouting)
    CALLS.clear()
    cfg = _config(
        init_from={"routing": "test-routing"}, adapter="test-adapter", routing="test-routing",
        channel={"fading": "awgn", "snr_db": 5, "draws": 1}, epochs=2, lr=1e-2,
        checkpoint_dir=str(tmp_path),
    )  # fmt: skip
    resolved = resolve_config(cfg)
    assert resolved.adapter_options == {"gain": 1.0} and resolved.routing_options == {"shift": 1.0}
    run = train(cfg, progress=False)
    names = [name for name, _ in CALLS]
    # parent: build, hook, finalize, apply; child: build, attach, hook, finalize, apply
    assert names == ["build", "hook", "finalize", "apply", "build", "attach", "hook", "finalize",
                     "apply"]  # fmt: skip
    parent = train(TrainConfig(**resolved.init_from, checkpoint_dir=str(tmp_path)), False)
    attached = CALLS[5][1]
    assert all(torch.equal(attached[k], parent.trained_state[k]) for k in attached)
    assert CALLS[7][1] == (173, 173) and CALLS[2][1] == (173, None)  # 192 images, 10% held out
    # only the adapter trained: the optimiser held nothing else
    assert run.trainable_parameters == run.model.decoder[1].out_features
    trained = run.trained_state
    assert all(torch.equal(trained[k], parent.trained_state[k]) for k in parent.trained_state)
    assert trained["test_delta"].abs().sum() > 0
    state = torch.load(run.checkpoint, weights_only=True)
    assert state["hook_state"] == {"steps": 6} and "routing_state" in state
    # reload: build -> attach -> weights -> routing state -> apply gives the same outputs
    loaded = load_checkpoint(run.checkpoint)
    assert loaded.trainable_parameters == run.trainable_parameters
    with torch.no_grad():
        assert torch.equal(loaded.model(images), run.model(images))
        unapplied = build_model("mlp", 4, **resolved.model_options)
        _TestAdapter().attach(unapplied)
        unapplied.load_state_dict(trained)
        assert not torch.equal(unapplied(images), run.model(images))  # apply changed outputs


# ---------------------------------------------------------------------------------------------
# the link's per-frame state


class _Recording(MLPAutoencoder):
    conditioned = True

    def __init__(self, n_features: int, **options: Any) -> None:
        super().__init__(n_features, **options)
        self.seen: list[tuple[str, ChannelState]] = []

    def _features(self, x: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        self.seen.append(("encode", state))
        return super()._features(x)

    def decode(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        self.seen.append(("decode", state))
        return super().decode(z)


def test_link_gives_conditioned_models_each_frames_state(images: torch.Tensor) -> None:
    torch.manual_seed(0)
    plain = build_model("mlp", 4)
    model = _Recording(4, **plain.options)
    model.load_state_dict(plain.state_dict())
    w, d = np.full(4, 0.25), drop_distortion(plain, images)
    kwargs = dict(channel="rician", n_subchannels=5, snr_db=7.0, seed=9, batch_size=6)
    link = SemanticLink(model, w, d, **kwargs)
    frames = link.simulate(images, draw=2, first_image=3)
    encoded = [s for kind, s in model.seen if kind == "encode"]
    decoded = [s for kind, s in model.seen if kind == "decode"]
    assert [len(s) for s in encoded] == [len(s) for s in decoded] == [6, 6, 4]
    gains = torch.cat([s.gain_db for s in encoded])
    assert torch.equal(gains, torch.cat([s.gain_db for s in decoded]))
    point = link.draw_point(2)
    for b in range(len(images)):  # the link's documented stream, drawn independently
        rng = np.random.default_rng((9, point, 3 + b))
        h = fading_coefficients("rician", (5,), rng=rng, k_factor=3.0)
        assert float(gains[b]) == pytest.approx(10 * np.log10(np.mean(np.abs(h) ** 2)), abs=1e-5)
    state = frames.state
    assert torch.all(state.snr_db == 7.0) and torch.all(state.channel == 2)
    # same streams as the unconditioned twin: identical frames
    twin = SemanticLink(plain, w, d, **kwargs).simulate(images, draw=2, first_image=3)
    assert torch.equal(twin.x_hat, frames.x_hat) and np.array_equal(twin.gains, frames.gains)
    model.seen.clear()
    SemanticLink(model, w, d, channel="noiseless", n_subchannels=5).simulate(images[:2])
    SemanticLink(model, w, d, snr_db=float("inf"), n_subchannels=5).simulate(images[:2])
    at_snr, at_inf = model.seen[0][1], model.seen[2][1]
    assert at_snr.snr_db.tolist() == [10.0, 10.0] and at_inf.snr_db.tolist() == [300.0, 300.0]
    for s in (at_snr, at_inf):
        assert s.channel.tolist() == [0, 0] and s.gain_db.tolist() == [0.0, 0.0]
