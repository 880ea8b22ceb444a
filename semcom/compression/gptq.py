"""GPTQ: column-wise weight quantisation with inverse-Hessian error feedback (arXiv:2210.17323).

For a layer ``y = W x`` with weights ``W`` ``[rows, cols]`` and calibration inputs ``x_m``
(rows of :func:`~semcom.compression.calibration.layer_rows`), GPTQ minimises the layer-output
error ``Σ_m r_m ||(W - Ŵ) x_m||²`` over quantised ``Ŵ``, one column at a time. The (token-
weighted) Hessian of that objective is

    H = (2 / M) Σ_m r_m x_m x_mᵀ        (r_m = 1: plain GPTQ; RSQ scales token m by sqrt(r_m)),

damped to ``H + λ I`` with ``λ = damp · mean(diag H)``. With ``U`` the upper Cholesky factor of
``H⁻¹`` (``H⁻¹ = Uᵀ U``), column ``q`` is rounded to ``ŵ_q = quant(w_q)`` and its error is spread
over the columns not yet quantised,

    e = (w_q - ŵ_q) / U_qq,        W[:, q+1:] -= e U_q,q+1:,

which is the optimal-brain-surgeon update with the inverse Hessian of the remaining columns
(its rows are ``U``'s rows times ``U_qq``). Columns are processed in blocks of ``block_size``
with the updates to later blocks applied once per block ("lazy batch"); the result equals the
column-by-column update. Scales are fixed from ``W`` before any update (one per row or per
tensor, :mod:`semcom.compression.quantise`). Dead inputs (``H_qq = 0``) get ``H_qq = 1`` and a
zero weight, as in the reference implementation.
"""

from __future__ import annotations

import torch

from semcom.compression.calibration import capture, layer_rows
from semcom.compression.quantise import quantise_with_scale, symmetric_scale


def weighted_hessian(
    rows: torch.Tensor, token_weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, int]:
    """Unnormalised ``Σ_m r_m x_m x_mᵀ`` (float64 ``[cols, cols]``) and the row count ``M``.

    Sum these over calibration batches and scale by ``2 / M`` (:func:`finish_hessian`).

    Examples:
        >>> x = torch.tensor([[1.0, 0.0], [1.0, 2.0]])
        >>> h, m = weighted_hessian(x, torch.tensor([3.0, 1.0]))
        >>> h.tolist(), m
        ([[4.0, 2.0], [2.0, 4.0]], 2)
    """
    x = rows.to(torch.float64)
    if token_weights is None:
        return x.T @ x, x.shape[0]
    r = token_weights.to(device=x.device, dtype=torch.float64).reshape(-1, 1)
    return (x * r).T @ x, x.shape[0]


def finish_hessian(total: torch.Tensor, count: int) -> torch.Tensor:
    """``H = (2 / M) Σ_m r_m x_m x_mᵀ`` from the accumulated sum and row count."""
    return total * (2.0 / max(count, 1))


def gptq(
    w: torch.Tensor,
    hessian: torch.Tensor,
    bits: int,
    *,
    granularity: str = "channel",
    damp: float = 0.01,
    block_size: int = 128,
) -> torch.Tensor:
    """GPTQ-quantise ``w`` ``[rows, cols]`` under ``hessian`` ``[cols, cols]`` (module docstring).

    Args:
        w: weights; the result has its dtype.
        hessian: ``H`` of the layer inputs (symmetric, positive semi-definite).
        bits: code bits (symmetric restricted range, float16 scales).
        granularity: ``"channel"`` (a scale per row) or ``"tensor"``.
        damp: relative diagonal damping ``λ = damp · mean(diag H)``.
        block_size: columns per lazy-update block (does not change the result).

    Returns:
        The de-quantised weights ``Ŵ`` ``[rows, cols]``.

    Examples:
        >>> w = torch.tensor([[0.9, 0.3]])
        >>> gptq(w, torch.eye(2), 2).tolist()    # diagonal H: no feedback, plain rounding
        [[0.8999..., 0.0]]
    """
    dtype = w.dtype
    W = w.detach().to(torch.float64).clone()
    H = hessian.detach().to(torch.float64).clone()
    cols = W.shape[1]
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    if granularity == "tensor":
        scale = symmetric_scale(W.reshape(1, -1), bits).reshape(1, 1)
    else:
        scale = symmetric_scale(W, bits)
    H += damp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=H.dtype, device=H.device)
    U = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    Q = torch.zeros_like(W)
    for first in range(0, cols, block_size):
        last = min(first + block_size, cols)
        W1 = W[:, first:last].clone()
        E1 = torch.zeros_like(W1)
        U1 = U[first:last, first:last]
        for i in range(last - first):
            col = W1[:, i]
            q = quantise_with_scale(col.unsqueeze(1), scale, bits).squeeze(1)
            Q[:, first + i] = q
            err = (col - q) / U1[i, i]
            W1[:, i:] -= err.unsqueeze(1) * U1[i, i:].unsqueeze(0)
            E1[:, i] = err
        W[:, last:] -= E1 @ U[first:last, last:]
    return Q.to(dtype)


def layer_hessian(
    model: torch.nn.Module, layer: torch.nn.Module, images: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """Plain GPTQ Hessian ``(2/M) Σ_m x_m x_mᵀ`` of ``layer``'s inputs on ``model.encode(images)``
    (the current weights, so earlier layers already quantised count as such)."""
    total, count = None, 0
    for seen in capture(model, images, [layer], batch_size):
        h, m = weighted_hessian(layer_rows(layer, seen[id(layer)][0]))
        total = h if total is None else total + h
        count += m
    return finish_hessian(total, count)
