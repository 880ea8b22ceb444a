"""Maestro: trainable low-rank layers ordered by ordered dropout over ranks, then truncated
(Horváth, Laskaridis, Rajput and Wang, "Maestro: Uncovering Low-Rank Structures via Trainable
Decomposition", ICML 2024, arXiv:2308.14929).

**Decomposition.** Every ``Linear``/``Conv2d`` of the encoder becomes an
:class:`~semcom.compression.low_rank.OrderedLowRank` ``W = U Vᵀ`` of full rank
``r = min(m, n)``, started from the SVD (the codec is unchanged at full rank).

**Low-rank ordered decomposition (LoD).** A short fine-tune on the calibration images
minimises

    E_b [ L̃(U_{:, :b}, V_{:, :b}) ] + μ Σ_l (1/r_l) Σ_k g_{l,k} / g_{l,0}^{init},

where ``L̃`` is the reconstruction MSE relative to the unpruned codec's, ``b`` is drawn uniformly
from ``1..r_l`` (``sampling="layer"``: one layer, drawn uniformly, is truncated per step and the
others run at full rank; ``sampling="all"``: every layer draws its own ``b``), and
``g_{l,k} = ||[U_{:, k:}; V_{:, k:}]||_F`` are the nested tails of the hierarchical group lasso
(each layer's term divided by its initial ``g_{l,0}`` so that ``μ`` does not depend on the
weights' scale). Sampling the rank makes the leading components carry the most; on a linear
auto-encoder this recovers the PCA directions in order (a test compares with
``numpy.linalg.svd``).

**Truncation.** The budget is in rank components: exactly ``round(sparsity · Σ_l r_l)`` are
removed, those with the smallest ``g_{l,k} / g_{l,0}`` over all layers (Maestro's progressive
shrinking removes the tails whose group norm falls below a threshold ``ε``; here ``ε`` is set by
the budget, and norms are compared relative to each layer's total because raw norms of layers of
different sizes and scales are not comparable: ``ranking="absolute"`` compares them raw). Because
``g_{l,k}`` falls with ``k`` the kept components of a layer are always its first ``b_l``; every
layer keeps at least one. A layer of rank ``b`` becomes a factorised pair of plain torch layers when
``b (m + n) < m n`` (measured parameters and FLOPs fall accordingly), else a dense layer holding
``U_b V_bᵀ``. The codec's interface and feature shapes are unchanged; its ``state_dict`` keys
change where a layer was factorised.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from channels.errors import check_int
from semcom.compression.base import (
    COMPRESSION,
    Compressor,
    compressible_layers,
    encoder_parameters,
)
from semcom.compression.budget import (
    calibration_images,
    check_choice,
    check_real,
    check_sparsity,
    mean_loss,
    random_batch,
    reconstruction_loss,
    target_count,
    trainable_only,
)
from semcom.compression.low_rank import OrderedLowRank, replace_module

SAMPLING = ("layer", "all")


def train_ordered(
    layers: Sequence[OrderedLowRank],
    loss_fn: Callable[[], torch.Tensor],
    params: Sequence[nn.Parameter],
    *,
    steps: int,
    lr: float,
    group_lasso: float = 0.0,
    sampling: str = "layer",
    generator: torch.Generator,
) -> list[float]:
    """Low-rank ordered decomposition training (module docstring); returns the loss per step.

    Args:
        layers: the ordered low-rank layers whose ranks are sampled.
        loss_fn: the task loss of one step (it draws its own mini-batch), with the layers'
            :attr:`~OrderedLowRank.active` ranks as set for that step.
        params: the parameters to train (Adam, cosine-decayed step ``lr``).
        steps: number of steps.
        group_lasso: ``μ`` of the normalised hierarchical group lasso.
        sampling: ``"layer"`` or ``"all"``.
        generator: the only source of randomness for the rank draws.
    """
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    scale = [float(layer.hierarchical_norms()[0].detach()) or 1.0 for layer in layers]
    history = []
    for _ in range(steps):
        chosen = (
            [int(torch.randint(len(layers), (1,), generator=generator))]
            if sampling == "layer"
            else range(len(layers))
        )
        for i in chosen:
            layers[i].active = int(torch.randint(1, layers[i].rank + 1, (1,), generator=generator))
        try:
            loss = loss_fn()
        finally:
            for layer in layers:
                layer.active = None
        objective = loss
        if group_lasso > 0:
            penalty = sum(
                layer.hierarchical_norms().sum() / (layer.rank * s)
                for layer, s in zip(layers, scale, strict=True)
            )
            objective = loss + group_lasso * penalty
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
    return history


def truncation_ranks(norms: Sequence[torch.Tensor], remove: int) -> list[int]:
    """Ranks ``b_l`` after removing the ``remove`` components with the smallest nested norms.

    Args:
        norms: per layer, ``g_{l,k}`` ``[r_l]`` (non-increasing in ``k``).
        remove: components to remove in all, at most ``Σ_l (r_l − 1)``.

    Component 0 of each layer is never removed; ties go to the later component of a layer,
    then to the later layer, so that each layer loses a tail.

    Examples:
        >>> import torch
        >>> truncation_ranks([torch.tensor([5.0, 3.0, 1.0]), torch.tensor([4.0, 2.0])], 2)
        [2, 1]
    """
    candidates = [
        (float(g[k]), -layer, -k) for layer, g in enumerate(norms) for k in range(1, g.numel())
    ]
    ranks = [g.numel() for g in norms]
    for _, layer, _ in sorted(candidates)[:remove]:
        ranks[-layer] -= 1
    return ranks


@COMPRESSION.register(
    "maestro",
    description="Trainable low-rank encoder layers ordered by ordered dropout over ranks "
    "(LoD) with a hierarchical group lasso, truncated to an exact rank budget",
    paper="arXiv:2308.14929",
)
class Maestro(Compressor):
    """Low-rank ordered decomposition of the encoder's layers (module docstring).

    Args:
        sparsity: fraction of the encoder's rank components to remove, in [0, 1) (unit: rank
            components, ``Σ_l min(m_l, n_l)`` in all). Default 0.5.
        steps: LoD fine-tuning steps (0: truncate the SVD directly). Default 200.
        lr: Adam step, cosine-decayed (default 3e-3).
        group_lasso: ``μ`` (default 1e-3).
        sampling: ``"all"`` (default: every layer draws its rank each step, as at deployment
            where all layers are truncated) or ``"layer"``.
        ranking: how components compare across layers at truncation: ``"relative"`` (default:
            ``g_{l,k} / g_{l,0}``, the share of the layer's norm in its tail) or
            ``"absolute"`` (``g_{l,k}``).
        batch_size: images per step (default 64).
        seed: seed of the rank and image draws.

    Examples:
        >>> import torch
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> model = build_model("mlp", 4, hidden=[16, 8])
        >>> result = Maestro(sparsity=0.5, steps=5).compress(model, torch.rand(16, 1, 8, 8))
        >>> result.details["removed_components"], sum(result.details["ranks"].values())
        (16, 16)
    """

    name = "maestro"

    def __init__(
        self,
        sparsity: float = 0.5,
        steps: int = 200,
        lr: float = 3e-3,
        group_lasso: float = 1e-3,
        sampling: str = "all",
        batch_size: int = 64,
        seed: int = 0,
        ranking: str = "relative",
    ) -> None:
        self.ranking = check_choice("ranking", ranking, ("relative", "absolute"))
        self.sparsity = check_sparsity(sparsity)
        self.steps = check_int("steps", steps, 0, 100_000)
        self.lr = check_real("lr", lr, 0.0, 1.0, low_open=True)
        self.group_lasso = check_real("group_lasso", group_lasso, 0.0)
        self.sampling = check_choice("sampling", sampling, SAMPLING)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)

    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        x = calibration_images(model, images, "maestro")
        named = compressible_layers(model)
        full = [min(layer.weight.shape[0], layer.weight[0].numel()) for _, layer in named]
        total = sum(full)
        target = target_count(self.sparsity, total, total - len(full), "rank components")
        generator = torch.Generator().manual_seed(self.seed)
        base = max(mean_loss(model, x, self.batch_size), 1e-300)
        ordered = []
        for name, layer in named:
            olr = OrderedLowRank(layer)
            replace_module(model, name, olr)
            ordered.append(olr)
        params = [p for _, p in encoder_parameters(model)]

        def loss_fn() -> torch.Tensor:
            return reconstruction_loss(model, random_batch(x, self.batch_size, generator)) / base

        history: list[float] = []
        with trainable_only(model.parameters(), params):
            if self.steps:
                history = train_ordered(
                    ordered, loss_fn, params, steps=self.steps, lr=self.lr,
                    group_lasso=self.group_lasso, sampling=self.sampling, generator=generator,
                )  # fmt: skip
        with torch.no_grad():
            norms = [olr.hierarchical_norms().detach().cpu() for olr in ordered]
            if self.ranking == "relative":
                norms = [g / g[0] if g[0] > 0 else g for g in norms]
        ranks = truncation_ranks(norms, target)
        factorised = []
        for (name, _), olr, b in zip(named, ordered, ranks, strict=True):
            exported = olr.export(b)
            replace_module(model, name, exported)
            if isinstance(exported, nn.Sequential):
                factorised.append(name)
        details = {
            "unit": "rank components",
            "components": total,
            "removed_components": total - sum(ranks),
            "ranks": {name: b for (name, _), b in zip(named, ranks, strict=True)},
            "full_ranks": {name: r for (name, _), r in zip(named, full, strict=True)},
            "factorised": factorised,
            "relative_loss_first_last": [history[0], history[-1]] if history else [],
            "loss_after": mean_loss(model, x, self.batch_size),
        }
        return details, {}
