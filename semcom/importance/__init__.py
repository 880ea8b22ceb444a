"""Importance of semantic features: a registry of estimators and concentration statistics.

Public API::

    estimate(model, images, method="masking", **cfg) -> np.ndarray [N]   (>= 0, sums to 1)
    IMPORTANCE                         the "importance" family of semcom.registry
    MaskingImportance, GradientImportance   the estimators (fit -> importances_)
    OptiPruneImportance, VFlowOptImportance, ZeroTPruneImportance
                                       attention-graph (ViT) estimators; also token_scores
                                       and reduce(model, images, keep) -> Reduction
    ElasticCacheImportance, AdaptiveSparseViTImportance, GaamImportance, VarImportance
                                       attention/feature white-box estimators (one module each)
    normalize_importance(raw)          max(raw, 0) / sum; all-zero -> uniform 1/N
    gini(w), top_k_share(w, k), spearman_vs_index(w)

Adding an estimator is one file with a class derived from
:class:`~semcom.importance.base.ImportanceEstimator`, registered with
``@IMPORTANCE.register(name, description=..., paper=...)``, and one import line below.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from channels.errors import ConfigError
from semcom.importance.adaptive_sparse_vit import AdaptiveSparseViTImportance
from semcom.importance.base import IMPORTANCE, ImportanceEstimator, normalize_importance
from semcom.importance.concentration import gini, spearman_vs_index, top_k_share
from semcom.importance.data_shapley import DataShapleyImportance
from semcom.importance.elastic_cache import ElasticCacheImportance
from semcom.importance.gaam import GaamImportance
from semcom.importance.gradient import GradientImportance
from semcom.importance.lima import LimaImportance
from semcom.importance.masking import MaskingImportance
from semcom.importance.optiprune import OptiPruneImportance
from semcom.importance.reagent import ReagentImportance
from semcom.importance.var import VarImportance
from semcom.importance.vflowopt import VFlowOptImportance
from semcom.importance.zero_tprune import ZeroTPruneImportance


def make_estimator(method: str = "masking", **cfg: Any) -> ImportanceEstimator:
    """The estimator registered as ``method``, built with options ``cfg`` (validated)."""
    cls = IMPORTANCE.get(method)
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in cfg:
        if key not in allowed:
            raise ConfigError(
                f"importance option: {key!r} is not accepted by method {method!r}; "
                f"allowed: {', '.join(allowed) or 'none'}"
            )
    return cls(**cfg)


def estimate(model: Any, images: Any, method: str = "masking", **cfg: Any) -> np.ndarray:
    """Importance weights ``w[N]`` of ``model``'s features on ``images`` [B, C, H, W].

    ``method`` names an estimator of :data:`IMPORTANCE` (``"masking"``, ``"gradient"``);
    ``cfg`` are its options (e.g. ``batch_size``). The result is float64, non-negative and
    sums to 1 (uniform when every raw score is <= 0). Invalid input raises ConfigError before
    any model evaluation.
    """
    return make_estimator(method, **cfg).fit(model, images).importances_


__all__ = [
    "IMPORTANCE",
    "AdaptiveSparseViTImportance",
    "DataShapleyImportance",
    "ElasticCacheImportance",
    "GaamImportance",
    "GradientImportance",
    "ImportanceEstimator",
    "LimaImportance",
    "MaskingImportance",
    "OptiPruneImportance",
    "ReagentImportance",
    "VFlowOptImportance",
    "VarImportance",
    "ZeroTPruneImportance",
    "estimate",
    "gini",
    "make_estimator",
    "normalize_importance",
    "spearman_vs_index",
    "top_k_share",
]
