"""Masking (ablation) importance, docs/method.md §3.3.

For a model with encoder ``f`` and decoder ``g`` and features ``z = f(x)`` of shape ``[N, L]``,
the score of feature ``i`` is the increase of the reconstruction MSE when that feature alone is
zeroed (as the receiver zero-fills a dropped feature):

    w̃_i = E_x[ MSE(x, g(z ⊙ m_{-i})) ] − E_x[ MSE(x, g(z)) ],    m_{-i}: zeros feature i,
    MSE(x, x̂) = (1/D) Σ_p (x_p − x̂_p)^2 over the D = C·H·W pixels of one image,

then ``w_i = max(w̃_i, 0) / Σ_j max(w̃_j, 0)``. ``E_x`` is the mean over the given images.

Closed form for a linear decoder ``g(z) = A vec(z) + c`` that reconstructs exactly
(``x = g(z)``): zeroing feature ``i`` removes ``A_i z_i`` (``A_i``: the ``L`` columns of feature
``i``), so ``w̃_i = E ||A_i z_i||^2 / D = (1/D) Σ_{l∈i} ||a_l||^2 E[z_l^2]`` when the scalars are
mean-zero and independent (the cross terms ``E[z_l z_l']`` vanish).

Cost: ``N + 1`` decoder passes per image. The ``N`` masked copies of a batch are decoded
together, at most ``decode_batch`` items per decoder call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from channels.errors import check_int
from semcom.importance.base import (
    IMPORTANCE,
    ImportanceEstimator,
    encode_checked,
    per_image_mse,
)


@IMPORTANCE.register(
    "masking",
    description="Ablation: increase of reconstruction MSE when one feature is zeroed",
    paper="arXiv:1311.2901",
)
class MaskingImportance(ImportanceEstimator):
    """Masking importance ``w̃_i = E[MSE(x, g(z ⊙ m_{-i}))] − E[MSE(x, g(z))]``.

    Args:
        batch_size: images per encoder pass.
        decode_batch: largest number of (masked) latents decoded in one call; the masked copies
            of a batch of ``b`` images are decoded ``max(1, decode_batch // b)`` features at a
            time. Memory only: the result does not depend on it.

    Examples:
        >>> import torch
        >>> class Toy(torch.nn.Module):          # x = decode(encode(x)) = A z, A = diag(1, 2)
        ...     n_features, scalars_per_feature = 2, 1
        ...     def encode(self, x): return x.reshape(-1, 2, 1) / torch.tensor([[1.0], [2.0]])
        ...     def decode(self, z): return (z * torch.tensor([[1.0], [2.0]])).reshape(-1, 1, 1, 2)
        >>> x = torch.tensor([[[[0.6, 0.2]]]])      # dropping z_i costs x_i^2 / 2
        >>> MaskingImportance().fit(Toy(), x).importances_.round(6)
        array([0.9, 0.1])
    """

    name = "masking"

    def __init__(self, batch_size: int = 256, decode_batch: int = 4096) -> None:
        super().__init__(batch_size)
        self.decode_batch = check_int("decode_batch", decode_batch, 1)

    @torch.no_grad()
    def _scores(self, model: Any, x: torch.Tensor) -> np.ndarray:
        """Sum over the images of ``x`` of ``MSE(x, g(z ⊙ m_{-i})) − MSE(x, g(z))``, ``[N]``."""
        z = encode_checked(model, x)
        b, n, _ = z.shape
        base = per_image_mse(x, model.decode(z))  # [b]
        scores = np.zeros(n, dtype=np.float64)
        step = max(1, min(n, self.decode_batch // b))
        for first in range(0, n, step):
            feats = torch.arange(first, min(first + step, n), device=z.device)
            f = feats.numel()
            mask = torch.ones(f, n, dtype=z.dtype, device=z.device)
            mask[torch.arange(f, device=z.device), feats] = 0.0
            masked = (z.unsqueeze(0) * mask[:, None, :, None]).reshape(f * b, n, -1)
            x_rep = x.unsqueeze(0).expand(f, *x.shape).reshape(f * b, *x.shape[1:])
            mse = per_image_mse(x_rep, model.decode(masked)).reshape(f, b)
            scores[first : first + f] = (mse - base).sum(dim=1).cpu().numpy()
        return scores
