"""The token-reduction step of the importance methods that drop, merge or recycle features.

Some importance methods do more than score features: they decide, per image, which features
survive (pruning), or fold several features into one (merging). A scheme can use that step as
its feature-selection stage before allocation: features outside ``keep`` are not sent, and the
receiver treats them as it treats any unsent feature (zero-filled, as the link does for a
feature the allocator did not select).

A reducing estimator implements :class:`TokenReducer`::

    reduction = estimator.reduce(model, images, keep=8)
    reduction.keep       # bool [B, N]: exactly ``keep`` True per image
    reduction.features   # float [B, N, L]: what is sent for the kept features (a merged
                         # feature carries its group's merged value); rows outside ``keep`` are 0
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from channels.errors import fail
from semcom.importance.base import as_images, check_model, eval_mode, model_dtype_device


@dataclass(frozen=True)
class Reduction:
    """Per-image outcome of a token-reduction step.

    Attributes:
        keep: bool ``[B, N]``; ``keep[b, i]`` is True when feature ``i`` of image ``b`` is sent.
        features: ``[B, N, L]``, the features to send; zero where ``keep`` is False.
    """

    keep: torch.Tensor
    features: torch.Tensor

    def __post_init__(self) -> None:
        if self.keep.dtype != torch.bool or self.keep.ndim != 2:
            raise fail(
                "reduction keep", f"{self.keep.dtype} {tuple(self.keep.shape)}", "bool [B, N]"
            )
        if self.features.ndim != 3 or tuple(self.features.shape[:2]) != tuple(self.keep.shape):
            raise fail(
                "reduction features",
                f"shape {tuple(self.features.shape)}",
                f"[B, N, L] with [B, N] = {tuple(self.keep.shape)}",
            )

    @property
    def kept_per_image(self) -> torch.Tensor:
        """Number of kept features per image, int64 ``[B]``."""
        return self.keep.sum(dim=1)


def check_keep(keep: Any, n_features: int) -> int:
    """``keep`` as an integer in ``[1, n_features]`` or ConfigError naming the field."""
    if isinstance(keep, bool) or not isinstance(keep, int) or not 1 <= keep <= n_features:
        raise fail("keep", keep, f"an integer in [1, {n_features}]")
    return int(keep)


def top_k_mask(scores: torch.Tensor, keep: int) -> torch.Tensor:
    """Bool ``[B, N]`` marking the ``keep`` largest scores per row (ties: the lower index)."""
    n = scores.shape[1]
    # A tiny index-dependent tie-break keeps the choice deterministic across devices.
    tie = torch.arange(n, device=scores.device, dtype=torch.float64) * 1e-12
    order = torch.argsort(scores.to(torch.float64) - tie, dim=1, descending=True, stable=True)
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask.scatter_(1, order[:, :keep], True)
    return mask


def reduce_in_batches(
    model: Any,
    images: Any,
    keep: Any,
    batch_size: int,
    step: Callable[[torch.Tensor, int], tuple[torch.Tensor, torch.Tensor]],
) -> Reduction:
    """Run a per-batch reduction ``step(x, keep) -> (mask, features)`` over ``images``.

    Checks ``model`` and ``keep`` (an integer in ``[1, N]``), casts each batch of at most
    ``batch_size`` images to the model's dtype and device, runs ``step`` with the model in
    eval mode and concatenates the per-batch bool ``[b, N]`` masks and ``[b, N, L]`` features.

    Args:
        model: a semantic model (``encode``, ``decode``, ``n_features``).
        images: ``[B, C, H, W]`` (a Tensor, an array or a data set with ``.images``).
        keep: features kept per image.
        batch_size: images per call of ``step``.
        step: ``(x [b, C, H, W], keep) -> (keep mask [b, N], features [b, N, L])``.

    Returns:
        The :class:`Reduction` of all ``B`` images.

    Raises:
        ConfigError: a bad model, images or ``keep``.
    """
    check_model(model)
    keep = check_keep(keep, int(model.n_features))
    images = as_images(images)
    dtype, device = model_dtype_device(model, images)
    keeps, feats = [], []
    with eval_mode(model):
        for start in range(0, images.shape[0], batch_size):
            x = images[start : start + batch_size].to(device=device, dtype=dtype)
            mask, features = step(x, keep)
            keeps.append(mask)
            feats.append(features)
    return Reduction(keep=torch.cat(keeps), features=torch.cat(feats))


@runtime_checkable
class TokenReducer(Protocol):
    """An estimator that can also reduce features: ``reduce(model, images, keep) -> Reduction``."""

    def reduce(self, model: Any, images: Any, keep: int) -> Reduction: ...
