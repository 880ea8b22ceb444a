"""Entropy-Guided Attention (training family): entropies against closed forms and scipy, the
penalty against a loop-by-loop reference, the sign of θ's gradient, and training a tiny vit."""

from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.data import load_dataset
from semcom.models import build_model
from semcom.models.attention import recording
from semcom.registry import all_methods
from semcom.train import TrainConfig, train
from semcom.training import EntropyAttention, attention_entropy, build_hook, entropy_penalty

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _maps(*shape: int, seed: int = 0, sharp: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(sharp * torch.randn(*shape, generator=g), dim=-1)


def _reference_penalty(maps: list[np.ndarray], theta: np.ndarray, gamma: float) -> float:
    """Loop-by-loop numpy version of the paper's formula."""
    layers, start = [], 0
    for a in maps:
        b, h, t, _ = a.shape
        log_t = math.log(t)
        heads = []
        for hh in range(h):
            per_image = []
            for bb in range(b):
                s = 0.0
                for i in range(t):
                    e = float(stats.entropy(a[bb, hh, i]))
                    dev = e - theta[start + hh] * log_t
                    s += dev * dev if abs(dev) > gamma * log_t else 0.0
                per_image.append(s)
            heads.append(np.mean(per_image))
        start += h
        layers.append(np.mean(heads))
    return float(np.mean(layers))


# ---------------------------------------------------------------------------------------------
# the paper's properties


@pytest.mark.parametrize("t", [1, 2, 5, 16, 64])
def test_uniform_attention_has_entropy_exactly_log_t(t: int) -> None:
    a = torch.full((2, 3, t, t), 1.0 / t, dtype=torch.float64)
    assert torch.allclose(
        attention_entropy(a), torch.full((2, 3, t), math.log(t), dtype=torch.float64), atol=1e-12
    )


def test_entropy_matches_scipy_and_one_hot_rows_have_zero() -> None:
    a = _maps(3, 2, 7, 7).double()
    ref = stats.entropy(a.numpy(), axis=-1)
    assert np.allclose(attention_entropy(a).numpy(), ref, atol=1e-12)
    one_hot = torch.eye(5)[None, None]
    assert torch.equal(attention_entropy(one_hot), torch.zeros(1, 1, 5))


def test_penalty_matches_a_loop_reference() -> None:
    maps = [_maps(2, 2, 6, 6, seed=1), _maps(2, 3, 6, 6, seed=2, sharp=1.0)]
    theta = torch.tensor([0.1, 0.9, 0.5, 0.3, 1.0])
    for gamma in (0.0, 0.1, 0.3):
        ours = float(entropy_penalty(maps, theta, gamma))
        ref = _reference_penalty([m.double().numpy() for m in maps], theta.numpy(), gamma)
        assert ours == pytest.approx(ref, rel=1e-5)
        assert ours > 0


def test_penalty_is_zero_inside_the_band() -> None:
    maps = [_maps(4, 3, 9, 9, seed=3, sharp=0.5)]
    e = attention_entropy(maps[0])  # [B, h, T]
    log_t = math.log(9)
    # targets at each head's mid-range; the band covers every query's entropy
    lo, hi = e.amin(dim=(0, 2)), e.amax(dim=(0, 2))
    theta = ((lo + hi) / 2) / log_t
    gamma = float(((hi - lo) / 2).max()) / log_t + 1e-4
    assert float(entropy_penalty(maps, theta, gamma)) == 0.0
    # one head's target moved just outside: only that head pays
    theta2 = theta.clone()
    theta2[1] = (hi[1] + gamma * log_t + 0.05) / log_t
    assert float(entropy_penalty(maps, theta2, gamma)) > 0


def test_theta_gradient_pulls_the_target_toward_the_observed_entropy() -> None:
    maps = [_maps(3, 2, 8, 8, seed=4, sharp=2.0)]
    e = attention_entropy(maps[0])
    log_t = math.log(8)
    theta = torch.tensor([0.05, 1.0], requires_grad=True)  # one target below, one above
    entropy_penalty(maps, theta, 0.0).backward()
    assert theta.grad is not None
    dev = e - theta.detach()[None, :, None] * log_t  # [B, h, T]
    closed = -2 * log_t * dev.sum(-1).mean(0)  # d/dθ_h of mean_b Σ_i δ² (before / h)
    assert torch.allclose(theta.grad, closed / 2, rtol=1e-5)  # mean over the 2 heads
    assert float(theta.grad[0]) < 0 < float(theta.grad[1])  # descent raises 0, lowers 1
    with torch.no_grad():
        stepped = theta - 1e-3 * theta.grad
    gap = lambda th: (e.mean(dim=(0, 2)) - th * log_t).abs()  # noqa: E731
    assert bool((gap(stepped) < gap(theta.detach())).all())


# ---------------------------------------------------------------------------------------------
# the hook in the one training loop


def _config(**changes: Any) -> TrainConfig:
    base = TrainConfig(
        model="vit",
        n_features=16,
        model_options={"dim": 16, "depth": 1, "heads": 2, "scalars_per_feature": 2},
        dataset="digits",
        dataset_options={"limit": 128},
        epochs=3,
        batch_size=32,
        lr=1e-2,
        scheme="none",
        val_fraction=0.0,
        patience=None,
        device="cpu",
    )
    return dataclasses.replace(base, **changes)


def _entropies(model: torch.nn.Module) -> torch.Tensor:
    """Normalised entropies ``E / log T`` of every query of every layer and head on 64 digits."""
    x = load_dataset("digits", "train").images[:64]
    with torch.no_grad(), recording(model) as layers:
        model.decode(model.encode(x))
        return torch.cat([attention_entropy(m.last_weights).flatten() for m in layers]) / math.log(
            16
        )


@pytest.fixture(scope="module")
def plain() -> Any:
    return train(_config(), progress=False)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_low_targets_move_the_entropy_histogram_down(plain: Any) -> None:
    options = {"weight": 1.0, "theta_init": 0.2, "theta_lr": 0.0}
    run = train(_config(method="entropy-attention", method_options=options), progress=False)
    before, after = _entropies(plain.model), _entropies(run.model)
    assert float(after.mean()) < float(before.mean()) - 0.2
    # the share of queries inside the band [0, 0.4] (normalised) grows
    assert float((after <= 0.4).float().mean()) > float((before <= 0.4).float().mean()) + 0.1
    assert not _same_weights(run.model, plain.model)
    copy.deepcopy(run.model)  # nothing with a graph is left on the trained model


def test_in_band_targets_and_zero_weight_change_nothing(plain: Any) -> None:
    # plain training keeps the normalised entropies in (0.7, 1]: a band 0.9 ± 0.2 holds them all
    assert float(_entropies(plain.model).min()) > 0.7
    for options in ({"theta_init": 0.9, "tolerance": 0.2, "weight": 1.0}, {"weight": 0.0}):
        run = train(_config(method="entropy-attention", method_options=options), progress=False)
        assert _same_weights(run.model, plain.model)


def test_learnable_targets_follow_the_heads() -> None:
    hook = build_hook("entropy-attention", {"weight": 1.0, "theta_init": 0.2, "theta_lr": 0.05})
    torch.manual_seed(0)
    model = build_model("vit", 16, input_shape=[1, 8, 8], dim=16, depth=1, heads=2, L=2)
    x = load_dataset("digits", "train").images[:32]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(5):  # the loop's order: forward, extra_loss, backward, step, observe
        x_hat = model.decode(z := model.encode(x))
        loss = ((x_hat - x) ** 2).mean() + hook.extra_loss(model, x, x_hat, z)
        opt.zero_grad()
        loss.backward()
        opt.step()
        hook.observe(1, torch.arange(32), x, x_hat.detach(), torch.zeros(32))
    state = hook.state_dict()
    theta = state["theta"]
    assert theta.shape == (4,)  # 2 heads x (1 encoder + 1 decoder block)
    assert bool((theta > 0.2).all())  # observed entropies sit above 0.2 log T: targets rose
    twin = EntropyAttention(weight=1.0, theta_init=0.2, theta_lr=0.05)
    twin.load_state_dict(state)
    twin.extra_loss(model, x, model(x), model.encode(x))
    assert torch.equal(twin.theta.detach(), theta)


def test_reads_the_maps_of_the_loops_forward() -> None:
    torch.manual_seed(0)
    model = build_model("vit", 16, input_shape=[1, 8, 8], dim=16, depth=1, heads=2, L=2)
    x = load_dataset("digits", "train").images[:8]
    hook = EntropyAttention(weight=1.0, theta_init=0.1, theta_lr=0.0)
    first = hook.extra_loss(model, x, model(x), model.encode(x))  # recomputes once
    noisy = model.decode(model.encode(x) + 0.5)  # the loop's forward through a channel
    second = hook.extra_loss(model, x, noisy, model.encode(x))
    with recording(model) as layers:
        model.decode(model.encode(x) + 0.5)
        maps = [m.last_weights for m in layers]
    expected = entropy_penalty(maps, torch.full((4,), 0.1), 0.2)
    assert float(second.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert float(first.detach()) != pytest.approx(float(second.detach()), rel=1e-6)


# ---------------------------------------------------------------------------------------------
# contract and errors


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tolerance": 2}, "method_options.tolerance: 2"),
        ({"weight": -1}, "method_options.weight: -1"),
        ({"theta_init": 1.5}, "method_options.theta_init: 1.5"),
        ({"theta_lr": "fast"}, "method_options.theta_lr: 'fast'"),
        ({"gamma": 0.2}, "method_options.gamma: 0.2"),
    ],
)
def test_bad_options_fail_with_one_line(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_hook("entropy-attention", options)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_model_without_attention_is_refused() -> None:
    model = build_model("mlp", 4)
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ConfigError, match="model: 'mlp' has no attention layers"):
        EntropyAttention().extra_loss(model, x, model(x), model.encode(x))


def test_registered_with_its_paper() -> None:
    info = [m for m in all_methods() if m.family == "training" and m.name == "entropy-attention"]
    assert len(info) == 1 and info[0].paper == "arXiv:2501.03489"
