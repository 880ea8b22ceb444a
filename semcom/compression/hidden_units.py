"""Hidden units of an encoder: the players of structured (unit/channel) pruning.

A *unit group* is one layer's output units as the next layer reads them: a ``producer``
(``Linear``/``Conv2d``) whose output unit ``k`` (a neuron, or a channel of a convolution) feeds,
after element-wise or per-channel layers, input ``k`` of a ``consumer``. The groups are

* ``mlp`` and ``cnn`` (``model.encoder`` is a Sequential): every ``Linear``/``Conv2d`` of the
  encoder but the last (its outputs are the features ``z``), consumed by the next one;
* ``vit``: the MLP hidden neurons of every encoder block (``fc1`` -> GELU -> ``fc2``), the units
  that MLP pruning of vision transformers removes; the residual stream is not a hidden unit.

Removing unit ``k`` zeroes row ``k`` (and bias ``k``) of the producer and input column ``k`` of the
consumer (:func:`remove_units`), so the architecture and every tensor shape are unchanged and the
measured non-zero parameters and effective FLOPs fall by what a physical removal saves.
:func:`gated` evaluates the same removal, or a soft participation, without touching the weights.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from channels.errors import fail
from semcom.compression.base import compressible_layers
from semcom.compression.budget import target_count


@dataclass(frozen=True, eq=False)
class UnitGroup:
    """The output units of ``producer`` as inputs of ``consumer``.

    Attributes:
        name: qualified name of the producer in the model.
        producer: the ``Linear``/``Conv2d`` whose output units these are.
        consumer: the next ``Linear``/``Conv2d``; its input ``k`` is unit ``k``.
        size: number of units (``out_features`` / ``out_channels`` of the producer).
    """

    name: str
    producer: nn.Module
    consumer: nn.Module
    size: int


def _width(layer: nn.Module, side: str) -> int:
    if isinstance(layer, nn.Linear):
        return layer.out_features if side == "out" else layer.in_features
    return layer.out_channels if side == "out" else layer.in_channels


def unit_groups(model: nn.Module) -> list[UnitGroup]:
    """The prunable unit groups of ``model``'s encoder, in forward order (module docstring).

    Raises:
        ConfigError: (field ``model``) for a codec without hidden units of these kinds.
    """
    groups: list[UnitGroup] = []
    if isinstance(getattr(model, "encoder", None), nn.Sequential):
        layers = compressible_layers(model)
        for (name, a), (_, b) in zip(layers[:-1], layers[1:], strict=True):
            if type(a) is not type(b) or _width(a, "out") != _width(b, "in"):
                raise fail(
                    "model", type(model).__name__, "an encoder of chained Linear/Conv2d layers"
                )
            groups.append(UnitGroup(name, a, b, _width(a, "out")))
    elif isinstance(getattr(model, "enc_blocks", None), nn.ModuleList):
        names = {id(m): n for n, m in model.named_modules()}
        for block in model.enc_blocks:
            fc1, fc2 = block.mlp[0], block.mlp[-1]
            groups.append(UnitGroup(names[id(fc1)], fc1, fc2, fc1.out_features))
    if not groups:
        raise fail(
            "model", type(model).__name__, "a codec with hidden encoder units (mlp, cnn, vit)"
        )
    return groups


def _channel_shape(layer: nn.Module, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``gate`` ``[size]`` or ``[B, size]`` shaped to broadcast over ``x`` along the unit axis."""
    if isinstance(layer, nn.Linear):  # units on the last axis: [B, ..., size]
        if gate.ndim == 1:
            return gate
        return gate.reshape(gate.shape[0], *([1] * (x.ndim - 2)), gate.shape[1])
    if gate.ndim == 1:  # Conv2d: units on axis 1 of [B, C, H, W]
        return gate.reshape(1, -1, 1, 1)
    return gate.reshape(gate.shape[0], gate.shape[1], 1, 1)


@contextlib.contextmanager
def gated(gates: Mapping[UnitGroup, torch.Tensor], *, both_sides: bool = False) -> Iterator[None]:
    """Multiply each group's units by a gate while the block runs.

    Args:
        gates: group -> gate ``[size]`` (or ``[B, size]``, one per image) of any real values;
            it multiplies input ``k`` of the consumer (the unit's output as the next layer
            sees it; the first-order Taylor score of unit ``k`` is ``∂L/∂gate_k`` at 1).
        both_sides: also multiply output ``k`` of the producer. With 0/1 gates this equals
            :func:`remove_units` exactly, also where a cross-channel normalisation (GDN) sits
            between producer and consumer.
    """
    handles = []

    def consumer_hook(gate: torch.Tensor):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            x = args[0]
            return (x * _channel_shape(module, x, gate).to(x.dtype), *args[1:])

        return hook

    def producer_hook(gate: torch.Tensor):  # noqa: ANN202
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
            return out * _channel_shape(module, out, gate).to(out.dtype)

        return hook

    try:
        for group, gate in gates.items():
            handles.append(group.consumer.register_forward_pre_hook(consumer_hook(gate)))
            if both_sides:
                handles.append(group.producer.register_forward_hook(producer_hook(gate)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def unit_target(groups: list[UnitGroup], sparsity: float | None) -> tuple[int, int | None]:
    """``(total, target)``: the hidden units of ``groups`` and how many to remove at
    ``sparsity`` (:func:`~semcom.compression.budget.target_count`, every group keeping one unit;
    ``None`` when ``sparsity`` is ``None``, the methods' adaptive mode).

    Raises:
        ConfigError: (field ``sparsity``) a target the groups cannot meet.
    """
    total = sum(g.size for g in groups)
    if sparsity is None:
        return total, None
    return total, target_count(sparsity, total, total - len(groups), "hidden units")


def remove_units(group: UnitGroup, keep: torch.Tensor) -> int:
    """Zero the units of ``group`` where ``keep`` ``[size]`` (bool) is False, in place.

    Zeroes producer row ``k`` and bias ``k`` and consumer input column ``k``. Returns the
    number of units removed.
    """
    keep = keep.to(torch.bool).reshape(-1)
    if keep.numel() != group.size:
        raise ValueError(f"{group.name}: keep has {keep.numel()} entries, group has {group.size}")
    drop = ~keep.to(group.producer.weight.device)
    with torch.no_grad():
        group.producer.weight[drop] = 0.0
        if group.producer.bias is not None:
            group.producer.bias[drop] = 0.0
        group.consumer.weight[:, drop] = 0.0
    return int(drop.sum())


def scale_units(group: UnitGroup, scale: torch.Tensor) -> None:
    """Fold a per-unit factor into the consumer: input column ``k`` times ``scale[k]``.

    After it the model computes what :func:`gated` with ``{group: scale}`` computed.
    """
    with torch.no_grad():
        w = group.consumer.weight
        shape = (1, -1) + (1,) * (w.ndim - 2)
        w.mul_(scale.to(device=w.device, dtype=w.dtype).reshape(shape))
