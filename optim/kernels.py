"""Numba kernels of the allocation hot loops (compiled once, cached on disk).

:func:`water_fill_rows` is the closed-form water-filling of :mod:`optim.power` for a batch of
independent rows; NumPy's vectorised version spends most of its time in per-call overhead on
the small batches the local search scores, which this loop avoids. :func:`ber` (the bit-error
probability of one modulation at one SNR) and :func:`lagrangian_into` (the modulation
choice's bisection on the symbol price) are also compiled as CUDA device functions for the
batched solver (:func:`optim.twin.shared`), so both solvers run the same code.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from optim.term_sums import q_terms_negligible
from optim.twin import shared
from optim.water_fill import water_fill_levels

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def contiguous(x: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """``x`` as a C-contiguous writable array of ``dtype`` (a copy only when needed), so that
    every caller of a kernel here hits one Numba specialisation."""
    return np.require(x, dtype=dtype, requirements=["C", "W"])


@numba.njit(cache=True)
def water_fill_rows(t: np.ndarray, c: np.ndarray, budget: np.ndarray) -> np.ndarray:
    """Rows of ``p_i = max(0, (t_i - nu)/c_i)`` with ``sum_i p_i = budget[r]``
    (:func:`optim.water_fill.water_fill_levels` per row, no rescaling).

    ``t`` [R, n] is ``ln(alpha c)`` (``-inf`` for entries that gain nothing from power),
    ``c`` [R, n] the rates, ``budget`` [R].
    """
    rows, n = t.shape
    out = np.zeros((rows, n))
    order = np.empty(n, dtype=np.int64)
    for r in range(rows):
        water_fill_levels(t[r], c[r], n, budget[r], order, out[r], -1)
    return out


@shared(inline="always")
def ber(m: int, g: float, qw: np.ndarray, qs: np.ndarray, ba: np.ndarray, bb: np.ndarray,
        exact: bool) -> float:  # fmt: skip
    """``Pb`` of modulation index ``m`` (< 0: 0) at SNR ``g``.

    Exact: ``Pb = sum_t qw[m, t] Q(qs[m, t] sqrt(g))`` (the Gray BER as a sum of Q-functions,
    ``Q(x) = erfc(x / sqrt 2) / 2``, zero weights skipped, and the terms that can no longer
    change the sum left out: :mod:`optim.term_sums`); bound: ``ba[m] exp(-bb[m] g)``.
    Clipped to ``[0, 1/2]``. Compiled for the CPU and as a CUDA device function (the batched
    solver's scoring, :func:`optim.twin.shared`).
    """
    if m < 0:
        return 0.0
    if exact:
        root = math.sqrt(g) * _INV_SQRT2
        acc = 0.0
        for t in range(qw.shape[1]):
            w = qw[m, t]
            if w != 0.0:
                q = math.erfc(qs[m, t] * root)
                acc += w * 0.5 * q
                if q_terms_negligible(qw, m, t, qw.shape[1], q, acc):
                    break
    else:
        acc = ba[m] * math.exp(-bb[m] * g)
    return min(max(acc, 0.0), 0.5)


@numba.njit(cache=True)
def ber_rows(
    modulation: np.ndarray,
    esno: np.ndarray,
    weight: np.ndarray,
    scale: np.ndarray,
    bound_a: np.ndarray,
    bound_b: np.ndarray,
    exact: bool,
) -> np.ndarray:
    """:func:`ber` of flat arrays ``modulation`` (index; < 0 gives 0) and ``esno``, with the
    exact model's ``weight`` and ``scale`` [M, T] or the bound's ``bound_a``, ``bound_b`` [M]."""
    out = np.zeros(esno.size)
    for i in range(esno.size):
        if modulation[i] >= 0:  # skipping the unsent entries here is ~25% faster than in ber
            out[i] = ber(modulation[i], esno[i], weight, scale, bound_a, bound_b, exact)
    return out


def warm_up() -> None:
    """Compile (or load from the on-disk cache) every kernel, so later timings exclude it."""
    t = np.zeros((1, 2))
    water_fill_rows(t, np.ones((1, 2)), np.ones(1))
    table = np.zeros((1, 1))
    ber_rows(np.zeros(1, np.int64), np.ones(1), table, table, np.ones(1), np.ones(1), True)


@numba.njit(cache=True)
def lagrangian_rows(
    cost: np.ndarray,
    symbols: np.ndarray,
    s_max: float,
    lo: float,
    hi: float,
    iters: int,
    fallback: np.ndarray,
) -> np.ndarray:
    """Bisection on ``mu`` of :func:`optim.modulation._lagrangian_choice`.

    Per row the first argmin of ``cost[j, m] + mu S[j, m]`` (``symbols`` [n, M], per-feature
    symbol counts); returns the choice at the smallest ``mu`` tried whose total
    ``sum_j S[j, m_j]`` fits ``s_max`` (``fallback`` if none did).
    """
    n, m = cost.shape
    best = fallback.copy()
    lagrangian_into(cost, symbols, n, m, s_max, lo, hi, iters, best, np.empty(n, np.int64))
    return best


@shared()
def lagrangian_into(cost, symbols, n, m, s_max, lo, hi, iters, best, ch) -> None:
    """:func:`lagrangian_rows` in place on ``cost``, ``symbols`` [:n, :m]: ``best[:n]`` holds
    the fallback on entry and the choice on return (``ch``: scratch [n])."""
    for _ in range(iters):
        mu = 0.5 * (lo + hi)
        total = 0.0
        for j in range(n):
            k = 0
            v = cost[j, 0] + mu * symbols[j, 0]
            for q in range(1, m):
                t = cost[j, q] + mu * symbols[j, q]
                if t < v:
                    v = t
                    k = q
            ch[j] = k
            total += symbols[j, k]
        if total <= s_max + 1e-9:
            hi = mu
            for j in range(n):
                best[j] = ch[j]
        else:
            lo = mu
