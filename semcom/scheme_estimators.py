"""Importance estimators per scheme: specs, fitted profiles, the selection step's keep count and
the ordering quality of every profile.

A scenario has one ``importance`` section (the default estimator), and a custom scheme may name
its own estimator (``importance: {method, options}``) and a selection step (``selection:
{method, keep, options}``; docs/scenarios.md). Before the sweep, each model variant fits every
estimator its schemes need **once** on the same held-out calibration images: one fit per
``(model variant, estimator, resolved options)``, the :class:`Profile`. A scheme's weights are
its estimator's profile; a selection step uses the fitted estimator's ``reduce``.

Ordering quality (:mod:`semcom.importance.ordering_quality`) of every profile, on the same
calibration images, with the estimator's ranking taken from its raw scores: Spearman's ρ
against the masking-ablation ground truth ``w̃_i = v(V) − v(V ∖ {i})`` (masking's raw scores
with its default options), and the insertion and deletion AUC of that order on the normalised
``−MSE`` curve of the subset value ``v(S) = −E_x MSE(x, g(z ⊙ m_S))``. The row ``index-order``
scores the order ``1, 2, ..., N`` (the order an ISFR model is trained to have) the same way.

Examples:
    >>> spec = resolve_estimator("masking", {})
    >>> spec.method, sorted(spec.options)
    ('masking', ['batch_size', 'decode_batch'])
    >>> resolve_estimator("masking", {"batch_size": 256}).key == spec.key
    True
    >>> keep_count(0.5, 16), keep_count(3, 16), keep_count(0.01, 16)
    (8, 3, 1)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from channels.errors import fail
from semcom.importance import IMPORTANCE, ImportanceEstimator, make_estimator
from semcom.importance.ordering_quality import masking_ground_truth, ordering_quality
from semcom.importance.value_function import SubsetValue
from semcom.params import MethodSpec

INDEX_ORDER = "index-order"
"""The ``estimator`` label of the ordering row of the fixed order ``1, ..., N``."""


@dataclass(frozen=True)
class EstimatorSpec(MethodSpec):
    """An importance estimator with its resolved options (every default filled in).

    Two specs with the same method and resolved options are the same estimator (:attr:`key`),
    so they are fitted once per model variant.
    """

    @property
    def key(self) -> str:
        """``method`` and :attr:`options_json`: the identity of the fit."""
        return f"{self.method} {self.options_json}"

    def build(self) -> ImportanceEstimator:
        """A fresh, unfitted estimator."""
        return make_estimator(self.method, **self.options)


def resolve_estimator(method: str, options: dict[str, Any]) -> EstimatorSpec:
    """The :class:`EstimatorSpec` of ``method`` with ``options`` (ConfigError if invalid)."""
    return EstimatorSpec.of(method, make_estimator(method, **options))


def reducing_methods() -> list[str]:
    """The registered estimators that implement ``reduce`` (usable as a selection step)."""
    return [n for n in IMPORTANCE.names() if callable(getattr(IMPORTANCE.get(n), "reduce", None))]


def keep_count(keep: Any, n_features: int) -> int:
    """Features kept per image: an integer ``keep`` in ``1..N`` as is; a fraction in (0, 1] as
    ``max(1, floor(keep · N + 1/2))`` (rounded half up, at least one).

    Raises:
        ConfigError: ``keep`` is neither (``bool`` is not a number here).
    """
    allowed = f"an integer in 1..{n_features} or a fraction in (0, 1]"
    if isinstance(keep, bool) or not isinstance(keep, int | float):
        raise fail("keep", keep, allowed)
    if isinstance(keep, int):
        if not 1 <= keep <= n_features:
            raise fail("keep", keep, allowed)
        return int(keep)
    if not (math.isfinite(keep) and 0.0 < keep <= 1.0):
        raise fail("keep", keep, allowed)
    return max(1, min(n_features, math.floor(keep * n_features + 0.5)))


@dataclass(frozen=True)
class Profile:
    """One estimator fitted on one model variant's calibration images.

    Attributes:
        variant: the model variant.
        spec: the estimator and its resolved options.
        weights: ``importances_``, float64 ``[N]`` (>= 0, sums to 1).
        raw: ``raw_importances_``, float64 ``[N]``.
        seconds: wall time of ``fit`` (s).
        estimator: the fitted estimator (its ``reduce`` is the selection step).
        cpu_seconds: CPU time of ``fit`` (s, this process, all its threads): less sensitive
            than the wall time to other programs sharing the cores.
    """

    variant: str
    spec: EstimatorSpec
    weights: np.ndarray
    raw: np.ndarray
    seconds: float
    estimator: Any
    cpu_seconds: float = float("nan")


def fit_profile(variant: str, model: Any, images: Any, spec: EstimatorSpec) -> Profile:
    """Fit ``spec`` on ``model`` and ``images`` ``[B, C, H, W]``; time the fit."""
    estimator = spec.build()
    start, cpu = time.perf_counter(), time.process_time()
    estimator.fit(model, images)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Profile(
        variant, spec,
        np.asarray(estimator.importances_, dtype=np.float64),
        np.asarray(estimator.raw_importances_, dtype=np.float64),
        seconds, estimator, cpu,
    )  # fmt: skip


def ordering_rows(
    variant: str, model: Any, images: Any, profiles: list[Profile]
) -> list[dict[str, Any]]:
    """Rows of ``ordering.csv`` for one model variant (module docstring).

    Columns: ``model, estimator, options, seconds, cpu_seconds, spearman, insertion_auc,
    deletion_auc``; one
    row per profile, then the ``index-order`` row. The ground truth is masking's raw scores
    with its default options (taken from a profile that is exactly that, else computed). Each
    profile is ranked by its raw scores: the weights are their clipped normalisation, so they
    give the same order except that every clipped feature ties at 0.
    """
    truth_spec = resolve_estimator("masking", {})
    truth = next((p.raw for p in profiles if p.spec.key == truth_spec.key), None)
    if truth is None:
        truth = masking_ground_truth(model, images)
    value_fn = SubsetValue(model, images)
    n = int(model.n_features)
    entries = [(p.spec.method, p.spec.options_json, p.seconds, p.cpu_seconds, p.raw)
               for p in profiles]  # fmt: skip
    entries.append((INDEX_ORDER, "{}", 0.0, 0.0, np.arange(n, 0, -1, dtype=np.float64)))
    rows = []
    for method, options, seconds, cpu, weights in entries:
        q = ordering_quality(value_fn, weights, truth)
        rows.append({
            "model": variant, "estimator": method, "options": options, "seconds": seconds,
            "cpu_seconds": cpu, "spearman": q.spearman, "insertion_auc": q.insertion_auc,
            "deletion_auc": q.deletion_auc,
        })  # fmt: skip
    return rows


__all__ = [
    "INDEX_ORDER",
    "EstimatorSpec",
    "Profile",
    "fit_profile",
    "keep_count",
    "ordering_rows",
    "reducing_methods",
    "resolve_estimator",
]
