"""The trainer's configuration: :class:`TrainConfig`, its validation and its hash.

:func:`resolve_config` validates every field and fills every default before any work (one-line
:class:`~channels.errors.ConfigError` naming the field); :func:`config_hash` is the SHA-256 of
the canonical JSON (sorted keys, no spaces) of the resolved config without ``checkpoint_dir``
(where files go does not change the result), the key of a checkpoint (:mod:`semcom.checkpoints`).
Fields added after the first checkpoints stay out of the hash while unset, so older configs keep
their hashes. ``init_from`` (a parent config to start from) enters by the parent's own hash.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from channels.errors import ConfigError, check_choice, check_flag, check_int, check_real, fail
from semcom import data as data_module
from semcom.adapters import ADAPTER, build_adapter
from semcom.isfr import KINDS, training_channel
from semcom.models import resolve_model_options
from semcom.routing import ROUTING, build_routing, check_architecture
from semcom.training import TRAINING, build_hook
from semcom.training.matched_channel import (
    resolve_channel_options,
)

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


def canonical_json(config_dict: dict[str, Any]) -> str:
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
    return hashlib.sha256(canonical_json(dataclasses.asdict(resolved)).encode()).hexdigest()
