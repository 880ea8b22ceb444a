"""The BER Monte Carlo engine against closed-form theory, its stream invariances and the
honesty of its intervals."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from scipy import optimize, stats

from channels.errors import ConfigError
from channels.montecarlo import (
    block_interval,
    check_ber_arguments,
    simulate_ber,
    wilson_interval,
)
from channels.names import MODULATION_NAMES
from channels.theory import ber_theory

CHANNELS = [("awgn", 0.0), ("rayleigh", 0.0), ("rician", 3.0)]
TARGETS = (1e-1, 1e-2, 1e-3)
# 99% family-wise over every (modulation, channel, SNR) check (Bonferroni): with 45 checks a
# per-check 99% level would fail somewhere in about a third of seed choices by chance alone.
N_CHECKS = len(MODULATION_NAMES) * len(CHANNELS) * len(TARGETS)
CONFIDENCE = 1 - 0.01 / N_CHECKS


def snr_for_ber(modulation: str, channel: str, k: float, target: float) -> float:
    """Es/N0 in dB at which the closed-form BER equals ``target``."""

    def log_ratio(db: float) -> float:
        ber = float(ber_theory(modulation, channel, 10 ** (db / 10), k_factor=k))
        return np.log(max(ber, 1e-300) / target)

    return optimize.brentq(log_ratio, -20.0, 80.0, xtol=1e-6)


@pytest.mark.parametrize("modulation", MODULATION_NAMES)
@pytest.mark.parametrize(("channel", "k"), CHANNELS)
def test_ber_inside_99_percent_interval_around_theory(
    modulation: str, channel: str, k: float
) -> None:
    for i, target in enumerate(TARGETS):
        snr = round(snr_for_ber(modulation, channel, k, target), 3)
        r = simulate_ber(modulation, channel, snr, rician_k=k, min_errors=3000, max_bits=1e8,
                         seed=100 + i, confidence=CONFIDENCE)  # fmt: skip
        assert r.errors >= 3000
        assert r.ci_low <= r.theory_ber <= r.ci_high, r


def test_result_is_independent_of_batch_size_and_thread_count() -> None:
    args = ("16qam", "rayleigh", 8.0)
    kwargs = dict(coherence=3, min_errors=5000, max_bits=1e7, seed=9)
    reference = simulate_ber(*args, **kwargs, batch_trials=1)
    threads = numba.get_num_threads()
    try:
        for n_threads in {1, threads}:
            numba.set_num_threads(n_threads)
            for batch in (2, 7, 64):
                r = simulate_ber(*args, **kwargs, batch_trials=batch)
                assert (r.errors, r.bits, r.ci_low, r.ci_high) == (
                    reference.errors, reference.bits, reference.ci_low, reference.ci_high,
                )  # fmt: skip
    finally:
        numba.set_num_threads(threads)


def test_point_stream_does_not_depend_on_other_points_and_seed_matters() -> None:
    a = simulate_ber("qpsk", "awgn", 3.0, min_errors=500, seed=1)
    b = simulate_ber("qpsk", "awgn", 3.0, min_errors=500, seed=1)
    c = simulate_ber("qpsk", "awgn", 3.0, min_errors=500, seed=2)
    assert (a.errors, a.bits) == (b.errors, b.bits)
    assert a.point == b.point
    assert (a.errors, a.bits) != (c.errors, c.bits)
    d = simulate_ber("qpsk", "awgn", 3.0, min_errors=500, seed=1, point=a.point + 1)
    assert (d.errors, d.bits) != (a.errors, a.bits)


def test_stop_rule_at_trial_granularity() -> None:
    r = simulate_ber("bpsk", "awgn", 30.0, min_errors=10, max_bits=100_000, seed=3)
    trial_bits = 4096
    assert r.errors == 0 and r.ber == 0.0
    assert 100_000 <= r.bits < 100_000 + trial_bits  # stopped by max_bits
    assert r.ci_low == 0.0 and r.ci_high > 0
    r = simulate_ber("bpsk", "awgn", 0.0, min_errors=2000, max_bits=1e9, seed=3)
    assert 2000 <= r.errors and r.bits < 2000 / 0.05  # stopped by min_errors long before


def test_block_fading_interval_is_honest() -> None:
    """Coverage of 95% intervals over independent seeds, with strongly correlated errors."""
    theory = float(ber_theory("qpsk", "rayleigh", 10.0))
    runs = [simulate_ber("qpsk", "rayleigh", 10.0, coherence=256, min_errors=200,
                         max_bits=1e7, seed=s) for s in range(150)]  # fmt: skip
    covered = sum(r.ci_low <= theory <= r.ci_high for r in runs)
    # a valid 95% interval covers in ~142 of 150; the plain bit-count Wilson would cover far less
    assert stats.binomtest(covered, 150, 0.95).pvalue > 0.01, covered
    naive = sum(lo <= theory <= hi for lo, hi in (wilson_interval(r.errors, r.bits) for r in runs))
    assert naive < covered - 30
    assert all(r.ci_high - r.ci_low > 0 for r in runs)


def test_wilson_matches_scipy_and_block_interval_reduces_to_it() -> None:
    for k, n in [(0, 50), (3, 50), (480, 1000), (999, 1000)]:
        ours = wilson_interval(k, n, 0.95)
        ref = stats.binomtest(k, n).proportion_ci(0.95, method="wilson")
        assert ours == pytest.approx((ref.low, ref.high), rel=1e-9, abs=1e-12)
    # independent Bernoulli blocks of one bit: e_b in {0, 1}, sum of squares = errors
    low, high = block_interval(300, 300, 1000, 1, 0.95)
    ref = stats.binomtest(300, 1000).proportion_ci(0.95, method="wilson")
    assert (low, high) == pytest.approx((ref.low, ref.high), rel=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(modulation="8psk"), "modulation"),
        (dict(channel="nakagami"), "channel"),
        (dict(snr_db=float("nan")), "snr_db"),
        (dict(min_errors=0), "min_errors"),
        (dict(min_errors=10, max_bits=5), "min_errors"),
        (dict(max_bits=float("inf")), "max_bits"),
        (dict(coherence=2.5), "coherence"),
        (dict(seed=-1), "seed"),
        (dict(channel="rician", rician_k=-2.0), "rician_k"),
        (dict(channel="awgn", rician_k=2.0), "rician_k"),
        (dict(csi_error_var=-1.0), "csi_error_var"),
        (dict(confidence=1.0), "confidence"),
        (dict(backend="tpu"), "backend"),
    ],
)
def test_invalid_arguments(kwargs: dict, field: str) -> None:
    base = dict(modulation="qpsk", channel="awgn", snr_db=1.0)
    with pytest.raises(ConfigError, match=f"^{field}:"):
        simulate_ber(**{**base, **kwargs})


COUNTS = dict(
    rician_k=0.0, coherence=1, csi_error_var=0.0, min_errors=10, max_bits=1e6, seed=0,
    confidence=0.95, backend="cpu",
)  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value", "text"),
    [
        ("min_errors", 0, "min_errors: 0 is invalid; allowed: an integer >= 1"),
        ("coherence", 2.5, "coherence: 2.5 is invalid; allowed: an integer >= 1"),
        ("max_bits", float("inf"), "max_bits: inf is invalid; allowed: an integer >= 1"),
        ("max_bits", "1000", "max_bits: '1000' is invalid; allowed: an integer >= 1"),
        ("min_errors", True, "min_errors: True is invalid; allowed: an integer >= 1"),
        ("seed", -1, "seed: -1 is invalid; allowed: an integer >= 0"),
        ("seed", 10**400, f"seed: {10**400!r} is invalid; allowed: 0 <= seed < 2**64"),
    ],
)
def test_count_arguments_are_integers(field: str, value: object, text: str) -> None:
    """Whole numbers of any numeric type are counts; text, bools and fractions are not."""
    with pytest.raises(ConfigError) as info:
        check_ber_arguments("qpsk", "awgn", 1.0, **{**COUNTS, field: value})
    assert str(info.value) == text


def test_whole_floats_are_counts() -> None:
    check_ber_arguments("qpsk", "awgn", 1.0, **{**COUNTS, "coherence": 2.0, "max_bits": 1e12})


def test_imperfect_csi_degrades_and_reports_no_theory() -> None:
    perfect = simulate_ber("16qam", "rayleigh", 15.0, min_errors=3000, seed=4)
    noisy = simulate_ber("16qam", "rayleigh", 15.0, csi_error_var=0.05, min_errors=3000, seed=4)
    assert noisy.theory_ber is None
    assert noisy.ci_low > perfect.ci_high
