"""Before a sweep: train or reuse the models, split the test images, measure the importance.

A scenario's schemes use a few *model variants* (:data:`semcom.schemes.MODEL_VARIANTS`). For
each, :func:`train_models` trains the auto-encoder or reuses its checkpoint (keyed by the
training config's hash, the code version and the training data, :mod:`semcom.train`), several
variants in parallel processes on the CPU, and logs which checkpoints it reused.
:func:`calibrate` then measures on held-out *calibration* images what the allocation needs
(docs/method.md §3.3, §4.5):

- the importance weights ``w[N]`` of the scenario's estimator (e.g. masking), normalised to sum
  to 1, with the raw scores; and of every other estimator a scheme names (its own
  ``importance`` or ``selection``), each fitted once per variant on the same calibration images
  (:mod:`semcom.scheme_estimators`), with its wall time and ordering quality;
- the per-scalar distortion of dropping a feature, ``d_drop,i = E[z_il²]``;
- the model's clean PSNR on the evaluation images (quantisation and channel excluded);
- the measured size of its encoder; and, for every compression step a scheme names, the
  compressed codec (compressed once per ``(variant, method, options)`` on the calibration
  images, :mod:`semcom.scheme_compression`) with all of the above measured on it.

**Test split.** A seeded permutation of the test split (seed ``execution.seed``): its first
``eval_images`` images are the evaluation images of every sweep point, the next
``calibration_images`` (default: all the rest) the calibration images. Both are held out from
training; every scheme and point sees the same evaluation images, so schemes can be compared
image by image (paired differences, :mod:`semcom.report`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from channels.errors import fail
from semcom import metrics
from semcom.compile_notice import with_compile_notice
from semcom.compression import EncoderSize
from semcom.data import ImageDataset, load_dataset
from semcom.identity import data_digest, describe_code
from semcom.importance import make_estimator
from semcom.link import drop_distortion
from semcom.models.build import at_input_shape
from semcom.scheme_compression import CompressedCodec, CompressionSpec, compress_codec, dense_size
from semcom.scheme_estimators import (
    EstimatorSpec,
    Profile,
    fit_profile,
    ordering_rows,
    resolve_estimator,
)
from semcom.sweep.pool import spawn_pool, stop_pool
from semcom.train import TrainConfig, TrainedModel, config_hash, load_checkpoint, train
from semcom.training.channel_bank import compile_solver


@dataclass(frozen=True)
class Calibration:
    """What the sweep needs from the trained models (all arrays float64 ``[N]``).

    Attributes:
        checkpoints: model variant -> checkpoint file (workers load the models from it).
        weights: variant -> importance ``w`` (>= 0, sums to 1).
        raw: variant -> raw importance scores.
        drop: variant -> ``d_drop``.
        clean_psnr_db: variant -> mean PSNR of ``decode(encode(x))`` on the evaluation images.
        eval_indices: indices of the evaluation images in the test split ``[B]``.
        calibration_indices: indices of the calibration images in the test split.
        profiles: ``(variant, EstimatorSpec.key)`` -> the fitted
            :class:`~semcom.scheme_estimators.Profile` of every estimator of the plan (the
            scenario's, whose weights are ``weights[variant]``, included).
        ordering: rows of ``ordering.csv`` (:func:`semcom.scheme_estimators.ordering_rows`).
        codecs: compressed codec name -> its
            :class:`~semcom.scheme_compression.CompressedCodec` (the weights, drop distortions,
            clean PSNRs and profiles above are keyed by codec: a model variant or one of these).
        sizes: codec -> its measured :class:`~semcom.compression.EncoderSize`.
        models: rows of ``models.csv``, one per model variant (:func:`model_row`).
    """

    checkpoints: dict[str, str]
    weights: dict[str, np.ndarray]
    raw: dict[str, np.ndarray]
    drop: dict[str, np.ndarray]
    clean_psnr_db: dict[str, float]
    eval_indices: np.ndarray
    calibration_indices: np.ndarray
    profiles: dict[tuple[str, str], Profile] = field(default_factory=dict)
    ordering: list[dict[str, Any]] = field(default_factory=list)
    codecs: dict[str, CompressedCodec] = field(default_factory=dict)
    sizes: dict[str, EncoderSize] = field(default_factory=dict)
    models: list[dict[str, Any]] = field(default_factory=list)

    def compression_rows(self) -> list[dict[str, Any]]:
        """Rows of ``compression.csv``: one per compressed codec
        (:meth:`~semcom.scheme_compression.CompressedCodec.row`) with its clean PSNR."""
        return [{**c.row(), "clean_psnr_db": self.clean_psnr_db.get(name, float("nan"))}
                for name, c in self.codecs.items()]  # fmt: skip

    def profile(self, variant: str, spec: EstimatorSpec) -> Profile:
        """The fitted profile of ``spec`` on ``variant`` (ConfigError if it was not fitted)."""
        found = self.profiles.get((variant, spec.key))
        if found is None:
            raise fail("estimator", f"{spec.key} on model {variant}",
                       "an estimator of the calibration plan")  # fmt: skip
        return found

    def importance_rows(self) -> list[dict[str, Any]]:
        """Rows of ``importance.csv``: ``model, feature (1-based), weight, raw, clean_psnr_db``,
        and where the profiles are known ``estimator, options, seconds, cpu_seconds`` (one
        block per estimator of each variant)."""
        if not self.profiles:
            return [
                {
                    "model": variant,
                    "feature": i + 1,
                    "weight": float(w),
                    "raw": float(self.raw[variant][i]),
                    "clean_psnr_db": self.clean_psnr_db[variant],
                }
                for variant, weights in self.weights.items()
                for i, w in enumerate(weights)
            ]
        return [
            {
                "model": p.variant, "estimator": p.spec.method, "options": p.spec.options_json,
                "feature": i + 1, "weight": float(w), "raw": float(p.raw[i]),
                "seconds": p.seconds, "cpu_seconds": p.cpu_seconds,
                "clean_psnr_db": self.clean_psnr_db[p.variant],
            }
            for p in self.profiles.values()
            for i, w in enumerate(p.weights)
        ]  # fmt: skip


def split_test_set(
    n_test: int, eval_images: int, calibration_images: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(eval_indices, calibration_indices)`` of a test split of ``n_test`` images.

    A permutation from ``numpy.random.default_rng(seed)``; the first ``eval_images`` are the
    evaluation images, the next ``calibration_images`` (None: all the rest) the calibration
    images. The caller has checked that they fit (the scenario schema does).
    """
    order = np.random.default_rng(seed).permutation(n_test)
    stop = n_test if calibration_images is None else eval_images + calibration_images
    return order[:eval_images], order[eval_images:stop]


def test_split(config: TrainConfig) -> ImageDataset:
    """The test split of the data set a model was trained on."""
    return load_dataset(config.dataset, "test", root=config.dataset_root, **config.dataset_options)


@dataclass(frozen=True)
class _EpochReport:
    """Prints one line every ``every`` epochs of a model's training (picklable for workers)."""

    variant: str
    epochs: int
    every: int

    def __call__(self, entry: dict[str, Any]) -> None:
        epoch = entry["epoch"]
        if epoch % self.every and epoch != self.epochs:
            return
        val = entry.get("val_loss")
        print(
            f"model {self.variant}: epoch {epoch}/{self.epochs}, train loss "
            f"{entry['train_loss']:.4g}" + ("" if val is None else f", validation {val:.4g}"),
            flush=True,
        )


@dataclass(frozen=True)
class _Trained:
    """What a training process reports back (picklable)."""

    path: str
    reused: bool
    seconds: float
    best_epoch: int
    stale_code: str = ""  # describe_code of a stale checkpoint that was reused
    note: str = ""


def _train_one(
    config: TrainConfig,
    threads: int,
    report: _EpochReport | None = None,
    reuse_stale: bool = False,
) -> _Trained:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    result = train(config, progress=False, on_epoch_end=report, reuse_stale=reuse_stale)
    return _Trained(
        str(result.checkpoint), result.reused, time.perf_counter() - start, result.best_epoch,
        describe_code(result.code) if result.stale else "", result.note,
    )  # fmt: skip


def train_models(
    configs: dict[str, TrainConfig],
    workers: int,
    threads: int,
    log: Callable[[str], None] = print,
    progress: bool = True,
    reuse_stale: bool = False,
) -> dict[str, str]:
    """Train (or reuse) one model per variant; returns variant -> checkpoint path.

    Every config must have a ``checkpoint_dir``. On the CPU, up to ``workers`` variants train
    at once in spawned processes (each with ``threads`` torch threads and its own RNG state;
    :func:`semcom.sweep.pool.spawn_pool`: they end with this process, even a killed one);
    on CUDA they train one after the other in this process. An exception here (Ctrl-C,
    ``SIGTERM`` as :class:`~semcom.sweep.signals.Interrupted`) ends the running trainings.
    With ``progress``, each model prints its loss five times during training. ``reuse_stale``
    lets a checkpoint made by another code version be reused (:func:`semcom.train.train`). One
    line per model says whether it was trained or reused, and from which file. When a model
    trains with a matched channel (``channel`` options), the batched allocation solver its
    banks are built with is compiled (or loaded from Numba's cache) here first, with a notice
    when that takes long (:func:`semcom.training.channel_bank.compile_solver`), so that the
    training processes load it instead of each compiling it in silence.
    """
    for variant, c in configs.items():
        if c.checkpoint_dir is None:
            raise ValueError(f"train_models: the {variant} config has no checkpoint_dir")
    on_cpu = all(c.device == "cpu" for c in configs.values())
    processes = min(workers, len(configs)) if on_cpu else 1
    for variant, c in configs.items():
        log(
            f"model {variant}: {c.model}, N = {c.n_features}, {c.epochs} epochs on {c.device}, "
            f"checkpoints in {Path(c.checkpoint_dir).resolve()}"
        )
    if any(c.channel for c in configs.values()):  # banks solve allocations: compile it once here
        with_compile_notice(compile_solver, "the matched training channel's allocation solver", log)
    done: dict[str, _Trained] = {}
    reports = {
        v: _EpochReport(v, c.epochs, max(1, c.epochs // 5)) if progress else None
        for v, c in configs.items()
    }
    if processes <= 1:
        for variant, c in configs.items():
            done[variant] = _train_one(c, threads, reports[variant], reuse_stale)
            _report(variant, done[variant], log)
    else:
        pool = spawn_pool(processes)
        try:
            futures = {
                v: pool.submit(_train_one, c, threads, reports[v], reuse_stale)
                for v, c in configs.items()
            }
            for variant, future in futures.items():
                done[variant] = future.result()
                _report(variant, done[variant], log)
        except BaseException:  # Ctrl-C, SIGTERM, a failed model: end the other trainings now
            stop_pool(pool)
            raise
        pool.shutdown(wait=True)
    return {variant: done[variant].path for variant in configs}


def _report(variant: str, outcome: _Trained, log: Callable) -> None:
    if outcome.stale_code:
        how = f"reused the stale checkpoint of {outcome.stale_code} (--reuse-stale)"
    elif outcome.reused:
        how = "reused checkpoint"
    else:
        how = f"trained in {outcome.seconds:.1f} s"
    log(f"model {variant}: {how}, best epoch {outcome.best_epoch} ({outcome.path})")
    if outcome.note:
        log(f"model {variant}: {outcome.note}")


def clean_psnr(model: Any, images: torch.Tensor) -> float:
    """Mean over images of ``10 log10(1 / MSE)`` of ``model(x)`` (no quantiser, no channel)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        x_hat = model(images.to(device)).detach().to(torch.float64).cpu().numpy()
    return float(np.mean(metrics.psnr(images.to(torch.float64).cpu().numpy(), x_hat)))


def _warm_up(model: Any, images: torch.Tensor) -> None:
    """One forward and backward pass, untimed, before the estimators' timed fits."""
    device = next(model.parameters()).device
    model(images.to(device)).sum().backward()
    model.zero_grad(set_to_none=True)


def allocation_inputs(
    model: Any, calibration: torch.Tensor, importance: str, importance_options: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(w, raw, d_drop)`` of ``model`` on the calibration images, float64 ``[N]`` each."""
    estimator = make_estimator(importance, **importance_options).fit(model, calibration)
    return (
        np.asarray(estimator.importances_, dtype=np.float64),
        np.asarray(estimator.raw_importances_, dtype=np.float64),
        drop_distortion(model, calibration),
    )


def calibrate(
    checkpoints: dict[str, str],
    configs: dict[str, TrainConfig],
    eval_images: int,
    calibration_images: int | None,
    importance: str,
    importance_options: dict[str, Any],
    seed: int,
    device: str = "cpu",
    estimators: dict[str, list[EstimatorSpec]] | None = None,
    ordering: bool = True,
    log: Callable[[str], None] | None = None,
    compressions: dict[str, tuple[str, CompressionSpec]] | None = None,
    reference: TrainConfig | None = None,
) -> Calibration:
    """Importance weights, drop distortions and clean PSNRs of every codec (module docstring).

    ``estimators`` (``Scenario.estimator_plan()``) lists per codec the estimators its schemes
    use besides ``importance``; each is fitted once. ``compressions``
    (``Scenario.compression_plan()``) maps each compressed codec to its model variant and
    compression: after every variant is measured, each is compressed once on the calibration
    images (:func:`semcom.scheme_compression.compress_codec`) and measured the same way. With
    ``ordering``, the ordering quality of every profile of the model variants is measured
    (:func:`semcom.scheme_estimators.ordering_rows`; not of the compressed codecs). ``log``
    gets one line per fitted estimator and per compression.
    ``reference``: the config whose data set gives the test split when ``configs`` is empty
    (a scenario of separate schemes only: no model is measured).
    """
    first = next(iter(configs.values()), reference)
    if first is None:
        raise ValueError("calibrate: no model config and no reference config")
    test = test_split(first)
    eval_idx, calib_idx = split_test_set(len(test), eval_images, calibration_images, seed)
    images = test.images[torch.from_numpy(eval_idx)]
    calibration = test.images[torch.from_numpy(calib_idx)]
    default = resolve_estimator(importance, importance_options)
    out = Calibration(dict(checkpoints), {}, {}, {}, {}, eval_idx, calib_idx)
    models = {}
    for variant, path in checkpoints.items():
        trained = load_checkpoint(path, device)
        # a fully convolutional codec runs on test images larger than its training patches
        models[variant] = at_input_shape(trained.model, images.shape[1:])
        _measure(out, variant, models[variant], images, calibration, default, estimators, log)
        out.models.append(model_row(variant, trained, out.clean_psnr_db[variant]))
        if ordering:
            fitted = [p for (codec, _), p in out.profiles.items() if codec == variant]
            out.ordering.extend(ordering_rows(variant, models[variant], calibration, fitted))
        out.sizes[variant] = dense_size(models[variant])
    for name, (variant, spec) in (compressions or {}).items():
        codec = compress_codec(variant, models[variant], calibration, spec)
        out.codecs[name] = codec
        out.sizes[name] = codec.size
        if log is not None:
            log(f"model {variant}: compression {spec.method} in {codec.seconds:.2f} s")
        model = codec.load(device)
        _measure(out, name, model, images, calibration, default, estimators, log)
    return out


def model_row(variant: str, trained: TrainedModel, clean_psnr_db: float) -> dict[str, Any]:
    """One row of ``models.csv``: how model ``variant`` was trained and what it holds.

    Columns: ``model``, ``training_method``, ``adapter``, ``routing`` (``none`` when unset),
    ``channel_training`` (the channel-state training options as JSON, ``{}``: the fixed BER
    profile), ``init_from`` (the first 16 hex digits of the parent config's hash, ``none``),
    ``epochs`` (trained), ``steps`` (optimiser steps), ``parameters`` (of the deployed model),
    ``trainable_parameters`` (those the training updated: an adapted model's adapter only),
    ``clean_psnr_db``, ``checkpoint``.
    """
    c = trained.config
    history = trained.history
    steps = history[-1].get("step") if history else 0
    return {
        "model": variant,
        "training_method": c.method or "none",
        "adapter": c.adapter or "none",
        "routing": c.routing or "none",
        "channel_training": json.dumps(c.channel, sort_keys=True),
        "init_from": "none" if not c.init_from else config_hash(TrainConfig(**c.init_from))[:16],
        "epochs": len(history),
        "steps": -1 if steps is None else int(steps),
        "parameters": sum(p.numel() for p in trained.model.parameters()),
        "trainable_parameters": trained.trainable_parameters,
        "clean_psnr_db": clean_psnr_db,
        "checkpoint": str(trained.checkpoint),
    }


def _measure(
    out: Calibration,
    codec: str,
    model: Any,
    images: torch.Tensor,
    calibration: torch.Tensor,
    default: EstimatorSpec,
    estimators: dict[str, list[EstimatorSpec]] | None,
    log: Callable[[str], None] | None,
) -> None:
    """Clean PSNR, every estimator's profile, the weights and the drop distortion of one codec,
    into ``out``."""
    out.clean_psnr_db[codec] = clean_psnr(model, images)
    _warm_up(model, calibration[:2])  # one-time costs (autograd) are in no estimator's time
    specs = {default.key: default}
    specs.update((s.key, s) for s in (estimators or {}).get(codec, []))
    for spec in specs.values():
        profile = fit_profile(codec, model, calibration, spec)
        out.profiles[(codec, spec.key)] = profile
        if log is not None:
            log(f"model {codec}: importance {spec.method} in {profile.seconds:.2f} s")
    out.weights[codec] = out.profiles[(codec, default.key)].weights
    out.raw[codec] = out.profiles[(codec, default.key)].raw
    out.drop[codec] = drop_distortion(model, calibration)


def data_fingerprint(
    config: TrainConfig, eval_images: int, calibration_images: int | None, seed: int
) -> str:
    """Digest of every image a run reads (:func:`semcom.identity.data_digest`): the training
    split (images, labels) of ``config`` and the test split's evaluation and calibration
    images with their labels, chosen as :func:`calibrate` chooses them."""
    train_split = load_dataset(
        config.dataset, "train", root=config.dataset_root, **config.dataset_options
    )
    test = test_split(config)
    eval_idx, calib_idx = split_test_set(len(test), eval_images, calibration_images, seed)
    chosen = [torch.from_numpy(i) for i in (eval_idx, calib_idx)]
    return data_digest(
        train_split.images, train_split.labels,
        *(t for i in chosen for t in (test.images[i], test.labels[i])),
    )  # fmt: skip


def with_checkpoint_dir(config: TrainConfig, fallback: Path) -> TrainConfig:
    """``config`` with ``checkpoint_dir = fallback`` when it has none (workers load files)."""
    if config.checkpoint_dir is not None:
        return config
    return replace(config, checkpoint_dir=str(fallback))


__all__ = [
    "Calibration",
    "allocation_inputs",
    "calibrate",
    "clean_psnr",
    "data_fingerprint",
    "split_test_set",
    "test_split",
    "train_models",
    "with_checkpoint_dir",
]
