"""Shared option checks and budget arithmetic of amp, pruning-game, maestro and pst.

Every pruning method states its budget as ``sparsity``: the fraction of its prunable items
(units, rank components or weights; each method names its unit) to remove. The number removed
is ``round(sparsity · total)`` exactly (:func:`target_count`), split over layers by
:func:`apportion` where a method needs per-layer counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from channels import errors
from channels.errors import fail


def check_sparsity(value: Any, *, optional: bool = False) -> float | None:
    """``value`` as a fraction in ``[0, 1)`` (``None`` allowed when ``optional``).

    Raises:
        ConfigError: (field ``sparsity``) a bool, a non-number, NaN or a value outside [0, 1).
    """
    allowed = "a fraction in [0, 1)" + (" or null" if optional else "")
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise fail("sparsity", value, allowed)
    number = float(value)
    if not (0.0 <= number < 1.0):
        raise fail("sparsity", value, allowed)
    return number


def check_real(
    field: str, value: Any, low: float, high: float = math.inf, *, low_open: bool = False
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` when ``low_open``)
    (:func:`channels.errors.check_real` with this module's message)."""
    bracket = "(" if low_open else "["
    return errors.check_real(
        field,
        value,
        low,
        high,
        open_low=low_open,
        allowed=f"a number in {bracket}{low:g}, {high:g}]",
    )


def check_choice(field: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` as one of ``choices`` (case-insensitive), else ConfigError."""
    key = str(value).strip().lower() if isinstance(value, str) else None
    if key not in choices:
        raise fail(field, value, ", ".join(choices))
    return key


def calibration_images(model: nn.Module, images: Any) -> torch.Tensor:
    """The calibration ``images`` ``[B, C, H, W]`` on ``model``'s dtype and device.

    Raises:
        ConfigError: (field ``images``) no images, a wrong rank or shape, or non-finite values.
    """
    from semcom.importance.base import as_images

    if images is None:
        raise fail("images", None, "calibration images [B, C, H, W] (this method needs data)")
    x = as_images(images)
    shape = tuple(getattr(model, "input_shape", x.shape[1:]))
    if tuple(x.shape[1:]) != shape:
        raise fail(
            "images", f"tensor of shape {tuple(x.shape)}", f"[B, {', '.join(map(str, shape))}]"
        )
    param = next(model.parameters())
    return x.to(device=param.device, dtype=param.dtype)


def target_count(sparsity: float, total: int, removable: int, what: str) -> int:
    """``round(sparsity · total)``: how many of ``total`` items to remove.

    Raises:
        ConfigError: (field ``sparsity``) when that exceeds ``removable``, the most the model
            can lose (e.g. every layer keeps one unit); the message gives the largest fraction.
    """
    count = int(round(sparsity * total))
    if count > removable:
        top = removable / total if total else 0.0
        raise fail("sparsity", sparsity, f"a fraction in [0, {top:.4g}] for this model "
                   f"({removable} of its {total} {what} can be removed)")  # fmt: skip
    return count


def apportion(sizes: Sequence[int], total: int) -> list[int]:
    """Split ``total`` over groups proportionally to ``sizes`` (largest remainder; exact sum).

    ``apportion(sizes, t)[i] ≈ t · sizes[i] / Σ sizes``, each at most ``sizes[i]``, summing to
    ``t`` exactly; ties in the remainder go to the earlier group.

    Examples:
        >>> apportion([10, 20, 30], 7)
        [1, 2, 4]
    """
    sizes = [int(s) for s in sizes]
    whole = sum(sizes)
    if not 0 <= total <= whole:
        raise ValueError(f"cannot take {total} of {whole}")
    if whole == 0:
        return [0] * len(sizes)
    quotas = [total * s / whole for s in sizes]
    counts = [min(int(math.floor(q)), s) for q, s in zip(quotas, sizes, strict=True)]
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - counts[i]), i))
    for i in order:
        if sum(counts) == total:
            break
        if counts[i] < sizes[i]:
            counts[i] += 1
    return counts


def reconstruction_loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The label-free task loss ``MSE(x, decode(encode(x)))`` (a scalar tensor)."""
    return torch.mean((model.decode(model.encode(x)) - x) ** 2)


def batches(n: int, batch_size: int) -> list[slice]:
    """Consecutive slices of ``range(n)`` of at most ``batch_size`` items."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def mean_loss(model: nn.Module, x: torch.Tensor, batch_size: int) -> float:
    """Image-weighted mean of :func:`reconstruction_loss` over ``x`` in batches (no grad)."""
    total = 0.0
    with torch.no_grad():
        for part in batches(x.shape[0], batch_size):
            total += float(reconstruction_loss(model, x[part])) * (part.stop - part.start)
    return total / x.shape[0]


def freeze_all_but(model: nn.Module, trainable: Sequence[nn.Parameter]) -> None:
    """Set ``requires_grad`` on exactly the parameters in ``trainable``."""
    keep = {id(p) for p in trainable}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
