"""IST (Importance-aware Sparse Tuning): learn which layers matter by suppressing them, then
update only a sampled subset of layers, favouring the important ones.

Units ``l = 1..U`` (:mod:`semcom.training.units`: an attached adapter's layers, else every
module with parameters) carry a score ``s_l``, 0 at the start. A **high score means the unit
can be spared**: suppressing it barely hurts.

Importance loop (every ``T`` = ``interval`` steps, before the step's update): ``K`` = ``probes``
probes; probe ``k`` draws a set ``S_k`` of ``round(ρ_s U)`` units (``ρ_s`` =
``suppress_fraction``) without replacement with probability ``∝ σ(s_l)``, suppresses them by
``c`` = ``suppress_scale`` (adapter output ``× c``, or for a plain unit
``θ_l ← θ_l0 + c (θ_l - θ_l0)``, the weight change since the first step scaled), and measures
the step batch's loss ``L_k`` (the trainer's ``evaluate``); the units are then restored. With
rewards ``R_k = exp(-L_k)`` centred over the probes, ``R̃_k = R_k - mean_j R_j``,

    s_l ← s_l + η Σ_{k: l ∈ S_k} R̃_k σ(s_l) (1 - σ(s_l))        (η = ``eta``),

so a unit whose suppression leaves the loss low (high reward) gains score. All probes of a
round use the scores from the round's start.

Fine-tuning loop: at the first step of each round, ``round(ρ_u U)`` units (``ρ_u`` =
``update_fraction``) are drawn without replacement with probability ``∝ σ(-s_l)``; only their
parameters get gradients (``layer_mask``) until the next round. Units that matter (low score)
are updated most, and every unit keeps a chance.

On the semantic link: adapting a codec trained at 10 dB to 0 dB Rayleigh (or another channel)
updates and holds optimiser state only for the important quarter of its layers; the scores are
a probe-based, passive ranking of the codec's layers for the new channel.

Ours versus the paper: the paper scores the PEFT modules of an LLM's decoder layers on
validation batches; here the units are the codec's adapted layers (or its parameterised
modules when no adapter is attached, where "suppression" scales the weight change), and the
probe loss is the trainer's step batch with its channel noise replayed, so probes see the
training channel. Probes happen inside the one training loop through the hook's ``probe``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from channels.errors import check_int, check_real
from semcom.training.base import TRAINING, TrainingHook
from semcom.training.units import Units


def draw_units(weights: torch.Tensor, count: int, generator: torch.Generator) -> list[int]:
    """``count`` distinct positions drawn one after another with probability ``∝ weights``.

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> draw_units(torch.tensor([0.0, 1.0, 0.0]), 1, g)
        [1]
    """
    return torch.multinomial(weights.to(torch.float64), count, False, generator=generator).tolist()


def fraction_count(fraction: float, n: int) -> int:
    """``round(fraction · n)`` clipped to ``1..n`` (at least one unit).

    Examples:
        >>> fraction_count(0.25, 6), fraction_count(0.01, 6), fraction_count(1.0, 6)
        (2, 1, 6)
    """
    return min(n, max(1, int(round(fraction * n))))


def score_update(
    scores: torch.Tensor, probes: list[list[int]], losses: list[float], eta: float
) -> torch.Tensor:
    """New scores after one round: ``s + η Σ_k R̃_k 1[l ∈ S_k] σ(s)(1 - σ(s))``.

    Args:
        scores: ``s`` float64 ``[U]``.
        probes: ``S_k``, the unit positions suppressed in each probe.
        losses: ``L_k``, the loss measured in each probe.
        eta: ``η``.

    Examples:
        >>> s = score_update(torch.zeros(2), [[0], [1]], [1.0, 2.0], 4.0)
        >>> bool(s[0] > 0 > s[1]), round(float(s[0] + s[1]), 12)
        (True, 0.0)
    """
    rewards = torch.exp(-torch.tensor(losses, dtype=torch.float64))
    centred = rewards - rewards.mean()
    sig = torch.sigmoid(scores)
    step = torch.zeros_like(scores)
    for members, r in zip(probes, centred.tolist(), strict=True):
        step[members] += r
    return scores + eta * step * sig * (1.0 - sig)


@TRAINING.register(
    "ist",
    description="IST: layer scores from suppression probes; update a sampled 25% of layers",
    paper="arXiv:2410.11772",
)
class IST(TrainingHook):
    """Importance-aware sparse tuning (module docstring for the equations).

    Args:
        update_fraction: ``ρ_u``, fraction of units updated per round, in ``(0, 1]``.
        suppress_fraction: ``ρ_s``, fraction of units suppressed per probe, in ``(0, 1]``.
        probes: ``K``, probes per round (2..64; the rewards are centred over them).
        interval: ``T``, steps per round (1..100000).
        eta: ``η``, score learning rate (> 0).
        suppress_scale: ``c``, output (or weight-change) scale of a suppressed unit, in
            ``[0, 1)``.
        seed: seed of the probe and selection draws.

    Raises:
        ConfigError: an option out of range (the message names it).
    """

    def __init__(
        self,
        update_fraction: float = 0.25,
        suppress_fraction: float = 0.5,
        probes: int = 3,
        interval: int = 10,
        eta: float = 10.0,
        suppress_scale: float = 0.25,
        seed: int = 0,
    ) -> None:
        self.update_fraction = check_real(
            "update_fraction", update_fraction, 0.0, 1.0, open_low=True
        )
        self.suppress_fraction = check_real(
            "suppress_fraction", suppress_fraction, 0.0, 1.0, open_low=True
        )
        self.probes = check_int("probes", probes, 2, 64)
        self.interval = check_int("interval", interval, 1, 100000)
        self.eta = check_real("eta", eta, 0.0, 1e6, open_low=True, allowed="a number > 0")
        self.suppress_scale = check_real("suppress_scale", suppress_scale, 0.0, 1.0, open_high=True)
        self.seed = check_int("seed", seed, 0, 2**63 - 1)
        self.units: Units | None = None
        self.scores = torch.zeros(0, dtype=torch.float64)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.mask_round = -1
        self.chosen: list[int] = []
        self._loaded: dict[str, Any] | None = None

    def bind(self, model: nn.Module) -> Units:
        """The units of ``model`` (found at the first call, before the first update)."""
        if self.units is None:
            self.units = Units(model)
            if self._loaded is not None and self._loaded.get("theta0"):
                self.units.theta0 = {k: v.clone() for k, v in self._loaded["theta0"].items()}
            if len(self.scores) != len(self.units):
                self.scores = torch.zeros(len(self.units), dtype=torch.float64)
        return self.units

    def probe(self, step: int, model: nn.Module, evaluate: Callable[[], float]) -> None:
        units = self.bind(model)
        if step % self.interval != 0 or len(units) == 0:
            return
        count = fraction_count(self.suppress_fraction, len(units))
        weights = torch.sigmoid(self.scores)
        members, losses = [], []
        for _ in range(self.probes):
            chosen = draw_units(weights, count, self.generator)
            saved = units.suppress(model, chosen, self.suppress_scale)
            try:
                loss = float(evaluate())
            finally:
                units.restore(model, saved)
            if not math.isfinite(loss):
                return  # a diverged probe says nothing about the units
            members.append(chosen)
            losses.append(loss)
        self.scores = score_update(self.scores, members, losses, self.eta)

    def select(self) -> list[int]:
        """A fresh draw of ``round(ρ_u U)`` unit positions with probability ``∝ σ(-s)``."""
        count = fraction_count(self.update_fraction, len(self.scores))
        return sorted(draw_units(torch.sigmoid(-self.scores), count, self.generator))

    def layer_mask(self, step: int, model: nn.Module) -> set[str] | None:
        units = self.bind(model)
        if len(units) == 0:
            return None
        round_ = step // self.interval
        if round_ != self.mask_round:
            self.chosen = self.select()
            self.mask_round = round_
        return units.mask(self.chosen)

    def state_dict(self) -> dict[str, Any]:
        theta0 = {} if self.units is None else self.units.theta0
        return {
            "scores": self.scores.clone(),
            "generator": self.generator.get_state(),
            "mask_round": self.mask_round,
            "chosen": list(self.chosen),
            "theta0": {k: v.clone() for k, v in theta0.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.scores = state["scores"].clone()
        self.generator.set_state(state["generator"])
        self.mask_round = int(state["mask_round"])
        self.chosen = [int(i) for i in state["chosen"]]
        self._loaded = state
        if self.units is not None and state.get("theta0"):
            self.units.theta0 = {k: v.clone() for k, v in state["theta0"].items()}
