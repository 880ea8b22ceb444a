"""DOIT: analytic mixture score against SciPy, constant reward leaves the sampler unchanged,
1-D two-mode tilted masses within a Monte-Carlo interval, and the link attachment's contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.channel_state import ChannelState
from semcom.data import load_dataset
from semcom.models import build_model
from semcom.registry import all_methods
from semcom.routing import DOIT, build_routing
from semcom.routing.doit import GaussianMixture, alpha_bars, doob_correction, sample

pytestmark = pytest.mark.usefixtures("one_thread_module")

GM = GaussianMixture(
    torch.tensor([0.5, 0.5]), torch.tensor([[-2.0], [2.0]]), torch.tensor([[0.09], [0.09]])
)


def test_mixture_eps_is_the_scaled_score_of_scipy_density() -> None:
    ab = 0.3
    x = np.linspace(-3, 3, 13)

    def logp(v: np.ndarray) -> np.ndarray:
        var = ab * 0.09 + 1 - ab
        return np.log(
            0.5 * stats.norm.pdf(v, -2 * math.sqrt(ab), math.sqrt(var))
            + 0.5 * stats.norm.pdf(v, 2 * math.sqrt(ab), math.sqrt(var))
        )

    h = 1e-5
    score = (logp(x + h) - logp(x - h)) / (2 * h)
    eps = GM.eps(torch.tensor(x)[:, None], ab)[:, 0].numpy()
    np.testing.assert_allclose(eps, -math.sqrt(1 - ab) * score, atol=1e-6)


def test_constant_reward_uniform_weights_zero_correction_unchanged_sampler() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 1, generator=gen, dtype=torch.float64)
    c, w = doob_correction(
        x,
        lambda v: 0.9 * v + v.pow(3),
        0.3,
        lambda x0: torch.full((len(x0),), 7.0),
        lambda v: v,
        candidates=8,
        tau=0.6,
        antithetic=True,
        generator=gen,
    )
    assert torch.equal(w, torch.full((5, 8), 1 / 8, dtype=w.dtype))
    assert torch.count_nonzero(c) == 0
    ab = alpha_bars(1e-2, 8)
    start = torch.randn(64, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    plain = sample(GM, start, ab, torch.Generator().manual_seed(2))
    steered = sample(
        GM, start, ab, torch.Generator().manual_seed(2), reward=lambda v: torch.ones(len(v))
    )
    assert torch.equal(plain, steered)


def test_tilted_mode_masses_match_within_monte_carlo_interval() -> None:
    n, lam = 1000, 1.0
    ab = alpha_bars(1e-3, 30)
    gen = torch.Generator().manual_seed(0)
    start = math.sqrt(1 - ab[0]) * torch.randn(n, 1, generator=gen, dtype=torch.float64)
    x = sample(GM, start, ab, gen, reward=lambda v: (v[:, 0] > 0).double(), candidates=16, tau=lam)
    frac = float((x[:, 0] > 0).double().mean())
    target = 0.5 * math.e ** (1 / lam) / (0.5 + 0.5 * math.e ** (1 / lam))  # p_k e^{r_k/λ}/Z
    assert abs(frac - target) < 3.3 * math.sqrt(target * (1 - target) / n)
    plain = sample(GM, start, ab, torch.Generator().manual_seed(0))
    assert abs(float((plain[:, 0] > 0).double().mean()) - 0.5) < 3.3 * math.sqrt(0.25 / n)


def test_link_attachment_contract() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 2).eval()
    x = load_dataset("digits", "train").images[:64]
    method = build_routing("doit", {"components": 3, "steps": 3, "candidates": 4})
    method.finalize(model, x, None)
    deployed = method.apply(model)
    assert deployed.conditioned
    xt = x[:4]
    state = ChannelState.constant(0.0, "awgn", 4)
    with torch.no_grad():
        z = deployed.encode(xt, state)
        torch.testing.assert_close(z, model.encode(xt))
        a, b = deployed.decode(z, state), deployed.decode(z, state)
        assert torch.equal(a, b)  # deterministic
        assert not torch.equal(a, model.decode(z))  # the refinement changes the output
        assert not torch.equal(a, deployed.decode(z, ChannelState.constant(20.0, "awgn", 4)))
        fresh = DOIT(components=3, steps=3, candidates=4)
        fresh.load_state_dict(method.state_dict())
        assert torch.equal(fresh.apply(model).decode(z, state), a)
    info = {m.name: m for m in all_methods() if m.family == "routing"}["doit"]
    assert info.paper == "arXiv:2602.16198"
    for option, value in {"candidates": 3, "tau": 0.0, "x0": "mode", "steps": 0}.items():
        with pytest.raises(ConfigError) as err:
            build_routing("doit", {option: value})
        assert str(err.value).startswith(f"routing_options.{option}: {value!r} is invalid")
    with pytest.raises(ConfigError, match="finalize"):
        DOIT().apply(model)
