r"""DOIT: training-free steering of a diffusion sampler by a Monte-Carlo Doob h-transform.

Target: the reward-tilted law ``p(x₀) e^{r(x₀)/λ} / Z`` from a sampler of ``p``, without
training and without reward gradients. With ``h_t(x) = E[e^{r(x₀)/λ} | x_t = x]`` the tilted
reverse process has the score ``∇log p_t + ∇log h_t``, i.e. the noise prediction
``ε̃ = ε̂ - √(1-ᾱ_t) ∇log h_t``.

**Sampler** (DDIM with stochasticity ``η``; ``ᾱ`` decreasing in noise, ``ᾱ = 1`` clean):
``x̂₀ = (x_t - √(1-ᾱ_t) ε̂)/√ᾱ_t``, ``σ_t = η √((1-ᾱ_{t-1})/(1-ᾱ_t)) √(1 - ᾱ_t/ᾱ_{t-1})``,
``μ(x_t) = √ᾱ_{t-1} x̂₀ + √(1 - ᾱ_{t-1} - σ_t²) ε̂``, ``x_{t-1} = μ + σ_t z``.

**Doob correction** at each step: ``M`` candidates ``x^m = μ + σ_t z_m`` (``z_m ~ N(0, I)``;
antithetic: pairs ``±z``), rewards ``r_m = r(x₀^m)`` of their clean estimates (``x0="mean"``:
the sampler's ``x̂₀`` at the candidate; ``"posterior"``: a draw from ``p(x₀ | x^m)``, exact for
a Gaussian-mixture prior, so ``e^{r_m/λ}`` is an unbiased estimate of ``h(x^m)``),

    w = softmax((r - mean r)/τ),     v = Σ_m w_m z_m / σ_t     (≈ ∇log h_{t-1}(μ)),
    c = (∂μ/∂x_t)ᵀ v                 (a vector-Jacobian product, ≈ ∇_{x_t} log h_t),
    ε̂ ← ε̂ - γ √(1-ᾱ_t) c,

then ``μ`` is recomputed with the corrected ``ε̂``. ``τ = λ`` and ``γ = 1`` target the tilted
law. A constant reward gives ``w = 1/M`` and, with antithetic pairs, ``v = 0`` exactly: the
sampler is unchanged.

**The toy** (:func:`sample`): an analytic diagonal Gaussian mixture prior ``p`` whose noisy
marginals ``p_t = Σ_k π_k N(√ᾱ m_k, ᾱ s_k² + 1 - ᾱ)`` give ``ε̂ = -√(1-ᾱ) ∇log p_t`` in closed
form.

**On the semantic link** (routing method ``"doit"``): ``finalize`` fits such a mixture prior
(EM, diagonal covariances) to the encoder's features ``z`` ``[N·L]`` of the training images.
The deployed model's ``decode(z̃, state)`` treats the received features as a noisy sample of the
prior at the channel's noise level, ``σ_n² = mean(z̃²) 10^{-SNR/10}`` (the state's realised SNR;
``snr_db`` without a state), starts the sampler at ``ᾱ = 1/(1 + σ_n²)`` from ``x = √ᾱ z̃``, runs
``steps`` steered steps to ``ᾱ = 1`` and decodes the result. The reward is black-box: the
classifier head's confidence ``max softmax(classify(decode(x₀)))`` when the model has a head,
else the prior's cluster confidence ``log max_k γ_k(x₀)`` (the posterior of the most likely
mixture component: "this feature vector is a clear instance of one semantic cluster"). The
deployed model is ``conditioned`` so the link hands it the frame's state. The paper works on
D4RL diffusion policies; the Gaussian-mixture feature prior and the SNR-to-time map are ours.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from channels.errors import ConfigError, check_choice, check_flag, check_int, check_real
from semcom.channel_state import ChannelState
from semcom.routing.base import ROUTING, RoutingMethod

X0_MODES = ("posterior", "mean")
LOG2PI = math.log(2.0 * math.pi)


class GaussianMixture:
    """Diagonal Gaussian mixture (float64): weights ``[K]``, means ``[K, D]``, variances ``[K, D]``.

    Examples:
        >>> gm = GaussianMixture(torch.tensor([1.0]), torch.zeros(1, 1), torch.ones(1, 1))
        >>> round(float(gm.log_prob(torch.zeros(1, 1))[0]), 6)  # log N(0; 0, 1)
        -0.918939
    """

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, var: torch.Tensor) -> None:
        self.weights = weights.double() / weights.double().sum()
        self.means, self.var = means.double(), var.double()

    def _parts(self, x: torch.Tensor, ab: float | torch.Tensor) -> torch.Tensor:
        """``log π_k + log N(x; √ᾱ m_k, ᾱ s_k² + 1 - ᾱ)`` ``[B, K]``."""
        ab = torch.as_tensor(ab, dtype=torch.float64)
        mean = ab.sqrt() * self.means
        var = ab * self.var + (1.0 - ab)
        d = x.double()[:, None, :] - mean[None]
        log_n = -0.5 * (d.pow(2) / var + var.log() + LOG2PI).sum(-1)
        return self.weights.log()[None] + log_n

    def log_prob(self, x: torch.Tensor, ab: float = 1.0) -> torch.Tensor:
        """``log p_t(x)`` ``[B]`` of the marginal at ``ᾱ = ab``."""
        return torch.logsumexp(self._parts(x, ab), 1)

    def responsibilities(self, x: torch.Tensor, ab: float = 1.0) -> torch.Tensor:
        """Posterior component probabilities ``[B, K]``."""
        return torch.softmax(self._parts(x, ab), 1)

    def eps(self, x: torch.Tensor, ab: float | torch.Tensor) -> torch.Tensor:
        """``ε̂(x) = -√(1-ᾱ) ∇log p_t(x)`` in closed form (differentiable in ``x``)."""
        ab = torch.as_tensor(ab, dtype=torch.float64)
        gamma = torch.softmax(self._parts(x, ab), 1)  # [B, K]
        var = ab * self.var + (1.0 - ab)
        grad = -(gamma[..., None] * (x.double()[:, None, :] - ab.sqrt() * self.means) / var).sum(1)
        return -(1.0 - ab).sqrt() * grad

    def posterior_sample(
        self, x: torch.Tensor, ab: float | torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """One draw of ``x₀ ~ p(x₀ | x_t = x)`` per row (exact for the mixture)."""
        ab = torch.as_tensor(ab, dtype=torch.float64)
        x = x.double()
        if float(ab) >= 1.0:
            return x
        k = torch.multinomial(self.responsibilities(x, ab), 1, generator=generator)[:, 0]
        m, s2 = self.means[k], self.var[k]
        prec = 1.0 / s2 + ab / (1.0 - ab)
        mean = (m / s2 + ab.sqrt() * x / (1.0 - ab)) / prec
        return mean + prec.rsqrt() * torch.randn(x.shape, generator=generator, dtype=x.dtype)

    @classmethod
    def fit(
        cls, x: torch.Tensor, k: int, iters: int, generator: torch.Generator, floor: float = 1e-4
    ) -> GaussianMixture:
        """EM fit of a diagonal mixture to rows ``x`` ``[M, D]`` (means start at random rows)."""
        x = x.double()
        k = min(k, len(x))
        start = torch.randperm(len(x), generator=generator)[:k]
        gm = cls(torch.ones(k), x[start].clone(), x.var(0, unbiased=False)[None].repeat(k, 1))
        gm.var = gm.var.clamp(min=floor)
        for _ in range(iters):
            resp = gm.responsibilities(x)  # E step
            nk = resp.sum(0) + 1e-12
            means = (resp.T @ x) / nk[:, None]
            var = (resp.T @ x.pow(2)) / nk[:, None] - means.pow(2)
            gm = cls(nk, means, var.clamp(min=floor))
        return gm


def alpha_bars(start: float, steps: int) -> list[float]:
    """``steps + 1`` values from ``ᾱ = start`` up to ``1``, evenly spaced in log-SNR, then 1."""
    lo = math.log(start / (1.0 - start))
    hi = max(lo, math.log(1e4))
    snrs = [lo + (hi - lo) * i / (steps - 1) for i in range(steps)] if steps > 1 else [lo]
    return [1.0 / (1.0 + math.exp(-s)) for s in snrs] + [1.0]


def doob_correction(
    x: torch.Tensor,
    mu_fn: Callable[[torch.Tensor], torch.Tensor],
    sigma: float,
    reward: Callable[[torch.Tensor], torch.Tensor],
    x0_fn: Callable[[torch.Tensor], torch.Tensor],
    candidates: int,
    tau: float,
    antithetic: bool,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c, w)``: the correction ``(∂μ/∂x)ᵀ v`` ``[B, D]`` and the weights ``[B, M]``.

    Args:
        x: current states ``[B, D]``.
        mu_fn: ``x -> μ(x)`` (differentiable).
        sigma: the step's noise scale ``σ_t > 0``.
        reward: clean samples ``[B·M, D]`` -> rewards ``[B·M]`` (no gradient needed).
        x0_fn: candidates ``[B·M, D]`` -> their clean estimates.
        candidates: ``M`` (even with ``antithetic``).
        tau: softmax temperature ``τ > 0``.
        antithetic: draw ``z`` in pairs ``(z, -z)``.
        generator: the candidates' noise.
    """
    with torch.enable_grad():  # the VJP needs a graph even inside a no-grad caller
        xg = x.detach().double().requires_grad_(True)
        mu = mu_fn(xg)
    b, d = mu.shape
    if antithetic:
        half = torch.randn(b, candidates // 2, d, generator=generator, dtype=mu.dtype)
        z = torch.cat([half, -half], 1)
    else:
        z = torch.randn(b, candidates, d, generator=generator, dtype=mu.dtype)
    with torch.no_grad():
        cand = (mu.detach()[:, None] + sigma * z).reshape(b * candidates, d)
        r = reward(x0_fn(cand)).double().reshape(b, candidates)
        w = torch.softmax((r - r.mean(1, keepdim=True)) / tau, 1)
        v = (w[..., None] * z).sum(1) / sigma
    with torch.enable_grad():
        (c,) = torch.autograd.grad(mu, xg, v)
    return c, w


def ddim_step(
    x: torch.Tensor, eps: torch.Tensor, ab: float, ab_prev: float, eta: float
) -> tuple[torch.Tensor, float]:
    """``(μ, σ)`` of the DDIM step ``ᾱ = ab -> ab_prev`` (``ab_prev >= ab``)."""
    x0 = (x - math.sqrt(1.0 - ab) * eps) / math.sqrt(ab)
    sigma = eta * math.sqrt((1.0 - ab_prev) / (1.0 - ab)) * math.sqrt(max(0.0, 1.0 - ab / ab_prev))
    mu = math.sqrt(ab_prev) * x0 + math.sqrt(max(0.0, 1.0 - ab_prev - sigma**2)) * eps
    return mu, sigma


def sample(
    prior: GaussianMixture,
    x: torch.Tensor,
    schedule: list[float],
    generator: torch.Generator,
    reward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    candidates: int = 8,
    tau: float = 0.6,
    gamma: float = 1.0,
    eta: float = 1.0,
    antithetic: bool = True,
    x0: str = "posterior",
) -> torch.Tensor:
    """Run the (steered) sampler from ``x`` ``[B, D]`` at ``ᾱ = schedule[0]`` to ``ᾱ = 1``.

    ``reward=None`` is the plain sampler; the noise of the steps comes from ``generator`` before
    the candidates', so a zero correction leaves the trajectory bit for bit unchanged.
    """
    cand_gen = torch.Generator().manual_seed(
        int(torch.randint(0, 2**62, (1,), generator=generator))
    )
    x = x.double()
    for ab, ab_prev in zip(schedule[:-1], schedule[1:], strict=True):
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        eps = prior.eps(x, ab)
        _, sigma = ddim_step(x, eps, ab, ab_prev, eta)
        if reward is not None and sigma > 0.0:

            def mu_fn(xx: torch.Tensor, ab: float = ab, ab_prev: float = ab_prev) -> torch.Tensor:
                return ddim_step(xx, prior.eps(xx, ab), ab, ab_prev, eta)[0]

            def x0_fn(c: torch.Tensor, ab_prev: float = ab_prev) -> torch.Tensor:
                if x0 == "posterior":
                    return prior.posterior_sample(c, ab_prev, cand_gen)
                return (c - math.sqrt(1.0 - ab_prev) * prior.eps(c, ab_prev)) / math.sqrt(ab_prev)

            c, _ = doob_correction(
                x, mu_fn, sigma, reward, x0_fn, candidates, tau, antithetic, cand_gen
            )
            eps = eps - gamma * math.sqrt(1.0 - ab) * c
        mu, sigma = ddim_step(x, eps, ab, ab_prev, eta)
        x = (mu + sigma * noise).detach()
    return x


class _SteeredDecode:
    """The deployed model's ``decode``: steer the received features, then decode them."""

    def __init__(self, model: nn.Module, decode: Callable[..., torch.Tensor], method: DOIT) -> None:
        self.model, self.decode, self.method = model, decode, method
        fitted = method.fitted
        assert fitted is not None
        self.prior = GaussianMixture(fitted["weights"], fitted["means"], fitted["var"])

    def reward(self, x0: torch.Tensor) -> torch.Tensor:
        if getattr(self.model, "head", None) is not None:
            z = x0.to(torch.float32).reshape(len(x0), self.model.n_features, -1)
            logits = self.model.classify(self.decode(z))
            return torch.softmax(logits, 1).max(1).values.double()
        return self.prior.responsibilities(x0).max(1).values.clamp(min=1e-300).log()

    def __call__(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        m = self.method
        flat = z.detach().reshape(len(z), -1).double()
        snr = (
            torch.full((len(z),), m.snr_db, dtype=torch.float64)
            if state is None
            else state.realised_snr_db().double().cpu()
        )
        noise = flat.pow(2).mean(1).cpu() * 10.0 ** (-snr / 10.0)
        out = torch.empty_like(flat)
        gen = torch.Generator().manual_seed(m.seed)
        for b in range(len(z)):  # each frame starts at its own noise level
            ab = float(1.0 / (1.0 + noise[b].clamp(min=1e-8)))
            x = math.sqrt(ab) * flat[b : b + 1].cpu()
            out[b] = sample(
                self.prior,
                x,
                alpha_bars(ab, m.steps),
                gen,
                reward=self.reward,
                candidates=m.candidates,
                tau=m.tau,
                gamma=m.gamma,
                antithetic=m.antithetic,
                x0=m.x0,
            )[0].to(out.device)
        return self.decode(out.to(z.dtype).reshape(z.shape))


@ROUTING.register(
    "doit",
    description="Receiver-side refinement of the received features by a Gaussian-mixture prior "
    "sampler steered toward a black-box reward with a Monte-Carlo Doob h-transform",
    paper="arXiv:2602.16198",
)
class DOIT(RoutingMethod):
    """DOIT on the received features (module docstring).

    Args:
        components: mixture components of the feature prior (``>= 1``).
        em_iters: EM iterations (``>= 1``).
        steps: sampler steps from the channel's noise level to clean (``>= 1``).
        candidates: Monte-Carlo candidates ``M`` per step (even with ``antithetic``).
        tau: softmax temperature ``τ`` (= ``λ`` of the tilted target).
        gamma: correction scale ``γ >= 0`` (0: the unsteered prior sampler).
        antithetic: antithetic candidate pairs.
        x0: ``"posterior"`` or ``"mean"`` clean estimate of a candidate.
        snr_db: the SNR used when ``decode`` gets no state.
        seed: seed of the sampler (``decode`` is deterministic).
        calibration: at most this many training images for the prior.
    """

    def __init__(
        self,
        components: int = 8,
        em_iters: int = 30,
        steps: int = 10,
        candidates: int = 8,
        tau: float = 0.6,
        gamma: float = 1.0,
        antithetic: bool = True,
        x0: str = "posterior",
        snr_db: float = 10.0,
        seed: int = 0,
        calibration: int = 512,
    ) -> None:
        self.components = check_int("components", components, 1, 256)
        self.em_iters = check_int("em_iters", em_iters, 1, 10_000)
        self.steps = check_int("steps", steps, 1, 1000)
        self.antithetic = check_flag("antithetic", antithetic)
        allowed = "an even integer in 2..4096" if self.antithetic else None
        self.candidates = check_int("candidates", candidates, 1, 4096, allowed=allowed)
        if self.antithetic and self.candidates % 2:
            raise ConfigError(f"candidates: {candidates!r} is invalid; allowed: {allowed}")
        self.tau = check_real("tau", tau, 0.0, 1e6, open_low=True)
        self.gamma = check_real("gamma", gamma, 0.0, 100.0)
        self.x0 = check_choice("x0", x0, X0_MODES)
        self.snr_db = check_real("snr_db", snr_db, -50.0, 300.0)
        self.seed = check_int("seed", seed, 0)
        self.calibration = check_int("calibration", calibration, 1)
        self.fitted: dict[str, torch.Tensor] | None = None

    def finalize(
        self, model: torch.nn.Module, images: torch.Tensor, states: ChannelState | None
    ) -> None:
        was = model.training
        model.eval()
        with torch.no_grad():
            x = images[: self.calibration].to(next(model.parameters()).device)
            z = model.encode(x).reshape(len(x), -1).cpu()
        model.train(was)
        gm = GaussianMixture.fit(
            z, self.components, self.em_iters, torch.Generator().manual_seed(self.seed)
        )
        self.fitted = {"weights": gm.weights, "means": gm.means, "var": gm.var}

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.fitted is None:
            raise ConfigError(
                "routing: doit has no feature prior; allowed: call finalize (or "
                "load_state_dict) before apply"
            )
        deployed = copy.deepcopy(model)
        features = deployed._features
        deployed._features = lambda x, state=None: features(x)
        deployed.decode = _SteeredDecode(deployed, deployed.decode, self)
        deployed.conditioned = True
        return deployed

    def state_dict(self) -> dict[str, Any]:
        return {"fitted": self.fitted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fitted = state["fitted"]
