"""The importance-ratio objectives of optim.learned.objectives.

Each kind is checked against something written independently of it: the plain objective
``pg`` at ``logp_new == logp_old`` (value and autograd gradient), NumPy re-implementations of
GRPO, GSPO, HAPO's advantages and DRPO's objective (gradients by central finite differences or
by hand), exact Gaussian densities for GRPO-Guard and PolicyFlow, and torch.distributions.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from optim.learned import objectives as ob
from optim.learned.objectives import OBJECTIVES, policy_loss

B, T = 6, 5
KINDS = ("pg", "revibranch", "spa-rl", "alp", "hapo", "grpo-guard", "policyflow", "drpo", "dhpo")


def batch(seed: int = 0, *, equal: bool = True, spread: float = 0.3):
    """Random float64 episodes: (logp_new leaf, logp_old, adv, mask, entropy)."""
    g = torch.Generator().manual_seed(seed)
    logp_old = -torch.rand(B, T, generator=g, dtype=torch.float64) * 2 - 0.1
    shift = 0.0 if equal else spread * torch.randn(B, T, generator=g, dtype=torch.float64)
    logp_new = (logp_old + shift).clone().requires_grad_(True)
    adv = torch.randn(B, T, generator=g, dtype=torch.float64)
    mask = (torch.rand(B, T, generator=g) < 0.75).to(torch.float64)
    mask[:, 0] = 1.0
    entropy = torch.rand(B, T, generator=g, dtype=torch.float64) * 2 + 0.05
    return logp_new, logp_old, adv * mask, mask, entropy


def value_grad(kind: str, logp_new, logp_old, adv, mask, **hp):
    loss, _ = policy_loss(logp_new, logp_old, adv, mask, kind=kind, **hp)
    (grad,) = torch.autograd.grad(loss, logp_new)
    return float(loss.detach()), grad


def assert_reduces(kind: str, hp: dict, adv_pg=None, *, value: bool = True, seed: int = 0):
    logp_new, logp_old, adv, mask, _ = batch(seed)
    v, g = value_grad(kind, logp_new, logp_old, adv, mask, **hp)
    v0, g0 = value_grad("pg", logp_new, logp_old, adv if adv_pg is None else adv_pg, mask)
    if value:
        assert v == pytest.approx(v0, abs=1e-12)
    torch.testing.assert_close(g, g0, rtol=1e-10, atol=1e-12)


def test_registry_holds_every_kind() -> None:
    assert set(OBJECTIVES) == set(KINDS)


# --- every kind reduces to pg when the policies are equal ------------------------------------


@pytest.mark.parametrize(
    ("kind", "hp"),
    [
        ("revibranch", {}),
        ("spa-rl", {"clip": 0.1, "clip_high": 0.3}),
        ("alp", {}),
        ("alp", {"level": "sequence", "clip_low": 0.5, "clip_high": 3.0}),
        ("hapo", {}),
        ("hapo", {"entropy": torch.full((B, T), 0.7, dtype=torch.float64)}),
        ("grpo-guard", {}),
        ("grpo-guard", {"center": True}),
        ("policyflow", {}),
        ("dhpo", {}),
        ("dhpo", {"alpha": 0.0}),
        ("dhpo", {"alpha": 1.0}),
        ("dhpo", {"alpha": "entropy", "entropy": batch(1)[4]}),
    ],
)
def test_reduces_to_pg(kind: str, hp: dict) -> None:
    assert_reduces(kind, hp)


def test_hapo_reduces_to_pg_with_redistributed_advantages() -> None:
    logp_new, logp_old, adv, mask, entropy = batch(2)
    h = ob.hapo_entropy_signal(entropy, mask)
    low, high = ob.hapo_clip_ranges(h, 0.2, 0.28)
    adv2 = ob.hapo_redistribute(adv, h, torch.ones_like(adv), low, high)
    # at r = 1 (inside the neutral zone) only confident steps are rescaled, by (1 + h) < 1
    assert torch.equal(adv2 != adv, (h < 0) & (adv != 0))
    assert_reduces("hapo", {"entropy": entropy}, adv_pg=adv2, seed=2)


def test_grpo_guard_gaussian_terms_reduce_to_scaled_pg() -> None:
    logp_new, logp_old, adv, mask, _ = batch(3)
    mu = torch.randn(B, T, 2, dtype=torch.float64)
    bias = ob.gaussian_ratio_bias(mu.clone().requires_grad_(True), mu, 0.3)
    scale = torch.full((B, T), 0.3, dtype=torch.float64)
    weight = 1 / scale
    v, g = value_grad(
        "grpo-guard", logp_new, logp_old, adv, mask, bias=bias, scale=scale, step_weight=weight
    )
    v0, g0 = value_grad("pg", logp_new, logp_old, adv, mask)
    assert v == pytest.approx(v0 / 0.3, abs=1e-12)  # value -A * w, gradient -A * w * s
    torch.testing.assert_close(g, g0, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("score", ["log", "ratio"])
def test_drpo_reduces_to_pg_with_its_advantages(score: str) -> None:
    logp_new, logp_old, adv, mask, _ = batch(4)
    reward = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    group = torch.tensor([0, 0, 0, 1, 1, 2])  # group 2 is all-correct: it does not learn
    hp = {"reward": reward, "group": group, "score": score, "lam": 0.5}
    a = ob.drpo_advantages(reward, group, logp_old, mask, lam=0.5)
    assert torch.all(a[5] == 0)
    assert_reduces("drpo", hp, adv_pg=a, value=score == "ratio", seed=4)


# --- clipped objectives against NumPy references away from equality ----------------------


def fd_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of a scalar NumPy function."""
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, dn = x.copy(), x.copy()
        up[idx] += eps
        dn[idx] -= eps
        g[idx] = (f(up) - f(dn)) / (2 * eps)
    return g


def np_grpo(lp, lo, a, m, eps):
    r = np.exp(lp - lo)
    per = np.maximum(-a * r, -a * np.clip(r, 1 - eps, 1 + eps))
    return (per * m).sum() / m.sum()


def np_gspo(lp, lo, a_seq, m, lo_eps, hi_eps):
    s = np.exp(((lp - lo) * m).sum(1) / m.sum(1))
    per = np.maximum(-a_seq * s, -a_seq * np.clip(s, 1 - lo_eps, 1 + hi_eps))
    return per.mean()


def test_dhpo_alpha_one_is_grpo() -> None:
    logp_new, logp_old, adv, mask, _ = batch(5, equal=False)
    v, g = value_grad("dhpo", logp_new, logp_old, adv, mask, alpha=1.0, clip_token=0.2)
    lo, a, m = logp_old.numpy(), adv.numpy(), mask.numpy()

    def f(x):
        return np_grpo(x, lo, a, m, 0.2)

    x = logp_new.detach().numpy()
    assert v == pytest.approx(f(x), abs=1e-12)
    np.testing.assert_allclose(g.numpy(), fd_grad(f, x), atol=1e-7)


def test_dhpo_alpha_zero_is_gspo() -> None:
    logp_new, logp_old, _, mask, _ = batch(6, equal=False, spread=0.01)
    a_seq = torch.randn(B, dtype=torch.float64)
    adv = a_seq[:, None] * mask
    hp = {"alpha": 0.0, "clip_seq_low": 0.003, "clip_seq_high": 0.004, "agg": "seq-mean"}
    v, g = value_grad("dhpo", logp_new, logp_old, adv, mask, **hp)
    lo, m = logp_old.numpy(), mask.numpy()

    def f(x):
        return np_gspo(x, lo, a_seq.numpy(), m, 0.003, 0.004)

    x = logp_new.detach().numpy()
    assert v == pytest.approx(f(x), abs=1e-12)
    np.testing.assert_allclose(g.numpy(), fd_grad(f, x), atol=1e-7)
    # some episodes are clipped and some are not, so both branches are exercised
    s = np.exp(((x - lo) * m).sum(1) / m.sum(1))
    assert np.any(np.abs(s - 1) > 0.004) and np.any(np.abs(s - 1) < 0.003)


def test_dhpo_mix_lies_between_its_branches() -> None:
    logp_new, logp_old, adv, mask, _ = batch(7, equal=False)
    values = [
        value_grad(
            "dhpo", logp_new, logp_old, adv, mask, alpha=a, clip_seq_low=0.2, clip_seq_high=0.2
        )[0]
        for a in (0.0, 0.5, 1.0)
    ]
    # the surrogate is a max of functions linear in alpha, so convex in alpha
    assert values[1] <= 0.5 * (values[0] + values[2]) + 1e-12


def test_alp_sequence_level_is_the_gspo_branch() -> None:
    logp_new, logp_old, adv, mask, _ = batch(8, equal=False, spread=0.05)
    v1, g1 = value_grad(
        "alp", logp_new, logp_old, adv, mask, level="sequence", clip_low=0.01, clip_high=0.02
    )
    v2, g2 = value_grad(
        "dhpo", logp_new, logp_old, adv, mask, alpha=0.0, clip_seq_low=0.01, clip_seq_high=0.02
    )
    assert v1 == pytest.approx(v2, abs=1e-14)
    torch.testing.assert_close(g1, g2)


def test_alp_perturbation_off_is_exactly_the_unperturbed_policy() -> None:
    torch.manual_seed(0)
    layers = torch.nn.ModuleList([torch.nn.Linear(4, 8), torch.nn.Linear(8, 3)]).double()
    log_sigma = torch.nn.Parameter(torch.full((2,), -math.inf, dtype=torch.float64))
    x = torch.randn(B * T, 4, dtype=torch.float64)
    actions = torch.randint(0, 3, (B * T,))

    def logp(perturb: bool) -> torch.Tensor:
        h = x
        for i, layer in enumerate(layers):
            if perturb:
                h = ob.perturb_hidden(h, log_sigma[i], generator=torch.Generator().manual_seed(i))
            h = layer(h)
            if i == 0:
                h = torch.tanh(h)
        lp = torch.log_softmax(h, dim=-1)
        return lp.gather(1, actions[:, None]).reshape(B, T)

    old = logp(False).detach()
    _, _, adv, mask, _ = batch(9)
    v_off, _ = value_grad("alp", logp(True), old, adv, mask)
    v_pg, _ = value_grad("pg", logp(False), old, adv, mask)
    assert v_off == v_pg
    # with sigma > 0 the ratio moves off 1 and the loss reaches sigma through the noise
    with torch.no_grad():
        log_sigma.fill_(math.log(0.1))
    loss, stats = policy_loss(logp(True), old, adv, mask, kind="alp")
    (g,) = torch.autograd.grad(loss, log_sigma)
    assert stats["abs_log_ratio_max"] > 0 and torch.all(g != 0)


# --- HAPO -------------------------------------------------------------------------------------


def test_hapo_entropy_signal_and_temperature_are_monotone_in_entropy() -> None:
    _, _, _, mask, entropy = batch(10)
    h = ob.hapo_entropy_signal(entropy, mask)
    temp = ob.hapo_temperature(entropy, mask, base=0.8, tau=0.05)
    valid = mask.bool()
    order = torch.argsort(entropy[valid])
    assert torch.all(torch.diff(h[valid][order]) >= 0)
    assert torch.all(torch.diff(temp[valid][order]) >= 0)
    assert float(h[valid].max()) == 1.0 and float(h[valid].min()) == -1.0
    assert torch.all(h[~valid] == 0)
    torch.testing.assert_close(temp[valid], 0.8 * (1 + 0.05 * h[valid]))


def test_hapo_with_flat_entropy_is_dapo_bit_for_bit() -> None:
    logp_new, logp_old, adv, mask, _ = batch(20, equal=False)
    flat = torch.full((B, T), 0.9, dtype=torch.float64)
    hp = {"entropy": flat, "dual_clip": None}
    v, g = value_grad("hapo", logp_new, logp_old, adv, mask, **hp)
    v0, g0 = value_grad("spa-rl", logp_new, logp_old, adv, mask, clip=0.2, clip_high=0.28)
    assert v == v0 and torch.equal(g, g0)


def test_hapo_entropy_signal_matches_numpy() -> None:
    _, _, _, mask, entropy = batch(18)
    valid = mask.bool().numpy()
    log_h = np.log(entropy.numpy())
    centre = np.median(log_h[valid])  # an odd count here, so the median is a sample
    assert valid.sum() % 2 == 1
    z = np.where(valid, log_h - centre, 0.0)
    z /= np.sqrt((z[valid] ** 2).mean())
    ref = np.where(z > 0, z / z.max(), z / -z.min())
    np.testing.assert_allclose(ob.hapo_entropy_signal(entropy, mask).numpy(), ref, atol=1e-12)


def test_hapo_asymmetric_clip_bounds_the_ratio_where_the_paper_says() -> None:
    # a batch whose ratios sweep a grid, on confident and uncertain steps of both signs of A
    r_grid = torch.linspace(0.3, 1.9, 33, dtype=torch.float64)
    n = r_grid.numel()
    entropy = (
        torch.cat([torch.full((n,), 0.01), torch.full((n,), 5.0), torch.full((n,), 0.5)])
        .to(torch.float64)[None]
        .repeat(2, 1)
    )
    mask = torch.ones_like(entropy)
    adv = torch.tensor([[1.0], [-1.0]], dtype=torch.float64).expand_as(entropy)
    logp_old = torch.full_like(entropy, -1.0)
    logp_new = (logp_old + torch.log(r_grid).repeat(3)[None].repeat(2, 1)).requires_grad_(True)
    hp = {"entropy": entropy, "dual_clip": None, "adaptive_adv": False}
    loss, _ = policy_loss(logp_new, logp_old, adv, mask, kind="hapo", **hp)
    (g,) = torch.autograd.grad(loss, logp_new)
    h = ob.hapo_entropy_signal(entropy, mask)
    low, high = ob.hapo_clip_ranges(h, 0.2, 0.28)
    ratio = torch.exp(logp_new.detach() - logp_old)
    # A > 0: no gradient exactly above 1 + eps_high; A < 0: exactly below 1 - eps_low
    torch.testing.assert_close(g[0] == 0, ratio[0] > 1 + high[0])
    torch.testing.assert_close(g[1] == 0, ratio[1] < 1 - low[1])
    conf, unc = slice(0, n), slice(n, 2 * n)
    assert torch.allclose(h[0, conf], torch.tensor(-1.0, dtype=torch.float64))
    assert torch.allclose(h[0, unc], torch.tensor(1.0, dtype=torch.float64))
    # confident steps may fall to 1 - 2 eps_low; uncertain steps may rise to 1 + 2 eps_high
    assert torch.allclose(low[0, conf], torch.tensor(0.4, dtype=torch.float64))
    assert torch.allclose(high[0, unc], torch.tensor(0.56, dtype=torch.float64))
    assert torch.allclose(low[0, unc], torch.tensor(0.2, dtype=torch.float64))
    assert torch.allclose(high[0, conf], torch.tensor(0.28, dtype=torch.float64))


def np_hapo_advantages(reward, steps, group, eps=1e-6, fallback=5.0):
    out = np.zeros(len(reward))
    for label in np.unique(group):
        idx = np.flatnonzero(group == label)
        tokens = np.repeat(reward[idx], steps[idx])
        z = (reward[idx] - tokens.mean()) / (tokens.std() + eps)
        if np.any(np.abs(np.repeat(z, steps[idx])) >= fallback):
            if len(idx) == 1:
                z = reward[idx]
            else:
                z = (reward[idx] - reward[idx].mean()) / (reward[idx].std(ddof=1) + eps)
        out[idx] = z
    return out


def test_hapo_token_level_group_average_matches_a_loop() -> None:
    steps = np.array([3, 5, 1, 4, 1, 30, 2, 2])
    reward = np.array([1.0, 0.0, 0.3, 0.9, 1.0, 0.0, 0.5, 0.5])
    group = np.array([7, 7, 7, 2, 4, 4, 9, 9])  # group 4 triggers the GRPO fallback
    mask = torch.zeros(len(steps), 30, dtype=torch.float64)
    for b, n in enumerate(steps):
        mask[b, :n] = 1
    adv = ob.hapo_advantages(torch.tensor(reward), mask, torch.tensor(group))
    ref = np_hapo_advantages(reward, steps, group)
    np.testing.assert_allclose(adv.numpy(), ref[:, None] * mask.numpy(), atol=1e-12)
    # group 4 fell back to GRPO: (1 - 0.5) / std([1, 0], ddof=1)
    assert ref[4] == pytest.approx(0.5 / (math.sqrt(0.5) + 1e-6), rel=1e-12)
    # the loss with reward/group uses exactly these advantages
    logp_new = torch.zeros_like(mask, requires_grad=True)
    loss, _ = policy_loss(
        logp_new,
        logp_new.detach(),
        torch.zeros_like(mask),
        mask,
        kind="hapo",
        reward=torch.tensor(reward),
        group=torch.tensor(group),
    )
    assert float(loss.detach()) == pytest.approx(
        -(ref[:, None] * mask.numpy()).sum() / mask.sum().item()
    )


# --- GRPO-Guard ------------------------------------------------------------------------------


def test_grpo_guard_ratio_norm_on_exact_gaussian_steps() -> None:
    rng = np.random.default_rng(0)
    n, dim = 4000, 3
    scales = np.array([0.02, 0.1, 0.5, 2.0])  # sigma_t sqrt(dt) of four steps
    delta = np.array([0.01, -0.02, 0.015])  # mu_new - mu_old, the same at every step
    mu_old = rng.normal(size=(n, len(scales), dim))
    mu_new = mu_old + delta
    z = rng.normal(size=mu_old.shape)
    x = mu_old + scales[None, :, None] * z

    def logpdf(x, mu, s):
        return (-0.5 * ((x - mu) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)).sum(-1)

    s = scales[None, :]
    lp_new, lp_old = logpdf(x, mu_new, s[..., None]), logpdf(x, mu_old, s[..., None])
    bias = ob.gaussian_ratio_bias(
        torch.tensor(mu_new), torch.tensor(mu_old), torch.tensor(s)
    ).numpy()
    mask = torch.ones(n, len(scales), dtype=torch.float64)
    norm = ob.guard_log_ratio(
        torch.tensor(lp_new),
        torch.tensor(lp_old),
        mask,
        bias=torch.tensor(bias),
        scale=torch.tensor(s),
    ).numpy()
    # closed form: (log r + b) s = z . (mu_new - mu_old) exactly
    np.testing.assert_allclose(norm, z @ delta, atol=1e-9)
    raw = lp_new - lp_old
    b = (delta**2).sum() / (2 * scales**2)
    se_raw = raw.std(0) / math.sqrt(n)
    assert np.all(np.abs(raw.mean(0) + b) < 4 * se_raw)  # raw log-ratio is left-shifted by b
    assert np.all(raw.mean(0) < 0) and raw.mean(0)[0] < -0.5
    se = norm.std(0) / math.sqrt(n)
    assert np.all(np.abs(norm.mean(0)) < 4 * se)  # normalised log-ratio is centred at 0
    np.testing.assert_allclose(norm.std(0), np.linalg.norm(delta), rtol=0.05)  # equal spreads
    ratio = np.exp(norm)
    expected = math.exp((delta**2).sum() / 2)  # E exp(z . delta), 1 up to |delta|^2 / 2
    assert abs(ratio.mean(0) - expected).max() < 4 * ratio.std(0).max() / math.sqrt(n)


def test_grpo_guard_categorical_bias_centres_the_log_ratio_exactly() -> None:
    g = torch.Generator().manual_seed(19)
    logits_old = torch.randn(B, T, 4, generator=g, dtype=torch.float64)
    logits_new = logits_old + 0.5 * torch.randn(B, T, 4, generator=g, dtype=torch.float64)
    bias = ob.categorical_ratio_bias(logits_new, logits_old)
    p_old = torch.softmax(logits_old, -1)
    log_r = torch.log_softmax(logits_new, -1) - torch.log_softmax(logits_old, -1)
    # enumerate the K actions: E_old[log r + b] = 0 at every step
    centred = (p_old * (log_r + bias[..., None])).sum(-1)
    torch.testing.assert_close(centred, torch.zeros(B, T, dtype=torch.float64), atol=1e-14, rtol=0)
    assert torch.all(bias > 0)
    # Gaussian steps: the Gaussian term is the same KL (closed form of torch.distributions)
    mu_old, mu_new = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    kl = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_old, 0.4), torch.distributions.Normal(mu_new, 0.4)
    ).sum(-1)
    torch.testing.assert_close(ob.gaussian_ratio_bias(mu_new, mu_old, 0.4), kl)


def test_grpo_guard_center_gives_each_step_mean_zero() -> None:
    logp_new, logp_old, adv, mask, _ = batch(11, equal=False)
    norm = ob.guard_log_ratio(logp_new, logp_old, mask, center=True, scale=0.5)
    col = (norm.detach() * mask).sum(0) / mask.sum(0)
    torch.testing.assert_close(col, torch.zeros(T, dtype=torch.float64), atol=1e-14, rtol=0)


def test_grpo_guard_step_weight_reweights_each_step() -> None:
    logp_new, logp_old, adv, mask, _ = batch(12, equal=False)
    w = torch.arange(1, T + 1, dtype=torch.float64).expand(B, T)
    _, g1 = value_grad("grpo-guard", logp_new, logp_old, adv, mask)
    _, gw = value_grad("grpo-guard", logp_new, logp_old, adv, mask, step_weight=w)
    torch.testing.assert_close(gw, g1 * w)


# --- PolicyFlow ------------------------------------------------------------------------------


def test_flow_logp_is_the_gaussian_log_density() -> None:
    g = torch.Generator().manual_seed(0)
    delta, mean = torch.randn(B, T, 3, generator=g), torch.randn(B, T, 3, generator=g)
    std = torch.rand(3, generator=g) + 0.1
    ref = torch.distributions.Normal(mean, std).log_prob(delta).sum(-1)
    torch.testing.assert_close(ob.flow_logp(delta, mean, std), ref)


def test_policyflow_ratio_is_exact_for_a_state_independent_velocity() -> None:
    # v(x, t) = b(t): the flow moves every x0 by the same integral, so the action's exact
    # density given x0 is Gaussian around the flow's endpoint, and the approximate ratio
    # built from dv = v_new - v_old at the interpolation point is the exact one.
    rng = np.random.default_rng(1)
    x0 = torch.tensor(rng.normal(size=(B, T, 2)))
    b_old = torch.tensor(rng.normal(size=2))
    b_new = b_old + torch.tensor([0.05, -0.03])
    prior_old, prior_new = x0 + b_old, x0 + b_new  # exact solutions of the two ODEs on [0, 1]
    std_old, std_new = 0.3, 0.25
    delta = torch.tensor(rng.normal(size=(B, T, 2))) * std_old
    action = prior_old + delta
    exact = ob.flow_logp(action - prior_new, 0.0, std_new) - ob.flow_logp(
        action - prior_old, 0.0, std_old
    )
    dv = (b_new - b_old).expand_as(delta)
    approx = ob.flow_logp(delta, dv, std_new) - ob.flow_logp(delta, 0.0, std_old)
    torch.testing.assert_close(approx, exact)


def test_policyflow_brownian_term() -> None:
    logp_new, logp_old, adv, mask, _ = batch(13)
    g = torch.Generator().manual_seed(3)
    v_new, v_old, x_t = (torch.randn(B, T, 2, generator=g, dtype=torch.float64) for _ in "abc")
    t = torch.rand(B, T, generator=g, dtype=torch.float64)
    v0, _ = value_grad("policyflow", logp_new, logp_old, adv, mask)
    v1, _ = value_grad(
        "policyflow",
        logp_new,
        logp_old,
        adv,
        mask,
        brownian_coef=0.5,
        v_new=v_new,
        v_old=v_old,
        x_t=x_t,
        t_flow=t,
    )
    err = ((1 - t[..., None]) * v_new - (x_t - t[..., None] * v_old)) ** 2
    ref = (err.mean(-1) * mask).sum() / mask.sum()
    assert v1 - v0 == pytest.approx(0.5 * float(ref), abs=1e-12)
    with pytest.raises(ConfigError, match="v_new"):
        policy_loss(logp_new, logp_old, adv, mask, kind="policyflow", brownian_coef=1.0)


# --- DRPO ------------------------------------------------------------------------------------


def drpo_case(seed: int):
    _, logp_old, _, mask, _ = batch(seed)
    g = torch.Generator().manual_seed(seed)
    # mostly lower new log-probabilities, so the sampled KL estimate is positive
    shift = torch.randn(B, T, generator=g, dtype=torch.float64) * 0.02 - 0.01
    logp_new = (logp_old + shift).requires_grad_(True)
    reward = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    group = torch.tensor([3, 3, 3, 5, 5, 8])
    return logp_new, logp_old, mask, reward, group


def test_drpo_weights_decouple_positives_from_negatives() -> None:
    reward = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0])
    group = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    length = torch.tensor([2.0, 9.0, 20.0, 4.0, 7.0, 5.0, 5.0])
    scores = torch.tensor([-1.0, -2.0, -3.0, -0.5, -4.0, -1.0, -1.0])
    c, learns = ob.drpo_weights(reward, group, scores, length, 20.0, lam=0.2, tau=1.0)
    assert torch.all(c[:3] > 0)  # the longest correct episode is still pushed up
    assert c[0] > c[1] > c[2]  # shorter correct episodes get more of the positive mass
    assert float(c[:3].sum()) == pytest.approx(1.0)
    assert float(c[3:5].sum()) == pytest.approx(-1.0)
    assert torch.all(c[5:] == 0) and not learns[5:].any()  # an all-correct group is dropped
    # negatives' lengths and scores do not move the positives' weights
    c2, _ = ob.drpo_weights(
        reward,
        group,
        scores + torch.tensor([0, 0, 0, 3.0, -1, 0, 0]),
        length + torch.tensor([0, 0, 0, 50.0, 1, 0, 0]),
        20.0,
        lam=0.2,
    )
    torch.testing.assert_close(c2[:3], c[:3])
    # equal lengths: uniform positive weights (DisCO)
    c3, _ = ob.drpo_weights(reward, group, scores, torch.full((7,), 6.0), 20.0)
    torch.testing.assert_close(c3[:3], torch.full((3,), 1 / 3))
    # negatives: softmax(s / tau) of their scores
    q = torch.softmax(scores[3:5] / 1.0, 0)
    torch.testing.assert_close(-c[3:5], q)


def np_drpo(lp, lo, m, reward, group, lam, tau, beta, delta, max_len):
    """The authors' objective value (log-likelihood scores, normalised-exp LSE surrogate)."""
    steps = m.sum(1)
    s = (lp * m).sum(1) / steps
    labels = np.unique(group)
    total = 0.0
    for label in labels:
        idx = np.flatnonzero(group == label)
        pos, neg = idx[reward[idx] == 1], idx[reward[idx] == 0]
        if len(pos) == 0 or len(neg) == 0:
            continue
        w = np.exp((1 - steps[pos] / max_len) / lam)
        total += (w * s[pos]).sum() / w.sum() - tau * 1.0
    kl = ((-(lp - lo)) * m).sum() / m.sum()
    return -total / len(labels) + max(beta * (kl - delta), 0.0) * kl, kl


def test_drpo_matches_the_authors_objective_and_its_gradient() -> None:
    logp_new, logp_old, mask, reward, group = drpo_case(14)
    hp = {"reward": reward, "group": group, "lam": 0.3, "tau": 2.0, "beta": 50.0, "delta": 1e-4}
    v, g = value_grad("drpo", logp_new, logp_old, torch.zeros_like(mask), mask, **hp)
    lp, lo, m = logp_new.detach().numpy(), logp_old.numpy(), mask.numpy()
    ref, kl = np_drpo(lp, lo, m, reward.numpy(), group.numpy(), 0.3, 2.0, 50.0, 1e-4, T)
    assert v == pytest.approx(ref, abs=1e-12)
    assert kl > 1e-4  # the trust-region penalty is active
    # gradient by hand: -(1/G) sum_b c_b grad s_b + coef * grad KL
    steps = m.sum(1)
    s = torch.tensor((lp * m).sum(1) / steps)
    c, _ = ob.drpo_weights(reward, group, s, torch.tensor(steps), T, lam=0.3, tau=2.0)
    coef = 50.0 * (kl - 1e-4)
    hand = -(c.numpy() / steps)[:, None] * m / 3 + coef * (-m / m.sum())
    np.testing.assert_allclose(g.numpy(), hand, atol=1e-12)


def test_drpo_kl_penalty_is_zero_for_equal_policies() -> None:
    logp_new, logp_old, mask, reward, group = drpo_case(15)
    logp_new = logp_old.clone().requires_grad_(True)
    _, stats = policy_loss(
        logp_new, logp_old, mask, mask, kind="drpo", reward=reward, group=group, kl="low_var_kl"
    )
    assert stats["kl"] == 0.0 and stats["learning_groups"] == 2.0


# --- input checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_runs_in_float32_and_backpropagates(kind: str) -> None:
    logp_new, logp_old, adv, mask, entropy = (x.float() for x in batch(21, equal=False))
    # padding holds -inf log-probabilities and NaN advantages: they must not reach the loss
    logp_new = logp_new.detach().masked_fill(mask == 0, -math.inf).requires_grad_(True)
    logp_old = logp_old.masked_fill(mask == 0, -math.inf)
    adv = adv.masked_fill(mask == 0, math.nan)
    extra = {
        "hapo": {"entropy": entropy},
        "dhpo": {"alpha": "entropy", "entropy": entropy},
        "drpo": {"reward": (adv[:, 0] > 0).float(), "group": torch.tensor([0, 0, 0, 1, 1, 1])},
        "grpo-guard": {"center": True},
    }.get(kind, {})
    loss, stats = policy_loss(logp_new, logp_old, adv, mask, kind=kind, **extra)
    (g,) = torch.autograd.grad(loss, logp_new)
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and torch.all(torch.isfinite(g))
    assert torch.all(g[mask == 0] == 0) and torch.any(g != 0)
    assert all(isinstance(v, float) for v in stats.values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "ppo2"}, "kind: 'ppo2' is not one of"),
        ({"kind": "alp", "clip": 0.2}, "clip: 0.2 is invalid; allowed: a hyper-parameter of 'alp'"),
        ({"kind": "dhpo", "agg": "sum"}, "agg: 'sum' is not one of token-mean, seq-mean"),
        ({"kind": "dhpo", "alpha": 1.5}, "alpha: 1.5 is invalid"),
        ({"kind": "dhpo", "alpha": "entropy"}, "entropy: None is invalid"),
        ({"kind": "hapo", "clip_low": -0.1}, "clip_low: -0.1 is invalid"),
        ({"kind": "hapo", "dual_clip": 1.0}, "dual_clip: 1.0 is invalid"),
        ({"kind": "hapo", "entropy_pivot": 1.5}, "entropy_pivot: 1.5 is invalid"),
        ({"kind": "policyflow", "brownian_coef": -1}, "brownian_coef: -1 is invalid"),
        ({"kind": "drpo", "lam": 0.0}, "lam: 0.0 is invalid"),
        ({"kind": "drpo"}, "reward: None is invalid; allowed: a tensor"),
        ({"kind": "drpo", "reward": torch.ones(3), "group": torch.zeros(B)}, "reward: torch.Size"),
        ({"kind": "hapo", "entropy": torch.ones(B, T + 1)}, "entropy: torch.Size"),
    ],
)
def test_bad_input_is_one_config_error(kwargs: dict, message: str) -> None:
    logp_new, logp_old, adv, mask, _ = batch(16)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        policy_loss(logp_new, logp_old, adv, mask, **kwargs)


def test_shape_mismatch_is_a_config_error() -> None:
    logp_new, logp_old, adv, mask, _ = batch(17)
    with pytest.raises(ConfigError, match="adv: torch.Size"):
        policy_loss(logp_new, logp_old, adv[:, :2], mask)
