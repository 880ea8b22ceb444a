"""Doubly robust instance reweighting: KL-regularised DRO weights of the batch's samples.

The weights solve the KL-regularised distributionally robust problem over the simplex,

    q* = argmax_{q ∈ Δ_B}  Σ_b q_b ℓ_b  -  τ · KL(q || uniform),

whose closed form is ``q*_b = softmax(ℓ / τ)_b`` (stationarity: ``log q_b - ℓ_b / τ`` is the
same for every ``b``). The trainer receives ``w = B · q*`` (mean 1): the hardest samples of the
batch (largest loss through the training channel) weigh most. ``τ -> ∞`` gives uniform weights
(plain training), ``τ -> 0`` puts all weight on the largest loss.

The paper's outer reweighting is applied here to the per-sample loss through the scheme's
random training channel; its inner adversarial (PGD) perturbation is not part of this hook.
"""

from __future__ import annotations

import torch

from channels.errors import check_real
from semcom.training.base import TRAINING, TrainingHook


def dro_weights(losses: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL-DRO weights ``w = B · softmax(ℓ / τ)`` (``[B]``, non-negative, mean 1).

    Args:
        losses: per-sample losses ``[B]`` (any float dtype; treated as constants).
        temperature: ``τ > 0``, the KL penalty.

    Returns:
        float64 weights ``[B]``.

    Examples:
        >>> dro_weights(torch.tensor([0.0, 0.0]), 1.0).tolist()
        [1.0, 1.0]
        >>> w = dro_weights(torch.tensor([0.0, 1.0]), 1.0)
        >>> round(float(w[1] / w[0]), 6) == round(float(torch.e), 6)
        True
    """
    ell = losses.detach().to(torch.float64)
    return len(ell) * torch.softmax(ell / temperature, dim=0)


@TRAINING.register(
    "doubly-robust",
    description="KL-regularised DRO sample weights w ∝ exp(loss/τ) (doubly robust reweighting)",
    paper="arXiv:2308.00311",
)
class DoublyRobust(TrainingHook):
    """Weights every batch by :func:`dro_weights` of its per-sample losses.

    Args:
        temperature: ``τ > 0`` in loss units (the pixel MSE is ~1e-2, hence the default 0.05).

    Raises:
        ConfigError: ``temperature`` not a positive finite number.
    """

    def __init__(self, temperature: float = 0.05) -> None:
        self.temperature = check_real(
            "temperature", temperature, 0.0, open_low=True, allowed="a positive finite number"
        )

    def sample_weights(
        self, step: int, x: torch.Tensor, per_sample_loss: torch.Tensor
    ) -> torch.Tensor:
        return dro_weights(per_sample_loss, self.temperature)
