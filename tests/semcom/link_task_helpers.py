"""A :class:`semcom.link_task.LinkPointTask` small enough for unit tests: untrained models,
random images, no training or calibration run."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def tiny_task(schemes: list, channel: dict, sweep: dict | None = None) -> tuple[Any, list]:
    """A LinkPointTask of an untrained 4-feature digits model over 3 random 8x8 images, and
    the points of its grid (``sweep``: the scenario's sweep axes, if any)."""
    from semcom.link_task import LinkPointTask
    from semcom.models.build import build_model
    from semcom.prepare import Calibration
    from semcom.runner import grid
    from semcom.scenario import Scenario

    config = {
        "name": "pair", "data": {"dataset": "digits", "eval_images": 3},
        "model": {"name": "mlp", "n_features": 4}, "channel": channel, "schemes": schemes,
        **({"sweep": sweep} if sweep else {}),
    }  # fmt: skip
    s = Scenario.model_validate(config)
    torch.manual_seed(0)
    models = {v: build_model("mlp", n_features=4).eval() for v in s.model_variants()}
    w = {v: np.full(4, 0.25) for v in models}
    drop = {v: np.full(4, 0.1) for v in models}
    clean = dict.fromkeys(models, math.nan)
    calibration = Calibration({}, w, w, drop, clean, np.arange(3), np.arange(3, 6))
    images = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    task = LinkPointTask(s, calibration)
    task.use_models(models, images)
    task.use_separate(images.mean(dim=0), images)
    return task, list(grid(s))
