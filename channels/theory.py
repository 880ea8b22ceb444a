"""Closed-form bit- and symbol-error rates of the uncoded modulations, and the optimizer's bounds.

Used as the reference the Monte Carlo engine is tested against, and by the resource optimizer.

Conventions (the project's one SNR convention, docs/conventions.md):

* ``esno`` is Es/N0 per complex symbol, **linear** (not dB), average symbol energy Es = 1,
  noise N0 split equally between I and Q (variance N0/2 each).
* BPSK is real (points ±1): only the I noise matters, so Pb = Q(sqrt(2 Es/N0)).
* The other modulations are square Gray M-QAM labelled as Sionna does: each dimension is an
  independent Gray-labelled L-PAM, L = sqrt(M), carrying half the bits, unit average energy.
  The half distance between neighbouring levels is d = sqrt(3 / (2 (M - 1))), so a level at
  distance (2i+1)·d from a decision threshold is crossed with probability
  Q((2i+1)·sqrt(3 γ / (M - 1))), γ = Es/N0.  QPSK (M = 4) gives Pb = Q(sqrt(γ)).
* For the fading channels ``esno`` is the **average** Es/N0, γ̄ = E[|h|²]·Es/N0 with E|h|² = 1,
  and the instantaneous SNR is γ = |h|² γ̄ with coherent detection and perfect CSI.

Array convention: every rate function takes ``esno`` as a float or any array_like of any shape
and returns a ``numpy.ndarray`` of dtype float64 with the same shape (0-d for a scalar input;
``float(result)`` gives a Python float).  Invalid input raises
:class:`channels.errors.ConfigError` naming the argument.

Every exact rate is a finite sum of Q-function terms, BER = Σ_i w_i Q(b_i sqrt(γ)), which makes
the fading averages term-by-term integrals (closed form for Rayleigh, one quadrature for Rician).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import integrate, special

from channels.errors import ConfigError, check_name, check_real, fail
from channels.names import bits_per_symbol, check_modulation

__all__ = [
    "CHANNELS",
    "qfunc",
    "ber_awgn",
    "ser_awgn",
    "bound_coefficients",
    "ber_bound",
    "ber_nearest_neighbour",
    "ber_rayleigh",
    "ser_rayleigh",
    "ber_rician",
    "ser_rician",
    "ber_theory",
    "ser_theory",
    "ebno_to_esno",
    "esno_to_ebno",
    "db_to_linear",
    "linear_to_db",
]

CHANNELS: tuple[str, ...] = ("awgn", "rayleigh", "rician")
"""Channel names accepted by :func:`ber_theory` and :func:`ser_theory`."""

Array = NDArray[np.float64]

_QUAD_EPSREL = 1e-12  # relative tolerance of the Rician quadratures (well inside 1e-10)


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _as_snr(value: ArrayLike, field: str = "esno") -> Array:
    """``value`` as a float64 array; ConfigError unless every element is >= 0 (+inf allowed)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise fail(field, value, "real numbers >= 0") from exc
    bad = np.isnan(arr) | (arr < 0)
    if np.any(bad):
        first = arr[bad].flat[0]
        raise fail(field, float(first), "linear values >= 0 (not NaN)")
    return arr


# --------------------------------------------------------------------------------------------
# Q-function sums
# --------------------------------------------------------------------------------------------


def qfunc(x: ArrayLike) -> Array:
    """Gaussian tail Q(x) = P(N(0,1) > x) = ½ erfc(x / sqrt 2), accurate far into the tail.

    Args:
        x: real array_like of any shape.

    Returns:
        float64 ndarray, same shape as ``x`` (0-d for a scalar).
    """
    return np.asarray(special.ndtr(-np.asarray(x, dtype=np.float64)), dtype=np.float64)


@cache
def ber_terms(modulation: str) -> tuple[Array, Array]:
    """Exact BER as Σ_i w_i Q(b_i sqrt(γ)) for a checked name: (w, b), shapes (n_terms,).

    Cho & Yoon, IEEE Trans. Commun. 50(7), 2002, eq. (14) for one Gray L-PAM dimension
    (L = sqrt(M) for square M-QAM), written with Q instead of erfc (erfc(x/√2) = 2Q(x)):

        P(k) = (2/L) Σ_{i=0}^{(1-2^-k)L-1} (-1)^⌊i 2^(k-1)/L⌋ (2^(k-1) - ⌊i 2^(k-1)/L + ½⌋)
                      · Q((2i+1) a sqrt(γ)),             k = 1 .. log2 L (bit position)

        Pb = (1/log2 L) Σ_k P(k),

    with a = sqrt(3/(M-1)) for square M-QAM; BPSK is the real 2-PAM with a = sqrt 2.
    Both QAM dimensions have the same per-bit error rates, so averaging over one dimension's
    bits is averaging over all bits.
    """
    beta = bits_per_symbol(modulation)
    if modulation == "bpsk":
        levels, a = 2, np.sqrt(2.0)
    else:
        levels, a = 2 ** (beta // 2), np.sqrt(3.0 / (2**beta - 1))
    bits = levels.bit_length() - 1  # log2 L
    weights = np.zeros(levels - 1)  # i runs to at most (1 - 2^-bits) L - 1 = L - 2
    for k in range(1, bits + 1):
        span = 2 ** (k - 1)
        for i in range(levels - levels // 2**k):
            sign = -1.0 if (i * span // levels) % 2 else 1.0
            weights[i] += sign * (span - (2 * i * span + levels) // (2 * levels))
    weights *= 2.0 / (levels * bits)
    mult = (2 * np.arange(levels - 1) + 1) * a
    keep = weights != 0
    w, b = weights[keep], mult[keep]
    w.flags.writeable = False
    b.flags.writeable = False
    return w, b


@cache
def _pam_ser_term(modulation: str) -> tuple[float, float]:
    """Per-dimension symbol error rate P = c·Q(a sqrt(γ)); returns (c, a).

    L-PAM: P = 2 (1 - 1/L) Q(a sqrt γ).  BPSK: c = 1, a = sqrt 2.
    Square M-QAM: L = sqrt(M), a = sqrt(3/(M-1)).
    """
    beta = bits_per_symbol(modulation)
    if modulation == "bpsk":
        return 1.0, float(np.sqrt(2.0))
    levels = 2 ** (beta // 2)
    return 2.0 * (1.0 - 1.0 / levels), float(np.sqrt(3.0 / (2**beta - 1)))


# --------------------------------------------------------------------------------------------
# AWGN: exact rates
# --------------------------------------------------------------------------------------------


def ber_awgn(modulation: str, esno: ArrayLike) -> Array:
    """Exact bit error rate of Gray ``modulation`` on AWGN at linear Es/N0 ``esno``.

    BPSK: Pb = Q(sqrt(2γ)).  QPSK: Pb = Q(sqrt γ).  Square Gray M-QAM: the exact Cho & Yoon
    (2002) per-bit-position sum over one sqrt(M)-PAM dimension (see :func:`ber_terms`),
    Pb = Σ_i w_i Q((2i+1) sqrt(3γ/(M-1))).

    Args:
        modulation: one of ``channels.names.MODULATION_NAMES``.
        esno: linear Es/N0 >= 0, any shape (+inf gives 0).

    Returns:
        float64 ndarray with the shape of ``esno`` (0-d for a scalar).
    """
    w, b = ber_terms(check_modulation(modulation))
    g = _as_snr(esno)
    return np.asarray(qfunc(np.sqrt(g)[..., None] * b) @ w, dtype=np.float64)


def ser_awgn(modulation: str, esno: ArrayLike) -> Array:
    """Exact symbol error rate on AWGN at linear Es/N0 ``esno``.

    BPSK: Ps = Q(sqrt(2γ)).  Square M-QAM (QPSK included): with the per-dimension PAM error
    P = 2(1 - 1/sqrt M) Q(sqrt(3γ/(M-1))), Ps = 1 - (1 - P)² = 2P - P².

    Shapes as in :func:`ber_awgn`.
    """
    key = check_modulation(modulation)
    c, a = _pam_ser_term(key)
    p = c * qfunc(a * np.sqrt(_as_snr(esno)))
    return p if key == "bpsk" else np.asarray(2.0 * p - p * p, dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Optimizer bounds and approximations (docs/method.md §4.4)
# --------------------------------------------------------------------------------------------


def bound_coefficients(modulation: str) -> tuple[float, float]:
    """(A, B) of the exponential BER bound Pb <= A·exp(-B·γ), γ = linear Es/N0.

    * BPSK (Chernoff, Q(x) <= ½ exp(-x²/2)): (0.5, 1).  Valid for every γ >= 0.
    * QPSK (Chernoff on Q(sqrt γ)): (0.5, 1/2).  Valid for every γ >= 0.
    * Square M-QAM, M >= 16 (Goldsmith, *Wireless Communications*, 2005, eq. 6.80):
      (0.2, 1.5/(M-1)).  Stated for M >= 4 and 0-30 dB, but against the exact Gray BER it
      holds only above a threshold Es/N0 (below it the exact BER is larger, e.g. 0.29 vs 0.18
      for 16-QAM at 0 dB): γ >= 6.79 dB for 16-QAM, >= 9.58 dB for 64-QAM, >= 13.08 dB for
      256-QAM.  Above the threshold it holds for every γ, since the exact BER decays like
      exp(-Bγ)/sqrt(γ).  ``tests/channels/test_theory.py`` checks it from there to 60 dB.

    The bound is convex and decreasing in γ, which is what the optimizer needs.

    A coded entry (``"16qam-r1/2"``, :mod:`channels.coded`) gets the exponential fit of its
    measured post-decoding BER (:func:`channels.coded_table.exponential_fit`), not a bound.
    """
    if isinstance(modulation, str) and "-r" in modulation:
        from channels.coded_table import exponential_fit

        return exponential_fit(modulation)
    key = check_modulation(modulation)
    if key == "bpsk":
        return 0.5, 1.0
    if key == "qpsk":
        return 0.5, 0.5
    return 0.2, 1.5 / (2 ** bits_per_symbol(key) - 1)


def ber_bound(modulation: str, esno: ArrayLike) -> Array:
    """Exponential BER bound A·exp(-B·esno) with (A, B) = :func:`bound_coefficients`.

    See :func:`bound_coefficients` for where it really upper-bounds :func:`ber_awgn`.
    Shapes as in :func:`ber_awgn`.
    """
    a, b = bound_coefficients(modulation)
    return np.asarray(a * np.exp(-b * _as_snr(esno)), dtype=np.float64)


def ber_nearest_neighbour(modulation: str, esno: ArrayLike) -> Array:
    """Nearest-neighbour BER approximation of docs/method.md §4.4.

    Square M-QAM: Pb ≈ (4/log2 M)(1 - 1/sqrt M) Q(sqrt(3γ/(M-1))) (the leading term of the
    exact sum; tight at high SNR, slightly low at low SNR).  BPSK and QPSK: their exact forms,
    Q(sqrt(2γ)) and Q(sqrt γ).  Shapes as in :func:`ber_awgn`.
    """
    key = check_modulation(modulation)
    g = _as_snr(esno)
    if key == "bpsk":
        return qfunc(np.sqrt(2.0 * g))
    m = 2 ** bits_per_symbol(key)
    scale = 4.0 / np.log2(m) * (1.0 - 1.0 / np.sqrt(m))
    return np.asarray(scale * qfunc(np.sqrt(3.0 * g / (m - 1))), dtype=np.float64)


# --------------------------------------------------------------------------------------------
# Fading averages
# --------------------------------------------------------------------------------------------


def _rayleigh_q(b: Array, mean_snr: Array) -> Array:
    """E[Q(b sqrt γ)] for γ ~ Exp(mean γ̄):  ½(1 - sqrt(c/(1+c))), c = b² γ̄ / 2.

    Written as ½ (1/(1+c)) / (1 + r), r = sqrt(c/(1+c)), to avoid cancellation at high SNR.
    Broadcasts ``b`` against ``mean_snr``.
    """
    c = 0.5 * b * b * mean_snr
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(np.isinf(c), 1.0, np.sqrt(c / (1.0 + c)))
        return 0.5 / (1.0 + c) / (1.0 + r)


def _rayleigh_q2(b: float, mean_snr: Array) -> Array:
    """E[Q²(b sqrt γ)] for γ ~ Exp(mean γ̄), via Craig's Q² = (1/π)∫_0^{π/4} e^{-x²/(2 sin²θ)} dθ.

    Closed form (Simon & Alouini): ¼[1 - (4/π) r arctan(1/r)], r = sqrt(c/(1+c)), c = b²γ̄/2;
    rewritten with arctan(1/r) = π/4 + arctan((1/r - 1)/(1/r + 1)) as
    (1 - r)/4 - (r/π) arctan(u), u = (1/r - 1)/(1/r + 1), both terms free of cancellation.
    """
    c = 0.5 * b * b * mean_snr
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(np.isinf(c), 1.0, np.sqrt(c / (1.0 + c)))
        t = 1.0 / r  # sqrt((1+c)/c); t - 1 = (1/c)/(t + 1)
        u = np.where(np.isinf(c), 0.0, (1.0 / c) / (t + 1.0) / (t + 1.0))
        out = 0.25 / (1.0 + c) / (1.0 + r) - r / np.pi * np.arctan(u)
    return np.where(c == 0, 0.25, out)


def ber_rayleigh(modulation: str, esno: ArrayLike) -> Array:
    """Exact BER averaged over flat Rayleigh fading, ``esno`` = average Es/N0 γ̄ (linear).

    Each term w_i Q(b_i sqrt γ) of :func:`ber_awgn` averages over γ ~ Exp(γ̄) to
    w_i · ½(1 - sqrt(c_i/(1+c_i))), c_i = b_i² γ̄ / 2.  BPSK: ½(1 - sqrt(γ̄/(1+γ̄))).
    Shapes as in :func:`ber_awgn`.
    """
    w, b = ber_terms(check_modulation(modulation))
    g = _as_snr(esno)
    return np.asarray(_rayleigh_q(b, g[..., None]) @ w, dtype=np.float64)


def ser_rayleigh(modulation: str, esno: ArrayLike) -> Array:
    """Exact SER averaged over flat Rayleigh fading, ``esno`` = average Es/N0 (linear).

    With P = c·Q(a sqrt γ) the PAM error of :func:`ser_awgn`: BPSK E[P]; square M-QAM
    E[2P - P²] = 2c·E[Q] - c²·E[Q²], E[Q] and E[Q²] in closed form (see :func:`_rayleigh_q`,
    :func:`_rayleigh_q2`).  Shapes as in :func:`ber_awgn`.
    """
    key = check_modulation(modulation)
    c, a = _pam_ser_term(key)
    g = _as_snr(esno)
    eq = c * _rayleigh_q(np.float64(a), g)
    if key == "bpsk":
        return np.asarray(eq, dtype=np.float64)
    return np.asarray(2.0 * eq - c * c * _rayleigh_q2(a, g), dtype=np.float64)


def _rician_mgf(s: Array | float, mean_snr: float, k: float) -> Array:
    """Rician-fading SNR MGF E[exp(sγ)] = (1+K)/(1+K-sγ̄) · exp(K s γ̄ / (1+K-sγ̄)), s <= 0."""
    den = 1.0 + k - s * mean_snr
    return (1.0 + k) / den * np.exp(k * s * mean_snr / den)


def _rician_average(
    w: Array, b: Array, mean_snr: Array, k: float, upper: float = np.pi / 2
) -> Array:
    """E[Σ_i w_i Q^n(b_i sqrt γ)] over Rician γ, n = 1 (upper = π/2) or n = 2 (upper = π/4).

    Craig's forms Q(x) = (1/π)∫_0^{π/2} exp(-x²/(2 sin²θ)) dθ and
    Q²(x) = (1/π)∫_0^{π/4} exp(-x²/(2 sin²θ)) dθ turn the average into
    (1/π)∫_0^{upper} Σ_i w_i M_γ(-b_i²/(2 sin²θ)) dθ, evaluated by adaptive quadrature
    (relative tolerance 1e-12) per element of ``mean_snr``.
    """
    flat = mean_snr.ravel()
    out = np.empty_like(flat)
    half_b2 = 0.5 * b * b
    for n, g in enumerate(flat):
        if g == 0:
            out[n] = float(np.sum(w)) * (0.5 if upper > np.pi / 4 else 0.25)
            continue
        if np.isinf(g):
            out[n] = 0.0
            continue

        def integrand(theta: float, g: float = g) -> float:
            return float(w @ _rician_mgf(-half_b2 / np.sin(theta) ** 2, g, k))

        val, _ = integrate.quad(integrand, 0.0, upper, epsabs=0.0, epsrel=_QUAD_EPSREL, limit=200)
        out[n] = val / np.pi
    return out.reshape(mean_snr.shape)


def ber_rician(modulation: str, esno: ArrayLike, k_factor: float) -> Array:
    """Exact BER averaged over flat Rician fading with K-factor ``k_factor`` (linear, >= 0).

    ``esno`` is the average Es/N0 γ̄ (E|h|² = 1: LOS power K/(1+K), scattered 1/(1+K)).
    Each term Q(b_i sqrt γ) of :func:`ber_awgn` averages to the MGF (Craig-form) integral
    (1/π)∫_0^{π/2} M_γ(-b_i²/(2 sin²θ)) dθ with
    M_γ(s) = (1+K)/(1+K-sγ̄) · exp(K s γ̄/(1+K-sγ̄)), computed by ``scipy.integrate.quad``
    (relative accuracy ~1e-12).  K = 0 is Rayleigh; K → ∞ tends to AWGN.
    Shapes as in :func:`ber_awgn`; cost one quadrature per element of ``esno``.
    """
    w, b = ber_terms(check_modulation(modulation))
    k = check_real("k_factor", k_factor, 0, coerce=True)
    return _rician_average(w, b, _as_snr(esno), k)


def ser_rician(modulation: str, esno: ArrayLike, k_factor: float) -> Array:
    """Exact SER averaged over flat Rician fading (``esno`` = average Es/N0, linear).

    BPSK: E[Q(sqrt(2γ))].  Square M-QAM: E[2P - P²] = 2c E[Q(a sqrt γ)] - c² E[Q²(a sqrt γ)]
    with the Craig forms of Q (θ up to π/2) and Q² (θ up to π/4); see :func:`ber_rician`.
    """
    key = check_modulation(modulation)
    k = check_real("k_factor", k_factor, 0, coerce=True)
    g = _as_snr(esno)
    c, a = _pam_ser_term(key)
    b = np.array([a])
    eq = _rician_average(np.array([c]), b, g, k)
    if key == "bpsk":
        return eq
    eq2 = _rician_average(np.array([c * c]), b, g, k, upper=np.pi / 4)
    return np.asarray(2.0 * eq - eq2, dtype=np.float64)


def _dispatch(kind: str, modulation: str, channel: str, esno: ArrayLike, k_factor: float) -> Array:
    key = check_name("channel", channel, CHANNELS)
    k = check_real("k_factor", k_factor, 0, coerce=True)
    if key != "rician" and k != 0.0:
        raise ConfigError(
            f"k_factor: {k_factor!r} is invalid for channel {key!r}; allowed: 0 "
            "(a K-factor needs channel 'rician')"
        )
    if key == "awgn":
        return (ber_awgn if kind == "ber" else ser_awgn)(modulation, esno)
    if key == "rayleigh":
        return (ber_rayleigh if kind == "ber" else ser_rayleigh)(modulation, esno)
    return (ber_rician if kind == "ber" else ser_rician)(modulation, esno, k)


def ber_theory(modulation: str, channel: str, esno: ArrayLike, k_factor: float = 0.0) -> Array:
    """Exact BER for ``channel`` in {"awgn", "rayleigh", "rician"}.

    ``esno`` is linear Es/N0 (the average one for fading).  ``k_factor`` is used only by
    "rician"; a non-zero K with another channel raises ConfigError.  Shapes as in
    :func:`ber_awgn`.
    """
    return _dispatch("ber", modulation, channel, esno, k_factor)


def ser_theory(modulation: str, channel: str, esno: ArrayLike, k_factor: float = 0.0) -> Array:
    """Exact SER for ``channel`` in {"awgn", "rayleigh", "rician"}; as :func:`ber_theory`."""
    return _dispatch("ser", modulation, channel, esno, k_factor)


# --------------------------------------------------------------------------------------------
# Unit conversions
# --------------------------------------------------------------------------------------------


def ebno_to_esno(ebno: ArrayLike, modulation: str) -> Array:
    """Es/N0 = β · Eb/N0 (both linear), β = bits per symbol of ``modulation``."""
    beta = bits_per_symbol(modulation)
    return np.asarray(beta * _as_snr(ebno, "ebno"), dtype=np.float64)


def esno_to_ebno(esno: ArrayLike, modulation: str) -> Array:
    """Eb/N0 = Es/N0 / β (both linear), β = bits per symbol of ``modulation``."""
    beta = bits_per_symbol(modulation)
    return np.asarray(_as_snr(esno) / beta, dtype=np.float64)


def db_to_linear(db: ArrayLike) -> Array:
    """10^(dB/10); -inf dB gives 0.  NaN raises ConfigError.  Same shape as ``db``."""
    arr = np.asarray(db, dtype=np.float64)
    if np.any(np.isnan(arr)):
        raise fail("db", db, "real numbers (not NaN)")
    return np.asarray(10.0 ** (arr / 10.0), dtype=np.float64)


def linear_to_db(linear: ArrayLike) -> Array:
    """10·log10(linear) for linear >= 0 (0 gives -inf).  Same shape as ``linear``."""
    arr = _as_snr(linear, "linear")
    with np.errstate(divide="ignore"):
        return np.asarray(10.0 * np.log10(arr), dtype=np.float64)
