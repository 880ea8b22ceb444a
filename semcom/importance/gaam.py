"""GAAM: Gaussian Adaptive Attention and its Importance Factor (Ioannides et al.,
arXiv:2401.11143).

GAAM replaces query-key attention by a learnable product of Gaussians over the normalised
values along one axis. We put it on the **feature axis** of the bottleneck ``z`` [B, N, L]
(the channel axis of an auto-encoder bottleneck), so it works with every codec
(``cnn``, ``mlp``, ``vit``). The features are split into ``heads`` contiguous chunks, each with
its own parameters. For a chunk ``c`` of ``n_c`` features, a column ``l`` and one image:

    μ = mean_{i∈c} z_{il},   σ² = var_{i∈c} z_{il} (population) + ε,   ε = 1e-8
    y_{ik} = (z_{il} − (μ + δ_k)) / σ                                      k = 1..G
    a_{il} = Π_k N(y_{ik}; 0, c_k²) / Σ_{i'∈c} Π_k N(y_{i'k}; 0, c_k²)        (>= 0, sums to 1)

computed as a softmax of ``−Σ_k y_{ik}² / (2 c_k²)`` (the Gaussians' normalising constants
cancel). The offsets ``δ_k`` (value units) and the widths ``c_k`` are GAAM's parameters.

**Importance Factor.** The paper's definition was not retrieved. The stand-in (labelled as such)
is the mean attention weight of each feature over the columns, ``ā_i = (1/L) Σ_l a_{il}``
(per image; it sums to 1 over each chunk), and ``IF_i = E_x[ā_i] / heads`` (sums to 1).

**What is fitted, on what.** The paper trains GAAM end to end inside a task model. Our codec is
trained and frozen, so only GAAM's ``2·heads·G`` parameters are fitted, on the features of
``fit_batch`` calibration images (a seeded random subset). GAAM acts as the feature selector in
front of the frozen decoder: per image and chunk it keeps the ``k_c = max(1, round(budget·n_c))``
features with the largest ``ā_i`` (the others are zeroed, as the link zero-fills an unsent
feature), and the fit minimises

    J(δ, log c) = mean over the fit images of MSE(x, decode(z ⊙ keep)).

``J`` is piecewise constant in the parameters (it changes only when the selection does), so it
is minimised derivative-free: the best point of a grid (offsets ``{0, ±0.5, ±1, ±2, ±3}`` times
the features' mean spread, widths ``{0.5, 1, 2}·sqrt(G)``, the same for every head and Gaussian)
starts a Nelder-Mead search (``scipy.optimize.minimize``) of at most ``steps`` evaluations.

Cost: one encoder pass per image, plus ``27 + steps`` decoder passes of ``fit_batch`` images (no
backward pass), independent of the calibration-set size.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.optimize import minimize
from torch import nn

from channels.errors import ConfigError, check_int, check_real, fail
from semcom.importance.base import (
    IMPORTANCE,
    ImportanceEstimator,
    as_images,
    check_model,
    encode_checked,
    eval_mode,
    model_dtype_device,
    normalize_importance,
    per_image_mse,
)
from semcom.importance.reduction import top_k_mask

EPS = 1e-8
OFFSET_GRID = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)
"""Starting offsets tried, in units of the features' mean spread (std over the feature axis)."""
WIDTH_GRID = (0.5, 1.0, 2.0)
"""Starting widths tried: the product of the ``G`` Gaussians has width ``c / sqrt(G)``."""


class GaussianAdaptiveAttention(nn.Module):
    """Multi-head Gaussian adaptive attention along the feature axis of ``z`` [B, N, L].

    Args:
        heads: number of contiguous feature chunks, each with its own ``δ`` and ``c``.
        gaussians: ``G``, Gaussians multiplied per head.

    The parameters start at ``δ = 0`` and ``c = 1`` (float64 buffers: they are fitted
    derivative-free, see the module docstring).
    """

    def __init__(self, heads: int, gaussians: int) -> None:
        super().__init__()
        self.heads = heads
        self.register_buffer("offsets", torch.zeros(heads, gaussians, dtype=torch.float64))
        self.register_buffer("scales", torch.ones(heads, gaussians, dtype=torch.float64))

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

    def factor(self, z: torch.Tensor) -> torch.Tensor:
        """Per-image mean weight ``ā_i = (1/L) Σ_l a_{il}``, ``[B, N]`` (sums to 1 per chunk)."""
        return self.forward(z).mean(dim=2)

    def selection(self, z: torch.Tensor, budget: float) -> torch.Tensor:
        """Bool ``[B, N]``: the ``max(1, round(budget·n_c))`` largest ``ā_i`` of each chunk."""
        abar = self.factor(z)
        keep = torch.zeros_like(abar, dtype=torch.bool)
        for idx in self.chunks(z.shape[1]):
            idx = idx.to(abar.device)
            keep[:, idx] = top_k_mask(abar[:, idx], max(1, round(budget * len(idx))))
        return keep

    @torch.no_grad()
    def set_vector(self, theta: np.ndarray) -> None:
        """Load ``θ = (δ, log c)`` (flattened, ``2·heads·G`` values)."""
        half = self.offsets.numel()
        theta = torch.as_tensor(np.asarray(theta, dtype=np.float64))
        self.offsets.copy_(theta[:half].reshape(self.offsets.shape))
        self.scales.copy_(theta[half:].exp().reshape(self.scales.shape))

    def vector(self) -> np.ndarray:
        """``θ = (δ, log c)``, flattened float64."""
        return torch.cat([self.offsets.flatten(), self.scales.log().flatten()]).cpu().numpy()


@IMPORTANCE.register(
    "gaam",
    description="Gaussian adaptive attention over the features, fitted as the feature selector "
    "before the frozen decoder; Importance Factor = mean attention weight",
    paper="arXiv:2401.11143",
)
class GaamImportance(ImportanceEstimator):
    """GAAM Importance Factor ``IF_i = E_x[(1/L) Σ_l a_{il}] / heads`` of a fitted GAAM.

    Args:
        batch_size: images per encoder pass.
        heads: feature chunks with their own parameters, ``1 <= heads <= N / 2`` (default 1).
        gaussians: Gaussians per head (default 2).
        budget: fraction of each chunk's features the selector keeps, in (0, 1) (default 0.5).
        steps: most objective evaluations of the Nelder-Mead search after the grid (default 60).
        fit_batch: calibration images the objective is measured on (default 64; all when fewer).
        seed: seed of the choice of those images (default 0).

    Attributes (after ``fit``):
        module_: the fitted :class:`GaussianAdaptiveAttention`.
        grid_losses_: the objective at each grid point (offsets major, widths minor).
        loss_: the objective at the fitted parameters (at most the best grid value).

    Examples:
        >>> import torch
        >>> from semcom.models import build_model
        >>> _ = torch.manual_seed(0)
        >>> mlp = build_model("mlp", 4, L=2).eval()
        >>> x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        >>> est = GaamImportance(steps=5).fit(mlp, x)
        >>> est.importances_.shape, round(float(est.importances_.sum()), 12)
        ((4,), 1.0)
        >>> bool(est.loss_ <= min(est.grid_losses_))
        True
    """

    name = "gaam"

    def __init__(
        self,
        batch_size: int = 256,
        heads: int = 1,
        gaussians: int = 2,
        budget: float = 0.5,
        steps: int = 60,
        fit_batch: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size)
        self.heads = check_int("heads", heads, 1)
        self.gaussians = check_int("gaussians", gaussians, 1)
        self.budget = check_real("budget", budget, 0, 1, open_low=True, open_high=True)
        self.steps = check_int("steps", steps, 1)
        self.fit_batch = check_int("fit_batch", fit_batch, 1)
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
        """Fit GAAM as the selector on ``images`` [B, C, H, W], then its Importance Factor."""
        check_model(model)
        images = as_images(images)
        n = int(model.n_features)
        if self.heads > n // 2:
            raise fail("heads", self.heads, f"an integer in [1, {max(1, n // 2)}] for N = {n}")
        dtype, device = model_dtype_device(model, images)
        module = GaussianAdaptiveAttention(self.heads, self.gaussians).to(device)
        with eval_mode(model), torch.no_grad():
            z_all = self._encode_all(model, images)
            gen = torch.Generator().manual_seed(self.seed)
            pick = torch.randperm(images.shape[0], generator=gen)[: self.fit_batch]
            z_fit = z_all[pick.to(z_all.device)]
            x_fit = images[pick].to(device=device, dtype=dtype)

            def objective(theta: np.ndarray) -> float:
                module.set_vector(theta)
                keep = module.selection(z_fit, self.budget)
                return float(per_image_mse(x_fit, model.decode(z_fit * keep.unsqueeze(-1))).mean())

            spread = float(z_all.to(torch.float64).std(dim=1).mean())
            size = module.offsets.numel()
            starts = [
                np.concatenate([np.full(size, d * spread), np.full(size, math.log(w))])
                + np.concatenate([np.zeros(size), np.full(size, 0.5 * math.log(self.gaussians))])
                for d in OFFSET_GRID
                for w in WIDTH_GRID
            ]
            self.grid_losses_ = [objective(theta) for theta in starts]
            best = starts[int(np.argmin(self.grid_losses_))]
            result = minimize(
                objective,
                best,
                method="Nelder-Mead",
                options={"maxfev": self.steps, "initial_simplex": _simplex(best, spread)},
            )
            theta = result.x if result.fun <= min(self.grid_losses_) else best
            self.loss_ = min(float(result.fun), min(self.grid_losses_))
            module.set_vector(theta)
            self.module_ = module
            scores = torch.cat(
                [
                    module.factor(z_all[s : s + self.batch_size])
                    for s in range(0, z_all.shape[0], self.batch_size)
                ]
            )
        self.raw_importances_ = (scores.mean(dim=0) / self.heads).cpu().numpy()
        self.importances_ = normalize_importance(self.raw_importances_)
        self.n_images_ = int(images.shape[0])
        return self

    def token_scores(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        """Per-image mean attention weight ``ā_i``, float64 ``[B, N]`` (higher = more important)."""
        if not hasattr(self, "module_"):
            raise ConfigError("gaam: the Gaussian attention is not fitted; call fit() first")
        check_model(model)
        with eval_mode(model), torch.no_grad():
            return self.module_.factor(self._encode_all(model, as_images(x)))


def _simplex(theta: np.ndarray, spread: float) -> np.ndarray:
    """Nelder-Mead start: ``θ`` and one step per coordinate (a spread for δ, ×1.5 for c)."""
    half = theta.size // 2
    steps = np.concatenate([np.full(half, max(spread, 1e-3)), np.full(half, math.log(1.5))])
    return np.vstack([theta, theta + np.diag(steps)])
