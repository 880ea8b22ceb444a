"""IST: scores rank units by a planted suppression cost (Spearman against the cost), selection
favours the costly units, plain-unit suppression is θ₀ + c (θ - θ₀), and through the real
trainer only the selected units' parameters move."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.adapters import LoRA, MoS
from semcom.adapters.lowrank import adapted_units
from semcom.models import build_model
from semcom.train import TrainConfig, _seed_everything, resolve_config, train
from semcom.training import IST, TRAINING, build_hook
from semcom.training.ist import score_update
from semcom.training.units import Units, plain_units

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _adapted_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("vit", 4, input_shape=[1, 8, 8], dim=16, depth=2, heads=2)
    return LoRA(rank=2).attach(model, seed=0)


def _planted(model: torch.nn.Module, cost: np.ndarray) -> Any:
    """Synthetic loss: 1 + Σ_j c_j over the units suppressed (scale < 1) right now."""
    units = list(adapted_units(model).values())

    def evaluate() -> float:
        return 1.0 + float(sum(c for u, c in zip(units, cost, strict=True) if u.scale < 1.0))

    return evaluate


def test_scores_rank_units_by_a_planted_cost() -> None:
    model = _adapted_vit()
    n = len(adapted_units(model))
    assert n == 20
    cost = np.random.default_rng(0).permutation(np.linspace(0.0, 0.2, n))
    hook = IST(seed=0)
    evaluate = _planted(model, cost)
    for r in range(200):
        hook.probe(r * hook.interval, model, evaluate)
        hook.probe(r * hook.interval + 1, model, evaluate)  # off-round: no probe
    assert all(u.scale == 1.0 for u in adapted_units(model).values())  # restored
    rho = stats.spearmanr(-hook.scores.numpy(), cost).statistic
    assert rho > 0.8
    # selection: a fresh 25% draw per round, ∝ σ(-s): costly units are picked most
    counts = np.zeros(n)
    for r in range(400):
        mask = hook.layer_mask(r * hook.interval, model)
        chosen = [i for i, name in enumerate(adapted_units(model)) if f"{name}.lora_A" in mask]
        assert len(chosen) == 5
        counts[chosen] += 1
    order = np.argsort(cost)
    assert counts[order[-5:]].mean() > 1.5 * counts[order[:5]].mean()
    assert stats.spearmanr(counts, cost).statistic > 0.6


def test_score_update_follows_the_formula() -> None:
    """Independent evaluation of s + η Σ_k (R_k - mean R) 1[l ∈ S_k] σ(s)(1 - σ(s))."""
    s = torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float64)
    probes, losses, eta = [[0, 1], [1, 2], [3, 0]], [0.5, 1.0, 2.0], 10.0
    r = [np.exp(-x) for x in losses]
    rc = [x - np.mean(r) for x in r]
    expected = []
    for l, sl in enumerate(s.tolist()):
        sig = 1.0 / (1.0 + np.exp(-sl))
        expected.append(sl + eta * sum(rc[k] for k in range(3) if l in probes[k]) * sig * (1 - sig))
    assert np.allclose(score_update(s, probes, losses, eta).numpy(), expected)


def test_probes_on_a_real_loss_restore_the_model() -> None:
    model = _adapted_vit()
    with torch.no_grad():
        for u in adapted_units(model).values():
            u.lora_B.normal_(0.0, 0.1)
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    before = model(x).detach()

    def evaluate() -> float:
        with torch.no_grad():
            return float((model(x) - x).square().mean())

    hook = IST(seed=1)
    for r in range(5):
        hook.probe(r * 10, model, evaluate)
    assert torch.equal(model(x), before)
    assert bool(hook.scores.abs().sum() > 0)


def test_plain_units_suppress_the_weight_change_since_binding() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 4)
    units = Units(model)
    assert not units.adapted and units.names == list(plain_units(model))
    assert units.names[:3] == ["encoder.1", "encoder.2", "encoder.3"]
    theta0 = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    moved = {k: v.clone() for k, v in model.state_dict().items()}
    saved = units.suppress(model, [0, 2], 0.25)
    now = model.state_dict()
    for k in now:
        if k.startswith(("encoder.1.", "encoder.3.")):
            assert torch.allclose(now[k], theta0[k] + 0.25)
        else:
            assert torch.equal(now[k], moved[k])
    units.restore(model, saved)
    assert all(torch.equal(model.state_dict()[k], moved[k]) for k in moved)


def test_units_of_a_mos_adapter_and_of_a_plain_cnn() -> None:
    """Masks name real parameters: MoS units carry their private shards and the pools they read;
    a plain CNN's units are its conv, GDN and PReLU modules in forward order."""
    torch.manual_seed(0)
    model = MoS(rank=4).attach(build_model("mlp", 4), seed=0)
    hook = IST(update_fraction=0.5)
    mask = hook.layer_mask(0, model)
    params = {n for n, p in model.named_parameters() if p.requires_grad}
    assert mask <= params and any(n.startswith("mos_pools.") for n in mask)
    cnn = build_model("cnn", 4, input_shape=[1, 8, 8])
    units = plain_units(cnn)
    assert list(units)[0] == "encoder.0" and list(units)[-1].startswith("decoder.")
    assert {p for ps in units.values() for p in ps} == {n for n, _ in cnn.named_parameters()}


def _config(**changes: Any) -> TrainConfig:
    base = TrainConfig(
        model="mlp",
        n_features=8,
        dataset="digits",
        dataset_options={"limit": 192},
        epochs=1,
        batch_size=32,
        val_fraction=0.0,
        patience=None,
        device="cpu",
        weight_decay=0.01,
        lr=1e-4,
    )
    return dataclasses.replace(base, **changes)


def _initial(config: TrainConfig) -> torch.nn.Module:
    c = resolve_config(config)
    _seed_everything(c.seed)
    return build_model(c.model, c.n_features, **c.model_options)


def test_through_the_trainer_only_the_selected_units_move() -> None:
    """One round (interval > steps): exactly round(0.25 U) whole units changed, the rest are
    bit-identical to the initial weights although Adam has weight decay."""
    config = _config(method="ist", method_options={"interval": 1000})
    run = train(config, progress=False)
    init = _initial(config)
    units = plain_units(init)
    after, before = run.model.state_dict(), init.state_dict()
    moved = [u for u, ps in units.items() if any(not torch.equal(after[p], before[p]) for p in ps)]
    still = [u for u, ps in units.items() if all(torch.equal(after[p], before[p]) for p in ps)]
    assert len(moved) + len(still) == len(units) == 10
    assert len(moved) == round(0.25 * len(units))
    assert all(all(not torch.equal(after[p], before[p]) for p in units[u]) for u in moved)


def test_update_fraction_one_trains_like_plain() -> None:
    plain = train(_config(), progress=False).model.state_dict()
    full = train(_config(method="ist", method_options={"update_fraction": 1.0}), progress=False)
    assert all(torch.equal(v, plain[k]) for k, v in full.model.state_dict().items())


def test_state_dict_round_trip_continues_the_same_draws() -> None:
    model = _adapted_vit()
    a = IST(seed=3)
    evaluate = _planted(model, np.linspace(0, 0.1, 20))
    for r in range(3):
        a.probe(r * 10, model, evaluate)
        a.layer_mask(r * 10, model)
    b = IST(seed=3)
    b.load_state_dict(a.state_dict())
    for r in range(3, 6):
        a.probe(r * 10, model, evaluate)
        b.probe(r * 10, model, evaluate)
        assert a.layer_mask(r * 10, model) == b.layer_mask(r * 10, model)
    assert torch.equal(a.scores, b.scores)


def test_registered_with_the_paper() -> None:
    assert TRAINING.info("ist").paper == "arXiv:2410.11772"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"update_fraction": 0.0}, "update_fraction"),
        ({"probes": 1}, "probes"),
        ({"interval": 0}, "interval"),
        ({"eta": -1.0}, "eta"),
        ({"suppress_scale": 1.0}, "suppress_scale"),
    ],
)
def test_bad_options_give_one_line_errors(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_hook("ist", options)
    message = str(err.value)
    assert f"method_options.{field}" in message and "\n" not in message
    assert repr(next(iter(options.values()))) in message
