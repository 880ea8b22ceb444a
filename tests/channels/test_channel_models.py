"""AWGN, block fading and parallel subchannels: the SNR convention, fading statistics,
torch == NumPy on the same noise, equalisation, and Sionna's noise convention."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy import stats

from channels.awgn import awgn, ebno_db_to_no, esno_db_to_no
from channels.errors import ConfigError
from channels.fading import block_fading, equalize, estimate_channel, fading_coefficients
from channels.subchannels import receive_parallel, subchannel_snr, transmit_parallel


def variance_interval(samples: np.ndarray, level: float = 0.99) -> tuple[float, float]:
    """Chi-square confidence interval of the variance of Gaussian samples."""
    n = samples.size
    s2 = np.var(samples, ddof=1)
    lo, hi = stats.chi2.ppf([(1 + level) / 2, (1 - level) / 2], n - 1)
    return (n - 1) * s2 / lo, (n - 1) * s2 / hi


@pytest.mark.parametrize("esno_db", [-5.0, 0.0, 7.5, 20.0])
def test_noise_variance_per_real_dimension_is_no_over_two(esno_db: float) -> None:
    no = float(esno_db_to_no(esno_db))
    assert no == pytest.approx(10 ** (-esno_db / 10))
    n = awgn(np.zeros(200_000, dtype=complex), no, rng=np.random.default_rng(1))
    for part in (n.real, n.imag):
        lo, hi = variance_interval(part)
        assert lo <= no / 2 <= hi
    assert abs(np.corrcoef(n.real, n.imag)[0, 1]) < 4 / np.sqrt(n.size)  # I and Q independent


@pytest.mark.parametrize("bits", [1, 2, 4, 6, 8])
def test_ebno_esno_relation(bits: int) -> None:
    # Es/N0 = bits * Eb/N0 for uncoded transmission of unit-energy symbols
    assert ebno_db_to_no(6.0, bits) == pytest.approx(esno_db_to_no(6.0 + 10 * np.log10(bits)))
    assert ebno_db_to_no(6.0, bits) == pytest.approx(1 / (bits * 10**0.6))


@pytest.mark.sionna
@pytest.mark.parametrize("bits", [1, 2, 4, 6])
def test_same_convention_as_sionna(bits: int, sionna_seed: Callable[[int], None]) -> None:
    from sionna.phy.channel import AWGN
    from sionna.phy.utils import ebnodb2no

    assert ebno_db_to_no(6.0, bits) == pytest.approx(float(ebnodb2no(6.0, bits, 1.0)), rel=1e-6)
    sionna_seed(bits)  # Sionna's own generator (not torch's): a fixed draw per case
    noise = AWGN(precision="double")(torch.zeros(200_000, dtype=torch.complex128), 0.3).numpy()
    for part in (noise.real, noise.imag):  # Sionna also puts no/2 in each real dimension
        lo, hi = variance_interval(part)
        assert lo <= 0.15 <= hi


def test_rayleigh_and_rician_envelopes_ks() -> None:
    h = fading_coefficients("rayleigh", (50_000,), rng=2)
    assert stats.kstest(np.abs(h), stats.rayleigh(scale=np.sqrt(0.5)).cdf).pvalue > 0.01
    for k in (0.5, 3.0, 10.0):
        h = fading_coefficients("rician", (50_000,), rng=3, k_factor=k)
        nu, s = np.sqrt(k / (k + 1)), np.sqrt(0.5 / (k + 1))
        assert stats.kstest(np.abs(h), stats.rice(nu / s, scale=s).cdf).pvalue > 0.01
        mean_power = np.mean(np.abs(h) ** 2)
        assert abs(mean_power - 1.0) < 4 * np.std(np.abs(h) ** 2) / np.sqrt(h.size)


def test_awgn_model_has_unit_coefficients_and_torch_rayleigh_is_cn01() -> None:
    assert np.all(fading_coefficients("awgn", (3, 4)) == 1)
    gen = torch.Generator().manual_seed(0)
    h = fading_coefficients(
        "rayleigh", (40_000,), rng=gen, like=torch.zeros(1, dtype=torch.complex128)
    )
    lo, hi = variance_interval(h.real.numpy())
    assert lo <= 0.5 <= hi


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def test_torch_path_equals_numpy_path_on_the_same_noise() -> None:
    rng = np.random.default_rng(4)
    x = np.exp(2j * np.pi * rng.random((2, 3, 5)))
    h = fading_coefficients("rician", (2, 3), rng=5, k_factor=2.0)
    power = rng.random((2, 3)) + 0.5
    noise = _noise(x.shape)
    tx = torch.tensor(x, requires_grad=True)
    pairs = [
        (awgn(x, 0.2, noise=noise), awgn(tx, 0.2, noise=torch.tensor(noise))),
        (block_fading(x, h, 0.2, noise=noise), block_fading(tx, torch.tensor(h), 0.2, noise=noise)),
        (
            transmit_parallel(x, h, power, 0.2, noise=noise),
            transmit_parallel(tx, torch.tensor(h), torch.tensor(power), 0.2, noise=noise),
        ),
    ]
    for ours_np, ours_torch in pairs:
        np.testing.assert_allclose(ours_torch.detach().numpy(), ours_np, rtol=1e-12, atol=1e-12)
    # the torch path is differentiable: d|y|^2/dx flows back to the symbols
    pairs[-1][1].abs().pow(2).sum().backward()
    assert tx.grad is not None and torch.all(torch.isfinite(tx.grad))


def test_equalisation_recovers_symbols_and_reports_noise() -> None:
    rng = np.random.default_rng(6)
    x = np.exp(2j * np.pi * rng.random((4, 2, 8)))
    h = fading_coefficients("rayleigh", (4, 2), rng=7)
    y = block_fading(x, h, 0.0, noise=np.zeros_like(x))
    x_hat, no_eff = equalize(y, h, 0.1)
    np.testing.assert_allclose(x_hat, x, atol=1e-12)
    np.testing.assert_allclose(no_eff[..., 0], 0.1 / np.abs(h) ** 2)
    power = np.array([2.0, 0.5])
    y = transmit_parallel(x, h, power, 0.0, noise=np.zeros_like(x))
    x_hat, no_eff = receive_parallel(y, h, power, 0.1)
    np.testing.assert_allclose(x_hat, x, atol=1e-12)
    np.testing.assert_allclose(subchannel_snr(h, power, 0.1), 1 / no_eff[..., 0])


def test_imperfect_csi_error_variance() -> None:
    h = np.zeros(100_000, dtype=complex)
    e = estimate_channel(h, 0.05, rng=8)
    lo, hi = variance_interval(e.real)
    assert lo <= 0.025 <= hi
    assert estimate_channel(h, 0.0) is h


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: awgn(np.zeros(2, dtype=complex), -1.0), "no"),
        (lambda: awgn(np.zeros(2, dtype=complex), float("nan")), "no"),
        (lambda: fading_coefficients("nakagami", (2,)), "channel"),
        (lambda: fading_coefficients("rician", (2,), k_factor=-1), "rician_k"),
        (lambda: estimate_channel(np.ones(2, dtype=complex), -0.1), "csi_error_var"),
        (lambda: transmit_parallel(np.ones((2, 1)), np.ones(2), [-1.0, 1.0], 0.1), "power"),
        (lambda: receive_parallel(np.ones((2, 1)), np.ones(2), [0.0, 1.0], 0.1), "power"),
    ],
)
def test_invalid_arguments(call, field: str) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=f"^{field}:"):
        call()
