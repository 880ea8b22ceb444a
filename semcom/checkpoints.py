"""Training checkpoints: where they live, how they are written, read and rebuilt.

One file per config and code version, ``<model>-<dataset>-<scheme>-N<n>-<hash16>-<code8>.pt``
(``hash16``: :func:`semcom.train_config.config_hash`; ``code8``:
:func:`semcom.identity.code_key` of the package version and git commit), written atomically
after every epoch by :func:`semcom.train.train`. A checkpoint records the config, its hash, the
code identity and the training data's digest; :func:`read_state` refuses a file whose config does
not match its hash. :func:`model_from_state` rebuilds the deployed model: the routing method's
architecture (or the plain one), the adapter, the weights, the routing state, ``apply``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from channels.errors import ConfigError
from semcom.adapters import build_adapter, trainable_parameter_count
from semcom.identity import code_identity, code_key, same_code
from semcom.isfr import derive_seed
from semcom.models import SemanticModel, build_model
from semcom.routing import RoutingMethod, build_routing
from semcom.train_config import TrainConfig, canonical_json, config_hash, resolve_config

CHECKPOINT_FORMAT = 1


@dataclass
class TrainedModel:
    """Result of :func:`train` or :func:`load_checkpoint`.

    Attributes:
        model: the trained model in eval mode (best validation weights).
        config: the resolved :class:`TrainConfig`.
        history: one dict per epoch: ``epoch`` (1-based), ``train_loss``, ``val_loss`` (``None``
            without validation), ``lr``, ``seconds`` and ``step`` (optimiser steps so far).
        checkpoint: path of the checkpoint file, or ``None``.
        config_hash: :func:`config_hash` of ``config``.
        reused: ``True`` when :func:`train` returned an existing finished checkpoint.
        finished: ``False`` for a checkpoint of an interrupted run (last epoch's weights).
        best_epoch: epoch whose weights ``model`` carries.
        code: identity of the code that trained it (:func:`semcom.identity.code_identity`);
            None for a checkpoint that did not record it.
        data_hash: digest of the training split it was trained on (None: not recorded).
        stale: reused although another (or an unrecorded) code version trained it
            (``reuse_stale=True``).
        note: what :func:`train` noticed about reuse, e.g. a stale checkpoint it did not reuse.
        trainable_parameters: scalars in the parameters that training updated (all of them
            without an adapter; :func:`semcom.adapters.trainable_parameter_count`).
        trained_state: the trained weights (``state_dict``) before a routing method's
            ``apply``: what an ``init_from`` child starts from.
    """

    model: SemanticModel
    config: TrainConfig
    history: list[dict[str, Any]]
    checkpoint: Path | None
    config_hash: str = ""
    reused: bool = False
    finished: bool = True
    best_epoch: int = 0
    code: dict[str, Any] | None = None
    data_hash: str | None = None
    stale: bool = False
    note: str = ""
    trainable_parameters: int = 0
    trained_state: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def _name_prefix(c: TrainConfig) -> str:
    return f"{c.model}-{c.dataset}-{c.scheme}-N{c.n_features}-{config_hash(c)[:16]}"


def checkpoint_path(config: TrainConfig) -> Path | None:
    """Where :func:`train` keeps the checkpoint of ``config`` made by this code version
    (``None`` without checkpoint_dir)."""
    c = resolve_config(config)
    if c.checkpoint_dir is None:
        return None
    return Path(c.checkpoint_dir) / f"{_name_prefix(c)}-{code_key(code_identity())}.pt"


def stale_checkpoints(c: TrainConfig, digest: str, data: str, own: Path) -> list[Path]:
    """Finished checkpoints of config ``c`` from the training data ``data`` (or with no data
    recorded) made by another code version, newest first."""
    assert c.checkpoint_dir is not None
    found = []
    for path in Path(c.checkpoint_dir).glob(f"{_name_prefix(c)}*.pt"):
        if path == own or not path.is_file():
            continue
        try:
            state = read_state(path)
        except ConfigError:
            continue  # unreadable: not a candidate
        if (
            state["config_hash"] == digest
            and state["finished"]
            and state.get("data_hash") in (data, None)
            and not same_code(state.get("code"), code_identity())
        ):
            found.append(path)
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def read_state(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    expected = "a semcom training checkpoint (.pt written by semcom.train)"
    if not path.is_file():
        raise ConfigError(f"checkpoint: {str(path)!r} does not exist; expected {expected}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is a data error
        raise ConfigError(
            f"checkpoint: {str(path)!r} could not be read ({type(exc).__name__}); "
            f"expected {expected}"
        ) from None
    keys = {"format", "config", "config_hash", "model_state", "epoch", "finished", "history"}
    if (
        not isinstance(state, dict)
        or not keys <= set(state)
        or state["format"] != CHECKPOINT_FORMAT
    ):
        raise ConfigError(f"checkpoint: {str(path)!r} lacks semcom fields; expected {expected}")
    digest = hashlib.sha256(canonical_json(state["config"]).encode()).hexdigest()
    if digest != state["config_hash"]:
        raise ConfigError(
            f"checkpoint: {str(path)!r} has a config that does not match its hash; "
            f"expected {expected}"
        )
    return state


def routing_of(cfg: dict[str, Any]) -> RoutingMethod | None:
    name = cfg.get("routing")
    return None if name is None else build_routing(name, cfg.get("routing_options") or {})


def build_architecture(cfg: dict[str, Any], routing: RoutingMethod | None) -> SemanticModel:
    """The model of a (resolved) config: the routing method's architecture or the plain one."""
    if routing is None:
        return build_model(cfg["model"], cfg["n_features"], **cfg["model_options"])
    return routing.build(cfg["model"], cfg["n_features"], cfg["model_options"], seed=cfg["seed"])


def attach_adapter(cfg: dict[str, Any], model: SemanticModel) -> SemanticModel:
    """Attach the config's adapter (if any), seeded from the config's seed."""
    if cfg.get("adapter") is None:
        return model
    adapter = build_adapter(cfg["adapter"], cfg.get("adapter_options") or {})
    return adapter.attach(model, seed=derive_seed(cfg["seed"], 4))


def model_from_state(
    state: dict[str, Any], device: str | torch.device
) -> tuple[SemanticModel, int, dict[str, torch.Tensor]]:
    """``(deployed model in eval mode, trainable parameters, trained weights)`` of a checkpoint:
    build -> attach the adapter -> load the weights -> load the routing state -> ``apply``."""
    cfg = state["config"]
    routing = routing_of(cfg)
    model = attach_adapter(cfg, build_architecture(cfg, routing))
    best = state.get("best_state")
    weights = best if state["finished"] and best is not None else state["model_state"]
    model.load_state_dict(weights)
    trainable = trainable_parameter_count(model)
    model = model.to(device)
    if routing is not None and "routing_state" in state:
        routing.load_state_dict(state["routing_state"])
        model = routing.apply(model).to(device)
    return model.eval(), trainable, weights


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Load a checkpoint written by :func:`train` (model in eval mode on ``device``).

    A finished run gives its final (best-validation) weights; an interrupted one the weights of
    its last completed epoch (``finished=False``).

    Raises:
        ConfigError: missing file, unreadable file, or a config that does not match its hash.
    """
    path = Path(path)
    state = read_state(path, map_location=device)
    model, trainable, weights = model_from_state(state, device)
    return TrainedModel(
        model=model,
        config=TrainConfig(**state["config"]),
        history=list(state["history"]),
        checkpoint=path,
        config_hash=state["config_hash"],
        reused=False,
        finished=bool(state["finished"]),
        best_epoch=int(state.get("best_epoch", state["epoch"])),
        code=state.get("code"),
        data_hash=state.get("data_hash"),
        trainable_parameters=trainable,
        trained_state=weights,
    )
