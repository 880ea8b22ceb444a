"""GAAM: Gaussian Adaptive Attention and its Importance Factor (Ioannides et al.,
arXiv:2401.11143).

GAAM replaces query-key attention by a learnable product of Gaussians over the normalised
values along one axis. We put it on the **feature axis** of the bottleneck ``z`` [B, N, L]
(the card's "channel axis of an auto-encoder bottleneck"), so it works with every codec
(``cnn``, ``mlp``, ``vit``). The tokens are split into ``heads`` contiguous chunks, each with its
own parameters. For a chunk ``c`` of ``n_c`` features, a column ``l`` and one image:

    μ = mean_{i∈c} z_{il},   σ² = var_{i∈c} z_{il} (population) + ε,   ε = 1e-8
    y_{ik} = (z_{il} − (μ + δ_k)) / σ                                      k = 1..G
    a_{il} = Π_k N(y_{ik}; 0, c_k²) / Σ_{i'∈c} Π_k N(y_{i'k}; 0, c_k²)        (>= 0, sums to 1)

computed as a softmax of ``−Σ_k y_{ik}² / (2 c_k²)`` (the Gaussians' normalising constants
cancel). ``δ_k`` (mean offsets, start 0) and ``c_k`` (scales, start ``exp(N(0, 1))`` drawn from
``seed``) are the learnable parameters.

**What is fitted, on what.** The paper trains GAAM end to end inside a task model. Our codec is
trained and frozen, so only GAAM's ``2·heads·G`` parameters are fitted, on the calibration
images' features. GAAM acts as a soft feature selector in front of the frozen decoder, under a
budget of ``budget·n_c`` features per chunk:

    g_{il} = min(1, budget · n_c · a_{il}),      minimise  E_x MSE(x, decode(z ⊙ g))

with Adam, ``steps`` steps on random minibatches of ``fit_batch`` images. The gate can pass at
most ``budget·n_c`` features per chunk and column, so the fit must put the attention mass on the
features whose loss hurts the reconstruction most. The model's parameters get no gradient.

**Importance Factor.** The paper's definition was not retrieved. The stand-in (labelled as such)
is the mean attention weight of each feature, averaged over the columns and the images:
``IF_i = E_x (1/L) Σ_l a_{il} / heads`` (sums to 1).

Cost: one encoder pass per image, plus ``steps`` decoder forward and backward passes of
``fit_batch`` images (independent of the calibration-set size).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from channels.errors import ConfigError, fail
from semcom.importance.base import (
    IMPORTANCE,
    ImportanceEstimator,
    as_images,
    check_model,
    check_positive_int,
    encode_checked,
    eval_mode,
    model_dtype_device,
    normalize_importance,
    per_image_mse,
)

EPS = 1e-8


class GaussianAdaptiveAttention(nn.Module):
    """Multi-head Gaussian adaptive attention along the feature axis of ``z`` [B, N, L].

    Args:
        heads: number of contiguous feature chunks, each with its own ``δ`` and ``c``.
        gaussians: ``G``, Gaussians multiplied per head.
        generator: draws the initial scales ``c = exp(N(0, 1))``.
    """

    def __init__(self, heads: int, gaussians: int, generator: torch.Generator) -> None:
        super().__init__()
        self.heads = heads
        self.offsets = nn.Parameter(torch.zeros(heads, gaussians, dtype=torch.float64))
        init = torch.randn(heads, gaussians, generator=generator, dtype=torch.float64)
        self.scales = nn.Parameter(init.exp())

    def chunks(self, n: int) -> list[torch.Tensor]:
        """Feature indices of each head (``torch.tensor_split`` of ``0..n-1``)."""
        return list(torch.tensor_split(torch.arange(n), self.heads))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Attention weights ``a`` ``[B, N, L]`` (float64), summing to 1 over each chunk."""
        z = z.to(torch.float64)
        parts = []
        for h, idx in enumerate(self.chunks(z.shape[1])):
            x = z[:, idx.to(z.device)]  # [B, n_c, L]
            mu = x.mean(dim=1, keepdim=True)
            sigma = (x.var(dim=1, keepdim=True, correction=0) + EPS).sqrt()
            y = (x.unsqueeze(-1) - mu.unsqueeze(-1) - self.offsets[h]) / sigma.unsqueeze(-1)
            logits = -(y.pow(2) / (2.0 * self.scales[h].pow(2))).sum(dim=-1)  # [B, n_c, L]
            parts.append(torch.softmax(logits, dim=1))
        return torch.cat(parts, dim=1)

    def gate(self, z: torch.Tensor, budget: float) -> torch.Tensor:
        """Soft keep gate ``g = min(1, budget · n_c · a)`` ``[B, N, L]`` (float64)."""
        a = self.forward(z)
        sizes = torch.cat([torch.full((len(i),), float(len(i))) for i in self.chunks(z.shape[1])])
        return (budget * sizes.to(a)[None, :, None] * a).clamp(max=1.0)


def _fraction(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise fail(field, value, "a number in (0, 1)")
    if not 0.0 < float(value) < 1.0:
        raise fail(field, value, "a number in (0, 1)")
    return float(value)


@IMPORTANCE.register(
    "gaam",
    description="Gaussian adaptive attention over the features, fitted as a budgeted soft "
    "selector before the frozen decoder; Importance Factor = mean attention weight",
    paper="arXiv:2401.11143",
)
class GaamImportance(ImportanceEstimator):
    """GAAM Importance Factor ``IF_i = E_x (1/L) Σ_l a_{il} / heads`` of a fitted GAAM gate.

    Args:
        batch_size: images per encoder pass.
        heads: feature chunks with their own parameters, ``1 <= heads <= N / 2`` (default 1).
        gaussians: Gaussians per head (default 2).
        budget: fraction of each chunk's features the gate may pass, in (0, 1) (default 0.5).
        steps: optimiser steps (default 30).
        lr: Adam learning rate (default 0.05).
        fit_batch: images per optimiser step (default 32; all images when fewer).
        seed: seed of the initial scales and of the minibatches (default 0).

    Attributes (after ``fit``):
        module_: the fitted :class:`GaussianAdaptiveAttention`.
        loss_history_: the minibatch loss at every step.

    Examples:
        >>> import torch
        >>> from semcom.models import build_model
        >>> _ = torch.manual_seed(0)
        >>> mlp = build_model("mlp", 4, L=2).eval()
        >>> x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        >>> est = GaamImportance(steps=5).fit(mlp, x)
        >>> est.importances_.shape, round(float(est.importances_.sum()), 12)
        ((4,), 1.0)
    """

    name = "gaam"

    def __init__(
        self,
        batch_size: int = 256,
        heads: int = 1,
        gaussians: int = 2,
        budget: float = 0.5,
        steps: int = 30,
        lr: float = 0.05,
        fit_batch: int = 32,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size)
        self.heads = check_positive_int("heads", heads)
        self.gaussians = check_positive_int("gaussians", gaussians)
        self.budget = _fraction("budget", budget)
        self.steps = check_positive_int("steps", steps)
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
            raise fail("lr", lr, "a finite number > 0")
        self.lr = float(lr)
        self.fit_batch = check_positive_int("fit_batch", fit_batch)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise fail("seed", seed, "an integer >= 0")
        self.seed = int(seed)

    def _encode_all(self, model: Any, images: torch.Tensor) -> torch.Tensor:
        dtype, device = model_dtype_device(model, images)
        with torch.no_grad():
            return torch.cat(
                [
                    encode_checked(model, images[s : s + self.batch_size].to(device, dtype))
                    for s in range(0, images.shape[0], self.batch_size)
                ]
            )

    def fit(self, model: Any, images: Any) -> GaamImportance:
        """Fit the GAAM gate on ``images`` [B, C, H, W], then its Importance Factor."""
        check_model(model)
        images = as_images(images)
        n = int(model.n_features)
        if self.heads > n // 2:
            raise fail("heads", self.heads, f"an integer in [1, {max(1, n // 2)}] for N = {n}")
        dtype, device = model_dtype_device(model, images)
        gen = torch.Generator().manual_seed(self.seed)
        module = GaussianAdaptiveAttention(self.heads, self.gaussians, gen).to(device)
        opt = torch.optim.Adam(module.parameters(), lr=self.lr)
        history = []
        with eval_mode(model):
            z_all = self._encode_all(model, images)
            batch = min(self.fit_batch, images.shape[0])
            for _ in range(self.steps):
                idx = torch.randperm(images.shape[0], generator=gen)[:batch]
                z = z_all[idx.to(z_all.device)]
                x = images[idx].to(device=device, dtype=dtype)
                with torch.enable_grad():
                    gated = (z.to(torch.float64) * module.gate(z, self.budget)).to(dtype)
                    loss = per_image_mse(x, model.decode(gated)).mean()
                    grads = torch.autograd.grad(loss, list(module.parameters()))
                for p, g in zip(module.parameters(), grads, strict=True):
                    p.grad = g
                opt.step()
                history.append(float(loss.detach()))
            self.module_ = module
            scores = torch.cat(
                [
                    self._factor(z_all[s : s + self.batch_size])
                    for s in range(0, z_all.shape[0], self.batch_size)
                ]
            )
        self.loss_history_ = history
        self.raw_importances_ = scores.mean(dim=0).cpu().numpy()
        self.importances_ = normalize_importance(self.raw_importances_)
        self.n_images_ = int(images.shape[0])
        return self

    @torch.no_grad()
    def _factor(self, z: torch.Tensor) -> torch.Tensor:
        return self.module_(z).mean(dim=2) / self.heads

    def token_scores(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        """Per-image Importance Factor ``(1/L) Σ_l a_{il} / heads``, float64 ``[B, N]``."""
        if not hasattr(self, "module_"):
            raise ConfigError("gaam: the Gaussian attention is not fitted; call fit() first")
        check_model(model)
        with eval_mode(model):
            return self._factor(self._encode_all(model, as_images(x)))
