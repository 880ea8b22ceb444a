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

The config and its hash live in :mod:`semcom.train_config`, the checkpoint files in
:mod:`semcom.checkpoints`; this module re-exports their public names (``TrainConfig``,
``resolve_config``, ``config_hash``, ``TrainedModel``, ``checkpoint_path``,
``load_checkpoint``), the names the rest of semcom imports from here.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from channels.errors import fail
from semcom import data as data_module
from semcom.adapters import trainable_parameter_count
from semcom.channel_state import ChannelState
from semcom.checkpoints import (
    CHECKPOINT_FORMAT,
    TrainedModel,
    attach_adapter,
    build_architecture,
    checkpoint_path,
    load_checkpoint,
    model_from_state,
    read_state,
    routing_of,
    save_state,
    stale_checkpoints,
)
from semcom.identity import code_identity, data_digest, describe_code, same_code
from semcom.isfr import TrainingChannel, derive_seed, training_channel
from semcom.models import SemanticModel
from semcom.train_config import TrainConfig, config_hash, resolve_config
from semcom.training import TrainingHook, build_hook
from semcom.training.base import chain_hooks
from semcom.training.matched_channel import (
    MatchedChannel,
    matched_training_channel,
)

FINALIZE_IMAGES = 1024
"""Training images a routing method's ``finalize`` sees (the first of the training split)."""


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
    model, trainable, weights = model_from_state(state, c.device)
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
        state = read_state(path, map_location=c.device)
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
        stale = stale_checkpoints(c, digest, data, path)
        if stale and reuse_stale:
            state = read_state(stale[0], map_location=c.device)
            return _reused(state, c, stale[0], digest, stale=True)
        if stale:
            made_by = describe_code(read_state(stale[0]).get("code"))
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
    routing = routing_of(cfg)
    model = build_architecture(cfg, routing)
    if init_state is not None:  # init_from: the parent's trained weights
        model.load_state_dict(init_state)
    model = attach_adapter(cfg, model).to(device)
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
                save_state(path, state(epoch, finished=False))
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
        save_state(path, state(epoch, finished=True))
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

__all__ = [
    "CHECKPOINT_FORMAT",
    "FINALIZE_IMAGES",
    "TrainConfig",
    "TrainedModel",
    "checkpoint_path",
    "config_hash",
    "load_checkpoint",
    "resolve_config",
    "train",
    "train_model",
]
