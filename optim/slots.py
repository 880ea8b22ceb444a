"""(P0) in slot form, the search space it reduces to, its dual bound and an incumbent.

Slot form of (P0)
-----------------
Write ``e_i = w_i (floor_i - drop_i)`` and ``alpha_i = w_i slope_i`` (:func:`optim.distortion.
feature_terms`), ``base = sum_i w_i drop_i``, and sort the subchannels by decreasing gain:
slot ``s = 0, 1, ...`` has SNR per unit power ``nu_s = g_(s) / sigma^2``,
``nu_0 >= nu_1 >= ...``. An allocation that sends features ``i_0, ..., i_{n-1}`` on slots
``0..n-1`` with modulations ``m_s`` and powers ``p_s`` costs::

    J = base + sum_s [ e_{i_s} + alpha_{i_s} f_{m_s}(nu_s p_s) ]        (1)
    s.t.  sum_s S(m_s) <= S_max,   sum_s p_s <= P_tot,   p >= 0

with ``f_m`` the problem's BER model: ``A_m exp(-B_m gamma)`` (``bound``) or the exact Gray
BER ``sum_t w_t Q(b_t sqrt(gamma))`` (``exact``, :func:`channels.theory.ber_awgn`).

Per-feature bits. With per-feature ``Q_i`` (:class:`optim.problem.Problem`) the symbol budget
reads ``sum_s S_{i_s}(m_s) <= S_max``: a feature's symbols depend on the feature and its
modulation, not on its slot. The lemmas below hold unchanged (generalised, not a fallback):
Lemma 1 keeps every feature's modulation and Lemma 2 swaps two features *of the same
modulation*, each keeping its own ``S_i(m)``, so neither changes the symbols used; the bounds
(2) here and (3) of :mod:`optim.bnb_search` price ``S_i(m)`` per feature. Only the walk's
budget test is per pair ``(rank, modulation)`` (:func:`next_child`).

Lemma 1 (strongest slots). Some optimum uses a prefix ``0..n-1`` of the slots.
*Proof.* Take an optimum using subchannels ``k_1, ..., k_n`` (any order) with SNRs
``gamma_j = g_{k_j} p_j / sigma^2``. Move the feature on the ``r``-th strongest used
subchannel to slot ``r``, the ``r``-th strongest of all (its gain is at least as large: the
``r`` strongest used subchannels are ``r`` distinct subchannels with gains at least that of
the ``r``-th used one), keeping every SNR: each power ``gamma_j sigma^2 / g`` does not increase,
the cost (a function of the SNRs) and the symbol count are unchanged. No monotonicity of
``f`` is needed. []

Lemma 2 (same-modulation order). Rank the features by ``(-alpha_i, i)``. Some optimum
(among those of Lemma 1) gives, within every modulation class, the stronger slot to the
better-ranked feature. *Proof.* Let ``i`` rank before ``j`` (``alpha_i >= alpha_j``), both
with modulation ``m``, ``i`` on slot ``b``, ``j`` on a stronger slot ``a`` (``nu_a >= nu_b``)
with SNRs ``gamma_i``, ``gamma_j``. If ``gamma_i >= gamma_j``, move ``i`` to ``a`` and ``j``
to ``b`` keeping the SNRs: the cost is unchanged and the power changes by
``(gamma_i - gamma_j)(1/nu_a - 1/nu_b) <= 0``. If ``gamma_i < gamma_j``, swap slots and SNRs
(``i`` gets ``gamma_j`` on ``a``, ``j`` gets ``gamma_i`` on ``b``): the power is unchanged and
the cost changes by ``(alpha_i - alpha_j)(f(gamma_j) - f(gamma_i)) <= 0`` because ``f`` is
non-increasing (both models: Lemma 3, :mod:`optim.optimal_power`). Each swap sorts one
inverted pair of a class, keeping the selection, modulations and budgets, so finitely many
swaps reach the stated order. []

Together: a candidate is a sequence of ``(feature, modulation)`` pairs for slots ``0..n-1``
with the symbol budget met and, per modulation, ranks increasing along the slots. For
``N = K`` and ``M = 4`` there are 622,465 such candidates at ``N = 6`` (3.8 million with Lemma
1 alone, 8.9 million without either), 8.4 million at ``N = 7``, 118 million at ``N = 8``
(:func:`optim.enumeration.candidate_count`; the symbol budget removes most of them in practice).

Lemma 4 (dual bound). For every ``lambda >= 0``, each candidate's optimum satisfies::

    J* >= base + sum_s [ e_s + alpha_s H_{m_s}( lambda / (alpha_s nu_s) ) ] - lambda P_tot,
    H_m(mu) = min_{gamma >= 0} f_m(gamma) + mu gamma                         (2)

(weak duality: ``alpha f(nu p) >= alpha H(lambda/(alpha nu)) - lambda p`` term by term and
``sum p <= P``; a slot with ``alpha nu = 0`` contributes ``alpha f(0) = alpha H(inf)``).
``H_m`` is concave and non-decreasing (a minimum of affine functions of ``mu``). Bound:
``H(mu) = (mu/B)(1 + ln(AB/mu))`` for ``mu < AB``, else ``A``. Exact: ``H`` is tabulated
on a fine log grid of ``mu``; by concavity the chord between two grid points is below ``H``,
and below the grid ``H >= 0``, above it ``H >= H(mu_max)``, so the interpolant used is a
valid lower bound.

The ordered-prior incumbent (:func:`ordered_prior_incumbent`) seeds both exact searches
(:mod:`optim.enumeration`, :mod:`optim.bnb_search`) with a first upper bound and the
multipliers ``lambda_n`` of (2). The tree walk over candidates (:func:`next_child`,
:func:`take_child`, :func:`backtrack`) is shared by both.

Examples:
    >>> from optim.problem import random_problem
    >>> sm = slot_model(random_problem(5, 3, seed=0))
    >>> sm.nu.size, bool((sm.nu[:-1] >= sm.nu[1:]).all())
    (3, True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from math import comb
from typing import TYPE_CHECKING

import numba
import numpy as np

from optim.ber_model import BerModel, ber_model, h_at, h_bound, h_cell
from optim.feature_terms import feature_terms
from optim.optimal_power import candidate_value
from optim.twin import shared

if TYPE_CHECKING:
    from optim.problem import Problem
    from optim.timebox import Deadline

__all__ = [
    "SlotModel",
    "backtrack",
    "column_min",
    "count_vectors",
    "dual_bound_terms",
    "next_child",
    "ordered_prior_incumbent",
    "slot_model",
    "slot_terms",
    "slot_terms_into",
    "take_child",
]


@dataclass(frozen=True)
class SlotModel:
    """(P0) in slot form (module docstring, eq. 1). Arrays are float64 unless noted.

    base: ``sum_i w_i drop_i``. gain_cost [N]: ``e_i``. alpha [N]: ``alpha_i``.
    order [N] int: features by rank ``(-alpha_i, i)``; rank [N] int: its inverse.
    nu [Kp]: ``g/sigma^2`` of the ``Kp = min(N, K)`` strongest subchannels, non-increasing;
    slot_channel [Kp] int: their subchannel indices. symbols [N, M] int: ``S_r(m)``, the
    symbols of the feature of rank ``r`` (rows equal unless ``Q`` is per feature).
    """

    base: float
    gain_cost: np.ndarray
    alpha: np.ndarray
    order: np.ndarray
    rank: np.ndarray
    nu: np.ndarray
    slot_channel: np.ndarray
    symbols: np.ndarray
    symbol_budget: float
    power_budget: float


def slot_model(problem: Problem) -> SlotModel:
    """The slot form of ``problem`` (Lemma 1: only the ``min(N, K)`` strongest slots)."""
    terms = feature_terms(problem)
    w = problem.weights
    alpha = w * terms.slope
    gain_cost = w * (terms.floor - terms.drop)
    order = np.lexsort((np.arange(w.size), -alpha)).astype(np.int64)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    kp = min(problem.n_features, problem.n_subchannels)
    chan = np.lexsort((np.arange(problem.n_subchannels), -problem.gains))[:kp].astype(np.int64)
    return SlotModel(
        base=float(w @ terms.drop),
        gain_cost=gain_cost,
        alpha=alpha,
        order=order,
        rank=rank,
        nu=problem.gains[chan] / problem.noise_power,
        slot_channel=chan,
        symbols=np.ascontiguousarray(problem.symbol_table[order], dtype=np.int64),
        symbol_budget=float(problem.symbol_budget),
        power_budget=float(problem.power_budget),
    )


def dual_bound_terms(problem: Problem, sm: SlotModel, log_lambda: np.ndarray) -> np.ndarray:
    """Slot terms of (2): ``out[d, r, m, s] = e + alpha H_m(lambda_d / (alpha nu_s))``.

    ``log_lambda`` [D] (``-inf`` for ``lambda = 0``); ``r`` is a rank; returns float64
    ``[D, N, M, Kp]``.
    """
    mod = ber_model(problem)
    return slot_terms(
        mod,
        sm.alpha[sm.order],
        sm.gain_cost[sm.order],
        sm.nu,
        np.asarray(log_lambda, dtype=np.float64),
        len(problem.modulations),
    )


@shared()
def slot_terms_into(mod, alpha, e, nu, loglam, n_mod, out, la, lnu) -> None:
    """The slot terms of (2) into ``out [D, N, M, Kp]``::

        out[d, r, m, s] = e_r + alpha_r H_m(lambda_d / (alpha_r nu_s))

    (:func:`optim.ber_model.h_bound`; ``alpha_r nu_s = 0``: ``e_r + alpha_r f_m(0)``) for
    ``alpha`` [N], ``e`` [N], ``nu`` [Kp] and ``loglam`` [D] (``ln lambda_d``). ``la`` [N] and
    ``lnu`` [Kp] are scratch for the logarithms, taken once out of the inner loop (the same
    values as inside it)."""
    n_feat = alpha.size
    kp = nu.size
    for r in range(n_feat):
        la[r] = 0.0
        if alpha[r] > 0.0:
            la[r] = math.log(alpha[r])
    for s in range(kp):
        lnu[s] = 0.0
        if nu[s] > 0.0:
            lnu[s] = math.log(nu[s])
    eh = math.expm1(mod.h)
    for d in range(loglam.size):
        for r in range(n_feat):
            a = alpha[r]
            for s in range(kp):
                if a > 0.0 and nu[s] > 0.0:
                    lnmu = loglam[d] - la[r] - lnu[s]
                    # optim.ber_model.dual_terms_into's body, written out: given the strided
                    # view out[d, r, :, s], a shared helper made this loop 2.3x slower
                    if mod.kind == 1 and lnmu != np.inf:  # one grid position for every m
                        k, frac = h_cell(mod, lnmu, eh)
                        for m in range(n_mod):
                            out[d, r, m, s] = e[r] + a * h_at(mod, m, k, frac)
                    else:
                        for m in range(n_mod):
                            out[d, r, m, s] = e[r] + a * h_bound(mod, m, lnmu)
                else:
                    for m in range(n_mod):
                        out[d, r, m, s] = e[r] + a * mod.f0[m]


@numba.njit(cache=True)
def slot_terms(mod, alpha_r, e_r, nu, loglam, n_mod):  # noqa: ANN001, ANN201
    """:func:`slot_terms_into` into a new ``[D, N, M, Kp]`` array."""
    out = np.empty((loglam.size, alpha_r.size, n_mod, nu.size))
    slot_terms_into(mod, alpha_r, e_r, nu, loglam, n_mod, out, np.empty(alpha_r.size),
                    np.empty(nu.size))  # fmt: skip
    return out


@numba.njit(cache=True, inline="always")
def next_child(c, n_mod, n_feat, sym, symmin, symu_depth, smax, last, used):  # noqa: ANN001, ANN201
    """The first admissible child code ``>= c`` of a search node, or -1 when there is none.

    A child code ``c = m * n_feat + r`` puts feature rank ``r`` in the next slot with
    modulation ``m``. It is admissible when the symbol budget still holds
    (``symu_depth + sym[r, m] <= smax``, ``sym`` [N, M] the symbols of rank ``r``), when ``r``
    is above the last rank already given ``m`` (within one modulation, ranks are taken in
    increasing order: the same-modulation swap argument of the module docstring), and when
    ``r`` is unused. A code that breaks the second rule, or the first for every rank
    (``symmin[m] = min_r sym[r, m]``), skips straight to the next candidate that can pass them.
    """
    while c < n_mod * n_feat:
        m = c // n_feat
        r = c % n_feat
        if symu_depth + symmin[m] > smax:
            c = (m + 1) * n_feat
        elif r <= last[m]:
            c = m * n_feat + last[m] + 1
        elif used[r] or symu_depth + sym[r, m] > smax:
            c += 1
        else:
            return c
    return -1


@numba.njit(cache=True)
def column_min(sym):  # noqa: ANN001, ANN201
    """``min_r sym[r, m]`` per modulation (the whole-modulation skip of :func:`next_child`)."""
    n_feat, n_mod = sym.shape
    out = np.zeros(n_mod, sym.dtype)
    for m in range(n_mod):
        v = sym[0, m] if n_feat else 0
        for r in range(1, n_feat):
            if sym[r, m] < v:
                v = sym[r, m]
        out[m] = v
    return out


@numba.njit(cache=True, inline="always")
def take_child(c, depth, n_feat, cursor, cur_r, cur_m, prev_last, last, used):  # noqa: ANN001, ANN201
    """Take child code ``c`` at ``depth``: record it and mark its rank used; returns ``(m, r)``.

    ``prev_last`` keeps the previous last rank of modulation ``m`` so :func:`backtrack` can
    restore it.
    """
    cursor[depth] = c
    m = c // n_feat
    r = c % n_feat
    cur_r[depth] = r
    cur_m[depth] = m
    prev_last[depth] = last[m]
    last[m] = r
    used[r] = True
    return m, r


@numba.njit(cache=True, inline="always")
def backtrack(depth, cur_r, cur_m, prev_last, last, used):  # noqa: ANN001, ANN201
    """Leave ``depth``: undo the choice of the parent slot (inverse of :func:`take_child`)."""
    depth -= 1
    if depth >= 0:
        used[cur_r[depth]] = False
        last[cur_m[depth]] = prev_last[depth]
    return depth


def count_vectors(n: int, n_mod: int, limit: int = 3000) -> list[tuple[int, ...]]:
    """Modulation counts ``(c_0, ..., c_{M-1})`` summing to ``n`` (a non-decreasing pattern
    each): all of them in depth-first order while there are at most ``limit``, else the sorted
    ones with at most two non-zero counts (two-level patterns, ``O(n M^2)``)."""
    if comb(n + n_mod - 1, n_mod - 1) <= limit:
        out: list[tuple[int, ...]] = []
        stack = [()]
        while stack:
            head = stack.pop()
            if len(head) == n_mod - 1:
                out.append((*head, n - sum(head)))
                continue
            for c in range(n - sum(head) + 1):
                stack.append((*head, c))
        return out
    vecs = set()
    for lo in range(n_mod):
        for hi in range(lo, n_mod):
            for a in range(n + 1):
                v = [0] * n_mod
                v[lo] += a
                v[hi] += n - a
                vecs.add(tuple(v))
    return sorted(vecs)


def ordered_prior_incumbent(
    problem: Problem, sm: SlotModel, mod: BerModel, deadline: Deadline | None = None
) -> tuple[float, np.ndarray, np.ndarray, int, np.ndarray]:
    """Best ordered-prior candidate per size, solved exactly: (UB, ranks, mods, n, ln lambda).

    Candidates: ranks ``0..n-1`` on slots ``0..n-1`` with non-decreasing bits per symbol
    along the slots (every such pattern while there are at most 3000 per size, else the
    two-level ones), symbol budget met. ``ln lambda[n-1]`` is the multiplier of the best
    candidate of size ``n`` (``-inf``, i.e. ``lambda = 0``, when none or no power is used).
    Only a heuristic: it seeds the incumbent and the multipliers of the bounds. The two-level
    patterns of every size come first (``O(n M^2)`` per size), then the others size by size
    until the ``deadline``: cut short, the bounds stay valid (any ``lambda >= 0`` is), only
    looser.
    """
    kp = sm.nu.size
    n_mod = sm.symbols.shape[1]
    loglam = np.full(max(kp, 1), -np.inf)
    best_value = np.full(max(kp, 1), np.inf)
    alpha_r = sm.alpha[sm.order]
    e_r = sm.gain_cost[sm.order]
    p = np.zeros(max(kp, 1))
    g = np.zeros(max(kp, 1))
    incumbent = [sm.base, np.zeros(max(kp, 1), np.int64), np.zeros(max(kp, 1), np.int64), 0]

    def size_pass(n: int, vectors: list[tuple[int, ...]]) -> None:
        a_n = alpha_r[:n].copy()
        nu_n = sm.nu[:n].copy()
        fixed = sm.base + e_r[:n].sum()
        for counts in vectors:
            mods = np.repeat(np.arange(n_mod, dtype=np.int64), counts)
            if float(sm.symbols[np.arange(n), mods].sum()) > sm.symbol_budget:
                continue
            v, lev = candidate_value(mod, a_n, nu_n, mods, n, sm.power_budget, p, g)
            v += fixed
            if v < best_value[n - 1]:
                best_value[n - 1] = v
                loglam[n - 1] = lev if np.isfinite(lev) else -np.inf
            if v < incumbent[0]:
                r = np.zeros(max(kp, 1), np.int64)
                r[:n] = np.arange(n)
                mm = np.zeros(max(kp, 1), np.int64)
                mm[:n] = mods
                incumbent[:] = [v, r, mm, n]

    for n in range(1, kp + 1):
        size_pass(n, count_vectors(n, n_mod, limit=0))  # the two-level patterns
    for n in range(1, kp + 1):
        if deadline is not None and deadline.passed():
            break
        more = [v for v in count_vectors(n, n_mod) if np.count_nonzero(v) > 2]
        size_pass(n, more)
    for n in range(2, kp + 1):
        if not np.isfinite(best_value[n - 1]):
            loglam[n - 1] = loglam[n - 2]
    ub, r0, m0, n0 = incumbent
    return ub, r0, m0, n0, loglam
