"""NumPy reference implementations that only the tests use (the package runs Numba kernels).

- :func:`closed_form`: exact water-filling, the reference of ``optim.kernels.water_fill_rows``
  (``optim.power._closed_form_fast``);
- :func:`bit_error_rate_reference`: ``optim.distortion.bit_error_rate`` one modulation at a
  time through ``optim.distortion.ber_of``, the reference of ``optim.kernels.ber_rows``.
"""

from __future__ import annotations

import numpy as np

from optim.distortion import ber_of
from optim.problem import Problem


def closed_form(t: np.ndarray, c: np.ndarray, useful: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Exact water-filling: the active set is the largest top-``j`` (by ``t``) with
    ``t_(j) > nu_j``, ``nu_j = (sum_{r<=j} t_r/c_r - P) / sum_{r<=j} 1/c_r``.

    On the active set ``A`` the powers are written as
    ``p_i = (t_i - tbar)/c_i + P (1/c_i) / sum_A 1/c_r`` with ``tbar`` the ``1/c``-weighted
    mean of ``t`` over ``A`` (computed from differences to the largest ``t``): they sum to
    ``P`` without cancellation even when ``P`` is tiny compared with ``|t|``.
    """
    order = np.argsort(-t, axis=-1, kind="stable")
    ts = np.take_along_axis(t, order, axis=-1)
    cs = np.take_along_axis(c, order, axis=-1)
    us = np.take_along_axis(useful, order, axis=-1)
    budget = np.broadcast_to(budget, t.shape[:-1])
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv_c = np.where(us, 1.0 / np.where(us, cs, 1.0), 0.0)
        # work with u = t - t_(1) <= 0: sums of differences, no cancellation against |t|
        u = np.where(us, ts - np.where(us[..., :1], ts[..., :1], 0.0), 0.0)
        s1 = np.cumsum(inv_c, axis=-1)
        s2 = np.cumsum(u * inv_c, axis=-1)
        # t_(j) > nu_j  <=>  s2_j - u_(j) s1_j < P  (exact for j = 1 even when P is tiny)
        count = (us & (s2 - u * s1 < budget[..., None])).sum(axis=-1)
        idx = np.maximum(count - 1, 0)[..., None]
        s1_a = np.take_along_axis(s1, idx, axis=-1)
        ubar = np.take_along_axis(s2, idx, axis=-1) / s1_a
        active = np.arange(t.shape[-1]) < count[..., None]
        ps = np.where(active, (u - ubar) * inv_c + budget[..., None] * inv_c / s1_a, 0.0)
    ps = np.where(np.isfinite(ps), np.maximum(ps, 0.0), 0.0)
    p = np.empty_like(ps)
    np.put_along_axis(p, order, ps, axis=-1)
    return p


def bit_error_rate_reference(
    problem: Problem, modulation: np.ndarray, esno: np.ndarray
) -> np.ndarray:
    """``optim.distortion.bit_error_rate`` through ``ber_of``, one modulation at a time."""
    modulation, esno = np.broadcast_arrays(np.asarray(modulation), np.asarray(esno, float))
    out = np.zeros(esno.shape)
    for m, name in enumerate(problem.modulations):
        mask = modulation == m
        if mask.any():
            out[mask] = ber_of(name, problem.ber_model, esno[mask])
    return out
