"""Ordering quality of an importance profile: rank agreement and insertion/deletion curves.

Three measures of how good an estimator's ordering of the ``N`` features is:

- **Spearman's ρ** between the estimator's weights ``w`` and a reference (the masking-ablation
  ground truth, :func:`masking_ground_truth`), by ``scipy.stats.spearmanr`` (ties get average
  ranks). A constant vector has no order; its ρ is reported as 0 (scipy returns NaN).
- **Insertion AUC**: the features join the empty set in the estimator's order (most important
  first); the curve is the normalised value of the first ``k`` features,
  ``c_k = ṽ(S_k)``, ``k = 0..N``, with

      ṽ(S) = (v(S) − v(∅)) / (v(V) − v(∅)),       v(S) = −E_x MSE(x, g(z ⊙ m_S)),

  i.e. the **−MSE curve** of the subset value (:mod:`semcom.importance.value_function`),
  normalised so that ``ṽ(∅) = 0`` and ``ṽ(V) = 1``. The area uses the trapezoid rule on the
  feature fraction ``k/N`` (the x axis normalised to [0, 1]):

      AUC_ins = (1/N) Σ_{k=1}^{N} ½ (c_{k−1} + c_k).

  Higher is better: a good order recovers the reconstruction with few features.
- **Deletion AUC**: the features leave the full set in the same order, ``d_k = ṽ(V ∖ S_k)``,
  ``AUC_del = (1/N) Σ_{k=1}^{N} ½ (d_{k−1} + d_k)``. Lower is better.

Both areas lie in [0, 1] when ``ṽ`` is monotone; a subset that reconstructs better than all the
features (or worse than none) can push a point, and in principle the area, outside. PSNR is not
used for the curves: its logarithm would make the area depend on the absolute MSE level of the
codec rather than on the order. For an additive game ``ṽ(S) + ṽ(V ∖ S) = 1``, so
``AUC_ins + AUC_del = 1`` for every order.

Examples:
    >>> import numpy as np
    >>> w = np.array([3.0, 2.0, 1.0])
    >>> game = lambda s: s @ w                       # additive: ṽ(S) = Σ_S w / 6
    >>> round(insertion_auc(game, [0, 1, 2]) * 18, 9), round(deletion_auc(game, [0, 1, 2]) * 18, 9)
    (11.0, 7.0)
    >>> spearman([0.5, 0.3, 0.2], [9.0, 4.0, 1.0])
    1.0
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from channels.errors import ConfigError, check_vector, fail
from semcom.importance.masking import MaskingImportance
from semcom.importance.value_function import ValueFn, evaluate

_VECTOR: dict[str, Any] = {
    "min_size": 1,
    "allowed": "a non-empty vector of finite numbers",
    "unconvertible": "a vector of finite numbers",
}
"""Options of :func:`channels.errors.check_vector` for an importance vector ``w``."""


def spearman(w: Any, reference: Any) -> float:
    """Spearman's ρ of ``w`` against ``reference`` (same length ``N``); 0 if either is constant."""
    a, b = check_vector("w", w, **_VECTOR), check_vector("reference", reference, **_VECTOR)
    if a.size != b.size:
        raise fail("reference", f"vector of length {b.size}", f"length {a.size} like w")
    if a.size < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(a, b).statistic)


def order_from_importance(w: Any) -> np.ndarray:
    """Feature indices by decreasing ``w`` (ties: the lower index first), int64 ``[N]``."""
    return np.argsort(-check_vector("w", w, **_VECTOR), kind="stable").astype(np.int64)


def check_order(order: Any, n: int | None = None) -> np.ndarray:
    """``order`` as an int64 permutation of ``0..N−1`` (``N = n`` when given) or ConfigError."""
    arr = np.asarray(order)
    size = arr.size if n is None else n
    if (
        arr.ndim != 1
        or arr.size != size
        or not np.issubdtype(arr.dtype, np.integer)
        or sorted(arr.tolist()) != list(range(size))
    ):
        raise fail("order", np.asarray(order).tolist(), f"a permutation of 0..{size - 1}")
    return arr.astype(np.int64)


def _curve(value_fn: ValueFn, order: Any, deletion: bool) -> np.ndarray:
    n = getattr(value_fn, "n_features", None)
    order = check_order(order, n)
    n = order.size
    position = np.argsort(order)
    prefixes = position[None, :] < np.arange(n + 1)[:, None]  # row k: the first k features
    subsets = ~prefixes if deletion else prefixes
    values = evaluate(value_fn, np.concatenate([subsets, [np.zeros(n, bool), np.ones(n, bool)]]))
    v_empty, v_full = values[-2], values[-1]
    if v_full == v_empty:
        raise ConfigError("value function: v(V) = v(∅), so the normalised curve is undefined")
    return (values[:-2] - v_empty) / (v_full - v_empty)


def insertion_curve(value_fn: ValueFn, order: Any) -> np.ndarray:
    """``c_k = ṽ(first k features of order)``, ``k = 0..N``, float64 ``[N + 1]``."""
    return _curve(value_fn, order, deletion=False)


def deletion_curve(value_fn: ValueFn, order: Any) -> np.ndarray:
    """``d_k = ṽ(all but the first k features of order)``, ``k = 0..N``, float64 ``[N + 1]``."""
    return _curve(value_fn, order, deletion=True)


def _area(curve: np.ndarray) -> float:
    n = curve.size - 1
    return float(np.sum(0.5 * (curve[:-1] + curve[1:])) / n)


def insertion_auc(value_fn: ValueFn, order: Any) -> float:
    """Area under the insertion curve over the feature fraction ``k/N`` (higher is better)."""
    return _area(insertion_curve(value_fn, order))


def deletion_auc(value_fn: ValueFn, order: Any) -> float:
    """Area under the deletion curve over the feature fraction ``k/N`` (lower is better)."""
    return _area(deletion_curve(value_fn, order))


def masking_ground_truth(model: Any, images: Any, **options: Any) -> np.ndarray:
    """The masking-ablation scores ``w̃_i = v(V) − v(V ∖ {i})``, float64 ``[N]`` (unclipped).

    The ground truth of the ordering comparisons: :class:`MaskingImportance`'s
    ``raw_importances_`` (``options`` are its options, e.g. ``batch_size``).
    """
    return MaskingImportance(**options).fit(model, images).raw_importances_


@dataclass(frozen=True)
class OrderingQuality:
    """Spearman's ρ against a reference and the insertion/deletion AUCs of one profile."""

    spearman: float
    insertion_auc: float
    deletion_auc: float


def ordering_quality(value_fn: ValueFn, w: Any, reference: Any) -> OrderingQuality:
    """All three measures for weights ``w``: ρ vs ``reference``, AUCs of ``w``'s order."""
    order = order_from_importance(w)
    return OrderingQuality(
        spearman(w, reference), insertion_auc(value_fn, order), deletion_auc(value_fn, order)
    )


__all__ = [
    "OrderingQuality",
    "check_order",
    "deletion_auc",
    "deletion_curve",
    "insertion_auc",
    "insertion_curve",
    "masking_ground_truth",
    "order_from_importance",
    "ordering_quality",
    "spearman",
]
