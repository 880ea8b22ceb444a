"""A separate scheme at one sweep point: its budget, the (rate, modulation) pair chosen on
calibration images, and its link (used by :mod:`semcom.link_task`).

**Budget.** The semantic link's: ``S_max = η · N · L · Q / 2`` complex symbols per frame
(``N`` features of ``L`` scalars of the scenario's model, the condition's ``Q`` and ``η``) and
``P_tot = 10^(snr_db/10) · K``. The **bandwidth ratio** is ``S_max / (C · H · W)``, channel
uses (complex symbols) per source value, the ``k / n`` of the deep-JSCC literature; every row
reports it.

**Best pair per condition** [OUR CHOICE, as the literature reports the best pair per SNR].
For a digital scheme every ``(rate, modulation)`` of :data:`RATES` × :data:`MODULATIONS` is
run on the first ``calibration_images`` calibration images (held out from the evaluation
images) over ``calibration_draws`` draws (stream draws ``CALIBRATION_DRAW + d``, not those of
the evaluation); the pair with the highest mean PSNR (ties: the first in that order) is then
evaluated on the evaluation images. The capacity scheme has no pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from channels.errors import check_int, fail
from semcom.separate.link import CAPACITY, SeparateLink

RATES = (1 / 3, 1 / 2, 2 / 3, 5 / 6)
"""Code rates searched by default."""
MODULATIONS = ("qpsk", "16qam", "64qam")
"""Modulations searched by default."""
CALIBRATION_IMAGES = 4
CALIBRATION_DRAWS = 2
CALIBRATION_DRAW = 1 << 20
"""First stream draw of the pair search (evaluation draws start at 0)."""


@dataclass(frozen=True)
class SeparateOptions:
    """A separate scheme's options (defaults: module constants)."""

    rates: tuple[float, ...] = RATES
    modulations: tuple[str, ...] = MODULATIONS
    calibration_images: int = CALIBRATION_IMAGES
    calibration_draws: int = CALIBRATION_DRAWS
    num_iter: int = 20
    power: str = "waterfilling"


def symbol_budget(eta: float, n_features: int, scalars_per_feature: int, q: float) -> float:
    """``S_max = η · N · L · Q / 2`` (the semantic link's symbol budget)."""
    return float(eta) * int(n_features) * int(scalars_per_feature) * float(q) / 2.0


def bandwidth_ratio(budget: float, image_shape: tuple[int, ...]) -> float:
    """``S_max / (C · H · W)``: channel uses per source value."""
    return float(budget) / float(np.prod(image_shape))


def make_link(codec: str, mean_image: Any, budget: float, values: dict[str, Any], name: str,
              rate: float = 0.5, modulation: str = "qpsk",
              options: SeparateOptions = SeparateOptions()) -> SeparateLink:  # fmt: skip
    """The :class:`SeparateLink` of a point's condition ``values`` (sweep axes)."""
    return SeparateLink(
        codec, mean_image, budget, channel=values["channel"], snr_db=values["snr_db"],
        n_subchannels=values["n_subchannels"], rate=rate, modulation=modulation,
        rician_k=values["rician_k"], seed=values["seed"], name=name, power=options.power,
        num_iter=options.num_iter,
    )  # fmt: skip


def choose_pair(
    codec: str, mean_image: Any, budget: float, values: dict[str, Any], name: str,
    calibration: Any, options: SeparateOptions = SeparateOptions(),
) -> tuple[float, str, float]:  # fmt: skip
    """``(rate, modulation, mean calibration PSNR)`` of the best pair (module docstring).

    ``calibration`` are the calibration images ``[B, C, H, W]`` in [0, 1].
    """
    from semcom import metrics

    if codec == CAPACITY:
        return float("nan"), "none", float("nan")
    n = check_int("calibration_images", options.calibration_images, 1, 2**20)
    images = calibration[:n]
    if images.shape[0] == 0:
        raise fail("calibration_images", 0, "at least one calibration image")
    x = images.double().cpu().numpy()
    best = None
    for modulation in options.modulations:
        for rate in options.rates:
            link = make_link(codec, mean_image, budget, values, name, rate, modulation, options)
            scores = [
                metrics.psnr(x, link.simulate(images, CALIBRATION_DRAW + d).x_hat.double().numpy())
                for d in range(options.calibration_draws)
            ]
            score = float(np.mean(scores))
            if best is None or score > best[2]:
                best = (float(rate), modulation, score)
    return best


__all__ = [
    "CALIBRATION_DRAW", "MODULATIONS", "RATES", "SeparateOptions", "bandwidth_ratio",
    "choose_pair", "make_link", "symbol_budget",
]  # fmt: skip
