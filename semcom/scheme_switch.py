"""A switch scheme's choice: the candidate scheme that is best on the calibration images.

A scheme with ``switch = (s_1, ..., s_M)`` (:class:`semcom.schemes.Scheme`) runs, at each
condition, the candidate

    s* = argmax_m  (1 / (D B)) Σ_{d < D} Σ_{b < B} PSNR(x_b, x̂_b^{(m, d)}),

where ``x_b`` are the ``B`` calibration images (held out from the evaluation images and from
training), ``x̂^{(m, d)}`` candidate ``m``'s reconstruction through draw ``SWITCH_DRAW + d`` of its
link (draws that the evaluation, which uses draws 0, 1, ..., never reaches) and ``D =
SWITCH_DRAWS``. Ties go to the first candidate. Transmitter and receiver must agree on the
choice: it is one of ``M`` values per condition (1 bit for two candidates), decided before any
evaluation frame is sent, like the separate schemes' (rate, modulation) pair
(:mod:`semcom.separate.task`).

Examples:
    >>> import torch
    >>> class Link:  # reconstructs with a fixed offset
    ...     def __init__(self, offset): self.offset = offset
    ...     def simulate(self, images, draw=0):
    ...         return type("F", (), {"x_hat": (images + self.offset).clamp(0, 1)})()
    >>> images = torch.full((2, 1, 4, 4), 0.5)
    >>> choose_candidate({"a": Link(0.2), "b": Link(0.01)}, images)[0]
    'b'
"""

from __future__ import annotations

from typing import Any

import numpy as np

from channels.errors import check_int, fail

SWITCH_DRAW = 1 << 21
"""First channel draw of the calibration frames (evaluation uses draws 0, 1, ...)."""
SWITCH_DRAWS = 2
"""Channel draws per calibration image."""


def choose_candidate(
    links: dict[str, Any], images: Any, draws: int = SWITCH_DRAWS
) -> tuple[str, dict[str, float]]:
    """The candidate with the highest mean calibration PSNR, and every candidate's score.

    Args:
        links: candidate name -> its link (anything with ``simulate(images, draw)`` returning
            frames with ``x_hat [B, C, H, W]``), in the switch's order.
        images: the calibration images, float ``[B, C, H, W]`` in ``[0, 1]``.
        draws: channel draws per image (draws ``SWITCH_DRAW .. SWITCH_DRAW + draws - 1``).

    Returns:
        ``(name, {name: mean PSNR in dB})``; ties go to the first candidate.

    Raises:
        ConfigError: no candidate, no calibration image, or ``draws`` not in 1..1024.
    """
    from semcom import metrics

    if not links:
        raise fail("switch", "no candidate", "at least one candidate scheme")
    if images.shape[0] == 0:
        raise fail("calibration_images", 0, "at least one calibration image")
    draws = check_int("draws", draws, 1, 1024)
    x = images.double().cpu().numpy()
    scores = {}
    for name, link in links.items():
        psnr = [
            metrics.psnr(x, link.simulate(images, SWITCH_DRAW + d).x_hat.double().cpu().numpy())
            for d in range(draws)
        ]
        scores[name] = float(np.mean(psnr))
    best = max(scores, key=lambda name: (scores[name], -list(scores).index(name)))
    return best, scores


__all__ = ["SWITCH_DRAW", "SWITCH_DRAWS", "choose_candidate"]
