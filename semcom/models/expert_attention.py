"""Expert Attention: every attention head is an expert; a router sends each token to one head.

For tokens ``t`` ``[B, T, d]`` (already layer-normed by the block), ``h`` heads of width ``d_h``:

    A_e, o_e = softmax(q_e k_eᵀ / sqrt(d_h)), A_e v_e       head e's attention and output
    s = t W_r + b_r                                          router logits [B, T, h]
    e*(t_i) = argmax_e s_i,e                                  top-1 head of token i
    g_i = σ(s_i,e*)                                           its gate, in (0, 1)
    out_i = X(g_i · o_{e*, i}),   X = Linear(d_h, r d_h) → GELU → Linear(r d_h, d)

``X`` is the expander shared by all heads (``r = expander_ratio``); it replaces ``W_o``. The block
keeps its residual: ``t' = t + out``. The gate is a sigmoid of the winner's logit rather than a
softmax over heads, so it does not depend on the other heads: removing heads that never win
leaves every token's output unchanged (the property pruning relies on). The router receives
gradient through the gate; the winner's head through its output.

``usage`` (int64 ``[h]``, not saved in the weights) counts the top-1 wins of every head while
``count_usage`` is true; ``prune_heads(keep)`` removes the other heads' ``W_qkv`` rows and router
rows (the expander is shared and stays).
"""

from __future__ import annotations

import torch
from torch import nn

from semcom.models.attention import HeadAttention


class ExpertAttention(HeadAttention):
    """Heads as experts with a top-1 token router and a shared expander; ``forward`` returns
    ``(out [B, T, dim], A [B, heads, T, T])`` like :class:`~semcom.models.attention.SelfAttention`.

    Args:
        dim: token width ``d``.
        heads: number of heads (experts) ``h``.
        expander_ratio: hidden width of the expander in units of ``d_h``.
        head_dim: ``d_h`` (``None``: ``d / h``).

    Examples:
        >>> layer = ExpertAttention(8, 2)
        >>> layer.count_usage = True
        >>> out, a = layer(torch.rand(3, 5, 8))
        >>> tuple(out.shape), tuple(a.shape), int(layer.usage.sum())  # 3 x 5 decisions
        ((3, 5, 8), (3, 2, 5, 5), 15)
    """

    def __init__(
        self, dim: int, heads: int, expander_ratio: int = 2, head_dim: int | None = None
    ) -> None:
        super().__init__(dim, heads, head_dim)
        hd = self.head_dim
        self.router = nn.Linear(dim, heads)
        self.expander = nn.Sequential(
            nn.Linear(hd, expander_ratio * hd), nn.GELU(), nn.Linear(expander_ratio * hd, dim)
        )
        self.register_buffer("usage", torch.zeros(heads, dtype=torch.int64), persistent=False)
        self.count_usage = False

    def route(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-1 head ``[B, T]`` (int64) and its gate ``σ(s)`` ``[B, T]`` for tokens ``t``."""
        logits = self.router(t)
        top = logits.argmax(-1)
        return top, torch.sigmoid(logits.gather(-1, top[..., None]).squeeze(-1))

    def forward(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, _ = t.shape
        weights, o = self.head_outputs(t)  # [B, h, T, T], [B, h, T, d_h]
        top, gate = self.route(t)
        chosen = o.gather(1, top[:, None, :, None].expand(b, 1, n, self.head_dim)).squeeze(1)
        if self.count_usage:
            self.usage += torch.bincount(top.flatten(), minlength=self.heads)
        return self.expander(gate[..., None] * chosen), weights

    def _prune_extra(self, keep: torch.Tensor) -> None:
        rows = keep.to(self.router.weight.device)
        router = nn.Linear(self.dim, len(rows)).to(self.router.weight)
        with torch.no_grad():
            router.weight.copy_(self.router.weight[rows])
            router.bias.copy_(self.router.bias[rows])
        self.router = router
        self.usage = self.usage[rows.to(self.usage.device)]
