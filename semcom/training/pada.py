"""PA&DA data sampling: draw training samples with probability rising with their gradient norm.

Per sample the importance is a cheap proxy of its gradient norm: the norm of the gradient of the
pixel-MSE term with respect to the reconstruction,

    g_i = || ∂ℓ_i / ∂x̂_i ||_2 = 2 ||x̂_i - x_i||_2 / D        (D = C·H·W),

averaged over the visits of sample ``i`` within an epoch (a sample not visited keeps its last
value; before any visit ``g_i = 1``). Epoch ``e`` of ``E`` draws ``n`` indices *with
replacement* from

    p_i = τ_e · g_i / Σ_j g_j  +  (1 - τ_e) / n,      τ_e = τ_final · e / E,

so sampling moves linearly from uniform towards gradient-norm importance. As in the paper's
code, no ``1 / (n p_i)`` correction is applied: the sampling is deliberately biased to hard
samples. (The paper's second half, sampling supernet paths, has no counterpart here.)
"""

from __future__ import annotations

from typing import Any

import torch

from channels.errors import check_real
from semcom.training.base import TRAINING, TrainingHook


def grad_norm_proxy(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``2 ||x̂ - x||_2 / D`` per sample (float64 ``[B]``), the norm of ``∂MSE_i/∂x̂_i``.

    Examples:
        >>> grad_norm_proxy(torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)).tolist()
        [1.0]
    """
    diff = (x_hat.detach().to(torch.float64) - x.detach().to(torch.float64)).flatten(1)
    return 2.0 * diff.norm(dim=1) / diff.shape[1]


def mix_probs(g: torch.Tensor, tau: float) -> torch.Tensor:
    """``p = τ g / Σ g + (1 - τ) / n`` (float64 ``[n]``, sums to 1; uniform if ``Σ g = 0``).

    Examples:
        >>> mix_probs(torch.tensor([1.0, 3.0]), 1.0).tolist()
        [0.25, 0.75]
        >>> mix_probs(torch.tensor([1.0, 3.0]), 0.0).tolist()
        [0.5, 0.5]
    """
    g = g.to(torch.float64)
    n = len(g)
    total = float(g.sum())
    if total <= 0.0:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    return tau * g / total + (1.0 - tau) / n


@TRAINING.register(
    "pada",
    description="PA&DA importance sampling of training data by a gradient-norm proxy",
    paper="arXiv:2302.14772",
)
class PADA(TrainingHook):
    """Draws each epoch's samples from :func:`mix_probs` of the previous epochs' proxies.

    Args:
        tau_final: ``τ`` reached at the last epoch, in ``[0, 1]`` (0: uniform with replacement).

    Raises:
        ConfigError: ``tau_final`` outside ``[0, 1]``.
    """

    def __init__(self, tau_final: float = 1.0) -> None:
        self.tau_final = check_real("tau_final", tau_final, 0.0, 1.0)
        self.epochs = 1
        self.g = torch.ones(0, dtype=torch.float64)
        self._sum = torch.zeros(0, dtype=torch.float64)
        self._count = torch.zeros(0, dtype=torch.float64)

    def setup(self, n: int, epochs: int) -> None:
        self.epochs = epochs
        self.g = torch.ones(n, dtype=torch.float64)
        self._sum = torch.zeros(n, dtype=torch.float64)
        self._count = torch.zeros(n, dtype=torch.float64)

    def tau(self, epoch: int) -> float:
        """``τ_e = τ_final · e / E``."""
        return self.tau_final * epoch / self.epochs

    def probabilities(self, epoch: int) -> torch.Tensor:
        """Sampling probabilities ``[n]`` of ``epoch`` (folds in the visits seen so far)."""
        seen = self._count > 0
        self.g[seen] = self._sum[seen] / self._count[seen]
        self._sum.zero_()
        self._count.zero_()
        return mix_probs(self.g, self.tau(epoch))

    def sampler(self, epoch: int, n: int, generator: torch.Generator) -> torch.Tensor:
        if len(self.g) != n:
            self.setup(n, self.epochs)
        p = self.probabilities(epoch)
        return torch.multinomial(p, n, replacement=True, generator=generator)

    def observe(
        self,
        epoch: int,
        indices: torch.Tensor,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        per_sample_loss: torch.Tensor,
    ) -> None:
        idx = indices.detach().cpu()
        self._sum.index_add_(0, idx, grad_norm_proxy(x, x_hat).cpu())
        self._count.index_add_(0, idx, torch.ones(len(idx), dtype=torch.float64))

    def state_dict(self) -> dict[str, Any]:
        return {"g": self.g.clone(), "sum": self._sum.clone(), "count": self._count.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.g = state["g"].clone()
        self._sum = state["sum"].clone()
        self._count = state["count"].clone()
