"""Budgets of the pruning methods: option checks, exact prune counts and exact selections.

A pruning budget is a ``sparsity`` ``s`` in ``[0, 1)``: the fraction of the prunable items
(weights, channels, hidden units or rank components, as each method states) to remove. The
weight and channel pruners remove

    k = floor(s · n + 1/2)            (n prunable items; round half up; :func:`prune_count`)

and the unit pruners (amp, pruning-game, maestro, pst) ``round(s · n)`` (:func:`target_count`).
Every selection below removes exactly ``k`` items, so "pruning to a target sparsity hits it
exactly" holds by construction and is checked by counting zeros in the tests; per-group counts
come from :func:`split_count`.

Ties are broken by position (the earlier unit goes first) so selections are deterministic.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from channels import errors
from channels.errors import ConfigError, fail
from semcom.compression.calibration import calibration_images as check_calibration_images


def check_real(
    field: str,
    value: Any,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in ``[low, high]`` (``(low`` with ``low_open``, ``high)`` with
    ``high_open``), else ConfigError; bools and strings are refused
    (:func:`channels.errors.check_real`).

    Examples:
        >>> check_real("lr", 0.1, 0.0, 1.0)
        0.1
    """
    lb, rb = "(" if low_open else "[", ")" if high_open else "]"
    return errors.check_real(
        field,
        value,
        low,
        high,
        open_low=low_open,
        open_high=high_open,
        allowed=f"a real number in {lb}{low:g}, {high:g}{rb}",
    )


def check_choice(field: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` (a string, compared lower-case) if it is one of ``choices``, else ConfigError."""
    key = value.strip().lower() if isinstance(value, str) else None
    if key not in choices:
        raise fail(field, value, ", ".join(choices))
    return key


def check_sparsity(value: Any, *, optional: bool = False) -> float | None:
    """The ``sparsity`` option: a fraction in ``[0, 1)`` (``None`` allowed when ``optional``).

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


def prune_count(sparsity: float, total: int) -> int:
    """Units removed out of ``total`` at ``sparsity``: ``floor(s · total + 1/2)``.

    Examples:
        >>> prune_count(0.5, 7), prune_count(0.25, 10), prune_count(0.0, 10)
        (4, 3, 0)
    """
    return int(math.floor(sparsity * total + 0.5))


def check_meetable(sparsity: float, total: int, most: int, unit: str) -> int:
    """``prune_count(sparsity, total)``, or ConfigError (field ``sparsity``) when it exceeds
    ``most``, the largest number of ``unit`` the encoder can lose."""
    count = prune_count(sparsity, total)
    if count > most:
        raise fail(
            "sparsity",
            sparsity,
            f"at most {most / total:.4g} for this encoder ({most} of its {total} prunable "
            f"{unit} can be removed)",
        )
    return count


def lowest(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices (int64) of the ``count`` lowest entries of the 1-D ``scores``; ties: lower index.

    Examples:
        >>> lowest(torch.tensor([3.0, 1.0, 2.0, 1.0]), 2).tolist()
        [1, 3]
    """
    if not 0 <= count <= scores.numel():
        raise ValueError(f"cannot select {count} of {scores.numel()} units")
    order = torch.argsort(scores.reshape(-1).to(torch.float64), stable=True)
    return order[:count]


def split_count(count: int, sizes: Sequence[int], keep: int = 0) -> list[int]:
    """Split ``count`` removals over groups of ``sizes`` in proportion (largest remainder).

    Group ``g`` gets ``floor(count · n_g / Σn)`` or one more, never more than ``n_g − keep``;
    what a full group cannot take goes to the others, so the parts always sum to ``count``.

    Raises:
        ConfigError: ``count`` exceeds ``Σ (n_g − keep)`` (field ``sparsity``).

    Examples:
        >>> split_count(5, [4, 4, 2])
        [2, 2, 1]
        >>> split_count(7, [8, 2], keep=1)
        [6, 1]
    """
    caps = [max(n - keep, 0) for n in sizes]
    if count > sum(caps):
        raise ConfigError(f"sparsity: removes {count} units; at most {sum(caps)} can go")
    total = sum(sizes)
    if count == 0 or total == 0:
        return [0] * len(sizes)
    exact = [count * n / total for n in sizes]
    parts = [min(int(math.floor(e)), c) for e, c in zip(exact, caps, strict=True)]
    # largest fractional part first, earlier group on ties; repeat while caps bind
    order = sorted(range(len(sizes)), key=lambda g: (-(exact[g] - math.floor(exact[g])), g))
    while sum(parts) < count:
        for g in order:
            if sum(parts) == count:
                break
            if parts[g] < caps[g]:
                parts[g] += 1
    return parts


def lowest_with_caps(
    scores: Sequence[torch.Tensor], count: int, keep: int = 1
) -> list[torch.Tensor]:
    """Global selection: the ``count`` lowest scores over all groups, each group keeping at
    least ``keep`` units; returns per-group index tensors (ties: earlier group, lower index).

    Examples:
        >>> [t.tolist() for t in lowest_with_caps([torch.tensor([0.1, 0.2]),
        ...                                        torch.tensor([0.3, 0.0, 0.5])], 3)]
        [[0], [1, 0]]
    """
    flat = torch.cat([s.reshape(-1).to(torch.float64) for s in scores])
    owner = torch.cat([torch.full((s.numel(),), g) for g, s in enumerate(scores)])
    local = torch.cat([torch.arange(s.numel()) for s in scores])
    left = [s.numel() - keep for s in scores]
    chosen: list[list[int]] = [[] for _ in scores]
    taken = 0
    for i in torch.argsort(flat, stable=True).tolist():
        if taken == count:
            break
        g = int(owner[i])
        if left[g] > 0:
            chosen[g].append(int(local[i]))
            left[g] -= 1
            taken += 1
    if taken < count:
        raise ConfigError(f"sparsity: removes {count} units; at most {taken} can go")
    return [torch.tensor(c, dtype=torch.int64) for c in chosen]


def calibration_images(model: nn.Module, images: Any, why: str = "this method") -> torch.Tensor:
    """The calibration ``images`` ``[B, C, H, W]`` on ``model``'s dtype and device.

    An array or a data set (``.images``) is first taken as its tensor
    (:func:`semcom.importance.base.as_images`); then
    :func:`semcom.compression.calibration.calibration_images` checks it.

    Raises:
        ConfigError: (field ``images``) no images, a wrong rank or shape, or non-finite values.
    """
    from semcom.importance.base import as_images

    return check_calibration_images(model, None if images is None else as_images(images), why)


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


def random_batch(x: torch.Tensor, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """``batch_size`` rows of ``x`` drawn without replacement by ``generator`` (all of ``x``,
    in order, when it has no more rows than that)."""
    n = x.shape[0]
    if n <= batch_size:
        return x
    return x[torch.randperm(n, generator=generator)[:batch_size].to(x.device)]


@contextlib.contextmanager
def trainable_only(
    params: Iterable[nn.Parameter], trainable: Iterable[nn.Parameter] = ()
) -> Iterator[None]:
    """Within the block, ``requires_grad`` is True on the ``params`` that are in ``trainable``
    and False on the others; each one's own flag comes back on exit, error or not.

    Examples:
        >>> a, b = nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))
        >>> with trainable_only([a, b], [b]):
        ...     print(a.requires_grad, b.requires_grad)
        False True
        >>> a.requires_grad, b.requires_grad
        (True, True)
    """
    flags = [(p, p.requires_grad) for p in params]
    keep = {id(p) for p in trainable}
    try:
        for p, _ in flags:
            p.requires_grad_(id(p) in keep)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
