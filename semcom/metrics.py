"""Image and task metrics of the semantic link, and means with confidence intervals.

Images are batch-first ``[B, C, H, W]`` (NumPy arrays or torch tensors) with pixel values in
``[0, data_range]`` (default ``[0, 1]``). Every per-image metric returns float64 ``[B]`` with
``reduction="none"`` (default) or the mean over the batch with ``reduction="mean"``.

- MSE: ``MSE_b = (1/D) Σ_p (x_p − x̂_p)^2`` over the ``D = C·H·W`` values of image ``b``.
- PSNR in dB: ``PSNR_b = 10 log10(data_range^2 / MSE_b)`` (``+inf`` when ``MSE_b = 0``). The mean
  PSNR of a batch is the mean of the per-image PSNRs (not the PSNR of the mean MSE).
- SSIM (Wang, Bovik, Sheikh, Simoncelli, IEEE TIP 2004) with an 11×11 Gaussian window,
  ``σ = 1.5`` (truncated at 3.5 σ), ``K1 = 0.01``, ``K2 = 0.03``, ``C1 = (K1 R)^2``,
  ``C2 = (K2 R)^2`` with ``R = data_range``, population (not sample) covariances::

      SSIM(x, y) = (2 μx μy + C1)(2 σxy + C2) / ((μx^2 + μy^2 + C1)(σx^2 + σy^2 + C2))

  evaluated at every window position that lies fully inside the image and averaged over
  positions and channels; the same numbers as ``skimage.metrics.structural_similarity(x, y,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=R,
  channel_axis=0)``. Images smaller than the window (e.g. 8×8 digits) use the largest odd
  window that fits, with the same σ.
- MS-SSIM (Wang, Simoncelli, Bovik, Asilomar 2003) in torch, float64: at scales
  ``j = 1..M`` (scale 1 the image, each next one a 2×2 average pooling with stride 2 of the
  previous one) the contrast-structure term ``cs_j = mean (2 σxy + C2) / (σx^2 + σy^2 + C2)``
  and at the coarsest scale the full SSIM ``s_M`` (same window, constants and valid positions
  as SSIM above), per channel::

      MS-SSIM = Π_{j<M} max(cs_j, 0)^{w_j} · max(s_M, 0)^{w_M}

  averaged over channels, with the standard five weights ``w = (0.0448, 0.2856, 0.3001,
  0.2363, 0.1333)``. Five scales need a side of at least ``16 · 11 = 176`` pixels; a smaller
  image uses the first ``M`` scales whose side still holds the 11-pixel window (at least one;
  e.g. ``M = 2`` for 32×32 patches, ``M = 5`` for 256×256 crops) with their weights scaled to sum
  to 1, and an image smaller than the window the largest odd window that fits, as SSIM does.
  With one weight it is SSIM (the same numbers as ``skimage.metrics.structural_similarity``).
- Accuracy: share of correct predictions (``argmax`` of logits ``[B, C]`` or labels ``[B]``).
- :func:`mean_ci`: mean with a two-sided Student-t interval ``x̄ ± t_{(1+c)/2, n−1} s/√n``
  (``scipy.stats.t``) or a percentile bootstrap interval of the mean.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from channels.errors import check_choice, check_int, check_real, fail

REDUCTIONS = ("none", "mean")
WIN_SIZE, SIGMA, K1, K2 = 11, 1.5, 0.01, 0.03
"""SSIM's defaults: Gaussian window side and width (pixels), stability constants."""
CI_METHODS = ("t", "bootstrap")


def _array(value: Any, field: str) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(field, type(value).__name__, "a real array or tensor") from None
    return arr


def _pair(x: Any, x_hat: Any, min_ndim: int = 1) -> tuple[np.ndarray, np.ndarray]:
    a, b = _array(x, "x"), _array(x_hat, "x_hat")
    if a.shape != b.shape:
        raise fail("x_hat", f"array of shape {b.shape}", f"the shape of x, {a.shape}")
    if a.ndim < min_ndim or a.shape[0] == 0:
        raise fail("x", f"array of shape {a.shape}", f"at least {min_ndim} dimensions, batch >= 1")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise fail("x", "non-finite values", "finite values")
    return a, b


def _reduce(values: np.ndarray, reduction: str) -> np.ndarray | float:
    check_choice("reduction", reduction, REDUCTIONS, " or ".join(REDUCTIONS))
    return float(np.mean(values)) if reduction == "mean" else values


def mse(x: Any, x_hat: Any, reduction: str = "none") -> np.ndarray | float:
    """Per-image mean squared error ``[B]`` of ``x, x_hat [B, ...]`` (float64)."""
    a, b = _pair(x, x_hat)
    per_image = ((a - b) ** 2).reshape(a.shape[0], -1).mean(axis=1)
    return _reduce(per_image, reduction)


def psnr(x: Any, x_hat: Any, data_range: float = 1.0, reduction: str = "none") -> Any:
    """Per-image PSNR in dB ``[B]``: ``10 log10(data_range^2 / MSE_b)``, ``+inf`` if exact."""
    peak = check_real("data_range", data_range, 0, open_low=True)
    errors = mse(x, x_hat)
    with np.errstate(divide="ignore"):
        per_image = 10.0 * np.log10(peak * peak / errors)
    return _reduce(per_image, reduction)


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian weights ``[size]`` (odd size), ``∝ exp(−k^2 / 2σ^2)``."""
    if size < 1 or size % 2 == 0:
        raise fail("win_size", size, "an odd integer >= 1")
    if not (math.isfinite(sigma) and sigma > 0):
        raise fail("sigma", sigma, "a finite number > 0")
    k = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(k * k) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of ``a [..., H, W]`` with ``g ⊗ g``."""
    win = g.size
    rows = np.lib.stride_tricks.sliding_window_view(a, win, axis=-2) @ g  # [..., H', W]
    return np.lib.stride_tricks.sliding_window_view(rows, win, axis=-1) @ g  # [..., H', W']


def ssim(
    x: Any,
    x_hat: Any,
    data_range: float = 1.0,
    win_size: int = WIN_SIZE,
    sigma: float = SIGMA,
    k1: float = K1,
    k2: float = K2,
    reduction: str = "none",
) -> np.ndarray | float:
    """Per-image Gaussian-window SSIM ``[B]`` of images ``[B, C, H, W]`` (module docstring)."""
    a, b = _pair(x, x_hat)
    if a.ndim != 4:
        raise fail("x", f"array of shape {a.shape}", "shape [B, C, H, W]")
    peak = check_real("data_range", data_range, 0, open_low=True)
    g = gaussian_window(_window_side(a.shape, win_size), sigma)
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    var_a = _filter_valid(a * a, g) - mu_a * mu_a
    var_b = _filter_valid(b * b, g) - mu_b * mu_b
    cov = _filter_valid(a * b, g) - mu_a * mu_b
    ssim_map = _ssim_map(mu_a, mu_b, var_a, var_b, cov, peak, k1, k2)
    per_image = ssim_map.reshape(a.shape[0], -1).mean(axis=1)
    return _reduce(per_image, reduction)


def _window_side(shape: tuple[int, ...], win_size: int) -> int:
    """The Gaussian window's side on images ``[..., H, W]``: the largest odd one up to
    ``win_size`` that fits (at least 1)."""
    side = min(shape[-2:])
    return max(min(int(win_size), side if side % 2 else side - 1), 1)


def _ssim_map(mu_a: Any, mu_b: Any, var_a: Any, var_b: Any, cov: Any, peak: float, k1: float,
              k2: float) -> Any:  # fmt: skip
    """SSIM at every window from the local moments (NumPy arrays or tensors alike):
    ``(2 mu_a mu_b + c1)(2 cov + c2) / ((mu_a^2 + mu_b^2 + c1)(var_a + var_b + c2))``,
    ``c = (k peak)^2``."""
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    num = (2.0 * mu_a * mu_b + c1) * (2.0 * cov + c2)
    den = (mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2)
    return num / den


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
"""The five scale weights of Wang, Simoncelli and Bovik (2003), finest scale first."""


def ms_ssim_scales(height: int, width: int, win_size: int = WIN_SIZE, max_scales: int = 5) -> int:
    """How many scales ``M`` MS-SSIM uses on ``height × width`` images: the largest
    ``M <= max_scales`` with ``min(H, W) // 2^(M-1) >= win_size`` (at least 1).

    Examples:
        >>> ms_ssim_scales(256, 256), ms_ssim_scales(32, 32), ms_ssim_scales(8, 8)
        (5, 2, 1)
    """
    side, m = min(int(height), int(width)), 1
    while m < max_scales and side // 2**m >= win_size:
        m += 1
    return m


def _band(length: int, g: Any) -> Any:
    """Banded matrix ``[length - k + 1, length]`` (on ``g``'s device) whose row ``i`` holds ``g``
    at columns ``i..i+k-1``: ``B @ x`` is the 'valid' correlation of ``x`` with ``g`` along that
    axis."""
    import torch

    k = g.numel()
    out = torch.zeros(length - k + 1, length, dtype=g.dtype, device=g.device)
    index = (torch.arange(length - k + 1, device=g.device)[:, None]
             + torch.arange(k, device=g.device)[None, :])  # fmt: skip
    out.scatter_(1, index, g.expand(length - k + 1, k).clone())
    return out


def ms_ssim(
    x: Any,
    x_hat: Any,
    data_range: float = 1.0,
    weights: Any = None,
    win_size: int = WIN_SIZE,
    sigma: float = SIGMA,
    k1: float = K1,
    k2: float = K2,
    reduction: str = "none",
) -> np.ndarray | float:
    """Per-image multi-scale SSIM ``[B]`` (float64) of images ``[B, C, H, W]`` (module docstring).

    Computed in torch (float64, CPU or the tensors' device); NumPy arrays are accepted too.

    Args:
        x, x_hat: images ``[B, C, H, W]`` with values in ``[0, data_range]``.
        data_range: ``R`` of the constants ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``.
        weights: scale weights, finest first; ``None``: :data:`MS_SSIM_WEIGHTS` as published
            (they sum to 1.0001) when five scales fit, else the first ``M``
            (:func:`ms_ssim_scales`) rescaled to sum 1.
            Given weights are used as they are (their count is the number of scales).
        win_size, sigma, k1, k2: the Gaussian window and constants of SSIM.
        reduction: ``"none"`` (per image) or ``"mean"``.

    Returns:
        float64 ``[B]`` (or their mean); 1 for identical images.

    Raises:
        ConfigError: shapes differ or are not ``[B, C, H, W]``, non-finite values, bad weights.

    Examples:
        >>> x = np.random.default_rng(0).random((2, 3, 64, 64))
        >>> ms_ssim(x, x).tolist()
        [1.0, 1.0]
    """
    import torch

    a, b = _pair(x, x_hat)
    if a.ndim != 4:
        raise fail("x", f"array of shape {a.shape}", "shape [B, C, H, W]")
    peak = check_real("data_range", data_range, 0, open_low=True)
    h, w = a.shape[-2:]
    if weights is None:
        wts = _default_weights(h, w, win_size)
    else:
        wts = np.asarray(weights, dtype=np.float64).reshape(-1)
        if wts.size == 0 or not np.all(np.isfinite(wts)) or np.any(wts < 0):
            raise fail("weights", weights, "a non-empty list of finite weights >= 0")
        if min(h, w) // 2 ** (wts.size - 1) < 1:
            raise fail("weights", f"{wts.size} scales", f"at most {ms_ssim_scales(h, w, 1, 64)}"
                       f" scales for {h}x{w} images")  # fmt: skip
    score = _ms_ssim_channels(torch.from_numpy(a), torch.from_numpy(b), wts, peak, win_size, sigma,
                              k1, k2)  # fmt: skip
    return _reduce(score.numpy(), reduction)


def _default_weights(height: int, width: int, win_size: int) -> np.ndarray:
    """:data:`MS_SSIM_WEIGHTS` when five scales fit, else the first ``M`` rescaled to sum 1."""
    m = ms_ssim_scales(height, width, win_size, len(MS_SSIM_WEIGHTS))
    wts = np.asarray(MS_SSIM_WEIGHTS[:m], dtype=np.float64)
    return wts / wts.sum() if m < len(MS_SSIM_WEIGHTS) else wts


def _local_moments(ta: Any, tb: Any, win_size: int, sigma: float) -> tuple[Any, ...]:
    """Gaussian-window means, variances and covariance ``(mu_a, mu_b, var_a, var_b, cov)`` of
    tensors ``[..., H, W]`` at every valid window position, on their device; the window is the
    largest odd one up to ``win_size`` that fits (module docstring)."""
    import torch

    g = torch.from_numpy(gaussian_window(_window_side(ta.shape, win_size), sigma)).to(ta.device)
    rows, cols = _band(ta.shape[-2], g), _band(ta.shape[-1], g)
    # the five local moments at once; B_h X B_w^T is the separable 'valid' correlation
    stack = torch.stack([ta, tb, ta * ta, tb * tb, ta * tb])
    mu_a, mu_b, e_aa, e_bb, e_ab = rows @ stack @ cols.T
    return mu_a, mu_b, e_aa - mu_a * mu_a, e_bb - mu_b * mu_b, e_ab - mu_a * mu_b


def _ms_ssim_channels(a: Any, b: Any, wts: np.ndarray, peak: float, win_size: int, sigma: float,
                      k1: float, k2: float) -> Any:  # fmt: skip
    """MS-SSIM of float64 tensors ``[B, C, H, W]`` on their device: the per-image mean over
    channels ``[B]`` (module docstring; ``wts`` already checked)."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    h, w = a.shape[-2:]
    c1, c2 = (k1 * peak) ** 2, (k2 * peak) ** 2
    ta = a.reshape(-1, h, w)  # channels as separate images
    tb = b.reshape(-1, h, w)
    per_scale = []
    for j in range(wts.size):
        mu_a, mu_b, var_a, var_b, cov = _local_moments(ta, tb, win_size, sigma)
        cs_map = (2.0 * cov + c2) / (var_a + var_b + c2)
        if j == wts.size - 1:
            lum = (2.0 * mu_a * mu_b + c1) / (mu_a * mu_a + mu_b * mu_b + c1)
            cs_map = lum * cs_map
        per_scale.append(cs_map.flatten(1).mean(dim=1).clamp(min=0.0))  # [B·C]
        if j < wts.size - 1:
            ta, tb = F.avg_pool2d(ta[:, None], 2)[:, 0], F.avg_pool2d(tb[:, None], 2)[:, 0]
    values = torch.stack(per_scale, dim=1)  # [B·C, M]
    score = torch.prod(values ** torch.from_numpy(wts).to(values.device)[None, :], dim=1)
    return score.reshape(a.shape[0], a.shape[1]).mean(dim=1)


DEVICE_CHUNK_VALUES = 2**22
"""Pixel values scored at once by :func:`per_image_on_device` (its five float64 local-moment
maps then take about 160 MB of device memory, whatever the batch)."""


def per_image_on_device(x: Any, x_hat: Any, ssim: bool = True, ms_ssim: bool = False,
                        data_range: float = 1.0) -> dict[str, np.ndarray]:  # fmt: skip
    """MSE, PSNR (dB) and, if asked, SSIM and MS-SSIM of torch images ``[B, C, H, W]`` computed
    in float64 on their device (a GPU's frames need not come to the host; only the ``[B]``
    results do), as float64 NumPy ``[B]`` keyed ``mse``, ``psnr_db``, ``ssim``, ``ms_ssim``.

    The definitions are the module docstring's, with the defaults of :func:`ssim` and
    :func:`ms_ssim`; SSIM's local moments come from banded matrix products instead of sliding
    windows, so the numbers equal :func:`ssim`'s up to float64 rounding. Inputs are trusted
    (the evaluation's own reference and frames: same shape, finite).
    """
    import torch

    values = max(1, int(np.prod(x.shape[1:])))
    step = max(1, DEVICE_CHUNK_VALUES // values)
    if x.shape[0] > step:  # bound the device memory of the float64 moments
        parts = [per_image_on_device(x[s : s + step], x_hat[s : s + step], ssim, ms_ssim,
                                     data_range) for s in range(0, x.shape[0], step)]  # fmt: skip
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    a = x.detach().to(torch.float64)
    b = x_hat.detach().to(device=a.device, dtype=torch.float64)
    peak = float(data_range)
    errors = ((a - b) ** 2).flatten(1).mean(dim=1)
    out = {"mse": errors, "psnr_db": 10.0 * torch.log10(peak * peak / errors)}
    h, w = a.shape[-2:]
    if ssim:
        ssim_map = _ssim_map(*_local_moments(a, b, WIN_SIZE, SIGMA), peak, K1, K2)
        out["ssim"] = ssim_map.flatten(1).mean(dim=1)
    if ms_ssim:
        wts = _default_weights(h, w, WIN_SIZE)
        out["ms_ssim"] = _ms_ssim_channels(a, b, wts, peak, WIN_SIZE, SIGMA, K1, K2)
    return {name: value.cpu().numpy() for name, value in out.items()}


def accuracy(predictions: Any, labels: Any, reduction: str = "mean") -> np.ndarray | float:
    """Share of correct predictions: logits ``[B, C]`` (argmax) or class labels ``[B]``.

    ``reduction="none"`` returns the 0/1 correctness ``[B]`` (float64).
    """
    pred = _array(predictions, "predictions")
    truth = _array(labels, "labels").reshape(-1)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if pred.ndim != 1 or pred.shape != truth.shape or pred.size == 0:
        raise fail("labels", f"array of shape {truth.shape}", "one label per prediction")
    return _reduce((pred == truth).astype(np.float64), reduction)


@dataclass(frozen=True)
class Estimate:
    """A mean with its two-sided interval ``[low, high]`` at ``confidence`` from ``n`` values."""

    mean: float
    low: float
    high: float
    n: int
    confidence: float
    method: str

    @property
    def interval(self) -> tuple[float, float]:
        """``(low, high)``."""
        return self.low, self.high

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def mean_ci(
    values: Any,
    confidence: float = 0.95,
    method: str = "t",
    n_boot: int = 2000,
    seed: int = 0,
) -> Estimate:
    """Mean of ``values [n]`` with a two-sided confidence interval.

    ``method="t"``: ``x̄ ± t_{(1+c)/2, n−1} s / √n`` with the sample standard deviation ``s``
    (``n − 1`` in the denominator). ``method="bootstrap"``: the ``(1−c)/2`` and ``(1+c)/2``
    quantiles of the means of ``n_boot`` resamples with replacement (seeded by ``seed``).

    Degenerate cases: ``n = 1`` gives ``(−inf, +inf)``; ``n >= 2`` equal values give
    ``(x̄, x̄)``; non-finite values (e.g. the ``+inf`` PSNR of an exact reconstruction) give the
    NumPy mean and a ``(nan, nan)`` interval unless all values are equal.
    """
    arr = _array(values, "values").reshape(-1)
    if arr.size == 0:
        raise fail("values", "an empty array", "at least one value")
    confidence = check_real("confidence", confidence, 0, 1, open_low=True, open_high=True)
    check_choice("method", method, CI_METHODS, " or ".join(CI_METHODS))
    n_boot = check_int("n_boot", n_boot, 1)
    n = int(arr.size)
    with np.errstate(invalid="ignore"):
        mean = float(np.mean(arr))
    if n == 1:
        return Estimate(mean, -math.inf, math.inf, n, float(confidence), method)
    if np.all(arr == arr[0]):
        return Estimate(mean, mean, mean, n, float(confidence), method)
    if not np.all(np.isfinite(arr)):
        return Estimate(mean, math.nan, math.nan, n, float(confidence), method)
    if method == "t":
        half = float(stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * arr.std(ddof=1) / math.sqrt(n)
        return Estimate(mean, mean - half, mean + half, n, float(confidence), method)
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_boot))
    chunk = max(1, 2**22 // n)
    for start in range(0, int(n_boot), chunk):
        count = min(chunk, int(n_boot) - start)
        means[start : start + count] = arr[rng.integers(0, n, size=(count, n))].mean(axis=1)
    low, high = np.quantile(means, [0.5 - confidence / 2.0, 0.5 + confidence / 2.0])
    return Estimate(mean, float(low), float(high), n, float(confidence), method)


__all__ = [
    "MS_SSIM_WEIGHTS",
    "Estimate",
    "accuracy",
    "gaussian_window",
    "mean_ci",
    "ms_ssim",
    "ms_ssim_scales",
    "mse",
    "psnr",
    "ssim",
]
