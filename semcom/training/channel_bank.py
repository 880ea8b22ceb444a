"""Matched bit-error-rate banks: what the link's allocation does to each feature, per condition.

A *condition* is a fading class, an integer average SNR in dB and the link's sizes. For it, a
bank holds ``M`` rows, each one channel draw of the link (:class:`semcom.link.SemanticLink`)
and the bit-error rates the allocation gives every feature on it:

1. draw the ``K`` subchannel coefficients ``h_k`` with
   :func:`channels.fading.fading_coefficients` (``E|h|² = 1``; every row at once by
   :func:`channels.fading.trial_fading`, the same draws) and take ``g_k = |h_k|²``;
2. build the link's allocation problem (:class:`optim.problem.Problem`):
   ``P_tot = 10^(snr/10) K``, ``σ² = 1``, ``S_max = η N L Q / 2``, ``d_drop,i = 1``, the
   modulation set and exact BER model of the link, weights ``w`` = the *prior*:

       "isfr":     w_i = r_i / Σ_j r_j, r_i the nested-dropout retention of semcom.isfr
                   (NestedDropout.retention: the importance ISFR training gives feature i)
       "uniform":  w_i = 1 / N

   and solve it with ``optim.solve(problem, "hierarchical")`` (all rows at once, by
   ``optim.solve_batch``, which gives each row the same allocation);
3. per feature ``i``: ``sent_i`` = selected with power ``p_i > 0`` (as the link: a zero-power
   feature is zero-filled at the receiver) and ``ε_i = Pb(m_i, γ_i)``, the bit-error rate of its
   Gray-coded modulation ``m_i`` at ``γ_i = g_k(i) p_i / σ²`` under the problem's BER model
   (:func:`optim.distortion.bit_error_rate`, the one the allocation minimised); ``ε_i = 0`` for
   an unsent feature (it is masked, not flipped);
4. ``gain_db = 10 log10(mean_k g_k)`` (0 for AWGN).

Row ``j`` uses ``numpy.random.default_rng((seed, j))``: a bank is a deterministic function of its
arguments, and row ``j`` does not depend on ``M``. Banks are kept in memory (an LRU cache of
:data:`BANK_CACHE` conditions), so a training run solves each condition once.

Examples:
    >>> bank = channel_bank("awgn", 10, n_features=4, scalars_per_feature=8, draws=2)
    >>> bank.eps.shape, bank.sent.shape, bank.gain_db.tolist()
    ((2, 4), (2, 4), [0.0, 0.0])
    >>> bool(((bank.eps >= 0) & (bank.eps <= 0.5)).all())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

import optim
from channels.errors import check_choice, check_int, check_real, fail
from channels.fading import trial_fading
from optim.distortion import bit_error_rate
from optim.problem import DEFAULT_MODULATIONS, Problem
from semcom.channel_state import CHANNEL_CLASSES
from semcom.limits import MAX_RICIAN_K

PRIORS = ("isfr", "uniform")
"""Importance priors the bank's allocation problems use as weights."""

BANK_CACHE = 512
"""Conditions whose banks stay in memory (least recently used dropped first)."""

ALLOCATION_METHOD = "hierarchical"
"""The link's default allocation method, used for every bank row."""

DEFAULT_DROPOUT: tuple[str, float, int, float] = ("geometric", 0.1, 1, 1.0)
"""``(law, rho, n_min, p_nd)`` of the nested dropout whose retention is the ``"isfr"`` prior by
default: :class:`semcom.isfr.NestedDropout`'s own defaults (its module imports torch, which
this one does not need)."""


@dataclass(frozen=True)
class ChannelBank:
    """``M`` channel draws of one condition and what the allocation does to each feature.

    Attributes:
        eps: float64 ``[M, N]``, bit-error rate of each feature (0 where not sent), in
            ``[0, 1/2]``.
        sent: bool ``[M, N]``, feature selected with power > 0.
        gain_db: float64 ``[M]``, ``10 log10(mean_k g_k)`` of the draw.
        condition: the arguments of :func:`channel_bank` that made it, as a tuple.
    """

    eps: np.ndarray
    sent: np.ndarray
    gain_db: np.ndarray
    condition: tuple

    def __len__(self) -> int:
        return int(self.eps.shape[0])


def prior_weights(
    prior: str,
    n_features: int,
    dropout: tuple[str, float, int, float] = DEFAULT_DROPOUT,
) -> np.ndarray:
    """The allocation weights ``w`` float64 ``[N]`` of a prior (module docstring, sum 1).

    Args:
        prior: ``"isfr"`` or ``"uniform"``.
        n_features: ``N``.
        dropout: ``(law, rho, n_min, p_nd)`` of the nested dropout whose retention is the
            ``"isfr"`` prior (:class:`semcom.isfr.NestedDropout`).

    Examples:
        >>> prior_weights("uniform", 4).tolist()
        [0.25, 0.25, 0.25, 0.25]
        >>> w = prior_weights("isfr", 4)
        >>> bool(abs(w.sum() - 1) < 1e-12 and (w[:-1] >= w[1:]).all())
        True
    """
    from semcom.isfr import NestedDropout

    check_choice("prior", prior, PRIORS)
    n = check_int("n_features", n_features, 1, 1 << 20)
    if prior == "uniform":
        return np.full(n, 1.0 / n)
    law, rho, n_min, p_nd = dropout
    r = NestedDropout(n, law, rho, n_min, p_nd).retention().numpy()
    return r / r.sum()


def channel_bank(
    fading: str,
    snr_db: int,
    n_features: int,
    scalars_per_feature: int,
    bits_per_scalar: int = 8,
    n_subchannels: int | None = None,
    eta: float = 0.5,
    rician_k: float = 3.0,
    prior: str = "isfr",
    draws: int = 64,
    seed: int = 0,
    dropout: tuple[str, float, int, float] = DEFAULT_DROPOUT,
    modulations: tuple[str, ...] = DEFAULT_MODULATIONS,
) -> ChannelBank:
    """The bank of one condition (module docstring); cached, read-only arrays.

    Args:
        fading: a class of :data:`semcom.channel_state.CHANNEL_CLASSES`.
        snr_db: integer average SNR ``P_tot / (K σ²)`` in dB (the bank grid is 1 dB).
        n_features: ``N``.
        scalars_per_feature: ``L``.
        bits_per_scalar: ``Q`` (1..16).
        n_subchannels: ``K >= 1`` (``None``: ``N``).
        eta: symbol budget factor ``η >= 0`` of ``S_max = η N L Q / 2``.
        rician_k: Rician K-factor (linear), used by ``"rician"``.
        prior: ``"isfr"`` or ``"uniform"`` (:func:`prior_weights`).
        draws: ``M >= 1`` rows.
        seed: seed of the draws.
        dropout: nested-dropout options of the ``"isfr"`` prior (:func:`prior_weights`).
        modulations: the allocation's modulation set (the link's default set).

    Returns:
        A :class:`ChannelBank`.

    Raises:
        ConfigError: a bad argument, as a one-line message.
    """
    fading = check_choice("fading", fading, CHANNEL_CLASSES)
    if isinstance(snr_db, bool) or float(snr_db) != round(float(snr_db)):
        raise fail("snr_db", snr_db, "an integer number of dB (the bank grid is 1 dB)")
    snr = int(check_int("snr_db", int(round(float(snr_db))), -100, 100))
    n = check_int("n_features", n_features, 1, 4096)
    length = check_int("scalars_per_feature", scalars_per_feature, 1, 1 << 20)
    q = check_int("bits_per_scalar", bits_per_scalar, 1, 16)
    k = n if n_subchannels is None else check_int("n_subchannels", n_subchannels, 1, 4096)
    eta = check_real("eta", eta, 0.0, 1e6, coerce=True)
    rician_k = check_real("rician_k", rician_k, 0.0, MAX_RICIAN_K, coerce=True)
    prior = check_choice("prior", prior, PRIORS)
    m = check_int("draws", draws, 1, 1 << 16)
    seed = check_int("seed", seed, 0, 2**63 - 1)
    law, rho, n_min, p_nd = dropout
    key = (fading, snr, n, length, q, k, float(eta), float(rician_k), prior, m, seed)
    return _bank(*key, (str(law), float(rho), int(n_min), float(p_nd)), tuple(modulations))


@lru_cache(maxsize=BANK_CACHE)
def _bank(
    fading: str,
    snr: int,
    n: int,
    length: int,
    q: int,
    k: int,
    eta: float,
    rician_k: float,
    prior: str,
    m: int,
    seed: int,
    dropout: tuple[str, float, int, float],
    modulations: tuple[str, ...],
) -> ChannelBank:
    weights = prior_weights(prior, n, dropout)
    template = dict(
        weights=weights, drop_distortion=np.ones(n), power_budget=10.0 ** (snr / 10.0) * k,
        symbol_budget=eta * n * length * q / 2.0, scalars_per_feature=length,
        bits_per_scalar=q, noise_power=1.0, modulations=modulations, ber_model="exact",
    )  # fmt: skip
    h = trial_fading(fading, k, (seed,), np.arange(m), rician_k if fading == "rician" else 0.0)
    gains = np.abs(h) ** 2
    gain_db = 10.0 * np.log10(gains.mean(axis=1))
    distinct, row = np.unique(gains, axis=0, return_inverse=True)  # AWGN rows are all alike
    eps, sent = _rows(Problem(gains=distinct[0], **template), distinct)
    eps, sent = eps[row.reshape(-1)], sent[row.reshape(-1)]
    for array in (eps, sent, gain_db):
        array.setflags(write=False)
    condition = (fading, snr, n, length, q, k, eta, rician_k, prior, m, seed, dropout, modulations)
    return ChannelBank(eps, sent, gain_db, condition)


def _rows(template: Problem, gains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(ε [B, N], sent [B, N])`` of the hierarchical allocation of every frame of ``gains``
    [B, K] (``optim.solve_batch``: frame ``b`` equals ``optim.solve`` on it)."""
    batch = optim.solve_batch(template, gains, ALLOCATION_METHOD, backend="cpu")
    sent = batch.power > 0.0
    sub = np.where(sent, batch.subchannel, 0)
    gamma = np.take_along_axis(gains, sub, axis=1) * batch.power / template.noise_power
    eps = np.where(sent, bit_error_rate(template, np.where(sent, batch.modulation, -1), gamma),
                   0.0)  # fmt: skip
    return eps, sent


def compile_solver() -> None:
    """Build a 2-feature bank and throw it away (it is not cached): Numba compiles the batched
    allocation solver every bank is built with, or loads it from its on-disk cache, so that
    the first real bank (in a training process) does not spend minutes compiling silently
    (:func:`semcom.prepare.train_models` calls this under a notice)."""
    _bank.__wrapped__("rayleigh", 10, 2, 1, 8, 2, 0.5, 3.0, "isfr", 1, 0, DEFAULT_DROPOUT,
                      DEFAULT_MODULATIONS)  # fmt: skip


def clear_cache() -> None:
    """Forget every cached bank (tests; memory)."""
    _bank.cache_clear()


__all__ = [
    "DEFAULT_DROPOUT",
    "PRIORS",
    "ChannelBank",
    "channel_bank",
    "clear_cache",
    "compile_solver",
    "prior_weights",
]
