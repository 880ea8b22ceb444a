"""The allocation policy: a small network that decides a frame's features one step at a time.

At each step of :class:`optim.learned.env.FrameEnv` the policy scores, for all ``B`` frames
in one forward pass, first the ``1 + K M`` choices (skip, or a subchannel and modulation), then
the ``P`` power levels of the chosen pair. Inputs (:meth:`FrameEnv.observe`): a per-step
*context* (the feature's weight and potential, step index, remaining power and symbol
budgets, the feature's symbol counts) and per-choice features (free, SNR of the subchannel,
``Pb`` and objective gain of the choice, symbols used) with a one-hot of the modulation.

Network (``H`` hidden units)::

    c        = tanh(W2 tanh(W1 ctx))                           context embedding   [B, H]
    u_j      = tanh(A x_j + U c)                               choice j             [B, KM, H]
    logit_j  = v . u_j,        logit_skip = s . c
    level l: tanh(A' y_l + U' c) -> v' .                       levels               [B, P]

Every infeasible choice and level gets logit ``-inf`` (the environment's masks), so sampled
and greedy decisions are always feasible. The log-probability of a step is the sum of its two
stages' (the level stage is absent for a skip); its entropy is the choice entropy plus, for a
send, the level entropy.

*Perturbation* (for the layer-wise perturbed ratio objective): ``forward(..., perturb=True)``
adds ``delta_l ~ N(0, sigma_l^2 I)`` to the input of every layer ``l``, ``sigma_l =
exp(log_sigma_l)`` a learnable parameter (reparameterised, so gradients reach it). Rollouts
never perturb.

Examples:
    >>> import torch
    >>> from optim.problem import random_problem
    >>> from optim.learned.env import FrameEnv
    >>> env = FrameEnv(random_problem(4, 4, seed=0), levels=8)
    >>> policy = AllocationPolicy(env.n_modulations, hidden=16, seed=0)
    >>> out = rollout(env, policy, torch.ones(5, 4, dtype=torch.float64), greedy=True)
    >>> out.actions.shape, out.logp.shape
    (torch.Size([5, 4]), torch.Size([5, 4]))
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from channels.errors import check_int
from optim.learned.env import (
    CHOICE_FEATURES,
    CONTEXT_FEATURES,
    LEVEL_FEATURES,
    FrameEnv,
    FrameState,
)

N_LAYERS = 5
"""Perturbed layer inputs: context 1 and 2, choice, level, and the skip/choice heads' input."""


class AllocationPolicy(nn.Module):
    """The two-stage masked policy of the module docstring.

    Args:
        n_modulations: ``M``, the template's modulation count.
        hidden: ``H``, hidden units (1..4096).
        seed: the initial weights' seed (a private generator; the global one is untouched).
        init_log_sigma: initial ``log sigma_l`` of the perturbation.
    """

    def __init__(
        self, n_modulations: int, hidden: int = 64, seed: int = 0, init_log_sigma: float = -4.0
    ) -> None:
        super().__init__()
        self.n_modulations = check_int("n_modulations", n_modulations, 1)
        self.hidden = check_int("hidden", hidden, 1, 4096)
        h = self.hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.ctx1 = nn.Linear(CONTEXT_FEATURES + n_modulations, h)
            self.ctx2 = nn.Linear(h, h)
            self.choice_in = nn.Linear(CHOICE_FEATURES + n_modulations, h)
            self.choice_ctx = nn.Linear(h, h, bias=False)
            self.choice_out = nn.Linear(h, 1)
            self.skip_out = nn.Linear(h, 1)
            self.level_in = nn.Linear(LEVEL_FEATURES, h)
            self.level_ctx = nn.Linear(h, h, bias=False)
            self.level_out = nn.Linear(h, 1)
        self.log_sigma = nn.Parameter(torch.full((N_LAYERS,), float(init_log_sigma)))

    def _noise(self, x: torch.Tensor, layer: int, perturb: bool) -> torch.Tensor:
        if not perturb:
            return x
        return x + torch.exp(self.log_sigma[layer]) * torch.randn_like(x)

    def context(self, ctx: torch.Tensor, perturb: bool = False) -> torch.Tensor:
        """float ``[B, H]``: the context embedding ``c``."""
        c = torch.tanh(self.ctx1(self._noise(ctx, 0, perturb)))
        return torch.tanh(self.ctx2(self._noise(c, 1, perturb)))

    def choice_logits(
        self, c: torch.Tensor, choices: torch.Tensor, mask: torch.Tensor, perturb: bool = False
    ) -> torch.Tensor:
        """float ``[B, 1 + K M]`` masked logits (skip first) from the context embedding and
        the choice features ``[B, K M, 10]``."""
        b, km, _ = choices.shape
        onehot = torch.eye(self.n_modulations, device=choices.device, dtype=choices.dtype)
        onehot = onehot.repeat(km // self.n_modulations, 1).expand(b, -1, -1)
        x = torch.cat([choices, onehot], dim=-1)
        u = torch.tanh(self.choice_in(self._noise(x, 2, perturb)) + self.choice_ctx(c)[:, None])
        send = self.choice_out(self._noise(u, 4, perturb))[..., 0]
        logits = torch.cat([self.skip_out(c), send], dim=1)
        return logits.masked_fill(~mask, float("-inf"))

    def level_logits(
        self, c: torch.Tensor, levels: torch.Tensor, mask: torch.Tensor, perturb: bool = False
    ) -> torch.Tensor:
        """float ``[B, P]`` masked logits of the power levels (features ``[B, P, 5]``)."""
        u = torch.tanh(self.level_in(self._noise(levels, 3, perturb)) + self.level_ctx(c)[:, None])
        return self.level_out(u)[..., 0].masked_fill(~mask, float("-inf"))

    def step_log_prob(
        self, step: StepRecord, perturb: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logp [B], entropy [B])`` of a recorded step's actions under this policy."""
        c = self.context(step.ctx, perturb)
        choice_logits = self.choice_logits(c, step.choices, step.choice_mask, perturb)
        level_logits = self.level_logits(c, step.levels, step.level_mask, perturb)
        return step_log_prob(choice_logits, level_logits, step.choice, step.level)


def step_log_prob(
    choice_logits: torch.Tensor,
    level_logits: torch.Tensor,
    choice: torch.Tensor,
    level: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp [B], entropy [B])`` of a step from its two stages' masked logits: the choice's
    plus, for a send (``choice > 0``), the level's (``level`` in ``1..P``)."""
    logp_c, ent_c = _pick(choice_logits, choice)
    logp_l, ent_l = _pick(level_logits, (level - 1).clamp_min(0))
    send = choice > 0
    return logp_c + torch.where(send, logp_l, 0.0), ent_c + torch.where(send, ent_l, 0.0)


def _pick(logits: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log p[index], entropy)`` of masked logits ``[B, A]`` (rows with every entry masked
    give 0, 0)."""
    logp = torch.log_softmax(logits, dim=-1)
    logp = torch.nan_to_num(logp, nan=0.0, neginf=-1e30)
    p = logp.exp()
    entropy = -(p * torch.where(p > 0, logp, 0.0)).sum(dim=-1)
    return logp.gather(1, index[:, None])[:, 0], entropy


@dataclass
class StepRecord:
    """What a step's log-probability is recomputed from (all ``[B, ...]``)."""

    ctx: torch.Tensor
    choices: torch.Tensor
    choice_mask: torch.Tensor
    levels: torch.Tensor
    level_mask: torch.Tensor
    choice: torch.Tensor
    level: torch.Tensor

    def select(self, rows: torch.Tensor) -> StepRecord:
        """The record of frames ``rows`` only."""
        return StepRecord(*(getattr(self, f)[rows] for f in self.__dataclass_fields__))


@dataclass
class Rollout:
    """``B`` finished episodes of ``T`` steps.

    Attributes:
        state: the final :class:`~optim.learned.env.FrameState` (the allocations).
        actions: int64 ``[B, T]`` joint action indices.
        logp: float ``[B, T]`` log-probabilities of the actions under the sampling policy.
        entropy: float ``[B, T]`` the policy's entropy at each step.
        mask: bool ``[B, T]``: the step had a choice (more than one feasible action).
        records: per step :class:`StepRecord` (only with ``record=True``).
    """

    state: FrameState
    actions: torch.Tensor
    logp: torch.Tensor
    entropy: torch.Tensor
    mask: torch.Tensor
    records: list[StepRecord] = field(default_factory=list)


def rollout(
    env: FrameEnv,
    policy: AllocationPolicy,
    gains: torch.Tensor,
    *,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    record: bool = False,
) -> Rollout:
    """Run ``policy`` on frames of ``gains [B, K]``: ``T`` batched forward passes.

    Args:
        env: the environment.
        policy: the network (on the environment's device).
        gains: float ``[B, K]``.
        greedy: take the most probable choice and level (ties: the lowest index) instead of
            sampling.
        generator: the sampling generator (on the environment's device).
        record: keep each step's inputs (for the trainer's epochs).

    Returns:
        :class:`Rollout`; no gradients are tracked.
    """
    state = env.reset(gains)
    b, t_max = state.gains.shape[0], env.n_steps
    dev = env.device
    actions = torch.zeros(b, t_max, dtype=torch.long, device=dev)
    logps = torch.zeros(b, t_max, device=dev)
    entropies = torch.zeros(b, t_max, device=dev)
    masks = torch.zeros(b, t_max, dtype=torch.bool, device=dev)
    records = []
    with torch.no_grad():
        for t in range(t_max):
            ctx, choices = env.observe(state)
            cmask = env.send_mask(state)
            c = policy.context(ctx)
            logits = policy.choice_logits(c, choices, cmask)
            choice = _choose(logits, greedy, generator)
            levels = env.level_features(state, choice)
            lmask = env.level_mask(state)
            n_feasible = cmask[:, 1:].sum(dim=1) * lmask.sum(dim=1) + 1
            lmask = lmask | ~lmask.any(dim=1, keepdim=True)  # no level left: only skips
            level_logits = policy.level_logits(c, levels, lmask)
            level = _choose(level_logits, greedy, generator) + 1
            step = StepRecord(ctx, choices, cmask, levels, lmask, choice, level)
            logps[:, t], entropies[:, t] = step_log_prob(logits, level_logits, choice, level)
            masks[:, t] = n_feasible > 1
            action = env.joint_action(choice, level)
            actions[:, t] = action
            env.step(state, action)
            if record:
                records.append(step)
    return Rollout(state, actions, logps, entropies, masks, records)


def _choose(logits: torch.Tensor, greedy: bool, generator: torch.Generator | None) -> torch.Tensor:
    if greedy:
        return logits.argmax(dim=1)
    probs = torch.softmax(logits, dim=1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0]


__all__ = ["N_LAYERS", "AllocationPolicy", "Rollout", "StepRecord", "rollout", "step_log_prob"]
