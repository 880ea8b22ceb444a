"""Pre-norm transformer block with explicit multi-head self-attention (weights are returned).

For tokens ``t`` ``[B, T, d]`` and ``h`` heads of width ``d_h = d / h``:

    q, k, v = split(t W_qkv),                      each [B, h, T, d_h]
    A = softmax(q kᵀ / sqrt(d_h))                   [B, h, T, T]   (rows sum to 1)
    attn(t) = concat_heads(A v) W_o
    block(t) = t' + MLP(LN(t')),   t' = t + attn(LN(t))

The attention is written out (no fused kernel) so that ``A`` is available to the attention-based
importance estimators.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SelfAttention(nn.Module):
    """Multi-head self-attention on ``[B, T, dim]``; ``forward`` returns ``(out, A)``."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = t.shape
        qkv = self.qkv(t).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, h, T, d_h]
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(b, n, d)
        return self.out(out), weights


class TransformerBlock(nn.Module):
    """Pre-norm block: attention then a GELU MLP of width ``mlp_ratio · dim``, both residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``[B, T, dim]`` -> (tokens ``[B, T, dim]``, attention ``[B, heads, T, T]``)."""
        a, weights = self.attn(self.norm1(t))
        t = t + a
        return t + self.mlp(self.norm2(t)), weights
