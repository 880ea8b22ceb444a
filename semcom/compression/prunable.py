"""What the unstructured pruners act on, and the calibration data and loss they share.

The prunable weights of an encoder are the ``weight`` tensors of its ``Linear``/``Conv2d``
layers (:func:`~semcom.compression.base.compressible_layers`). Biases, normalisation and PReLU
parameters and the ViT's position table are left dense: they are a small share of the encoder
and zeroing them is not a sparse matrix product. Pruning a weight sets it to exactly zero.

The label-free task loss is the reconstruction error of the whole codec,
``R = mean((x̂ − x)²)`` with ``x̂ = decode(encode(x))`` (the channel is the identity).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from channels.errors import fail
from semcom.compression.base import compressible_layers


def prunable_weights(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(qualified name, weight)`` of the encoder's ``Linear``/``Conv2d`` layers, in order."""
    return [(f"{name}.weight", layer.weight) for name, layer in compressible_layers(model)]


@torch.no_grad()
def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Zero every weight whose boolean ``masks[name]`` entry is False (in place)."""
    params = dict(model.named_parameters())
    for name, keep in masks.items():
        params[name].mul_(keep.to(params[name].dtype))


def zero_count(model: nn.Module) -> tuple[int, int]:
    """``(zeros, total)`` over the prunable weights of ``model``."""
    weights = [w for _, w in prunable_weights(model)]
    zeros = sum(int((w == 0).sum().item()) for w in weights)
    return zeros, sum(w.numel() for w in weights)


def calibration_images(model: nn.Module, images: Any, why: str) -> torch.Tensor:
    """Check calibration ``images`` ``[B, C, H, W]`` for ``model``; moved to its dtype/device.

    Args:
        model: the codec.
        images: a floating-point tensor of finite values, ``B >= 1``, shape of the model input.
        why: what needs the images, for the error message (e.g. ``"cts"``).

    Raises:
        ConfigError: (field ``images``) missing, of another shape or dtype, or not finite.
    """
    shape = ", ".join(str(s) for s in model.input_shape)
    allowed = f"calibration images, a float tensor [B, {shape}] with B >= 1 ({why} needs data)"
    if not isinstance(images, torch.Tensor):
        raise fail("images", None if images is None else type(images).__name__, allowed)
    if (
        images.ndim != 4
        or images.shape[0] == 0
        or tuple(images.shape[1:]) != tuple(model.input_shape)
        or not torch.is_floating_point(images)
        or not bool(torch.isfinite(images).all())
    ):
        raise fail("images", f"tensor of shape {tuple(images.shape)}, {images.dtype}", allowed)
    p = next(model.parameters())
    return images.detach().to(device=p.device, dtype=p.dtype)


def noise_images(model: nn.Module, count: int, seed: int) -> torch.Tensor:
    """``count`` images of i.i.d. uniform ``[0, 1)`` pixels from a seeded generator: the
    data-free stand-in for calibration images."""
    g = torch.Generator().manual_seed(seed)
    p = next(model.parameters())
    x = torch.rand((count, *model.input_shape), generator=g, dtype=torch.float64)
    return x.to(device=p.device, dtype=p.dtype)


def reconstruction_loss(
    model: nn.Module, x: torch.Tensor, params: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """``mean((decode(encode(x)) − x)²)``, with ``params`` (name -> tensor) substituted for the
    model's own parameters when given (differentiable in them)."""
    x_hat = model(x) if params is None else functional_call(model, params, (x,), strict=False)
    return torch.mean((x_hat - x) ** 2)
