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


def check_images(images: Any, model: nn.Module) -> torch.Tensor:
    """Calibration images ``[B, C, H, W]`` of ``model``'s input shape, on its device and dtype.

    Raises:
        ConfigError: ``images`` missing, not a finite float tensor, or of the wrong shape.
    """
    if images is None:
        raise fail("images", None, "calibration images [B, C, H, W] (this method needs data)")
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise fail("images", shape, "a tensor [B, C, H, W] with B >= 1")
    if not torch.is_floating_point(images) or not bool(torch.isfinite(images).all()):
        raise fail("images", f"tensor of dtype {images.dtype}", "finite floating-point values")
    expected = tuple(getattr(model, "input_shape", images.shape[1:]))
    if tuple(images.shape[1:]) != expected:
        shape = ", ".join(str(d) for d in expected)
        raise fail("images", tuple(images.shape), f"[B, {shape}] for this codec")
    first = next(model.parameters())
    return images.to(device=first.device, dtype=first.dtype)


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
