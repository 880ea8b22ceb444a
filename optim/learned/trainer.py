"""One trainer for every policy objective: sample frames, roll out, score, update (PPO-style).

Optionally, ``imitation`` warm-start iterations first fit the policy to a solver's decisions
(the ``teacher``, e.g. ``hierarchical``: maximum likelihood of its actions, teacher-forced;
:func:`teacher_records`). Then policy-gradient iteration ``n`` of :func:`train_policy`:

1. Draw ``frames`` gain vectors ``g[K]`` (``|h|^2``, ``h`` from
   :func:`channels.fading.fading_coefficients` with the config's fading), each repeated
   ``group`` times: ``B = frames * group`` episodes, a *group* sharing its gains.
2. Roll out the current policy on them (sampled, :func:`optim.learned.policy.rollout`), keeping
   each step's inputs and ``logp_old``.
3. Reward each episode by the fraction of the drop cost its allocation removes,
   ``R = 1 - J / J_drop`` (``J`` from the environment's reward, ``"objective"`` or ``"link"``;
   a constant shift of ``-J``, so every baseline below sees the same differences).
4. Advantages:

   - sequence level (every kind but the credit ones): ``A_b = (R_b - mean_G R) / (std_G R +
     1e-8)`` over the episode's group ``G`` (``baseline="group"``) or the whole batch
     (``"batch"``), the same for all its steps (``normalise=False``: without the division);
   - per-step credit (``revibranch``: ``redistribute(kind="importance")``, ``spa-rl``:
     ``"progress"``, with its progress estimator fitted by ``fit_progress`` on the
     iteration's episodes first, ``credit_options.fit_epochs`` Adam steps, default 200): the
     episode's ``R`` is spread over its steps, ``r[B, T]`` with
     ``sum_t r_t = R``; the step's return ``G_t = sum_{t' >= t} gamma^(t'-t) r_t'`` is
     baselined per step over the group (or batch) and normalised alike.

5. ``epochs`` passes (fewer once the policy moved by ``target_kl``), each over
   ``minibatches`` random parts of the episodes: the new
   log-probabilities are recomputed from the kept inputs (with the layer perturbation for
   ``alp``), and ``policy_loss(logp_new, logp_old, adv, mask, kind=kind, **loss_options,
   **extras)`` minus ``entropy_coef`` times the mean step entropy is minimised by Adam with
   gradient-norm clipping. ``mask`` marks the steps that had a choice.

``extras`` are the per-episode and per-step tensors a kind may need, passed only to the kinds
whose function takes them (by name, or all with ``**hp``): ``entropy`` ``[B, T]`` (sampling
entropy of each step), ``group`` ``[B]`` (int64 group index), ``length`` ``[B]`` (features
sent), ``reward`` ``[B]`` (``R``) and ``step_features`` ``[B, T, F]`` (below).

Step features (the credit signals, float ``[B, T, 6]``): the step's progress (its objective
decrease over ``J_drop``, :meth:`optim.learned.env.FrameEnv.progress`; the ``importance``
kind receives this column alone, ``[B, T]``, as its progress signal ``g_t``), the feature's
weight share, sent (0/1), ``t / T``, its power share, and its symbol share.

Every iteration appends ``{"phase", "iteration", "objective", "loss", "entropy", "seconds"}``
and ``"reward"`` (policy-gradient phase) or ``"teacher"`` (the teacher's mean objective,
imitation phase) to the history (``objective``: the mean ``J`` of the policy's sampled
episodes: the training curve) and calls ``log`` with it.

On a CPU the run is reproducible: the gains come from a NumPy generator seeded by ``seed``,
sampling and minibatches from a torch generator seeded alike, the weights from
:class:`~optim.learned.policy.AllocationPolicy`'s seed, and the perturbation noise from
torch's global generator, seeded inside a fork that restores it afterwards.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from channels.errors import ConfigError, check_int, check_name, check_real, fail
from optim.learned.env import FrameEnv, resolve_device
from optim.learned.objectives import OBJECTIVES, policy_loss
from optim.learned.policy import AllocationPolicy, Rollout, StepRecord, rollout
from optim.problem import FADING_TYPES, Problem

KINDS = ("pg", "revibranch", "alp", "hapo", "grpo-guard", "policyflow", "spa-rl", "drpo", "dhpo")
"""The objectives a policy is trained with (the ``rl:<kind>`` allocation methods)."""

CREDIT = {"revibranch": "importance", "spa-rl": "progress"}
"""Kinds trained on per-step rewards, and the ``redistribute`` kind each uses."""

BASELINES = ("group", "batch")
EXTRAS = ("entropy", "group", "length", "reward", "step_features")
"""The per-step and per-episode inputs the trainer offers an objective (module docstring)."""
STEP_FEATURES = 6


@dataclass(frozen=True)
class TrainPolicyConfig:
    """The trainer's settings (every field enters the checkpoint key).

    Attributes:
        iterations: rollout-and-update rounds (>= 1).
        frames: gain draws per iteration (>= 1).
        group: episodes per gain draw (>= 1; the group baseline needs >= 2).
        epochs: passes over each iteration's episodes (>= 1).
        minibatches: parts per pass (>= 1, at most ``frames * group``).
        lr: Adam's learning rate (> 0).
        hidden: the network's hidden units (1..4096).
        levels: power levels ``P`` of the environment (1..4096).
        fading: ``rayleigh``, ``awgn`` or ``rician`` (the training gains' law).
        rician_k: the Rician K-factor (>= 0).
        baseline: ``group`` or ``batch``.
        normalise: divide advantages by their standard deviation.
        gamma: discount of the per-step returns of the credit kinds, in [0, 1].
        entropy_coef: weight of the entropy bonus (>= 0).
        max_grad_norm: gradient-norm clip (> 0).
        target_kl: an iteration's remaining passes are skipped once the mean
            ``logp_old - logp_new`` over the steps with a choice exceeds it (> 0; ``inf``: never).
        imitation: warm-start iterations before the policy-gradient ones (>= 0; 0: none):
            each draws ``frames * group`` gain vectors, solves them with ``teacher`` and
            fits the policy to the teacher's decisions (:func:`teacher_records`; maximum
            likelihood, ``epochs`` passes of ``minibatches`` steps).
        teacher: the batched ``optim`` method imitated (a compiled :func:`optim.solve_batch`
            method, e.g. ``hierarchical``).
        reward: ``objective`` (exact) or ``link`` (measured through the link kernels).
        reward_options: options of the ``link`` reward (``repeats``, ``seed``; iteration ``n``
            measures with seed ``seed + n``).
        loss_options: hyper-parameters of ``policy_loss`` for the kind.
        credit_options: hyper-parameters of ``redistribute`` for the credit kinds.
        seed: the run's seed (>= 0).
    """

    iterations: int = 100
    frames: int = 64
    group: int = 8
    epochs: int = 4
    minibatches: int = 2
    lr: float = 3e-3
    hidden: int = 64
    levels: int = 64
    fading: str = "rayleigh"
    rician_k: float = 3.0
    baseline: str = "group"
    normalise: bool = True
    gamma: float = 1.0
    entropy_coef: float = 1e-3
    max_grad_norm: float = 1.0
    target_kl: float = 0.02
    imitation: int = 150
    teacher: str = "hierarchical"
    reward: str = "objective"
    reward_options: dict[str, Any] = field(default_factory=dict)
    loss_options: dict[str, Any] = field(default_factory=dict)
    credit_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name, low, high in (("iterations", 1, 10**7), ("frames", 1, 10**7),
                                ("group", 1, 10**5), ("epochs", 1, 1000),
                                ("minibatches", 1, 10**6), ("hidden", 1, 4096),
                                ("levels", 1, 4096), ("seed", 0, 2**63 - 1)):  # fmt: skip
            put(name, check_int(name, getattr(self, name), low, high))
        if self.minibatches > self.frames * self.group:
            raise fail("minibatches", self.minibatches,
                       f"at most frames * group = {self.frames * self.group}")  # fmt: skip
        put("lr", check_real("lr", self.lr, 0, open_low=True, coerce=True))
        put("rician_k", check_real("rician_k", self.rician_k, 0, coerce=True))
        put("gamma", check_real("gamma", self.gamma, 0, 1, coerce=True))
        put("entropy_coef", check_real("entropy_coef", self.entropy_coef, 0, coerce=True))
        clip = check_real("max_grad_norm", self.max_grad_norm, 0, open_low=True, coerce=True)
        put("max_grad_norm", clip)
        put("target_kl", check_real("target_kl", self.target_kl, 0, open_low=True,
                                    allow_inf=True, coerce=True))  # fmt: skip
        put("fading", check_name("fading", self.fading, FADING_TYPES))
        put("baseline", check_name("baseline", self.baseline, BASELINES))
        put("reward", check_name("reward", self.reward, ("objective", "link")))
        put("imitation", check_int("imitation", self.imitation, 0, 10**7))
        from optim.batch.plan import BATCH_METHODS

        put("teacher", check_name("teacher", self.teacher, tuple(m for m in BATCH_METHODS
                                                                  if m != "exact")))  # fmt: skip
        if not isinstance(self.normalise, bool):
            raise fail("normalise", self.normalise, "true or false")
        for name in ("reward_options", "loss_options", "credit_options"):
            value = getattr(self, name)
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise fail(name, value, "a mapping of option names to values")
            put(name, dict(value))
        if self.reward == "objective" and self.reward_options:
            raise fail("reward_options", self.reward_options, "{} with reward 'objective'")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> TrainPolicyConfig:
        """The default config with the fields of ``data`` replaced.

        Raises:
            ConfigError: ``data`` not a mapping, an unknown field, or a bad value.
        """
        if data is None:
            return cls()
        if isinstance(data, TrainPolicyConfig):
            return data
        if not isinstance(data, Mapping):
            raise fail("train", data, "a mapping of trainer fields")
        known = [f.name for f in fields(cls)]
        for key in data:
            if key not in known:
                raise ConfigError(f"train: unknown field {key!r}; allowed: {', '.join(known)}")
        return cls(**dict(data))

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict that :meth:`from_dict` reads back."""
        return asdict(self)


@dataclass
class TrainedPolicy:
    """Result of :func:`train_policy`: the policy (eval mode), its environment, config and
    training curve."""

    policy: AllocationPolicy
    env: FrameEnv
    kind: str
    config: TrainPolicyConfig
    history: list[dict[str, Any]]


def sample_gains(
    config: TrainPolicyConfig, n_subchannels: int, rng: np.random.Generator
) -> np.ndarray:
    """float64 ``[frames, K]`` gains ``|h|^2`` of the config's fading law."""
    from channels.fading import fading_coefficients

    h = fading_coefficients(config.fading, (config.frames, n_subchannels), rng=rng,
                            k_factor=config.rician_k)  # fmt: skip
    return np.abs(np.asarray(h)) ** 2


def step_features(env: FrameEnv, out: Rollout) -> torch.Tensor:
    """float32 ``[B, T, 6]`` credit signals of finished episodes (module docstring)."""
    state = out.state
    order = env.order
    sent = (state.subchannel >= 0)[:, order].float()
    b, t_max = sent.shape
    share = (env.weights / env.weights.sum().clamp_min(1e-300))[order].float()
    symbols = env.symbols[order].float()  # [T, M]
    mods = state.modulation[:, order].clamp_min(0)
    used = symbols.gather(1, mods.T).T * sent / max(env.symbol_budget, 1)
    out_f = torch.empty(b, t_max, STEP_FEATURES, device=env.device)
    out_f[..., 0] = env.progress(state).float()
    out_f[..., 1] = share[None, :]
    out_f[..., 2] = sent
    out_f[..., 3] = (torch.arange(t_max, device=env.device).float() / max(t_max, 1))[None, :]
    out_f[..., 4] = state.level[:, order].float() / env.levels
    out_f[..., 5] = used
    return out_f


def _baseline(x: torch.Tensor, groups: torch.Tensor, n_groups: int, mode: str) -> tuple:
    """Mean and standard deviation of ``x [B, ...]`` over each row's group (or the batch)."""
    if mode == "batch":
        return x.mean(dim=0, keepdim=True), x.std(dim=0, unbiased=False, keepdim=True)
    shape = (n_groups,) + x.shape[1:]
    count = torch.zeros(n_groups, device=x.device).index_add_(0, groups, torch.ones_like(groups,
                                                                dtype=torch.float))  # fmt: skip
    count = count.reshape((n_groups,) + (1,) * (x.ndim - 1))
    mean = torch.zeros(shape, device=x.device, dtype=x.dtype).index_add_(0, groups, x) / count
    sq = torch.zeros(shape, device=x.device, dtype=x.dtype).index_add_(0, groups, x * x) / count
    std = (sq - mean * mean).clamp_min(0.0).sqrt()
    return mean[groups], std[groups]


def advantages(
    kind: str,
    config: TrainPolicyConfig,
    reward: torch.Tensor,
    out: Rollout,
    feats: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
) -> torch.Tensor:
    """float ``[B, T]`` advantages (module docstring, step 4)."""
    t_max = out.mask.shape[1]
    if kind in CREDIT:
        from optim.learned.credit import redistribute

        options = dict(config.credit_options)
        if CREDIT[kind] == "importance":
            signal = feats[..., 0]
        else:  # SPA-RL: the progress estimator is fitted on this iteration's episodes first
            from optim.learned.credit import fit_progress

            signal = feats.float()
            fit_epochs = int(options.pop("fit_epochs", 200))
            options["model"] = fit_progress(signal, out.mask, reward.float(), epochs=fit_epochs)
        r = redistribute(reward, signal, out.mask, kind=CREDIT[kind], **options)
        r = torch.as_tensor(r, dtype=torch.float32, device=reward.device)
        powers = config.gamma ** torch.arange(t_max, device=r.device, dtype=torch.float32)
        # G_t = sum_{t' >= t} gamma^(t' - t) r_t' = (sum_{t' >= t} gamma^t' r_t') / gamma^t
        tail = torch.flip(torch.cumsum(torch.flip(r * powers, [1]), 1), [1])
        value = tail / powers.clamp_min(1e-30)
    else:
        value = reward.float()[:, None].expand(-1, t_max)
    mean, std = _baseline(value, groups, n_groups, config.baseline)
    adv = value - mean
    if config.normalise:
        adv = adv / (std + 1e-8)
    return adv.contiguous()


def _accepted(kind: str, extras: dict[str, Any]) -> dict[str, Any]:
    """The extras the kind's objective function takes (by name, or all with ``**hp``)."""
    params = inspect.signature(OBJECTIVES[kind]).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return extras
    return {k: v for k, v in extras.items() if k in params}


def check_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`KINDS` whose objective is available.

    Raises:
        ConfigError: an unknown kind, one whose objective is not registered in
            :mod:`optim.learned.objectives`, or a credit kind without
            :mod:`optim.learned.credit`.
    """
    kind = check_name("kind", kind, KINDS)
    if kind not in OBJECTIVES:
        raise fail("kind", kind, "one with a registered objective (" + ", ".join(OBJECTIVES) + ")")
    if kind in CREDIT and importlib.util.find_spec("optim.learned.credit") is None:
        raise fail("kind", kind, "a kind whose credit assignment (optim.learned.credit) exists")
    params = list(inspect.signature(OBJECTIVES[kind]).parameters.values())[4:]
    needed = [p.name for p in params if p.default is p.empty
              and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]  # fmt: skip
    missing = [name for name in needed if name not in EXTRAS]
    if missing:
        raise fail("kind", kind, f"a kind whose inputs the trainer supplies ({', '.join(EXTRAS)}); "
                   f"it needs {', '.join(missing)}")  # fmt: skip
    return kind


def teacher_records(env: FrameEnv, gains: torch.Tensor, teacher: str) -> Rollout:
    """The teacher's decisions on frames ``gains [B, K]`` as an episode of the environment.

    The frames are solved by ``optim.solve_batch(template, gains, teacher)``; step ``t`` then
    takes the teacher's subchannel and modulation for feature ``order[t]`` and its power
    rounded to the nearest level, at least 1 and at most the levels left (the teacher's
    powers are continuous), or skips it when the teacher does not send it or no level is left.

    Returns:
        A :class:`~optim.learned.policy.Rollout` with the step records (``logp`` and
        ``entropy`` are zeros: no policy chose these actions).
    """
    from optim.batch.solve import solve_batch

    result = solve_batch(env.template, gains.cpu().numpy(), teacher)
    dev = env.device
    selected = torch.as_tensor(result.selected, device=dev)
    sub = torch.as_tensor(result.subchannel, device=dev)
    mod = torch.as_tensor(result.modulation, device=dev)
    level = torch.round(torch.as_tensor(result.power, device=dev) / env.unit_power).long()
    state = env.reset(gains)
    b, t_max = state.gains.shape[0], env.n_steps
    actions = torch.zeros(b, t_max, dtype=torch.long, device=dev)
    records = []
    for t in range(t_max):
        i = int(env.order[t])
        lv = level[:, i].clamp_min(1).minimum(state.levels_left)
        send = selected[:, i] & (lv >= 1)
        choice = torch.where(send, 1 + sub[:, i].clamp_min(0) * env.n_modulations
                             + mod[:, i].clamp_min(0), 0)  # fmt: skip
        lv = torch.where(send, lv, 0)
        ctx, choices = env.observe(state)
        cmask = env.send_mask(state)
        levels = env.level_features(state, choice)
        lmask = env.level_mask(state)
        lmask = lmask | ~lmask.any(dim=1, keepdim=True)
        records.append(StepRecord(ctx, choices, cmask, levels, lmask, choice, lv.clamp_min(1)))
        actions[:, t] = env.joint_action(choice, lv.clamp_min(1))
        env.step(state, actions[:, t])
    zeros = torch.zeros(b, t_max, device=dev)
    return Rollout(state, actions, zeros, zeros, torch.ones_like(zeros, dtype=torch.bool), records)


def train_policy(
    template: Problem,
    kind: str = "pg",
    config: TrainPolicyConfig | Mapping[str, Any] | None = None,
    *,
    n_subchannels: int | None = None,
    device: Any = "cpu",
    log: Callable[[dict[str, Any]], None] | None = None,
) -> TrainedPolicy:
    """Train a policy for ``template``'s frames with objective ``kind`` (module docstring).

    Args:
        template: the problem whose fields (all but the gains) every frame shares.
        kind: one of :data:`KINDS`.
        config: a :class:`TrainPolicyConfig` or a mapping of its fields (defaults otherwise).
        n_subchannels: ``K`` (default: the template's).
        device: ``cpu``, ``cuda``, ``cuda:K`` or ``auto``.
        log: called with each iteration's history entry.

    Returns:
        :class:`TrainedPolicy` (the policy in eval mode).

    Raises:
        ConfigError: before any work, for a bad kind, config field, device or template.
    """
    kind = check_kind(kind)
    config = TrainPolicyConfig.from_dict(config)
    env = FrameEnv(template, n_subchannels, levels=config.levels, device=resolve_device(device))
    dev = env.device
    policy = AllocationPolicy(env.n_modulations, config.hidden, seed=config.seed).to(dev)
    if kind != "alp":
        policy.log_sigma.requires_grad_(False)
    optimiser = torch.optim.Adam([p for p in policy.parameters() if p.requires_grad], lr=config.lr)
    rng = np.random.default_rng(config.seed)
    generator = torch.Generator(device=dev).manual_seed(config.seed)
    scale = env.dropped_cost if env.dropped_cost > 0 else 1.0
    n_groups, b = config.frames, config.frames * config.group
    groups = torch.arange(n_groups, device=dev).repeat_interleave(config.group)
    history: list[dict[str, Any]] = []
    devices = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(config.seed)
        for iteration in range(1, config.imitation + 1):
            start = time.perf_counter()
            gains = torch.as_tensor(
                np.concatenate([sample_gains(config, env.n_subchannels, rng)
                                for _ in range(config.group)]), device=dev)  # fmt: skip
            taught = teacher_records(env, gains, config.teacher)
            policy.train()
            losses = []
            for _ in range(config.epochs):
                perm = torch.randperm(b, generator=generator, device=dev)
                for rows in torch.tensor_split(perm, config.minibatches):
                    logp, _ = recompute(policy, taught, rows)
                    loss = -logp.mean()
                    optimiser.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                    optimiser.step()
                    losses.append(float(loss.detach()))
            policy.eval()
            out = rollout(env, policy, gains, generator=generator)
            cost = env.objective(out.state)
            entry = {
                "phase": "imitation",
                "iteration": iteration,
                "objective": float(cost.mean()),
                "teacher": float(env.objective(taught.state).mean()),
                "loss": float(np.mean(losses)),
                "entropy": float(out.entropy[out.mask].mean()) if out.mask.any() else 0.0,
                "seconds": time.perf_counter() - start,
            }
            history.append(entry)
            if log is not None:
                log(entry)
        for iteration in range(config.imitation + 1, config.imitation + config.iterations + 1):
            start = time.perf_counter()
            gains = torch.as_tensor(sample_gains(config, env.n_subchannels, rng), device=dev)
            policy.eval()
            out = rollout(env, policy, gains.repeat_interleave(config.group, dim=0),
                          generator=generator, record=True)  # fmt: skip
            cost = -env.reward(out.state, config.reward, **_reward_options(config, iteration))
            reward = (1.0 - cost / scale).float()
            feats = step_features(env, out)
            adv = advantages(kind, config, reward, out, feats, groups, n_groups)
            extras = {
                "entropy": out.entropy, "group": groups,
                "length": (out.state.subchannel >= 0).sum(dim=1).float(), "reward": reward,
                "step_features": feats,
            }  # fmt: skip
            policy.train()
            losses = []
            for _ in range(config.epochs):
                if losses and _kl(policy, out) > config.target_kl:
                    break
                perm = torch.randperm(b, generator=generator, device=dev)
                for rows in torch.tensor_split(perm, config.minibatches):
                    logp_new, ent = recompute(policy, out, rows, perturb=kind == "alp")
                    hp = _accepted(kind, {k: v[rows] for k, v in extras.items()})
                    loss, _ = policy_loss(logp_new, out.logp[rows], adv[rows], out.mask[rows],
                                          kind=kind, **config.loss_options, **hp)  # fmt: skip
                    if config.entropy_coef > 0:
                        m = out.mask[rows].float()
                        loss = loss - config.entropy_coef * (ent * m).sum() / m.sum().clamp_min(1)
                    optimiser.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
                    optimiser.step()
                    losses.append(float(loss.detach()))
            entry = {
                "phase": "policy-gradient",
                "iteration": iteration,
                "objective": float(cost.mean()),
                "reward": float(reward.mean()),
                "loss": float(np.mean(losses)),
                "entropy": float(out.entropy[out.mask].mean()) if out.mask.any() else 0.0,
                "seconds": time.perf_counter() - start,
            }
            if not math.isfinite(entry["loss"]):
                raise ConfigError(
                    f"train: the loss of kind {kind!r} is {entry['loss']} at iteration "
                    f"{iteration}; allowed: finite (lower lr or change loss_options)"
                )
            history.append(entry)
            if log is not None:
                log(entry)
    policy.eval()
    return TrainedPolicy(policy, env, kind, config, history)


def _reward_options(config: TrainPolicyConfig, iteration: int) -> dict[str, Any]:
    """The reward's options at an iteration: the ``link`` reward draws fresh data and noise
    each iteration (seed ``reward_options.seed`` (default ``seed``) plus the iteration)."""
    if config.reward != "link":
        return {}
    options = dict(config.reward_options)
    options["seed"] = int(options.get("seed", config.seed)) + iteration
    return options


def _kl(policy: AllocationPolicy, out: Rollout) -> float:
    """Mean ``logp_old - logp_new`` over the steps with a choice (an estimate of
    ``KL(old || new)``)."""
    with torch.no_grad():
        rows = torch.arange(out.logp.shape[0], device=out.logp.device)
        logp, _ = recompute(policy, out, rows)
    m = out.mask
    return float((out.logp - logp)[m].mean()) if bool(m.any()) else 0.0


def recompute(
    policy: AllocationPolicy, out: Rollout, rows: torch.Tensor, perturb: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logp [R, T], entropy [R, T])`` of the recorded actions of episodes ``rows`` under
    ``policy`` now (with gradients; ``perturb``: the layer perturbation)."""
    cols = [policy.step_log_prob(step.select(rows), perturb) for step in out.records]
    if not cols:
        empty = torch.zeros(rows.numel(), 0, device=out.logp.device)
        return empty, empty
    return torch.stack([c[0] for c in cols], 1), torch.stack([c[1] for c in cols], 1)


__all__ = [
    "BASELINES",
    "CREDIT",
    "EXTRAS",
    "KINDS",
    "TrainPolicyConfig",
    "TrainedPolicy",
    "advantages",
    "check_kind",
    "recompute",
    "sample_gains",
    "step_features",
    "teacher_records",
    "train_policy",
]
