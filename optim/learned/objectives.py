"""Policy-gradient objectives with importance ratios: ``policy_loss(..., kind=...)``.

Every objective takes the per-step log-probabilities of the actions under the policy being
trained (``logp_new``) and under the policy that sampled them (``logp_old``), the advantages
``adv`` and a ``mask`` of valid steps, all ``[B, T]`` (``B`` episodes of up to ``T`` steps),
and returns ``(loss, stats)``: a scalar to minimise and a dict of float diagnostics.

``kind="pg"`` is the plain advantage-weighted objective every other kind reduces to when the
two policies are equal::

    L = -sum_{b,t} mask_bt * r_bt * A_bt / sum mask,   r_bt = exp(logp_new - logp_old)

(at ``r = 1`` its gradient is ``-sum mask * A * grad logp_new / sum mask``).

In the frame allocator a *step* (token) is one per-feature decision, an *episode* (sequence) is
one frame, and a *group* is the set of frames that share a problem (the same gains). The kinds,
their hyper-parameters (defaults) and the extra inputs the trainer supplies in ``**hp``:

- ``pg``: none.
- ``revibranch``, ``spa-rl``: PPO's clipped surrogate (:func:`ppo_clip`): ``clip`` (0.2),
  ``clip_high`` (= ``clip``), ``agg``. No extra input: ``adv`` comes from the per-step rewards
  of :func:`optim.learned.credit.redistribute` (``"importance"`` / ``"progress"``).
- ``alp``: ``level`` (``"token"`` or ``"sequence"``), ``clip_low`` (0.2), ``clip_high`` (0.2),
  ``agg``. ``logp_new`` must come from the update's forward pass with every layer's input
  perturbed (:func:`perturb_hidden`), ``logp_old`` from the unperturbed rollout policy.
- ``hapo``: ``clip_low`` (0.2), ``clip_high`` (0.28), ``clip_alpha`` (1), ``adv_beta`` (1),
  ``entropy_pivot`` (0.5), ``dual_clip`` (3), ``adaptive_clip`` / ``adaptive_adv`` (True).
  Extra: ``entropy [B, T]`` (the policy's entropy at each step); ``reward [B]`` with
  ``group [B]`` to replace ``adv`` by the token-level group average.
- ``grpo-guard``: ``clip`` (0.2), ``center`` (False), ``agg``. Extra: ``bias [B, T]`` (the
  step's ``KL(pi_old || pi_new)``: :func:`gaussian_ratio_bias`, :func:`categorical_ratio_bias`),
  ``scale`` (the step's std ``sigma_t sqrt(dt)``), ``step_weight`` (``1/dt``).
- ``policyflow``: ``clip`` (0.2), ``brownian_coef`` (0), ``agg``. ``logp_new``/``logp_old``
  are the approximate log-densities of :func:`flow_logp`; extra for the Brownian term:
  ``v_new``, ``v_old``, ``x_t [B, T, D]`` and ``t_flow [B, T]``.
- ``drpo``: ``lam`` (0.1), ``tau`` (10), ``beta`` (1e3), ``delta`` (1e-4), ``threshold``
  (0.5), ``score`` (``"log"``), ``kl`` (``"kl"``). Extra (required): ``reward [B]``,
  ``group [B]``; optional ``length [B]`` and ``max_length``. ``adv`` is ignored.
- ``dhpo``: ``alpha`` (0.5, a ``[B, T]`` tensor, or ``"entropy"``), ``clip_token`` (0.2),
  ``clip_seq_low`` (3e-4), ``clip_seq_high`` (4e-4), ``agg``. Extra: ``entropy [B, T]`` when
  ``alpha="entropy"``.

``agg`` is ``"token-mean"`` (default: every valid step weighs the same, as ``pg``) or
``"seq-mean"`` (the mean over episodes of each episode's step mean).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import torch

from channels.errors import check_name, check_real, fail

Objective = Callable[..., tuple[torch.Tensor, dict[str, float]]]
OBJECTIVES: dict[str, Objective] = {}
AGGREGATIONS = ("token-mean", "seq-mean")


def objective(name: str) -> Callable[[Objective], Objective]:
    """Decorator registering an objective under ``name``."""

    def deco(func: Objective) -> Objective:
        OBJECTIVES[name] = func
        return func

    return deco


# --- shared pieces ---------------------------------------------------------------------------


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``sum(mask * x) / max(sum(mask), 1)`` (``mask`` 0/1 or bool, same shape as ``x``)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def aggregate(loss: torch.Tensor, mask: torch.Tensor, agg: str = "token-mean") -> torch.Tensor:
    """Reduce per-step losses ``[B, T]`` to a scalar.

    Args:
        loss: float ``[B, T]``.
        mask: ``[B, T]``, 1 where a step exists.
        agg: ``"token-mean"``: ``sum(mask * loss) / sum(mask)``; ``"seq-mean"``: the mean over
            episodes with at least one step of ``sum_t(mask * loss) / sum_t(mask)``.

    Returns:
        A scalar tensor.
    """
    if agg == "token-mean":
        return masked_mean(loss, mask)
    m = mask.to(loss.dtype)
    steps = m.sum(dim=1)
    per_seq = (loss * m).sum(dim=1) / steps.clamp_min(1.0)
    return masked_mean(per_seq, steps > 0)


def sequence_log_ratio(
    logp_new: torch.Tensor, logp_old: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Per-episode GSPO log-ratio ``mean_t(logp_new - logp_old)`` over valid steps, ``[B, 1]``.

    ``exp`` of it is the geometric mean of the step ratios (the sequence-level ratio).
    """
    m = mask.to(logp_new.dtype)
    diff = (logp_new - logp_old.detach()) * m
    return diff.sum(dim=1, keepdim=True) / m.sum(dim=1, keepdim=True).clamp_min(1.0)


def sequence_ratio(
    logp_new: torch.Tensor, logp_old: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """GSPO-token sequence ratio broadcast to the steps, ``[B, T]``.

    Its value at every step of episode ``b`` is ``s_b = exp(mean_t log r_bt)``; its gradient at
    step ``t`` is ``s_b * grad logp_new_bt`` (``sg(s_b) * pi_t / sg(pi_t)``). With advantages
    that are constant within an episode this is gradient-identical to GSPO's
    ``s_b * mean_t grad logp_bt`` summed over the episode's steps; with per-step advantages it
    still reduces to ``pg`` when the policies are equal.
    """
    s = torch.exp(sequence_log_ratio(logp_new, logp_old, mask)).detach()
    return s * torch.exp(logp_new - logp_new.detach())


def clip_surrogate(
    ratio: torch.Tensor,
    adv: torch.Tensor,
    low: torch.Tensor | float,
    high: torch.Tensor | float,
    *,
    clipped_ratio: torch.Tensor | None = None,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's pessimistic per-step loss ``max(-A r, -A clip(r, 1 - low, 1 + high))``.

    Args:
        ratio: ``[B, T]`` importance ratios.
        adv: ``[B, T]`` advantages (no gradient flows into them).
        low: lower clip range (float or ``[B, T]``).
        high: upper clip range (float or ``[B, T]``).
        clipped_ratio: the clipped ratio to use instead of ``clip(ratio, ...)`` (DHPO's mix of
            separately clipped branches); ``low``/``high`` are then unused.
        dual_clip: dual-clip constant ``c > 1``: for ``A < 0`` the loss is also capped at
            ``-A c`` (``None``: no cap).

    Returns:
        ``(loss [B, T], clipped [B, T] bool)``, ``clipped`` where the clipped branch is taken.
    """
    adv = adv.detach()
    if clipped_ratio is None:
        clipped_ratio = torch.clamp(ratio, 1.0 - low, 1.0 + high)
    plain = -adv * ratio
    clip = -adv * clipped_ratio
    loss = torch.maximum(plain, clip)
    if dual_clip is not None:
        loss = torch.where(adv < 0, torch.minimum(loss, -adv * dual_clip), loss)
    return loss, clip > plain


def _stats(ratio: torch.Tensor, mask: torch.Tensor, clipped: torch.Tensor) -> dict[str, float]:
    return {
        "ratio_mean": float(masked_mean(ratio.detach(), mask)),
        "clip_frac": float(masked_mean(clipped.to(ratio.dtype), mask)),
    }


# --- pg and the plain clipped objective (ReviBranch, SPA-RL) ---------------------------------


@objective("pg")
def plain(
    logp_new: torch.Tensor, logp_old: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, float]]:
    """The plain advantage-weighted importance-ratio objective (module docstring)."""
    ratio = torch.exp(logp_new - logp_old.detach())
    loss = -masked_mean(ratio * adv.detach(), mask)
    return loss, {"ratio_mean": float(masked_mean(ratio.detach(), mask))}


def ppo_clip(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float = 0.2,
    clip_high: float | None = None,
    agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate on per-step ratios, the objective of the credit-assignment kinds.

    ``L = agg(max(-A r, -A clip(r, 1 - clip, 1 + clip_high)))``. ReviBranch and SPA-RL change
    the rewards, not the objective: the trainer computes ``adv`` from the per-step rewards of
    :func:`optim.learned.credit.redistribute` (``"importance"`` / ``"progress"``).

    Args:
        logp_new: ``[B, T]`` log-probabilities under the trained policy.
        logp_old: ``[B, T]`` under the sampling policy.
        adv: ``[B, T]`` advantages.
        mask: ``[B, T]`` valid steps.
        clip: lower clip range ``eps`` (PPO: 0.2).
        clip_high: upper clip range (``None``: ``clip``).
        agg: ``"token-mean"`` or ``"seq-mean"``.

    Returns:
        ``(loss, stats)`` with ``ratio_mean`` and ``clip_frac``.
    """
    ratio = torch.exp(logp_new - logp_old.detach())
    high = clip if clip_high is None else clip_high
    loss, clipped = clip_surrogate(ratio, adv, clip, high)
    return aggregate(loss, mask, agg), _stats(ratio, mask, clipped)


objective("revibranch")(ppo_clip)
objective("spa-rl")(ppo_clip)


# --- ALP -------------------------------------------------------------------------------------


def perturb_hidden(
    hidden: torch.Tensor, log_sigma: torch.Tensor, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """ALP's layer perturbation ``h + sigma * eps``, ``eps ~ N(0, I)``, ``sigma = exp(log_sigma)``.

    The policy calls this on the input hidden state of every layer during the update's forward
    pass only (never during rollouts); ``log_sigma`` is one learnable scalar per layer and is
    trained by the same loss, since the noise enters the computation graph through ``sigma``.

    Args:
        hidden: float ``[..., H]``.
        log_sigma: scalar tensor (``-inf`` switches the perturbation off exactly).
        generator: random source of ``eps`` (``None``: torch's global one).

    Returns:
        The perturbed hidden state, same shape as ``hidden``.
    """
    noise = torch.randn(hidden.shape, generator=generator, dtype=hidden.dtype, device=hidden.device)
    return hidden + torch.exp(log_sigma) * noise


@objective("alp")
def alp(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    level: str = "token",
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Adaptive Layerwise Perturbation (arXiv:2603.19470): one ratio, perturbed numerator.

    ``rho = pi_{theta, delta}(a | s) / pi_old^infer(a | s)``: the numerator is the policy under
    training evaluated with a Gaussian perturbation ``delta_l ~ N(0, sigma_l^2 I)`` added to the
    input of every layer ``l`` (:func:`perturb_hidden`), the denominator the unperturbed policy
    that produced the rollout. ``rho`` enters a clipped surrogate, at step level
    (``level="token"``) or as GSPO's geometric mean over the episode (``"sequence"``, the
    paper's best variant). The trainer must supply ``logp_new`` from the perturbed forward pass
    and ``logp_old`` as recorded at rollout time, and put every ``log_sigma_l`` in the optimiser.

    Args:
        logp_new: ``[B, T]`` log-probabilities of the perturbed policy being trained.
        logp_old: ``[B, T]`` log-probabilities of the (unperturbed) rollout policy.
        adv: ``[B, T]`` advantages.
        mask: ``[B, T]`` valid steps.
        level: ``"token"`` or ``"sequence"``.
        clip_low: lower clip range (the authors' multi-turn recipe: 0.5 at sequence level).
        clip_high: upper clip range (ibid.: 3.0).
        agg: ``"token-mean"`` or ``"seq-mean"``.

    Returns:
        ``(loss, stats)`` with ``ratio_mean``, ``clip_frac`` and ``abs_log_ratio_max``.
    """
    if level == "token":
        ratio = torch.exp(logp_new - logp_old.detach())
    else:
        ratio = sequence_ratio(logp_new, logp_old, mask)
    loss, clipped = clip_surrogate(ratio, adv, clip_low, clip_high)
    stats = _stats(ratio, mask, clipped)
    log_ratio = (logp_new - logp_old).detach().abs() * mask.to(logp_new.dtype)
    stats["abs_log_ratio_max"] = float(log_ratio.max()) if log_ratio.numel() else 0.0
    return aggregate(loss, mask, agg), stats


# --- HAPO ------------------------------------------------------------------------------------


def hapo_entropy_signal(
    entropy: torch.Tensor, mask: torch.Tensor, *, pivot: float = 0.5, eps: float = 1e-8
) -> torch.Tensor:
    """HAPO's normalised token entropy ``h`` in ``[-1, 1]`` (0 on masked steps).

    ``z = (log H - q) / s`` with ``q`` the ``pivot`` quantile of ``log H`` over valid steps
    (nearest rank; the median by default) and ``s`` the root mean square of ``log H - q``; then
    positive values are divided by the largest positive ``z`` and negative ones by the largest
    ``|z|`` among the negative ones, so the most uncertain step has ``h = 1`` and the most
    confident ``h = -1``. ``h`` is a non-decreasing function of ``H`` within a batch.

    Args:
        entropy: ``[B, T]`` non-negative policy entropies (nats).
        mask: ``[B, T]`` valid steps.
        pivot: quantile used as the centre, in ``[0, 1]``.
        eps: floor for the entropy, the scale and the side maxima.

    Returns:
        ``h`` ``[B, T]`` (detached).
    """
    with torch.no_grad():
        valid = mask.bool()
        log_h = torch.log(entropy.clamp_min(eps))
        values = log_h[valid]
        if values.numel() == 0:
            return torch.zeros_like(log_h)
        ordered = torch.sort(values).values
        centre = ordered[round(pivot * (values.numel() - 1))]
        z = torch.where(valid, log_h - centre, torch.zeros_like(log_h))
        scale = (z.pow(2).sum() / valid.sum()).clamp_min(eps).sqrt()
        z = z / scale
        pos_max = z.clamp_min(0.0).max().clamp_min(eps)
        neg_max = (-z).clamp_min(0.0).max().clamp_min(eps)
        return torch.where(z > 0, z / pos_max, z / neg_max)


def hapo_temperature(
    entropy: torch.Tensor,
    mask: torch.Tensor,
    *,
    base: float = 1.0,
    tau: float = 0.05,
    pivot: float = 0.5,
) -> torch.Tensor:
    """HAPO's adaptive sampling temperature ``T_t = base * (1 + tau * h_t)`` (rollout side).

    Uncertain steps (high entropy) sample hotter, confident ones colder; ``T`` is
    non-decreasing in the step's entropy. ``h`` is :func:`hapo_entropy_signal`.

    Examples:
        >>> H = torch.tensor([[0.1, 1.0, 2.0]], dtype=torch.float64)
        >>> hapo_temperature(H, torch.ones_like(H)).tolist()
        [[0.95, 1.0, 1.05]]
    """
    return base * (1.0 + tau * hapo_entropy_signal(entropy, mask, pivot=pivot))


def group_index(group: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Dense group numbers ``0..G-1`` for arbitrary integer labels ``[B]``, and ``G``."""
    labels, inverse = torch.unique(group, return_inverse=True)
    return inverse, int(labels.numel())


def group_max(x: torch.Tensor, g: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Per-group maximum ``[G]`` of ``x [B]`` for dense group numbers ``g`` (``-inf``: empty)."""
    member = g[:, None] == torch.arange(n_groups, device=g.device)[None, :]
    return torch.where(member, x[:, None], -math.inf).amax(dim=0)


def hapo_advantages(
    reward: torch.Tensor,
    mask: torch.Tensor,
    group: torch.Tensor,
    *,
    eps: float = 1e-6,
    fallback: float = 5.0,
) -> torch.Tensor:
    """HAPO's token-level group average advantage, ``[B, T]``.

    Every valid step of episode ``b`` carries the episode's reward ``R_b``; within a group the
    mean and the (population) standard deviation are taken over all valid steps, so a long
    episode weighs more: ``A_bt = (R_b - mu_g) / (sigma_g + eps)``. If any ``|A|`` of a group
    reaches ``fallback``, that group falls back to GRPO's advantages (mean and sample standard
    deviation over its episodes; a lone episode gets ``R_b``).

    Args:
        reward: ``[B]`` episode rewards.
        mask: ``[B, T]`` valid steps.
        group: ``[B]`` integer group labels (frames of the same problem share one).
        eps: added to the standard deviation.
        fallback: threshold for the GRPO fallback.

    Returns:
        ``A`` ``[B, T]`` (0 on masked steps, no gradient).
    """
    with torch.no_grad():
        r = reward.to(torch.float64)
        g, n_groups = group_index(group)
        steps = mask.to(torch.float64).sum(dim=1)
        zeros = torch.zeros(n_groups, dtype=torch.float64, device=r.device)
        tok = zeros.index_add(0, g, steps).clamp_min(1.0)
        mu = zeros.index_add(0, g, steps * r) / tok
        var = zeros.index_add(0, g, steps * (r - mu[g]) ** 2) / tok
        token_adv = (r - mu[g]) / (var.sqrt()[g] + eps)
        # GRPO: mean and unbiased std over the group's episodes.
        count = zeros.index_add(0, g, torch.ones_like(r))
        mu_seq = zeros.index_add(0, g, r) / count
        ss = zeros.index_add(0, g, (r - mu_seq[g]) ** 2)
        std_seq = (ss / (count - 1).clamp_min(1.0)).sqrt()
        lone = count[g] < 2
        grpo = torch.where(lone, r, (r - mu_seq[g]) / (std_seq[g] + eps))
        big = zeros.index_add(0, g, (token_adv.abs() >= fallback).to(torch.float64) * (steps > 0))
        adv_b = torch.where(big[g] > 0, grpo, token_adv)
        return (adv_b[:, None] * mask.to(torch.float64)).to(reward.dtype)


def hapo_clip_ranges(
    h: torch.Tensor, clip_low: float, clip_high: float, clip_alpha: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """HAPO's asymmetric adaptive clip ranges ``(eps_low [B, T], eps_high [B, T])``.

    Confident steps (``h <= 0``) widen the lower range, ``eps_low (1 - alpha h)``, so the
    probability of a noisy low-entropy token can fall further; uncertain steps (``h > 0``)
    widen the upper range, ``eps_high (1 + alpha h)``, for exploration. The other range keeps
    its base value. Both are non-decreasing in ``|h|`` on their side.
    """
    low = torch.where(h <= 0, clip_low * (1.0 - clip_alpha * h), torch.full_like(h, clip_low))
    high = torch.where(h > 0, clip_high * (1.0 + clip_alpha * h), torch.full_like(h, clip_high))
    return low, high


def hapo_redistribute(
    adv: torch.Tensor,
    h: torch.Tensor,
    ratio: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    adv_beta: float = 1.0,
) -> torch.Tensor:
    """HAPO's differential advantage redistribution ``A' = A (1 + beta h)`` where it applies.

    The neutral zone is ``1 - eps_low/2 < r < 1 + eps_high/2``. An uncertain step (``h > 0``)
    is amplified outside the zone (the update already moved it clearly), a confident one
    (``h <= 0``) is damped inside it; elsewhere ``A`` is unchanged.
    """
    scaled = adv * (1.0 + adv_beta * h)
    inside = (ratio > 1.0 - low / 2) & (ratio < 1.0 + high / 2)
    return torch.where((h > 0) ^ inside, scaled, adv)


@objective("hapo")
def hapo(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    entropy: torch.Tensor | None = None,
    reward: torch.Tensor | None = None,
    group: torch.Tensor | None = None,
    clip_low: float = 0.2,
    clip_high: float = 0.28,
    clip_alpha: float = 1.0,
    adv_beta: float = 1.0,
    entropy_pivot: float = 0.5,
    dual_clip: float | None = 3.0,
    adaptive_clip: bool = True,
    adaptive_adv: bool = True,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Heterogeneous Adaptive Policy Optimization (arXiv:2509.16591), the update side.

    With ``h`` = :func:`hapo_entropy_signal` of the per-step ``entropy``: advantages are the
    token-level group average (:func:`hapo_advantages`) when ``reward`` and ``group`` are given
    (else ``adv``), redistributed by :func:`hapo_redistribute`; the clip ranges are
    :func:`hapo_clip_ranges`; the loss is DAPO's token-mean dual-clip surrogate. Adaptive
    temperature sampling is the rollout side (:func:`hapo_temperature`). Without ``entropy``,
    ``h = 0`` and this is the DAPO loss.

    Args:
        logp_new, logp_old, adv, mask: as :func:`policy_loss`.
        entropy: ``[B, T]`` policy entropy at each step (``None``: ``h = 0``).
        reward: ``[B]`` episode rewards (with ``group``: HAPO's own advantages).
        group: ``[B]`` integer group labels.
        clip_low: base lower clip range (DAPO: 0.2).
        clip_high: base upper clip range (DAPO's clip-higher: 0.28).
        clip_alpha: strength of the adaptive clip.
        adv_beta: strength of the advantage redistribution.
        entropy_pivot: quantile of ``log H`` used as the centre of ``h``.
        dual_clip: cap ``c`` of dual-clip PPO for ``A < 0`` (``None``: off).
        adaptive_clip: use the entropy-adaptive clip ranges.
        adaptive_adv: use the advantage redistribution.

    Returns:
        ``(loss, stats)`` with ``ratio_mean``, ``clip_frac`` and ``h_mean``.
    """
    if (reward is None) != (group is None):
        name = "group" if group is None else "reward"
        raise fail(name, None, "a tensor when the other of reward/group is given")
    if reward is not None:
        adv = hapo_advantages(reward, mask, group)
    adv = adv.detach()
    if entropy is None:
        h = torch.zeros_like(logp_new).detach()
    else:
        h = hapo_entropy_signal(entropy, mask, pivot=entropy_pivot).to(logp_new.dtype)
    ratio = torch.exp(logp_new - logp_old.detach())
    if adaptive_clip:
        low, high = hapo_clip_ranges(h, clip_low, clip_high, clip_alpha)
    else:
        low, high = torch.full_like(h, clip_low), torch.full_like(h, clip_high)
    if adaptive_adv:
        adv = hapo_redistribute(adv, h, ratio.detach(), low, high, adv_beta)
    loss, clipped = clip_surrogate(ratio, adv, low, high, dual_clip=dual_clip)
    stats = _stats(ratio, mask, clipped)
    stats["h_mean"] = float(masked_mean(h, mask))
    return masked_mean(loss, mask), stats


# --- GRPO-Guard ------------------------------------------------------------------------------


def gaussian_ratio_bias(
    mean_new: torch.Tensor, mean_old: torch.Tensor, std: torch.Tensor | float
) -> torch.Tensor:
    """GRPO-Guard's mean-shift term ``b = ||mu_new - mu_old||^2 / (2 s^2)`` of a Gaussian step.

    For a step ``x' ~ N(mu_old, s^2 I)`` the log-ratio of ``N(mu_new, s^2 I)`` to
    ``N(mu_old, s^2 I)`` has mean ``-b`` (the left shift the paper observes); ``log r + b`` has
    mean 0. Differentiable in ``mean_new``.

    Args:
        mean_new: ``[..., D]`` step mean under the trained policy.
        mean_old: ``[..., D]`` under the sampling policy.
        std: the step's standard deviation ``s`` (``sigma_t sqrt(dt)``), broadcastable to
            ``[...]``.

    Returns:
        ``b`` ``[...]``.
    """
    diff = mean_new - mean_old.detach()
    return diff.pow(2).sum(dim=-1) / (2.0 * torch.as_tensor(std, dtype=diff.dtype) ** 2)


def categorical_ratio_bias(logits_new: torch.Tensor, logits_old: torch.Tensor) -> torch.Tensor:
    """The same mean-shift term for a categorical step: ``KL(pi_old || pi_new)``, ``[...]``.

    :func:`gaussian_ratio_bias` is exactly ``KL(N(mu_old, s^2) || N(mu_new, s^2))``; for any
    policy ``E_{a ~ pi_old}[log r] = -KL(pi_old || pi_new)``, so adding this KL centres the
    log-ratio of a categorical decision (a feature's subchannel or modulation) at 0 exactly.

    Args:
        logits_new: ``[..., K]`` logits of the trained policy at the step.
        logits_old: ``[..., K]`` logits of the sampling policy.

    Returns:
        ``KL`` ``[...]``, differentiable in ``logits_new``.
    """
    logq = torch.log_softmax(logits_new, dim=-1)
    logp = torch.log_softmax(logits_old.detach(), dim=-1)
    return (logp.exp() * (logp - logq)).sum(dim=-1)


def guard_log_ratio(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    mask: torch.Tensor,
    *,
    bias: torch.Tensor | float = 0.0,
    scale: torch.Tensor | float = 1.0,
    center: bool = False,
) -> torch.Tensor:
    """GRPO-Guard's normalised log-ratio ``(log r + b) * s`` (RatioNorm), ``[B, T]``.

    Adding ``b`` (:func:`gaussian_ratio_bias`) removes the mean shift and multiplying by the
    step's std ``s`` makes the spread the same at every step: for a Gaussian step the result is
    exactly ``z . (mu_new - mu_old)`` with ``z ~ N(0, I)`` the sampling noise, whose mean is 0
    and whose standard deviation ``||mu_new - mu_old||`` does not depend on ``s``.
    For a categorical step the exact centring term is :func:`categorical_ratio_bias`.
    ``center=True`` is a model-free alternative: it subtracts, at each step index ``t``, the
    batch mean of ``log r + b`` over valid episodes (detached) before scaling.
    """
    log_r = logp_new - logp_old.detach() + bias
    if center:
        m = mask.to(log_r.dtype)
        col = (log_r.detach() * m).sum(dim=0, keepdim=True) / m.sum(dim=0, keepdim=True).clamp_min(
            1.0
        )
        log_r = log_r - col
    return log_r * scale


@objective("grpo-guard")
def grpo_guard(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    bias: torch.Tensor | float = 0.0,
    scale: torch.Tensor | float = 1.0,
    step_weight: torch.Tensor | float = 1.0,
    center: bool = False,
    clip: float = 0.2,
    agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO-Guard (arXiv:2510.22319): ratio normalisation and per-step gradient reweighting.

    ``r^ = exp(guard_log_ratio(...))`` (:func:`guard_log_ratio`) restores a ratio centred at 1
    with the same spread at every step, so PPO's clip ``[1 - clip, 1 + clip]`` again binds
    over-confident positive updates; each step's loss is multiplied by ``step_weight`` (the
    paper: ``1/dt``) to balance the gradient across noise levels::

        L = agg(w_t * max(-A r^, -A clip(r^, 1 - clip, 1 + clip)))

    For a Gaussian (flow/diffusion) step the trainer supplies ``bias`` from
    :func:`gaussian_ratio_bias`, ``scale = sigma_t sqrt(dt)`` and ``step_weight = 1/dt``; with
    the defaults (0, 1, 1) and ``center=False`` this is PPO.

    Returns:
        ``(loss, stats)`` with ``ratio_mean`` (of ``r^``), ``raw_ratio_mean`` and ``clip_frac``.
    """
    log_r = guard_log_ratio(logp_new, logp_old, mask, bias=bias, scale=scale, center=center)
    ratio = torch.exp(log_r)
    loss, clipped = clip_surrogate(ratio, adv, clip, clip)
    stats = _stats(ratio, mask, clipped)
    stats["raw_ratio_mean"] = float(masked_mean(torch.exp(logp_new - logp_old).detach(), mask))
    return aggregate(loss * step_weight, mask, agg), stats


# --- PolicyFlow ------------------------------------------------------------------------------


def flow_logp(delta: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float) -> torch.Tensor:
    """``sum_d log N(delta_d; mean_d, std_d^2)``, ``[...]`` from ``[..., D]``.

    PolicyFlow's approximate log-densities: ``logp_new = flow_logp(delta, dv, std_new)`` with
    ``dv = v_theta(x_t, t, s) - v_old(x_t, t, s)`` on the stored interpolation point, and
    ``logp_old = flow_logp(delta, 0, std_old)``, ``delta`` the Gaussian action noise drawn at
    rollout time.
    """
    std = torch.as_tensor(std, dtype=delta.dtype).expand_as(delta)
    z = (delta - mean) / std
    return (-0.5 * z.pow(2) - torch.log(std) - 0.5 * math.log(2.0 * math.pi)).sum(dim=-1)


def brownian_regulariser(
    v_new: torch.Tensor,
    v_old: torch.Tensor,
    x_t: torch.Tensor,
    t_flow: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    """PolicyFlow's Brownian regulariser: ``mean(((1-t) v_new - (x_t - t v_old))^2)``.

    The rectified-flow form, averaged over the action dimensions and the valid steps.

    Args:
        v_new: ``[B, T, D]`` velocity of the trained flow at ``(x_t, t)``.
        v_old: ``[B, T, D]`` velocity of the sampling flow (detached).
        x_t: ``[B, T, D]`` interpolation point ``(1-t) x0 + t a_prior``.
        t_flow: ``[B, T]`` flow time in ``[0, 1]``.
        mask: ``[B, T]`` valid steps.

    Returns:
        A scalar tensor.
    """
    t = t_flow[..., None]
    err = (1.0 - t) * v_new - (x_t - t * v_old.detach())
    return masked_mean(err.pow(2).mean(dim=-1), mask)


@objective("policyflow")
def policyflow(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip: float = 0.2,
    brownian_coef: float = 0.0,
    v_new: torch.Tensor | None = None,
    v_old: torch.Tensor | None = None,
    x_t: torch.Tensor | None = None,
    t_flow: torch.Tensor | None = None,
    agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """PolicyFlow (arXiv:2602.01156): PPO on approximate flow-policy ratios + Brownian term.

    ``r = N(delta; dv, std_new) / N(delta; 0, std_old)`` from ``logp_new``/``logp_old`` built
    with :func:`flow_logp` (no likelihood along the flow path), PPO clip ``clip`` (0.2 in the
    paper), plus ``brownian_coef *`` :func:`brownian_regulariser` when the coefficient is
    positive (then ``v_new``, ``v_old``, ``x_t`` and ``t_flow`` are required).

    Returns:
        ``(loss, stats)`` with ``ratio_mean``, ``clip_frac`` and ``brownian``.
    """
    ratio = torch.exp(logp_new - logp_old.detach())
    loss, clipped = clip_surrogate(ratio, adv, clip, clip)
    total = aggregate(loss, mask, agg)
    stats = _stats(ratio, mask, clipped)
    if brownian_coef > 0:
        inputs = {"v_new": v_new, "v_old": v_old, "x_t": x_t, "t_flow": t_flow}
        missing = [name for name, value in inputs.items() if value is None]
        if missing:
            raise fail(missing[0], None, "a tensor when brownian_coef > 0")
        reg = brownian_regulariser(v_new, v_old, x_t, t_flow, mask)
        total = total + brownian_coef * reg
        stats["brownian"] = float(reg.detach())
    return total, stats


# --- DRPO ------------------------------------------------------------------------------------


def drpo_weights(
    reward: torch.Tensor,
    group: torch.Tensor,
    scores: torch.Tensor,
    length: torch.Tensor,
    max_length: float,
    *,
    lam: float = 0.1,
    tau: float = 10.0,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DRPO's per-episode signal ``c_b`` and the mask of the groups that learn, both ``[B]``.

    Within a group, episodes with ``reward >= threshold`` are positives, the others negatives;
    groups that are all positive or all negative are dropped (``c = 0``). A positive gets the
    closed-form weight of the length-rewarded, KL-regularised positive distribution normalised
    over the group's positives, ``c_i = w_i / sum_pos w``, ``w_i = exp((1 - L_i / L_max) / lam)``
    (always > 0: a correct episode is never pushed down, however long). A negative gets
    ``c_j = -softmax_neg(s / tau)_j``, the gradient weight of DisCO's ``tau * log-sum-exp`` over
    the negatives' scores ``s``. Per learning group ``sum_pos c = 1`` and ``sum_neg c = -1``.
    """
    with torch.no_grad():
        g, n_groups = group_index(group)
        pos = reward >= threshold
        zeros = torch.zeros(n_groups, dtype=torch.float64, device=reward.device)
        n_pos = zeros.index_add(0, g, pos.to(torch.float64))
        n_neg = zeros.index_add(0, g, (~pos).to(torch.float64))
        learns = (n_pos[g] > 0) & (n_neg[g] > 0)
        w = torch.exp((1.0 - length.to(torch.float64) / max_length) / lam) * pos
        c_pos = w / zeros.index_add(0, g, w)[g].clamp_min(1e-300)
        s = scores.detach().to(torch.float64) / tau
        neg_max = group_max(torch.where(pos, -math.inf, s), g, n_groups)
        neg_max = torch.where(torch.isinf(neg_max), torch.zeros_like(neg_max), neg_max)
        e = torch.where(pos, torch.zeros_like(s), torch.exp(s - neg_max[g]))
        c_neg = e / zeros.index_add(0, g, e)[g].clamp_min(1e-300)
        c = torch.where(pos, c_pos, -c_neg) * learns
        return c.to(scores.dtype), learns


@objective("drpo")
def drpo(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    reward: torch.Tensor,
    group: torch.Tensor,
    length: torch.Tensor | None = None,
    max_length: float | None = None,
    lam: float = 0.1,
    tau: float = 10.0,
    beta: float = 1e3,
    delta: float = 1e-4,
    threshold: float = 0.5,
    score: str = "log",
    kl: str = "kl",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Decoupled Reward Policy Optimization (arXiv:2510.04474); ``adv`` is not used.

    With episode scores ``s_b = mean_t logp_new_bt`` (``score="log"``, the authors' code), the
    objective per learning group (:func:`drpo_weights`) is DisCO's discriminative one with the
    length-weighted positives::

        J_g = sum_pos w~_i s_i - tau * S_g / sg(S_g),   S_g = sum_neg exp(s_j / tau - m_g)

    (the normalised-exp surrogate of ``tau * LSE``, whose gradient is the softmax-weighted
    negatives' score gradient), ``L = -sum_g J_g / G + max(beta (KL - delta), 0)_sg * KL`` with
    ``G`` the number of groups and ``KL = mean_masked(logp_old - logp_new)`` (``kl="kl"``) or
    the low-variance ``r - 1 - log r`` (``"low_var_kl"``). ``score="ratio"`` uses DisCO's
    likelihood-ratio score ``s_b = mean_t r_bt`` with the same first-order weights instead:
    ``L = -sum_b c_b s_b / G + penalty``; both give the same gradient when the policies are
    equal, and ``"ratio"`` then also has the value of ``pg`` with the advantages
    :func:`drpo_advantages`.

    Args:
        logp_new, logp_old, adv, mask: as :func:`policy_loss` (``adv`` is ignored).
        reward: ``[B]`` episode rewards; ``>= threshold`` is a correct episode.
        group: ``[B]`` integer group labels.
        length: ``[B]`` episode lengths (default: valid steps; e.g. features sent).
        max_length: ``L_max`` (default: ``T``).
        lam: temperature ``lambda`` of the length weights (the authors: 0.1).
        tau: DisCO's ``tau`` (10).
        beta: trust-region penalty strength (1e3).
        delta: trust-region radius (1e-4).
        threshold: reward separating correct from incorrect episodes.
        score: ``"log"`` or ``"ratio"``.
        kl: ``"kl"`` or ``"low_var_kl"``.

    Returns:
        ``(loss, stats)`` with ``kl``, ``learning_groups`` and ``ratio_mean``.
    """
    m = mask.to(logp_new.dtype)
    steps = m.sum(dim=1)
    length = steps if length is None else length.to(logp_new.dtype)
    max_length = float(mask.shape[1]) if max_length is None else max_length
    log_r = logp_new - logp_old.detach()
    ratio = torch.exp(log_r)
    log_score = (logp_new * m).sum(dim=1) / steps.clamp_min(1.0)
    c, learns = drpo_weights(
        reward, group, log_score, length, max_length, lam=lam, tau=tau, threshold=threshold
    )
    _, n_groups = group_index(group)
    if score == "ratio":
        seq = (ratio * m).sum(dim=1) / steps.clamp_min(1.0)
        j = (c.detach() * seq).sum()
    else:
        pos = (reward >= threshold) & learns
        j = (torch.where(pos, c, torch.zeros_like(c)) * log_score).sum()
        g, _ = group_index(group)
        neg = (~(reward >= threshold)) & learns
        z = torch.where(neg, log_score / tau, torch.full_like(log_score, -math.inf))
        zmax = group_max(z.detach(), g, n_groups)
        zmax = torch.where(torch.isinf(zmax), torch.zeros_like(zmax), zmax)
        e = torch.where(neg, torch.exp(z - zmax[g]), torch.zeros_like(z))
        s_g = torch.zeros(n_groups, dtype=z.dtype).index_add(0, g, e)
        has_neg = s_g.detach() > 0
        j = j - tau * torch.where(has_neg, s_g / s_g.detach().clamp_min(1e-300), 0.0).sum()
    if kl == "low_var_kl":
        div = masked_mean(ratio - 1.0 - log_r, mask)
    else:
        div = masked_mean(-log_r, mask)
    penalty = torch.clamp(beta * (div - delta), min=0.0).detach() * div
    loss = -j / n_groups + penalty
    return loss, {
        "kl": float(div.detach()),
        "learning_groups": float(
            torch.unique(group[learns]).numel() if bool(learns.any()) else 0.0
        ),
        "ratio_mean": float(masked_mean(ratio.detach(), mask)),
    }


def drpo_advantages(
    reward: torch.Tensor,
    group: torch.Tensor,
    logp: torch.Tensor,
    mask: torch.Tensor,
    *,
    length: torch.Tensor | None = None,
    max_length: float | None = None,
    lam: float = 0.1,
    tau: float = 10.0,
    threshold: float = 0.5,
) -> torch.Tensor:
    """The per-step advantages under which ``pg`` has DRPO's gradient at ``logp_new = logp_old``.

    ``A_bt = (sum(mask) / G) * c_b / L_b`` with ``c`` from :func:`drpo_weights` (``L_b`` the
    episode's valid steps, ``G`` the number of groups), ``[B, T]``.
    """
    m = mask.to(logp.dtype)
    steps = m.sum(dim=1)
    length = steps if length is None else length.to(logp.dtype)
    max_length = float(mask.shape[1]) if max_length is None else max_length
    score = (logp * m).sum(dim=1) / steps.clamp_min(1.0)
    c, _ = drpo_weights(
        reward, group, score, length, max_length, lam=lam, tau=tau, threshold=threshold
    )
    _, n_groups = group_index(group)
    return (m.sum() / n_groups) * (c / steps.clamp_min(1.0))[:, None] * m


# --- DHPO ------------------------------------------------------------------------------------


def dhpo_alpha(entropy: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Entropy-guided mixing weight ``alpha_t = sigmoid((H_t - mean H) / std H)``, ``[B, T]``.

    The paper's exact entropy-to-weight map is not published; this stand-in gives uncertain
    steps (forking decisions) more of the token-level ratio, and is 1/2 at the mean entropy.
    """
    with torch.no_grad():
        valid = mask.bool()
        vals = entropy[valid]
        if vals.numel() < 2:
            return torch.full_like(entropy, 0.5)
        z = (entropy - vals.mean()) / vals.std(unbiased=False).clamp_min(1e-8)
        return torch.sigmoid(z)


@objective("dhpo")
def dhpo(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    adv: torch.Tensor,
    mask: torch.Tensor,
    *,
    alpha: float | str | torch.Tensor = 0.5,
    entropy: torch.Tensor | None = None,
    clip_token: float = 0.2,
    clip_seq_low: float = 3e-4,
    clip_seq_high: float = 4e-4,
    agg: str = "token-mean",
) -> tuple[torch.Tensor, dict[str, float]]:
    """Dynamic Hybrid Policy Optimization (arXiv:2601.05607): token and sequence ratios mixed.

    ``r_t`` is the step ratio (GRPO) and ``s`` the episode's geometric-mean ratio (GSPO,
    :func:`sequence_ratio`). Each branch is clipped in its own trust region,
    ``r~_t = clip(r_t, 1 - clip_token, 1 + clip_token)`` and
    ``s~ = clip(s, 1 - clip_seq_low, 1 + clip_seq_high)`` (GSPO's ranges), then mixed::

        L = agg(max(-A (a r_t + (1-a) s), -A (a r~_t + (1-a) s~)))

    ``alpha=1`` is GRPO's token-level clipped objective and ``alpha=0`` GSPO's; ``"entropy"``
    uses :func:`dhpo_alpha` of the per-step ``entropy`` (a stand-in map).

    Returns:
        ``(loss, stats)`` with ``ratio_mean``, ``seq_ratio_mean``, ``clip_frac``,
        ``alpha_mean``.
    """
    if isinstance(alpha, str):
        if entropy is None:
            raise fail("entropy", None, "a [B, T] tensor when alpha='entropy'")
        a = dhpo_alpha(entropy, mask).to(logp_new.dtype)
    else:
        a = torch.as_tensor(alpha, dtype=logp_new.dtype)
    r_tok = torch.exp(logp_new - logp_old.detach())
    s = sequence_ratio(logp_new, logp_old, mask)
    mixed = a * r_tok + (1 - a) * s
    clipped_mix = a * torch.clamp(r_tok, 1 - clip_token, 1 + clip_token) + (1 - a) * torch.clamp(
        s, 1 - clip_seq_low, 1 + clip_seq_high
    )
    loss, clipped = clip_surrogate(mixed, adv, 0.0, 0.0, clipped_ratio=clipped_mix)
    stats = _stats(mixed, mask, clipped)
    stats["seq_ratio_mean"] = float(masked_mean(s.detach(), mask))
    stats["alpha_mean"] = float(masked_mean(a.expand_as(mixed), mask))
    return aggregate(loss, mask, agg), stats


# --- the front door --------------------------------------------------------------------------

_CHOICES = {
    "agg": AGGREGATIONS,
    "level": ("token", "sequence"),
    "score": ("log", "ratio"),
    "kl": ("kl", "low_var_kl"),
}
_NONNEG = (
    "clip",
    "clip_high",
    "clip_low",
    "clip_token",
    "clip_seq_low",
    "clip_seq_high",
    "clip_alpha",
    "adv_beta",
    "brownian_coef",
    "beta",
    "delta",
)
_POSITIVE = ("lam", "tau", "max_length")


def _check_hp(kind: str, func: Objective, shape: tuple[int, ...], hp: dict[str, Any]) -> None:
    params = inspect.signature(func).parameters
    names = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    for key, value in hp.items():
        if key not in names:
            raise fail(key, value, f"a hyper-parameter of {kind!r}: {', '.join(names) or 'none'}")
        if key in _CHOICES:
            hp[key] = check_name(key, value, _CHOICES[key])
        elif key in _NONNEG and value is not None:
            check_real(key, value, 0.0)
        elif key in _POSITIVE and value is not None:
            check_real(key, value, 0.0, open_low=True)
        elif key == "alpha" and isinstance(value, str):
            check_name(key, value, ("entropy",))
        elif key == "alpha" and not isinstance(value, torch.Tensor):
            check_real(key, value, 0.0, 1.0)
        elif key == "entropy_pivot":
            check_real(key, value, 0.0, 1.0)
        elif key == "threshold":
            check_real(key, value)
        elif key == "dual_clip" and value is not None:
            check_real(key, value, 1.0, open_low=True)
        if key in ("entropy", "v_new", "v_old", "x_t", "t_flow") and value is not None:
            if not isinstance(value, torch.Tensor) or tuple(value.shape[:2]) != shape:
                raise fail(key, getattr(value, "shape", value), f"a tensor of shape {shape}[, D]")
        if key in ("reward", "group", "length") and value is not None:
            if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape[:1]:
                raise fail(key, getattr(value, "shape", value), f"a tensor of shape {shape[:1]}")
    for name, p in params.items():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is inspect.Parameter.empty:
            if name not in hp:
                raise fail(name, None, f"a tensor (required by {kind!r})")


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

    Every kind reduces to ``pg``'s value and gradient when ``logp_new == logp_old`` (and any
    perturbation is off), HAPO with its redistributed advantages and DRPO with
    :func:`drpo_advantages` (DRPO's value too with ``score="ratio"``).

    Args:
        logp_new: float ``[B, T]``, log-probabilities under the policy being trained.
        logp_old: float ``[B, T]``, under the sampling policy (no gradient flows into it).
        adv: float ``[B, T]``, advantages (per step, or an episode's value broadcast).
        mask: ``[B, T]``, 1 where a step exists.
        kind: the objective's name.
        **hp: the objective's hyper-parameters and extra inputs (module docstring table).

    Returns:
        ``(loss, stats)``: a scalar tensor to minimise, float diagnostics.

    Raises:
        ConfigError: an unknown ``kind``, unknown or invalid hyper-parameters, or tensors of
            the wrong shape.

    Examples:
        >>> lp = torch.zeros(2, 3, requires_grad=True)
        >>> loss, _ = policy_loss(lp, lp.detach(), torch.ones(2, 3), torch.ones(2, 3), kind="hapo")
        >>> loss.item()
        -1.0
    """
    func = OBJECTIVES[check_name("kind", kind, tuple(OBJECTIVES))]
    shape = tuple(logp_new.shape)
    if len(shape) != 2:
        raise fail("logp_new", shape, "a [B, T] tensor")
    for name, value in (("logp_old", logp_old), ("adv", adv), ("mask", mask)):
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != shape:
            raise fail(name, getattr(value, "shape", value), f"a tensor of shape {shape}")
    _check_hp(kind, func, shape, hp)
    # padding may hold anything (-inf log-probabilities): zero it so no NaN reaches the loss
    valid = mask.bool()
    logp_new = torch.where(valid, logp_new, torch.zeros_like(logp_new))
    logp_old = torch.where(valid, logp_old, torch.zeros_like(logp_old))
    adv = torch.where(valid, adv, torch.zeros_like(adv))
    return func(logp_new, logp_old, adv, mask, **hp)
