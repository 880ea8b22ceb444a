"""The ``compression`` family: a step applied to a trained codec before evaluation.

A compression method prunes or quantises the **encoder** of a trained semantic codec (it runs on
the sending device), optionally using calibration images, and returns a new codec (the input is
never modified) plus the measured size of its encoder::

    method = COMPRESSION.get("magnitude")(sparsity=0.5)     # options only, validated here
    result = method.compress(model, images)                  # CompressionResult
    result.model                                             # the compressed codec (a copy)
    result.size                                              # EncoderSize: params, FLOPs, bits

The decoder is left as it is: the receiver is not the constrained side. Sizes are measured by
:func:`measure_encoder` on the compressed copy, never taken from the method's own bookkeeping.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from channels.errors import fail
from semcom.params import Configurable
from semcom.registry import Registry

COMPRESSION = Registry("compression")
"""The ``compression`` method family: name -> :class:`Compressor` subclass."""

FLOAT_BITS = 32
"""Bits of one unquantised (float32) weight."""


def encoder_modules(model: nn.Module) -> list[nn.Module]:
    """The modules that make up ``model``'s encoder ``f`` (``z = tanh(f(x))``).

    ``cnn`` and ``mlp`` keep it in ``model.encoder``; the ViT in ``embed``, ``enc_blocks``,
    ``enc_norm`` and ``to_z`` (its ``pos_enc`` parameter is returned by
    :func:`encoder_parameters`). A composite codec (channel-conditioned experts, a codec behind
    a receiver-side layer) names the codecs whose encoders encode its frames with an
    ``encoder_parts()`` method; their encoders are its encoder.
    """
    parts = getattr(model, "encoder_parts", None)
    if callable(parts):
        return [m for part in parts() for m in encoder_modules(part)]
    if isinstance(getattr(model, "encoder", None), nn.Module):
        return [model.encoder]
    names = ("embed", "enc_blocks", "enc_norm", "to_z")
    if all(isinstance(getattr(model, n, None), nn.Module) for n in names):
        return [getattr(model, n) for n in names]
    raise fail("model", type(model).__name__, "a semantic codec with an encoder (cnn, mlp, vit)")


def encoder_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """``(qualified name, parameter)`` of every encoder parameter of ``model``."""
    wanted = {id(p) for m in encoder_modules(model) for p in m.parameters()}
    parts = model.encoder_parts() if callable(getattr(model, "encoder_parts", None)) else [model]
    for part in parts:
        if isinstance(getattr(part, "pos_enc", None), nn.Parameter):
            wanted.add(id(part.pos_enc))
    return [(n, p) for n, p in model.named_parameters() if id(p) in wanted]


def compressible_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(qualified name, layer)`` of the encoder's ``Linear``/``Conv2d`` layers, in order."""
    inside = {id(m) for top in encoder_modules(model) for m in top.modules()}
    return [
        (name, m)
        for name, m in model.named_modules()
        if id(m) in inside and isinstance(m, nn.Linear | nn.Conv2d)
    ]


def conv_args(layer: nn.Conv2d) -> dict[str, Any]:
    """The geometry of ``layer`` (``stride``, ``padding``, ``dilation``, ``groups``) as keyword
    arguments of ``F.conv2d`` / ``nn.Conv2d``, for a module that re-implements its convolution."""
    return {
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "groups": layer.groups,
    }


@dataclass(frozen=True)
class EncoderSize:
    """Measured size of an encoder.

    Attributes:
        params: encoder parameters (all, zero or not).
        nonzero_params: encoder parameters that are not exactly zero.
        flops: dense multiply-accumulate FLOPs (2 per MAC) of one encoder pass on one image.
        effective_flops: FLOPs of the ``Linear``/``Conv2d`` layers counting only non-zero
            weights (``2 · nnz(W) · output positions``), plus the other layers' dense FLOPs.
        weight_bits: average stored bits per encoder parameter: one of a tensor quantised to
            ``b`` bits counts ``b``, any other :data:`FLOAT_BITS` (pruning shows in
            ``nonzero_params`` and ``effective_flops``, not here).
    """

    params: int
    nonzero_params: int
    flops: float
    effective_flops: float
    weight_bits: float

    def to_dict(self) -> dict[str, float]:
        """JSON-ready fields."""
        return asdict(self)


def measure_encoder(
    model: nn.Module, image_shape: tuple[int, ...], bits: dict[str, float] | None = None
) -> EncoderSize:
    """Measure the encoder of ``model`` on one image of shape ``image_shape`` ``(C, H, W)``.

    Args:
        model: a semantic codec (:func:`encoder_modules`).
        image_shape: ``(C, H, W)`` of one input image.
        bits: stored bits per weight of named parameters (``encoder_parameters`` names) that a
            quantiser replaced; every other non-zero weight counts :data:`FLOAT_BITS`.

    Dense FLOPs come from :class:`torch.utils.flop_counter.FlopCounterMode` on a pass of
    ``model.encode``; the effective FLOPs of each ``Linear``/``Conv2d`` scale its dense FLOPs by
    its fraction of non-zero weights.
    """
    from torch.utils.flop_counter import FlopCounterMode

    bits = bits or {}
    params = encoder_parameters(model)
    total = sum(p.numel() for _, p in params)
    nonzero = sum(int(torch.count_nonzero(p).item()) for _, p in params)
    stored = sum(p.numel() * float(bits.get(n, FLOAT_BITS)) for n, p in params)
    layer_flops: dict[int, float] = {}
    hooks = []

    def record(module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        # Output positions per image: tokens for a Linear ([1, ..., out]), H·W for a Conv2d.
        channels = output.shape[-1] if isinstance(module, nn.Linear) else output.shape[1]
        positions = output.numel() // channels
        layer_flops[id(module)] = 2.0 * module.weight.numel() * positions

    layers = compressible_layers(model)
    for _, layer in layers:
        hooks.append(layer.register_forward_hook(record))
    try:
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
        x = torch.zeros((1, *image_shape), device=device, dtype=dtype)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model.encode(x)
        dense = float(counter.get_total_flops())
    finally:
        for hook in hooks:
            hook.remove()
    effective = dense
    for _, layer in layers:
        w = layer.weight
        density = float(torch.count_nonzero(w).item()) / w.numel()
        effective -= layer_flops.get(id(layer), 0.0) * (1.0 - density)
    return EncoderSize(
        params=int(total),
        nonzero_params=int(nonzero),
        flops=dense,
        effective_flops=max(effective, 0.0),
        weight_bits=stored / total if total else 0.0,
    )


@dataclass(frozen=True)
class CompressionResult:
    """Outcome of :meth:`Compressor.compress`.

    Attributes:
        model: the compressed codec (a deep copy of the input; same interface).
        size: :func:`measure_encoder` of ``model``.
        details: method-specific, JSON-ready facts (kept units per layer, ranks, bits, ...).
    """

    model: nn.Module
    size: EncoderSize
    details: dict[str, Any]


class Compressor(Configurable):
    """Base class of the ``compression`` family.

    Subclasses take their options (budgets, hyper-parameters) in ``__init__``, validate them
    there with one-line :class:`~channels.errors.ConfigError` s, and implement
    :meth:`_compress` on a private copy of the codec. A budget the codec cannot meet (e.g. more
    units to remove than it has) raises ConfigError naming the option.
    """

    name = "base"

    def compress(self, model: nn.Module, images: torch.Tensor | None = None) -> CompressionResult:
        """Compress a copy of ``model`` (using calibration ``images`` ``[B, C, H, W]`` if the
        method needs data); the input model is not modified."""
        encoder_modules(model)  # a clear error for a model without an encoder
        work = copy.deepcopy(model)
        work.eval()
        details, bits = self._compress(work, images)
        size = measure_encoder(work, tuple(work.input_shape), bits)
        return CompressionResult(work, size, details)

    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:  # pragma: no cover - abstract
        """Compress ``model`` in place; return ``(details, bits per quantised parameter)``."""
        raise NotImplementedError
