"""AMP: label-free first-order Taylor importance of hidden units, then a per-layer binary search
of the kept width (Shen, "Adaptive MLP Pruning for Large Vision Transformers", arXiv:2603.08100).

**Score.** Unit ``k`` of a group (:mod:`semcom.compression.hidden_units`) is gated at the input of
the next layer, ``a_k -> g_{b,k} · a_k`` with one gate per image ``b``. Its score is

    s_k = mean_b | B · ∂L/∂g_{b,k} |   at g = 1,   i.e. mean_b | Σ_t a_{b,t,k} ∂ℓ_b/∂a_{b,t,k} |,

the first-order estimate of the change of the per-image loss ``ℓ_b`` when the unit is removed
(``t`` runs over tokens or pixels), averaged over the calibration images (``signed=True`` drops
the absolute value). ``L`` is label-free: the reconstruction ``MSE(x, decode(encode(x)))``
(``objective="mse"``) or, as in the paper, the entropy of the model's own similarity
predictions: with ``ẑ_b`` the unit-norm flattened features of image ``b`` in a batch,
``p_b = softmax_c(τ ẑ_b·ẑ_c)`` and ``L = mean_b H(p_b)`` (``objective="entropy"``).

**Width search.** Layers are processed from the last group to the first (the paper's order). In
each, units are sorted by score and the smallest width ``w ≥ 1`` keeping the top ``w`` is found by
binary search such that ``F(w) − F_prev ≤ tolerance``, where ``F`` is the compared loss (``ln MSE``
for ``mse``, so the default ``ln 1.02`` allows a 2 % MSE rise per layer; the entropy itself for
``entropy``) and ``F_prev`` the value accepted for the previous layer. For a loss that does not
fall as units are removed this returns the same width as a linear scan (a test checks it).

**Budget.** ``sparsity=None`` is the paper's adaptive mode: the widths are whatever the tolerance
gives. With ``sparsity`` set, exactly ``round(sparsity · U)`` of the ``U`` hidden units are removed
(every layer keeps at least one): the tolerance is bisected (in log scale, ``search_steps`` times)
for the largest number of removed units not above the target, and the few units still missing
are the lowest-scored kept units over all layers (Taylor scores share the loss's units, so they
compare across layers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from channels.errors import check_int, fail
from semcom.compression.base import COMPRESSION, Compressor
from semcom.compression.budget import (
    batches,
    calibration_images,
    check_choice,
    check_real,
    check_sparsity,
)
from semcom.compression.hidden_units import (
    UnitGroup,
    gated,
    remove_units,
    unit_groups,
    unit_target,
)

OBJECTIVES = ("mse", "entropy")


def entropy_objective(z: torch.Tensor, temperature: float) -> torch.Tensor:
    """``mean_b H(softmax_c(τ ẑ_b·ẑ_c))`` of features ``z`` ``[B, ...]`` (nats; label-free)."""
    u = F.normalize(z.flatten(1), dim=1)
    logp = torch.log_softmax(temperature * u @ u.T, dim=1)
    return -(logp.exp() * logp).sum(dim=1).mean()


def binary_search_width(feasible: Callable[[int], bool], size: int) -> int:
    """Smallest ``w`` in ``1..size`` with ``feasible(w)``, for ``feasible`` monotone in ``w``
    (false below some width, true from it on) and ``feasible(size)`` true.

    Makes ``ceil(log2(size))`` calls at most.

    Examples:
        >>> binary_search_width(lambda w: w >= 37, 100)
        37
    """
    lo, hi = 1, size
    while lo < hi:
        mid = (lo + hi) // 2
        if feasible(mid):
            hi = mid
        else:
            lo = mid + 1
    return hi


@COMPRESSION.register(
    "amp",
    description="Label-free Taylor importance of hidden units; per-layer binary search of the "
    "kept width under a loss tolerance or an exact unit budget",
    paper="arXiv:2603.08100",
)
class AMP(Compressor):
    """Adaptive (MLP) pruning of the encoder's hidden units (module docstring).

    Args:
        sparsity: fraction of the encoder's hidden units to remove, in [0, 1) (unit: neurons /
            channels, see :func:`~semcom.compression.hidden_units.unit_groups`), or ``None`` for
            the paper's adaptive widths from ``tolerance``. Default 0.5.
        tolerance: allowed rise of the compared loss per layer (adaptive mode), > 0.
            Default ``ln 1.02``.
        objective: ``"mse"`` (reconstruction) or ``"entropy"`` (the paper's label-free
            similarity entropy).
        temperature: inverse temperature ``τ`` of the entropy objective (20 as in the paper's
            configurations).
        search_steps: bisection steps on the tolerance in budget mode (default 16).
        batch_size: images per pass (the entropy objective is computed within a batch).
        signed: use the signed Taylor score instead of its absolute value.

    Examples:
        >>> import torch
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> model = build_model("mlp", 4, hidden=[16, 8])
        >>> result = AMP(sparsity=0.25).compress(model, torch.rand(32, 1, 8, 8))
        >>> result.details["removed_units"], result.details["units"]
        (6, 24)
    """

    name = "amp"

    def __init__(
        self,
        sparsity: float | None = 0.5,
        tolerance: float = math.log(1.02),
        objective: str = "mse",
        temperature: float = 20.0,
        search_steps: int = 16,
        batch_size: int = 256,
        signed: bool = False,
    ) -> None:
        self.sparsity = check_sparsity(sparsity, optional=True)
        self.tolerance = check_real("tolerance", tolerance, 0.0, low_open=True)
        self.objective = check_choice("objective", objective, OBJECTIVES)
        self.temperature = check_real("temperature", temperature, 0.0, 1e4, low_open=True)
        self.search_steps = check_int("search_steps", search_steps, 1, 64)
        self.batch_size = check_int("batch_size", batch_size, 2 if objective == "entropy" else 1)
        if not isinstance(signed, bool):
            raise fail("signed", signed, "true or false")
        self.signed = signed

    # -- the loss ---------------------------------------------------------------------------
    def _loss(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.objective == "entropy":
            return entropy_objective(model.encode(x), self.temperature)
        return torch.mean((model.decode(model.encode(x)) - x) ** 2)

    def _compared(self, model: nn.Module, x: torch.Tensor) -> float:
        """``F``: the image-weighted mean loss over ``x`` (``ln`` of it for ``mse``)."""
        total = 0.0
        with torch.no_grad():
            for part in batches(x.shape[0], self.batch_size):
                total += float(self._loss(model, x[part])) * (part.stop - part.start)
        mean = total / x.shape[0]
        return math.log(max(mean, 1e-300)) if self.objective == "mse" else mean

    def taylor_scores(self, model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """Scores ``s_k`` ``[size]`` (float64) of every unit group of ``model`` on images ``x``."""
        groups = unit_groups(model)
        sums = [torch.zeros(g.size, dtype=torch.float64) for g in groups]
        for part in batches(x.shape[0], self.batch_size):
            xb = x[part]
            b = xb.shape[0]
            gates = {
                g: torch.ones(b, g.size, dtype=xb.dtype, device=xb.device, requires_grad=True)
                for g in groups
            }
            with gated(gates):
                loss = self._loss(model, xb)
            grads = torch.autograd.grad(loss, list(gates.values()))
            for i, grad in enumerate(grads):
                per_image = (b * grad).to(torch.float64).cpu()
                sums[i] += (per_image if self.signed else per_image.abs()).sum(dim=0)
        return [s / x.shape[0] for s in sums]

    # -- the search --------------------------------------------------------------------------
    def _widths(
        self,
        model: nn.Module,
        x: torch.Tensor,
        groups: list[UnitGroup],
        orders: list[torch.Tensor],
        tolerance: float,
        cache: dict[tuple[int, ...], float],
    ) -> list[int]:
        """Per-layer widths for one tolerance, last group first (cache: widths -> ``F``)."""
        widths = [g.size for g in groups]

        def value(ws: list[int]) -> float:
            key = tuple(ws)
            if key not in cache:
                gates = {}
                for g, order, w in zip(groups, orders, ws, strict=True):
                    if w < g.size:
                        keep = torch.zeros(g.size, dtype=x.dtype)
                        keep[order[:w]] = 1.0
                        gates[g] = keep.to(x.device)
                with gated(gates, both_sides=True):
                    cache[key] = self._compared(model, x)
            return cache[key]

        accepted = value(widths)
        for layer in reversed(range(len(groups))):

            def feasible(w: int, layer: int = layer, accepted: float = accepted) -> bool:
                trial = list(widths)
                trial[layer] = w
                return value(trial) - accepted <= tolerance

            widths[layer] = binary_search_width(feasible, groups[layer].size)
            accepted = value(widths)
        return widths

    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        x = calibration_images(model, images, "amp")
        groups = unit_groups(model)
        total, target = unit_target(groups, self.sparsity)
        scores = self.taylor_scores(model, x)
        # Descending score; ties keep the lower index first (stable sort on the negated score).
        orders = [torch.sort(-s, stable=True).indices for s in scores]  # on the CPU
        cache: dict[tuple[int, ...], float] = {}
        before = self._compared(model, x)
        if target is None:
            tolerance = self.tolerance
            widths = self._widths(model, x, groups, orders, tolerance, cache)
        else:
            tolerance, widths = self._budget_widths(model, x, groups, orders, target, cache)
            widths = _fill(widths, groups, orders, scores, total - target)
        for g, order, w in zip(groups, orders, widths, strict=True):
            keep = torch.zeros(g.size, dtype=torch.bool)
            keep[order[:w]] = True
            remove_units(g, keep)
        removed = total - sum(widths)
        details = {
            "unit": "hidden units",
            "units": total,
            "removed_units": removed,
            "widths": {g.name: w for g, w in zip(groups, widths, strict=True)},
            "sizes": {g.name: g.size for g in groups},
            "tolerance": tolerance,
            "objective": self.objective,
            "loss_before": before,
            "loss_after": self._compared(model, x),
        }
        return details, {}

    def _budget_widths(
        self,
        model: nn.Module,
        x: torch.Tensor,
        groups: list[UnitGroup],
        orders: list[torch.Tensor],
        target: int,
        cache: dict[tuple[int, ...], float],
    ) -> tuple[float, list[int]]:
        """Bisect ``ln tolerance`` for the most units removed without exceeding ``target``."""
        total = sum(g.size for g in groups)
        lo, hi = math.log(1e-6), math.log(1e3)
        best: tuple[float, list[int]] | None = None
        for _ in range(self.search_steps):
            mid = 0.5 * (lo + hi)
            widths = self._widths(model, x, groups, orders, math.exp(mid), cache)
            removed = total - sum(widths)
            if removed <= target:
                if best is None or removed > total - sum(best[1]):
                    best = (math.exp(mid), widths)
                if removed == target:
                    break
                lo = mid
            else:
                hi = mid
        if best is None:  # even the smallest tolerance removes too much: start from full width
            best = (0.0, [g.size for g in groups])
        return best


def _fill(
    widths: list[int],
    groups: list[UnitGroup],
    orders: list[torch.Tensor],
    scores: list[torch.Tensor],
    keep_total: int,
) -> list[int]:
    """Adjust ``widths`` to keep exactly ``keep_total`` units by Taylor score over all layers.

    Too many kept: drop the lowest-scored kept unit (the tail of its layer's order) while the
    layer keeps one. Too few: restore the highest-scored removed unit (the head of the tail).
    """
    widths = list(widths)
    while sum(widths) > keep_total:
        candidates = [
            (float(scores[i][orders[i][w - 1]]), i) for i, w in enumerate(widths) if w > 1
        ]
        _, i = min(candidates)
        widths[i] -= 1
    while sum(widths) < keep_total:
        candidates = [
            (-float(scores[i][orders[i][w]]), i) for i, w in enumerate(widths) if w < groups[i].size
        ]
        _, i = min(candidates)
        widths[i] += 1
    return widths
