"""Layer-wise quantisation beyond integer bits (Dumitru et al., arXiv:2406.17415).

The encoder's layers are ranked by an importance score; the most important ones are quantised
at ``b + 1`` bits and the rest at ``b`` bits, so the *mean bits over layers* reaches a
fractional target ``B̄`` exactly: with ``U`` layers, ``b = floor(B̄)`` and
``n_high = (B̄ - b) · U`` layers at ``b + 1`` (``B̄`` must be a multiple of ``1/U``).

A *layer* (unit) is a ViT encoder block (all its linears), the patch embedding or the ``to_z``
head; in the MLP and the conv codec, each ``Linear``/``Conv2d``. Scores (higher = more
important):

- ``lim`` (layer input modification): how much a unit changes its input on the calibration
  images, ``LIM = mean over tokens of (1 - cos(x_in, x_out))`` when input and output have the
  same shape (ViT blocks, the paper's definition; tokens are the last axis, conv positions the
  channel axis). Where the unit changes the width (embeddings, most MLP/conv layers) the cosine
  is undefined; the stand-in is ``1 - CKA(x_in, x_out)`` with linear CKA over images (rows are
  the flattened images). Both are 0 for an identity (or isometric) unit.
- ``zd`` (z-score distribution): the share ``ZD`` of the unit's weights with ``|z| > 1``,
  ``z = (w - mean) / std``; *fewer* outliers mark a *more* important layer, so the score is
  ``1 - ZD``. Data-free.
- ``random``: a seeded random ranking (the paper's control).

Each layer is then quantised by round-to-nearest (``quantiser="rtn"``, one float16 scale per
output channel) or GPTQ (``"gptq"``, calibrated layer by layer) at its bits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from channels.errors import ConfigError, check_int, fail
from semcom.compression.base import COMPRESSION, Compressor, compressible_layers
from semcom.compression.calibration import calibration_images, check_batch_size, check_layer
from semcom.compression.gptq import gptq, layer_hessian
from semcom.compression.quantise import (
    round_to_nearest,
    set_weight_matrix,
    stored_bits,
    weight_matrix,
)

SCORES = ("lim", "zd", "random")
QUANTISERS = ("rtn", "gptq")


def quant_units(model: nn.Module) -> list[tuple[str, nn.Module, list[tuple[str, nn.Module]]]]:
    """``(name, module, its Linear/Conv2d layers)`` of every unit in encoder order."""
    layers = compressible_layers(model)
    blocks = getattr(model, "enc_blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        return [(name, layer, [(name, layer)]) for name, layer in layers]
    units = []
    for unit_name in ["embed", *(f"enc_blocks.{i}" for i in range(len(blocks))), "to_z"]:
        inside = [(n, m) for n, m in layers if n == unit_name or n.startswith(unit_name + ".")]
        units.append((unit_name, model.get_submodule(unit_name), inside))
    return units


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA of rows ``x`` ``[M, p]`` and ``y`` ``[M, q]`` from centred Gram matrices,
    ``<K, L> / (||K|| ||L||)`` with ``K = X_c X_cᵀ``, ``L = Y_c Y_cᵀ``; 1 for ``y = x Q``
    (``Q`` with orthonormal columns). Needs ``M >= 2``.

    Examples:
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> round(linear_cka(x, 3 * x), 12), round(linear_cka(x, x[:, :1]), 4)
        (1.0, 0.7906)
    """
    xc = x.to(torch.float64) - x.to(torch.float64).mean(0)
    yc = y.to(torch.float64) - y.to(torch.float64).mean(0)
    k, l_ = xc @ xc.T, yc @ yc.T
    den = torch.linalg.norm(k) * torch.linalg.norm(l_)
    return float((k * l_).sum() / den) if den > 0 else 0.0


def lim_score(x_in: torch.Tensor, x_out: torch.Tensor) -> float:
    """``mean(1 - cos)`` over tokens for equal shapes, else ``1 - linear CKA`` over images."""
    if x_in.shape == x_out.shape:
        axis = 1 if x_in.ndim == 4 else -1  # conv maps: a token is a position, cos over channels
        cos = torch.nn.functional.cosine_similarity(
            x_in.to(torch.float64), x_out.to(torch.float64), dim=axis, eps=1e-12
        )
        return float((1.0 - cos).mean())
    return 1.0 - linear_cka(x_in.reshape(x_in.shape[0], -1), x_out.reshape(x_out.shape[0], -1))


def zd_share(weights: torch.Tensor) -> float:
    """Share of entries with ``|z| > 1``, ``z = (w - mean) / std`` (population std)."""
    w = weights.to(torch.float64).reshape(-1)
    std = w.std(unbiased=False)
    if std == 0:
        return 0.0
    return float(((w - w.mean()).abs() > std).to(torch.float64).mean())


@COMPRESSION.register(
    "layerwise-quant",
    description="Layers ranked by input change (LIM) or weight outliers (ZD) get b+1 or b bits",
    paper="arXiv:2406.17415",
)
class LayerwiseQuant(Compressor):
    """Fractional mean bits over layers: important layers at ``b + 1``, the rest at ``b``.

    Args:
        bits: target mean bits over the layers ``B̄`` in ``[2, 8]``; a multiple of ``1/U`` for a
            codec with ``U`` layers (checked at :meth:`compress`).
        importance: ``"lim"`` (needs images), ``"zd"`` or ``"random"``.
        quantiser: ``"rtn"`` or ``"gptq"`` (needs images).
        damp: GPTQ damping (``quantiser="gptq"``).
        batch_size: calibration images per encoder pass.
        seed: seed of the ``random`` ranking.

    Raises:
        ConfigError: bad options; at :meth:`compress`: ``bits`` not a multiple of ``1/U``, or no
            (or fewer than 2) images for ``lim`` / no images for ``gptq``.
    """

    name = "layerwise-quant"

    def __init__(
        self,
        bits: float = 3.5,
        importance: str = "lim",
        quantiser: str = "rtn",
        damp: float = 0.01,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if isinstance(bits, bool) or not isinstance(bits, int | float) or not 2 <= bits <= 8:
            raise fail("bits", bits, "a number in [2, 8]")
        self.bits = bits
        if importance not in SCORES:
            raise fail("importance", importance, ", ".join(SCORES))
        self.importance = importance
        if quantiser not in QUANTISERS:
            raise fail("quantiser", quantiser, ", ".join(QUANTISERS))
        self.quantiser = quantiser
        if isinstance(damp, bool) or not isinstance(damp, int | float) or not 0 < damp < math.inf:
            raise fail("damp", damp, "a finite number > 0")
        self.damp = float(damp)
        self.batch_size = check_batch_size(batch_size)
        self.seed = check_int("seed", seed, 0, 2**63 - 1)

    def split(self, n_units: int) -> tuple[int, int]:
        """``(b, n_high)``: low bits and the number of units at ``b + 1`` for ``n_units``."""
        low = math.floor(self.bits)
        high = (self.bits - low) * n_units
        if abs(high - round(high)) > 1e-9:
            raise ConfigError(
                f"bits: {self.bits!r} is invalid; allowed: {low} + k/{n_units}, k = 0..{n_units} "
                f"(a whole number of the codec's {n_units} layers at {low + 1} bits)"
            )
        return low, int(round(high))

    @torch.no_grad()
    def scores(self, model: nn.Module, images: torch.Tensor | None) -> np.ndarray:
        """Importance of every unit of :func:`quant_units` (higher = more important)."""
        units = quant_units(model)
        if self.importance == "random":
            return np.random.default_rng(self.seed).permutation(len(units)).astype(np.float64)
        if self.importance == "zd":
            return np.array(
                [1.0 - zd_share(torch.cat([m.weight.reshape(-1) for _, m in ls]))
                 for _, _, ls in units]
            )  # fmt: skip
        if images is None or images.shape[0] < 2:
            raise fail("images", None if images is None else f"{images.shape[0]} image",
                       "at least 2 calibration images for importance 'lim'")  # fmt: skip
        seen: dict[int, tuple[list[torch.Tensor], list[torch.Tensor]]] = {
            id(u): ([], []) for _, u, _ in units
        }

        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            out = output[0] if isinstance(output, tuple) else output
            seen[id(module)][0].append(inputs[0])
            seen[id(module)][1].append(out)

        handles = [u.register_forward_hook(hook) for _, u, _ in units]
        try:
            for first in range(0, images.shape[0], self.batch_size):
                model.encode(images[first : first + self.batch_size])
        finally:
            for handle in handles:
                handle.remove()
        return np.array(
            [lim_score(torch.cat(seen[id(u)][0]), torch.cat(seen[id(u)][1])) for _, u, _ in units]
        )

    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        units = quant_units(model)
        low, n_high = self.split(len(units))
        if images is not None or self.importance == "lim" or self.quantiser == "gptq":
            images = calibration_images(model, images, "layerwise-quant")
        for _, _, layers in units:
            for _, layer in layers:
                check_layer(layer)
        score = self.scores(model, images)
        order = np.argsort(-score, kind="stable")  # ties: the earlier layer first
        unit_bits = np.full(len(units), low, dtype=np.int64)
        unit_bits[order[:n_high]] = low + 1
        bits: dict[str, float] = {}
        for (_, _, layers), b in zip(units, unit_bits, strict=True):
            for name, layer in layers:
                w = weight_matrix(layer)
                if self.quantiser == "gptq":
                    h = layer_hessian(model, layer, images, self.batch_size)
                    q = gptq(w, h, int(b), damp=self.damp)
                else:
                    q, _ = round_to_nearest(w, int(b))
                set_weight_matrix(layer, q)
                bits[f"{name}.weight"] = stored_bits(int(b), w.numel(), w.shape[0])
        layers = [m for _, _, ls in units for _, m in ls]
        details = {
            "target_bits": self.bits,
            "importance": self.importance,
            "quantiser": self.quantiser,
            "units": [name for name, _, _ in units],
            "scores": score.tolist(),
            "unit_bits": unit_bits.tolist(),
            "mean_unit_bits": float(unit_bits.mean()),
            "code_bits_per_weight": float(
                sum(int(b) * m.weight.numel() for (_, _, ls), b in zip(units, unit_bits,
                    strict=True) for _, m in ls) / sum(m.weight.numel() for m in layers)
            ),
        }  # fmt: skip
        return details, bits
