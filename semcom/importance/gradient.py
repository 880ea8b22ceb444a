"""Gradient × input importance (Shrikumar et al., arXiv:1605.01713), docs/method.md §3.3.

    w̃_i = E_x Σ_{l∈feature i} | ∂L/∂z_l · z_l |,    then w_i = w̃_i / Σ_j w̃_j.

``∂L/∂z_l · z_l`` is the first-order Taylor estimate of the change of ``L`` when ``z_l`` is set
to 0, the gradient counterpart of masking. What ``L`` is matters for reconstruction:

- ``loss="energy"`` (default): ``L = (1/2D) Σ_p (g(z)_p − g(0)_p)^2``, the energy of the
  reconstruction relative to the all-dropped reconstruction ``g(0)`` (``D = C·H·W`` pixels).
  Why not the task loss: at a good reconstruction ``MSE(x, g(z))`` is near its minimum in ``z``,
  so its gradient is near zero and carries only the residual's noise (masking's change is then
  of second order, ``||J_i z_i||^2 / D``). The energy loss has a gradient ``J^T (g(z) − g(0)) / D``
  that does not vanish; for a linear decoder ``g(z) = A z + c`` whose feature blocks of columns
  are orthonormal, ``Σ_{l∈i} ∂L/∂z_l z_l = ||z_i||^2 / D`` equals the masking score exactly.
- ``loss="mse"``: ``L = MSE(x, g(z)) = (1/D) Σ_p (x_p − g(z)_p)^2``, the training loss
  (the literal reading; degenerate as explained above).

The gradient is taken with respect to the features only (``torch.autograd.grad``), so the
model's parameter gradients are left untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from channels.errors import fail
from semcom.importance.base import IMPORTANCE, ImportanceEstimator, encode_checked

LOSSES = ("energy", "mse")


@IMPORTANCE.register(
    "gradient",
    description="Gradient x input: E sum_l |dL/dz_l * z_l| per feature",
    paper="arXiv:1605.01713",
)
class GradientImportance(ImportanceEstimator):
    """Gradient × input importance ``w̃_i = E Σ_{l∈i} |∂L/∂z_l · z_l|``.

    Args:
        batch_size: images per encoder/decoder pass.
        loss: ``"energy"`` (default) or ``"mse"``; see the module docstring.

    Examples:
        >>> import torch
        >>> class Toy(torch.nn.Module):
        ...     n_features, scalars_per_feature = 2, 1
        ...     def encode(self, x): return x.reshape(-1, 2, 1)
        ...     def decode(self, z): return z.reshape(-1, 1, 1, 2)
        >>> x = torch.tensor([[[[0.3, 0.1]]]])
        >>> GradientImportance().fit(Toy(), x).importances_.round(6)   # z_i^2 / D shares
        array([0.9, 0.1])
    """

    name = "gradient"

    def __init__(self, batch_size: int = 256, loss: str = "energy") -> None:
        super().__init__(batch_size)
        key = str(loss).strip().lower()
        if key not in LOSSES:
            raise fail("loss", loss, " or ".join(LOSSES))
        self.loss = key

    def _scores(self, model: Any, x: torch.Tensor) -> np.ndarray:
        """Sum over the images of ``x`` of ``Σ_{l∈i} |∂L/∂z_l z_l|``, ``[N]``."""
        with torch.no_grad():
            z = encode_checked(model, x).detach()
            reference = model.decode(torch.zeros_like(z[:1])) if self.loss == "energy" else x
        with torch.enable_grad():
            z = z.clone().requires_grad_(True)
            x_hat = model.decode(z)
            diff = (x_hat - reference).flatten(1)
            per_image = diff.pow(2).mean(dim=1)  # MSE, or 2 L for the energy loss
            if self.loss == "energy":
                per_image = 0.5 * per_image
            grad = None
            if per_image.requires_grad:  # a decoder that ignores z has no graph back to it
                (grad,) = torch.autograd.grad(per_image.sum(), z, allow_unused=True)
        if grad is None:
            return np.zeros(z.shape[1])
        contrib = (grad * z).detach().to(torch.float64).abs().sum(dim=2)  # [b, N]
        return contrib.sum(dim=0).cpu().numpy()
