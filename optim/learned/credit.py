"""Credit assignment: spread an episode's terminal reward over its steps, ``redistribute``.

The frame allocator observes one reward per frame (episode), after the channel; these rules
turn it into per-step rewards ``r[B, T]`` that sum to it, ``sum_t r_bt = R_b``, with 0 on
masked steps:

- ``"importance"`` (ReviBranch, arXiv:2508.17452): ``r_t = w_t R`` with
  ``w = softmax(beta * g)`` over the episode's valid steps, ``g_t`` a per-step progress signal
  given as ``step_features [B, T]`` (for the allocator: the importance mass the decision
  delivered). The paper does not publish its weight formula; this softmax is our stand-in.
  ``beta = inf`` gives everything to the step(s) with the largest ``g`` (ties split evenly).
- ``"uniform"``: ``beta = 0``, ``r_t = R / L``.
- ``"progress"`` (SPA-RL, arXiv:2505.20732): a small network ``c(x_t)`` on each step's features
  ``step_features [B, T, F]``, fitted by :func:`fit_progress` so that ``sum_t c(x_t) = R`` on
  collected episodes; ``r_t = c(x_t) + (R - sum_t c)/L``: the fit's residual (0 for a perfect
  fit) is spread evenly so the total is exact. SPA-RL also adds a grounding bonus for
  executable actions; every decision the allocator can take is executable, so that term is a
  constant and left out.

:func:`returns_to_go` turns per-step rewards into the returns a trainer's advantages start from.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from channels.errors import check_int, check_name, check_real, fail

KINDS = ("importance", "uniform", "progress")


class ProgressModel(torch.nn.Module):
    """SPA-RL's progress estimator: an MLP from a step's features to its contribution ``c_t``.

    Args:
        n_features: ``F``, the length of a step's feature vector.
        hidden: width of the hidden layer.
    """

    def __init__(self, n_features: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_features, hidden),
            torch.nn.Tanh(),
            torch.nn.Linear(hidden, 1),
        )

    def forward(self, step_features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-step contributions ``c [B, T]`` (0 on masked steps) from ``[B, T, F]``."""
        c = self.net(step_features).squeeze(-1)
        return c * mask.to(c.dtype)


def _check_episodes(R: torch.Tensor, step_features: torch.Tensor, mask: torch.Tensor) -> None:
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2:
        raise fail("mask", getattr(mask, "shape", mask), "a [B, T] tensor")
    shape = tuple(mask.shape)
    if not isinstance(R, torch.Tensor) or tuple(R.shape) != shape[:1]:
        raise fail("R", getattr(R, "shape", R), f"a tensor of shape {shape[:1]}")
    if not isinstance(step_features, torch.Tensor) or tuple(step_features.shape[:2]) != shape:
        shown = getattr(step_features, "shape", step_features)
        raise fail("step_features", shown, f"a tensor of shape {shape}[, F]")
    empty = (mask.sum(dim=1) == 0).nonzero()
    if empty.numel():
        raise fail("mask", f"episode {int(empty[0, 0])} has no valid step", "one valid step each")


def fit_progress(
    step_features: torch.Tensor,
    mask: torch.Tensor,
    R: torch.Tensor,
    *,
    hidden: int = 32,
    epochs: int = 500,
    lr: float = 1e-2,
    seed: int = 0,
) -> ProgressModel:
    """Fit SPA-RL's progress estimator: minimise ``mean_b (sum_t c(x_bt) - R_b)^2``.

    Full-batch Adam; the initialisation is drawn from ``seed`` without touching torch's global
    random state.

    Args:
        step_features: float ``[B, T, F]`` step features of collected episodes.
        mask: ``[B, T]`` valid steps (each episode needs one).
        R: float ``[B]`` their terminal rewards.
        hidden: hidden width of the MLP.
        epochs: optimiser steps.
        lr: Adam's learning rate.
        seed: seed of the initial weights.

    Returns:
        The fitted :class:`ProgressModel` (in eval mode, same dtype as ``step_features``).

    Raises:
        ConfigError: wrong shapes, an episode without steps, or invalid options.
    """
    _check_episodes(R, step_features, mask)
    if step_features.ndim != 3:
        raise fail("step_features", tuple(step_features.shape), "a [B, T, F] tensor")
    hidden = check_int("hidden", hidden, 1)
    epochs = check_int("epochs", epochs, 0)
    lr = check_real("lr", lr, 0.0, open_low=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_int("seed", seed, 0))
        model = ProgressModel(step_features.shape[-1], hidden).to(step_features.dtype)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    x, target = step_features.detach(), R.detach().to(step_features.dtype)
    for _ in range(epochs):
        opt.zero_grad()
        loss = (model(x, mask).sum(dim=1) - target).pow(2).mean()
        loss.backward()
        opt.step()
    return model.eval()


def redistribute(
    R: torch.Tensor,
    step_features: torch.Tensor,
    mask: torch.Tensor,
    *,
    kind: str = "importance",
    **hp: Any,
) -> torch.Tensor:
    """Per-step rewards ``r [B, T]`` with ``sum_t r_bt = R_b`` and 0 on masked steps.

    Args:
        R: float ``[B]`` terminal rewards.
        step_features: ``[B, T]`` progress signal ``g`` (``"importance"``, ``"uniform"``) or
            ``[B, T, F]`` step features (``"progress"``).
        mask: ``[B, T]``, 1 where a step exists (each episode needs one).
        kind: ``"importance"``, ``"uniform"`` or ``"progress"`` (module docstring).
        **hp: ``beta`` (``"importance"``: a number >= 0 or ``inf``, default 1);
            ``model`` (``"progress"``, required: a :class:`ProgressModel` from
            :func:`fit_progress`).

    Returns:
        ``r`` ``[B, T]``, dtype of ``R`` (no gradient).

    Raises:
        ConfigError: an unknown ``kind`` or option, wrong shapes, an episode without steps.

    Examples:
        >>> R = torch.tensor([3.0])
        >>> g = torch.tensor([[0.0, 1.0, 5.0]])
        >>> m = torch.ones(1, 3)
        >>> redistribute(R, g, m, kind="uniform").tolist()
        [[1.0, 1.0, 1.0]]
        >>> redistribute(R, g, m, beta=float("inf")).tolist()
        [[0.0, 0.0, 3.0]]
    """
    kind = check_name("kind", kind, KINDS)
    allowed = {"importance": ("beta",), "uniform": (), "progress": ("model",)}[kind]
    for key, value in hp.items():
        if key not in allowed:
            raise fail(key, value, f"an option of {kind!r}: {', '.join(allowed) or 'none'}")
    _check_episodes(R, step_features, mask)
    m = mask.to(R.dtype)
    with torch.no_grad():
        if kind == "progress":
            model = hp.get("model")
            if not isinstance(model, ProgressModel):
                raise fail("model", model, "a ProgressModel from fit_progress")
            if step_features.ndim != 3:
                raise fail("step_features", tuple(step_features.shape), "a [B, T, F] tensor")
            c = model(step_features, mask).to(R.dtype)
            residual = (R - c.sum(dim=1)) / m.sum(dim=1)
            return (c + residual[:, None]) * m
        if step_features.ndim != 2:
            raise fail("step_features", tuple(step_features.shape), "a [B, T] progress signal")
        beta = 0.0 if kind == "uniform" else hp.get("beta", 1.0)
        beta = check_real("beta", beta, 0.0, allow_inf=True)
        g = step_features.to(R.dtype)
        valid = mask.bool()
        if math.isinf(beta):
            top = torch.where(valid, g, -math.inf).amax(dim=1, keepdim=True)
            w = (valid & (g == top)).to(R.dtype)
        else:
            logits = torch.where(valid, beta * g, -math.inf)
            w = torch.exp(logits - logits.amax(dim=1, keepdim=True)) * m
        w = w / w.sum(dim=1, keepdim=True)
        return w * R[:, None]


def returns_to_go(r: torch.Tensor, mask: torch.Tensor, *, gamma: float = 1.0) -> torch.Tensor:
    """Per-step returns ``G_t = sum_{k >= t, valid} gamma^(n_k - n_t) r_k``, ``[B, T]``.

    ``n_t`` counts the valid steps before ``t``, so padding in the middle of an episode does not
    discount. With ``gamma = 1`` the first valid step's return is the episode's total, which is
    ``R`` for rewards from :func:`redistribute`. Masked steps get 0.

    Args:
        r: float ``[B, T]`` per-step rewards.
        mask: ``[B, T]`` valid steps.
        gamma: discount in ``[0, 1]``.

    Returns:
        ``G`` ``[B, T]``.

    Raises:
        ConfigError: ``gamma`` outside ``[0, 1]`` or shapes that differ.

    Examples:
        >>> returns_to_go(torch.tensor([[1.0, 2.0, 3.0]]), torch.ones(1, 3), gamma=0.5).tolist()
        [[2.75, 3.5, 3.0]]
    """
    gamma = check_real("gamma", gamma, 0.0, 1.0)
    if not isinstance(mask, torch.Tensor) or mask.shape != r.shape:
        raise fail("mask", getattr(mask, "shape", mask), f"a tensor of shape {tuple(r.shape)}")
    m = mask.to(r.dtype)
    out = torch.zeros_like(r)
    running = torch.zeros_like(r[:, 0])
    for t in range(r.shape[1] - 1, -1, -1):
        running = torch.where(m[:, t] > 0, r[:, t] + gamma * running, running)
        out[:, t] = running * m[:, t]
    return out
