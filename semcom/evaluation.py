"""Monte Carlo evaluation of a semantic link over a fixed image set, one channel draw at a time.

:class:`LinkEvaluation` sends every image of a set through the link once per *draw*
(``draw = 0, 1, ...``: independent channel realisations and noise, :mod:`semcom.link`) and keeps
per-image, per-draw metrics, so a caller can add draws until a stop rule is met
(:mod:`semcom.runner`) and then read the result. :meth:`semcom.link.SemanticLink.evaluate` is
the fixed-draw-count case.

**Intervals.** The images are the independent units: image ``b``'s metric is its mean over
the draws done, and the two-sided interval (Student-t or bootstrap,
:func:`semcom.metrics.mean_ci`) is taken over the ``B`` images (over the draws when ``B = 1``).
The bit-error rate's interval is Wilson's with the effective sample size of correlated errors
(:func:`channels.montecarlo.block_interval`), one block per sent feature of ``L·Q`` bits
(``L·Q_i`` with per-feature bits: blocks of unequal sizes,
:func:`channels.montecarlo.ratio_block_interval`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from channels.errors import check_int, fail
from channels.feature_bits import bits_array, is_uniform
from channels.montecarlo import block_interval, ratio_block_interval
from semcom import metrics
from semcom.importance.base import as_images, eval_mode

PER_IMAGE_METRICS = ("psnr_db", "mse", "ssim", "accuracy", "ms_ssim")
"""Metrics kept per image and draw (``ssim`` and ``ms_ssim`` only when computed, ``accuracy``
with labels)."""
DEVICE_FRAMES = 4096
"""Images per ``simulate`` call on a CUDA link, at most (and at most ``DEVICE_VALUES`` pixel
values): the batched solver's GPU path fills an H100 from a few thousand frames (64 blocks of
64 threads at 4,096) and is launch-bound at the 256 of a CPU pass. The call size is a multiple
of ``link.batch_size``, the pieces the encoder and decoder run in inside ``simulate``, so they
see the same batches as before; every frame has its own random streams, so no result changes."""
DEVICE_VALUES = 2**24
"""Pixel values per ``simulate`` call on a CUDA link (float64 scoring of 16M values: 128 MB)."""


@dataclass(frozen=True)
class LinkResult:
    """Metrics of one link configuration over ``n_images`` images × ``n_draws`` draws.

    Each metric comes with its two-sided interval at ``confidence`` (module docstring).
    ``ber`` is the bit-error rate over the sent bits (NaN when nothing was sent);
    ``ber_per_feature[i]`` the same for feature ``i`` and ``selection_rate[i]`` the share of
    frames that sent it. ``accuracy`` is None unless the model has ``classify`` and labels
    were given; ``ssim`` and ``ms_ssim`` are NaN when they were not computed.
    """

    psnr_db: float
    psnr_ci: tuple[float, float]
    ssim: float
    ssim_ci: tuple[float, float]
    mse: float
    mse_ci: tuple[float, float]
    ber: float
    ber_ci: tuple[float, float]
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    ber_per_feature: list[float]
    selection_rate: list[float]
    mean_selected: float
    mean_objective: float
    bit_errors: int
    bits_sent: int
    n_images: int
    n_draws: int
    channel: str
    snr_db: float
    method: str
    seed: int
    confidence: float
    seconds: float
    config: dict[str, Any] = field(default_factory=dict)
    ms_ssim: float = math.nan
    ms_ssim_ci: tuple[float, float] = (math.nan, math.nan)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples become lists)."""
        return asdict(self)


class LinkEvaluation:
    """Accumulates channel draws of one :class:`semcom.link.SemanticLink` over fixed images.

    Args:
        link: the link (its model, allocation and channel).
        images: tensor ``[B, C, H, W]`` in [0, 1], or a data set (``.images``; its ``.labels``
            are used for accuracy when ``labels`` is None and the model can ``classify``).
        labels: class labels ``[B]`` (accuracy), or None.
        confidence: level of every two-sided interval, in (0, 1).
        ci_method: ``"t"`` (Student-t) or ``"bootstrap"`` (:func:`semcom.metrics.mean_ci`).
        compute_ssim: compute SSIM (the most expensive metric); NaN otherwise.
        compute_ms_ssim: compute MS-SSIM (:func:`semcom.metrics.ms_ssim`); NaN otherwise.

    Image ``b`` of ``images`` is frame ``b`` of every draw (``first_image = b``), so the
    result of a draw does not depend on how the images are batched.

    Examples:
        Draw until the PSNR interval is narrower than ±0.25 dB, at most 4 draws:

        >>> import numpy as np, torch
        >>> from semcom.link import SemanticLink, drop_distortion
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> model, images = build_model("mlp", n_features=4), torch.rand(3, 1, 8, 8)
        >>> link = SemanticLink(model, np.full(4, 0.25), drop_distortion(model, images),
        ...                     n_subchannels=4, snr_db=10.0)
        >>> ev = LinkEvaluation(link, images)
        >>> while ev.n_draws < 4 and not ev.half_width("psnr_db") <= 0.25:
        ...     ev.add_draw(ev.n_draws)
        >>> 1 <= ev.result().n_draws <= 4
        True
    """

    def __init__(
        self,
        link: Any,
        images: Any,
        labels: Any = None,
        *,
        confidence: float = 0.95,
        ci_method: str = "t",
        compute_ssim: bool = True,
        compute_ms_ssim: bool = False,
    ) -> None:
        dataset_labels = getattr(images, "labels", None)
        self.images = as_images(images)
        if not (isinstance(confidence, float | int) and 0 < confidence < 1):
            raise fail("confidence", confidence, "a number in (0, 1)")
        if ci_method not in metrics.CI_METHODS:
            raise fail("ci_method", ci_method, " or ".join(metrics.CI_METHODS))
        self.link = link
        self.confidence = float(confidence)
        self.ci_method = ci_method
        self.compute_ssim = bool(compute_ssim)
        self.compute_ms_ssim = bool(compute_ms_ssim)
        self.labels = self._labels(dataset_labels if labels is None else labels)
        self._reference = self.images.to(torch.float64).cpu().numpy()
        self._reference_device: torch.Tensor | None = None
        self._per_draw: dict[str, list[np.ndarray]] = {name: [] for name in PER_IMAGE_METRICS}
        self._objective: list[np.ndarray] = []
        self._selected: list[np.ndarray] = []
        self._errors_f = np.zeros(link.n_features, dtype=np.int64)
        self._sent_f = np.zeros(link.n_features, dtype=np.int64)
        self._squares = 0
        self._cross = 0  # sum over sent features of errors * bits (per-feature Q)
        self._size_squares = 0  # sum over sent features of bits^2 (per-feature Q)
        self._seconds = 0.0

    def images_per_call(self) -> int:
        """Images per ``link.simulate`` call: ``link.batch_size``, or on a CUDA link the
        largest multiple of it within :data:`DEVICE_FRAMES` and :data:`DEVICE_VALUES`."""
        step = int(self.link.batch_size)
        if getattr(self.link, "backend", "cpu") == "cuda":
            values = max(1, int(np.prod(self.images.shape[1:])))
            step *= max(1, min(DEVICE_FRAMES, DEVICE_VALUES // values) // step)
        return step

    def _reference_on(self, device: torch.device) -> torch.Tensor:
        """The reference images as float64 ``[B, C, H, W]`` on ``device`` (copied once)."""
        if self._reference_device is None or self._reference_device.device != device:
            self._reference_device = torch.from_numpy(self._reference).to(device)
        return self._reference_device

    def _labels(self, labels: Any) -> np.ndarray | None:
        if labels is None:
            return None
        labels = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
        if labels.shape != (self.images.shape[0],):
            raise fail("labels", f"array of shape {labels.shape}", "one label per image")
        model = self.link.model
        has_head = getattr(model, "classify", None) is not None and (
            getattr(model, "num_classes", 0) is not None
        )
        if not has_head or np.any(labels < 0):
            return None
        return labels

    @property
    def n_images(self) -> int:
        """``B``, the number of images."""
        return int(self.images.shape[0])

    @property
    def n_draws(self) -> int:
        """Draws added so far."""
        return len(self._per_draw["psnr_db"])

    def add_draw(self, draw: int) -> None:
        """Send every image through channel draw ``draw`` and record its metrics."""
        draw = check_int("draw", draw, 0, 2**31)
        start = time.perf_counter()
        link, n_img = self.link, self.n_images
        values = {name: np.full(n_img, math.nan) for name in PER_IMAGE_METRICS}
        objective, selected = np.empty(n_img), np.empty(n_img)
        step = self.images_per_call()
        for s in range(0, n_img, step):
            chunk = self.images[s : s + step]
            sl = slice(s, s + chunk.shape[0])
            frames = link.simulate(chunk, draw, first_image=s)
            if frames.x_hat.device.type == "cpu":
                x_hat = frames.x_hat.detach().to(torch.float64).numpy()
                x = self._reference[sl]
                values["mse"][sl] = metrics.mse(x, x_hat)
                values["psnr_db"][sl] = metrics.psnr(x, x_hat)
                if self.compute_ssim:
                    values["ssim"][sl] = metrics.ssim(x, x_hat)
                if self.compute_ms_ssim:
                    values["ms_ssim"][sl] = metrics.ms_ssim(x, x_hat)
            else:  # a GPU's frames stay there: only the [B] metrics come to the host
                reference = self._reference_on(frames.x_hat.device)[sl]
                for name, v in metrics.per_image_on_device(
                    reference, frames.x_hat, self.compute_ssim, self.compute_ms_ssim
                ).items():
                    values[name][sl] = v
            if self.labels is not None:
                with eval_mode(link.model), torch.no_grad():
                    logits = link.model.classify(frames.x_hat)
                values["accuracy"][sl] = metrics.accuracy(logits, self.labels[sl], reduction="none")
            self._errors_f += frames.bit_errors.sum(axis=0)
            self._sent_f += frames.sent.sum(axis=0)
            self._squares += int((frames.bit_errors[frames.sent] ** 2).sum())
            if np.ndim(link.bits_per_scalar):
                bits_f = link.scalars_per_feature * bits_array(
                    link.bits_per_scalar, link.n_features
                )
                self._cross += int((frames.bit_errors * bits_f)[frames.sent].sum())
                self._size_squares += int(((bits_f**2) * frames.sent).sum())
            objective[sl] = frames.objective
            selected[sl] = frames.sent.sum(axis=1)
        for name, v in values.items():
            self._per_draw[name].append(v)
        self._objective.append(objective)
        self._selected.append(selected)
        self._seconds += time.perf_counter() - start

    def per_image(self, metric: str) -> np.ndarray:
        """Image ``b``'s mean of ``metric`` over the draws done, float64 ``[B]``."""
        if metric not in PER_IMAGE_METRICS:
            raise fail("metric", metric, ", ".join(PER_IMAGE_METRICS))
        if not self.n_draws:
            raise fail("n_draws", 0, "at least one draw before reading metrics (add_draw)")
        return np.stack(self._per_draw[metric]).mean(axis=0)

    def estimate(self, metric: str) -> metrics.Estimate:
        """Mean of ``metric`` with its interval over the images (over the draws if ``B = 1``)."""
        self.per_image(metric)  # validates
        values = np.stack(self._per_draw[metric])
        units = values.mean(axis=0) if self.n_images > 1 else values[:, 0]
        return metrics.mean_ci(units, self.confidence, self.ci_method, seed=self.link.seed)

    def half_width(self, metric: str) -> float:
        """Half the width of :meth:`estimate`'s interval (``inf`` before two units exist)."""
        if not self.n_draws:
            return math.inf
        est = self.estimate(metric)
        return (est.high - est.low) / 2.0

    def result(self) -> LinkResult:
        """Every metric with its interval, over the draws added so far."""
        link = self.link
        q = link.bits_per_scalar
        if np.ndim(q) and np.size(q) and is_uniform(q):
            q = int(q[0])  # equal Q_i: blocks of one size, as with a single Q
        per_feature = bool(np.ndim(q))
        lq = link.scalars_per_feature * (bits_array(q, link.n_features) if per_feature else q)
        blocks, errors = int(self._sent_f.sum()), int(self._errors_f.sum())
        bits_sent = int((self._sent_f * lq).sum()) if per_feature else blocks * lq
        if blocks and per_feature:  # blocks of L Q_i bits: unequal sizes
            ber = errors / bits_sent
            ber_ci = ratio_block_interval(errors, self._squares, self._cross,
                                          self._size_squares, blocks, bits_sent,
                                          self.confidence)  # fmt: skip
        elif blocks:
            ber = errors / (blocks * lq)
            ber_ci = block_interval(errors, self._squares, blocks, lq, self.confidence)
        else:
            ber, ber_ci = math.nan, (math.nan, math.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            ber_feature = np.where(
                self._sent_f > 0, self._errors_f / np.maximum(self._sent_f * lq, 1), np.nan
            )
        est = {name: self.estimate(name) for name in ("psnr_db", "mse")}
        nan_pair = (math.nan, math.nan)
        ssim = self.estimate("ssim") if self.compute_ssim else None
        ms = self.estimate("ms_ssim") if self.compute_ms_ssim else None
        acc = self.estimate("accuracy") if self.labels is not None else None
        frames = self.n_images * self.n_draws
        return LinkResult(
            psnr_db=est["psnr_db"].mean, psnr_ci=est["psnr_db"].interval,
            ssim=math.nan if ssim is None else ssim.mean,
            ssim_ci=nan_pair if ssim is None else ssim.interval,
            mse=est["mse"].mean, mse_ci=est["mse"].interval,
            ber=ber, ber_ci=(float(ber_ci[0]), float(ber_ci[1])),
            accuracy=None if acc is None else acc.mean,
            accuracy_ci=None if acc is None else acc.interval,
            ber_per_feature=[float(v) for v in ber_feature],
            selection_rate=[float(v) for v in self._sent_f / frames],
            mean_selected=float(np.mean(self._selected)),
            mean_objective=float(np.mean(self._objective)),
            bit_errors=errors, bits_sent=bits_sent, n_images=self.n_images,
            n_draws=self.n_draws, channel=link.channel, snr_db=link.snr_db, method=link.method,
            seed=link.seed, confidence=self.confidence, seconds=self._seconds,
            config=link.config(),
            ms_ssim=math.nan if ms is None else ms.mean,
            ms_ssim_ci=nan_pair if ms is None else ms.interval,
        )  # fmt: skip


__all__ = ["PER_IMAGE_METRICS", "LinkEvaluation", "LinkResult"]
