"""SPA, Structurally Prune Anything (Wang, Rachwan, Günnemann & Charpentier, 2024,
arXiv:2403.18955): group-level structured pruning across coupled channels, and OBSPA.

SPA finds the channels that must go together (a convolution's output channel, its bias, norm
and PReLU entries and the next layer's input channel) and turns any per-parameter criterion
into a score for the whole group. Our encoders' groups are written out in
:mod:`semcom.compression.groups`; the paper derives them from an ONNX graph.

Group importance of unit ``u`` of a family with slices (operators) ``o``:

    c_o(u) = criterion of the entries of ``u`` in ``o``
             l1: Σ|θ|      l2: ‖θ‖₂      taylor: |Σ θ ⊙ ∂R/∂θ|   (R: reconstruction MSE)
    ĉ_o(u) = c_o(u) / mean_v c_o(v)      (``normalize="mean"``; or ``max``, or ``none``)
    I(u)   = aggregate_o ĉ_o(u)          (``mean``, ``sum`` or ``max``)

and the ``k = floor(s · n + 1/2)`` groups of lowest ``I`` are zeroed, ``n`` the hidden units of
all families: per family in proportion (``scope="layer"``) or in one ranking
(``scope="global"``), every family keeping at least one unit.

OBSPA (``criterion="obspa"``): post-training pruning without fine-tuning. Families are pruned
in forward order. For each, the inputs ``X`` of the consuming layer are collected on the
current (already partly pruned) encoder and the unit groups, the consumer's input-column
blocks, are removed greedily by group Optimal Brain Surgeon with compensation of the remaining
columns (:func:`~semcom.compression.obs.group_obs`), so that the consumer reproduces its dense
outputs as well as it can. The rest of each removed group is then zeroed.
``data="calibration"`` (default) uses the images passed to ``compress``; ``data="noise"`` uses
uniform-noise images instead, the data-free setting of the paper (on digits it is about 6 dB
worse than calibration images at half the hidden units, so it is not the default).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from channels.errors import check_int, fail
from semcom.compression.base import COMPRESSION, Compressor
from semcom.compression.budget import (
    check_choice,
    check_meetable,
    check_real,
    check_sparsity,
    lowest,
    lowest_with_caps,
    split_count,
)
from semcom.compression.calibration import calibration_images
from semcom.compression.groups import UnitFamily, slice_values, unit_families, zero_units
from semcom.compression.obs import group_obs
from semcom.compression.prunable import noise_images, reconstruction_loss

CRITERIA = ("obspa", "l1", "l2", "taylor")
AGGREGATES = ("mean", "sum", "max")
NORMALIZATIONS = ("mean", "max", "none")
SCOPES = ("layer", "global")
DATA = ("calibration", "noise")


def group_importance(
    model: nn.Module,
    families: list[UnitFamily],
    criterion: str,
    aggregate: str = "mean",
    normalize: str = "mean",
    grads: dict[str, torch.Tensor] | None = None,
) -> list[torch.Tensor]:
    """Group importance ``I(u)`` (float64 ``[units]``) of every family (module docstring).

    Args:
        model: the codec.
        families: from :func:`~semcom.compression.groups.unit_families`.
        criterion: ``"l1"``, ``"l2"`` or ``"taylor"`` (then ``grads`` holds ``∂R/∂θ`` by name).
        aggregate: how operator scores combine: ``"mean"``, ``"sum"`` or ``"max"``.
        normalize: per-operator scaling before aggregation: ``"mean"``, ``"max"`` or ``"none"``.
    """
    out = []
    for family in families:
        per_op = []
        for s in family.slices:
            values = slice_values(model, s)
            if criterion == "l1":
                score = values.abs().sum(dim=1)
            elif criterion == "l2":
                score = values.pow(2).sum(dim=1).sqrt()
            else:
                score = (values * slice_values(model, s, grads)).sum(dim=1).abs()
            if normalize != "none":
                scale = score.mean() if normalize == "mean" else score.max()
                score = score / scale if scale > 0 else score
            per_op.append(score)
        stacked = torch.stack(per_op)
        if aggregate == "mean":
            out.append(stacked.mean(dim=0))
        elif aggregate == "sum":
            out.append(stacked.sum(dim=0))
        else:
            out.append(stacked.max(dim=0).values)
    return out


def consumer_inputs(model: nn.Module, consumer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Rows ``X`` float64 ``[n, P]`` that ``consumer`` multiplies by ``W`` ``[out, P]`` during
    ``model.encode(x)``: tokens for a ``Linear``, unfolded ``k x k`` patches for a ``Conv2d``."""
    seen: list[torch.Tensor] = []
    hook = consumer.register_forward_hook(lambda m, args, out: seen.append(args[0].detach()))
    try:
        with torch.no_grad():
            model.encode(x)
    finally:
        hook.remove()
    inp = seen[0].to(torch.float64)
    if isinstance(consumer, nn.Conv2d):
        cols = F.unfold(
            inp,
            consumer.kernel_size,
            dilation=consumer.dilation,
            padding=consumer.padding,
            stride=consumer.stride,
        )  # [B, C·k·k, L], channel-major like weight.reshape(out, -1)
        return cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return inp.reshape(-1, inp.shape[-1])


@COMPRESSION.register(
    "spa",
    description="Structurally Prune Anything: coupled channel groups, group importance, OBSPA",
    paper="arXiv:2403.18955",
)
class SPAPruning(Compressor):
    """Group-level structured pruning of the encoder's hidden units (module docstring).

    Args:
        sparsity: fraction ``s`` in ``[0, 1)`` of the hidden units (channels, MLP units, heads)
            removed, whole coupled groups at a time.
        criterion: ``"obspa"`` (default), ``"l1"``, ``"l2"`` or ``"taylor"``.
        aggregate: operator-score aggregation, ``"mean"`` (default), ``"sum"`` or ``"max"``.
        normalize: per-operator normalisation, ``"mean"`` (default), ``"max"`` or ``"none"``.
        scope: ``"layer"`` (default) or ``"global"`` (not with ``obspa``, whose errors are
            per layer).
        data: images for ``taylor``/``obspa``: ``"calibration"`` (default; the images given to
            ``compress``) or ``"noise"`` (data-free).
        samples: noise images drawn with ``data="noise"`` (1..4096, default 16).
        damp: OBSPA's relative ridge on ``H`` (default 0.01).
        seed: seed of the noise images.

    Examples:
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> method = SPAPruning(sparsity=0.25, data="noise", samples=4)
        >>> result = method.compress(build_model("mlp", 8))
        >>> result.details["pruned"], result.details["prunable"]
        (96, 384)
    """

    name = "spa"

    def __init__(
        self,
        sparsity: float = 0.5,
        criterion: str = "obspa",
        aggregate: str = "mean",
        normalize: str = "mean",
        scope: str = "layer",
        data: str = "calibration",
        samples: int = 16,
        damp: float = 0.01,
        seed: int = 0,
    ) -> None:
        self.sparsity = check_sparsity(sparsity)
        self.criterion = check_choice("criterion", criterion, CRITERIA)
        self.aggregate = check_choice("aggregate", aggregate, AGGREGATES)
        self.normalize = check_choice("normalize", normalize, NORMALIZATIONS)
        self.scope = check_choice("scope", scope, SCOPES)
        if self.criterion == "obspa" and self.scope == "global":
            raise fail("scope", scope, "layer with criterion obspa (its errors are per layer)")
        self.data = check_choice("data", data, DATA)
        self.samples = check_int("samples", samples, 1, 4096)
        self.damp = check_real("damp", damp, 0.0, 1e6)
        self.seed = check_int("seed", seed, 0, 2**63 - 1)

    def _images(self, model: nn.Module, images: Any) -> torch.Tensor:
        if self.data == "calibration":
            return calibration_images(model, images, f"spa with criterion {self.criterion}")
        return noise_images(model, self.samples, self.seed)

    def _compress(self, model: nn.Module, images: Any) -> tuple[dict[str, Any], dict[str, float]]:
        families = unit_families(model)
        sizes = [f.units for f in families]
        total = sum(sizes)
        count = check_meetable(self.sparsity, total, total - len(families), "hidden units")
        x = self._images(model, images) if self.criterion in ("taylor", "obspa") else None
        details: dict[str, Any] = {"unit": "hidden units", "prunable": total, "pruned": count}
        if self.criterion == "obspa":
            parts = split_count(count, sizes, keep=1)
            errors = {}
            modules = dict(model.named_modules())
            for family, part in zip(families, parts, strict=True):
                errors[family.name] = self._obspa_family(model, modules, family, part, x)
            details["per_layer"] = dict(zip((f.name for f in families), parts, strict=True))
            details["relative_error"] = errors
            return details, {}
        grads = None
        if self.criterion == "taylor":
            model.zero_grad(set_to_none=True)
            with torch.enable_grad():
                reconstruction_loss(model, x).backward()
            grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
            model.zero_grad(set_to_none=True)
        scores = group_importance(
            model, families, self.criterion, self.aggregate, self.normalize, grads
        )
        if self.scope == "global":
            chosen = lowest_with_caps(scores, count, keep=1)
        else:
            parts = split_count(count, sizes, keep=1)
            chosen = [lowest(s, k) for s, k in zip(scores, parts, strict=True)]
        for family, units in zip(families, chosen, strict=True):
            zero_units(model, family, units)
        details["per_layer"] = {
            f.name: int(c.numel()) for f, c in zip(families, chosen, strict=True)
        }
        return details, {}

    def _obspa_family(
        self,
        model: nn.Module,
        modules: dict[str, nn.Module],
        family: UnitFamily,
        count: int,
        x: torch.Tensor,
    ) -> float:
        """Prune ``count`` units of ``family`` by group OBS on its consumer; return the
        consumer's relative output error ``ΣΔE / ‖X Wᵀ‖²`` on the collected inputs."""
        if count == 0:
            return 0.0
        consumer = modules[family.consumer]
        rows = consumer_inputs(model, consumer, x)
        hessian = rows.T @ rows
        weight = consumer.weight.detach().reshape(consumer.weight.shape[0], -1)
        new, removed, errors = group_obs(weight, hessian, family.columns, count, self.damp)
        with torch.no_grad():
            consumer.weight.copy_(new.reshape(consumer.weight.shape).to(consumer.weight.dtype))
        zero_units(model, family, removed)
        dense = float(torch.sum((rows @ weight.to(torch.float64).T) ** 2))
        return sum(errors) / dense if dense > 0 else 0.0
