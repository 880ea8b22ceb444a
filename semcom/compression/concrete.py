"""Concrete relaxation of binary masks, gradient balancing and the reverse KL objective of CTS.

Binary Concrete (Maddison, Mnih & Teh 2017; Jang, Gu & Poole 2017): for a logit ``s`` with keep
probability ``p = σ(s)``, temperature ``τ > 0`` and ``u ~ U(0, 1)``,

    m = σ((s + log u − log(1 − u)) / τ)  ∈ (0, 1).

``P(m > 1/2) = P(log(u/(1−u)) > −s) = σ(s) = p`` for every ``τ`` (the logistic noise has CDF
``σ``), and as ``τ → 0`` the sample tends to the indicator ``1[m > 1/2]``, a Bernoulli(``p``)
draw. The sample is differentiable in ``s``, which is what lets a mask be optimised by gradient.

GradBalance (stand-in, labelled as such): the CTS paper balances the gradient of the density
constraint ``Σσ(s_i) = κ·d`` against the task gradient so that no penalty weight needs tuning;
its exact rule was not available to us. We rescale the constraint gradient to the task
gradient's norm and sign it by the density error:

    g = ∇_s R + sign(ρ − κ) · (‖∇_s R‖ / ‖∇_s ρ‖) · ∇_s ρ,      ρ = (1/d) Σ σ(s_i),

so above the target density the step lowers ``ρ`` and below it raises ``ρ``, with a push as
strong as the task's (unit norm when the task gradient vanishes).
"""

from __future__ import annotations

import torch


def binary_concrete(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A Binary Concrete sample ``m ∈ (0, 1)``, same shape as ``logits`` (differentiable in them).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> m = binary_concrete(torch.full((10000,), 1.0), 0.5, g)
        >>> abs(float((m > 0.5).float().mean()) - 0.7311) < 0.02   # P(m > 1/2) = σ(1)
        True
    """
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype)
    u = u.to(logits.device).clamp(1e-12, 1.0 - 1e-12)
    return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / temperature)


def gradbalance(
    task_grad: torch.Tensor, density_grad: torch.Tensor, density_error: float
) -> torch.Tensor:
    """The balanced gradient ``g`` of the module docstring (flat tensors of equal size).

    Examples:
        >>> g = gradbalance(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 0.0]), 0.2)
        >>> g.tolist()                                     # the constraint part has norm 5
        [8.0, 4.0]
    """
    d_norm = torch.linalg.vector_norm(density_grad)
    if density_error == 0 or d_norm == 0:
        return task_grad
    t_norm = torch.linalg.vector_norm(task_grad)
    scale = (t_norm if t_norm > 0 else 1.0) / d_norm
    sign = 1.0 if density_error > 0 else -1.0
    return task_grad + sign * scale * density_grad


def reverse_kl_bernoulli(p_sparse: torch.Tensor, p_dense: torch.Tensor) -> torch.Tensor:
    """Mean over entries of ``KL(Bern(p_sparse) ‖ Bern(p_dense))`` (the *reverse* KL: the sparse
    network's distribution first), probabilities clamped to ``[1e-6, 1 − 1e-6]``.

    ``KL(p ‖ q) = p log(p/q) + (1 − p) log((1 − p)/(1 − q)) >= 0``, zero iff ``p = q``.

    Examples:
        >>> p = torch.tensor([0.2, 0.9])
        >>> float(reverse_kl_bernoulli(p, p))
        0.0
    """
    eps = 1e-6
    p = p_sparse.clamp(eps, 1 - eps)
    q = p_dense.clamp(eps, 1 - eps)
    kl = p * (torch.log(p) - torch.log(q)) + (1 - p) * (torch.log1p(-p) - torch.log1p(-q))
    return kl.mean()
