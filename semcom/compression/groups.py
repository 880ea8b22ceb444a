"""Coupled channel groups of the encoders: what structured pruning removes together.

A hidden unit of a network lives in several tensors at once. Output channel ``c`` of a
convolution is row ``c`` of its weight and entry ``c`` of its bias, entry ``c`` of the norm and
PReLU that follow, and input channel ``c`` (a column block) of the next convolution. Removing the
channel means removing all of them: a *group*. A :class:`UnitFamily` lists the groups of one
layer, one per unit, as :class:`Slice` s, ``(parameter, dimension, indices per unit)``.

Families of the semcom encoders (built by :func:`unit_families`):

* ``cnn`` / ``mlp`` (an ``nn.Sequential``): the output channels (units) of every ``Conv2d`` /
  ``Linear`` but the last, coupled with the modules up to the next such layer (GDN ``b``,
  ``g`` rows and columns; BatchNorm ``weight``/``bias``; a per-channel PReLU) and with the
  next layer's input channel. A PReLU with one shared slope is not per channel.
* ``vit``: per encoder block, the MLP's hidden units (``fc1`` row and bias, ``fc2`` column)
  and the attention heads (the head's ``q``, ``k``, ``v`` rows and biases of ``qkv``, its
  columns of ``out``).

The last layer's outputs (the latent, i.e. the semantic features) and the ViT's residual
stream are not families: zeroing a latent channel changes what the link carries, and a
residual dimension is normalised by LayerNorm together with all others, so zeroing it is not
the same as removing it.

Equivalence (tested): zeroing every slice of some units gives a network whose outputs equal
those of the physically smaller network without those units. The in-between modules map a zero
input to zero (PReLU, GDN, and BatchNorm once its ``weight`` and ``bias`` are zeroed), and a
head with zero ``q``, ``k``, ``v`` and ``out`` columns adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from channels.errors import fail
from semcom.compression.base import encoder_modules
from semcom.models.attention import TransformerBlock
from semcom.models.gdn import GDN


@dataclass(frozen=True)
class Slice:
    """One operator's share of a family: unit ``u`` owns ``index[u]`` along ``dim`` of ``param``.

    Attributes:
        param: qualified parameter name (``model.named_parameters()``).
        dim: the dimension the units index.
        index: int64 ``[units, width]``.
        role: ``"out"`` (the producing layer's rows and bias), ``"norm"``, ``"act"`` or
            ``"in"`` (the consuming layer's input columns).
    """

    param: str
    dim: int
    index: torch.Tensor
    role: str


@dataclass(frozen=True)
class UnitFamily:
    """The prunable units of one layer and the slices each unit couples.

    Attributes:
        name: the producing module's qualified name (``"encoder.0"``,
            ``"enc_blocks.0.mlp.0"``, ``"enc_blocks.0.attn.qkv"``).
        kind: ``"channel"`` (conv/linear output units), ``"hidden"`` (ViT MLP) or ``"head"``.
        units: number of units.
        slices: the coupled slices.
        consumer: qualified name of the ``Linear``/``Conv2d`` that reads the units.
        columns: int64 ``[units, width]``: unit ``u``'s columns of the consumer's weight
            flattened to ``[out, in · k · k]`` (``in`` channel-major, as ``F.unfold`` orders it).
    """

    name: str
    kind: str
    units: int
    slices: tuple[Slice, ...]
    consumer: str
    columns: torch.Tensor


def _rows(n: int, width: int = 1) -> torch.Tensor:
    return torch.arange(n * width).reshape(n, width)


def _consumer_columns(layer: nn.Module, units: int) -> torch.Tensor:
    per = layer.weight[0].numel() // layer.weight.shape[1]  # k·k for a conv, 1 for a linear
    return _rows(units, per)


def _sequential_families(seq: nn.Sequential, prefix: str) -> list[UnitFamily]:
    modules = list(seq.named_children())
    layers = [i for i, (_, m) in enumerate(modules) if isinstance(m, nn.Linear | nn.Conv2d)]
    families = []
    for a, b in zip(layers, layers[1:], strict=False):
        name, layer = modules[a]
        cname, consumer = modules[b]
        if isinstance(layer, nn.Conv2d) and layer.groups != 1:
            raise fail("model", f"grouped convolution {prefix}.{name}", "groups=1 convolutions")
        units = layer.weight.shape[0]
        slices = [Slice(f"{prefix}.{name}.weight", 0, _rows(units), "out")]
        if layer.bias is not None:
            slices.append(Slice(f"{prefix}.{name}.bias", 0, _rows(units), "out"))
        for mid_name, mid in modules[a + 1 : b]:
            p = f"{prefix}.{mid_name}"
            if isinstance(mid, GDN):
                slices += [
                    Slice(f"{p}.b", 0, _rows(units), "norm"),
                    Slice(f"{p}.g", 0, _rows(units), "norm"),
                    Slice(f"{p}.g", 1, _rows(units), "norm"),
                ]
            elif isinstance(mid, nn.BatchNorm2d | nn.BatchNorm1d):
                slices += [
                    Slice(f"{p}.weight", 0, _rows(units), "norm"),
                    Slice(f"{p}.bias", 0, _rows(units), "norm"),
                ]
            elif isinstance(mid, nn.PReLU):
                if mid.weight.numel() == units:
                    slices.append(Slice(f"{p}.weight", 0, _rows(units), "act"))
            elif not isinstance(mid, nn.Identity | nn.ReLU | nn.GELU | nn.Flatten):
                raise fail("model", type(mid).__name__, "an encoder of known layer types")
        slices.append(Slice(f"{prefix}.{cname}.weight", 1, _rows(units), "in"))
        families.append(
            UnitFamily(
                f"{prefix}.{name}",
                "channel",
                units,
                tuple(slices),
                f"{prefix}.{cname}",
                _consumer_columns(consumer, units),
            )
        )
    return families


def _block_families(block: TransformerBlock, prefix: str) -> list[UnitFamily]:
    fc1, fc2 = block.mlp[0], block.mlp[2]
    hidden = fc1.out_features
    mlp = UnitFamily(
        f"{prefix}.mlp.0",
        "hidden",
        hidden,
        (
            Slice(f"{prefix}.mlp.0.weight", 0, _rows(hidden), "out"),
            Slice(f"{prefix}.mlp.0.bias", 0, _rows(hidden), "out"),
            Slice(f"{prefix}.mlp.2.weight", 1, _rows(hidden), "in"),
        ),
        f"{prefix}.mlp.2",
        _consumer_columns(fc2, hidden),
    )
    heads = block.attn.heads
    d = block.attn.out.in_features
    dh = d // heads
    # head h owns rows p·d + h·dh + j of qkv (p = q, k, v; j < dh) and columns h·dh + j of out
    qkv_rows = torch.stack(
        [torch.cat([p * d + h * dh + torch.arange(dh) for p in range(3)]) for h in range(heads)]
    )
    head = UnitFamily(
        f"{prefix}.attn.qkv",
        "head",
        heads,
        (
            Slice(f"{prefix}.attn.qkv.weight", 0, qkv_rows, "out"),
            Slice(f"{prefix}.attn.qkv.bias", 0, qkv_rows, "out"),
            Slice(f"{prefix}.attn.out.weight", 1, _rows(heads, dh), "in"),
        ),
        f"{prefix}.attn.out",
        _rows(heads, dh),
    )
    return [head, mlp]


def unit_families(model: nn.Module) -> list[UnitFamily]:
    """The prunable unit families of ``model``'s encoder, in forward order (module docstring).

    Raises:
        ConfigError: (field ``model``) an encoder this module does not know how to group.
    """
    tops = encoder_modules(model)
    if len(tops) == 1 and isinstance(tops[0], nn.Sequential):
        families = _sequential_families(tops[0], "encoder")
    elif hasattr(model, "enc_blocks"):
        families = []
        for b, block in enumerate(model.enc_blocks):
            if not isinstance(block, TransformerBlock):
                raise fail("model", type(block).__name__, "ViT encoder blocks")
            families += _block_families(block, f"enc_blocks.{b}")
    else:  # pragma: no cover - encoder_modules accepts only the two shapes above
        raise fail("model", type(model).__name__, "a cnn, mlp or vit codec")
    if not families:
        raise fail("model", type(model).__name__, "an encoder with hidden units to prune")
    return families


@torch.no_grad()
def zero_units(model: nn.Module, family: UnitFamily, units: Sequence[int] | torch.Tensor) -> None:
    """Zero every slice of ``units`` of ``family`` in ``model`` (in place)."""
    units = torch.as_tensor(units, dtype=torch.int64).reshape(-1)
    if units.numel() == 0:
        return
    params = dict(model.named_parameters())
    for s in family.slices:
        p = params[s.param]
        p.index_fill_(s.dim, s.index[units].reshape(-1).to(p.device), 0.0)


def slice_values(
    model: nn.Module, s: Slice, tensors: dict[str, torch.Tensor] | None = None
) -> torch.Tensor:
    """The values of slice ``s`` as float64 ``[units, m]`` (unit ``u``'s entries in row ``u``),
    read from ``tensors`` (name -> tensor, e.g. gradients) when given, else the parameters."""
    source = tensors if tensors is not None else dict(model.named_parameters())
    t = source[s.param].detach().to(torch.float64)
    units, width = s.index.shape
    picked = t.index_select(s.dim, s.index.reshape(-1).to(t.device))
    picked = picked.movedim(s.dim, 0).reshape(units, width, -1)
    return picked.reshape(units, -1)


def live_units(model: nn.Module, family: UnitFamily) -> torch.Tensor:
    """Boolean ``[units]``: True where some ``"out"`` slice entry of the unit is non-zero."""
    alive = torch.zeros(family.units, dtype=torch.bool)
    for s in family.slices:
        if s.role == "out":
            alive |= (slice_values(model, s) != 0).any(dim=1).cpu()
    return alive
