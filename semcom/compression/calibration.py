"""Calibration passes: the inputs a layer of the encoder sees on calibration images.

Data-driven quantisers (GPTQ, smoothing, layer-importance scores) need, for a ``Linear`` or
``Conv2d`` layer, its inputs as a matrix of *rows* ``X`` ``[M, cols]`` whose product with the
weight matrix ``W`` ``[out, cols]`` is the layer output (before the bias):

- ``Linear`` on ``[..., in]``: every leading position is a row (one per image for the MLP, one
  per token for the ViT), ``cols = in``;
- ``Conv2d``: the im2col patches (``torch.nn.functional.unfold``, zero padding included), one row
  per output position, ``cols = C·k·k`` in the order of ``weight.reshape(out, -1)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from channels.errors import check_int, fail


def calibration_images(model: nn.Module, images: Any, why: str = "this method") -> torch.Tensor:
    """Check calibration ``images`` ``[B, C, H, W]`` for ``model``; moved to its dtype/device.

    Args:
        model: the codec (its ``input_shape`` ``(C, H, W)`` fixes the image shape).
        images: a floating-point tensor of finite values, ``B >= 1``, of the model's input shape.
        why: what needs the images, for the error message (e.g. ``"cts"``).

    Raises:
        ConfigError: (field ``images``) missing, of another shape or dtype, or not finite.
    """
    expected = tuple(getattr(model, "input_shape", ()))
    shape = ", ".join(str(s) for s in expected) if expected else "C, H, W"
    allowed = f"calibration images, a float tensor [B, {shape}] with B >= 1 ({why} needs data)"
    if not isinstance(images, torch.Tensor):
        raise fail("images", None if images is None else type(images).__name__, allowed)
    if (
        images.ndim != 4
        or images.shape[0] == 0
        or (expected and tuple(images.shape[1:]) != expected)
        or not torch.is_floating_point(images)
        or not bool(torch.isfinite(images).all())
    ):
        raise fail("images", f"tensor of shape {tuple(images.shape)}, {images.dtype}", allowed)
    p = next(model.parameters())
    return images.detach().to(device=p.device, dtype=p.dtype)


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` as an int >= 1 (ConfigError otherwise)."""
    return check_int("batch_size", batch_size, 1, 2**31)


def check_layer(layer: nn.Module) -> None:
    """Refuse a ``Conv2d`` whose inputs are not plain im2col patches (groups, padding modes)."""
    if isinstance(layer, nn.Conv2d) and (
        layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str)
    ):
        raise fail("layer", repr(layer), "a Conv2d with groups=1, numeric zero padding")


def layer_rows(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Inputs ``x`` of ``layer`` as rows ``[M, cols]`` (module docstring)."""
    if isinstance(layer, nn.Conv2d):
        patches = F.unfold(
            x,
            layer.kernel_size,
            dilation=layer.dilation,
            padding=layer.padding,
            stride=layer.stride,
        )  # [B, C·k·k, P]
        return patches.transpose(1, 2).reshape(-1, patches.shape[1])
    return x.reshape(-1, x.shape[-1])


@torch.no_grad()
def capture(
    model: nn.Module, images: torch.Tensor, modules: list[nn.Module], batch_size: int
) -> Iterator[dict[int, tuple[torch.Tensor, Any]]]:
    """Run ``model.encode`` over ``images`` in batches; yield, per batch, ``{id(module): (first
    input, output)}`` of every module in ``modules`` (the forward pass of the current weights)."""
    seen: dict[int, tuple[torch.Tensor, Any]] = {}

    def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        seen[id(module)] = (inputs[0], output)

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        for first in range(0, images.shape[0], batch_size):
            seen.clear()
            model.encode(images[first : first + batch_size])
            yield dict(seen)
    finally:
        for handle in handles:
            handle.remove()
