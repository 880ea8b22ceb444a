"""Policy-gradient objectives with importance ratios: ``policy_loss(..., kind=...)``.

Every objective takes the per-step log-probabilities of the actions under the policy being
trained (``logp_new``) and under the policy that sampled them (``logp_old``), the advantages
``adv`` and a ``mask`` of valid steps, all ``[B, T]`` (``B`` episodes of up to ``T`` steps),
and returns ``(loss, stats)``: a scalar to minimise and a dict of float diagnostics.

``kind="pg"`` is the plain advantage-weighted objective every other kind reduces to when the
two policies are equal::

    L = -sum_{b,t} mask_bt * r_bt * A_bt / sum mask,   r_bt = exp(logp_new - logp_old)

(at ``r = 1`` its gradient is ``-sum mask * A * grad logp_new / sum mask``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from channels.errors import check_name

Objective = Callable[..., tuple[torch.Tensor, dict[str, float]]]
OBJECTIVES: dict[str, Objective] = {}


def objective(name: str) -> Callable[[Objective], Objective]:
    """Decorator registering an objective under ``name``."""

    def deco(func: Objective) -> Objective:
        OBJECTIVES[name] = func
        return func

    return deco


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(mask * x) / max(sum(mask), 1)`` (``mask`` 0/1 or bool, same shape as ``x``)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


@objective("pg")
def plain(
    logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The plain advantage-weighted importance-ratio objective (module docstring)."""
    ratio = torch.exp(logp_new - logp_old.detach())
    loss = -masked_mean(ratio * adv, mask)
    return loss, {"ratio_mean": float(masked_mean(ratio.detach(), mask))}


def policy_loss(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    kind: str = "pg",
    **hp: Any,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The objective ``kind`` (one of :data:`OBJECTIVES`) on a batch of episodes.

    Args:
        logp_new: float ``[B, T]``, log-probabilities under the policy being trained.
        logp_old: float ``[B, T]``, under the sampling policy (no gradient flows into it).
        adv: float ``[B, T]``, advantages (per step, or an episode's value broadcast).
        mask: ``[B, T]``, 1 where a step exists.
        kind: the objective's name.
        **hp: the objective's hyper-parameters.

    Returns:
        ``(loss, stats)``: a scalar tensor to minimise, float diagnostics.

    Raises:
        ConfigError: an unknown ``kind``.
    """
    func = OBJECTIVES[check_name("kind", kind, tuple(OBJECTIVES))]
    return func(logp_new, logp_old, adv, mask, **hp)
