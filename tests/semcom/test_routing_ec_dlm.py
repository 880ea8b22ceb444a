"""EC-DLM (routing "ec-dlm"): expert-choice dispatch against a brute-force sort, the capacity
schedules against their closed forms, the receiver MoE's per-frame capacity, the contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.channel_state import ChannelState
from semcom.routing import ROUTING, build_routing
from semcom.routing.ec_dlm import ExpertChoiceCodec
from semcom.routing.routers import SCHEDULES, capacity_schedule, expert_choice_route
from tests.semcom.routing_helpers import SNRS, digits, train_steps

pytestmark = pytest.mark.usefixtures("one_thread_module")


@pytest.mark.parametrize(("tokens", "experts", "capacity"), [(10, 4, 3), (7, 3, 7), (5, 2, 0)])
def test_card_every_expert_gets_exactly_capacity(tokens: int, experts: int, capacity: int) -> None:
    """Each expert column has exactly C tokens, E*C assignments in all, and the chosen set is
    the expert's top-C tokens by router probability (numpy sort); combine = P on them."""
    logits = torch.randn(tokens, experts, generator=torch.Generator().manual_seed(tokens))
    dispatch, combine = expert_choice_route(logits, capacity)
    assert dispatch.sum(0).tolist() == [capacity] * experts
    assert int(dispatch.sum()) == experts * capacity
    p = np.exp(logits.numpy())
    p /= p.sum(axis=1, keepdims=True)
    for e in range(experts):
        chosen = set(np.argsort(-p[:, e], kind="stable")[:capacity].tolist())
        assert set(torch.nonzero(dispatch[:, e]).flatten().tolist()) == chosen
    np.testing.assert_allclose(combine.numpy(), p * dispatch.numpy(), atol=1e-6)


def test_per_group_capacity() -> None:
    logits = torch.randn(3, 6, 4, generator=torch.Generator().manual_seed(1))
    dispatch, _ = expert_choice_route(logits, torch.tensor([1, 3, 6]))
    assert dispatch.sum(1).tolist() == [[1] * 4, [3] * 4, [6] * 4]
    with pytest.raises(ConfigError, match="capacity"):
        expert_choice_route(logits, 7)


def test_card_schedules_closed_form_and_endpoints() -> None:
    """k(0) = kmax and k(1) = kmin (linear-reverse, cosine); each kind equals its formula with
    Python's round (half to even) on a grid of r."""
    r = [i / 20 for i in range(21)]
    kmin, kmax = 2, 7
    formulas = {
        "linear-reverse": lambda v: kmin + (1 - v) * (kmax - kmin),
        "linear": lambda v: kmin + v * (kmax - kmin),
        "cosine": lambda v: kmin + (kmax - kmin) * (1 + math.cos(math.pi * v)) / 2,
        "constant": lambda v: (kmin + kmax) / 2,
    }
    assert set(formulas) == set(SCHEDULES)
    for kind, f in formulas.items():
        got = capacity_schedule(torch.tensor(r, dtype=torch.float64), kmin, kmax, kind)
        assert got.tolist() == [round(f(v)) for v in r], kind
    for kind in ("linear-reverse", "cosine"):
        ends = capacity_schedule(torch.tensor([0.0, 1.0]), kmin, kmax, kind).tolist()
        assert ends == [kmax, kmin]


def test_receiver_capacity_follows_erasure_ratio() -> None:
    """More erased features -> fewer tokens per expert; each expert takes exactly C_b tokens of
    frame b, C_b = round(N k(r_b) / E)."""
    torch.manual_seed(0)
    method = build_routing("ec-dlm", {"experts": 4, "kmin": 1, "kmax": 4})
    model = method.build("mlp", 8, {}, seed=0)
    z = model.encode(digits(3))
    z[1, 4:] = 0.0  # r = 0.5
    z[2, 1:] = 0.0  # r = 7/8
    model.decode(z, None)
    expected = [round(8 * k / 4) for k in (4, round(2.5), round(1 + 0.125 * 3))]
    assert model.last_capacity.tolist() == expected
    for b, c in enumerate(expected):
        assert model.last_dispatch[b].sum(0).tolist() == [c] * 4


def test_snr_signal_routes_by_state_after_training() -> None:
    """With the SNR signal the capacity (and the output) differ between -5 and 20 dB."""
    options = {"experts": 4, "kmin": 1, "kmax": 4, "signal": "snr"}
    routing, model, images = train_steps("ec-dlm", options, steps=20)
    assert isinstance(model, ExpertChoiceCodec) and model.conditioned
    assert routing.hook() is None
    z = model.encode(images[:4])
    out, caps = [], []
    for snr in SNRS:
        out.append(model.decode(z, ChannelState.constant(snr, "awgn", 4)))
        caps.append(model.last_capacity.tolist())
    assert caps == [[2] * 4, [8] * 4]
    assert (out[0] - out[1]).abs().max() > 1e-5
    first = routing.apply(model)(images[:4], None, None)
    assert torch.equal(first, routing.apply(model)(images[:4], None, None))
    count = sum(p.numel() for p in model.parameters())
    assert ExpertChoiceCodec.parameter_count(8, model.options) == count
    assert ROUTING.info("ec-dlm").paper == "arXiv:2604.01622"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"experts": 1}, "routing_options.experts"),
        ({"kmax": 9}, "routing_options.kmax"),
        ({"kmin": 3, "kmax": 2}, "routing_options.kmax"),
        ({"schedule": "bell"}, "routing_options.schedule"),
        ({"signal": "ber"}, "routing_options.signal"),
        ({"snr_range": [20, -5]}, "routing_options.snr_range"),
    ],
)
def test_bad_options(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_routing("ec-dlm", options)
    message = str(err.value)
    assert "\n" not in message and message.startswith(field)
    assert str(list(options.values())[-1]) in message
