"""The affine distortion terms of every feature: ``D_i(sent) = floor_i + slope_i Pb_i``,
``D_i(dropped) = drop_i`` (the model and its derivation: :mod:`optim.distortion`).

This is the ground floor of the distortion model: it reads only the quantiser and drop fields
of a problem, so :class:`optim.problem.Problem` can check its own costs with it and
:mod:`optim.distortion` builds the objective on it.

Examples:
    >>> from optim.problem import random_problem
    >>> p = random_problem(3, 3, seed=1)
    >>> t = feature_terms(p)
    >>> bool(t.slope.shape == (3,) and (t.floor < t.drop).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "FeatureTerms",
    "QuantisedFeatures",
    "bit_error_mse",
    "feature_terms",
    "quantisation_mse",
    "scalar_mse",
]


class QuantisedFeatures(Protocol):
    """What the distortion terms read of a problem (:class:`optim.problem.Problem` has it).

    Attributes:
        weights: float64 [N], the importance weights (only their count is used here).
        quantiser_step: ``Delta = span / 2^Q``, float or float64 [N] with per-feature ``Q``.
        bits_per_scalar: ``Q``, int or int [N].
        drop_distortion: float64 [N], ``d_drop,i = E[z^2]`` per scalar.
        scalars_per_feature: ``L``.
        distortion_model: "absolute" or "normalised".
    """

    weights: np.ndarray
    drop_distortion: np.ndarray
    scalars_per_feature: int
    distortion_model: str
    bits_per_scalar: int | np.ndarray

    @property
    def quantiser_step(self) -> float | np.ndarray: ...


@dataclass(frozen=True)
class FeatureTerms:
    """Affine distortion terms of every feature, each float64 [N].

    ``D_i(sent) = floor[i] + slope[i] * Pb_i`` and ``D_i(dropped) = drop[i]``.
    """

    floor: np.ndarray
    slope: np.ndarray
    drop: np.ndarray


def quantisation_mse(problem: QuantisedFeatures) -> float | np.ndarray:
    """Error-free per-scalar MSE ``Delta^2 / 12`` (float; [N] with per-feature ``Q``)."""
    return problem.quantiser_step**2 / 12.0


def bit_error_mse(problem: QuantisedFeatures) -> float | np.ndarray:
    """Per-scalar MSE per unit bit-error probability ``Delta^2 (4^Q - 1) / 3`` (float; [N]
    with per-feature ``Q``)."""
    return problem.quantiser_step**2 * (4.0**problem.bits_per_scalar - 1.0) / 3.0


def scalar_mse(problem: QuantisedFeatures, pb: np.ndarray | float) -> np.ndarray:
    """``d_err(Pb)`` per scalar, same shape as ``pb`` (with per-feature ``Q``, ``pb`` [..., N]
    broadcasts against the features)."""
    return quantisation_mse(problem) + np.asarray(pb, dtype=np.float64) * bit_error_mse(problem)


def feature_terms(problem: QuantisedFeatures) -> FeatureTerms:
    """The affine coefficients (floor, slope, drop) of every feature's distortion, [N] each."""
    n = problem.weights.size
    d_q, d_b = quantisation_mse(problem), bit_error_mse(problem)
    if problem.distortion_model == "normalised":
        with np.errstate(divide="ignore", over="ignore"):
            inv = 1.0 / problem.drop_distortion
        return FeatureTerms(d_q * inv, d_b * inv, np.ones(n))
    length = float(problem.scalars_per_feature)
    return FeatureTerms(
        np.full(n, length * d_q), np.full(n, length * d_b), length * problem.drop_distortion
    )
