"""The trainer: one loop for every model, scheme and data set, with checkpoints keyed by config.

Objective (docs/method.md §2.5): minimise the pixel MSE of the reconstruction through the training
channel of the scheme, plus a weighted cross-entropy when the model has a classifier head,

    loss = mean_b ||x_b - g(C(f(x_b)))||² / (C·H·W)  +  λ_ce · CE(classify(x_hat), y)

(``C`` = :func:`semcom.isfr.training_channel` of ``scheme``; ``λ_ce = classifier_weight``, the CE
term only over labelled samples). Adam with a cosine learning-rate decay from ``lr`` to
``lr_min`` over ``epochs`` (stepped once per epoch), batch ``batch_size``.

Validation: a seeded fraction ``val_fraction`` of the training split is held out; its loss is the
same objective on the *clean* model (eval mode: the training channel is the identity). Early
stopping ends training after ``patience`` epochs without an improvement larger than
``min_delta``; the returned model carries the weights of the best validation epoch.

Determinism: the initial weights come from ``seed``; every epoch draws its batch order and its
training-channel noise from streams derived from ``(seed, epoch)``, so a run resumed from the
checkpoint of epoch ``k`` continues exactly as the uninterrupted run would (CPU, same threads).

Checkpoints: with ``checkpoint_dir`` set, the state (weights, best weights, optimiser, scheduler,
history) is written after every epoch to one file named by the config hash and the code version,
``<model>-<dataset>-<scheme>-N<n>-<hash16>-<code8>.pt`` (``code8``:
:func:`semcom.identity.code_key` of the package version and git commit). The file also records
the code identity and ``data_hash``, the :func:`semcom.identity.data_digest` of the training
split (images and labels) actually read. ``train`` finds it again: a finished run of the same
config, code and data is returned at once (``reused=True``), an unfinished one is resumed, one of
other data is retrained. A finished checkpoint of the same config and data made by *another*
code version (or by one that recorded no version) is *stale*: it is reused only with
``reuse_stale=True`` (``TrainedModel.stale`` then names its code); otherwise the model is
trained again into this version's file and ``TrainedModel.note`` says that a stale one exists.
:func:`config_hash` is the SHA-256 of the canonical JSON (sorted keys, no spaces) of the resolved
config without ``checkpoint_dir`` (where files go does not change the result).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from channels.errors import ConfigError, check_choice, check_flag, check_int, check_real, fail
from semcom import data as data_module
from semcom.adapters import ADAPTER, build_adapter, trainable_parameter_count
from semcom.channel_state import ChannelState
from semcom.identity import code_identity, code_key, data_digest, describe_code, same_code
from semcom.isfr import KINDS, TrainingChannel, derive_seed, training_channel
from semcom.models import SemanticModel, build_model, resolve_model_options
from semcom.routing import ROUTING, RoutingMethod, build_routing, check_architecture
from semcom.training import TRAINING, TrainingHook, build_hook
from semcom.training.base import chain_hooks
from semcom.training.matched_channel import (
    MatchedChannel,
    matched_training_channel,
    resolve_channel_options,
)

CHECKPOINT_FORMAT = 1
EXCLUDED_FROM_HASH = ("checkpoint_dir",)
UNSET_FIELDS: dict[str, Any] = {
    "method": None,
    "method_options": {},
    "channel": {},
    "init_from": None,
    "adapter": None,
    "adapter_options": {},
    "routing": None,
    "routing_options": {},
}
"""Fields added after the first checkpoints: left out of the hash while unset, so a config that
does not use them keeps the hash (and the checkpoint) it had before they existed."""
PARENT_FIELDS = ("model", "n_features", "model_options", "dataset", "dataset_options")
"""Fields an ``init_from`` parent shares with its child (copied when the parent omits them)."""
FINALIZE_IMAGES = 1024
"""Training images a routing method's ``finalize`` sees (the first of the training split)."""


@dataclass
class TrainConfig:
    """Everything that determines a trained model (docs/method.md §2.5 defaults).

    Attributes:
        model: ``"cnn"``, ``"mlp"`` or ``"vit"`` (:func:`semcom.models.build_model`).
        n_features: ``N``.
        model_options: options of the architecture (``input_shape`` defaults to the data's).
        dataset: a name of :func:`semcom.data.load_dataset`.
        dataset_root: local folder of the on-disk data sets.
        dataset_options: loader options (``limit``, ``size``, ...).
        scheme: training channel, ``"isfr"``, ``"conventional"`` or ``"none"``.
        isfr: options of :func:`semcom.isfr.training_channel` (all but ``seed``).
        epochs: maximum number of epochs.
        batch_size: samples per step.
        lr, lr_min: Adam learning rate, cosine-decayed to ``lr_min`` over ``epochs``.
        weight_decay: Adam's L2 weight decay.
        classifier_weight: ``λ_ce`` of the cross-entropy term (models with a classifier head).
        val_fraction: held-out fraction of the training split, in ``[0, 1)`` (0: no validation,
            no early stopping, the last weights are kept).
        patience: epochs without improvement before stopping (``None``: never stop early).
        min_delta: improvement of the validation loss that resets the patience.
        seed: seed of the weights, the split, the batch order and the channel noise.
        device: ``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda"`` or ``"cuda:K"``.
        amp: bfloat16 autocast on CUDA (ignored on CPU; resolved to false there).
        checkpoint_dir: folder for the checkpoint (``None``: no checkpoint, nothing reused).
        method: a training method of the ``training`` family (:mod:`semcom.training`) that
            reweights, resamples, masks or regularises the loop's steps (``None``: plain).
        method_options: options of ``method`` (empty without one); filled with its defaults.
        channel: channel-state training (:mod:`semcom.training.matched_channel`): ``{}`` keeps
            the scheme's fixed ``ε`` profile; else ``{fading: class or [classes], snr_db: number
            or [lo, hi], n_subchannels: N, eta: 0.5, rician_k: 3.0, draws: 64, prior: "isfr"
            (isfr scheme) or "uniform"}``: every sample passes through the bit errors of its
            drawn channel state, from the matched BER banks.
        init_from: the fields of a parent config (same model, N, model options and data; those
            omitted are copied from this one, and ``checkpoint_dir`` is this one's): the parent
            is trained (or reused) first and this run starts from its best weights (fine-tuning,
            adaptation). Its :func:`config_hash` enters this config's hash.
        adapter: an ``adapter`` method (:mod:`semcom.adapters`) attached after the initial
            weights are loaded: only its parameters train (``None``: every parameter).
        adapter_options: options of ``adapter``; filled with its defaults.
        routing: a ``routing`` method (:mod:`semcom.routing`): it builds the model, adds its
            training hook, is finalised on training images after training and gives the
            deployed model (``apply``).
        routing_options: options of ``routing``; filled with its defaults.
    """

    model: str = "cnn"
    n_features: int = 16
    model_options: dict[str, Any] = field(default_factory=dict)
    dataset: str = "patches"
    dataset_root: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    scheme: str = "isfr"
    isfr: dict[str, Any] = field(default_factory=dict)
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    lr_min: float = 1e-5
    weight_decay: float = 0.0
    classifier_weight: float = 0.1
    val_fraction: float = 0.1
    patience: int | None = 10
    min_delta: float = 0.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    checkpoint_dir: str | None = None
    method: str | None = None
    method_options: dict[str, Any] = field(default_factory=dict)
    channel: dict[str, Any] = field(default_factory=dict)
    init_from: dict[str, Any] | None = None
    adapter: str | None = None
    adapter_options: dict[str, Any] = field(default_factory=dict)
    routing: str | None = None
    routing_options: dict[str, Any] = field(default_factory=dict)


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


# ---------------------------------------------------------------------------------------------
# config resolution and hash


def _dict(field_: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise fail(field_, value, "a mapping of option names to values")
    return dict(value)


def _resolve_device(device: Any) -> str:
    allowed = "auto, cpu, cuda or cuda:K"
    if not isinstance(device, str):
        raise fail("device", device, allowed)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device in ("cpu", "cuda"):
        return device
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise fail("device", device, allowed)


def resolve_config(config: TrainConfig) -> TrainConfig:
    """Validate every field and fill in every default; no data is read, nothing is built.

    The result is what the run will do: model, data set and training-channel options with their
    defaults, the model's ``input_shape`` taken from the data set, the device resolved
    (``"auto"`` -> ``"cuda"``/``"cpu"``) and ``amp`` false off CUDA. Resolving twice is a no-op.

    Raises:
        ConfigError: the first invalid field, as a one-line message.
    """
    if not isinstance(config, TrainConfig):
        raise fail("config", type(config).__name__, "a TrainConfig")
    c = copy.deepcopy(config)
    c.n_features = check_int("n_features", c.n_features, 1, 4096)
    if c.dataset_root is not None:
        if not isinstance(c.dataset_root, str | os.PathLike):
            raise fail("dataset_root", c.dataset_root, "None or a folder path")
        c.dataset_root = str(c.dataset_root)
    c.dataset_options = data_module.resolve_options(
        c.dataset, "train", **_dict("dataset_options", c.dataset_options)
    )
    shape = list(data_module.image_shape(c.dataset, c.dataset_options))
    options = _dict("model_options", c.model_options)
    if "input_shape" in options and list(options["input_shape"]) != shape:
        raise fail(
            "model_options.input_shape", options["input_shape"], f"{shape} (the data's shape)"
        )
    options["input_shape"] = shape
    c.model_options = resolve_model_options(c.model, c.n_features, **options)
    check_choice("scheme", c.scheme, KINDS)
    isfr = _dict("isfr", c.isfr)
    if "seed" in isfr:
        raise fail("isfr.seed", isfr["seed"], "no seed here: the channel's streams follow seed")
    c.isfr = training_channel(c.scheme, c.n_features, **isfr).options
    c.epochs = check_int("epochs", c.epochs, 1)
    c.batch_size = check_int("batch_size", c.batch_size, 1)
    c.lr = check_real("lr", c.lr, 0.0, allow_inf=True, allowed="a positive number")
    if c.lr <= 0 or math.isinf(c.lr):
        raise fail("lr", c.lr, "a positive finite number")
    c.lr_min = check_real("lr_min", c.lr_min, 0.0, c.lr, allowed=f"a number in [0, lr={c.lr}]")
    c.weight_decay = check_real("weight_decay", c.weight_decay, 0, 1)
    c.classifier_weight = check_real(
        "classifier_weight", c.classifier_weight, 0.0, 1e6, allowed="a number >= 0"
    )
    c.val_fraction = check_real("val_fraction", c.val_fraction, 0, 1, allowed="a number in [0, 1)")
    if c.val_fraction >= 1.0:
        raise fail("val_fraction", c.val_fraction, "a number in [0, 1)")
    if c.patience is not None:
        c.patience = check_int("patience", c.patience, 1)
    c.min_delta = check_real("min_delta", c.min_delta, 0, allow_inf=True)
    c.seed = check_int("seed", c.seed, 0, 2**63 - 1)
    c.device = _resolve_device(c.device)
    c.amp = check_flag("amp", c.amp) and c.device.startswith("cuda")
    if c.checkpoint_dir is not None:
        if not isinstance(c.checkpoint_dir, str | os.PathLike):
            raise fail("checkpoint_dir", c.checkpoint_dir, "None or a folder path")
        c.checkpoint_dir = str(c.checkpoint_dir)
    method_options = _dict("method_options", c.method_options)
    if c.method is None:
        if method_options:
            raise fail("method_options", method_options, "{} without a method")
    else:
        if not isinstance(c.method, str) or c.method not in TRAINING:
            raise fail("method", c.method, f"None or one of {', '.join(TRAINING.names())}")
        c.method = TRAINING.check(c.method)
        method_options = build_hook(c.method, method_options).get_params()
    c.method_options = method_options
    c.channel = resolve_channel_options(c.channel, c.n_features, c.scheme)
    c.adapter, c.adapter_options = _resolve_family(
        "adapter", c.adapter, c.adapter_options, ADAPTER, build_adapter
    )
    c.routing, c.routing_options = _resolve_family(
        "routing", c.routing, c.routing_options, ROUTING, build_routing
    )
    if c.routing is not None:
        check_architecture(build_routing(c.routing, c.routing_options), c.routing, c.model)
    if c.init_from is not None:
        c.init_from = _resolve_parent(c)
    return c


def _resolve_family(
    name: str, method: Any, options: Any, registry: Any, build: Callable[..., Any]
) -> tuple[str | None, dict[str, Any]]:
    """``(method, options filled with its defaults)`` of an optional method family field."""
    options = _dict(f"{name}_options", options)
    if method is None:
        if options:
            raise fail(f"{name}_options", options, f"{{}} without {name}")
        return None, {}
    if not isinstance(method, str) or method not in registry:
        raise fail(name, method, f"None or one of {', '.join(registry.names())}")
    method = registry.check(method)
    return method, build(method, options).get_params()


def _resolve_parent(c: TrainConfig) -> dict[str, Any]:
    """The resolved fields of ``c.init_from`` (without ``checkpoint_dir``)."""
    parent = _dict("init_from", c.init_from)
    names = [f.name for f in dataclasses.fields(TrainConfig)]
    for key in parent:
        if key not in names:
            raise fail(f"init_from.{key}", parent[key], "fields of a TrainConfig")
    if parent.get("checkpoint_dir") is not None:
        raise fail(
            "init_from.checkpoint_dir",
            parent["checkpoint_dir"],
            "None (the parent's checkpoint goes to this config's checkpoint_dir)",
        )
    parent.pop("checkpoint_dir", None)
    for key in (*PARENT_FIELDS, "device", "dataset_root", "routing", "routing_options"):
        parent.setdefault(key, copy.deepcopy(getattr(c, key)))
    try:
        p = resolve_config(TrainConfig(**parent))
    except ConfigError as exc:
        raise ConfigError(f"init_from.{exc}") from None
    for key in (*PARENT_FIELDS, "routing", "routing_options"):
        if getattr(p, key) != getattr(c, key):
            raise fail(
                f"init_from.{key}",
                getattr(p, key),
                f"{getattr(c, key)!r}, this config's (the weights must fit its model)",
            )
    if p.adapter is not None:
        raise fail(
            "init_from.adapter",
            p.adapter,
            "None (the parent's weights initialise the model the adapter attaches to)",
        )
    out = dataclasses.asdict(p)
    del out["checkpoint_dir"]
    return out


def _canonical_json(config_dict: dict[str, Any]) -> str:
    hashed = {k: v for k, v in config_dict.items() if k not in EXCLUDED_FROM_HASH}
    if hashed.get("method") is None:  # plain runs keep the hash they had before methods existed
        hashed.pop("method", None)
        hashed.pop("method_options", None)
    for key, unset in UNSET_FIELDS.items():
        if key in hashed and hashed[key] == unset:
            del hashed[key]
    if hashed.get("init_from") is not None:  # the parent enters by its own hash
        hashed["init_from"] = config_hash(TrainConfig(**hashed["init_from"]))
    return json.dumps(hashed, sort_keys=True, separators=(",", ":"), allow_nan=False)


def config_hash(config: TrainConfig) -> str:
    """SHA-256 (hex) of the canonical JSON of the resolved config, without ``checkpoint_dir``."""
    resolved = resolve_config(config)
    return hashlib.sha256(_canonical_json(dataclasses.asdict(resolved)).encode()).hexdigest()


def _name_prefix(c: TrainConfig) -> str:
    return f"{c.model}-{c.dataset}-{c.scheme}-N{c.n_features}-{config_hash(c)[:16]}"


def checkpoint_path(config: TrainConfig) -> Path | None:
    """Where :func:`train` keeps the checkpoint of ``config`` made by this code version
    (``None`` without checkpoint_dir)."""
    c = resolve_config(config)
    if c.checkpoint_dir is None:
        return None
    return Path(c.checkpoint_dir) / f"{_name_prefix(c)}-{code_key(code_identity())}.pt"


def _stale_checkpoints(c: TrainConfig, digest: str, data: str, own: Path) -> list[Path]:
    """Finished checkpoints of config ``c`` from the training data ``data`` (or with no data
    recorded) made by another code version, newest first."""
    assert c.checkpoint_dir is not None
    found = []
    for path in Path(c.checkpoint_dir).glob(f"{_name_prefix(c)}*.pt"):
        if path == own or not path.is_file():
            continue
        try:
            state = _read(path)
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


def _save(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a temporary file in the same folder, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _read(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
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
    digest = hashlib.sha256(_canonical_json(state["config"]).encode()).hexdigest()
    if digest != state["config_hash"]:
        raise ConfigError(
            f"checkpoint: {str(path)!r} has a config that does not match its hash; "
            f"expected {expected}"
        )
    return state


def _routing_of(cfg: dict[str, Any]) -> RoutingMethod | None:
    name = cfg.get("routing")
    return None if name is None else build_routing(name, cfg.get("routing_options") or {})


def _build(cfg: dict[str, Any], routing: RoutingMethod | None) -> SemanticModel:
    """The model of a (resolved) config: the routing method's architecture or the plain one."""
    if routing is None:
        return build_model(cfg["model"], cfg["n_features"], **cfg["model_options"])
    return routing.build(cfg["model"], cfg["n_features"], cfg["model_options"], seed=cfg["seed"])


def _attach(cfg: dict[str, Any], model: SemanticModel) -> SemanticModel:
    """Attach the config's adapter (if any), seeded from the config's seed."""
    if cfg.get("adapter") is None:
        return model
    adapter = build_adapter(cfg["adapter"], cfg.get("adapter_options") or {})
    return adapter.attach(model, seed=derive_seed(cfg["seed"], 4))


def _model_from_state(
    state: dict[str, Any], device: str | torch.device
) -> tuple[SemanticModel, int, dict[str, torch.Tensor]]:
    """``(deployed model in eval mode, trainable parameters, trained weights)`` of a checkpoint:
    build -> attach the adapter -> load the weights -> load the routing state -> ``apply``."""
    cfg = state["config"]
    routing = _routing_of(cfg)
    model = _attach(cfg, _build(cfg, routing))
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
    state = _read(path, map_location=device)
    model, trainable, weights = _model_from_state(state, device)
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


# ---------------------------------------------------------------------------------------------
# training


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seed legacy global users too
    torch.manual_seed(seed)


def _objective(
    model: SemanticModel,
    x: torch.Tensor,
    y: torch.Tensor,
    channel: torch.nn.Module | None,
    classifier_weight: float,
    state: ChannelState | None = None,
) -> torch.Tensor:
    """Per-sample loss ``[B]``: pixel MSE (+ weighted cross-entropy of labelled samples)."""
    return _objective_parts(model, x, y, channel, classifier_weight, state)[0]


def _objective_parts(
    model: SemanticModel,
    x: torch.Tensor,
    y: torch.Tensor,
    channel: torch.nn.Module | None,
    classifier_weight: float,
    state: ChannelState | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(per-sample loss [B], x_hat, z)``, with ``x_hat = decode(channel(encode(x, s), s), s)``
    (``s`` the batch's channel state; without one, ``decode(channel(encode(x)))``), the same
    computation as ``model(x, channel, s)``."""
    if state is None:
        z = model.encode(x)
        x_hat = model.decode(z if channel is None else channel(z))
    else:
        z = model.encode(x, state)
        x_hat = model.decode(z if channel is None else channel(z, state), state)
    loss = ((x_hat.float() - x) ** 2).flatten(1).mean(1)
    if model.head is not None and classifier_weight > 0:
        logits = model.classify(x_hat).float()
        labelled = y >= 0
        ce = F.cross_entropy(logits, y.clamp(min=0), reduction="none")
        loss = loss + classifier_weight * torch.where(labelled, ce, torch.zeros_like(ce))
    return loss, x_hat, z


def _hooked_loss(
    hook: TrainingHook,
    step: int,
    model: SemanticModel,
    x: torch.Tensor,
    x_hat: torch.Tensor,
    z: torch.Tensor,
    loss: torch.Tensor,
    state: ChannelState | None = None,
) -> torch.Tensor:
    """The step's scalar loss with the hook's sample weights and extra term."""
    weights = hook.sample_weights(step, x, loss.detach())
    if weights is None:
        total = loss.mean()
    else:
        w = torch.as_tensor(weights).detach().to(device=loss.device, dtype=torch.float32)
        if w.shape != loss.shape or not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise RuntimeError(
                f"training method {type(hook).__name__}: sample_weights gave {tuple(w.shape)} "
                f"weights; expected {tuple(loss.shape)} finite non-negative ones"
            )
        if float(w.sum()) <= 0.0:
            raise RuntimeError(
                f"training method {type(hook).__name__}: sample weights sum to 0 at step {step}"
            )
        total = (w * loss.float()).sum() / w.sum()
    # without a channel state the hook is called as before states existed (4 arguments)
    extra = (
        hook.extra_loss(model, x, x_hat, z)
        if state is None
        else (hook.extra_loss(model, x, x_hat, z, state))
    )
    return total if extra is None else total + extra


def _apply_layer_mask(hook: TrainingHook, step: int, model: SemanticModel) -> None:
    """Drop the gradient of every parameter outside the hook's mask: the optimiser then skips
    it entirely (a zero gradient would still move it through Adam's momentum and weight decay)."""
    mask = hook.layer_mask(step, model)
    if mask is None:
        return
    names = dict(model.named_parameters())
    unknown = set(mask) - set(names)
    if unknown:
        raise RuntimeError(
            f"training method {type(hook).__name__}: layer_mask names unknown parameters "
            f"{sorted(unknown)[:3]}"
        )
    for name, p in names.items():
        if name not in mask:
            p.grad = None


def _epoch_order(
    hook: TrainingHook | None, epoch: int, n: int, generator: torch.Generator
) -> torch.Tensor:
    if hook is None:
        return torch.randperm(n, generator=generator)
    order = torch.as_tensor(hook.sampler(epoch, n, generator))
    if (
        order.ndim != 1
        or len(order) == 0
        or order.dtype != torch.int64
        or bool((order < 0).any() or (order >= n).any())
    ):
        raise RuntimeError(
            f"training method {type(hook).__name__}: sampler gave an invalid index tensor; "
            f"expected a non-empty int64 vector with values in [0, {n})"
        )
    return order


def _evaluate(
    model: SemanticModel,
    x: torch.Tensor,
    y: torch.Tensor,
    c: TrainConfig,
    matched: MatchedChannel | None = None,
) -> float | None:
    """Clean validation loss; with channel-state training every sample gets the state of the
    channel's middle SNR and first class (no fading gain), so a conditioned model has one."""
    if len(x) == 0:
        return None
    model.eval()
    total = 0.0
    with torch.no_grad(), _autocast(c):
        for start in range(0, len(x), 4 * c.batch_size):
            sl = slice(start, start + 4 * c.batch_size)
            state = None
            if matched is not None:
                n = len(x[sl])
                state = ChannelState.constant(matched.mid_snr_db, matched.fading[0], n, x.device)
            total += float(_objective(model, x[sl], y[sl], None, c.classifier_weight, state).sum())
    return total / len(x)


def _rng_snapshot(channel: TrainingChannel) -> tuple[Any, ...]:
    """The channel's and torch's generator states: restoring them replays the step's noise."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return channel.get_rng_state(), torch.get_rng_state(), cuda


def _rng_restore(channel: TrainingChannel, snapshot: tuple[Any, ...]) -> None:
    channel.set_rng_state(snapshot[0])
    torch.set_rng_state(snapshot[1])
    if snapshot[2] is not None:
        torch.cuda.set_rng_state_all(snapshot[2])


def _autocast(c: TrainConfig) -> torch.autocast:
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=c.amp)


def _reused(
    state: dict[str, Any], c: TrainConfig, path: Path, digest: str, stale: bool, note: str = ""
) -> TrainedModel:
    model, trainable, weights = _model_from_state(state, c.device)
    return TrainedModel(
        model=model,
        config=c,
        history=list(state["history"]),
        checkpoint=path,
        config_hash=digest,
        reused=True,
        finished=True,
        best_epoch=int(state["best_epoch"]),
        code=state.get("code"),
        data_hash=state.get("data_hash"),
        stale=stale,
        note=note,
        trainable_parameters=trainable,
        trained_state=weights,
    )


def train(
    config: TrainConfig,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, Any]], None] | None = None,
    reuse_stale: bool = False,
) -> TrainedModel:
    """Train (or reuse, or resume) the model described by ``config``.

    Args:
        config: a :class:`TrainConfig`; resolved and validated before any work.
        progress: show a tqdm progress bar over epochs.
        on_epoch_end: called with each epoch's history entry after its checkpoint is written
            (an exception raised there interrupts training; the checkpoint stays resumable).
        reuse_stale: reuse a finished checkpoint of the same config and data made by another
            code version when this version has none (module docstring).

    Returns:
        A :class:`TrainedModel` with the best-validation weights in eval mode. With
        ``checkpoint_dir`` set and a finished checkpoint of the same config, code and data
        present, that checkpoint is returned without training (``reused=True``).

    Raises:
        ConfigError: invalid config, CUDA asked for but absent, unreadable data.
    """
    c = resolve_config(config)
    digest = config_hash(c)
    path = checkpoint_path(c)
    if c.device.startswith("cuda") and not torch.cuda.is_available():
        raise fail("device", c.device, "cpu or auto (CUDA is not available here)")
    dataset = data_module.load_dataset(c.dataset, "train", root=c.dataset_root, **c.dataset_options)
    data = data_digest(dataset.images, dataset.labels)
    resume, note = None, ""
    if path is not None and path.is_file():
        state = _read(path, map_location=c.device)
        same = (
            state["config_hash"] == digest
            and state.get("data_hash") == data
            and same_code(state.get("code"), code_identity())
        )
        if same and state["finished"]:
            return _reused(state, c, path, digest, stale=False)
        if same:
            resume = state
        elif state.get("data_hash") != data:
            note = f"{path.name} was made from other training data; trained again"
    if path is not None and resume is None:
        stale = _stale_checkpoints(c, digest, data, path)
        if stale and reuse_stale:
            state = _read(stale[0], map_location=c.device)
            return _reused(state, c, stale[0], digest, stale=True)
        if stale:
            made_by = describe_code(_read(stale[0]).get("code"))
            note = f"{stale[0].name} of {made_by} is stale; trained again (--reuse-stale reuses it)"
    init_state = None
    if resume is None and c.init_from is not None:  # train or reuse the parent first
        parent = train(
            TrainConfig(**c.init_from, checkpoint_dir=c.checkpoint_dir),
            progress=progress,
            reuse_stale=reuse_stale,
        )
        init_state = parent.trained_state
    trained = _run(c, digest, path, resume, progress, on_epoch_end, dataset, data, init_state)
    trained.note = note
    return trained


def _run(
    c: TrainConfig,
    digest: str,
    path: Path | None,
    resume: dict[str, Any] | None,
    progress: bool,
    on_epoch_end: Callable[[dict[str, Any]], None] | None,
    dataset: data_module.ImageDataset,
    data: str,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainedModel:
    from tqdm.auto import tqdm

    device = torch.device(c.device)
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    # split train / validation with a seeded permutation
    n_val = int(round(c.val_fraction * len(dataset)))
    if len(dataset) - n_val < 1:
        raise fail(
            "val_fraction", c.val_fraction, f"a fraction leaving training samples of {len(dataset)}"
        )
    order = torch.from_numpy(
        np.random.default_rng(derive_seed(c.seed, 1)).permutation(len(dataset))
    )
    images, labels = dataset.images.to(device), dataset.labels.to(device)
    val_idx, train_idx = order[:n_val].to(device), order[n_val:].to(device)
    x_val, y_val = images[val_idx], labels[val_idx]
    x_train, y_train = images[train_idx], labels[train_idx]

    _seed_everything(c.seed)
    cfg = dataclasses.asdict(c)
    routing = _routing_of(cfg)
    model = _build(cfg, routing)
    if init_state is not None:  # init_from: the parent's trained weights
        model.load_state_dict(init_state)
    model = _attach(cfg, model).to(device)
    matched = None
    if c.channel:
        channel = matched_training_channel(
            c.scheme, c.n_features, model.scalars_per_feature, c.isfr, c.channel,
            bank_seed=derive_seed(c.seed, 6),
        ).to(device)  # fmt: skip
        matched = channel.distortion
    else:
        channel = training_channel(c.scheme, c.n_features, **c.isfr).to(device)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=c.lr, weight_decay=c.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=c.epochs, eta_min=c.lr_min
    )
    history: list[dict[str, Any]] = []
    best_val, best_state, best_epoch, bad_epochs, start = math.inf, None, 0, 0, 0
    stopped = False
    hook = chain_hooks([
        None if c.method is None else build_hook(c.method, c.method_options),
        None if routing is None else routing.hook(),
    ])  # fmt: skip
    step = 0
    if hook is not None:
        hook.setup(len(x_train), c.epochs)
    if resume is not None:
        model.load_state_dict(resume["model_state"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        history = list(resume["history"])
        best_val = resume["best_val"]
        best_state = resume["best_state"]
        best_epoch, bad_epochs, start = resume["best_epoch"], resume["bad_epochs"], resume["epoch"]
        last = history[-1].get("step", 0) if history else 0
        step = int(resume.get("step", last))
        if hook is not None:
            hook.load_state_dict(resume.get("hook_state", {}))

    def state(epoch: int, finished: bool) -> dict[str, Any]:
        extra = {"step": step} if hook is None else {"hook_state": hook.state_dict(), "step": step}
        if routing is not None and finished:
            extra["routing_state"] = routing.state_dict()
        return extra | {
            "format": CHECKPOINT_FORMAT,
            "config": dataclasses.asdict(c),
            "config_hash": digest,
            "code": code_identity(),
            "data_hash": data,
            "epoch": epoch,
            "finished": finished,
            "model_state": model.state_dict(),
            "best_state": best_state,
            "best_val": best_val,
            "best_epoch": best_epoch,
            "bad_epochs": bad_epochs,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "history": history,
        }

    if c.patience is not None and bad_epochs >= c.patience:
        start_epochs = range(0)  # resumed after early stopping was decided: only finish
    else:
        start_epochs = range(start + 1, c.epochs + 1)
    bar = tqdm(total=c.epochs, initial=start, disable=not progress, desc=f"train {c.model}")
    epoch = start
    try:
        for epoch in start_epochs:
            t0 = time.perf_counter()
            torch.manual_seed(derive_seed(c.seed, epoch, 2))
            channel.reseed(derive_seed(c.seed, epoch, 1))
            shuffle = torch.Generator().manual_seed(derive_seed(c.seed, epoch, 0))
            perm = _epoch_order(hook, epoch, len(x_train), shuffle).to(device)
            states = None
            if matched is not None:
                states = torch.Generator().manual_seed(derive_seed(c.seed, epoch, 3))
            lr = optimizer.param_groups[0]["lr"]
            model.train()
            channel.train()
            total = 0.0
            for start_b in range(0, len(perm), c.batch_size):
                idx = perm[start_b : start_b + c.batch_size]
                x_b, y_b = x_train[idx], y_train[idx]
                s_b = None if states is None else matched.draw_states(len(idx), states, device)
                if hook is not None:
                    _probe(hook, step, model, channel, x_b, y_b, s_b, c)
                with _autocast(c):
                    loss, x_hat, z = _objective_parts(
                        model, x_b, y_b, channel, c.classifier_weight, s_b
                    )
                    if hook is None:
                        mean = loss.mean()
                    else:
                        mean = _hooked_loss(hook, step, model, x_b, x_hat, z, loss, s_b)
                optimizer.zero_grad(set_to_none=True)
                mean.backward()
                if hook is not None:
                    _apply_layer_mask(hook, step, model)
                optimizer.step()
                if hook is not None:
                    hook.observe(epoch, idx, x_b, x_hat.detach(), loss.detach())
                step += 1
                total += float(loss.detach().sum())
            scheduler.step()
            val = _evaluate(model, x_val, y_val, c, matched)
            entry = {
                "epoch": epoch,
                "train_loss": total / len(perm),
                "val_loss": val,
                "lr": lr,
                "seconds": time.perf_counter() - t0,
                "step": step,
            }
            history.append(entry)
            if val is None:
                best_epoch = epoch
            elif val < best_val - c.min_delta:
                best_val, best_epoch, bad_epochs = val, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad_epochs += 1
            stopped = val is not None and c.patience is not None and bad_epochs >= c.patience
            if path is not None:
                _save(path, state(epoch, finished=False))
            bar.update(1)
            bar.set_postfix(
                train=f"{entry['train_loss']:.4g}", val="-" if val is None else f"{val:.4g}"
            )
            if on_epoch_end is not None:
                on_epoch_end(dict(entry))
            if stopped:
                break
    finally:
        bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    if routing is not None:
        images = x_train[:FINALIZE_IMAGES]
        image_states = None
        if matched is not None:
            gen = torch.Generator().manual_seed(derive_seed(c.seed, 5))
            image_states = matched.draw_states(len(images), gen, device)
        routing.finalize(model, images, image_states)
    if path is not None:
        _save(path, state(epoch, finished=True))
    trained_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    n_trainable = trainable_parameter_count(model)
    if routing is not None:
        model = routing.apply(model)
    return TrainedModel(
        model=model.eval(),
        config=c,
        history=history,
        checkpoint=path,
        config_hash=digest,
        reused=False,
        finished=True,
        best_epoch=best_epoch,
        code=code_identity(),
        data_hash=data,
        trainable_parameters=n_trainable,
        trained_state=trained_state,
    )


def _probe(
    hook: TrainingHook,
    step: int,
    model: SemanticModel,
    channel: TrainingChannel,
    x: torch.Tensor,
    y: torch.Tensor,
    state: ChannelState | None,
    c: TrainConfig,
) -> None:
    """``hook.probe(step, model, evaluate)``; ``evaluate()`` is the batch's mean loss without
    gradient, every call with the channel noise (and torch's global stream) the step's real
    forward then uses: the generators are restored before each evaluation and after the probe,
    so probing changes nothing else."""
    snapshot = _rng_snapshot(channel)

    def evaluate() -> float:
        _rng_restore(channel, snapshot)
        with torch.no_grad(), _autocast(c):
            return float(_objective(model, x, y, channel, c.classifier_weight, state).mean())

    hook.probe(step, model, evaluate)
    _rng_restore(channel, snapshot)


train_model = train
"""The package-level name of :func:`train` (``semcom.train_model``): ``semcom.train`` is this
module, so the function cannot be exported under its own name."""
