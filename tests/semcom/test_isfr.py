"""semcom.isfr: quantiser vs channels.bits, nested-dropout law, BSC flip rates, STE, switches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from channels import bits
from channels.errors import ConfigError
from semcom.isfr import (
    BerMatching,
    NestedDropout,
    TrainingChannel,
    dequantize_index,
    log_linear_profile,
    quantize_index,
    straight_through_quantize,
    training_channel,
)

# ---------------------------------------------------------------------------------------------
# quantiser


@pytest.mark.parametrize("q", [1, 3, 8, 12, 16])
def test_torch_quantiser_equals_channels_bits(q: int) -> None:
    rng = np.random.default_rng(q)
    step = bits.quantization_step(q)
    edges = -1.0 + step * np.arange(0, 2**q + 1, max(1, 2**q // 64))  # bin edges
    z64 = np.concatenate(
        [
            rng.uniform(-1.0, 1.0, 4000),
            edges,
            np.nextafter(edges, -np.inf),
            np.nextafter(edges, np.inf),
            [-1.0, 1.0, -1.5, 2.0, -np.inf, np.inf, 0.0, -0.0],
        ]
    )
    for dtype in (torch.float64, torch.float32):
        z = torch.tensor(z64).to(dtype)
        expected = bits.quantize(z.double().numpy(), q)
        got = quantize_index(z, q)
        assert got.dtype == torch.int64
        np.testing.assert_array_equal(got.numpy(), expected)
        np.testing.assert_array_equal(
            dequantize_index(got, q).double().numpy(), bits.dequantize(expected, q)
        )
        ste = straight_through_quantize(z[torch.isfinite(z)], q)
        reference = torch.from_numpy(bits.dequantize(expected[np.isfinite(z64)], q))
        assert ste.dtype == dtype and torch.equal(ste, reference.to(dtype))


def test_straight_through_quantize_gradient_is_identity() -> None:
    z = (torch.rand(3, 4, 5) * 2 - 1).requires_grad_()
    g = torch.randn(3, 4, 5)
    straight_through_quantize(z, 3).backward(g)
    assert torch.equal(z.grad, g)


# ---------------------------------------------------------------------------------------------
# nested dropout


def _chi_square_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """Pearson chi-square p-value, merging neighbouring bins until each expects >= 5."""
    n = counts.sum()
    obs, exp, acc_o, acc_e = [], [], 0.0, 0.0
    for o, p in zip(counts, probs, strict=True):
        acc_o, acc_e = acc_o + o, acc_e + n * p
        if acc_e >= 5:
            obs.append(acc_o)
            exp.append(acc_e)
            acc_o = acc_e = 0.0
    obs[-1] += acc_o
    exp[-1] += acc_e
    return float(stats.chisquare(obs, exp).pvalue)


@pytest.mark.parametrize(
    ("law", "rho", "n_min", "p_nd"),
    [("geometric", 0.1, 1, 1.0), ("uniform", 0.1, 1, 1.0), ("geometric", 0.2, 3, 0.6)],
)
def test_nested_dropout_law_chi_square(law: str, rho: float, n_min: int, p_nd: float) -> None:
    n, draws = 16, 200_000
    nd = NestedDropout(n, law=law, rho=rho, n_min=n_min, p_nd=p_nd, seed=7)
    kept = nd.sample_kept(draws).numpy()
    law_kept = p_nd * nd.kept_pmf().numpy()
    law_kept[-1] += 1.0 - p_nd
    assert np.isclose(law_kept.sum(), 1.0)
    counts = np.bincount(kept - 1, minlength=n)
    assert _chi_square_p(counts, law_kept) > 1e-3
    # per-feature retention frequencies of the masks vs the analytic r_i (binomial, 4.5 sigma)
    mask = nd.sample_mask(draws)
    freq = mask.double().mean(0).numpy()
    r = nd.retention().numpy()
    sigma = np.sqrt(r * (1 - r) / draws) + 1e-12
    assert np.all(np.abs(freq - r) <= 4.5 * sigma)
    assert np.all(freq[:n_min] == 1.0)
    # r_i = P(kept >= i) is the tail sum of the kept law
    assert np.allclose(r, law_kept[::-1].cumsum()[::-1])


def test_nested_dropout_retention_formula_matches_method_md() -> None:
    r = NestedDropout(16, rho=0.1).retention().numpy()
    assert r[0] == 1.0 and np.all(np.diff(r) < 0)
    assert abs(r[7] - 0.36) < 0.01 and abs(r[15] - 0.03) < 0.005  # docs/method.md §2.3 examples
    q = 0.9
    assert np.isclose(r[7], (q**7 - q**16) / (1 - q**16))
    assert np.allclose(
        NestedDropout(8, law="uniform").retention().numpy()[1:], np.arange(7, 0, -1) / 8
    )


def test_nested_dropout_masks_tails_is_seeded_and_eval_identity() -> None:
    nd = NestedDropout(10, seed=3, n_min=2)
    z = torch.randn(64, 10, 3)
    out = nd(z)
    kept = (out != 0).any(-1)  # [B, N]
    # a prefix of features is kept, the rest is exactly zero, at least n_min kept
    assert torch.equal(kept, kept.cummin(dim=1).values)
    assert bool(kept[:, :2].all())
    assert torch.equal(out[kept], z[kept])
    nd.reseed(3)
    assert torch.equal(nd(z), out)
    assert nd.eval()(z) is z


# ---------------------------------------------------------------------------------------------
# BER matching


def _flip_counts(q: int, z: torch.Tensor, noisy: torch.Tensor) -> np.ndarray:
    """Number of flipped bits per feature, ``[N]``."""
    diff = (quantize_index(z, q) ^ quantize_index(noisy, q)).numpy()
    bit_counts = np.zeros(diff.shape, np.int64)
    for j in range(q):
        bit_counts += (diff >> j) & 1
    return bit_counts.sum(axis=(0, 2))


def test_ber_matching_flip_rates_inside_binomial_intervals() -> None:
    n, q, batch, length = 12, 8, 256, 16
    bm = BerMatching(n, q, eps_min=1e-3, eps_max=0.2, seed=11).train()
    z = torch.rand(batch, n, length, generator=torch.Generator().manual_seed(0)) * 2 - 1
    counts = _flip_counts(q, z, bm(z))
    trials = batch * length * q
    eps = bm.flip_probs.numpy()
    assert np.allclose(eps, np.exp(np.linspace(np.log(1e-3), np.log(0.2), n)))
    for i in range(n):
        ci = stats.binomtest(int(counts[i]), trials).proportion_ci(confidence_level=0.9999)
        assert ci.low <= eps[i] <= ci.high, (i, counts[i] / trials, eps[i])


def test_ber_matching_profiles() -> None:
    ll = log_linear_profile(16, 1e-4, 5e-2)
    assert np.isclose(float(ll[0]), 1e-4) and np.isclose(float(ll[-1]), 5e-2)
    uniform = BerMatching(16, profile="uniform").flip_probs
    assert torch.allclose(uniform, torch.full((16,), float(ll.mean()), dtype=torch.float64))
    matched = BerMatching(4, profile="matched", flip_probs=[0.0, 0.1, 0.2, 0.3]).flip_probs
    assert matched.tolist() == [0.0, 0.1, 0.2, 0.3]
    assert log_linear_profile(1, 1e-3, 1e-2).tolist() == [1e-3]


def test_ber_matching_bank_draws_one_row_per_sample() -> None:
    n, q = 3, 4
    bank = np.stack([np.zeros(n), np.ones(n)])  # row 0 never flips, row 1 flips every bit
    bm = BerMatching(n, q, profile="matched", flip_probs=bank, seed=5).train()
    z = torch.rand(200, n, 6) * 2 - 1
    i, j = quantize_index(z, q), quantize_index(bm(z), q)
    untouched = (i == j).flatten(1).all(1)
    inverted = (j == (2**q - 1) - i).flatten(1).all(1)
    assert bool((untouched ^ inverted).all())
    assert 60 < int(untouched.sum()) < 140


def test_ber_matching_gaussian_mode_variance() -> None:
    n, q = 4, 4
    bm = BerMatching(n, q, eps_min=1e-3, eps_max=1e-2, mode="gaussian", seed=2).train()
    sigma2 = bm.noise_variance().numpy()
    np.testing.assert_allclose(
        sigma2, bits.mse_gaussian_equivalent_variance(bm.flip_probs.numpy(), q), rtol=1e-12
    )
    z = torch.rand(2000, n, 8) * 2 - 1
    noise = (bm(z) - straight_through_quantize(z, q)).transpose(0, 1).reshape(n, -1)
    var = noise.double().var(1).numpy()
    dof = noise.shape[1] - 1
    lo, hi = stats.chi2.ppf([1e-5, 1 - 1e-5], dof) / dof
    assert np.all((var / sigma2 > lo) & (var / sigma2 < hi))


@pytest.mark.parametrize("mode", ["bsc", "gaussian"])
def test_ber_matching_ste_gradient_and_eval_identity(mode: str) -> None:
    bm = BerMatching(5, 6, eps_max=0.3, mode=mode, seed=0).train()
    z = (torch.rand(8, 5, 4) * 2 - 1).requires_grad_()
    g = torch.randn(8, 5, 4)
    out = bm(z)
    assert not torch.equal(out, z)
    out.backward(g)
    assert torch.equal(z.grad, g)
    zz = torch.rand(8, 5, 4)
    assert bm.eval()(zz) is zz


# ---------------------------------------------------------------------------------------------
# training channel and switches


def test_training_channel_kinds_and_switches() -> None:
    isfr = training_channel("isfr", 16)
    assert (
        isinstance(isfr.nested_dropout, NestedDropout) and isfr.distortion.profile == "log-linear"
    )
    conv = training_channel("conventional", 16)
    assert conv.nested_dropout is None and conv.distortion.profile == "uniform"
    assert torch.allclose(conv.distortion.flip_probs, isfr.distortion.flip_probs.mean().expand(16))
    none = training_channel("none", 16).train()
    z = torch.randn(2, 16, 3)
    assert none(z) is z
    assert training_channel("isfr", 16, nested_dropout=False).nested_dropout is None
    assert training_channel("isfr", 16, distortion=False).distortion is None
    assert training_channel("conventional", 16, nested_dropout=True).nested_dropout is not None
    options = isfr.options
    assert training_channel("isfr", 16, **options).options == options


def test_training_channel_zeroes_dropped_features_and_passes_masked_gradients() -> None:
    ch = training_channel("isfr", 8, rho=0.5, eps_min=0.01, eps_max=0.3, seed=1).train()
    z = (torch.rand(32, 8, 4) * 2 - 1).requires_grad_()
    out = ch(z)
    ch.reseed(1)
    mask = ch.nested_dropout.sample_mask(32)[..., None]
    assert bool((out[mask.expand_as(out) == 0] == 0).all())  # exact zeros, not Δ/2
    g = torch.randn_like(out)
    out.backward(g)
    assert torch.equal(z.grad, g * mask)
    assert ch.eval()(z) is z


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "isrf"}, "kind: 'isrf'"),
        ({"kind": "none", "distortion": True}, "distortion: True"),
        ({"law": "poisson"}, "law: 'poisson'"),
        ({"rho": 1.0}, "rho: 1.0"),
        ({"rho": 0.0}, "rho: 0.0"),
        ({"n_min": 17}, "n_min: 17"),
        ({"p_nd": 1.5}, "p_nd: 1.5"),
        ({"bits_per_scalar": 0}, "bits_per_scalar: 0"),
        ({"profile": "linear"}, "profile: 'linear'"),
        ({"eps_min": 0.0}, "eps_min: 0.0"),
        ({"eps_min": 0.1, "eps_max": 0.01}, "eps_max: 0.01"),
        ({"profile": "matched"}, "flip_probs: None"),
        ({"profile": "matched", "flip_probs": [0.1] * 3}, "flip_probs"),
        ({"profile": "matched", "flip_probs": [2.0] * 16}, "flip_probs"),
        ({"flip_probs": [0.1] * 16}, "flip_probs"),
        ({"mode": "awgn"}, "mode: 'awgn'"),
        ({"seed": -1}, "seed: -1"),
        ({"nested_dropout": "yes"}, "nested_dropout: 'yes'"),
    ],
)
def test_invalid_options(kwargs: dict, match: str) -> None:
    kind = kwargs.pop("kind", "isfr")
    with pytest.raises(ConfigError, match=match):
        training_channel(kind, 16, **kwargs)


def test_wrong_feature_count_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"\[B, 16, L\]"):
        training_channel("isfr", 16).train()(torch.zeros(2, 8, 3))
    assert isinstance(TrainingChannel(), TrainingChannel)
