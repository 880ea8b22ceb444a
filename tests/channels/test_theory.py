"""Tests of channels.theory against references we did not write.

* Exact AWGN BER/SER against a brute-force computation over Sionna's own constellations: for
  every sent point and every decision region, the exact Gaussian probability (scipy's ndtr),
  weighted by the Hamming distance of Sionna's labels.  Nothing of the Gray/Cho-Yoon structure
  is assumed, so this also proves the labelling assumption (Sionna QAM = Gray PAM per axis).
* Fading averages against direct numerical integration over the SNR / amplitude pdfs
  (scipy.integrate.quad with scipy.stats.rice).
* Textbook values, limits, bounds, input validation and shapes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate, special, stats

from channels import theory
from channels.errors import ConfigError
from channels.names import BITS_PER_SYMBOL, MODULATION_NAMES

ESNO_DB = np.array([-5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 25.0])
QAM_NAMES = [m for m in MODULATION_NAMES if m.endswith("qam")]


def lin(db: np.ndarray | float) -> np.ndarray:
    return 10.0 ** (np.asarray(db, dtype=float) / 10.0)


# --------------------------------------------------------------------------------------------
# Brute force over Sionna's constellations
# --------------------------------------------------------------------------------------------


def _sionna_grid(modulation: str) -> tuple[np.ndarray, float]:
    """Sionna's points as an exact integer grid (complex, odd integers) and the unit d.

    Sionna's (complex64) points equal d * grid with d chosen for unit average energy; the
    float64 geometry used below is rebuilt from the integers, so float32 rounding does not
    limit the accuracy of the reference.
    """
    mapping = pytest.importorskip("sionna.phy.mapping")
    beta = BITS_PER_SYMBOL[modulation]
    kind, bits = ("pam", 1) if modulation == "bpsk" else ("qam", beta)
    pts = mapping.Constellation(kind, bits).points.numpy().astype(np.complex128)
    assert pts.shape == (2**beta,)
    half_dmin = np.min(np.abs(pts[:, None] - pts[None, :])[~np.eye(pts.size, dtype=bool)]) / 2
    grid = np.round(pts.real / half_dmin) + 1j * np.round(pts.imag / half_dmin)
    d = 1.0 / np.sqrt(np.mean(np.abs(grid) ** 2))  # unit average symbol energy
    np.testing.assert_allclose(pts, d * grid, atol=1e-6)
    return grid, float(d)


def _interval_prob(x: np.ndarray, lo: np.ndarray, hi: np.ndarray, s: float) -> np.ndarray:
    """P(lo < x + N(0, s²) < hi), computed from whichever tails keep full relative precision."""
    za, zb = (lo - x) / s, (hi - x) / s
    above = special.ndtr(-za) - special.ndtr(-zb)  # region right of the mean
    below = special.ndtr(zb) - special.ndtr(za)  # region left of the mean
    inside = special.ndtr(za) + special.ndtr(-zb)  # 1 - P, region contains the mean
    return np.where(za >= 0, above, np.where(zb <= 0, below, 1.0 - inside))


def _axis_transitions(coord: np.ndarray, s: float) -> np.ndarray:
    """(M, M) matrix P(detected coordinate of point j | sent coordinate of point i), one axis."""
    levels = np.unique(coord)
    mids = (levels[1:] + levels[:-1]) / 2
    lo = np.concatenate([[-np.inf], mids])
    hi = np.concatenate([mids, [np.inf]])
    idx = np.searchsorted(levels, coord)
    table = _interval_prob(levels[:, None], lo[None, :], hi[None, :], s)
    return table[idx[:, None], idx[None, :]]


def brute_force(modulation: str, esno: float) -> tuple[float, float]:
    """(BER, SER) of minimum-distance detection of Sionna's constellation on AWGN."""
    grid, d = _sionna_grid(modulation)
    m = grid.size
    s = np.sqrt(1.0 / (2.0 * esno)) / d  # per-axis noise std (N0/2 each) in grid units
    trans = _axis_transitions(grid.real, s)
    if modulation != "bpsk":  # BPSK is real: the Q-axis noise is discarded
        trans = trans * _axis_transitions(grid.imag, s)
    labels = np.arange(m)
    hamming = np.bitwise_count(labels[:, None] ^ labels[None, :])
    ber = np.sum(trans * hamming) / (m * np.log2(m))
    ser = np.sum(trans[hamming > 0]) / m
    return float(ber), float(ser)


@pytest.mark.sionna
@pytest.mark.parametrize("modulation", QAM_NAMES)
def test_sionna_qam_is_gray_per_axis(modulation: str) -> None:
    """Horizontally or vertically adjacent Sionna QAM points differ in exactly one bit."""
    grid, _ = _sionna_grid(modulation)
    labels = np.arange(grid.size)
    dist = np.abs(grid[:, None] - grid[None, :])
    adjacent = np.isclose(dist, 2.0)
    assert np.all(np.bitwise_count(labels[:, None] ^ labels[None, :])[adjacent] == 1)


@pytest.mark.sionna
@pytest.mark.parametrize("modulation", MODULATION_NAMES)
def test_awgn_exact_rates_match_brute_force(modulation: str) -> None:
    esno = lin(ESNO_DB)
    ref = np.array([brute_force(modulation, g) for g in esno])
    np.testing.assert_allclose(theory.ber_awgn(modulation, esno), ref[:, 0], rtol=1e-10, atol=0)
    np.testing.assert_allclose(theory.ser_awgn(modulation, esno), ref[:, 1], rtol=1e-10, atol=0)


# --------------------------------------------------------------------------------------------
# Textbook values and AWGN limits
# --------------------------------------------------------------------------------------------


def test_qfunc_known_values() -> None:
    np.testing.assert_allclose(
        theory.qfunc([0.0, 1.0, 3.0, 6.0]),
        [0.5, 0.15865525393145707, 1.3498980316301035e-3, 9.865876450376946e-10],
        rtol=1e-12,
    )
    assert theory.qfunc(30.0) == pytest.approx(4.906713927148187e-198, rel=1e-12)  # no 1 - Phi


def test_bpsk_textbook_point() -> None:
    """BPSK needs Eb/N0 ≈ 9.6 dB for BER 1e-5."""
    ber = theory.ber_awgn("bpsk", theory.ebno_to_esno(lin(9.6), "bpsk"))
    assert 0.9e-5 < ber < 1.1e-5


def test_qpsk_ber_equals_bpsk_ber_at_same_ebno() -> None:
    ebno = lin(np.linspace(-5, 15, 21))
    np.testing.assert_allclose(
        theory.ber_awgn("qpsk", theory.ebno_to_esno(ebno, "qpsk")),
        theory.ber_awgn("bpsk", theory.ebno_to_esno(ebno, "bpsk")),
        rtol=1e-13,
    )


@pytest.mark.parametrize("modulation", MODULATION_NAMES)
def test_zero_snr_limits(modulation: str) -> None:
    """At Es/N0 = 0 half the bits are wrong and only 1/M of the symbols are right (corner)."""
    m = 2 ** BITS_PER_SYMBOL[modulation]
    assert theory.ber_awgn(modulation, 0.0) == pytest.approx(0.5, rel=1e-14)
    assert theory.ser_awgn(modulation, 0.0) == pytest.approx(1 - 1 / m, rel=1e-14)
    assert theory.ber_awgn(modulation, np.inf) == 0.0


@pytest.mark.parametrize("modulation", MODULATION_NAMES)
def test_nearest_neighbour_approximation(modulation: str) -> None:
    esno = lin(np.linspace(0, 40, 41))
    exact = theory.ber_awgn(modulation, esno)
    approx = theory.ber_nearest_neighbour(modulation, esno)
    if modulation in ("bpsk", "qpsk"):
        np.testing.assert_allclose(approx, exact, rtol=1e-12)
    else:  # the leading term: low by < 50 % on 0-40 dB, and tight once BER < 1e-6
        ok = exact > 1e-300
        ratio = approx[ok] / exact[ok]
        assert np.all(ratio > 0.5) and np.all(ratio <= 1 + 1e-12)
        tail = ok & (exact < 1e-6)
        assert tail.any() and np.all(np.abs(approx[tail] / exact[tail] - 1) < 1e-6)


# --------------------------------------------------------------------------------------------
# Fading averages
# --------------------------------------------------------------------------------------------


def _average_over(rate, pdf, upper: float = np.inf) -> float:
    val, _ = integrate.quad(
        lambda x: rate(x) * pdf(x), 0.0, upper, epsabs=0, epsrel=1e-12, limit=500
    )
    return val


@pytest.mark.parametrize("modulation", MODULATION_NAMES)
def test_rayleigh_closed_form_matches_quadrature(modulation: str) -> None:
    for mean in lin([-5.0, 5.0, 15.0, 30.0]):

        def pdf(g: float, mean: float = mean) -> float:
            return np.exp(-g / mean) / mean

        for closed, awgn in (
            (theory.ber_rayleigh, theory.ber_awgn),
            (theory.ser_rayleigh, theory.ser_awgn),
        ):
            ref = _average_over(lambda g, awgn=awgn: float(awgn(modulation, g)), pdf)
            assert float(closed(modulation, mean)) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("modulation", MODULATION_NAMES)
def test_rician_k0_equals_rayleigh(modulation: str) -> None:
    esno = lin(ESNO_DB)
    np.testing.assert_allclose(
        theory.ber_rician(modulation, esno, 0.0), theory.ber_rayleigh(modulation, esno), rtol=1e-10
    )
    np.testing.assert_allclose(
        theory.ser_rician(modulation, esno, 0.0), theory.ser_rayleigh(modulation, esno), rtol=1e-10
    )


@pytest.mark.parametrize("modulation", MODULATION_NAMES)
def test_rician_large_k_tends_to_awgn(modulation: str) -> None:
    esno = lin([0.0, 5.0, 10.0])
    gaps = [
        np.max(
            np.abs(theory.ber_rician(modulation, esno, k) / theory.ber_awgn(modulation, esno) - 1)
        )
        for k in (1e2, 1e4, 1e6)
    ]
    assert gaps[0] > 50 * gaps[1] > 2500 * gaps[2] and gaps[2] < 1e-3  # gap ~ 1/K
    ser_gap = theory.ser_rician(modulation, esno, 1e6) / theory.ser_awgn(modulation, esno) - 1
    assert np.max(np.abs(ser_gap)) < 1e-3


@pytest.mark.parametrize("modulation", MODULATION_NAMES)
def test_rician_matches_quadrature_over_rice_pdf(modulation: str) -> None:
    """K = 3: |h| ~ Rice with LOS power K/(K+1) and scattered power 1/(K+1), E|h|² = 1."""
    k = 3.0
    sigma = np.sqrt(1.0 / (2.0 * (1.0 + k)))
    amplitude = stats.rice(b=np.sqrt(k / (1.0 + k)) / sigma, scale=sigma)
    for mean in lin([0.0, 10.0, 20.0]):
        for fading, awgn in (
            (theory.ber_rician, theory.ber_awgn),
            (theory.ser_rician, theory.ser_awgn),
        ):
            ref = _average_over(
                lambda r, mean=mean, awgn=awgn: float(awgn(modulation, mean * r * r)),
                amplitude.pdf,
                upper=6.0,  # P(|h| > 6) < 1e-40
            )
            assert float(fading(modulation, mean, k)) == pytest.approx(ref, rel=1e-8)


@pytest.mark.parametrize("channel", theory.CHANNELS)
def test_dispatchers(channel: str) -> None:
    esno = lin(ESNO_DB)
    k = 2.0 if channel == "rician" else 0.0
    if channel == "awgn":
        ber, ser = theory.ber_awgn("16qam", esno), theory.ser_awgn("16qam", esno)
    elif channel == "rayleigh":
        ber, ser = theory.ber_rayleigh("16qam", esno), theory.ser_rayleigh("16qam", esno)
    else:
        ber, ser = theory.ber_rician("16qam", esno, k), theory.ser_rician("16qam", esno, k)
    np.testing.assert_array_equal(theory.ber_theory("16QAM", channel.upper(), esno, k), ber)
    np.testing.assert_array_equal(theory.ser_theory("16qam", channel, esno, k_factor=k), ser)


# --------------------------------------------------------------------------------------------
# Bounds
# --------------------------------------------------------------------------------------------

# Lowest Es/N0 (dB) from which Goldsmith's 0.2 exp(-1.5 γ/(M-1)) bounds the exact Gray BER.
BOUND_FROM_DB = {"bpsk": 0.0, "qpsk": 0.0, "16qam": 6.79, "64qam": 9.58, "256qam": 13.08}


def test_bound_coefficients() -> None:
    assert theory.bound_coefficients("bpsk") == (0.5, 1.0)
    assert theory.bound_coefficients("qpsk") == (0.5, 0.5)
    for name in QAM_NAMES:
        a, b = theory.bound_coefficients(name)
        assert a == 0.2 and b == pytest.approx(1.5 / (2 ** BITS_PER_SYMBOL[name] - 1))


@pytest.mark.parametrize("modulation", MODULATION_NAMES)
def test_bound_holds_where_claimed(modulation: str) -> None:
    esno = lin(np.linspace(BOUND_FROM_DB[modulation], 60.0, 6001))
    if modulation in ("bpsk", "qpsk"):  # Chernoff: every γ >= 0, equality at γ = 0 for BPSK
        esno = np.concatenate([[0.0], lin(np.linspace(-30, 0, 301)), esno])
    bound, exact = theory.ber_bound(modulation, esno), theory.ber_awgn(modulation, esno)
    assert np.all(bound >= exact * (1 - 1e-14))


@pytest.mark.parametrize("modulation", QAM_NAMES)
def test_goldsmith_bound_fails_at_low_snr(modulation: str) -> None:
    """Documented limitation: below the thresholds the 'bound' is under the exact BER."""
    esno = lin([0.0, BOUND_FROM_DB[modulation] - 0.05])
    assert np.all(theory.ber_bound(modulation, esno) < theory.ber_awgn(modulation, esno))


# --------------------------------------------------------------------------------------------
# Monotonicity (hypothesis)
# --------------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    modulation=st.sampled_from(MODULATION_NAMES),
    channel=st.sampled_from(theory.CHANNELS),
    db=st.floats(-20.0, 40.0),
    step=st.floats(0.05, 10.0),
)
def test_rates_decrease_with_snr(modulation: str, channel: str, db: float, step: float) -> None:
    k = 4.0 if channel == "rician" else 0.0
    lo, hi = lin(db), lin(db + step)
    for fn in (theory.ber_theory, theory.ser_theory):
        a, b = fn(modulation, channel, lo, k), fn(modulation, channel, hi, k)
        assert b < a or (a == 0.0 and b == 0.0)
    bound = theory.ber_bound(modulation, [lo, hi])
    assert bound[1] < bound[0] or bound[0] == 0.0


# --------------------------------------------------------------------------------------------
# Shapes, conversions, validation
# --------------------------------------------------------------------------------------------

RATE_FUNCTIONS = [
    lambda e: theory.ber_awgn("64qam", e),
    lambda e: theory.ser_awgn("64qam", e),
    lambda e: theory.ber_bound("64qam", e),
    lambda e: theory.ber_nearest_neighbour("64qam", e),
    lambda e: theory.ber_rayleigh("64qam", e),
    lambda e: theory.ser_rayleigh("64qam", e),
    lambda e: theory.ber_rician("64qam", e, 2.0),
    lambda e: theory.ser_rician("64qam", e, 2.0),
    lambda e: theory.ber_rician("bpsk", e, 2.0),
]


@pytest.mark.parametrize("fn", RATE_FUNCTIONS)
def test_shapes_and_dtype(fn) -> None:
    scalar = fn(3.0)
    assert isinstance(scalar, np.ndarray) and scalar.shape == () and scalar.dtype == np.float64
    grid = lin(np.arange(12.0).reshape(3, 4))
    out = fn(grid)
    assert out.shape == (3, 4) and out.dtype == np.float64
    np.testing.assert_allclose(out[1, 2], fn(grid[1, 2]), rtol=1e-14)
    assert fn([1.0, 2.0]).shape == (2,)


def test_conversions() -> None:
    db = np.array([-10.0, 0.0, 3.0, 20.0])
    np.testing.assert_allclose(theory.linear_to_db(theory.db_to_linear(db)), db, atol=1e-12)
    assert theory.db_to_linear(10.0) == pytest.approx(10.0)
    assert theory.linear_to_db(0.0) == -np.inf
    for name, beta in BITS_PER_SYMBOL.items():
        assert theory.ebno_to_esno(2.0, name) == pytest.approx(2.0 * beta)
        assert theory.esno_to_ebno(theory.ebno_to_esno(2.0, name), name) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: theory.ber_awgn("8psk", 1.0), "modulation"),
        (lambda: theory.bound_coefficients("32qam"), "modulation"),
        (lambda: theory.ber_awgn("qpsk", -1.0), "esno"),
        (lambda: theory.ser_awgn("qpsk", [1.0, np.nan]), "esno"),
        (lambda: theory.ber_bound("qpsk", -0.5), "esno"),
        (lambda: theory.ber_rayleigh("qpsk", [[1.0, -2.0]]), "esno"),
        (lambda: theory.ber_rician("qpsk", 1.0, -1.0), "k_factor"),
        (lambda: theory.ser_rician("qpsk", 1.0, np.nan), "k_factor"),
        (lambda: theory.ber_theory("qpsk", "awgn", 1.0, k_factor=3.0), "k_factor"),
        (lambda: theory.ber_theory("qpsk", "nakagami", 1.0), "channel"),
        (lambda: theory.ser_theory("qpsk", "awgn", "high"), "esno"),
        (lambda: theory.ebno_to_esno(-1.0, "qpsk"), "ebno"),
        (lambda: theory.linear_to_db(-1.0), "linear"),
        (lambda: theory.db_to_linear(np.nan), "db"),
    ],
)
def test_invalid_input_raises_config_error(call, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert message.startswith(f"{field}: ") and "\n" not in message
