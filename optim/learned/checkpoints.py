"""Trained policies on disk, keyed by what trained them.

A policy is reused only for the config that made it. Its *key* is the SHA-256 of the
canonical JSON (sorted keys, no spaces, as the project keys its model checkpoints) of:

- ``format``: :data:`POLICY_FORMAT`, raised whenever the environment, the network or the
  trainer changes what a config trains (so older files are never taken for newer ones);
- ``template``: every field of the template problem but its gains (``Problem.to_dict``),
  with the number of subchannels ``K`` the policy decides for;
- ``kind``: the objective;
- ``train``: every field of the :class:`~optim.learned.trainer.TrainPolicyConfig`, the seed
  included.

The device is not part of the key (a policy trained on a GPU decides on a CPU too).

The file is ``policy-<kind>-N<n>-K<k>-<key16>.pt`` in the checkpoint folder (default
``$SEMCOM_CACHE/policies``, else ``~/.cache/semcom/policies``), written atomically; it holds
the key's payload, the key, the network's weights and the training curve. :func:`read_policy`
refuses a file whose payload does not hash to its key.

Examples:
    >>> from optim.problem import random_problem
    >>> from optim.learned.trainer import TrainPolicyConfig
    >>> p = random_problem(4, 4, seed=0)
    >>> key = policy_key(p, 4, "pg", TrainPolicyConfig())
    >>> key == policy_key(p.replace(gains=[9.0, 0, 0, 1]), 4, "pg", TrainPolicyConfig())
    True
    >>> key == policy_key(p, 4, "pg", TrainPolicyConfig(seed=1))
    False
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from channels.coded_table import cache_dir
from channels.errors import ConfigError
from optim.problem import Problem

POLICY_FORMAT = 1
"""Version of what a policy config means; part of every key."""


def key_payload(template: Problem, n_subchannels: int, kind: str, config: Any) -> dict[str, Any]:
    """The JSON-ready dict a policy key hashes (module docstring)."""
    problem = template.to_dict()
    problem.pop("gains")
    problem["n_subchannels"] = int(n_subchannels)
    return {"format": POLICY_FORMAT, "template": problem, "kind": kind, "train": config.to_dict()}


def canonical_json(payload: dict[str, Any]) -> str:
    """Sorted keys, no spaces, no NaN: the text a key is the SHA-256 of."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)


def policy_key(template: Problem, n_subchannels: int, kind: str, config: Any) -> str:
    """SHA-256 (64 hex digits) of :func:`key_payload`."""
    text = canonical_json(key_payload(template, n_subchannels, kind, config))
    return hashlib.sha256(text.encode()).hexdigest()


def default_dir() -> Path:
    """``policies`` in the cache folder (``$SEMCOM_CACHE`` or ``~/.cache/semcom``)."""
    return cache_dir() / "policies"


def policy_path(folder: str | Path | None, template: Problem, n_subchannels: int, kind: str,
                key: str) -> Path:  # fmt: skip
    """``<folder>/policy-<kind>-N<n>-K<k>-<key16>.pt`` (``folder`` None: :func:`default_dir`)."""
    base = default_dir() if folder is None else Path(folder)
    name = f"policy-{kind}-N{template.n_features}-K{int(n_subchannels)}-{key[:16]}.pt"
    return base / name


def save_policy(path: Path, payload: dict[str, Any], state: dict[str, torch.Tensor],
                history: list[dict[str, Any]]) -> None:  # fmt: skip
    """Write a policy file atomically (a temporary file in the same folder, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": POLICY_FORMAT,
        "payload": canonical_json(payload),
        "key": hashlib.sha256(canonical_json(payload).encode()).hexdigest(),
        "state": {k: v.detach().cpu() for k, v in state.items()},
        "history": json.dumps(history),
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(record, tmp)
    os.replace(tmp, path)


def read_policy(path: str | Path) -> dict[str, Any]:
    """A policy file's ``payload`` (dict), ``key``, ``state`` (weights) and ``history``.

    Raises:
        ConfigError: a missing or unreadable file, one without the policy fields, or whose
            payload does not match its key.
    """
    path = Path(path)
    expected = "a policy file written by optim.learned (policy-*.pt)"
    if not path.is_file():
        raise ConfigError(f"checkpoint: {str(path)!r} does not exist; expected {expected}")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a data error
        raise ConfigError(
            f"checkpoint: {str(path)!r} could not be read ({type(exc).__name__}); "
            f"expected {expected}"
        ) from None
    keys = {"format", "payload", "key", "state", "history"}
    if not isinstance(record, dict) or not keys <= set(record):
        raise ConfigError(f"checkpoint: {str(path)!r} lacks the policy fields; expected {expected}")
    if hashlib.sha256(str(record["payload"]).encode()).hexdigest() != record["key"]:
        raise ConfigError(
            f"checkpoint: {str(path)!r} has a config that does not match its key; "
            f"expected {expected}"
        )
    return {
        "payload": json.loads(record["payload"]),
        "key": record["key"],
        "state": record["state"],
        "history": json.loads(record["history"]),
    }


__all__ = [
    "POLICY_FORMAT",
    "canonical_json",
    "default_dir",
    "key_payload",
    "policy_key",
    "policy_path",
    "read_policy",
    "save_policy",
]
