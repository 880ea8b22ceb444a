"""Symmetric uniform weight quantiser shared by the quantisation methods of the family.

A weight tensor of a ``Linear`` ``[out, in]`` or ``Conv2d`` ``[out, C, k, k]`` layer is handled
as a matrix ``W`` ``[out, cols]`` (``cols = in`` or ``C·k·k``, the im2col layout). At ``b`` bits
each scale group (a row, a row segment of ``group`` columns, or the whole tensor) has one scale

    s = max |w| / q_max,    q_max = 2^(b-1) - 1,

and a weight becomes ``ŵ = s · clamp(round(w / s), -q_max, q_max)``: ``2^b - 1`` levels
symmetric about an exact zero (the "restricted" signed range), so every code fits in ``b`` bits.
Scales are stored as float16 (:data:`SCALE_BITS`); ``ŵ`` uses the float16-rounded scale, so the
de-quantised weights are exactly what ``b``-bit codes plus float16 scales reproduce.

Storage accounting (what a method reports to ``measure_encoder``): a tensor of ``n`` weights
quantised to ``b`` bits with ``g`` scales costs ``b + SCALE_BITS · g / n`` bits per weight.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from channels.errors import check_int, fail

SCALE_BITS = 16
"""Stored bits of one quantisation scale (float16)."""

GRANULARITIES = ("channel", "tensor")
"""Scale granularities: one scale per output channel (row) or one per tensor."""


def check_bits(field: str, bits: object, low: int = 2, high: int = 8) -> int:
    """``bits`` as an int in ``low..high`` (ConfigError otherwise)."""
    return check_int(field, bits, low, high)


def check_granularity(granularity: object) -> str:
    """``granularity`` as one of :data:`GRANULARITIES` (ConfigError otherwise)."""
    if granularity not in GRANULARITIES:
        raise fail("granularity", granularity, " or ".join(GRANULARITIES))
    return str(granularity)


def weight_matrix(layer: nn.Module) -> torch.Tensor:
    """The weight of a ``Linear``/``Conv2d`` as a detached matrix ``[out, cols]``."""
    w = layer.weight.detach()
    return w.reshape(w.shape[0], -1)


@torch.no_grad()
def set_weight_matrix(layer: nn.Module, w: torch.Tensor) -> None:
    """Write the matrix ``w`` ``[out, cols]`` back into ``layer.weight`` (shape and dtype kept)."""
    layer.weight.copy_(w.reshape(layer.weight.shape).to(layer.weight.dtype))


def qmax(bits: int) -> int:
    """Largest code magnitude ``2^(b-1) - 1`` of the restricted symmetric range."""
    return 2 ** (bits - 1) - 1


def symmetric_scale(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Float16-rounded scales ``max|w| / q_max`` over the last axis of ``w``, keepdim.

    A group that is all zero (or whose scale underflows float16) gets scale 1: its codes are 0.
    """
    peak = w.abs().amax(dim=-1, keepdim=True)
    scale = (peak / qmax(bits)).to(torch.float16).to(w.dtype)
    return torch.where(scale > 0, scale, torch.ones_like(scale))


def quantise_with_scale(w: torch.Tensor, scale: torch.Tensor, bits: int) -> torch.Tensor:
    """``s · clamp(round(w / s), -q_max, q_max)`` (``scale`` broadcasts against ``w``)."""
    m = qmax(bits)
    return scale * torch.clamp(torch.round(w / scale), -m, m)


def round_to_nearest(
    w: torch.Tensor, bits: int, granularity: str = "channel", group: int | None = None
) -> tuple[torch.Tensor, int]:
    """Round-to-nearest quantisation of a matrix ``w`` ``[rows, cols]``.

    Args:
        w: weights ``[rows, cols]`` (any float dtype; the result has the same dtype).
        bits: code bits ``b`` (2..16).
        granularity: ``"channel"`` (one scale per row) or ``"tensor"`` (one scale).
        group: with ``"channel"``, split each row into segments of ``group`` columns, one scale
            each (the last segment may be shorter); ``None``: whole rows.

    Returns:
        ``(ŵ, number of scales)``.

    Examples:
        >>> w = torch.tensor([[1.0, -0.6, 0.26], [0.0, 0.0, 0.0]])
        >>> q, scales = round_to_nearest(w, 2)          # levels {-s, 0, s}, s = max|row|
        >>> q.tolist(), scales
        ([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]], 2)
    """
    rows, cols = w.shape
    if granularity == "tensor":
        scale = symmetric_scale(w.reshape(1, -1), bits).reshape(1, 1)
        return quantise_with_scale(w, scale, bits), 1
    if group is None or group >= cols:
        return quantise_with_scale(w, symmetric_scale(w, bits), bits), rows
    out = torch.empty_like(w)
    for first in range(0, cols, group):
        part = w[:, first : first + group]
        out[:, first : first + group] = quantise_with_scale(part, symmetric_scale(part, bits), bits)
    return out, rows * math.ceil(cols / group)


def stored_bits(bits: float, numel: int, n_floats: int = 0) -> float:
    """Bits per weight of a tensor of ``numel`` ``bits``-bit codes plus ``n_floats`` float16
    side values (scales, smoothing factors): ``bits + SCALE_BITS · n_floats / numel``."""
    return float(bits) + SCALE_BITS * n_floats / numel
