"""Magnitude pruning: the baseline of the pruning family.

Unstructured (``structure="weights"``, Han et al. 2015): among the ``n`` prunable weights of
the encoder (the ``Linear``/``Conv2d`` weights, :mod:`semcom.compression.prunable`), zero the
``k = floor(s · n + 1/2)`` of smallest ``|w|``, either

* ``scope="global"``: the ``k`` smallest over all layers together, or
* ``scope="layer"``: layer ``l`` loses ``floor(k · n_l / n)`` or one more (largest remainder,
  :func:`~semcom.compression.budget.split_count`), its smallest ``|w|`` first.

Structured (``structure="channels"``, Li et al. 2017, "Pruning Filters for Efficient ConvNets",
arXiv:1608.08710): a channel's score is the L1 norm of its filter (its row of the producing
layer's weight), ``s_c = Σ |W[c, ...]|``; the lowest ``k`` of the ``n`` hidden channels go,
with each channel's whole coupled group (:mod:`semcom.compression.groups`: bias, norm, PReLU
and the next layer's input columns). Every layer keeps at least one channel.

Ties are broken by position, so the result is deterministic; no data is used.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from semcom.compression.base import COMPRESSION, Compressor
from semcom.compression.budget import (
    check_choice,
    check_meetable,
    check_sparsity,
    lowest,
    lowest_with_caps,
    split_count,
)
from semcom.compression.groups import slice_values, unit_families, zero_units
from semcom.compression.prunable import apply_masks, prunable_weights

SCOPES = ("global", "layer")
STRUCTURES = ("weights", "channels")


def magnitude_masks(
    weights: list[tuple[str, torch.Tensor]], count: int, scope: str
) -> dict[str, torch.Tensor]:
    """Keep masks (bool, shaped like each weight) that remove the ``count`` smallest ``|w|``.

    Examples:
        >>> w = [("a", torch.tensor([0.5, -0.1])), ("b", torch.tensor([[0.3, -2.0]]))]
        >>> {k: v.tolist() for k, v in magnitude_masks(w, 2, "global").items()}
        {'a': [True, False], 'b': [[False, True]]}
    """
    masks = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights}
    if scope == "global":
        flat = torch.cat([w.detach().abs().reshape(-1).cpu() for _, w in weights])
        gone = lowest(flat, count)
        start = 0
        for name, w in weights:
            local = gone[(gone >= start) & (gone < start + w.numel())] - start
            masks[name].view(-1)[local.to(w.device)] = False
            start += w.numel()
    else:
        parts = split_count(count, [w.numel() for _, w in weights])
        for (name, w), part in zip(weights, parts, strict=True):
            local = lowest(w.detach().abs().reshape(-1).cpu(), part)
            masks[name].view(-1)[local.to(w.device)] = False
    return masks


@COMPRESSION.register(
    "magnitude",
    description="Baseline: prune the smallest |w| (global or per layer) or L1-norm channels",
    paper="arXiv:1506.02626",
)
class MagnitudePruning(Compressor):
    """Zero the encoder's smallest weights, or its channels of smallest filter L1 norm.

    Args:
        sparsity: fraction ``s`` in ``[0, 1)`` of the prunable units removed: weights
            (``structure="weights"``) or hidden channels (``structure="channels"``).
        scope: ``"global"`` (one ranking over all layers; default) or ``"layer"`` (the same
            fraction of every layer).
        structure: ``"weights"`` (unstructured; default) or ``"channels"`` (L1-norm filter
            pruning of whole coupled channel groups).

    Raises:
        ConfigError: a bad option; at compress time, a ``sparsity`` that would empty a layer
            under ``structure="channels"``.

    Examples:
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> result = MagnitudePruning(sparsity=0.5).compress(build_model("mlp", 8))
        >>> result.details["pruned"] == result.details["prunable"] // 2
        True
    """

    name = "magnitude"

    def __init__(
        self, sparsity: float = 0.5, scope: str = "global", structure: str = "weights"
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        self.scope = check_choice("scope", scope, SCOPES)
        self.structure = check_choice("structure", structure, STRUCTURES)

    def _compress(self, model: nn.Module, images: Any) -> tuple[dict[str, Any], dict[str, float]]:
        if self.structure == "weights":
            weights = prunable_weights(model)
            total = sum(w.numel() for _, w in weights)
            count = check_meetable(self.sparsity, total, total, "weights")
            masks = magnitude_masks(weights, count, self.scope)
            apply_masks(model, masks)
            per_layer = {n: int((~m).sum().item()) for n, m in masks.items()}
            details = {"unit": "weights", "prunable": total, "pruned": count}
            return {**details, "per_layer": per_layer}, {}
        families = unit_families(model)
        total = sum(f.units for f in families)
        count = check_meetable(self.sparsity, total, total - len(families), "channels")
        scores = [slice_values(model, f.slices[0]).abs().sum(dim=1) for f in families]
        if self.scope == "global":
            chosen = lowest_with_caps(scores, count, keep=1)
        else:
            parts = split_count(count, [f.units for f in families], keep=1)
            chosen = [lowest(s, k) for s, k in zip(scores, parts, strict=True)]
        for family, units in zip(families, chosen, strict=True):
            zero_units(model, family, units)
        per_layer = {f.name: int(c.numel()) for f, c in zip(families, chosen, strict=True)}
        return {"unit": "channels", "prunable": total, "pruned": count, "per_layer": per_layer}, {}
