"""SatImp: saturation × importance loss weights.

With ``p = exp(-ℓ)`` the sample's "likelihood" under its (detached) loss ``ℓ ≥ 0``, the weight

    w = p^{b1} · (1 - p)^{b2}

multiplies an importance term ``p^{b1}`` (well-fitted, influential samples) with a saturation
term ``(1 - p)^{b2}`` (samples not yet optimised). ``w ∈ [0, 1]``; for ``b1, b2 > 0`` it
vanishes at ``p = 0`` and ``p = 1`` and peaks at ``p* = b1 / (b1 + b2)``. ``b2 = 0`` is the
importance-only variant (SimImp-like emphasis ``p^{b1}``), ``b1 = 0`` the saturation-only one.
The trainer normalises by ``Σ w`` (the step's loss is ``Σ w ℓ / Σ w``).
"""

from __future__ import annotations

import torch

from channels.errors import check_real
from semcom.training.base import TRAINING, TrainingHook


def satimp_weights(losses: torch.Tensor, b1: float, b2: float) -> torch.Tensor:
    """``w = p^b1 (1-p)^b2`` with ``p = exp(-ℓ)`` (float64 ``[B]`` in ``[0, 1]``).

    Args:
        losses: per-sample losses ``[B]``, ``≥ 0`` (treated as constants).
        b1: importance exponent ``≥ 0``.
        b2: saturation exponent ``≥ 0``.

    Examples:
        >>> satimp_weights(torch.tensor([0.0, float("inf")]), 5.0, 0.1).tolist()
        [0.0, 0.0]
        >>> float(satimp_weights(torch.tensor([0.0]), 0.0, 0.0)[0])  # 0^0 = 1: uniform
        1.0
    """
    p = torch.exp(-losses.detach().to(torch.float64).clamp(min=0.0))
    return p.pow(b1) * (1.0 - p).pow(b2)


@TRAINING.register(
    "satimp",
    description="Saturation x importance loss weights w = p^b1 (1-p)^b2 with p = exp(-loss)",
    paper="arXiv:2505.11953",
)
class SatImp(TrainingHook):
    """Weights every batch by :func:`satimp_weights` of its per-sample losses.

    Args:
        b1: importance exponent in ``[0, 100]`` (the paper's recommendation: 5).
        b2: saturation exponent in ``[0, 100]`` (the paper's recommendation: 0.1).

    Raises:
        ConfigError: an exponent outside ``[0, 100]``.
    """

    def __init__(self, b1: float = 5.0, b2: float = 0.1) -> None:
        self.b1 = check_real("b1", b1, 0.0, 100.0)
        self.b2 = check_real("b2", b2, 0.0, 100.0)

    def sample_weights(
        self, step: int, x: torch.Tensor, per_sample_loss: torch.Tensor
    ) -> torch.Tensor:
        return satimp_weights(per_sample_loss, self.b1, self.b2)
