"""MS-SSIM (:func:`semcom.metrics.ms_ssim`) against references we did not write.

- one scale equals ``skimage.metrics.structural_similarity`` (Gaussian window, σ = 1.5,
  population covariances, data range 1) within 1e-4, on natural and random images;
- a constant brightness shift leaves every contrast-structure term at exactly 1, so MS-SSIM is
  the coarsest-scale SSIM (skimage's, on the 2×2-pooled images) to the power of its weight;
- identical images give 1; MS-SSIM falls strictly as Gaussian noise grows;
- the standard weights, the scale count per image size, and one-line errors;
- a scenario asking for ``ms_ssim`` writes it with its interval next to PSNR.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
from skimage.metrics import structural_similarity

from channels.errors import ConfigError
from semcom.metrics import MS_SSIM_WEIGHTS, ms_ssim, ms_ssim_scales


def _astronaut(side: int = 192) -> np.ndarray:
    image = skimage.data.astronaut()[100 : 100 + side, 150 : 150 + side].astype(np.float64) / 255
    return image.transpose(2, 0, 1)[None]  # [1, 3, side, side]


def _skimage_ssim(x: np.ndarray, y: np.ndarray) -> float:
    return structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1.0,
                                 channel_axis=0)  # fmt: skip


def _pool(x: np.ndarray) -> np.ndarray:
    b, c, h, w = x.shape
    x = x[..., : h // 2 * 2, : w // 2 * 2]
    return x.reshape(b, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


@pytest.mark.parametrize("noise", [0.02, 0.1, 0.3])
def test_one_scale_is_skimage_ssim(noise: float) -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([_astronaut(64), rng.random((1, 3, 64, 64))])
    y = np.clip(x + noise * rng.standard_normal(x.shape), 0, 1)
    got = ms_ssim(x, y, weights=[1.0])
    expected = [_skimage_ssim(x[b], y[b]) for b in range(2)]
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_brightness_shift_leaves_only_the_coarsest_luminance() -> None:
    x = _astronaut(192) * 0.8
    y = x + 0.1  # cs_j = 1 at every scale: variances and covariance do not move
    m = ms_ssim_scales(192, 192)
    assert m == 5
    coarse_x, coarse_y = x, y
    for _ in range(m - 1):
        coarse_x, coarse_y = _pool(coarse_x), _pool(coarse_y)
    # per channel (MS-SSIM is a product per channel, then the channel mean)
    per_channel = np.array([_skimage_ssim(coarse_x[0, c : c + 1], coarse_y[0, c : c + 1])
                            for c in range(3)])  # fmt: skip
    expected = np.mean(per_channel ** MS_SSIM_WEIGHTS[-1])
    assert ms_ssim(x, y)[0] == pytest.approx(expected, abs=1e-9)
    # explicit weights on the last scale only: the channel mean of the coarse SSIM
    weights = [0.0] * (m - 1) + [1.0]
    assert ms_ssim(x, y, weights=weights)[0] == pytest.approx(per_channel.mean(), abs=1e-9)
    # and on any finer scale only: cs_j = 1
    for j in range(m - 1):
        weights = [0.0] * m
        weights[j] = 1.0
        assert ms_ssim(x, y, weights=weights)[0] == pytest.approx(1.0, abs=1e-9)


def test_identical_images_give_one_and_noise_lowers_it_monotonically() -> None:
    x = np.concatenate([_astronaut(256), np.random.default_rng(2).random((1, 3, 256, 256))])
    np.testing.assert_allclose(ms_ssim(x, x), [1.0, 1.0], atol=1e-12)
    rng = np.random.default_rng(3)
    base = rng.standard_normal(x.shape)
    scores = [ms_ssim(x, np.clip(x + s * base, 0, 1)) for s in (0.01, 0.03, 0.1, 0.3)]
    assert np.all(np.diff(np.stack(scores), axis=0) < 0)
    assert np.all(np.stack(scores) < 1) and np.all(np.stack(scores) >= 0)


def test_weights_and_scale_counts() -> None:
    assert MS_SSIM_WEIGHTS == (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
    assert ms_ssim_scales(256, 256) == 5 and ms_ssim_scales(176, 200) == 5
    assert ms_ssim_scales(175, 175) == 4 and ms_ssim_scales(32, 32) == 2
    assert ms_ssim_scales(8, 8) == 1
    # a 32x32 patch: the first two weights, rescaled, on the patch and its pooled copy
    rng = np.random.default_rng(4)
    x = rng.random((3, 3, 32, 32))
    y = np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1)
    w = np.array(MS_SSIM_WEIGHTS[:2]) / sum(MS_SSIM_WEIGHTS[:2])
    np.testing.assert_allclose(ms_ssim(x, y), ms_ssim(x, y, weights=w), atol=1e-15)
    assert ms_ssim(x, y, reduction="mean") == pytest.approx(float(np.mean(ms_ssim(x, y))))


def test_bad_input_is_a_one_line_error() -> None:
    x = np.zeros((1, 3, 32, 32))
    with pytest.raises(ConfigError, match="x_hat"):
        ms_ssim(x, np.zeros((1, 3, 16, 16)))
    with pytest.raises(ConfigError, match=r"shape \[B, C, H, W\]"):
        ms_ssim(np.zeros((3, 32, 32)), np.zeros((3, 32, 32)))
    with pytest.raises(ConfigError, match="weights"):
        ms_ssim(x, x, weights=[])
    with pytest.raises(ConfigError, match="weights"):
        ms_ssim(x, x, weights=[0.5, -0.5])
    with pytest.raises(ConfigError, match="weights: .7 scales"):
        ms_ssim(x, x, weights=[0.1] * 7)


def test_link_evaluation_reports_ms_ssim_with_its_interval() -> None:
    import torch

    from semcom.evaluation import LinkEvaluation
    from semcom.link import SemanticLink, drop_distortion
    from semcom.link_task import metric_columns
    from semcom.models.build import build_model

    torch.manual_seed(0)
    # nearly flat images: an untrained decoder's nearly flat output keeps cs_j > 0
    model, images = build_model("mlp", n_features=4), 0.3 + 0.02 * torch.rand(4, 1, 8, 8)
    link = SemanticLink(model, np.full(4, 0.25), drop_distortion(model, images),
                        n_subchannels=4, snr_db=10.0)  # fmt: skip
    ev = LinkEvaluation(link, images, compute_ms_ssim=True)
    ev.add_draw(0)
    ev.add_draw(1)
    result = ev.result()
    x_hat = [link.transmit(images, d).detach().double().numpy() for d in (0, 1)]
    per_image = np.mean([ms_ssim(images.double().numpy(), xh) for xh in x_hat], axis=0)
    assert result.ms_ssim == pytest.approx(per_image.mean(), abs=1e-12)
    assert 0 < result.ms_ssim_ci[0] < result.ms_ssim < result.ms_ssim_ci[1] < 1
    columns = metric_columns(result, ms_ssim=True)
    assert list(columns)[-3:] == ["ms_ssim", "ms_ssim_ci_low", "ms_ssim_ci_high"]
    assert "ms_ssim" not in metric_columns(result)  # not asked for: the old columns only


def test_scenario_metrics_accept_ms_ssim_by_name_only() -> None:
    from pathlib import Path

    from semcom.scenario import load_scenario

    quickstart = Path(__file__).resolve().parents[2] / "scenarios" / "quickstart.yaml"
    assert "ms_ssim" not in load_scenario(quickstart).metrics  # not a default
    assert "ms_ssim" in load_scenario(quickstart, ["metrics=[psnr, ms_ssim]"]).metrics
    with pytest.raises(ConfigError, match="metrics"):
        load_scenario(quickstart, ["metrics=[psnr, msssim]"])
