"""channels.kernels.link_cpu: the fused semantic-link kernel against a NumPy reference built from
channels.bits / modulation / subchannels on the same noise, against theory, and its contracts."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.bits import bits_to_indices, indices_to_bits
from channels.errors import ConfigError
from channels.kernels import philox
from channels.kernels.link_cpu import transmit_codes
from channels.modulation import get_modulation
from channels.montecarlo import wilson_interval
from channels.subchannels import receive_parallel, transmit_parallel
from channels.theory import ber_awgn

NAME_OF = {1: "bpsk", 2: "qpsk", 4: "16qam", 6: "64qam", 8: "256qam"}


def philox_noise(seed: int, point: int, trial: int, index: int) -> complex:
    """The kernel's CN(0, 1) sample of one symbol, from the pure-Python Philox functions."""
    key0, key1 = philox.seed_key(seed)
    _, w1, w2, w3 = philox.philox4x32_10(
        np.uint64(index), np.uint64(trial), np.uint64(point), np.uint64(0), key0, key1
    )
    n_re, n_im = philox.box_muller(philox.uniform52(w1, w3), philox.uniform32(w2))
    return complex(n_re, n_im) / math.sqrt(2.0)


def reference_link(codes, m, h, power, no, q, seed, point, trials):  # noqa: ANN001, ANN201
    """The link spelled out with the channels package, one feature at a time."""
    b_count, n, length = codes.shape
    codes_hat = np.full(codes.shape, -1, dtype=np.int64)
    errors = np.zeros((b_count, n), dtype=np.int64)
    for b in range(b_count):
        for i in range(n):
            if m[b, i] == 0:
                continue
            mod = get_modulation(NAME_OF[m[b, i]])
            bits = indices_to_bits(codes[b, i], q).reshape(-1)
            padded = np.concatenate([bits, np.zeros(-bits.size % mod.bits_per_symbol, np.uint8)])
            x = mod.map(padded)
            noise = np.array([philox_noise(seed, point, trials[b], i * length * q + s)
                              for s in range(x.size)])  # fmt: skip
            y = transmit_parallel(x[None], h[b, i : i + 1], power[b, i : i + 1], no,
                                  noise=noise[None])  # fmt: skip
            x_hat, _ = receive_parallel(y, h[b, i : i + 1], power[b, i : i + 1], no)
            bits_hat = mod.demap_hard(x_hat[0])[: bits.size]
            codes_hat[b, i] = bits_to_indices(bits_hat.reshape(length, q), q)
            errors[b, i] = int(np.sum(bits_hat != bits))
    return codes_hat, errors


def test_equals_the_numpy_reference_on_the_same_noise() -> None:
    rng = np.random.default_rng(0)
    b, n, length, q = 3, 6, 3, 5  # L*Q = 15 bits: every QAM pads its last symbol
    codes = rng.integers(0, 2**q, (b, n, length))
    m = np.array([[0, 1, 2, 4, 6, 8], [8, 6, 4, 2, 1, 0], [2, 2, 4, 4, 6, 6]])
    h = (rng.standard_normal((b, n)) + 1j * rng.standard_normal((b, n))) / math.sqrt(2)
    power = rng.uniform(2.0, 200.0, (b, n))
    trials = np.array([7, 0, 2**32 - 1])
    out = transmit_codes(codes, m, h, power, 1.0, q, seed=2**40 + 5, point=123, trials=trials)
    ref_codes, ref_errors = reference_link(codes, m, h, power, 1.0, q, 2**40 + 5, 123, trials)
    np.testing.assert_array_equal(out.codes_hat, ref_codes)
    np.testing.assert_array_equal(out.bit_errors, ref_errors)
    assert 0 < out.bit_errors.sum() < 0.5 * (m > 0).sum() * length * q  # some, not all, wrong
    assert np.all(out.codes_hat[m == 0] == -1) and np.all(out.bit_errors[m == 0] == 0)


@given(
    q=st.integers(1, 16),
    length=st.integers(1, 5),
    m=st.sampled_from([1, 2, 4, 6, 8]),
    seed=st.integers(0, 2**64 - 1),
)
def test_noiseless_and_very_high_snr_are_error_free(q: int, length: int, m: int, seed: int) -> None:
    rng = np.random.default_rng(seed % 2**32)
    codes = rng.integers(0, 2**q, (2, 3, length))
    h = rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3))
    for no in (0.0, 1e-12):
        out = transmit_codes(codes, m, h, 1.0, no, q, seed=seed)
        np.testing.assert_array_equal(out.codes_hat, codes)
        assert out.bit_errors.sum() == 0
    real = transmit_codes(codes, m, np.abs(h), 1.0, 0.0, q)  # |h| instead of h (perfect CSI)
    np.testing.assert_array_equal(real.codes_hat, codes)


def test_per_feature_ber_matches_theory() -> None:
    rng = np.random.default_rng(1)
    m = np.array([1, 2, 4, 6, 8, 2, 4])
    esno = np.array([3.0, 6.0, 40.0, 150.0, 500.0, 2.0, 15.0])  # BER about 1e-3 .. 1e-1
    h = (rng.standard_normal(m.size) + 1j * rng.standard_normal(m.size)) / math.sqrt(2)
    no = 0.5
    power = esno * no / np.abs(h) ** 2  # gamma = |h|^2 p / no
    length, q = 3000, 8
    codes = rng.integers(0, 256, (1, m.size, length))
    out = transmit_codes(codes, m[None], h[None], power[None], no, q, seed=11, point=5)
    bits = length * q
    for i, mi in enumerate(m):
        expected = float(ber_awgn(NAME_OF[mi], esno[i]))
        n_eff = bits / mi  # the bits of one symbol err together: design effect <= m
        p_hat = out.bit_errors[0, i] / bits
        low, high = wilson_interval(p_hat * n_eff, n_eff, confidence=0.999)
        assert low <= expected <= high, (NAME_OF[mi], esno[i], p_hat, expected)


def test_frames_depend_only_on_seed_point_trial() -> None:
    rng = np.random.default_rng(2)
    codes = rng.integers(0, 256, (5, 4, 16))
    m = rng.choice([0, 1, 2, 4, 6], size=(5, 4))
    power = rng.uniform(1.0, 20.0, (5, 4))
    trials = np.array([10, 11, 12, 13, 14])
    whole = transmit_codes(codes, m, 1.0, power, 1.0, 8, seed=3, point=9, trials=trials)
    for b in range(5):  # frame by frame, in another order, gives the same frames
        part = transmit_codes(codes[b : b + 1], m[b : b + 1], 1.0, power[b : b + 1], 1.0, 8,
                              seed=3, point=9, trials=trials[b : b + 1])  # fmt: skip
        np.testing.assert_array_equal(part.codes_hat[0], whole.codes_hat[b])
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        single = transmit_codes(codes, m, 1.0, power, 1.0, 8, seed=3, point=9, trials=trials)
    finally:
        numba.set_num_threads(threads)
    np.testing.assert_array_equal(single.codes_hat, whole.codes_hat)
    other = transmit_codes(codes, m, 1.0, power, 1.0, 8, seed=4, point=9, trials=trials)
    assert not np.array_equal(other.bit_errors, whole.bit_errors)


def test_zero_gain_feature_carries_no_information() -> None:
    codes = np.random.default_rng(3).integers(0, 256, (1, 2, 4000))
    out = transmit_codes(codes, [[1, 2]], 1.0, [[0.0, 0.0]], 1.0, 8, seed=1)
    ber = out.bit_errors[0] / (4000 * 8)
    np.testing.assert_allclose(ber, 0.5, atol=0.02)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"codes": np.full((1, 1, 2), 256)}, "codes"),
        ({"codes": np.zeros((1, 2))}, "codes"),
        ({"codes": np.zeros((1, 1, 2))}, "codes"),  # float dtype
        ({"bits_per_symbol": 3}, "bits_per_symbol"),
        ({"bits_per_symbol": np.zeros((2, 2), np.int64)}, "bits_per_symbol"),
        ({"h": np.nan}, "h"),
        ({"power": -1.0}, "power"),
        ({"no": -0.1}, "no"),
        ({"no": math.inf}, "no"),
        ({"bits_per_scalar": 17}, "bits_per_scalar"),
        ({"seed": -1}, "seed"),
        ({"point": 2**32}, "point"),
        ({"trials": [0, 1]}, "trials"),
        ({"trials": [-1]}, "trials"),
    ],
)
def test_invalid_input_raises_config_error(kwargs: dict, field: str) -> None:
    args = dict(codes=np.zeros((1, 1, 2), np.int64), bits_per_symbol=2, h=1.0, power=1.0,
                no=1.0, bits_per_scalar=8)  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ConfigError, match=f"^{field}: "):
        transmit_codes(**args)
