"""random-layers: per round a uniform draw of round(ρ U) whole units (chi-square and binomial
intervals on the selection counts), the same units as IST, and through the trainer only the
drawn units move."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.adapters import LoRA
from semcom.models import build_model
from semcom.train import TrainConfig, _seed_everything, resolve_config, train
from semcom.training import TRAINING, RandomLayers, build_hook
from semcom.training.units import plain_units

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _adapted_vit() -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("vit", 4, input_shape=[1, 8, 8], dim=16, depth=2, heads=2)
    return LoRA(rank=2).attach(model, seed=0)


def test_selection_frequency_is_uniform() -> None:
    model = _adapted_vit()
    names = list(LoRA().layers(model))
    n, rounds = len(names), 2000
    hook = RandomLayers(fraction=0.25, interval=5, seed=0)
    counts = np.zeros(n)
    for r in range(rounds):
        mask = hook.layer_mask(5 * r, model)
        if r < 10:  # one draw per round: the rest of the round keeps it
            assert all(hook.layer_mask(5 * r + k, model) == mask for k in range(1, 5))
        chosen = [i for i, name in enumerate(names) if f"{name}.lora_A" in mask]
        assert len(chosen) == 5 and len(mask) == 10  # whole units: A and B
        counts[chosen] += 1
    p = 5 / n
    # every unit inside its two-sided 99.9% binomial interval, and a chi-square fit
    low, high = stats.binom.interval(0.999, rounds, p)
    assert np.all((counts >= low) & (counts <= high))
    assert stats.chisquare(counts).pvalue > 0.001


def test_same_units_as_ist_on_a_plain_model() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 4)
    units = plain_units(model)
    mask = RandomLayers(fraction=0.5).layer_mask(0, model)
    chosen = [u for u, ps in units.items() if set(ps) <= mask]
    assert len(chosen) == 5 and mask == {p for u in chosen for p in units[u]}


def test_through_the_trainer_only_the_drawn_units_move() -> None:
    config = TrainConfig(
        model="mlp",
        n_features=8,
        dataset="digits",
        dataset_options={"limit": 128},
        epochs=1,
        batch_size=32,
        val_fraction=0.0,
        patience=None,
        device="cpu",
        weight_decay=0.01,
        lr=1e-4,
        method="random-layers",
        method_options={"interval": 100, "fraction": 0.3},
    )
    run = train(config, progress=False)
    c = resolve_config(config)
    _seed_everything(c.seed)
    init = build_model(c.model, c.n_features, **c.model_options)
    units = plain_units(init)
    after, before = run.model.state_dict(), init.state_dict()
    moved = [u for u, ps in units.items() if any(not torch.equal(after[p], before[p]) for p in ps)]
    assert len(moved) == 3
    assert all(all(not torch.equal(after[p], before[p]) for p in units[u]) for u in moved)
    # and the draw differs from run to run only through the seed
    again = train(dataclasses.replace(config), progress=False).model.state_dict()
    assert all(torch.equal(again[k], v) for k, v in after.items())


def test_state_dict_round_trip_continues_the_same_draws() -> None:
    model = _adapted_vit()
    a = RandomLayers(seed=4, interval=1)
    for step in range(3):
        a.layer_mask(step, model)
    b = RandomLayers(seed=4, interval=1)
    b.load_state_dict(a.state_dict())
    for step in range(3, 8):
        assert a.layer_mask(step, model) == b.layer_mask(step, model)


def test_registered() -> None:
    assert TRAINING.info("random-layers").paper == "arXiv:2410.11772"


@pytest.mark.parametrize(
    ("options", "field"),
    [({"fraction": 1.5}, "fraction"), ({"interval": 0}, "interval"), ({"seed": -1}, "seed")],
)
def test_bad_options_give_one_line_errors(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_hook("random-layers", options)
    message = str(err.value)
    assert f"method_options.{field}" in message and "\n" not in message
    assert repr(next(iter(options.values()))) in message
