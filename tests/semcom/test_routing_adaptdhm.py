"""AdaptDHM (routing "adaptdhm"): dynamic routing against a loop-by-loop reference, the paper's
coefficient properties, end-to-end training through the contract, bad options."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.channel_state import ChannelState
from semcom.models.experts import ChannelExperts
from semcom.routing import ROUTING, build_routing
from semcom.routing.adaptdhm import CapsuleRouter
from semcom.routing.routers import dynamic_routing
from tests.semcom.routing_helpers import SNRS, mixed_states, train_steps

pytestmark = pytest.mark.usefixtures("one_thread_module")


def _reference(u: np.ndarray, iters: int) -> tuple[np.ndarray, np.ndarray]:
    """Routing by agreement written out with loops over samples, capsules and clusters."""
    batch, inputs, clusters, _ = u.shape
    v_all = np.zeros((batch, clusters, u.shape[3]))
    c_all = np.zeros((batch, inputs, clusters))
    for n in range(batch):
        b = np.zeros((inputs, clusters))
        for it in range(iters):
            c = np.exp(b) / np.exp(b).sum(axis=1, keepdims=True)
            v = np.zeros((clusters, u.shape[3]))
            for k in range(clusters):
                s = sum(c[i, k] * u[n, i, k] for i in range(inputs))
                norm2 = float(s @ s)
                v[k] = norm2 / (1 + norm2) * s / np.sqrt(norm2)
            if it + 1 < iters:
                for i in range(inputs):
                    for k in range(clusters):
                        b[i, k] += u[n, i, k] @ v[k]
        v_all[n], c_all[n] = v, c
    return v_all, c_all


@pytest.mark.parametrize("iters", [1, 2, 4])
def test_dynamic_routing_matches_loop_reference(iters: int) -> None:
    u = torch.randn(3, 5, 4, 6, generator=torch.Generator().manual_seed(iters), dtype=torch.float64)
    v, c = dynamic_routing(u, iters)
    v_ref, c_ref = _reference(u.numpy(), iters)
    np.testing.assert_allclose(v.numpy(), v_ref, atol=1e-6)
    np.testing.assert_allclose(c.numpy(), c_ref, atol=1e-6)


def test_paper_coefficients() -> None:
    """Coefficients sum to 1; b = 0 with one iteration is uniform; permuting the cluster order
    (the towers' prediction blocks) permutes the coefficients."""
    torch.manual_seed(0)
    router = CapsuleRouter(4, scalars=3, dim=5, iters=3)
    z, s = torch.randn(6, 7, 3), torch.randn(6, 5)
    alpha = router(s, z, None).detach()
    assert torch.allclose(alpha.sum(1), torch.ones(6), atol=1e-6)
    assert float(alpha.std(1).max()) > 1e-4  # three iterations: not uniform
    router.iters = 1
    assert torch.allclose(router(s, z, None), torch.full((6, 4), 0.25))
    router.iters = 3
    perm = torch.tensor([2, 0, 3, 1])
    permuted = CapsuleRouter(4, scalars=3, dim=5, iters=3)
    permuted.load_state_dict(router.state_dict())
    w = router.predict.weight.detach().reshape(4, 5, 5)
    permuted.predict.weight.data = w[perm].reshape(20, 5).clone()
    assert torch.allclose(permuted(s, z, None), alpha[:, perm], atol=1e-6)


def test_trains_end_to_end_and_routes_by_state() -> None:
    """A few steps of the reconstruction loss move the router (no hook), and the deployed
    model's coefficients and outputs change with the state."""
    torch.manual_seed(0)
    untrained = build_routing("adaptdhm", {"clusters": 3}).build("mlp", 8, {}, seed=0)
    before = {k: v.clone() for k, v in untrained.router.state_dict().items()}
    routing, model, images = train_steps("adaptdhm", {"clusters": 3}, steps=30)
    assert routing.hook() is None
    moved = [not torch.equal(before[k], v) for k, v in model.router.state_dict().items()]
    assert any(moved)
    x = images[:4]
    z = model.encode(x, None)
    states = [ChannelState.constant(s, "awgn", 4) for s in SNRS]
    alphas = [model.combine_weights(s, z, 4) for s in states]
    assert (alphas[0] - alphas[1]).abs().max() > 1e-4
    out = [model.decode(z, s) for s in states]
    assert (out[0] - out[1]).abs().max() > 1e-5


def test_contract_shared_encoder_top1_and_apply() -> None:
    routing, model, images = train_steps("adaptdhm", {"clusters": 2, "top_k": 1}, steps=3)
    assert isinstance(model, ChannelExperts) and model.conditioned and model.shared_encoder
    frozen = [p for p in model.experts[1].parameters() if not p.requires_grad]
    assert frozen  # the towers' own encoders are unused and frozen
    state = mixed_states(6, torch.Generator().manual_seed(2))
    x = images[:6]
    first = routing.apply(model)(x, None, state)
    assert torch.equal(first, routing.apply(model)(x, None, state))
    w = model.combine_weights(state, model.encode(x, state), 6)
    assert bool(((w == 0) | (w == 1)).all()) and torch.equal(w.sum(1), torch.ones(6))
    assert model(x, None, None).shape == x.shape  # no state: the router still reads z
    count = sum(p.numel() for p in model.parameters())
    assert type(model).parameter_count(8, model.options) == count
    assert ROUTING.info("adaptdhm").paper == "arXiv:2211.12105"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"clusters": 1}, "routing_options.clusters"),
        ({"iters": 0}, "routing_options.iters"),
        ({"state_inputs": "yes"}, "routing_options.state_inputs"),
        ({"top_k": 9}, "routing_options.top_k"),
    ],
)
def test_bad_options(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_routing("adaptdhm", options)
    message = str(err.value)
    assert "\n" not in message and message.startswith(field)
    assert str(list(options.values())[0]) in message
