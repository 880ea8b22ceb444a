"""Coded entries (modulation + 5G LDPC rate): names, symbol counts, the shipped coded-BER table
against fresh Sionna measurements, the coded link against the table, and the one-line errors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from scipy.stats import beta as beta_dist

from channels.coded import check_entry, coded_entries, entry_symbols, parse_entry
from channels.coded_table import coded_ber, default_table, exponential_fit
from channels.errors import ConfigError

pytest.importorskip("sionna.phy.fec.ldpc")


def _interval(errors: int, trials: int, level: float = 0.999) -> tuple[float, float]:
    """Clopper-Pearson interval of a binomial proportion."""
    a = (1 - level) / 2
    lo = beta_dist.ppf(a, errors, trials - errors + 1) if errors else 0.0
    hi = beta_dist.ppf(1 - a, errors + 1, trials - errors) if errors < trials else 1.0
    return float(lo), float(hi)


def test_names_and_symbols() -> None:
    assert parse_entry("QPSK-r1/2") == ("qpsk", parse_entry("qpsk-r1/2")[1])
    assert entry_symbols(512, "qpsk-r1/2") == 512
    assert entry_symbols(512, "64qam-r5/6") == 103  # ceil(512 / 5)
    assert coded_entries(["qpsk"], ["1/2", "1"]) == ("qpsk-r1/2", "qpsk")


@pytest.mark.parametrize("bad", ["qpsk-r3/5", "8psk-r1/2", "256qam-r1/2", 3])
def test_bad_entry_is_one_line_error(bad: object) -> None:
    with pytest.raises(ConfigError) as err:
        check_entry(bad, "modulations")
    assert "\n" not in str(err.value) and str(err.value).startswith("modulations:")


def test_table_is_monotone_and_fit_decreasing() -> None:
    table = default_table()
    for entry in table.entries:
        db = np.linspace(-5, 25, 61)
        pb = coded_ber(entry, db, table)
        assert np.all(np.diff(pb) <= 0) and pb[0] > 1e-3
        a, b = exponential_fit(entry, table)
        assert a > 0 and b > 0


@pytest.mark.parametrize("entry", ["16qam-r2/3"])
def test_table_matches_fresh_sionna_blocks(entry: str) -> None:
    """A waterfall point of the shipped table against Sionna's own chain (its Mapper, Demapper,
    encoder and decoder, a new seed): both bit and block error counts within 99.9% intervals
    of each other's rates (the table's counts against the fresh measurement's interval)."""
    from channels.ldpc import measure_point

    table = default_table()
    rows = table.points[entry]
    db, be, bits, ke, blocks = next(r for r in rows if 1e-3 < r[1] / r[2] < 0.1)
    fresh = measure_point(entry, db, table.k, max_blocks=30, min_bit_errors=10**9, batch=30, seed=7)
    lo, hi = _interval(fresh.block_errors, fresh.blocks)
    t_lo, t_hi = _interval(ke, blocks)
    assert max(lo, t_lo) <= min(hi, t_hi), (fresh, ke, blocks)  # block-error intervals meet
    lo, hi = _interval(fresh.bit_errors, fresh.bits)
    t_lo, t_hi = _interval(be, bits)
    # bit errors cluster in failed blocks: widen by the mean errors per failed block
    per_block = max(1.0, be / max(ke, 1))
    assert lo / per_block <= t_hi and t_lo <= hi * per_block


def test_coded_link_matches_table() -> None:
    """The link's coded features (our mapper, log-MAP LLRs, Sionna's codec) at a waterfall point:
    the feature bit-error rate within the interval of the table's curve there."""
    from channels.coded_link import transmit_coded

    entry = "qpsk-r1/2"
    table = default_table()
    db, be, bits, ke, blocks = next(r for r in table.points[entry] if 1e-3 < r[1] / r[2] < 0.1)
    rng = np.random.default_rng(3)
    b, n, length, q = 6, 5, 64, 8  # k = 512, the table's block length
    codes = rng.integers(0, 256, size=(b, n, length))
    gain = 10 ** (db / 10)  # |h|^2 p / no = Es/N0 with no = 1
    h = np.full((b, n), np.exp(0.3j))
    power = np.full((b, n), gain)
    out = transmit_coded(codes, [[entry] * n] * b, h, power, 1.0, q, seed=5)
    errors = int(out.bit_errors.sum())
    failed = int((out.bit_errors > 0).sum())
    lo, hi = _interval(failed, b * n)
    t_lo, t_hi = _interval(ke, blocks)
    assert max(lo, t_lo) <= min(hi, t_hi), (failed, ke, blocks)
    assert errors == int(np.unpackbits((out.codes_hat ^ codes).astype(np.uint8)).sum())


def test_long_feature_is_segmented_into_code_blocks() -> None:
    """A feature longer than one 5G block (L Q = 17,600 > 8,448 bits) is cut into 3 code blocks
    of 5,867/5,867/5,866 bits, each encoded on its own: its symbol count is the blocks' sum, and
    at a high SNR every block decodes (the codes come back exactly), while at a very low SNR
    errors appear (the noise reaches the decoder)."""
    from channels.coded import block_sizes
    from channels.coded_link import transmit_coded

    entry, length, q = "qpsk-r1/2", 2200, 8
    k = length * q
    assert block_sizes(k) == [5867, 5867, 5866]
    assert entry_symbols(k, entry) == sum(entry_symbols(kc, entry) for kc in block_sizes(k))
    assert entry_symbols(k, "qpsk") == k // 2  # an uncoded entry is not segmented
    codes = np.random.default_rng(0).integers(0, 256, size=(1, 2, length))
    h, power = np.ones((1, 2), complex), np.array([[10.0, 10**-0.5]])  # 10 dB, -5 dB
    out = transmit_coded(codes, [[entry, entry]], h, power, 1.0, q, seed=1)
    assert out.bit_errors[0, 0] == 0 and np.array_equal(out.codes_hat[0, 0], codes[0, 0])
    assert out.bit_errors[0, 1] > 0


def test_rate_one_third_blocks_stay_on_base_graph_2() -> None:
    """At rate 1/3 a block longer than 3,824 bits would go to base graph 1, whose rates must
    exceed 1/3 (Sionna refuses it): such messages are cut into blocks of at most 3,824 bits,
    and Sionna's encoder accepts every one of them."""
    from channels.coded import block_sizes
    from channels.ldpc import codeword_length, encode

    entry, k = "qpsk-r1/3", 9000
    sizes = block_sizes(k, Fraction(1, 3))
    assert sizes == [3000, 3000, 3000] and max(block_sizes(8000, Fraction(1, 2))) > 3824
    bits = np.random.default_rng(0).integers(0, 2, size=(1, sizes[0]))
    assert encode(bits, codeword_length(sizes[0], entry)).shape == (1, 9000)
