"""Shared machinery of the importance estimators: the family registry, the estimator base class,
input checks and the normalisation ``w_i = max(w̃_i, 0) / Σ_j max(w̃_j, 0)``.

Every estimator is a class with scikit-learn-like verbs and one constructor signature shape::

    est = MaskingImportance(batch_size=256)      # options only, validated here
    est.fit(model, images)                       # measures; returns the estimator
    est.importances_                             # float64 [N], >= 0, sums to 1
    est.raw_importances_                         # float64 [N], the un-normalised scores w̃

and is registered in :data:`IMPORTANCE` (the ``importance`` family of :mod:`semcom.registry`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from channels.errors import ConfigError, check_int, fail
from semcom.params import Configurable
from semcom.registry import Registry

IMPORTANCE = Registry("importance")
"""The ``importance`` method family: name -> estimator class."""


def normalize_importance(raw: np.ndarray) -> np.ndarray:
    """``w_i = max(w̃_i, 0) / Σ_j max(w̃_j, 0)`` (docs/method.md §3.3); float64 ``[N]``.

    All-zero case: when no feature has a positive score (every ablation leaves the loss
    unchanged or improves it), nothing distinguishes the features and the result is the
    uniform profile ``w_i = 1/N``, so the weights still sum to 1.
    """
    raw = np.asarray(raw, dtype=np.float64).reshape(-1)
    if raw.size == 0:
        raise fail("importance", "an empty vector", "at least one feature")
    if not np.all(np.isfinite(raw)):
        raise fail("importance", raw.tolist(), "finite scores")
    clipped = np.maximum(raw, 0.0)
    total = clipped.sum()
    if total <= 0.0:
        return np.full(raw.size, 1.0 / raw.size)
    return clipped / total


def as_images(images: Any) -> torch.Tensor:
    """Images ``[B, C, H, W]`` as a tensor: a Tensor, an array, or a data set with ``.images``.

    Raises ConfigError for another rank, an empty batch or non-finite values.
    """
    images = getattr(images, "images", images)
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise fail("images", type(images).__name__, "a Tensor [B, C, H, W] or a data set")
    if images.ndim != 4 or images.shape[0] == 0:
        raise fail("images", f"tensor of shape {tuple(images.shape)}", "shape [B, C, H, W], B >= 1")
    if not torch.is_floating_point(images) or not bool(torch.isfinite(images).all()):
        raise fail("images", f"tensor of dtype {images.dtype}", "finite floating-point values")
    return images


def check_model(model: Any) -> Any:
    """Raise ConfigError unless ``model`` has ``encode``, ``decode`` and ``n_features``."""
    missing = [a for a in ("encode", "decode", "n_features") if not hasattr(model, a)]
    if missing:
        raise fail("model", type(model).__name__, "a SemanticModel (encode, decode, n_features)")
    return model


def model_dtype_device(model: Any, images: torch.Tensor) -> tuple[torch.dtype, torch.device]:
    """Dtype and device of the model's first parameter (the images' when it has none)."""
    params = model.parameters() if hasattr(model, "parameters") else iter(())
    first = next(iter(params), None)
    if first is None:
        return images.dtype, images.device
    return first.dtype, first.device


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Run with ``model.eval()`` (clean, deterministic model); restore the training flags after."""
    if not isinstance(model, torch.nn.Module):
        yield
        return
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


def per_image_mse(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """``MSE_b = mean_{c,h,w} (x - x̂)^2`` in float64, ``[B]``."""
    diff = x.to(torch.float64) - x_hat.to(torch.float64)
    return diff.pow(2).flatten(1).mean(dim=1)


class ImportanceEstimator(Configurable):
    """Base class: ``fit(model, images)`` sets ``raw_importances_`` and ``importances_``.

    Args:
        batch_size: images per encoder pass (memory only: the result does not depend on it
            beyond floating-point rounding of the model itself).

    Subclasses implement :meth:`_scores` returning the float64 sum over images of the
    per-image scores ``[N]``; the base class divides by the number of images (the ``E_x``).
    """

    name = "base"
    models: tuple[str, ...] | None = None
    """Model names (``model.name``) the estimator works on; None: any semantic codec. Scenario
    checks use it to refuse, at load, an estimator the scenario's model cannot serve."""

    def __init__(self, batch_size: int = 256) -> None:
        self.batch_size = check_int("batch_size", batch_size, 1)

    def _scores(self, model: Any, x: torch.Tensor) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def fit(self, model: Any, images: Any) -> ImportanceEstimator:
        """Estimate the importance of every feature of ``model`` on ``images`` [B, C, H, W]."""
        check_model(model)
        images = as_images(images)
        dtype, device = model_dtype_device(model, images)
        n = int(model.n_features)
        total = np.zeros(n, dtype=np.float64)
        with eval_mode(model):
            for start in range(0, images.shape[0], self.batch_size):
                x = images[start : start + self.batch_size].to(device=device, dtype=dtype)
                total += self._scores(model, x)
        self.raw_importances_ = total / images.shape[0]
        self.importances_ = normalize_importance(self.raw_importances_)
        self.n_images_ = int(images.shape[0])
        return self


def encode_checked(model: Any, x: torch.Tensor) -> torch.Tensor:
    """``z = model.encode(x)``, checked to be ``[B, N, L]`` with ``N = model.n_features``."""
    z = model.encode(x)
    n = int(model.n_features)
    if z.ndim != 3 or z.shape[0] != x.shape[0] or z.shape[1] != n:
        raise ConfigError(f"model: encode returned shape {tuple(z.shape)}; expected [B, N={n}, L]")
    return z
