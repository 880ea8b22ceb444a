"""The link and distortion kernels with per-feature bits ``Q_i`` (issue 13).

Proven here: a frame with ``Q[N]`` equals a NumPy reference spelled out with the channels
package feature by feature (same Philox noise at the feature's first bit ``L sum_{j<i} Q_j``);
it equals running each feature on its own with its scalar ``Q_i`` (bits, symbols and noise);
one ``Q`` equals a constant vector bit for bit; the bit-error rate of features with different
``Q_i`` matches the AWGN theory; the distortion reduction per feature equals the scalar one;
bad per-feature input is refused. The CUDA twins with per-feature ``Q`` are compared with these
CPU kernels under the simulator by ``test_cuda_kernels.py`` (its per-feature link cases).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from channels.bits import bits_to_indices, indices_to_bits
from channels.errors import ConfigError
from channels.feature_bits import bit_offsets
from channels.kernels.distortion import feature_distortion
from channels.kernels.link_cpu import transmit_codes
from channels.modulation import get_modulation
from channels.montecarlo import wilson_interval
from channels.subchannels import receive_parallel, transmit_parallel
from channels.theory import ber_awgn
from tests.channels.test_link_kernel import NAME_OF, philox_noise


def reference_link(codes, m, h, power, no, q, seed, point, trials):  # noqa: ANN001, ANN201
    """The link with per-feature ``q[N]``, one feature at a time with the channels package."""
    b_count, n, length = codes.shape
    first = bit_offsets(q, length)
    codes_hat = np.full(codes.shape, -1, dtype=np.int64)
    errors = np.zeros((b_count, n), dtype=np.int64)
    for b in range(b_count):
        for i in range(n):
            if m[b, i] == 0:
                continue
            qi = int(q[i])
            mod = get_modulation(NAME_OF[m[b, i]])
            bits = indices_to_bits(codes[b, i], qi).reshape(-1)
            padded = np.concatenate([bits, np.zeros(-bits.size % mod.bits_per_symbol, np.uint8)])
            x = mod.map(padded)
            noise = np.array([philox_noise(seed, point, trials[b], first[i] + s)
                              for s in range(x.size)])  # fmt: skip
            y = transmit_parallel(x[None], h[b, i : i + 1], power[b, i : i + 1], no,
                                  noise=noise[None])  # fmt: skip
            x_hat, _ = receive_parallel(y, h[b, i : i + 1], power[b, i : i + 1], no)
            bits_hat = mod.demap_hard(x_hat[0])[: bits.size]
            codes_hat[b, i] = bits_to_indices(bits_hat.reshape(length, qi), qi)
            errors[b, i] = int(np.sum(bits_hat != bits))
    return codes_hat, errors


def random_frames(q, b: int, length: int, seed: int):  # noqa: ANN001, ANN201
    rng = np.random.default_rng(seed)
    n = len(q)
    codes = rng.integers(0, (2 ** np.asarray(q))[None, :, None], (b, n, length))
    m = rng.choice([0, 1, 2, 4, 6, 8], size=(b, n))
    m[0] = np.resize([1, 2, 4, 6, 8], n)
    h = (rng.standard_normal((b, n)) + 1j * rng.standard_normal((b, n))) / math.sqrt(2)
    power = rng.uniform(2.0, 200.0, (b, n))
    return codes, m, h, power


def test_per_feature_frame_equals_the_numpy_reference() -> None:
    q = np.array([5, 1, 16, 3, 8, 7])  # every QAM pads somewhere; 1 and 16 bits included
    codes, m, h, power = random_frames(q, 3, 3, seed=0)
    trials = np.array([4, 0, 2**32 - 1])
    out = transmit_codes(codes, m, h, power, 1.0, q, seed=2**40 + 1, point=17, trials=trials)
    ref = reference_link(codes, m, h, power, 1.0, q, 2**40 + 1, 17, trials)
    np.testing.assert_array_equal(out.codes_hat, ref[0])
    np.testing.assert_array_equal(out.bit_errors, ref[1])
    assert 0 < out.bit_errors.sum()  # the noise matters here


def test_each_feature_equals_its_own_scalar_q_run() -> None:
    """Q = [2, 2, 4, 8, 16, 1]: feature i starts at bit L*(0, 2, 4, 8, 16, 32), which is
    position i' = first_i / (L Q_i) in a frame of one Q = Q_i; sent there alone (the other
    features not sent), it gets the same bits, symbols and noise."""
    q = np.array([2, 2, 4, 8, 16, 1])
    length = 5
    codes, m, h, power = random_frames(q, 4, length, seed=1)
    trials = np.arange(4) + 9
    both = transmit_codes(codes, m, h, power, 0.7, q, seed=5, point=3, trials=trials)
    first = bit_offsets(q, length)
    for i, qi in enumerate(q):
        slot = int(first[i] // (length * qi))
        assert slot * length * qi == first[i]
        shape = (4, slot + 1)
        alone_codes = np.zeros((4, slot + 1, length), dtype=np.int64)
        alone_codes[:, slot] = codes[:, i]
        alone_m = np.zeros(shape, dtype=np.int64)
        alone_m[:, slot] = m[:, i]
        alone_h, alone_p = np.ones(shape, complex), np.ones(shape)
        alone_h[:, slot], alone_p[:, slot] = h[:, i], power[:, i]
        one = transmit_codes(alone_codes, alone_m, alone_h, alone_p, 0.7, int(qi), seed=5,
                             point=3, trials=trials)  # fmt: skip
        np.testing.assert_array_equal(one.codes_hat[:, slot], both.codes_hat[:, i])
        np.testing.assert_array_equal(one.bit_errors[:, slot], both.bit_errors[:, i])
    assert both.bit_errors.sum() > 0


def test_noiseless_per_feature_frames_are_exact() -> None:
    for seed in range(5):
        rng = np.random.default_rng(seed)
        q = rng.integers(1, 17, size=7)
        codes, m, h, power = random_frames(q, 2, 4, seed=seed)
        out = transmit_codes(codes, m, h, power, 0.0, q)
        sent = m > 0
        np.testing.assert_array_equal(out.codes_hat[sent], codes[sent])
        assert np.all(out.codes_hat[~sent] == -1) and out.bit_errors.sum() == 0


def test_scalar_q_equals_a_constant_vector_bit_for_bit() -> None:
    for q in (1, 5, 8, 16):
        codes, m, h, power = random_frames([q] * 5, 3, 4, seed=q)
        a = transmit_codes(codes, m, h, power, 1.0, q, seed=2, point=8)
        b = transmit_codes(codes, m, h, power, 1.0, np.full(5, q), seed=2, point=8)
        np.testing.assert_array_equal(a.codes_hat, b.codes_hat)
        np.testing.assert_array_equal(a.bit_errors, b.bit_errors)
        z = np.random.default_rng(q).uniform(-1.1, 1.1, codes.shape)
        for code in ("binary", "gray"):
            da = feature_distortion(z, a.codes_hat, 0.3, q, code=code, backend="cpu")
            db = feature_distortion(z, a.codes_hat, 0.3, [q] * 5, code=code, backend="cpu")
            np.testing.assert_array_equal(da.squared_error, db.squared_error)
            np.testing.assert_array_equal(da.weighted, db.weighted)


def test_ber_of_mixed_bits_matches_theory() -> None:
    """Features with Q_i in {2, 5, 8, 11, 16} in every modulation, AWGN at BER 1e-3..1e-1:
    each feature's bit-error rate is within the 99.9% interval of the theory."""
    rng = np.random.default_rng(4)
    m = np.array([1, 2, 4, 6, 8, 2, 4, 6])
    q = np.array([2, 5, 8, 11, 16, 16, 3, 7])
    esno = np.array([3.0, 6.0, 40.0, 150.0, 500.0, 2.0, 15.0, 60.0])
    h = (rng.standard_normal(m.size) + 1j * rng.standard_normal(m.size)) / math.sqrt(2)
    no = 0.5
    power = esno * no / np.abs(h) ** 2
    length = 2400
    codes = rng.integers(0, (2**q)[None, :, None], (1, m.size, length))
    out = transmit_codes(codes, m[None], h[None], power[None], no, q, seed=13, point=2)
    for i, mi in enumerate(m):
        bits = length * q[i]
        expected = float(ber_awgn(NAME_OF[mi], esno[i]))
        n_eff = bits / mi  # the bits of one symbol err together: design effect <= m
        p_hat = out.bit_errors[0, i] / bits
        low, high = wilson_interval(p_hat * n_eff, n_eff, confidence=0.999)
        assert low <= expected <= high, (NAME_OF[mi], q[i], p_hat, expected)


def test_distortion_per_feature_equals_scalar_calls() -> None:
    rng = np.random.default_rng(6)
    q = np.array([1, 4, 8, 12, 16])
    b, length = 3, 5
    z = rng.uniform(-1.2, 1.2, (b, q.size, length))
    codes = rng.integers(0, (2**q)[None, :, None], (b, q.size, length))
    codes[1, 2] = -1  # not sent
    w = rng.uniform(0, 1, q.size)
    for code in ("binary", "gray"):
        out = feature_distortion(z, codes, w, q, code=code, backend="cpu")
        for i, qi in enumerate(q):
            one = feature_distortion(z[:, i : i + 1], codes[:, i : i + 1], 1.0, int(qi),
                                     code=code, backend="cpu")  # fmt: skip
            np.testing.assert_array_equal(out.squared_error[:, i], one.squared_error[:, 0])
        expected = (w * out.squared_error / length).sum(axis=1)
        np.testing.assert_allclose(out.weighted, expected, rtol=1e-14)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"bits_per_scalar": [8]}, "bits_per_scalar"),  # one value for two features
        ({"bits_per_scalar": [8, 17]}, "bits_per_scalar"),
        ({"bits_per_scalar": [8, 0]}, "bits_per_scalar"),
        ({"bits_per_scalar": [8.5, 8]}, "bits_per_scalar"),
        ({"bits_per_scalar": [True, 8]}, "bits_per_scalar"),
        ({"codes": np.array([[[3, 3], [8, 0]]])}, "codes"),  # feature 1 has Q = 3
    ],
)
def test_bad_per_feature_input_is_refused(kwargs: dict, field: str) -> None:
    args = dict(codes=np.zeros((1, 2, 2), np.int64), bits_per_symbol=2, h=1.0, power=1.0,
                no=1.0, bits_per_scalar=[8, 3])  # fmt: skip
    args.update(kwargs)
    with pytest.raises(ConfigError, match=f"^{field}: "):
        transmit_codes(**args)
    if field == "bits_per_scalar":
        with pytest.raises(ConfigError, match=f"^{field}: "):
            feature_distortion(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), np.int64), 1.0,
                               kwargs["bits_per_scalar"])  # fmt: skip
    else:
        with pytest.raises(ConfigError, match="^codes_hat: .*0..7"):
            feature_distortion(np.zeros((1, 2, 2)), kwargs["codes"], 1.0, [8, 3])
