"""White-box access to an attention encoder for the attention-based importance estimators.

The ViT codec (``semcom.models.vit``) exposes ``encoder_trace(x) -> (tokens, weights)``:
``tokens[l]`` ``[B, N, d]`` is the input of encoder block ``l + 1`` (``tokens[0]`` the embedded
patches, ``tokens[-1]`` the final tokens) and ``weights[l]`` ``[B, heads, N, N]`` is block
``l + 1``'s attention (row ``i``: how query token ``i`` attends to every key token ``j``; rows
sum to 1). Token ``i`` is feature ``i``. This module holds what several estimators share:

- :func:`~semcom.importance.token_graph.require_attention_model` (re-used): a one-line
  ConfigError for a model without attention (CNN, MLP);
- :func:`check_layers` / :func:`resolve_layers`: the ``layers`` option (``"last"``, ``"all"``
  or a block number ``1..depth``);
- :func:`trace`: the encoder trace of a batch, without gradients;
- :func:`head_outputs`: ``o_h = A_h v_h`` ``[B, heads, N, d_h]`` of every block (the value
  vectors are recomputed from the block's own layers, so the trace needs no extra hooks);
- :func:`received_attention`: ``r_j = (1/H) Σ_h Σ_i A_h[i, j]``, the attention a token receives.
"""

from __future__ import annotations

from typing import Any

import torch

from channels.errors import fail
from semcom.importance.token_graph import require_attention_model

LAYER_WORDS = ("last", "all")


def check_layers(layers: Any) -> str | int:
    """The ``layers`` option: ``"last"``, ``"all"`` or a block number >= 1 (ConfigError else)."""
    if isinstance(layers, str) and layers.strip().lower() in LAYER_WORDS:
        return layers.strip().lower()
    if isinstance(layers, int) and not isinstance(layers, bool) and layers >= 1:
        return int(layers)
    raise fail("layers", layers, "'last', 'all' or an encoder block number >= 1")


def resolve_layers(layers: str | int, depth: int) -> list[int]:
    """0-based indices of the encoder blocks that ``layers`` selects among ``depth`` blocks."""
    if layers == "last":
        return [depth - 1]
    if layers == "all":
        return list(range(depth))
    if not 1 <= int(layers) <= depth:
        raise fail("layers", layers, f"'last', 'all' or a block number in [1, {depth}]")
    return [int(layers) - 1]


@torch.no_grad()
def trace(model: Any, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``model.encoder_trace(x)`` after the model's input check; no autograd graph."""
    require_attention_model(model)
    if hasattr(model, "check_input"):
        model.check_input(x)
    tokens, weights = model.encoder_trace(x)
    return list(tokens), list(weights)


@torch.no_grad()
def head_outputs(
    model: Any, tokens: list[torch.Tensor], weights: list[torch.Tensor]
) -> list[torch.Tensor]:
    """Per-head attention outputs ``o_h = A_h v_h`` of every encoder block, ``[B, H, N, d_h]``.

    ``v`` is recomputed as in :class:`semcom.models.attention.SelfAttention`:
    ``v = split_heads(LN_1(t) W_qkv)[2]`` with ``t = tokens[l]`` the block's input.
    """
    outs = []
    for block, t, a in zip(model.enc_blocks, tokens[:-1], weights, strict=True):
        b, n, d = t.shape
        heads = a.shape[1]
        qkv = block.attn.qkv(block.norm1(t)).reshape(b, n, 3, heads, d // heads)
        v = qkv[:, :, 2].permute(0, 2, 1, 3)  # [B, H, N, d_h]
        outs.append(a @ v)
    return outs


def received_attention(weights: torch.Tensor) -> torch.Tensor:
    """``r_j = (1/H) Σ_h Σ_i A_h[i, j]`` in float64, ``[B, N]``, from ``A`` ``[B, H, N, N]``.

    Each row of ``A`` sums to 1, so ``Σ_j r_j = N`` for every image.
    """
    return weights.to(torch.float64).mean(dim=1).sum(dim=1)
