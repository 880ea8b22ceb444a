"""HideNseek (Vallapuram et al., 2022, arXiv:2206.04385): one-shot data-free pruning by
synaptic saliency, then a learned sign supermask over the kept weights.

In the paper a federated server prunes a randomly initialised network once by synaptic saliency
(iterative SynFlow, :mod:`semcom.compression.synflow`; no data) and the clients learn only a
*sign supermask* ``σ ∈ {−1, +1}`` over the kept weights, which are otherwise frozen:

    w = σ ⊙ |θ| ⊙ m,       σ = sign(s) (s ≥ 0 -> +1),

with real scores ``s`` trained through the straight-through estimator (forward ``sign(s)``,
backward identity). Each client then uploads one bit per kept weight.

Here the codec is already trained, so:

1. SynFlow prunes exactly ``k = floor(s · d + 1/2)`` of the ``d`` prunable encoder weights
   (global ranking, ``iterations`` rounds of the exponential schedule), without data.
2. With ``steps > 0`` the sign supermask is trained on the calibration images by Adam on
   ``s`` (initialised to the trained weights, so ``σ`` starts at the trained signs), the task
   loss being the reconstruction MSE. The signs kept are those of the step with the lowest
   calibration loss (the trained signs included), so the sign search never returns a worse
   encoder on the calibration batch than pruning alone.

``|w|`` never changes (tested); ``details["sign_bits"]`` counts the one-bit-per-kept-weight
uplink of the federated protocol. The encoder's stored weights stay float32.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from channels.errors import check_int
from semcom.compression.base import COMPRESSION, Compressor
from semcom.compression.budget import check_meetable, check_real, check_sparsity
from semcom.compression.calibration import calibration_images
from semcom.compression.prunable import apply_masks, prunable_weights, reconstruction_loss
from semcom.compression.synflow import synflow_prune


def hard_sign(s: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``s >= 0``, else ``−1`` (never 0), with the straight-through gradient 1."""
    sign = torch.where(s >= 0, 1.0, -1.0).to(s.dtype)
    return s + (sign - s).detach()


@torch.enable_grad()
def train_sign_supermask(
    model: nn.Module,
    masks: dict[str, torch.Tensor],
    x: torch.Tensor,
    steps: int,
    lr: float,
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Learn signs ``σ`` (by weight name, ±1 float) of the kept weights (module docstring).

    Returns ``(signs, losses)``: the signs of the lowest-loss step and the calibration loss of
    the hard-sign encoder at every step (``steps + 1`` values; the first is the trained signs).
    """
    weights = prunable_weights(model)
    magnitude = {n: (w.detach().abs() * masks[n]) for n, w in weights}
    scores = [w.detach().clone().requires_grad_(True) for _, w in weights]
    optimiser = torch.optim.Adam(scores, lr=lr)
    best, best_loss, losses = None, float("inf"), []
    for step in range(steps + 1):
        signs = [hard_sign(s) for s in scores]
        params = {n: sg * magnitude[n] for (n, _), sg in zip(weights, signs, strict=True)}
        loss = reconstruction_loss(model, x, params)
        losses.append(float(loss.detach()))
        if losses[-1] < best_loss:
            best_loss = losses[-1]
            best = {n: sg.detach().clone() for (n, _), sg in zip(weights, signs, strict=True)}
        if step == steps:
            break
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return best, losses


@COMPRESSION.register(
    "hidenseek",
    description="HideNseek: data-free synaptic-saliency pruning plus a learned sign supermask",
    paper="arXiv:2206.04385",
)
class HideNseek(Compressor):
    """SynFlow pruning of the encoder's weights and a trained sign supermask (module docstring).

    Args:
        sparsity: fraction ``s`` in ``[0, 1)`` of the prunable weights removed.
        iterations: SynFlow rounds (1..10000, default 100, as in SynFlow).
        steps: sign-supermask Adam steps on the calibration images (0..100000, default 50;
            0 = data-free pruning only, no images needed).
        lr: Adam learning rate on the sign scores (default 1e-3).

    Examples:
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> result = HideNseek(sparsity=0.5, iterations=5, steps=0).compress(build_model("mlp", 8))
        >>> result.details["pruned"] == result.details["prunable"] // 2
        True
    """

    name = "hidenseek"

    def __init__(
        self, sparsity: float = 0.5, iterations: int = 100, steps: int = 50, lr: float = 1e-3
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        self.iterations = check_int("iterations", iterations, 1, 10_000)
        self.steps = check_int("steps", steps, 0, 100_000)
        self.lr = check_real("lr", lr, 1e-8, 100.0)

    def _compress(self, model: nn.Module, images: Any) -> tuple[dict[str, Any], dict[str, float]]:
        weights = prunable_weights(model)
        total = sum(w.numel() for _, w in weights)
        count = check_meetable(self.sparsity, total, total, "weights")
        x = calibration_images(model, images, "hidenseek with steps > 0") if self.steps else None
        masks = synflow_prune(model, count, self.iterations)
        details: dict[str, Any] = {
            "unit": "weights",
            "prunable": total,
            "pruned": count,
            "sign_bits": total - count,
            "per_layer": {n: int((~m).sum()) for n, m in masks.items()},
        }
        apply_masks(model, masks)
        if self.steps:
            signs, losses = train_sign_supermask(model, masks, x, self.steps, self.lr)
            flipped = 0
            with torch.no_grad():
                for name, w in weights:
                    trained = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
                    flipped += int(((signs[name] != trained) & masks[name]).sum())
                    w.copy_(w.abs() * signs[name] * masks[name])
            details["loss_trained_signs"] = losses[0]
            details["loss"] = min(losses)
            details["flipped"] = flipped
        return details, {}
