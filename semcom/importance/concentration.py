"""Concentration statistics of an importance profile ``w[N]`` (docs/method.md §3.3).

All three take a non-negative vector (it need not be normalised) and treat an all-zero vector
like :func:`semcom.importance.base.normalize_importance` does: as the uniform profile.

- Gini index, ``G = Σ_i Σ_j |w_i − w_j| / (2 N Σ_i w_i)``: 0 for a uniform profile,
  ``(N − 1)/N`` for a one-hot profile (all mass on one feature). Computed from the ascending
  sort ``w_(1) <= ... <= w_(N)`` as ``G = Σ_i (2i − N − 1) w_(i) / (N Σ w)``.
- Top-k share, ``Σ (k largest w) / Σ w``: ``k/N`` for a uniform profile.
- Spearman's rank correlation of ``w`` against the feature index ``0..N−1``
  (``scipy.stats.spearmanr``): −1 for a strictly decreasing profile (importance ordered to the
  front, the ISFR target), +1 for strictly increasing. A constant profile has no rank order;
  its correlation is reported as 0 (scipy would return NaN).

Examples:
    >>> gini([0.25, 0.25, 0.25, 0.25]), gini([0, 0, 1, 0])
    (0.0, 0.75)
    >>> top_k_share([1, 6, 3], k=2)
    0.9
    >>> spearman_vs_index([0.5, 0.3, 0.2])
    -1.0
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from scipy import stats

from channels.errors import fail


def _profile(w: Any) -> np.ndarray:
    """A float64 vector ``[N]``, ``N >= 1``, finite and >= 0; an all-zero vector -> uniform."""
    try:
        arr = np.asarray(w, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail("w", w, "a vector of finite numbers >= 0") from None
    if arr.ndim != 1 or arr.size == 0:
        raise fail("w", f"array of shape {arr.shape}", "a non-empty vector [N]")
    if not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise fail("w", arr.tolist(), "finite numbers >= 0")
    if arr.sum() <= 0:
        return np.full(arr.size, 1.0 / arr.size)
    return arr


def gini(w: Any) -> float:
    """Gini index of ``w[N]`` in ``[0, (N−1)/N]``: 0 uniform, ``(N−1)/N`` one-hot."""
    arr = np.sort(_profile(w))
    n = arr.size
    if arr[0] == arr[-1]:
        return 0.0
    coefficients = 2.0 * np.arange(1, n + 1, dtype=np.float64) - n - 1.0  # 2i - N - 1
    value = float(coefficients @ arr) / (n * float(arr.sum()))
    return float(min(max(value, 0.0), (n - 1.0) / n))  # clip rounding


def top_k_share(w: Any, k: int) -> float:
    """Share of the total held by the ``k`` largest entries of ``w``, ``k`` in ``1..N``."""
    arr = _profile(w)
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= arr.size:
        raise fail("k", k, f"an integer in 1..{arr.size}")
    top = np.sort(arr)[::-1][: int(k)]
    return float(top.sum() / arr.sum())


def spearman_vs_index(w: Any) -> float:
    """Spearman's rho between ``w`` and the index ``0..N−1`` (0 for a constant profile)."""
    arr = _profile(w)
    if arr.size < 2 or np.all(arr == arr[0]):
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = stats.spearmanr(np.arange(arr.size), arr).statistic
    return float(rho)
