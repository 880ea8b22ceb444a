"""Per-feature distortion models (docs/method.md §4.5) and the objective of (P0).

Uniform ``Q``-bit quantiser with step ``Delta = span / 2^Q``, natural-binary index, independent
bit errors of probability ``Pb``; a flip of bit ``j`` (0 = LSB) moves the value by
``2^j Delta`` and the cross terms vanish, so the per-scalar mean-squared error is::

    d_err(Pb) = Delta^2 / 12 + Pb * Delta^2 * (4^Q - 1) / 3

A dropped feature is zero-filled, costing ``d_drop,i = E[z^2]`` per scalar. Feature level:

- ``absolute``:   ``D_i = L d_err(Pb_i)`` if sent, ``L d_drop,i`` if dropped;
- ``normalised``: ``D_i = d_err(Pb_i) / d_drop,i`` if sent, ``1`` if dropped.

With per-feature bits ``Q_i`` ([OUR CHOICE], :class:`optim.problem.Problem`) each feature has
its own step ``Delta_i = span / 2^Q_i`` and
``d_err,i(Pb) = Delta_i^2 / 12 + Pb Delta_i^2 (4^Q_i - 1) / 3``: a finer quantiser lowers the
floor and raises the cost of a bit error (the top bit moves the value by about half the span
whatever ``Q_i``).

Both are affine in ``Pb``: ``D_i(sent) = floor_i + slope_i Pb_i``, ``D_i(dropped) = drop_i``
(:func:`optim.feature_terms.feature_terms`, re-exported here). The objective of an allocation is::

    J = sum_i w_i D_i = sum_i w_i drop_i + sum_{i sent} w_i (floor_i + slope_i Pb_i - drop_i)

with ``Pb_i = Pb(m_i, g_k(i) p_i / sigma^2)`` from the problem's BER model
(:func:`bit_error_rate`). ``Pb`` lies in ``[0, 1/2]`` and the problem validates that every
``w_i D_i`` is finite, so ``J`` is always finite.

Examples:
    >>> from optim.problem import Allocation, random_problem
    >>> p = random_problem(3, 3, seed=1)
    >>> objective(p, Allocation.send_nothing()) == dropped_cost(p)
    True
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from channels.coded import is_coded
from channels.theory import ber_awgn, ber_terms, bound_coefficients
from optim.feature_terms import (
    FeatureTerms,
    bit_error_mse,
    feature_terms,
    quantisation_mse,
    scalar_mse,
)

if TYPE_CHECKING:
    from optim.problem import Allocation, Problem

__all__ = [
    "FeatureTerms",
    "ber_of",
    "bit_error_mse",
    "bit_error_rate",
    "dropped_cost",
    "feature_costs",
    "feature_terms",
    "objective",
    "quantisation_mse",
    "scalar_mse",
]


def bit_error_rate(problem: Problem, modulation: np.ndarray, esno: np.ndarray) -> np.ndarray:
    """``Pb`` under the problem's BER model, elementwise.

    Evaluated by a Numba loop over the Q-function terms of :func:`channels.theory.ber_awgn`
    (or the bound's exponentials); tests check it against :func:`ber_of`.

    Args:
        problem: the instance; its ``ber_model`` and ``modulations`` are used.
        modulation: int array [...]. Index into ``problem.modulations`` (entries < 0 are
            ignored and give 0).
        esno: float array [...]. Per-symbol SNR ``gamma = g p / sigma^2`` (linear, >= 0),
            broadcast with ``modulation``.

    Returns:
        float64 array of the broadcast shape, values in ``[0, 1/2]``.
    """
    from optim.kernels import ber_rows, contiguous  # Numba loads on first use

    modulation, esno = np.broadcast_arrays(np.asarray(modulation), np.asarray(esno, float))
    weight, scale, bound_a, bound_b = _ber_table(problem.modulations)
    with np.errstate(over="ignore"):
        out = ber_rows(
            contiguous(modulation, np.int64).reshape(-1),
            contiguous(esno).reshape(-1),
            weight,
            scale,
            bound_a,
            bound_b,
            problem.ber_model == "exact",
        )
    return out.reshape(esno.shape)


@lru_cache(maxsize=64)
def _ber_table(
    modulations: tuple[str, ...],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-modulation Q-term weights and scales (padded [M, T]) and bound coefficients [M].

    Uses the exact-BER term table of :mod:`channels.theory` (``Pb = sum w Q(b sqrt(gamma))``).
    """
    terms = [_terms(m) for m in modulations]
    width = max(len(w) for w, _ in terms)
    weight = np.zeros((len(modulations), width))
    scale = np.zeros((len(modulations), width))
    for i, (w, b) in enumerate(terms):
        weight[i, : len(w)] = w
        scale[i, : len(b)] = b
    coef = np.array([bound_coefficients(m) for m in modulations], dtype=np.float64)
    return weight, scale, np.ascontiguousarray(coef[:, 0]), np.ascontiguousarray(coef[:, 1])


def ber_of(name: str, model: str, esno: np.ndarray) -> np.ndarray:
    """``Pb`` of one modulation under ``model`` ("exact" or "bound"), clipped to [0, 1/2]."""
    if model == "bound":
        a, b = bound_coefficients(name)
        pb = a * np.exp(-b * esno)
    else:
        pb = ber_awgn(name, esno)
    return np.clip(pb, 0.0, 0.5)


def dropped_cost(problem: Problem) -> float:
    """Objective of sending nothing: ``sum_i w_i drop_i``."""
    return float(problem.weights @ feature_terms(problem).drop)


def feature_costs(problem: Problem, allocation: Allocation) -> np.ndarray:
    """Weighted distortion ``w_i D_i`` of every feature under ``allocation``, float64 [N]."""
    terms = feature_terms(problem)
    cost = problem.weights * terms.drop
    if allocation.n_selected == 0:
        return cost
    sel = allocation.selected
    mods = np.array([problem.modulation_index(m) for m in allocation.modulation])
    with np.errstate(over="ignore"):  # an infinite SNR is fine: Pb = 0
        esno = problem.gains[allocation.subchannel] * allocation.power / problem.noise_power
    pb = bit_error_rate(problem, mods, esno)
    cost = cost.copy()
    cost[sel] = problem.weights[sel] * (terms.floor[sel] + terms.slope[sel] * pb)
    return cost


def objective(problem: Problem, allocation: Allocation) -> float:
    """Importance-weighted total distortion ``J = sum_i w_i D_i`` of (P0), always finite.

    Evaluated with the problem's own weights, distortion model and BER model, whatever the
    allocator used to decide; so objectives of different methods compare directly. Indices
    out of range or a modulation outside the problem's set raise ConfigError; budgets are
    not checked here (see :meth:`optim.problem.Allocation.violations`).
    """
    from channels.errors import ConfigError

    if allocation.n_selected:
        if allocation.selected.max() >= problem.n_features:
            raise ConfigError(
                f"selected: {allocation.selected.tolist()} is invalid; allowed: indices "
                f"< N = {problem.n_features}"
            )
        if allocation.subchannel.max() >= problem.n_subchannels:
            raise ConfigError(
                f"subchannel: {allocation.subchannel.tolist()} is invalid; allowed: indices "
                f"< K = {problem.n_subchannels}"
            )
    return float(feature_costs(problem, allocation).sum())


def _terms(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact-BER Q-terms of a modulation; a coded entry (bound model only) gets a null term."""
    return (np.zeros(1), np.ones(1)) if is_coded(name) else ber_terms(name)
