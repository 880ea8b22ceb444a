"""Adaptive Sparse ViT (Liu, Wu and Guo, IJCAI 2022, arXiv:2209.13802).

The paper scores the tokens of a ViT by the class token's attention, weighting each head per
token by the norm of that head's output, and prunes with a learnable threshold trained under a
budget loss, so that the number of kept tokens varies per image.

**Score.** Our ViT has no class token. The stand-in (labelled as such) is the *mean query*: the
attention row of a virtual query equal to the average of all query rows,
``ā_h[j] = (1/N) Σ_i A_h[i, j]``. Like the class row it is a distribution over the ``N`` tokens.
For block ``l`` with heads ``h = 1..H``:

    o_h      = A_h v_h                                   (head output, [N, d_h])
    w_{h,j}  = ||o_{h,j}|| / Σ_h' ||o_{h',j}||           (head importance of token j)
    s_j      = (1/|layers|) Σ_{l ∈ layers} Σ_h w_{h,j} ā_h[j]        (per image)
    w̃_j      = E_x[s_j]                                  (raw importance)

With equal head norms ``w_{h,j} = 1/H`` and ``s_j`` is the head-mean of the mean-query
attention.

**Threshold.** Scores are compared on the relative scale ``r_j = N s_j`` (1 = a uniform share).
A token is kept when ``r_j > θ``. In training the keep mask is the straight-through gate

    m_j = hard(σ((r_j − θ)/τ))   forward: 1[r_j > θ];   backward: ∂σ((r_j − θ)/τ)/∂θ

and ``θ`` minimises the budget loss ``|mean(m) − ρ|`` (the paper's
``|FLOPs − ρ FLOPs_full|_1``, with the count of sent features in place of FLOPs: here a kept
token costs channel uses, not compute). Our codec is trained and frozen, so the task and
distillation terms of the paper's loss are constant and dropped. ``θ`` is fitted on the
calibration images' scores with Adam, cosine-decayed learning rate, from ``θ = 1``.

``adaptive_keep`` returns the per-image mask ``r_j > θ`` (a variable count per image, the
paper's inference rule). ``reduce(model, images, keep)`` is the fixed-budget form the link
uses: the ``keep`` highest-scoring features per image, the others dropped (zero).

Cost: one encoder pass per image, plus ``steps`` scalar optimiser steps on the ``B·N`` scores.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from channels.errors import ConfigError, check_int, fail
from semcom.importance.base import (
    IMPORTANCE,
    ImportanceEstimator,
    as_images,
    check_model,
    encode_checked,
    eval_mode,
    model_dtype_device,
    normalize_importance,
)
from semcom.importance.reduction import Reduction, reduce_in_batches, top_k_mask
from semcom.importance.token_graph import require_attention_model
from semcom.importance.vit_trace import (
    check_layers,
    head_outputs,
    resolve_layers,
    trace,
)


def head_weighted_attention(attn: torch.Tensor, head_out: torch.Tensor) -> torch.Tensor:
    """``s_j = Σ_h w_{h,j} ā_h[j]`` in float64, ``[B, N]``.

    Args:
        attn: attention ``A`` ``[B, H, N, N]`` (rows sum to 1).
        head_out: head outputs ``o = A v`` ``[B, H, N, d_h]``.

    ``ā_h = (1/N) Σ_i A_h[i, :]`` is the mean-query stand-in for the class-token row and
    ``w_{h,j} = ||o_{h,j}|| / Σ_h ||o_{h,j}||`` the token-level head importance.
    """
    mean_query = attn.to(torch.float64).mean(dim=2)  # [B, H, N]
    norms = head_out.to(torch.float64).norm(dim=-1)  # [B, H, N]
    head_w = norms / norms.sum(dim=1, keepdim=True).clamp_min(1e-300)
    return (head_w * mean_query).sum(dim=1)


def threshold_gate(r: torch.Tensor, theta: torch.Tensor, temperature: float) -> torch.Tensor:
    """Straight-through keep mask: forward ``1[r > θ]``, gradient of ``σ((r − θ)/τ)``."""
    soft = torch.sigmoid((r - theta) / temperature)
    hard = (soft > 0.5).to(soft.dtype)
    return hard - soft.detach() + soft


def budget_loss(mask: torch.Tensor, target: float) -> torch.Tensor:
    """``|mean(mask) − ρ|``: the L1 distance of the kept fraction to the target ``ρ``."""
    return (mask.mean() - target).abs()


def fit_threshold(
    r: torch.Tensor,
    target: float,
    temperature: float = 0.1,
    steps: int = 200,
    lr: float = 0.05,
    theta0: float = 1.0,
) -> tuple[float, list[float]]:
    """Fit ``θ`` by minimising :func:`budget_loss` of :func:`threshold_gate` on scores ``r``.

    Adam on the scalar ``θ``, learning rate ``lr · (1 + cos(π t / steps)) / 2`` at step ``t``.

    Returns:
        ``(θ, kept)``: the fitted threshold and the kept fraction ``mean(1[r > θ])`` before
        each step and after the last (``steps + 1`` values).

    Examples:
        >>> r = torch.linspace(0.0, 2.0, 101, dtype=torch.float64)
        >>> theta, kept = fit_threshold(r, target=0.3)
        >>> round(kept[0], 3), round(kept[-1], 3)       # from theta = 1 (half kept) to 30%
        (0.495, 0.297)
    """
    r = r.detach().reshape(-1).to(torch.float64)
    theta = torch.tensor(float(theta0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr, eps=1e-300)
    kept = []
    for t in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * t / steps))
        mask = threshold_gate(r, theta, temperature)
        kept.append(float(mask.detach().mean()))
        loss = budget_loss(mask, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    kept.append(float((r > theta.detach()).to(torch.float64).mean()))
    return float(theta.detach()), kept


def _positive_float(field: str, value: Any, upper: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise fail(field, value, f"a number in (0, {upper:g})" if upper < math.inf else "> 0")
    value = float(value)
    if not (0.0 < value < upper) or not math.isfinite(value):
        raise fail(field, value, f"a number in (0, {upper:g})" if upper < math.inf else "> 0")
    return value


@IMPORTANCE.register(
    "adaptive-sparse-vit",
    description="Head-importance-weighted attention of a mean query (class-token stand-in); "
    "keep threshold learned under a budget loss",
    paper="arXiv:2209.13802",
)
class AdaptiveSparseViTImportance(ImportanceEstimator):
    """Adaptive Sparse ViT scores ``s_j = Σ_h w_{h,j} ā_h[j]`` and a learned keep threshold.

    Args:
        batch_size: images per encoder pass.
        layers: blocks whose scores are averaged: ``"last"`` (default), ``"all"`` or a block
            number ``1..depth``.
        target: kept fraction ``ρ`` in (0, 1) that the budget loss aims at (default 0.5).
        temperature: ``τ`` of the gate on the relative scale ``r = N s`` (default 0.1).
        steps: optimiser steps for ``θ`` (default 200).
        lr: Adam's peak learning rate for ``θ`` (default 0.05).

    Attributes (after ``fit``):
        threshold_: fitted ``θ`` (relative scale: 1 = uniform share ``1/N``).
        kept_fraction_: fraction of the calibration features with ``r > θ``.
        budget_history_: kept fraction during the fit.

    Examples:
        >>> import torch
        >>> from semcom.models import build_model
        >>> _ = torch.manual_seed(0)
        >>> vit = build_model("vit", 16, dim=16, heads=2, depth=1).eval()
        >>> x = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(1))
        >>> est = AdaptiveSparseViTImportance(target=0.25).fit(vit, x)
        >>> est.kept_fraction_                     # 32 of the 8 x 16 features
        0.25
        >>> est.reduce(vit, x, keep=4).kept_per_image.tolist() == [4] * 8
        True
    """

    name = "adaptive-sparse-vit"
    models = ("vit",)  # reads the encoder's attention

    def __init__(
        self,
        batch_size: int = 256,
        layers: str | int = "last",
        target: float = 0.5,
        temperature: float = 0.1,
        steps: int = 200,
        lr: float = 0.05,
    ) -> None:
        super().__init__(batch_size)
        self.layers = check_layers(layers)
        self.target = _positive_float("target", target, 1.0)
        self.temperature = _positive_float("temperature", temperature)
        self.steps = check_int("steps", steps, 1)
        self.lr = _positive_float("lr", lr)

    def token_scores(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        """Per-image scores ``s`` float64 ``[B, N]`` (higher = more important)."""
        tokens, weights = trace(model, x)
        outs = head_outputs(model, tokens, weights)
        picked = resolve_layers(self.layers, len(weights))
        return sum(head_weighted_attention(weights[l], outs[l]) for l in picked) / len(picked)

    def _all_scores(self, model: Any, images: Any) -> torch.Tensor:
        check_model(model)
        require_attention_model(model)
        images = as_images(images)
        dtype, device = model_dtype_device(model, images)
        with eval_mode(model):
            parts = [
                self.token_scores(model, images[s : s + self.batch_size].to(device, dtype))
                for s in range(0, images.shape[0], self.batch_size)
            ]
        return torch.cat(parts).cpu()

    def fit(self, model: Any, images: Any) -> AdaptiveSparseViTImportance:
        """Scores on ``images``, then the keep threshold ``θ`` under the budget loss."""
        scores = self._all_scores(model, images)  # [B, N]
        n = scores.shape[1]
        self.raw_importances_ = scores.mean(dim=0).numpy()
        self.importances_ = normalize_importance(self.raw_importances_)
        self.n_images_ = int(scores.shape[0])
        theta, kept = fit_threshold(n * scores, self.target, self.temperature, self.steps, self.lr)
        self.threshold_ = theta
        self.budget_history_ = kept
        self.kept_fraction_ = kept[-1]
        return self

    def adaptive_keep(self, model: Any, images: Any) -> torch.Tensor:
        """Per-image keep mask ``N s_j > θ``, bool ``[B, N]`` (the count varies per image)."""
        if not hasattr(self, "threshold_"):
            raise ConfigError("adaptive_keep: the threshold is not fitted; call fit() first")
        scores = self._all_scores(model, images)
        return scores * scores.shape[1] > self.threshold_

    @torch.no_grad()
    def reduce(self, model: Any, images: Any, keep: int) -> Reduction:
        """Drop all but the ``keep`` highest-scoring features of each image (zero the rest)."""
        require_attention_model(model)

        def step(x: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
            mask = top_k_mask(self.token_scores(model, x), keep)
            return mask, encode_checked(model, x) * mask.unsqueeze(-1)

        return reduce_in_batches(model, images, keep, self.batch_size, step)
