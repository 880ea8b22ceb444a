"""Group Optimal Brain Surgeon: remove whole column groups of a layer with weight compensation.

A layer ``y = W x`` (``W`` ``[m, P]``; a convolution as ``W`` ``[out, in·k·k]`` on unfolded
patches) is fitted to its own dense outputs on inputs ``X`` ``[n, P]`` with the Hessian
``H = XᵀX`` of ``E(W') = ‖X (W' − W)ᵀ‖²_F = tr((W' − W) H (W' − W)ᵀ)``. Removing the column group
``Q`` (an input channel: its ``k·k`` columns) means ``δ_Q = −W_Q``; the best change of the other
columns (Lagrange multipliers, as in Hassibi & Stork's OBS and its row-shared form in OBC,
Frantar & Alistarh 2022) and the error it costs are

    δ = −W_Q [H⁻¹]_QQ⁻¹ [H⁻¹]_Q,:          ΔE_Q = tr(W_Q [H⁻¹]_QQ⁻¹ W_Qᵀ).

Greedy removal takes the group of least ``ΔE`` and then drops ``Q`` from the inverse,
``H⁻¹ ← H⁻¹ − [H⁻¹]_:,Q [H⁻¹]_QQ⁻¹ [H⁻¹]_Q,:`` (the inverse of ``H`` on the remaining columns).
Because each step is the constrained optimum, the cross term of the next step vanishes, the
``ΔE`` add up to the final error, and the final ``W'`` on the kept columns ``R`` is the least
squares fit ``argmin_V ‖X Wᵀ − X_R Vᵀ‖`` (tested against ``numpy.linalg.lstsq``).

``damp`` adds ``damp · mean(diag H) · I`` to ``H`` (ridge), which keeps ``H`` invertible when
some inputs are always zero (e.g. channels already pruned upstream).
"""

from __future__ import annotations

import numpy as np
import torch


def group_obs(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    groups: torch.Tensor,
    count: int,
    damp: float = 0.01,
) -> tuple[torch.Tensor, list[int], list[float]]:
    """Greedily remove ``count`` column groups of ``weight`` with OBS compensation.

    Args:
        weight: ``[m, P]``; not modified.
        hessian: ``H = XᵀX`` ``[P, P]`` (symmetric positive semi-definite).
        groups: int64 ``[G, q]``: group ``g``'s columns.
        count: groups to remove, ``0 <= count <= G``.
        damp: relative ridge added to ``H`` (``>= 0``).

    Returns:
        ``(W', removed, errors)``: float64 ``[m, P]`` with the removed groups' columns exactly
        zero; the removed groups in removal order; and each step's ``ΔE``.

    Examples:
        >>> w = torch.tensor([[1.0, 0.1, 2.0]])
        >>> _, removed, _ = group_obs(w, torch.eye(3), torch.tensor([[0], [1], [2]]), 1, 0.0)
        >>> removed          # H = I: OBS is magnitude pruning
        [1]
    """
    # NumPy float64 throughout: torch's batched LAPACK calls on many tiny q x q blocks are
    # orders of magnitude slower when its thread pool competes for busy cores.
    w = weight.detach().cpu().to(torch.float64).numpy().copy()
    h = hessian.detach().cpu().to(torch.float64).numpy()
    idx = groups.cpu().numpy()
    p = h.shape[0]
    h = h + damp * max(float(np.mean(np.diag(h))), 1e-12) * np.eye(p)
    hinv = np.linalg.inv(h)
    hinv = (hinv + hinv.T) / 2
    alive = list(range(idx.shape[0]))
    removed: list[int] = []
    errors: list[float] = []
    for _ in range(count):
        cand = idx[alive]  # [G', q]
        hq = hinv[cand[:, :, None], cand[:, None, :]]  # [G', q, q]
        wq = w[:, cand].transpose(1, 0, 2)  # [G', m, q]
        inv = np.linalg.inv(hq)  # [G', q, q]
        err = ((wq @ inv) * wq).sum(axis=(1, 2))
        best = int(np.argmin(err))  # first minimum on ties
        g = alive.pop(best)
        q = idx[g]
        w -= (wq[best] @ inv[best]) @ hinv[q, :]
        w[:, q] = 0.0
        hinv -= hinv[:, q] @ inv[best] @ hinv[q, :]
        hinv[q, :] = 0.0
        hinv[:, q] = 0.0
        removed.append(g)
        errors.append(float(err[best]))
    return torch.from_numpy(w), removed, errors
