"""Trainable low-rank layers with an importance order over their rank components.

:class:`OrderedLowRank` replaces a ``Linear`` or ``Conv2d`` of weight ``W`` ``[m, n]``
(``n = in·kh·kw`` for a convolution) by ``W = U Vᵀ`` with ``U`` ``[m, r]`` and ``V`` ``[n, r]``:

    y = U_{:, :b} (V_{:, :b}ᵀ x) + bias          (a convolution: V as a kh x kw conv to b
                                                 channels, then U as a 1 x 1 conv)

``b ≤ r`` is the active rank (``None``: all ``r``). Training with a random ``b`` (ordered dropout
over ranks) makes the first components the most important, so truncating the tail is graceful.
``hierarchical_norms`` gives the nested group norms ``g_k = ||[U_{:, k:}; V_{:, k:}]||_F`` that a
hierarchical group lasso penalises and that truncation ranks; :meth:`OrderedLowRank.export`
returns plain torch layers of rank ``b`` (a factorised pair when that is smaller, else one
dense layer).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from semcom.compression.base import conv_args


class OrderedLowRank(nn.Module):
    """``W = U Vᵀ`` of a ``Linear`` or ``Conv2d`` with a selectable active rank.

    Args:
        layer: the ``nn.Linear`` or ``nn.Conv2d`` (``groups = 1``) to factorise; not modified.
        rank: number of components kept, at most ``min(m, n)`` (default: all of them).

    The factors start from the SVD ``W = P diag(σ) Qᵀ``: ``U = P √σ``, ``V = Q √σ`` (so at full
    rank the layer computes exactly what ``layer`` did, up to rounding).

    Attributes:
        active: the rank used by ``forward`` (``None``: ``r``).
    """

    def __init__(self, layer: nn.Module, rank: int | None = None) -> None:
        super().__init__()
        if not isinstance(layer, nn.Linear | nn.Conv2d) or getattr(layer, "groups", 1) != 1:
            raise TypeError(f"cannot factorise {type(layer).__name__}")
        w = layer.weight.detach()
        self.conv = isinstance(layer, nn.Conv2d)
        self.weight_shape = tuple(w.shape)
        if self.conv:
            self.conv_args = conv_args(layer)
            if layer.padding_mode != "zeros":
                raise TypeError("only zero-padded convolutions can be factorised")
        matrix = w.reshape(w.shape[0], -1).to(torch.float64)
        p, sigma, qt = torch.linalg.svd(matrix, full_matrices=False)
        r = sigma.numel() if rank is None else int(rank)
        root = sigma[:r].sqrt()
        self.U = nn.Parameter((p[:, :r] * root).to(w.dtype).contiguous())
        self.V = nn.Parameter((qt[:r].T * root).to(w.dtype).contiguous())
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())
        self.active: int | None = None

    @property
    def rank(self) -> int:
        """``r``, the number of components."""
        return self.U.shape[1]

    def forward(self, x: torch.Tensor, rank: int | None = None) -> torch.Tensor:
        """Apply ``U_{:, :b} V_{:, :b}ᵀ`` (+ bias) with ``b = rank`` or :attr:`active` or ``r``."""
        b = rank if rank is not None else (self.active if self.active is not None else self.rank)
        u, v = self.U[:, :b], self.V[:, :b]
        if not self.conv:
            return F.linear(F.linear(x, v.T), u, self.bias)
        _, c_in, kh, kw = self.weight_shape
        h = F.conv2d(x, v.T.reshape(b, c_in, kh, kw), None, **self.conv_args)
        return F.conv2d(h, u.reshape(u.shape[0], b, 1, 1), self.bias)

    def weight(self, rank: int | None = None) -> torch.Tensor:
        """The dense weight ``U_{:, :b} V_{:, :b}ᵀ`` in the original layer's shape."""
        b = self.rank if rank is None else rank
        return (self.U[:, :b] @ self.V[:, :b].T).reshape(self.weight_shape)

    def hierarchical_norms(self) -> torch.Tensor:
        """``g_k = ||[U_{:, k:}; V_{:, k:}]||_F`` for ``k = 0..r−1`` (non-increasing in ``k``)."""
        per_component = self.U.pow(2).sum(dim=0) + self.V.pow(2).sum(dim=0)
        tails = torch.flip(torch.cumsum(torch.flip(per_component, [0]), 0), [0])
        return tails.clamp_min(0).sqrt()

    def export(self, rank: int) -> nn.Module:
        """Plain torch layers computing the rank-``rank`` layer.

        A factorised pair (``Linear(n, b, bias=False)`` then ``Linear(b, m)``; for a convolution a
        ``kh x kw`` conv to ``b`` channels then a ``1 x 1`` conv) when ``b (m + n) < m n``, else one
        layer of the original type and shape holding ``U_b V_bᵀ``. Weights are copied; no
        random number is drawn.
        """
        m, n = self.U.shape[0], self.V.shape[0]
        b = int(rank)
        dtype, device = self.U.dtype, self.U.device
        has_bias = self.bias is not None
        with torch.no_grad():
            if b * (m + n) >= m * n:
                if self.conv:
                    out, c_in, kh, kw = self.weight_shape
                    dense = nn.utils.skip_init(
                        nn.Conv2d, c_in, out, (kh, kw), bias=has_bias, device=device, dtype=dtype,
                        **self.conv_args,
                    )  # fmt: skip
                else:
                    dense = nn.utils.skip_init(
                        nn.Linear, n, m, bias=has_bias, device=device, dtype=dtype
                    )
                dense.weight.copy_(self.weight(b))
                if has_bias:
                    dense.bias.copy_(self.bias)
                return dense
            u, v = self.U[:, :b], self.V[:, :b]
            if self.conv:
                out, c_in, kh, kw = self.weight_shape
                first = nn.utils.skip_init(
                    nn.Conv2d, c_in, b, (kh, kw), bias=False, device=device, dtype=dtype,
                    **self.conv_args,
                )  # fmt: skip
                second = nn.utils.skip_init(
                    nn.Conv2d, b, out, 1, bias=has_bias, device=device, dtype=dtype
                )
                first.weight.copy_(v.T.reshape(b, c_in, kh, kw))
                second.weight.copy_(u.reshape(out, b, 1, 1))
            else:
                first = nn.utils.skip_init(nn.Linear, n, b, bias=False, device=device, dtype=dtype)
                second = nn.utils.skip_init(
                    nn.Linear, b, m, bias=has_bias, device=device, dtype=dtype
                )
                first.weight.copy_(v.T)
                second.weight.copy_(u)
            if has_bias:
                second.bias.copy_(self.bias)
            return nn.Sequential(first, second)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> nn.Module:
    """Put ``new`` at the qualified ``name`` of ``model``; return the module it replaced."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    old = getattr(parent, child)
    setattr(parent, child, new)
    return old
