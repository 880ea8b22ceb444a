"""semcom.metrics: MSE, PSNR, SSIM (vs a brute-force reference and scikit-image), accuracy,
means with Student-t and bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from channels.errors import ConfigError
from semcom.metrics import accuracy, gaussian_window, mean_ci, mse, psnr, ssim


def test_mse_and_psnr_known_values() -> None:
    x = np.zeros((3, 1, 4, 4))
    x_hat = x + np.array([0.1, 0.01, 0.0])[:, None, None, None]
    np.testing.assert_allclose(mse(x, x_hat), [1e-2, 1e-4, 0.0])
    per_image = psnr(x, x_hat)
    np.testing.assert_allclose(per_image[:2], [20.0, 40.0])
    assert per_image[2] == math.inf
    assert psnr(x[:2], x_hat[:2], reduction="mean") == pytest.approx(30.0)  # mean of per-image
    assert psnr(x[:1], x_hat[:1], data_range=255.0)[0] == pytest.approx(20 + 20 * np.log10(255))
    # torch tensors are accepted and give the same numbers
    np.testing.assert_array_equal(psnr(torch.from_numpy(x), torch.from_numpy(x_hat)), per_image)


def brute_force_ssim(x: np.ndarray, y: np.ndarray, win: int, sigma: float = 1.5) -> float:
    """Mean over channels and valid window positions of the SSIM formula, by explicit loops."""
    g = gaussian_window(win, sigma)
    w2 = np.outer(g, g)
    c1, c2 = 0.01**2, 0.03**2
    values = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - win + 1):
            for j in range(x.shape[2] - win + 1):
                a, b = x[c, i : i + win, j : j + win], y[c, i : i + win, j : j + win]
                ma, mb = (w2 * a).sum(), (w2 * b).sum()
                va, vb = (w2 * (a - ma) ** 2).sum(), (w2 * (b - mb) ** 2).sum()
                cov = (w2 * (a - ma) * (b - mb)).sum()
                values.append((2 * ma * mb + c1) * (2 * cov + c2)
                              / ((ma**2 + mb**2 + c1) * (va + vb + c2)))  # fmt: skip
    return float(np.mean(values))


def test_ssim_against_brute_force_and_closed_forms() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((2, 2, 13, 12))
    y = np.clip(x + 0.1 * rng.standard_normal(x.shape), 0, 1)
    got = ssim(x, y)
    for b in range(2):
        assert got[b] == pytest.approx(brute_force_ssim(x[b], y[b], 11), rel=1e-10)
    np.testing.assert_allclose(ssim(x, x), 1.0, rtol=1e-12)
    np.testing.assert_allclose(ssim(y, x), got, rtol=1e-12)  # symmetric
    # constant images: sigma = 0, SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = np.full((1, 3, 16, 16), 0.3), np.full((1, 3, 16, 16), 0.6)
    assert ssim(a, b)[0] == pytest.approx((2 * 0.18 + 1e-4) / (0.09 + 0.36 + 1e-4), rel=1e-12)
    # images smaller than the window (8x8 digits) use the largest odd window that fits, 7
    small = rng.random((1, 1, 8, 8))
    noisy = np.clip(small + 0.2 * rng.standard_normal(small.shape), 0, 1)
    assert ssim(small, noisy)[0] == pytest.approx(brute_force_ssim(small[0], noisy[0], 7))


def test_ssim_matches_scikit_image() -> None:
    metrics = pytest.importorskip("skimage.metrics")
    rng = np.random.default_rng(1)
    x = rng.random((3, 3, 32, 32))
    y = np.clip(x + 0.15 * rng.standard_normal(x.shape), 0, 1)
    for b in range(3):
        expected = metrics.structural_similarity(
            x[b], y[b], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
            data_range=1.0, channel_axis=0,
        )  # fmt: skip
        assert ssim(x[b : b + 1], y[b : b + 1])[0] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("shape", [(5, 3, 32, 32), (4, 1, 8, 8), (2, 3, 24, 40), (2, 3, 256, 256)])
def test_metrics_on_device_equal_the_numpy_metrics_and_scikit_image(shape: tuple) -> None:
    """``per_image_on_device`` (torch, the frames' device; CPU tensors here) gives the numbers of
    the NumPy metrics, negative SSIM included (an inverted image), and scikit-image's SSIM."""
    from skimage.metrics import structural_similarity

    from semcom.metrics import ms_ssim, per_image_on_device

    rng = np.random.default_rng(3)
    x = rng.random(shape)
    noisy = np.clip(x + 0.3 * rng.standard_normal(shape), 0, 1)
    for y in (noisy, 1.0 - x, x):  # noisy, anti-correlated (SSIM < 0), exact (PSNR inf)
        got = per_image_on_device(torch.from_numpy(x), torch.from_numpy(y), ssim=True,
                                  ms_ssim=True)  # fmt: skip
        assert np.allclose(got["mse"], mse(x, y), rtol=1e-12, atol=1e-15)
        assert np.array_equal(np.isinf(got["psnr_db"]), np.isinf(psnr(x, y)))
        finite = np.isfinite(got["psnr_db"])
        assert np.allclose(got["psnr_db"][finite], psnr(x, y)[finite], rtol=1e-12)
        assert np.allclose(got["ssim"], ssim(x, y), rtol=0, atol=1e-12)
        assert np.allclose(got["ms_ssim"], ms_ssim(x, y), rtol=0, atol=1e-12)
        if shape[-1] >= 11:  # scikit-image's window needs 11 pixels
            want = structural_similarity(x[0], y[0], gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=1.0,
                                         channel_axis=0)  # fmt: skip
            assert got["ssim"][0] == pytest.approx(want, rel=1e-9, abs=1e-12)
    inverted = per_image_on_device(torch.from_numpy(x), torch.from_numpy(1.0 - x))
    assert (inverted["ssim"] < 0).all() and "ms_ssim" not in inverted


def test_metrics_on_device_in_pieces_equal_one_piece(monkeypatch: pytest.MonkeyPatch) -> None:
    """Scoring a large batch in pieces (bounded device memory) changes no number."""
    from semcom import metrics

    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.random((10, 3, 16, 16)))
    y = torch.from_numpy(np.clip(x.numpy() + 0.2 * rng.standard_normal(x.shape), 0, 1))
    whole = metrics.per_image_on_device(x, y, ms_ssim=True)
    monkeypatch.setattr(metrics, "DEVICE_CHUNK_VALUES", 3 * 16 * 16 * 3)  # pieces of 3 images
    pieces = metrics.per_image_on_device(x, y, ms_ssim=True)
    assert whole.keys() == pieces.keys() == {"mse", "psnr_db", "ssim", "ms_ssim"}
    for name in whole:
        np.testing.assert_array_equal(pieces[name], whole[name])


def test_accuracy() -> None:
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0], [0.2, 0.1]])
    labels = np.array([0, 1, 1, 0])
    assert accuracy(logits, labels) == 0.75
    assert accuracy(np.array([0, 1, 0, 0]), labels) == 0.75
    np.testing.assert_array_equal(accuracy(logits, labels, reduction="none"), [1, 1, 0, 1])


def test_mean_ci_t_matches_scipy_and_covers() -> None:
    rng = np.random.default_rng(2)
    values = rng.normal(3.0, 2.0, size=12)
    est = mean_ci(values, confidence=0.9)
    low, high = stats.t.interval(0.9, 11, loc=values.mean(), scale=stats.sem(values))
    assert (est.mean, est.n, est.method) == (pytest.approx(values.mean()), 12, "t")
    assert est.interval == pytest.approx((low, high), rel=1e-12)
    # coverage of the 95 % interval over 1000 normal samples of size 8
    hits = sum(
        (e := mean_ci(rng.normal(1.0, 1.0, size=8))).low <= 1.0 <= e.high for _ in range(1000)
    )
    assert stats.binomtest(hits, 1000, 0.95).pvalue > 1e-3


def test_mean_ci_bootstrap() -> None:
    """The percentile interval at the level asked for (0.8, not the default), against scipy's
    percentile bootstrap: within 0.08 standard errors, where the 0.85 and 0.9 intervals are
    0.16 and 0.36 standard errors away (Monte Carlo noise of each quantile ~0.01)."""
    rng = np.random.default_rng(3)
    values = rng.exponential(1.0, size=400)  # skewed: the interval is not symmetric
    boot = mean_ci(values, confidence=0.8, method="bootstrap", n_boot=40_000, seed=1)
    assert boot.confidence == 0.8 and boot.low < boot.mean < boot.high

    def scipy_interval(level: float) -> tuple[float, float, float]:
        res = stats.bootstrap(
            (values,),
            np.mean,
            confidence_level=level,
            n_resamples=40_000,
            method="percentile",
            random_state=np.random.default_rng(9),
        )
        return res.confidence_interval.low, res.confidence_interval.high, res.standard_error

    low, high, se = scipy_interval(0.8)
    assert abs(boot.low - low) < 0.08 * se and abs(boot.high - high) < 0.08 * se
    for other in (0.85, 0.9, 0.95):  # the check tells the levels apart
        o_low, o_high, _ = scipy_interval(other)
        assert abs(boot.low - o_low) > 0.12 * se and abs(boot.high - o_high) > 0.12 * se
    # and the default level is 0.95, by the same comparison
    default = mean_ci(values, method="bootstrap", n_boot=40_000, seed=1)
    low, high, se = scipy_interval(0.95)
    assert abs(default.low - low) < 0.1 * se and abs(default.high - high) < 0.1 * se
    same = mean_ci(values, method="bootstrap", seed=1)
    assert same == mean_ci(values, method="bootstrap", seed=1)


def test_mean_ci_degenerate_cases() -> None:
    assert mean_ci([2.0]).interval == (-math.inf, math.inf)
    assert mean_ci([2.0, 2.0, 2.0]).interval == (2.0, 2.0)
    inf = mean_ci([1.0, math.inf])
    assert inf.mean == math.inf and all(math.isnan(v) for v in inf.interval)


def test_invalid_input_raises_config_error() -> None:
    x = np.zeros((2, 1, 4, 4))
    with pytest.raises(ConfigError, match="x_hat"):
        mse(x, x[:1])
    with pytest.raises(ConfigError, match="finite"):
        psnr(x, x + np.nan)
    with pytest.raises(ConfigError, match="data_range"):
        psnr(x, x, data_range=0.0)
    with pytest.raises(ConfigError, match="reduction"):
        mse(x, x, reduction="sum")
    with pytest.raises(ConfigError, match=r"\[B, C, H, W\]"):
        ssim(x[:, 0], x[:, 0])
    with pytest.raises(ConfigError, match="labels"):
        accuracy(np.zeros((3, 2)), [0, 1])
    for kwargs in ({"confidence": 1.0}, {"method": "z"}, {"n_boot": 0}):
        with pytest.raises(ConfigError):
            mean_ci([1.0, 2.0], **kwargs)
    with pytest.raises(ConfigError, match="values"):
        mean_ci([])
