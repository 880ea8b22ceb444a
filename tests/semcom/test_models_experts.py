"""ChannelExperts: the generic channel-conditioned expert codec (mixture algebra, defaults,
parameter count, bad options)."""

from __future__ import annotations

import pytest
import torch

from channels.errors import ConfigError
from semcom.channel_state import ChannelState
from semcom.models.experts import ChannelExperts, StateRouter
from semcom.routing.adaptdhm import CapsuleRouter

pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_mixture_equals_weighted_sum_of_experts() -> None:
    """encode = tanh(Σ w_e f_e(x)) and decode = Σ w_e g_e(z) with the router's weights."""
    torch.manual_seed(0)
    model = ChannelExperts("mlp", 4, experts=3)
    x = torch.rand(5, 1, 8, 8)
    state = ChannelState(torch.linspace(-5, 20, 5), torch.zeros(5), torch.arange(5) % 3)
    w = model.combine_weights(state, None, 5)
    assert torch.allclose(w.sum(1), torch.ones(5))
    feats = torch.stack([e._features(x) for e in model.experts])
    expected = torch.tanh((w.T[:, :, None, None] * feats).sum(0))
    z = model.encode(x, state)
    assert torch.allclose(z, expected, atol=1e-6)
    outs = torch.stack([e.decode(z) for e in model.experts])
    assert torch.allclose(model.decode(z, state), (w.T[:, :, None, None, None] * outs).sum(0))


def test_no_state_is_uniform_before_training_and_top1_picks_one_expert() -> None:
    torch.manual_seed(0)
    model = ChannelExperts("mlp", 4, experts=2, top_k=1)
    x = torch.rand(3, 1, 8, 8)
    z = model.encode(x, None)
    mean = (model.experts[0]._features(x) + model.experts[1]._features(x)) / 2
    assert torch.allclose(z, torch.tanh(mean), atol=1e-6)
    model.eval()
    state = ChannelState.constant(0.0, "rayleigh", 3)
    w = model.combine_weights(state, None, 3)
    e = int(w[0].argmax())
    assert torch.equal(w, torch.nn.functional.one_hot(torch.full((3,), e), 2).float())
    assert torch.allclose(model.decode(z, state), model.experts[e].decode(z))


def test_without_a_state_a_trained_model_routes_as_its_average_training_state() -> None:
    """Training frames' state features are averaged (running mean over every frame); a frame
    without a state is then routed exactly as one at that mean state."""
    torch.manual_seed(0)
    model = ChannelExperts("mlp", 4, experts=3)
    x = torch.rand(5, 1, 8, 8)
    states = [
        ChannelState(torch.linspace(-5, 20, 5), torch.randn(5), torch.arange(5) % 3),
        ChannelState(torch.full((3,), 7.0), torch.zeros(3), torch.ones(3, dtype=torch.int64)),
    ]
    model.train()
    for state in states:
        model.encode(x[: len(state)], state)
    every = torch.cat([s.features() for s in states])
    assert float(model.state_count) == 8
    assert torch.allclose(model.state_mean, every.mean(0), atol=1e-6)
    model.eval()
    at_mean = model.router(every.mean(0).expand(4, -1), None, None)
    assert torch.allclose(model.combine_weights(None, None, 4), at_mean, atol=1e-6)


@pytest.mark.parametrize(
    ("base", "options"),
    [("mlp", {"num_classes": 10}), ("vit", {"input_shape": [1, 8, 8], "dim": 16, "depth": 1})],
)
def test_parameter_count_matches_parts(base: str, options: dict) -> None:
    model = ChannelExperts(base, 4, experts=3, **options)
    stored = sum(p.numel() for p in model.parameters())
    assert ChannelExperts.parameter_count(4, model.options) == stored
    router = sum(p.numel() for p in model.router.parameters())
    one = sum(p.numel() for p in model.experts[0].parameters())
    head = 0 if model.head is None else sum(p.numel() for p in model.head.parameters())
    assert stored == 3 * one + router + head


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"experts": 0}, "experts"),
        ({"experts": 2, "top_k": 3}, "top_k"),
        ({"experts": 2, "router": StateRouter(3)}, "router"),
        ({"experts": 2, "router": CapsuleRouter(2, 4)}, "shared_encoder"),
        ({"experts": 2, "hidden": [1]}, "hidden"),
    ],
)
def test_bad_options(kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        ChannelExperts("mlp", 4, **kwargs)
    assert str(err.value).startswith(field) and "\n" not in str(err.value)
