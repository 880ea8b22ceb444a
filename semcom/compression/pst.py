"""PST: parameter-efficient sparse training with a data-free plus low-rank data-driven weight
importance (Li et al., "Parameter-Efficient Sparsity for Large Language Models Fine-Tuning",
IJCAI 2022, arXiv:2205.11005).

For every encoder ``Linear``/``Conv2d`` with frozen weight ``W`` ``[m, n]`` (a convolution as
``[out, in·kh·kw]``):

* **Importance.** ``S = |W| / mean|W| + (A B + R 1ᵀ + 1 Cᵀ)``: the data-free magnitude (divided by
  its layer mean, a per-layer constant that leaves the magnitude order unchanged, so that the
  data-driven part trained by Adam is on a comparable scale) plus a data-driven part with few
  parameters: a low-rank ``A`` ``[m, r_s]``, ``B`` ``[r_s, n]`` and the row and column vectors
  ``R`` ``[m]``, ``C`` ``[n]``.
* **Mask.** ``M = TopK(S)``: the ``k`` largest scores of the layer, ``k`` following a cubic
  schedule from ``n m`` down to the target over the first ``ramp`` of the steps.
* **Weights.** ``W' = (W + U V) ⊙ M`` with a LoRA update ``U`` ``[m, r]``, ``V`` ``[r, n]``.
* **Training.** The reconstruction MSE (relative to the unpruned codec's) through the frozen
  decoder; ``A, B, R, C`` learn through the mask with a straight-through estimator,
  ``∂L/∂S := ∂L/∂M = ∂L/∂W' ⊙ (W + U V)`` (so scores rise for weights that move away from zero,
  as in movement pruning). Only ``U, V, A, B, R, C`` are trained; ``U = 0``, ``B = 0``,
  ``R = C = 0`` at the start, so the first mask is the magnitude mask.

**Budget.** Unstructured, in weights of the encoder's ``Linear``/``Conv2d`` layers (biases and
other parameters are not pruned): exactly ``round(sparsity · Σ_l m_l n_l)`` are zeroed, split over
layers in proportion to their size (largest remainder), each layer keeping at least one. The
compressed codec holds ``W'`` in its original layers (shapes unchanged).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from channels.errors import check_int
from semcom.compression.base import COMPRESSION, Compressor, compressible_layers, conv_args
from semcom.compression.budget import (
    calibration_images,
    check_real,
    check_sparsity,
    mean_loss,
    random_batch,
    reconstruction_loss,
    split_count,
    target_count,
    trainable_only,
)
from semcom.compression.low_rank import replace_module


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Float mask of the ``k`` largest entries of ``scores`` (ties: ``torch.topk``'s order)."""
    flat = scores.reshape(-1)
    mask = torch.zeros_like(flat)
    if k > 0:
        mask[torch.topk(flat, k, sorted=False).indices] = 1.0
    return mask.reshape(scores.shape)


def cubic_keep(step: int, steps: int, total: int, final: int, ramp: float) -> int:
    """Weights kept at ``step``: ``final + (total − final)(1 − t/T)³`` for ``t < T``, then ``final``
    (rounded), with ``T = min(ramp · steps, steps − 1)`` so that the last step trains at the
    target whatever ``ramp``.

    Examples:
        >>> [cubic_keep(t, 4, 100, 20, 0.5) for t in range(5)]
        [100, 30, 20, 20, 20]
    """
    horizon = min(ramp * steps, steps - 1)
    if step >= horizon:
        return final
    return int(round(final + (total - final) * (1.0 - step / horizon) ** 3))


class PSTLayer(nn.Module):
    """A ``Linear``/``Conv2d`` under PST: frozen ``W``, LoRA ``U V``, scores ``A B + R + C``.

    Args:
        layer: the layer (not modified).
        score_rank: ``r_s`` of ``A B``.
        lora_rank: ``r`` of ``U V``.
        generator: draws the initial ``A`` and ``V`` (``N(0, 1/r)``).

    Attributes:
        keep: how many weights the mask keeps (``m n`` at first).
    """

    def __init__(
        self, layer: nn.Module, score_rank: int, lora_rank: int, generator: torch.Generator
    ) -> None:
        super().__init__()
        w = layer.weight.detach()
        self.conv = isinstance(layer, nn.Conv2d)
        self.weight_shape = tuple(w.shape)
        if self.conv:
            self.conv_args = conv_args(layer)
        matrix = w.reshape(w.shape[0], -1)
        m, n = matrix.shape
        dtype, device = w.dtype, w.device
        self.register_buffer("W", matrix.clone())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().clone())
        self.register_buffer("free", matrix.abs() / matrix.abs().mean().clamp_min(1e-30))

        def normal(*shape: int, std: float) -> torch.Tensor:
            return (torch.randn(*shape, generator=generator, dtype=torch.float64) * std).to(
                dtype=dtype, device=device
            )

        self.A = nn.Parameter(normal(m, score_rank, std=score_rank**-0.5))
        self.B = nn.Parameter(torch.zeros(score_rank, n, dtype=dtype, device=device))
        self.R = nn.Parameter(torch.zeros(m, dtype=dtype, device=device))
        self.C = nn.Parameter(torch.zeros(n, dtype=dtype, device=device))
        self.U = nn.Parameter(torch.zeros(m, lora_rank, dtype=dtype, device=device))
        self.V = nn.Parameter(normal(lora_rank, n, std=lora_rank**-0.5))
        self.keep = m * n

    def scores(self) -> torch.Tensor:
        """``S = |W|/mean|W| + A B + R 1ᵀ + 1 Cᵀ`` ``[m, n]``."""
        return self.free + self.A @ self.B + self.R[:, None] + self.C[None, :]

    def dense(self) -> torch.Tensor:
        """``W + U V`` ``[m, n]``."""
        return self.W + self.U @ self.V

    def masked_weight(self) -> torch.Tensor:
        """``(W + U V) ⊙ M`` with the straight-through mask, in the layer's weight shape."""
        s = self.scores()
        mask = top_k_mask(s.detach(), self.keep)
        mask = mask + s - s.detach()  # value M, gradient d/dS = identity (straight through)
        return (self.dense() * mask).reshape(self.weight_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.masked_weight()
        if self.conv:
            return F.conv2d(x, w, self.bias, **self.conv_args)
        return F.linear(x, w, self.bias)

    def final_weight(self) -> torch.Tensor:
        """The weight written back: ``(W + U V) ⊙ TopK(S)`` (no gradient)."""
        with torch.no_grad():
            return (self.dense() * top_k_mask(self.scores(), self.keep)).reshape(self.weight_shape)


@COMPRESSION.register(
    "pst",
    description="Unstructured sparsity from a magnitude plus low-rank data-driven weight "
    "importance, learned with a straight-through mask and a LoRA update",
    paper="arXiv:2205.11005",
)
class PST(Compressor):
    """Parameter-efficient sparse training of the encoder's weights (module docstring).

    Args:
        sparsity: fraction of the encoder's ``Linear``/``Conv2d`` weights to zero, in [0, 1)
            (unit: weights). Default 0.5.
        steps: training steps (0: the magnitude mask, no training). Default 100.
        score_rank: ``r_s`` of the data-driven score ``A B`` (default 4).
        lora_rank: ``r`` of the LoRA update ``U V`` (default 4).
        lr: Adam step of ``U, V`` (default 1e-3).
        score_lr: Adam step of ``A, B, R, C`` (default 1e-2).
        ramp: fraction of the steps over which the density falls to the target (default 0.75).
        batch_size: images per step (default 64).
        seed: seed of the image draws and of the initial ``A`` and ``V``.

    Examples:
        >>> import torch
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> model = build_model("mlp", 4, hidden=[16, 8])
        >>> result = PST(sparsity=0.9, steps=5).compress(model, torch.rand(16, 1, 8, 8))
        >>> result.details["removed_weights"], result.details["weights"]
        (1152, 1280)
    """

    name = "pst"

    def __init__(
        self,
        sparsity: float = 0.5,
        steps: int = 100,
        score_rank: int = 4,
        lora_rank: int = 4,
        lr: float = 1e-3,
        score_lr: float = 1e-2,
        ramp: float = 0.75,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        self.steps = check_int("steps", steps, 0, 100_000)
        self.score_rank = check_int("score_rank", score_rank, 1, 4096)
        self.lora_rank = check_int("lora_rank", lora_rank, 1, 4096)
        self.lr = check_real("lr", lr, 0.0, 1.0)
        self.score_lr = check_real("score_lr", score_lr, 0.0, 10.0)
        self.ramp = check_real("ramp", ramp, 0.0, 1.0)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)

    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        x = calibration_images(model, images, "pst")
        named = compressible_layers(model)
        sizes = [layer.weight.numel() for _, layer in named]
        total = sum(sizes)
        target = target_count(self.sparsity, total, total - len(sizes), "weights")
        removed = split_count(target, sizes)
        # split_count never takes a whole layer unless the target forces it; keep one per layer.
        removed = _keep_one_each(removed, sizes)
        generator = torch.Generator().manual_seed(self.seed)
        base = max(mean_loss(model, x, self.batch_size), 1e-300)
        # the model's own parameters are frozen; the PST layers' new ones are what trains
        originals = list(model.parameters())
        wrapped = []
        for name, layer in named:
            pst = PSTLayer(layer, self.score_rank, self.lora_rank, generator)
            replace_module(model, name, pst)
            wrapped.append(pst)
        lora = [p for w in wrapped for p in (w.U, w.V)]
        score = [p for w in wrapped for p in (w.A, w.B, w.R, w.C)]
        optimizer = torch.optim.Adam(
            [{"params": lora, "lr": self.lr}, {"params": score, "lr": self.score_lr}]
        )
        with trainable_only(originals):
            for step in range(self.steps):
                for w, size, cut in zip(wrapped, sizes, removed, strict=True):
                    w.keep = cubic_keep(step, self.steps, size, size - cut, self.ramp)
                xb = random_batch(x, self.batch_size, generator)
                loss = reconstruction_loss(model, xb) / base
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        for (name, layer), w, size, cut in zip(named, wrapped, sizes, removed, strict=True):
            w.keep = size - cut
            with torch.no_grad():
                layer.weight.copy_(w.final_weight())
            replace_module(model, name, layer)
        details = {
            "unit": "weights",
            "weights": total,
            "removed_weights": sum(removed),
            "removed_by_layer": {name: cut for (name, _), cut in zip(named, removed, strict=True)},
            "trainable_parameters": sum(p.numel() for p in lora + score),
            "loss_after": mean_loss(model, x, self.batch_size),
        }
        return details, {}


def _keep_one_each(removed: list[int], sizes: list[int]) -> list[int]:
    """Move cuts off layers that would lose every weight onto layers that keep more than one
    (the total is unchanged; it fits because the budget check allows at most Σ (size − 1))."""
    removed = list(removed)
    for i, size in enumerate(sizes):
        while removed[i] > size - 1:
            removed[i] -= 1
            j = max(
                (k for k in range(len(sizes)) if sizes[k] - 1 - removed[k] > 0),
                key=lambda k: (sizes[k] - 1 - removed[k], -k),
            )
            removed[j] += 1
    return removed
