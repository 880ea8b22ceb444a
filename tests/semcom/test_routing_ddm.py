"""DDM (routing "ddm"): the ensemble identity against autograd of a mixture density, k-means
against brute force, the partition mask, the router's training, and the family contract."""

from __future__ import annotations

import itertools

import pytest
import torch

from channels.errors import ConfigError
from semcom.channel_state import ChannelState
from semcom.models.experts import ChannelExperts
from semcom.routing import ROUTING, build_routing
from semcom.routing.ddm import PartitionRouter
from semcom.routing.routers import bayes_router, ensemble, kmeans, sparsify
from tests.semcom.routing_helpers import SNRS, awgn, digits, mixed_states, train_steps

pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_card_ensemble_score_is_mixture_score() -> None:
    """1-D Gaussian mixture: Σ_k r(k|x) s_k(x) with analytic expert scores and the Bayes router
    equals d/dx log Σ_k π_k N(x; μ_k, σ_k²), differentiated by autograd (1e-6)."""
    gen = torch.Generator().manual_seed(3)
    pi = torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64)
    mu = torch.tensor([-2.0, 0.5, 3.0], dtype=torch.float64)
    sd = torch.tensor([0.7, 1.3, 0.5], dtype=torch.float64)
    x = (6 * torch.rand(200, generator=gen, dtype=torch.float64) - 3).requires_grad_(True)
    dist = torch.distributions.Normal(mu, sd)
    log_mix = torch.logsumexp(torch.log(pi) + dist.log_prob(x[:, None]), dim=1)
    (reference,) = torch.autograd.grad(log_mix.sum(), x)
    xs = x.detach()
    scores = -(xs[None, :] - mu[:, None]) / sd[:, None] ** 2  # expert k: score of p_k
    log_lik = -0.5 * ((xs[:, None] - mu) / sd) ** 2 - torch.log(sd)  # up to a common constant
    router = bayes_router(torch.log(pi), log_lik)
    assert torch.allclose(router.sum(1), torch.ones(200, dtype=torch.float64))
    assert torch.allclose(ensemble(router, scores), reference, atol=1e-6, rtol=0)
    wrong = ensemble(torch.full_like(router, 1 / 3), scores)  # a uniform router is not exact
    assert (wrong - reference).abs().max() > 0.1


def test_kmeans_matches_brute_force_optimum() -> None:
    """On 9 points in 3 blobs, k-means reaches the minimum within-cluster sum of squares over
    all 3^9 labellings (brute force)."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]])
    pts = centres.repeat_interleave(3, 0) + 0.3 * torch.randn(9, 2, generator=gen)

    def sse(labels: tuple[int, ...] | torch.Tensor) -> float:
        lab = torch.as_tensor(labels)
        return sum(
            float(((pts[lab == k] - pts[lab == k].mean(0)) ** 2).sum())
            for k in range(3)
            if (lab == k).any()
        )

    best = min(sse(lab) for lab in itertools.product(range(3), repeat=9))
    _, labels = kmeans(pts, 3, iters=50, seed=1)
    assert sse(labels) == pytest.approx(best, rel=1e-9)


def test_partition_mask_trains_each_expert_on_its_cluster_only() -> None:
    """While training, a frame's loss reaches only its cluster's expert: a batch from one
    cluster gives zero gradient to every other expert."""
    torch.manual_seed(0)
    model = build_routing("ddm", {"experts": 2}).build("mlp", 4, {}, seed=0)
    model.train()
    x = digits(16)
    low = ChannelState.constant(SNRS[0], "awgn", 8)
    high = ChannelState.constant(SNRS[1], "awgn", 8)
    both = ChannelState(
        torch.cat([low.snr_db, high.snr_db]),
        torch.zeros(16),
        torch.zeros(16, dtype=torch.int64),
    )
    model(x, None, both).mean().backward()  # fits the partition: the two SNRs split
    model.zero_grad()
    k_low = int(model.router.labels(low.features())[0])
    model(x[:8], None, low).mean().backward()
    for k, expert in enumerate(model.experts):
        grads = [p.grad for p in expert.parameters() if p.grad is not None]
        if k == k_low:
            assert grads and any(float(g.abs().sum()) > 0 for g in grads)
        else:
            assert all(float(g.abs().sum()) == 0 for g in grads)


def test_router_learns_the_partition_and_routes_by_state() -> None:
    """After a few steps the router predicts the cluster of each SNR group, and the deployed
    model's outputs change with the state."""
    routing, model, images = train_steps("ddm", {"experts": 2}, steps=40)
    assert not model.training
    states = [ChannelState.constant(s, "awgn", 1) for s in SNRS]
    weights = [model.combine_weights(s, None, 1)[0].detach() for s in states]
    clusters = [int(model.router.labels(s.features())[0]) for s in states]
    assert clusters[0] != clusters[1]
    for w, k in zip(weights, clusters, strict=True):
        assert float(w[k]) > 0.8  # the router's posterior on the frame's own cluster
    x = images[:4]
    z = model.encode(x, ChannelState.constant(5.0, "awgn", 4))
    out = [model.decode(z, ChannelState.constant(s, "awgn", 4)) for s in SNRS]
    assert (out[0] - out[1]).abs().max() > 1e-4


def test_content_partition_decoder_experts() -> None:
    """The content partition clusters images, shares the encoder and routes on the received
    features; training still gives each decoder expert only its cluster's frames."""
    routing, model, images = train_steps("ddm", {"experts": 3, "partition": "content"}, 10)
    assert isinstance(model.router, PartitionRouter) and model.shared_encoder
    assert model.router.centroids.shape == (3, 64)
    z = model.encode(images[:5], None)
    w = model.combine_weights(None, z, 5)  # reads the received features without a state
    assert torch.allclose(w.sum(1), torch.ones(5))
    assert model.decode(z, None).shape == (5, 1, 8, 8)


def test_contract_state_none_apply_and_reload() -> None:
    """Conditioned model; no state -> routed as the average training state (the running mean
    of the training frames' state features); apply is deterministic; a checkpoint (weights incl.
    the fitted partition and the mean state) reloads into a fresh build with identical outputs."""
    routing, model, images = train_steps("ddm", {"experts": 2, "top_k": 1}, steps=5)
    assert isinstance(model, ChannelExperts) and model.conditioned
    assert float(model.state_count) > 0
    model.eval()
    mean = model.state_mean
    as_mean = model.router(mean.expand(3, -1), None, None)
    assert torch.allclose(model.combine_weights(None, None, 3), sparsify(as_mean, 1))
    state = mixed_states(8, torch.Generator().manual_seed(1))
    x = images[:8]
    first = routing.apply(model)(x, None, state)
    assert torch.equal(first, routing.apply(model)(x, None, state))
    fresh = build_routing("ddm", {"experts": 2, "top_k": 1}).build("mlp", 8, {}, seed=0)
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    assert torch.equal(fresh(x, None, state), first)
    w = model.combine_weights(state, None, 8)
    assert bool(((w == 0) | (w == 1)).all())  # top-1 at evaluation
    assert ROUTING.info("ddm").paper == "arXiv:2501.05450"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"experts": 1}, "routing_options.experts"),
        ({"partition": "pixels"}, "routing_options.partition"),
        ({"top_k": 5}, "routing_options.top_k"),
        ({"router_weight": -1.0}, "routing_options.router_weight"),
        ({"bogus": 1}, "routing_options.bogus"),
    ],
)
def test_bad_options(options: dict, field: str) -> None:
    with pytest.raises(ConfigError) as err:
        build_routing("ddm", options)
    message = str(err.value)
    assert "\n" not in message and message.startswith(field)
    assert str(list(options.values())[0]) in message


def _content_steps(warmup_steps: int, steps: int = 60) -> tuple[float, float]:
    """``steps`` Adam steps of a content-partition cnn on 16x16 patches through per-frame AWGN;
    returns (mean MSE of the last 10 steps, fraction of saturated encoder outputs |z| > 0.99)."""
    from semcom.data import load_dataset

    images = load_dataset("patches", "train", size=16, limit=512).images
    torch.manual_seed(0)
    routing = build_routing(
        "ddm", {"experts": 4, "partition": "content", "warmup_steps": warmup_steps}
    )
    model = routing.build("cnn", 8, {"input_shape": [3, 16, 16]}, seed=0)
    hook = routing.hook()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    mses = []
    for _ in range(steps):
        x = images[torch.randint(len(images), (32,), generator=gen)]
        state = mixed_states(32, gen)
        z = model.encode(x, state)
        x_hat = model.decode(awgn(z, state, gen), state)
        mse = ((x_hat - x) ** 2).mean()
        loss = mse + hook.extra_loss(model, x, x_hat, z, state)
        opt.zero_grad()
        loss.backward()
        opt.step()
        mses.append(float(mse.detach()))
    with torch.no_grad():
        z = torch.tanh(model.experts[0]._features(images[:256]))
    return sum(mses[-10:]) / 10, float((z.abs() > 0.99).float().mean())


def test_content_partition_encoder_does_not_collapse() -> None:
    """Regression: trained through the partition-masked decoders from the first step, the shared
    encoder saturates (each decoder fits its cluster's mean image without reading z̃) and the
    codec stalls; the dense warm-up keeps the encoder alive through the masked steps after it."""
    mse_fixed, saturated_fixed = _content_steps(warmup_steps=20)
    mse_masked, saturated_masked = _content_steps(warmup_steps=0)
    assert saturated_masked > 0.5  # the failure the warm-up prevents
    assert saturated_fixed < 0.25
    assert mse_fixed < mse_masked
    assert build_routing("ddm", {"partition": "content"}).warmup_steps == 100  # on by default
