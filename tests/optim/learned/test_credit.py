"""Credit assignment (optim.learned.credit): conservation, limits, order, and SPA-RL's fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from optim.learned.credit import ProgressModel, fit_progress, redistribute, returns_to_go


def episodes(seed: int, b: int = 8, t: int = 6):
    g = torch.Generator().manual_seed(seed)
    R = torch.randn(b, generator=g, dtype=torch.float64) * 3
    signal = torch.randn(b, t, generator=g, dtype=torch.float64)
    mask = (torch.rand(b, t, generator=g) < 0.7).to(torch.float64)
    mask[:, 2] = 1.0
    return R, signal, mask


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0, 7.0, 1e4, math.inf])
def test_importance_conserves_each_episode_total(beta: float) -> None:
    R, g, mask = episodes(0)
    r = redistribute(R, g, mask, kind="importance", beta=beta)
    torch.testing.assert_close(r.sum(dim=1), R, rtol=0, atol=1e-12)
    assert torch.all(r[mask == 0] == 0)


def test_uniform_is_beta_zero_and_splits_evenly() -> None:
    R, g, mask = episodes(1)
    r = redistribute(R, g, mask, kind="uniform")
    torch.testing.assert_close(r, (R / mask.sum(1))[:, None] * mask)
    torch.testing.assert_close(r, redistribute(R, g, mask, beta=0.0))


def test_weights_are_a_softmax_of_the_signal() -> None:
    R, g, mask = episodes(2)
    r = redistribute(R, g, mask, beta=0.7)
    for b in range(len(R)):
        valid = mask[b].bool().numpy()
        e = np.exp(0.7 * g[b].numpy()[valid])
        np.testing.assert_allclose(r[b].numpy()[valid], R[b].item() * e / e.sum(), rtol=1e-12)


def test_infinite_beta_gives_everything_to_the_largest_signal() -> None:
    R, g, mask = episodes(3)
    r = redistribute(R, g, mask, beta=math.inf)
    best = torch.where(mask.bool(), g, -math.inf).argmax(dim=1)
    expected = torch.zeros_like(r)
    expected[torch.arange(len(R)), best] = R
    torch.testing.assert_close(r, expected, rtol=0, atol=0)
    # the finite limit approaches it
    torch.testing.assert_close(redistribute(R, g, mask, beta=1e4), expected, rtol=0, atol=1e-9)
    # ties at the top share evenly
    tie = redistribute(
        torch.tensor([6.0]), torch.tensor([[2.0, 5.0, 5.0]]), torch.ones(1, 3), beta=math.inf
    )
    assert tie.tolist() == [[0.0, 3.0, 3.0]]


def test_order_of_rewards_follows_order_of_signal() -> None:
    R, g, mask = episodes(4)
    R = R.abs() + 0.1
    r = redistribute(R, g, mask, beta=2.0)
    for b in range(len(R)):
        valid = mask[b].bool()
        assert torch.equal(torch.argsort(r[b][valid]), torch.argsort(g[b][valid]))


def additive_episodes(seed: int, b: int, t: int = 6, f: int = 3):
    """Episodes whose reward is the sum of a known per-step contribution q(x_t)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, t, f, generator=g, dtype=torch.float64)
    mask = (torch.rand(b, t, generator=g) < 0.8).to(torch.float64)
    mask[:, 0] = 1.0
    q = (torch.tanh(x @ torch.tensor([1.0, -0.5, 0.3], dtype=torch.float64)) + 0.5) * mask
    return x, mask, q, q.sum(dim=1)


def test_spa_progress_fits_an_additive_reward() -> None:
    x, mask, q, R = additive_episodes(5, 256)
    model = fit_progress(x, mask, R, hidden=16, epochs=400, lr=2e-2, seed=0)
    c = model(x, mask).detach()
    # sum of progress matches the reward on the training episodes
    resid = c.sum(1) - R
    assert float(resid.abs().mean()) < 0.05 * float(R.abs().mean())
    # and on held-out episodes; the per-step progress recovers q
    x2, mask2, q2, R2 = additive_episodes(6, 256)
    c2 = model(x2, mask2).detach()
    valid = mask2.bool()
    corr = np.corrcoef(c2[valid].numpy(), q2[valid].numpy())[0, 1]
    assert corr > 0.9
    assert float((c2.sum(1) - R2).abs().mean()) < 0.1 * float(R2.abs().mean())
    # redistribute("progress") is c plus an even share of the residual: exact total
    r = redistribute(R2, x2, mask2, kind="progress", model=model)
    torch.testing.assert_close(r.sum(1), R2, rtol=0, atol=1e-12)
    assert torch.all(r[mask2 == 0] == 0)
    torch.testing.assert_close(r - c2, ((R2 - c2.sum(1)) / mask2.sum(1))[:, None] * mask2)


def test_fit_progress_is_deterministic_and_leaves_global_rng_alone() -> None:
    x, mask, _, R = additive_episodes(7, 32)
    state = torch.random.get_rng_state()
    m1 = fit_progress(x, mask, R, epochs=5, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    m2 = fit_progress(x, mask, R, epochs=5, seed=3)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda R, g, m: redistribute(R, g, m, kind="shapley"), "kind: 'shapley' is not one of"),
        (lambda R, g, m: redistribute(R, g, m, beta=-1.0), "beta: -1.0 is invalid"),
        (lambda R, g, m: redistribute(R, g, m, kind="uniform", beta=1.0), "beta: 1.0 is invalid"),
        (lambda R, g, m: redistribute(R[:2], g, m), "R: torch.Size"),
        (lambda R, g, m: redistribute(R, g[:, :2], m), "step_features: torch.Size"),
        (lambda R, g, m: redistribute(R, g[..., None], m), "step_features: \\(8, 6, 1\\)"),
        (lambda R, g, m: redistribute(R, g, m * 0), "mask: 'episode 0 has no valid step'"),
        (lambda R, g, m: redistribute(R, g[..., None], m, kind="progress"), "model: None"),
        (lambda R, g, m: fit_progress(g, m, R), "step_features: \\(8, 6\\)"),
        (lambda R, g, m: fit_progress(g[..., None], m, R, epochs=-1), "epochs: -1"),
    ],
)
def test_bad_input_is_one_config_error(call, message: str) -> None:
    R, g, mask = episodes(8)
    with pytest.raises(ConfigError, match=message):
        call(R, g, mask)


def test_progress_model_zeroes_masked_steps() -> None:
    model = ProgressModel(2, 4).double()
    x = torch.randn(3, 4, 2, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.float64)
    assert torch.all(model(x, mask)[mask == 0] == 0)


@pytest.mark.parametrize("gamma", [0.0, 0.9, 1.0])
def test_returns_to_go_matches_a_loop_and_starts_at_the_total(gamma: float) -> None:
    R, g, mask = episodes(9)
    r = redistribute(R, g, mask, beta=0.5)
    G = returns_to_go(r, mask, gamma=gamma)
    for b in range(len(R)):
        steps = mask[b].bool().nonzero().flatten().tolist()
        for i, t in enumerate(steps):
            ref = sum(gamma ** (j - i) * r[b, s].item() for j, s in enumerate(steps) if j >= i)
            assert G[b, t].item() == pytest.approx(ref, abs=1e-12)
    assert torch.all(G[mask == 0] == 0)
    if gamma == 1.0:
        first = mask.argmax(dim=1)
        torch.testing.assert_close(G[torch.arange(len(R)), first], R)
