"""RSQ: rotate, scale calibration tokens by importance, then GPTQ (Sung et al., arXiv:2503.01820).

Layer by layer, in encoder order (each layer calibrated on the outputs of the layers already
quantised):

1. **Rotate.** The weight matrix ``W`` ``[out, cols]`` is replaced by ``W R`` with an
   orthogonal ``R`` (:mod:`semcom.compression.rotation`: randomised Hadamard for power-of-two
   ``cols``, Haar-random orthogonal otherwise); the layer's inputs become ``Rᵀ x`` and its
   Hessian ``Rᵀ H R``. The stored weight is ``quant(W R) Rᵀ`` (the product with the on-line
   input rotation).
2. **Scale.** Every calibration token ``x_m`` is weighted by its importance ``r_m``:
   ``H = (2/M) Σ_m r_m x_m x_mᵀ`` (the token scaled by ``sqrt(r_m)``). RSQ's importance,
   *attention concentration* (AttnCon), is the attention a token receives,
   ``r_j = Σ_h Σ_i A[h, i, j]`` of the block the layer belongs to (``embed`` uses the first
   block, ``to_z`` the last), min-max normalised per image into ``[r_min, r_max]`` (defaults
   ``[1, 3]``, the authors' code) and renormalised to mean 1. ``token_weights`` replaces it by
   given per-feature weights (e.g. ISFR importance; ViT tokens are the features), normalised the
   same way. Equal weights give the plain GPTQ Hessian exactly.
3. **Quantise** with GPTQ (:func:`semcom.compression.gptq.gptq`).

Tokens are the rows of :func:`~semcom.compression.calibration.layer_rows`: ViT tokens, MLP
images, conv output positions. Only the ViT has attention; on the other codecs
``importance="auto"`` means uniform weights (rotation + GPTQ).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from channels.errors import check_int, fail
from semcom.compression.base import COMPRESSION, Compressor, compressible_layers
from semcom.compression.calibration import (
    calibration_images,
    capture,
    check_batch_size,
    check_layer,
    layer_rows,
)
from semcom.compression.gptq import finish_hessian, gptq, weighted_hessian
from semcom.compression.quantise import (
    check_bits,
    check_granularity,
    set_weight_matrix,
    stored_bits,
    weight_matrix,
)
from semcom.compression.rotation import online_rotation_flops, rotation

IMPORTANCES = ("auto", "attention", "uniform", "given")


def _positive_float(field: str, value: Any, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise fail(field, value, f"a finite number > {low}")
    if not np.isfinite(value) or value <= low:
        raise fail(field, value, f"a finite number > {low}")
    return float(value)


def minmax_weights(scores: torch.Tensor, r_min: float, r_max: float) -> torch.Tensor:
    """Per row of ``scores`` ``[..., N]``: min-max map into ``[r_min, r_max]``, then divide by
    the mean (mean 1). A constant row becomes all ones.

    Examples:
        >>> minmax_weights(torch.tensor([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]]), 1.0, 3.0).tolist()
        [[0.5, 1.0, 1.5], [1.0, 1.0, 1.0]]
    """
    s = scores.to(torch.float64)
    lo = s.amin(dim=-1, keepdim=True)
    hi = s.amax(dim=-1, keepdim=True)
    span = hi - lo
    r = r_min + (s - lo) / torch.where(span > 0, span, torch.ones_like(span)) * (r_max - r_min)
    r = torch.where(span > 0, r, torch.ones_like(r))
    return r / r.mean(dim=-1, keepdim=True)


def attention_concentration(attn: torch.Tensor, r_min: float, r_max: float) -> torch.Tensor:
    """AttnCon token weights ``[B, N]`` from attention ``[B, heads, N, N]`` (rows = queries):
    ``Σ_h Σ_i A[b, h, i, j]``, then :func:`minmax_weights`."""
    return minmax_weights(attn.sum(dim=(1, 2)), r_min, r_max)


def _has_attention(model: nn.Module) -> bool:
    blocks = getattr(model, "enc_blocks", None)
    return isinstance(blocks, nn.ModuleList) and len(blocks) > 0


def _block_of(model: nn.Module, name: str) -> nn.Module:
    """The encoder block whose attention weights the tokens of layer ``name``."""
    blocks = model.enc_blocks
    if name.startswith("enc_blocks."):
        return blocks[int(name.split(".")[1])]
    return blocks[0] if name == "embed" else blocks[len(blocks) - 1]


@COMPRESSION.register(
    "rsq",
    description="Rotate, weight calibration tokens by attention importance, then GPTQ",
    paper="arXiv:2503.01820",
)
class RSQ(Compressor):
    """RSQ weight quantisation of the encoder (module docstring).

    Args:
        bits: code bits per weight, 2..8.
        importance: token weights: ``"attention"`` (AttnCon, ViT only), ``"uniform"`` (plain
            GPTQ Hessian), ``"given"`` (``token_weights``) or ``"auto"`` (given if
            ``token_weights`` is set, else attention when the codec has it, else uniform).
        token_weights: ``N`` non-negative per-feature weights (ViT: feature = token).
        r_min, r_max: range of the min-max normalisation of the token weights.
        rotate: apply the orthogonal rotation (step 1).
        damp: GPTQ damping relative to ``mean(diag H)``.
        granularity: ``"channel"`` or ``"tensor"`` scales.
        block_size: GPTQ lazy-update block (no effect on the result).
        batch_size: calibration images per encoder pass.
        seed: seed of the random rotations.

    Raises:
        ConfigError: bad options; at :meth:`compress`: no images, ``attention`` on a codec
            without attention, ``token_weights`` on a non-ViT codec or of the wrong length.
    """

    name = "rsq"

    def __init__(
        self,
        bits: int = 4,
        importance: str = "auto",
        token_weights: list[float] | None = None,
        r_min: float = 1.0,
        r_max: float = 3.0,
        rotate: bool = True,
        damp: float = 0.01,
        granularity: str = "channel",
        block_size: int = 128,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        self.bits = check_bits("bits", bits)
        if importance not in IMPORTANCES:
            raise fail("importance", importance, ", ".join(IMPORTANCES))
        self.importance = importance
        if token_weights is not None:
            w = np.asarray(token_weights, dtype=object).reshape(-1)
            ok = w.size > 0 and all(
                isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in w
            )
            values = np.asarray(w, dtype=np.float64) if ok else None
            if values is None or not np.all(np.isfinite(values)) or np.any(values < 0):
                raise fail("token_weights", token_weights, "a list of finite numbers >= 0")
            if values.sum() <= 0:
                raise fail("token_weights", token_weights, "not all zero")
            token_weights = values.tolist()
        if importance == "given" and token_weights is None:
            raise fail("token_weights", None, "a list of N weights when importance is 'given'")
        if importance in ("attention", "uniform") and token_weights is not None:
            raise fail("importance", importance, "'given' or 'auto' when token_weights is set")
        self.token_weights = token_weights
        self.r_min = _positive_float("r_min", r_min)
        self.r_max = _positive_float("r_max", r_max)
        if self.r_max < self.r_min:
            raise fail("r_max", r_max, f"a number >= r_min = {self.r_min}")
        if not isinstance(rotate, bool):
            raise fail("rotate", rotate, "true or false")
        self.rotate = rotate
        self.damp = _positive_float("damp", damp)
        self.granularity = check_granularity(granularity)
        self.block_size = check_int("block_size", block_size, 1, 2**20)
        self.batch_size = check_batch_size(batch_size)
        self.seed = check_int("seed", seed, 0, 2**63 - 1)

    def _mode(self, model: nn.Module) -> str:
        mode = self.importance
        if mode == "auto":
            if self.token_weights is not None:
                mode = "given"
            else:
                mode = "attention" if _has_attention(model) else "uniform"
        if mode == "attention" and not _has_attention(model):
            raise fail(
                "importance", "attention", f"uniform or given for a codec without attention "
                f"({getattr(model, 'name', type(model).__name__)})"
            )  # fmt: skip
        if mode == "given":
            if not _has_attention(model):
                raise fail("token_weights", "set", "only on the vit codec (tokens = features)")
            if len(self.token_weights) != model.n_features:
                raise fail(
                    "token_weights", f"{len(self.token_weights)} weights",
                    f"one per feature ({model.n_features})",
                )  # fmt: skip
        return mode

    def _hessian(
        self, model: nn.Module, name: str, layer: nn.Module, images: torch.Tensor, mode: str
    ) -> tuple[torch.Tensor, int]:
        """Token-weighted Hessian of ``layer``'s inputs on the current model; rows per image."""
        modules = [layer]
        attn = _block_of(model, name).attn if mode == "attention" else None
        if attn is not None:
            modules.append(attn)
        given = None
        if mode == "given":
            given = minmax_weights(torch.tensor([self.token_weights]), self.r_min, self.r_max)
        total, count, per_image = None, 0, 0
        for seen in capture(model, images, modules, self.batch_size):
            x, _ = seen[id(layer)]
            rows = layer_rows(layer, x)
            batch = x.shape[0]
            r = None
            if attn is not None:
                r = attention_concentration(seen[id(attn)][1][1], self.r_min, self.r_max)
            elif given is not None:
                r = given.expand(batch, -1)
            if r is not None:
                r = r.reshape(-1)
                if r.numel() != rows.shape[0]:  # pragma: no cover - a ViT layer is per token
                    raise AssertionError(f"{name}: {rows.shape[0]} rows, {r.numel()} weights")
            h, m = weighted_hessian(rows, r)
            total = h if total is None else total + h
            count += m
            per_image = m // batch
        return finish_hessian(total, count), per_image

    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        images = calibration_images(model, images, "rsq")
        mode = self._mode(model)
        layers = compressible_layers(model)
        for _, layer in layers:
            check_layer(layer)
        generator = torch.Generator().manual_seed(self.seed)
        bits: dict[str, float] = {}
        per_layer: dict[str, dict[str, Any]] = {}
        rotation_flops = 0.0
        for name, layer in layers:
            hessian, per_image = self._hessian(model, name, layer, images, mode)
            w = weight_matrix(layer).to(torch.float64)
            hessian = hessian.to(w.device)
            kind = "none"
            if self.rotate:
                r, kind = rotation(w.shape[1], generator)
                r = r.to(w.device)
                q = gptq(w @ r, r.T @ hessian @ r, self.bits, granularity=self.granularity,
                         damp=self.damp, block_size=self.block_size) @ r.T  # fmt: skip
                rotation_flops += per_image * online_rotation_flops(w.shape[1], kind)
            else:
                q = gptq(w, hessian, self.bits, granularity=self.granularity, damp=self.damp,
                         block_size=self.block_size)  # fmt: skip
            set_weight_matrix(layer, q)
            scales = 1 if self.granularity == "tensor" else w.shape[0]
            bits[f"{name}.weight"] = stored_bits(self.bits, w.numel(), scales)
            per_layer[name] = {"rotation": kind, "tokens_per_image": per_image}
        weights = sum(m.weight.numel() for _, m in layers)
        details = {
            "bits": self.bits,
            "importance": mode,
            "layers": per_layer,
            "quantised_weights": weights,
            "quantised_weight_bits": sum(
                bits[f"{n}.weight"] * m.weight.numel() for n, m in layers
            ) / weights,
            "online_rotation_flops": rotation_flops,
        }  # fmt: skip
        return details, bits
