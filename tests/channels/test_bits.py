"""Tests of channels.bits against references we did not write.

References: ``numpy.digitize`` (quantiser bins), ``numpy.binary_repr`` (bit order), the reflected
binary Gray code sequence (OEIS A003188), ``scipy.stats.binomtest`` (Clopper-Pearson intervals),
``scipy.stats.chisquare`` and ``scipy.integrate.quad`` (the MSE integral, written out here
independently of the module), and Monte Carlo with normal-approximation confidence intervals.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import integrate, stats

from channels.bits import (
    bits_to_indices,
    bsc,
    dequantize,
    gray_decode,
    gray_encode,
    indices_to_bits,
    mse_bit_errors,
    mse_bit_errors_enumerated,
    mse_gaussian_equivalent_variance,
    pack_bits,
    quantization_step,
    quantize,
    transmit_bsc,
    unpack_bits,
)
from channels.errors import ConfigError

# OEIS A003188, the reflected binary Gray code of n = 0..15.
GRAY_A003188 = [0, 1, 3, 2, 6, 7, 5, 4, 12, 13, 15, 14, 10, 11, 9, 8]
Z_99 = stats.norm.ppf(0.995)  # two-sided 99 % normal quantile


# --------------------------------------------------------------------------------------------
# quantiser


@pytest.mark.parametrize("q", [1, 2, 3, 8, 12, 16])
def test_quantize_matches_digitize_and_error_is_at_most_half_a_step(q):
    rng = np.random.default_rng(q)
    z = np.concatenate([rng.uniform(-1.0, 1.0, 20_000), [-1.0, 0.0, 1.0]])
    edges = np.linspace(-1.0, 1.0, 2**q + 1)  # bin i = [edges[i], edges[i+1])
    expected = np.minimum(np.digitize(z, edges) - 1, 2**q - 1)
    index = quantize(z, q)
    assert index.dtype == np.int64
    np.testing.assert_array_equal(index, expected)
    step = quantization_step(q)
    assert step == 2.0 / 2**q
    assert np.all(np.abs(z - dequantize(index, q)) <= step / 2 * (1 + 1e-12))


@pytest.mark.parametrize("q", [1, 4, 8, 12])
@pytest.mark.parametrize("code", ["binary", "gray"])
def test_quantize_is_idempotent_on_midpoints(q, code):
    index = quantize(np.linspace(-1, 1, 2**q, endpoint=False) + 1 / 2**q, q, code)
    midpoints = dequantize(index, q, code)
    np.testing.assert_allclose(midpoints, -1 + (np.arange(2**q) + 0.5) * 2 / 2**q, rtol=0, atol=0)
    np.testing.assert_array_equal(quantize(midpoints, q, code), index)


def test_edges_and_clipping():
    q = 8
    step = quantization_step(q)
    assert quantize(-1.0, q) == 0 and quantize(1.0, q) == 255
    assert quantize(-1.0 + step, q) == 1 and quantize(1.0 - step / 4, q) == 255
    clipped = quantize(np.array([-5.0, -np.inf, 3.0, np.inf]), q)
    np.testing.assert_array_equal(clipped, [0, 0, 255, 255])
    assert dequantize(np.array([0, 255]), q).tolist() == [-1 + step / 2, 1 - step / 2]


@pytest.mark.parametrize("shape", [(), (7,), (3, 4, 5)])
def test_shapes_are_kept(shape):
    z = np.random.default_rng(0).uniform(-1, 1, shape)
    assert quantize(z, 5).shape == shape
    assert indices_to_bits(quantize(z, 5), 5).shape == (*shape, 5)
    assert transmit_bsc(z, 0.1, 5, rng=0).shape == shape


def test_gray_code_matches_oeis_and_round_trips():
    np.testing.assert_array_equal(gray_encode(np.arange(16)), GRAY_A003188)
    i = np.arange(2**16, dtype=np.int64)
    np.testing.assert_array_equal(gray_decode(gray_encode(i)), i)
    z = np.random.default_rng(1).uniform(-1, 1, 10_000)
    np.testing.assert_array_equal(
        dequantize(quantize(z, 8, "gray"), 8, "gray"), dequantize(quantize(z, 8), 8)
    )


@pytest.mark.parametrize("q", [1, 3, 8, 16])
def test_gray_neighbours_differ_in_exactly_one_bit(q):
    g = gray_encode(np.arange(2**q, dtype=np.int64))
    popcount = [bin(int(x)).count("1") for x in g[1:] ^ g[:-1]]
    assert set(popcount) <= {1}
    assert len(set(g.tolist())) == 2**q  # a permutation of 0..2^Q-1


@settings(max_examples=50, deadline=None)
@given(
    z=hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5), elements=st.floats(-1, 1)),
    q=st.integers(1, 16),
    code=st.sampled_from(["binary", "gray"]),
)
def test_round_trip_error_property(z, q, code):
    z_hat = dequantize(quantize(z, q, code), q, code)
    assert np.all(np.abs(z - z_hat) <= quantization_step(q) / 2 * (1 + 1e-12))


# --------------------------------------------------------------------------------------------
# bit packing


@pytest.mark.parametrize("q", [1, 5, 8, 16])
def test_bits_are_msb_first_like_binary_repr(q):
    i = np.random.default_rng(q).integers(0, 2**q, 200)
    expected = np.array([[int(c) for c in np.binary_repr(int(x), width=q)] for x in i])
    bits = indices_to_bits(i, q)
    assert bits.dtype == np.uint8
    np.testing.assert_array_equal(bits, expected)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), q=st.integers(1, 16))
def test_index_bit_round_trip_property(data, q):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=6))
    i = data.draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 2**q - 1)))
    np.testing.assert_array_equal(bits_to_indices(indices_to_bits(i, q), q), i)


@settings(max_examples=60, deadline=None)
@given(
    bits=hnp.arrays(
        np.uint8, hnp.array_shapes(min_dims=1, max_dims=3, max_side=20), elements=st.integers(0, 1)
    )
)
def test_pack_unpack_round_trip_property(bits):
    packed = pack_bits(bits)
    assert packed.dtype == np.uint8
    assert packed.shape == (*bits.shape[:-1], -(-bits.shape[-1] // 8))
    np.testing.assert_array_equal(unpack_bits(packed, bits.shape[-1]), bits)


# --------------------------------------------------------------------------------------------
# binary symmetric channel


def _random_bits(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 2, shape, dtype=np.uint8)


def test_bsc_flip_rate_per_feature_within_clopper_pearson_interval():
    p = np.array([1e-3, 1e-2, 0.05, 0.2, 0.5, 0.9])
    bits = _random_bits((100, p.size, 64, 8))  # 51 200 bits per feature
    out = bsc(bits, p[:, None, None], rng=np.random.default_rng(2024))
    flips = (out != bits).sum(axis=(0, 2, 3))
    n = bits.size // p.size
    for k, p_i in zip(flips, p, strict=True):
        ci = stats.binomtest(int(k), n, p_i).proportion_ci(confidence_level=0.99, method="exact")
        assert ci.low <= p_i <= ci.high, (p_i, k / n, ci)


def test_bsc_feature_axis_equals_broadcast_and_flips_are_independent_within_a_word():
    p = np.array([0.02, 0.2, 0.4])
    bits = _random_bits((4000, 3, 8), seed=1)
    by_axis = bsc(bits, p, rng=7, feature_axis=1)
    np.testing.assert_array_equal(by_axis, bsc(bits, p[:, None], rng=7))
    np.testing.assert_array_equal(by_axis, bsc(bits, p, rng=7, feature_axis=-2))
    # flips per 8-bit word must be Binomial(8, p) if the flips are independent
    for j, p_j in enumerate(p):
        weight = (by_axis[:, j] != bits[:, j]).sum(axis=-1)
        expected = stats.binom.pmf(np.arange(9), 8, p_j) * weight.size
        observed = np.bincount(weight, minlength=9).astype(float)
        keep = expected >= 5  # pool the sparse tail into the last kept bin
        last = np.flatnonzero(keep)[-1]
        obs = np.append(observed[:last], observed[last:].sum())
        exp = np.append(expected[:last], expected[last:].sum())
        assert stats.chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 0.01


def test_bsc_extreme_probabilities_and_seeding():
    bits = _random_bits((50, 4, 8))
    np.testing.assert_array_equal(bsc(bits, 0.0, rng=3), bits)
    np.testing.assert_array_equal(bsc(bits, 1.0, rng=3), 1 - bits)
    mixed = bsc(bits, np.array([0.0, 1.0, 0.0, 1.0])[:, None], rng=3)
    np.testing.assert_array_equal(mixed[:, ::2], bits[:, ::2])
    np.testing.assert_array_equal(mixed[:, 1::2], 1 - bits[:, 1::2])
    np.testing.assert_array_equal(bsc(bits, 0.3, rng=5), bsc(bits, 0.3, np.random.default_rng(5)))
    assert bsc(bits.astype(bool), 0.3, rng=5).dtype == np.uint8


# --------------------------------------------------------------------------------------------
# analytic MSE


def _mse_by_quadrature(p: float, q: int, code: str) -> float:
    """E[(z - ẑ)^2] for z ~ U[-1, 1] by numerical integration over z and a sum over all flip
    patterns, written without channels.bits (A003188 table for Gray, q <= 4)."""
    levels = 2**q
    step = 2.0 / levels
    encode = GRAY_A003188[:levels] if code == "gray" else list(range(levels))
    decode = {g: i for i, g in enumerate(encode)}
    edges = [-1.0 + k * step for k in range(levels + 1)]
    total = 0.0
    for f in range(levels):
        weight = bin(f).count("1")
        prob = p**weight * (1 - p) ** (q - weight)
        for i in range(levels):
            z_hat = -1.0 + (decode[encode[i] ^ f] + 0.5) * step
            val, _ = integrate.quad(lambda z, c=z_hat: (z - c) ** 2, edges[i], edges[i + 1])
            total += prob * val / 2.0  # density 1/2 on [-1, 1]
    return total


@pytest.mark.parametrize("q", [1, 2, 3])
@pytest.mark.parametrize("code", ["binary", "gray"])
def test_mse_formula_matches_direct_integration(q, code):
    for p in [0.0, 0.01, 0.3, 0.5, 1.0]:
        assert mse_bit_errors(p, q, code) == pytest.approx(_mse_by_quadrature(p, q, code), 1e-12)


@pytest.mark.parametrize("q", [1, 2, 5, 8, 12])
@pytest.mark.parametrize("code", ["binary", "gray"])
def test_enumeration_equals_closed_form(q, code):
    p = np.array([0.0, 1e-6, 1e-3, 0.05, 0.5, 0.8, 1.0])
    np.testing.assert_allclose(
        mse_bit_errors_enumerated(p, q, code), mse_bit_errors(p, q, code), rtol=1e-12
    )
    step = quantization_step(q)
    if code == "binary":  # the closed form of docs/method.md §4.5, written out
        expected = step**2 / 12 + p * step**2 * (4**q - 1) / 3
        np.testing.assert_allclose(mse_bit_errors(p, q), expected, rtol=1e-13)
    # p = 1/2 makes the received index uniform and independent of the sent one, for any code
    half = step**2 / 12 + step**2 * (4**q - 1) / 6
    assert mse_bit_errors(0.5, q, code) == pytest.approx(half, rel=1e-13)


def test_gaussian_equivalent_variance_and_vectorisation():
    p = np.array([[0.0, 1e-4], [0.01, 0.2]])
    for code in ["binary", "gray"]:
        sigma2 = mse_gaussian_equivalent_variance(p, 8, code)
        assert sigma2.shape == p.shape
        np.testing.assert_allclose(
            sigma2 + quantization_step(8) ** 2 / 12, mse_bit_errors(p, 8, code)
        )
    np.testing.assert_allclose(
        mse_gaussian_equivalent_variance(p, 8), p * (2 / 256) ** 2 * (4**8 - 1) / 3, rtol=1e-13
    )
    assert np.ndim(mse_bit_errors(0.1, 8)) == 0
    # Gray spreads one channel flip over several index bits: worse than binary for 0 < p < 1/2
    assert np.all(mse_bit_errors(p[p > 0], 8, "gray") > mse_bit_errors(p[p > 0], 8))


def _mc_mean_ci(sq_err: np.ndarray) -> tuple[float, float, float]:
    """Mean and 99 % CLT interval of i.i.d. squared errors along axis 0 (per column)."""
    mean = sq_err.mean(axis=0)
    half = Z_99 * sq_err.std(axis=0, ddof=1) / np.sqrt(sq_err.shape[0])
    return mean, mean - half, mean + half


@pytest.mark.parametrize(("q", "code"), [(8, "binary"), (8, "gray"), (4, "binary"), (3, "gray")])
def test_monte_carlo_mse_agrees_with_analytic_within_99_ci(q, code):
    """z ~ U[-1, 1], one feature per p, 400 000 scalars each. The squared error is bounded
    (by 4), so it has finite moments and the CLT with the sample standard deviation gives a
    valid interval at this n; even at p = 1e-3 the sample holds ~3 000 bit flips (~400 of the
    most significant bit, which carries 3/4 of the error), enough for the normal approximation.
    """
    p = np.array([0.0, 1e-3, 1e-2, 0.1, 0.5])
    rng = np.random.default_rng(12345 + q)
    z = rng.uniform(-1.0, 1.0, (400_000, p.size))
    z_hat = transmit_bsc(z, p, q, rng, code)  # p broadcasts along the last (feature) axis
    mean, low, high = _mc_mean_ci((z - z_hat) ** 2)
    analytic = mse_bit_errors(p, q, code)
    assert np.all((low <= analytic) & (analytic <= high)), (analytic, low, high)
    assert analytic[0] == pytest.approx(quantization_step(q) ** 2 / 12)  # p = 0: quantisation noise
    # the intervals are tight enough to tell the two codes apart where they differ
    other = mse_bit_errors(p, q, "gray" if code == "binary" else "binary")
    differs = np.abs(other - analytic) > 1e-3 * analytic
    assert np.all((other[differs] < low[differs]) | (other[differs] > high[differs]))


def test_transmit_bsc_feature_axis_matches_broadcast():
    z = np.random.default_rng(0).uniform(-1, 1, (32, 4, 16))
    p = np.array([0.0, 0.1, 0.2, 0.3])
    a = transmit_bsc(z, p, 6, rng=9, feature_axis=1)
    np.testing.assert_array_equal(a, transmit_bsc(z, p[:, None], 6, rng=9))
    np.testing.assert_array_equal(a[:, 0], dequantize(quantize(z[:, 0], 6), 6))


# --------------------------------------------------------------------------------------------
# invalid input


@pytest.mark.parametrize("q", [0, 17, -1, 2.5, True, "8", None])
def test_bits_per_scalar_out_of_range(q):
    for call in (
        lambda: quantize(0.0, q),
        lambda: dequantize(0, q),
        lambda: quantization_step(q),
        lambda: indices_to_bits(np.array([0]), q),
        lambda: mse_bit_errors(0.1, q),
        lambda: transmit_bsc(np.zeros(3), 0.1, q, rng=0),
    ):
        with pytest.raises(
            ConfigError, match=r"^bits_per_scalar: .* allowed: an integer in 1\.\.16"
        ):
            call()


@pytest.mark.parametrize("p", [-0.1, 1.5, np.nan, np.array([0.1, 2.0]), "x"])
def test_flip_prob_outside_unit_interval(p):
    bits = np.zeros((2, 8), dtype=np.uint8)
    for call in (
        lambda: bsc(bits, p, rng=0),
        lambda: mse_bit_errors(p, 8),
        lambda: mse_gaussian_equivalent_variance(p, 8),
        lambda: mse_bit_errors_enumerated(p, 4),
        lambda: transmit_bsc(np.zeros(3), p, 8, rng=0),
    ):
        with pytest.raises(ConfigError, match=r"^flip_prob: .*\[0, 1\]"):
            call()


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: quantize(np.array([0.1, np.nan]), 8), "z"),
        (lambda: quantize(0.1, 8, code="ascii"), "code"),
        (lambda: dequantize(np.array([256]), 8), "indices"),
        (lambda: dequantize(np.array([-1]), 8), "indices"),
        (lambda: dequantize(np.array([1.0]), 8), "indices"),
        (lambda: indices_to_bits(np.array([4]), 2), "indices"),
        (lambda: bits_to_indices(np.array([[0, 2]]), 2), "bits"),
        (lambda: bits_to_indices(np.zeros((3, 4), dtype=np.uint8), 8), "bits"),
        (lambda: unpack_bits(np.zeros(2, dtype=np.uint8), 17), "num_bits"),
        (lambda: bsc(np.zeros((2, 3), dtype=int), 0.1, rng="seed"), "rng"),
        (lambda: bsc(np.zeros((2, 3)), 0.1, rng=0), "bits"),
        (lambda: bsc(np.zeros((2, 3), dtype=int), 0.1, rng=-1), "rng"),
        (lambda: bsc(np.zeros((2, 3), dtype=int), np.zeros(2), rng=0), "flip_prob"),
        (lambda: bsc(np.zeros((2, 3), dtype=int), np.zeros(2), rng=0, feature_axis=1), "flip_prob"),
        (
            lambda: bsc(np.zeros((2, 3), dtype=int), np.zeros(3), rng=0, feature_axis=2),
            "feature_axis",
        ),
        (lambda: transmit_bsc(np.zeros((2, 3)), np.zeros((4, 3)), 8, rng=0), "flip_prob"),
        (lambda: mse_bit_errors_enumerated(0.1, 13), "bits_per_scalar"),
    ],
)
def test_invalid_arguments_name_the_argument(call, field):
    with pytest.raises(ConfigError, match=rf"^{field}: .* allowed: "):
        call()
