"""Shared pieces of the attention-graph token estimators (OptiPrune, VFlowOpt, Zero-TPrune).

A ViT-style model whose ``N`` tokens are its ``N`` features exposes its encoder's attention; this
module reads it and provides the token similarities the pruning steps use:

    head_mean_attention:  Ā_b = (1/h) Σ_k A_{b,k}                  float64 [B, N, N], rows sum to 1
    cosine_similarity:    S_b[i, j] = <v_i, v_j> / (|v_i| |v_j|)  float64 [B, N, N], in [-1, 1]

``A[b, k, i, j]`` is how query token ``i`` attends to key token ``j`` in head ``k`` (rows are
softmax outputs). Models without attention are refused with a one-line ConfigError.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from channels import errors
from channels.errors import ConfigError, check_int, fail
from semcom.importance.base import as_images, check_model, eval_mode, model_dtype_device

ATTENTION_MODELS = "a model with attention (vit)"


def require_attention_model(model: Any) -> Any:
    """``model`` if it exposes ``encoder_trace`` and ``features_from_tokens``, else ConfigError."""
    check_model(model)
    if not (hasattr(model, "encoder_trace") and hasattr(model, "features_from_tokens")):
        raise fail("model", getattr(model, "name", "") or type(model).__name__, ATTENTION_MODELS)
    return model


def check_layer(layer: Any) -> int:
    """An integer encoder-block index (negative counts from the last block) or ConfigError."""
    return check_int("layer", layer, -4096, 4095)


def resolve_layer(layer: int, depth: int) -> int:
    """``layer`` in ``-depth..depth-1`` as an index ``0..depth-1``, else ConfigError."""
    if not -depth <= layer < depth:
        raise fail("layer", layer, f"an encoder block index in {-depth}..{depth - 1}")
    return layer % depth


def encoder_depth(model: Any) -> int:
    """Encoder blocks of an attention model: ``len(enc_blocks)``, else ``options['depth']``."""
    blocks = getattr(model, "enc_blocks", None)
    if blocks is not None:
        return len(blocks)
    return int(getattr(model, "options", {}).get("depth", 1))


def check_real(field: str, value: Any, low: float, high: float = math.inf) -> float:
    """A finite real number in ``[low, high]`` (bools refused), else ConfigError."""
    allowed = f"a real number in [{low}, {high}]" if math.isfinite(high) else f"a real >= {low}"
    return errors.check_real(field, value, low, high, allowed=allowed)


def check_choice(field: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` lower-cased if it is one of ``choices``, else ConfigError."""
    return errors.check_name(field, value, choices, " or ".join(choices))


def prepare(model: Any, images: Any) -> tuple[Any, torch.Tensor]:
    """Check an attention model and its images; images moved to the model's dtype and device."""
    require_attention_model(model)
    x = as_images(images)
    dtype, device = model_dtype_device(model, x)
    return model, x.to(device=device, dtype=dtype)


@torch.no_grad()
def encoder_pass(model: Any, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One clean encoder pass: features ``z = tanh(features_from_tokens(t_final))`` and attention.

    Returns:
        ``(z, weights)``: ``z`` ``[B, N, L]`` (model dtype) equals ``model.encode(x)``;
        ``weights[l]`` is block ``l``'s attention ``[B, heads, N, N]``.
    """
    model.check_input(x)
    with eval_mode(model):
        tokens, weights = model.encoder_trace(x)
        z = torch.tanh(model.features_from_tokens(tokens[-1]))
    n = int(model.n_features)
    if z.shape[1] != n or any(w.shape[-1] != n for w in weights):
        raise ConfigError(f"model: attention over {weights[0].shape[-1]} tokens; expected N={n}")
    return z, weights


def head_mean_attention(weights: torch.Tensor) -> torch.Tensor:
    """Head mean ``Ā``: ``[B, heads, N, N]`` -> float64 ``[B, N, N]`` (rows sum to 1)."""
    return weights.to(torch.float64).mean(dim=1)


def cosine_similarity(v: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity of the rows of ``v`` ``[B, N, D]``, float64 ``[B, N, N]``.

    A zero vector has similarity 0 with every vector (including itself).

    Examples:
        >>> v = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [0.0, 3.0]]])
        >>> cosine_similarity(v)[0]
        tensor([[1., 1., 0.],
                [1., 1., 0.],
                [0., 0., 1.]], dtype=torch.float64)
    """
    v = v.to(torch.float64).flatten(2)
    norm = v.norm(dim=-1, keepdim=True)
    unit = torch.where(norm > 0, v / norm.clamp_min(1e-300), torch.zeros_like(v))
    return unit @ unit.transpose(1, 2)
