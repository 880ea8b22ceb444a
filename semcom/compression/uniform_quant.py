"""Baseline ``uniform-quant``: symmetric uniform round-to-nearest weight quantisation.

Every ``Linear``/``Conv2d`` weight of the encoder is replaced by its de-quantised ``b``-bit
round-to-nearest value (:func:`~semcom.compression.quantise.round_to_nearest`): one float16
scale per output channel (``granularity="channel"``) or per tensor (``"tensor"``). Biases,
normalisation and activation parameters and the ViT position embedding stay float32.

Reported bits per quantised weight: ``b + 16 · scales / weights`` (the scales are stored too).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from semcom.compression.base import COMPRESSION, Compressor, compressible_layers
from semcom.compression.quantise import (
    check_bits,
    check_granularity,
    round_to_nearest,
    set_weight_matrix,
    stored_bits,
    weight_matrix,
)


@COMPRESSION.register(
    "uniform-quant",
    description="Symmetric uniform round-to-nearest weights at b bits, per channel or per tensor",
    paper="arXiv:1806.08342",
)
class UniformQuant(Compressor):
    """Round-to-nearest ``b``-bit quantisation of every encoder weight matrix.

    Args:
        bits: code bits per weight, 2..16.
        granularity: ``"channel"`` (one scale per output channel) or ``"tensor"``.

    Examples:
        >>> from semcom.models.build import build_model
        >>> result = UniformQuant(bits=4).compress(build_model("mlp", 8))
        >>> round(result.details["quantised_weight_bits"], 4)      # 4 + 16·rows/weights
        4.125
    """

    name = "uniform-quant"

    def __init__(self, bits: int = 8, granularity: str = "channel") -> None:
        self.bits = check_bits("bits", bits, 2, 16)
        self.granularity = check_granularity(granularity)

    @torch.no_grad()
    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        bits: dict[str, float] = {}
        weights = 0
        stored = 0.0
        for name, layer in compressible_layers(model):
            w = weight_matrix(layer)
            q, scales = round_to_nearest(w, self.bits, self.granularity)
            set_weight_matrix(layer, q)
            bits[f"{name}.weight"] = stored_bits(self.bits, w.numel(), scales)
            weights += w.numel()
            stored += bits[f"{name}.weight"] * w.numel()
        details = {
            "bits": self.bits,
            "granularity": self.granularity,
            "layers": len(bits),
            "quantised_weights": weights,
            "quantised_weight_bits": stored / weights if weights else 0.0,
        }
        return details, bits
