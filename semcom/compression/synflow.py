"""Synaptic saliency (SynFlow, Tanaka et al. 2020, arXiv:2006.05467): data-free weight scores
and iterative pruning that avoids layer collapse.

The network is *linearised*: every encoder parameter is replaced by its absolute value, the
input is the all-ones image, and the objective is the total pre-tanh feature output

    R = 1ᵀ f(1; |θ|)          (for a bias-free ReLU/linear net, R = 1ᵀ (Π_l |W_l|) 1).

The synaptic saliency of a parameter is ``S(θ_i) = |θ_i · ∂R/∂θ_i|`` (float64).

Conservation (Tanaka et al., Theorem 1): when every unit is positively homogeneous
(``φ(z) = φ'(z)·z``: linear, ReLU, PReLU on the positive inputs the linearised net produces),
each hidden unit's incoming saliency equals its outgoing saliency, so layer by layer

    S(W_{l+1}) = S(W_l) + S(b_l),         S(W_L) + S(b_L) = R,

and without biases every layer's saliency sums to ``R`` (tested on the mlp and the cnn
without norms). GDN, LayerNorm and attention are not homogeneous; the scores are still
defined and used there, but the law does not hold.

Iterative pruning: over ``n`` rounds the kept share follows ``κ^{j/n}`` (``j = 1..n``) down to
the final ``κ``; every round rescores the masked network and removes the lowest scores, so the
pruned weights stay pruned and the final count is exact.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from semcom.compression.budget import lowest, prune_count
from semcom.compression.prunable import prunable_weights


def linearized_copy(model: nn.Module) -> nn.Module:
    """A float64 copy of ``model`` in eval mode with every parameter replaced by ``|θ|``."""
    work = copy.deepcopy(model).to(torch.float64).eval()
    with torch.no_grad():
        for p in work.parameters():
            p.abs_()
    return work


def synflow_scores(
    model: nn.Module, masks: dict[str, torch.Tensor] | None = None
) -> tuple[dict[str, torch.Tensor], float]:
    """Synaptic saliency ``|θ ⊙ ∂R/∂θ|`` of every encoder-reachable parameter and ``R``.

    Args:
        model: the codec (not modified); masks (bool, by weight name) zero weights first.

    Returns:
        ``(scores, R)``: float64 scores by parameter name (every parameter that ``R`` depends
        on) and the objective ``R`` itself.

    Examples:
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> scores, r = synflow_scores(build_model("mlp", 2, hidden=[4, 3], L=1))
        >>> sorted(scores)[:2]
        ['encoder.1.bias', 'encoder.1.weight']
    """
    work = linearized_copy(model)
    if masks:
        params = dict(work.named_parameters())
        with torch.no_grad():
            for name, keep in masks.items():
                params[name].mul_(keep.to(torch.float64))
    return _scores(work)


@torch.enable_grad()
def _scores(work: nn.Module) -> tuple[dict[str, torch.Tensor], float]:
    work.zero_grad(set_to_none=True)
    ones = torch.ones((1, *work.input_shape), dtype=torch.float64, device=_device(work))
    r = work._features(ones).sum()
    r.backward()
    scores = {
        name: (p.grad * p).abs().detach()
        for name, p in work.named_parameters()
        if p.grad is not None
    }
    return scores, float(r.detach())


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def synflow_prune(model: nn.Module, count: int, iterations: int) -> dict[str, torch.Tensor]:
    """Keep masks (bool, by prunable-weight name) removing exactly ``count`` weights by
    iterative SynFlow (module docstring); ``model`` is not modified."""
    names = [n for n, _ in prunable_weights(model)]
    work = linearized_copy(model)
    params = dict(work.named_parameters())
    base = {n: params[n].detach().clone() for n in names}
    sizes = [base[n].numel() for n in names]
    total = sum(sizes)
    keep = torch.ones(total, dtype=torch.bool, device=_device(work))
    density = 1.0 - count / total
    for j in range(1, iterations + 1):
        gone = count if j == iterations else prune_count(1.0 - density ** (j / iterations), total)
        with torch.no_grad():
            at = 0
            for n, size in zip(names, sizes, strict=True):
                params[n].copy_(base[n] * keep[at : at + size].reshape(base[n].shape))
                at += size
        scores, _ = _scores(work)
        flat = torch.cat([scores[n].reshape(-1) for n in names])
        flat[~keep] = -torch.inf  # already pruned: stays pruned
        keep = torch.ones_like(keep)
        keep[lowest(flat.cpu(), gone).to(keep.device)] = False
    masks, at = {}, 0
    for n, size in zip(names, sizes, strict=True):
        masks[n] = keep[at : at + size].reshape(base[n].shape)
        at += size
    return masks
