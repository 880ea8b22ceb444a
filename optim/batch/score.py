"""The objective of (P0) for many frames' allocations at once, given as index arrays.

A batched method that decides with numpy (not a compiled kernel) still reports the problem's
own objective ``J = sum_i w_i D_i`` of each frame (:func:`optim.distortion.objective`):
:func:`frame_objectives` evaluates it for allocations laid out as in
:class:`optim.batch.solve.BatchResult` (``[B, N]`` arrays, ``-1`` / ``0`` for unsent features)
with each frame's own gains.

Examples:
    >>> import numpy as np
    >>> from optim.distortion import dropped_cost
    >>> from optim.problem import random_problem
    >>> p = random_problem(3, 3, seed=0)
    >>> none = np.full((2, 3), -1)
    >>> out = frame_objectives(p, np.ones((2, 3)), none >= 0, none, none, np.zeros((2, 3)))
    >>> bool(np.allclose(out, dropped_cost(p)))
    True
"""

from __future__ import annotations

import numpy as np

from optim.distortion import bit_error_rate, feature_terms
from optim.problem import Problem

__all__ = ["frame_objectives", "sent_costs"]


def sent_costs(
    template: Problem, modulation: np.ndarray, gain: np.ndarray, power: np.ndarray
) -> np.ndarray:
    """``w_i (floor_i + slope_i Pb_i)``: the weighted distortion of each feature if sent.

    Args:
        template: the problem (weights, distortion and BER model, noise power).
        modulation: int array [..., N], index into ``template.modulations`` (``< 0``: the
            entry is ignored and gets ``Pb = 0``).
        gain: float array [..., N], the gain of the subchannel carrying each feature.
        power: float array [..., N], per-symbol power.

    Returns:
        float64 array [..., N].
    """
    terms = feature_terms(template)
    with np.errstate(over="ignore"):  # an infinite SNR is fine: Pb = 0
        esno = gain * power / template.noise_power
    pb = bit_error_rate(template, modulation, esno)
    return template.weights * (terms.floor + terms.slope * pb)


def frame_objectives(
    template: Problem,
    gains: np.ndarray,
    selected: np.ndarray,
    subchannel: np.ndarray,
    modulation: np.ndarray,
    power: np.ndarray,
) -> np.ndarray:
    """(P0) of every frame: dropped features at ``w_i drop_i``, sent ones at their BER.

    Args:
        template: the problem's shared fields (its own gains are not used).
        gains: float64 [B, K], each frame's subchannel gains.
        selected: bool [B, N]; subchannel, modulation: int64 [B, N] (``-1`` unsent);
            power: float64 [B, N].

    Returns:
        float64 [B], ``sum_i w_i D_i`` of each frame.
    """
    terms = feature_terms(template)
    dropped = template.weights * terms.drop
    if selected.shape[1] == 0:
        return np.zeros(selected.shape[0])
    k = np.maximum(subchannel, 0)
    gain = np.take_along_axis(gains, k, axis=1) if gains.shape[1] else np.zeros(k.shape)
    sent = sent_costs(template, np.where(selected, modulation, -1), gain, power)
    return np.where(selected, sent, dropped).sum(axis=1)
