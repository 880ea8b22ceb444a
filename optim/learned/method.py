"""The ``rl:<kind>`` allocation methods: a trained policy decides each frame.

``optim.solve(problem, "rl:<kind>", **options)`` and ``optim.solve_batch(template, gains,
"rl:<kind>", **options)`` find the policy of (template without gains, ``K``, kind, trainer
config) in the checkpoint folder (:mod:`optim.learned.checkpoints`), train it there on first
use (:func:`optim.learned.trainer.train_policy`, progress on stderr), and decide every frame
greedily (the most probable choice at every step) in ``T = N`` batched forward passes
(:func:`optim.learned.policy.rollout`). The allocation is feasible by construction (the
environment's masks) and its objective is (P0)'s with the template's own models. A policy is
kept in memory once loaded, so per-frame ``solve`` calls load it once.

Options (all methods, checked before any work):

- ``checkpoint``: a policy file to use (trained and written there when it does not exist; an
  existing file must hold the policy of this config);
- ``checkpoint_dir``: the folder of policy files (default ``$SEMCOM_CACHE/policies``);
- ``train``: trainer fields replacing the defaults (:class:`~optim.learned.trainer.
  TrainPolicyConfig`, e.g. ``{"iterations": 50, "seed": 1}``), part of the policy's key;
- ``device``: ``cpu`` (default), ``cuda``, ``cuda:K`` or ``auto``, for training and deciding;
- ``progress``: print training progress to stderr (default true).

Processes that want the same policy file take turns (an exclusive ``flock`` on
``<file>.lock`` beside it): the first trains and writes it, the others then read it, so the
workers of a sweep do not train one policy several times.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from channels.errors import fail
from optim.batch.solve import BatchResult, check_gains
from optim.learned.checkpoints import (
    key_payload,
    policy_key,
    policy_path,
    read_policy,
    save_policy,
)
from optim.learned.env import FrameEnv, resolve_device
from optim.learned.policy import AllocationPolicy, rollout
from optim.learned.trainer import TrainPolicyConfig, check_kind, train_policy
from optim.problem import Allocation, Problem

OPTIONS = ("checkpoint", "checkpoint_dir", "train", "device", "progress")
"""Options every ``rl:<kind>`` method takes."""

_CACHE_SIZE = 16


@dataclass
class LoadedPolicy:
    """A policy ready to decide: network (eval mode), environment, key, file, and whether
    this call trained it."""

    policy: AllocationPolicy
    env: FrameEnv
    key: str
    path: Path
    trained: bool
    history: list[dict[str, Any]]


_LOADED: OrderedDict[tuple[str, str, str], LoadedPolicy] = OrderedDict()


def clear_cache() -> None:
    """Forget the policies kept in memory (the next use reads its file again)."""
    _LOADED.clear()


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The options with their defaults, validated (module docstring).

    Raises:
        ConfigError: an unknown option or a bad value (one line, naming it).
    """
    for name in options:
        if name not in OPTIONS:
            raise fail("option", name, ", ".join(OPTIONS))
    out = {"checkpoint": None, "checkpoint_dir": None, "train": None, "device": "cpu",
           "progress": True, **options}  # fmt: skip
    for name in ("checkpoint", "checkpoint_dir"):
        value = out[name]
        if value is not None and not isinstance(value, str | Path):
            raise fail(name, value, "None or a path")
    out["train"] = TrainPolicyConfig.from_dict(out["train"])
    out["device"] = resolve_device(out["device"])
    if not isinstance(out["progress"], bool):
        raise fail("progress", out["progress"], "true or false")
    return out


def _stderr_log(kind: str, total: int) -> Callable[[dict[str, Any]], None]:
    every = max(1, total // 10)

    def log(entry: dict[str, Any]) -> None:
        it = int(entry["iteration"])
        if it == 1 or it % every == 0 or it == total:
            print(f"rl:{kind}: iteration {it}/{total}: mean objective {entry['objective']:.6g}, "
                  f"{entry['seconds']:.2f} s", file=sys.stderr, flush=True)  # fmt: skip

    return log


def load_or_train(template: Problem, n_subchannels: int, kind: str, **options: Any) -> LoadedPolicy:
    """The policy of (template, ``K``, kind, trainer config): from memory, from its file, or
    trained now and written there.

    Raises:
        ConfigError: a bad kind or option; an existing ``checkpoint`` file of another config.
    """
    kind = check_kind(kind)
    opts = check_options(options)
    config, device = opts["train"], opts["device"]
    key = policy_key(template, n_subchannels, kind, config)
    if opts["checkpoint"] is not None:
        path = Path(opts["checkpoint"])
    else:
        path = policy_path(opts["checkpoint_dir"], template, n_subchannels, kind, key)
    memo = (key, str(path), str(device))
    if memo in _LOADED:
        _LOADED.move_to_end(memo)
        return _LOADED[memo]
    env = FrameEnv(template, n_subchannels, levels=config.levels, device=device)
    with _training_lock(path):  # processes wanting the same file: one trains, the others read
        loaded = _load_or_train_locked(template, n_subchannels, kind, key, path, env, opts)
    _LOADED[memo] = loaded
    while len(_LOADED) > _CACHE_SIZE:
        _LOADED.popitem(last=False)
    return loaded


@contextmanager
def _training_lock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``<path>.lock`` (POSIX ``flock``; none elsewhere), held while the
    policy file is read or trained and written."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115
    except OSError:  # a read-only folder: its file can only be read, no lock needed
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _load_or_train_locked(
    template: Problem,
    n_subchannels: int,
    kind: str,
    key: str,
    path: Path,
    env: FrameEnv,
    opts: dict[str, Any],
) -> LoadedPolicy:
    config, device = opts["train"], opts["device"]
    if path.is_file():
        record = read_policy(path)
        if record["key"] != key:
            raise fail("checkpoint", str(path),
                       f"the policy file of this template, kind {kind!r} and train config "
                       f"(key {key[:16]}); it holds key {record['key'][:16]}")  # fmt: skip
        policy = AllocationPolicy(env.n_modulations, config.hidden, seed=config.seed)
        policy.load_state_dict(record["state"])
        loaded = LoadedPolicy(policy.to(device).eval(), env, key, path, False, record["history"])
    else:
        log = None
        if opts["progress"]:
            print(f"rl:{kind}: training a policy for N={template.n_features}, K={n_subchannels} "
                  f"on {device} -> {path}", file=sys.stderr, flush=True)  # fmt: skip
            log = _stderr_log(kind, config.imitation + config.iterations)
        start = time.perf_counter()
        result = train_policy(template, kind, config, n_subchannels=n_subchannels,
                              device=device, log=log)  # fmt: skip
        payload = key_payload(template, n_subchannels, kind, config)
        save_policy(path, payload, result.policy.state_dict(), result.history)
        if opts["progress"]:
            print(f"rl:{kind}: trained in {time.perf_counter() - start:.1f} s", file=sys.stderr,
                  flush=True)  # fmt: skip
        loaded = LoadedPolicy(result.policy, env, key, path, True, result.history)
    return loaded


def decide(template: Problem, gains: Any, kind: str, **options: Any) -> BatchResult:
    """Greedy decisions of the policy for every frame of ``gains [B, K]``.

    Args:
        template: the frames' shared problem (its own gains are ignored).
        gains: float ``[B, K]``, finite and >= 0.
        kind: the policy's objective (``rl:<kind>``).
        **options: :data:`OPTIONS`.

    Returns:
        :class:`optim.batch.solve.BatchResult` of the method ``rl:<kind>``.

    Raises:
        ConfigError: before any work, for a template that is not a Problem, bad gains, a bad
            kind or option.
    """
    if not isinstance(template, Problem):
        raise fail("problem", type(template).__name__, "optim.Problem")
    arr = check_gains(gains, template)
    kind = check_kind(kind)
    check_options(options)
    loaded = load_or_train(template, arr.shape[1], kind, **options)
    env = loaded.env
    with torch.no_grad():
        out = rollout(env, loaded.policy, torch.as_tensor(arr, device=env.device), greedy=True)
        objective = env.objective(out.state).cpu().numpy()
    selected, subchannel, modulation, power = env.arrays(out.state)
    return BatchResult(f"rl:{kind}", selected, subchannel, modulation, power,
                       np.ascontiguousarray(objective))  # fmt: skip


def solve_rl(problem: Problem, kind: str, **options: Any) -> Allocation:
    """One frame: the :class:`~optim.problem.Allocation` :func:`decide` gives ``problem``."""
    if not isinstance(problem, Problem):
        raise fail("problem", type(problem).__name__, "optim.Problem")
    out = decide(problem, problem.gains[None, :], kind, **options)
    return out.allocation(0, problem.modulations)


def _pair(kind: str) -> tuple[Callable[..., Allocation], Callable[..., BatchResult]]:
    """The ``optim.solve`` and ``optim.solve_batch`` functions of ``rl:<kind>``."""

    def solve(
        problem: Problem,
        *,
        checkpoint: str | Path | None = None,
        checkpoint_dir: str | Path | None = None,
        train: Mapping[str, Any] | None = None,
        device: str = "cpu",
        progress: bool = True,
    ) -> Allocation:
        return solve_rl(problem, kind, checkpoint=checkpoint, checkpoint_dir=checkpoint_dir,
                        train=train, device=device, progress=progress)  # fmt: skip

    def batch(template: Problem, gains: Any, **options: Any) -> BatchResult:
        return decide(template, gains, kind, **options)

    solve.__doc__ = f"``optim.solve`` of ``rl:{kind}`` (:func:`solve_rl`)."
    batch.__doc__ = f"``optim.solve_batch`` of ``rl:{kind}`` (:func:`decide`)."
    return solve, batch


solve_pg, batch_pg = _pair("pg")
solve_revibranch, batch_revibranch = _pair("revibranch")
solve_alp, batch_alp = _pair("alp")
solve_hapo, batch_hapo = _pair("hapo")
solve_grpo_guard, batch_grpo_guard = _pair("grpo-guard")
solve_policyflow, batch_policyflow = _pair("policyflow")
solve_spa_rl, batch_spa_rl = _pair("spa-rl")
solve_drpo, batch_drpo = _pair("drpo")
solve_dhpo, batch_dhpo = _pair("dhpo")

__all__ = [
    "OPTIONS",
    "LoadedPolicy",
    "check_options",
    "clear_cache",
    "decide",
    "load_or_train",
    "solve_rl",
]
