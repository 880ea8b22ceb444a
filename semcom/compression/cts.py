"""CTS, Concrete Ticket Search (Arora & Teuscher, 2025, arXiv:2512.07142): a sparse mask over all
prunable weights found jointly by optimising a Concrete relaxation, not by scoring weights one
at a time.

Each prunable weight ``θ_i`` (the encoder's ``Linear``/``Conv2d`` weights) gets a logit ``s_i``
(keep probability ``σ(s_i)``, all starting at ``init_keep``). With the weights frozen, each of
``steps`` Adam steps draws masks ``m ~ BinaryConcrete(s, τ)`` (:mod:`semcom.compression.concrete`)
and descends

    R(m ⊙ θ) subject to (1/d) Σ σ(s_i) = κ,       κ = 1 − k/d (the kept share),

the constraint enforced by GradBalance (our labelled stand-in: the constraint gradient rescaled
to the task gradient's norm and signed by the density error). The balanced gradient is scaled
to unit RMS before the Adam step, so the search does not depend on the scale of ``R``. The final
mask keeps the ``d − k`` weights of largest ``s_i`` (exactly; ties to the earlier weight),
``k = floor(s·d + 1/2)``.

Objectives ``R`` (label-free; the calibration images ``x``):

* ``"kl"`` (CTS-KL, default): the reverse KL ``KL(p_sparse ‖ p_dense)`` between the codec's
  output pixels read as Bernoulli probabilities, ``p = decode(encode(x))`` with the masked
  and with the dense encoder. It keeps the receiver's output distribution, the dense codec's
  behaviour, rather than fitting the images.
* ``"mse"``: the reconstruction error ``mean((x̂ − x)²)`` of the masked codec.

The decoder is never masked (it is the receiver's). Nothing is fine-tuned after the search.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from channels.errors import check_int
from semcom.compression.base import COMPRESSION, Compressor
from semcom.compression.budget import (
    check_choice,
    check_meetable,
    check_real,
    check_sparsity,
    lowest,
)
from semcom.compression.calibration import calibration_images
from semcom.compression.concrete import binary_concrete, gradbalance, reverse_kl_bernoulli
from semcom.compression.prunable import apply_masks, prunable_weights

OBJECTIVES = ("kl", "mse")


@torch.enable_grad()
def concrete_ticket_search(
    model: nn.Module,
    x: torch.Tensor,
    density: float,
    objective: str = "kl",
    steps: int = 100,
    lr: float = 0.1,
    temperature: float = 2 / 3,
    init_keep: float = 0.9,
    seed: int = 0,
) -> tuple[dict[str, torch.Tensor], list[float]]:
    """Optimise the mask logits of ``model``'s prunable weights (module docstring).

    Args:
        model: the codec (not modified).
        x: calibration images ``[B, C, H, W]`` (model dtype and device).
        density: target kept share ``κ`` in ``(0, 1]``.
        objective: ``"kl"`` or ``"mse"``.
        steps, lr, temperature, init_keep, seed: as in :class:`CTSPruning`.

    Returns:
        ``(logits, trace)``: the final logits by weight name (float32, weight-shaped) and the
        soft density ``(1/d) Σ σ(s_i)`` before each step and after the last (``steps + 1``
        values).
    """
    weights = prunable_weights(model)
    d = sum(w.numel() for _, w in weights)
    start = math.log(init_keep / (1.0 - init_keep))
    logits = [torch.full_like(w, start, requires_grad=True) for _, w in weights]
    frozen = {name: w.detach() for name, w in weights}
    optimiser = torch.optim.Adam(logits, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        p_dense = model(x)
    trace = []
    for _ in range(steps):
        masks = [binary_concrete(s, temperature, generator) for s in logits]
        params = {name: frozen[name] * m for (name, _), m in zip(weights, masks, strict=True)}
        x_hat = functional_call(model, params, (x,), strict=False)
        if objective == "kl":
            loss = reverse_kl_bernoulli(x_hat, p_dense)
        else:
            loss = torch.mean((x_hat - x) ** 2)
        task = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, logits)])
        with torch.no_grad():
            flat = torch.cat([s.reshape(-1) for s in logits])
            p = torch.sigmoid(flat)
            rho = float(p.mean())
            trace.append(rho)
            combined = gradbalance(task, p * (1 - p) / d, rho - density)
            # unit-RMS step direction: Adam's ε would otherwise stall the search on the tiny
            # gradients of a small loss (the direction is unchanged)
            rms = torch.linalg.vector_norm(combined) / math.sqrt(d)
            combined = combined / rms if rms > 0 else combined
            start_at = 0
            for s in logits:
                s.grad = combined[start_at : start_at + s.numel()].reshape(s.shape).clone()
                start_at += s.numel()
        optimiser.step()
    with torch.no_grad():
        trace.append(float(torch.sigmoid(torch.cat([s.reshape(-1) for s in logits])).mean()))
    return {name: s.detach() for (name, _), s in zip(weights, logits, strict=True)}, trace


@COMPRESSION.register(
    "cts",
    description="Concrete Ticket Search: a Concrete-relaxed weight mask, GradBalance, CTS-KL",
    paper="arXiv:2512.07142",
)
class CTSPruning(Compressor):
    """Unstructured pruning by a jointly optimised Concrete mask (module docstring).

    Args:
        sparsity: fraction ``s`` in ``[0, 1)`` of the prunable weights removed.
        objective: ``"kl"`` (CTS-KL, default) or ``"mse"``.
        steps: Adam steps on the mask logits (1..100000, default 100).
        lr: Adam learning rate (default 0.1).
        temperature: Binary Concrete temperature ``τ`` (default 2/3).
        init_keep: initial keep probability ``σ(s_i)`` of every weight (default 0.9).
        seed: seed of the Concrete noise.

    Raises:
        ConfigError: a bad option; missing calibration images at compress time.

    Examples:
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> model = build_model("mlp", 8)
        >>> result = CTSPruning(sparsity=0.5, steps=5).compress(model, torch.rand(4, 1, 8, 8))
        >>> result.details["pruned"] == result.details["prunable"] // 2
        True
    """

    name = "cts"

    def __init__(
        self,
        sparsity: float = 0.5,
        objective: str = "kl",
        steps: int = 100,
        lr: float = 0.1,
        temperature: float = 2 / 3,
        init_keep: float = 0.9,
        seed: int = 0,
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        self.objective = check_choice("objective", objective, OBJECTIVES)
        self.steps = check_int("steps", steps, 1, 100_000)
        self.lr = check_real("lr", lr, 1e-8, 100.0)
        self.temperature = check_real("temperature", temperature, 1e-3, 100.0)
        self.init_keep = check_real("init_keep", init_keep, 0.01, 0.99)
        self.seed = check_int("seed", seed, 0, 2**63 - 1)

    def _compress(self, model: nn.Module, images: Any) -> tuple[dict[str, Any], dict[str, float]]:
        weights = prunable_weights(model)
        total = sum(w.numel() for _, w in weights)
        count = check_meetable(self.sparsity, total, total, "weights")
        x = calibration_images(model, images, "cts")
        logits, trace = concrete_ticket_search(
            model,
            x,
            1.0 - count / total,
            self.objective,
            self.steps,
            self.lr,
            self.temperature,
            self.init_keep,
            self.seed,
        )
        flat = torch.cat([logits[n].reshape(-1).cpu() for n, _ in weights])
        gone = lowest(flat, count)
        keep = torch.ones(total, dtype=torch.bool)
        keep[gone] = False
        masks, at = {}, 0
        for name, w in weights:
            masks[name] = keep[at : at + w.numel()].reshape(w.shape).to(w.device)
            at += w.numel()
        apply_masks(model, masks)
        every = max(1, self.steps // 20)
        details = {
            "unit": "weights",
            "prunable": total,
            "pruned": count,
            "target_density": 1.0 - count / total,
            "soft_density": trace[-1],
            "soft_density_trace": trace[::every] + ([trace[-1]] if self.steps % every else []),
        }
        return details, {}
