"""Pre-norm transformer block with explicit multi-head self-attention (weights are returned).

For tokens ``t`` ``[B, T, d]`` and ``h`` heads of width ``d_h`` (default ``d / h``):

    q, k, v = split(t W_qkv),                      each [B, h, T, d_h]
    S = q kᵀ / sqrt(d_h),  S[h, i, j] = -inf where key_mask[h, i, j] is False
    A = softmax(S)                                 [B, h, T, T]   (rows sum to 1)
    attn(t) = concat_heads(A v) W_o
    block(t) = t' + MLP(LN(t')),   t' = t + attn(LN(t))

The attention is written out (no fused kernel) so that ``A`` is available to the attention-based
importance estimators. Three optional mechanisms cost nothing while off:

- ``key_mask`` (``[h, T, T]`` bool, ``None``: every key): per-head allowed keys. A masked head's
  row is the softmax restricted to its allowed keys and renormalised (local-window heads).
- ``keep_weights``: when true, every forward stores its ``A`` in ``last_weights`` (with its
  autograd graph in training), so that a caller can read every block's attention of the
  forward that just ran (:func:`recording`).
- ``prune_heads(keep)``: removes heads physically (rows of ``W_qkv``, columns of ``W_o``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from channels.errors import fail


class HeadAttention(nn.Module):
    """The per-head part shared by every attention variant: ``W_qkv``, the key mask, recording.

    Args:
        dim: token width ``d``.
        heads: number of heads ``h``.
        head_dim: width ``d_h`` of a head (``None``: ``d / h``).
    """

    def __init__(self, dim: int, heads: int, head_dim: int | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.head_dim = dim // heads if head_dim is None else head_dim
        self.qkv = nn.Linear(dim, 3 * heads * self.head_dim)
        self.register_buffer("key_mask", None, persistent=False)
        self.keep_weights = False
        self.last_weights: torch.Tensor | None = None

    def set_key_mask(self, mask: torch.Tensor | None) -> None:
        """Install per-head allowed keys ``[heads, T, T]`` (bool; every row needs one key)."""
        if mask is None:
            self.key_mask = None
            return
        mask = torch.as_tensor(mask)
        if mask.dtype != torch.bool or mask.ndim != 3 or mask.shape[0] != self.heads:
            raise fail("key_mask", tuple(mask.shape), f"a bool [heads={self.heads}, T, T] tensor")
        if mask.shape[1] != mask.shape[2] or not bool(mask.any(-1).all()):
            raise fail("key_mask", tuple(mask.shape), "square rows with at least one key each")
        self.key_mask = mask.to(self.qkv.weight.device)

    def head_outputs(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, T, d]`` -> (``A`` ``[B, h, T, T]``, per-head ``A v`` ``[B, h, T, d_h]``)."""
        b, n, _ = t.shape
        qkv = self.qkv(t).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, h, T, d_h]
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if self.key_mask is not None:
            scores = scores.masked_fill(~self.key_mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        if self.keep_weights:
            self.last_weights = weights
        return weights, weights @ v

    def _kept_rows(self, keep: torch.Tensor) -> torch.Tensor:
        """Rows of ``W_qkv`` (q, k and v parts) that belong to the heads ``keep``."""
        hd, inner = self.head_dim, self.heads * self.head_dim
        per_head = (keep[:, None] * hd + torch.arange(hd)).reshape(-1)
        return torch.cat([per_head + s * inner for s in range(3)])

    def _check_keep(self, keep: Sequence[int]) -> torch.Tensor:
        idx = torch.as_tensor(list(keep), dtype=torch.int64)
        if (
            idx.ndim != 1
            or len(idx) == 0
            or len(set(idx.tolist())) != len(idx)
            or bool(((idx < 0) | (idx >= self.heads)).any())
        ):
            raise fail("keep", list(keep), f"distinct head indices in [0, {self.heads}), not empty")
        return idx.sort().values

    def prune_heads(self, keep: Sequence[int]) -> None:
        """Keep only the heads ``keep`` (their order preserved): ``W_qkv`` loses the others'
        rows, the key mask their planes; subclasses drop what else belongs to a head."""
        idx = self._check_keep(keep)
        rows = self._kept_rows(idx).to(self.qkv.weight.device)
        qkv = nn.Linear(self.dim, len(rows)).to(self.qkv.weight)
        with torch.no_grad():
            qkv.weight.copy_(self.qkv.weight[rows])
            qkv.bias.copy_(self.qkv.bias[rows])
        self.qkv = qkv
        if self.key_mask is not None:
            self.key_mask = self.key_mask[idx.to(self.key_mask.device)]
        self._prune_extra(idx)
        self.heads = len(idx)
        self.last_weights = None

    def _prune_extra(self, keep: torch.Tensor) -> None:
        """Drop the other per-head parameters of the pruned heads (``keep``: sorted indices)."""


class SelfAttention(HeadAttention):
    """Multi-head self-attention on ``[B, T, dim]``; ``forward`` returns ``(out, A)``."""

    def __init__(self, dim: int, heads: int, head_dim: int | None = None) -> None:
        super().__init__(dim, heads, head_dim)
        self.out = nn.Linear(heads * self.head_dim, dim)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = t.shape
        weights, o = self.head_outputs(t)
        return self.out(o.transpose(1, 2).reshape(b, n, -1)), weights

    def _prune_extra(self, keep: torch.Tensor) -> None:
        hd = self.head_dim
        cols = (keep[:, None] * hd + torch.arange(hd)).reshape(-1).to(self.out.weight.device)
        out = nn.Linear(len(cols), self.dim).to(self.out.weight)
        with torch.no_grad():
            out.weight.copy_(self.out.weight[:, cols])
            out.bias.copy_(self.out.bias)
        self.out = out


class TransformerBlock(nn.Module):
    """Pre-norm block: attention then a GELU MLP of width ``mlp_ratio · dim``, both residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn: HeadAttention = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, T, dim]`` -> (tokens ``[B, T, dim]``, attention ``[B, heads, T, T]``)."""
        a, weights = self.attn(self.norm1(t))
        t = t + a
        return t + self.mlp(self.norm2(t)), weights


def attention_layers(model: nn.Module) -> list[HeadAttention]:
    """Every attention module of ``model`` in registration order (a ViT: encoder blocks, then
    decoder blocks)."""
    return [m for m in model.modules() if isinstance(m, HeadAttention)]


@contextmanager
def recording(model: nn.Module) -> Iterator[list[HeadAttention]]:
    """Within the block, every attention module of ``model`` keeps its last ``A``.

    Yields the modules (:func:`attention_layers`); after a forward, ``[m.last_weights for m in
    layers]`` are that forward's attention maps ``[B, h, T, T]``. On exit the flags are restored
    and the stored maps released.

    Examples:
        >>> from semcom.models import build_model
        >>> vit = build_model("vit", 4, input_shape=[1, 8, 8], dim=8, heads=2, depth=1)
        >>> with recording(vit) as layers:
        ...     _ = vit(torch.rand(3, 1, 8, 8))
        ...     [tuple(m.last_weights.shape) for m in layers]
        [(3, 2, 4, 4), (3, 2, 4, 4)]
        >>> attention_layers(vit)[0].last_weights is None
        True
    """
    layers = attention_layers(model)
    before = [m.keep_weights for m in layers]
    for m in layers:
        m.keep_weights = True
    try:
        yield layers
    finally:
        for m, flag in zip(layers, before, strict=True):
            m.keep_weights = flag
            m.last_weights = None
