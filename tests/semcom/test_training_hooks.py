"""semcom.training and the trainer's hooks: one loop, bit-identical without a method, each
method's defining property against an independent reference, and the family contract.

Training runs are a few steps of the small MLP on scikit-learn's digits (CPU, one thread).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from channels.errors import ConfigError
from semcom.models import build_model
from semcom.registry import MethodInfo, all_methods
from semcom.train import TrainConfig, _seed_everything, config_hash, resolve_config, train
from semcom.training import (
    PADA,
    TRAINING,
    DoublyRobust,
    SatImp,
    TrainingHook,
    build_hook,
    dro_weights,
    grad_norm_proxy,
    mix_probs,
    satimp_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _config(**changes: Any) -> TrainConfig:
    base = TrainConfig(
        model="mlp",
        n_features=8,
        dataset="digits",
        dataset_options={"limit": 192},
        epochs=2,
        batch_size=32,
        val_fraction=0.0,
        patience=None,
        device="cpu",
    )
    return dataclasses.replace(base, **changes)


def _weights(run: Any) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in run.model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def plain() -> dict[str, torch.Tensor]:
    return _weights(train(_config(), progress=False))


def _register(monkeypatch: pytest.MonkeyPatch, name: str, cls: type) -> None:
    """Register a test hook for one test only (the registry is restored afterwards)."""
    info = MethodInfo("training", name, "test hook", "")
    monkeypatch.setitem(TRAINING._entries, name, (cls, info))


# ---------------------------------------------------------------------------------------------
# the loop


def test_noop_hook_is_bit_identical_to_no_method(
    monkeypatch: pytest.MonkeyPatch, plain: dict[str, torch.Tensor]
) -> None:
    _register(monkeypatch, "noop-test", TrainingHook)
    hooked = train(_config(method="noop-test"), progress=False)
    assert _same(_weights(hooked), plain)


def test_config_hash_without_method_is_the_hash_of_the_old_fields() -> None:
    resolved = dataclasses.asdict(resolve_config(TrainConfig()))
    assert resolved["method"] is None and resolved["method_options"] == {}
    # fields added later (channel, init_from, adapter, routing) are left out while unset too
    later = ("channel", "init_from", "adapter", "adapter_options", "routing", "routing_options")
    old = {k: v for k, v in resolved.items() if k not in ("checkpoint_dir", "method", *later)}
    del old["method_options"]
    text = json.dumps(old, sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert config_hash(TrainConfig()) == hashlib.sha256(text.encode()).hexdigest()
    assert config_hash(TrainConfig(method="satimp")) != config_hash(TrainConfig())
    # defaults are filled in: naming them changes nothing
    assert config_hash(TrainConfig(method="satimp")) == config_hash(
        TrainConfig(method="SatImp", method_options={"b1": 5.0, "b2": 0.1})
    )


@pytest.mark.parametrize("method", ["doubly-robust", "satimp", "pada"])
def test_each_method_trains_and_changes_the_run(
    method: str, plain: dict[str, torch.Tensor]
) -> None:
    run = train(_config(method=method), progress=False)
    assert all(math.isfinite(h["train_loss"]) for h in run.history)
    assert not _same(_weights(run), plain)
    assert run.config.method == method and run.config.method_options


class _Interrupt(Exception):
    pass


def test_resumed_pada_run_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    """The hook's state (PA&DA's gradient norms) and the step count travel in the checkpoint."""
    full = train(_config(method="pada", epochs=3, checkpoint_dir=str(tmp_path / "a")), False)

    def stop(entry: dict[str, Any]) -> None:
        if entry["epoch"] == 2:
            raise _Interrupt

    config = _config(method="pada", epochs=3, checkpoint_dir=str(tmp_path / "b"))
    with pytest.raises(_Interrupt):
        train(config, progress=False, on_epoch_end=stop)
    resumed = train(config, progress=False)
    assert not resumed.reused and [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert _same(_weights(resumed), _weights(full))
    assert resumed.config_hash == full.config_hash != config_hash(_config(epochs=3))


class _DecoderOnly(TrainingHook):
    def layer_mask(self, step: int, model: torch.nn.Module) -> set[str]:
        return {n for n, _ in model.named_parameters() if n.startswith("decoder.")}


def test_layer_mask_freezes_every_other_parameter(
    monkeypatch: pytest.MonkeyPatch, plain: dict[str, torch.Tensor]
) -> None:
    _register(monkeypatch, "decoder-only-test", _DecoderOnly)
    cfg = _config(method="decoder-only-test", weight_decay=0.01)
    masked = _weights(train(cfg, progress=False))
    # the initial weights: an untrained model of the same seed
    c = resolve_config(cfg)
    _seed_everything(c.seed)
    init = build_model(c.model, c.n_features, **c.model_options).state_dict()
    encoder = [k for k in init if not k.startswith("decoder.")]
    decoder = [k for k in init if k.startswith("decoder.")]
    assert encoder and decoder
    assert all(torch.equal(masked[k], init[k]) for k in encoder)
    assert all(not torch.equal(masked[k], init[k]) for k in decoder if init[k].is_floating_point())


class _Recorder(TrainingHook):
    calls: list[tuple[str, Any]] = []

    def sample_weights(self, step: int, x: torch.Tensor, loss: torch.Tensor) -> torch.Tensor:
        _Recorder.calls.append(("w", (step, tuple(x.shape), tuple(loss.shape))))
        return torch.ones_like(loss)

    def extra_loss(self, model: Any, x: Any, x_hat: Any, z: Any) -> torch.Tensor:
        _Recorder.calls.append(("extra", (tuple(x_hat.shape), tuple(z.shape))))
        return 100.0 * z.pow(2).mean()


def test_extra_loss_and_weights_reach_the_loop(
    monkeypatch: pytest.MonkeyPatch, plain: dict[str, torch.Tensor]
) -> None:
    _Recorder.calls = []
    _register(monkeypatch, "recorder-test", _Recorder)
    run = train(_config(method="recorder-test", epochs=1), progress=False)
    steps = [a[0] for k, a in _Recorder.calls if k == "w"]
    assert steps == list(range(len(steps))) and len(steps) == 192 // 32
    extras = [a for k, a in _Recorder.calls if k == "extra"]
    assert len(extras) == len(steps)
    assert all(xh == (32, 1, 8, 8) and z[:2] == (32, 8) for xh, z in extras)
    # the ||z||² penalty shrinks the features compared with plain training of one epoch
    plain1 = train(_config(epochs=1), progress=False).model
    x = torch.rand(16, 1, 8, 8)
    with torch.no_grad():
        assert run.model.encode(x).pow(2).mean() < plain1.encode(x).pow(2).mean()


# ---------------------------------------------------------------------------------------------
# doubly robust: KL-DRO weights


def test_dro_weights_properties_and_closed_form() -> None:
    losses = torch.tensor([0.02, 0.05, 0.01, 0.09, 0.03], dtype=torch.float64)
    for tau in (0.01, 0.05, 1.0):
        w = dro_weights(losses, tau)
        assert bool((w >= 0).all()) and abs(float(w.mean()) - 1.0) < 1e-12
        # stationarity of the KL-regularised problem: log w - l/tau is constant
        kkt = torch.log(w) - losses / tau
        assert float(kkt.max() - kkt.min()) < 1e-9
        # against a generic constrained solver of max q.l - tau KL(q || u) over the simplex
        n, ell = len(losses), losses.numpy()

        def neg(q: np.ndarray, ell: np.ndarray = ell, tau: float = tau, n: int = n) -> float:
            q = np.clip(q, 1e-300, None)
            return -(q @ ell - tau * float(np.sum(q * np.log(q * n))))

        res = optimize.minimize(
            neg,
            np.full(n, 1.0 / n),
            method="SLSQP",
            bounds=[(0.0, 1.0)] * n,
            constraints=[{"type": "eq", "fun": lambda q: q.sum() - 1.0}],
            options={"ftol": 1e-15, "maxiter": 500},
        )
        assert res.success
        np.testing.assert_allclose(w.numpy() / n, res.x, atol=2e-4)
    np.testing.assert_allclose(dro_weights(losses, 1e9).numpy(), np.ones(5), atol=1e-9)
    one_hot = dro_weights(losses, 1e-5).numpy()
    np.testing.assert_allclose(one_hot, [0, 0, 0, 5, 0], atol=1e-9)


# ---------------------------------------------------------------------------------------------
# SatImp


@pytest.mark.parametrize(("b1", "b2"), [(5.0, 0.1), (1.0, 1.0), (2.0, 3.0)])
def test_satimp_weights_card_property(b1: float, b2: float) -> None:
    p = torch.linspace(0.0, 1.0, 20001, dtype=torch.float64)
    with np.errstate(divide="ignore"):
        losses = torch.from_numpy(-np.log(p.numpy()))
    w = satimp_weights(losses, b1, b2)
    assert bool((w >= 0).all() and (w <= 1).all())
    assert float(w[0]) == 0.0 and float(w[-1]) == 0.0
    peak = float(p[int(torch.argmax(w))])
    assert abs(peak - b1 / (b1 + b2)) <= 1.0 / 20000
    # independent formula on the grid
    np.testing.assert_allclose(w.numpy(), p.numpy() ** b1 * (1 - p.numpy()) ** b2, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# PA&DA


def test_pada_probabilities_follow_the_formula() -> None:
    rng = np.random.default_rng(3)
    g = rng.random(7)
    for tau in (0.0, 0.3, 1.0):
        p = mix_probs(torch.from_numpy(g), tau).numpy()
        np.testing.assert_allclose(p, tau * g / g.sum() + (1 - tau) / 7, rtol=1e-12)
        assert abs(p.sum() - 1.0) < 1e-12
    hook = PADA(tau_final=0.8)
    hook.setup(4, epochs=4)
    # two visits of sample 2 are averaged; unvisited samples keep g = 1
    x = torch.zeros(3, 1, 2, 2)
    x_hat = torch.stack([torch.full((1, 2, 2), v) for v in (1.0, 2.0, 4.0)])
    hook.observe(1, torch.tensor([2, 0, 2]), x, x_hat, torch.zeros(3))
    g_ref = np.array([2.0, 1.0, (1.0 + 4.0) / 2, 1.0])  # proxy 2·||v·1||/4 = v
    p = hook.probabilities(2).numpy()
    tau = 0.8 * 2 / 4
    np.testing.assert_allclose(p, tau * g_ref / g_ref.sum() + (1 - tau) / 4, rtol=1e-12)


def test_pada_proxy_is_the_autograd_gradient_norm() -> None:
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    x_hat = torch.rand(5, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    norms = []
    for i in range(5):
        (grad,) = torch.autograd.grad(((x_hat[i] - x[i]) ** 2).mean(), x_hat)
        norms.append(float(grad.norm()))
    np.testing.assert_allclose(grad_norm_proxy(x, x_hat).numpy(), norms, rtol=1e-12)


def test_pada_sampler_draws_with_its_probabilities() -> None:
    n = 6
    hook = PADA()
    hook.setup(n, epochs=1)
    hook.g = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 15.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(1234)
    draws = torch.cat([hook.sampler(1, n, gen) for _ in range(4000)])
    expected = (hook.g / hook.g.sum()).numpy() * len(draws)  # tau_1 = 1: p ∝ g
    counts = np.bincount(draws.numpy(), minlength=n)
    _, p_value = stats.chisquare(counts, expected)
    assert p_value > 1e-3
    # ... and a clearly different distribution is rejected by the same test
    _, p_uniform = stats.chisquare(counts, np.full(n, len(draws) / n))
    assert p_uniform < 1e-6


# ---------------------------------------------------------------------------------------------
# family contract


def test_family_lists_the_methods_with_arxiv_ids() -> None:
    listed = {(m.family, m.name): m.paper for m in all_methods()}
    assert listed[("training", "doubly-robust")] == "arXiv:2308.00311"
    assert listed[("training", "satimp")] == "arXiv:2505.11953"
    assert listed[("training", "pada")] == "arXiv:2302.14772"
    assert TRAINING.get("doubly-robust") is DoublyRobust and TRAINING.get("SATIMP") is SatImp
    assert isinstance(build_hook("pada", {}), TrainingHook)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"method": "nope"}, "method: 'nope' is invalid; allowed: None or one of"),
        ({"method": 3}, "method: 3"),
        ({"method_options": {"b1": 1.0}}, "method_options: {'b1': 1.0}"),
        ({"method": "satimp", "method_options": {"tau": 1}}, "method_options.tau: 1"),
        ({"method": "satimp", "method_options": {"b1": -1}}, "method_options.b1: -1"),
        ({"method": "doubly-robust", "method_options": {"temperature": 0}}, "temperature: 0"),
        ({"method": "pada", "method_options": {"tau_final": 1.5}}, "tau_final: 1.5"),
        ({"method": "pada", "method_options": ["x"]}, "method_options: ['x']"),
    ],
)
def test_bad_method_config_is_one_clear_line(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_config(_config(**changes))
    message = str(err.value)
    assert field in message and "\n" not in message
