"""Random layer subset: the baseline of IST, updating a uniformly random fraction of the units.

Same units as IST (:mod:`semcom.training.units`: an attached adapter's layers, else every module
with parameters) and the same round structure: at the first step of each round of ``T`` =
``interval`` steps, ``round(ρ U)`` of the ``U`` units (``ρ`` = ``fraction``) are drawn uniformly
without replacement, and only their parameters get gradients until the next round. Each unit
is therefore updated in a round with probability ``round(ρ U) / U``, independently of what it
does: the comparison point that shows whether IST's importance scores help.

On the semantic link: the "random layer subset" arm of the adaptation experiment (a codec
trained at 10 dB adapted to 0 dB Rayleigh), at the trainable memory of IST.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from channels.errors import check_int, check_real
from semcom.training.base import TRAINING, TrainingHook
from semcom.training.ist import fraction_count
from semcom.training.units import Units


@TRAINING.register(
    "random-layers",
    description="baseline: a uniformly random fraction of the layers updated per round",
    paper="arXiv:2410.11772",
)
class RandomLayers(TrainingHook):
    """Uniform random layer subsets per round.

    Args:
        fraction: ``ρ``, fraction of units updated per round, in ``(0, 1]``.
        interval: ``T``, steps per round (1..100000).
        seed: seed of the draws.

    Raises:
        ConfigError: an option out of range (the message names it).
    """

    def __init__(self, fraction: float = 0.25, interval: int = 10, seed: int = 0) -> None:
        self.fraction = check_real("fraction", fraction, 0.0, 1.0, open_low=True)
        self.interval = check_int("interval", interval, 1, 100000)
        self.seed = check_int("seed", seed, 0, 2**63 - 1)
        self.units: Units | None = None
        self.generator = torch.Generator().manual_seed(self.seed)
        self.mask_round = -1
        self.chosen: list[int] = []

    def select(self, n: int) -> list[int]:
        """``round(ρ n)`` distinct unit positions, uniformly at random."""
        count = fraction_count(self.fraction, n)
        return sorted(torch.randperm(n, generator=self.generator)[:count].tolist())

    def layer_mask(self, step: int, model: nn.Module) -> set[str] | None:
        if self.units is None:
            self.units = Units(model)
        if len(self.units) == 0:
            return None
        round_ = step // self.interval
        if round_ != self.mask_round:
            self.chosen = self.select(len(self.units))
            self.mask_round = round_
        return self.units.mask(self.chosen)

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "mask_round": self.mask_round,
            "chosen": list(self.chosen),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.generator.set_state(state["generator"])
        self.mask_round = int(state["mask_round"])
        self.chosen = [int(i) for i in state["chosen"]]
