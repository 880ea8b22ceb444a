"""VFlowOpt (Yang et al., ICCV 2025, arXiv:2508.05211): attention relevance plus patch entropy,
progressive pruning with recycling of the pruned tokens, and hyperparameters tuned so that the
pruned model's output matches the unpruned one.

Importance map of the ``m`` live tokens at one encoder block (head-mean attention ``Ā``
restricted to the live tokens, rows renormalised to sum 1):

    r_j  = (1/m) Σ_i Ā[i, j]                     attention received by token j
    G    = {j : r_j > t · mean_k r_k}            global tokens (G = {argmax r} if none passes)
    I_j  = (1/|G|) Σ_{g∈G} Ā[g, j]               context relevance: what global tokens attend to
    E_j  = −Σ_v h_j(v) log₂ h_j(v)               entropy of patch j's 256-bin grey histogram
    S_j  = I_j + α · softmax(E)_j                importance (both terms sum to 1 over live j)

Grey levels are ``round(255 · mean_c x)`` of the image in [0, 1], so a constant patch has
``E = 0`` and a patch holding each of the 256 levels equally often has ``E = 8`` bits.

Pruning with recycling (:mod:`semcom.importance.recycling`): rank the live tokens by ``S``, keep
the top ones as they are, and fold the others, cell by cell of an ``a × a`` patch grid, into one
token per cell, the ``S``-weighted mean ``Σ S_i z_i / Σ S_i`` written at the cell's highest-``S``
pruned token. The split between plain and recycled tokens is chosen so that exactly the budget is
kept. Without recycling, the top tokens are kept and the rest are dropped.

Progressive pruning: one stage per block in ``layers``. The live count falls geometrically,
``k_s = round(N (keep/N)^{s/S})``, to ``keep``. Each stage recomputes ``S`` on the tokens still
live, from that block's attention and the patch entropies. A recycled token keeps the patch
entropy of its host. The encoder itself runs once on all tokens; pruning acts on the features
``z`` that are sent, and merges happen in feature space.

Flow-guided tuning (:meth:`VFlowOptImportance.tune`): a grid search over ``(t, α)`` minimising
the discrepancy between the reconstructions from the reduced and from the full features,
``mean_x MSE(g(z_reduced), g(z))``. This stands in for the paper's match of the LMM's last-token
representation with and without pruning.

Cost: one encoder pass per image; ``reduce`` adds a per-image ``O(N log N)`` grouping per stage.
Measured ``fit``: about 0.1x masking's CPU time on the default ViT at ``N = 16``
(``benchmarks/bench_importance.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from channels.errors import check_int, fail
from semcom.importance.base import IMPORTANCE, ImportanceEstimator, eval_mode, per_image_mse
from semcom.importance.recycling import cell_index, prune_and_recycle, stage_budgets
from semcom.importance.reduction import Reduction, check_keep, reduce_in_batches
from semcom.importance.token_graph import (
    check_layer,
    check_real,
    encoder_depth,
    encoder_pass,
    head_mean_attention,
    prepare,
    resolve_layer,
)

GREY_LEVELS = 256


def patch_entropy(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Shannon entropy (bits) of each ``p × p`` patch's 256-bin grey histogram, float64 ``[B, N]``.

    Args:
        images: ``[B, C, H, W]`` in [0, 1] (values outside are clipped); patches row-major.
        patch_size: ``p``, dividing ``H`` and ``W``.

    Examples:
        >>> flat = torch.full((1, 1, 4, 4), 0.5)
        >>> ramp = (torch.arange(16.0) * 17 / 255).reshape(1, 1, 4, 4)   # 16 distinct levels
        >>> patch_entropy(torch.cat([flat, ramp]), 4).flatten().tolist()
        [0.0, 4.0]
    """
    b, _, h, w = images.shape
    grey = torch.round(255.0 * images.to(torch.float64).clamp(0.0, 1.0).mean(dim=1)).long()
    gh, gw = h // patch_size, w // patch_size
    patches = grey.reshape(b, gh, patch_size, gw, patch_size).permute(0, 1, 3, 2, 4)
    patches = patches.reshape(b * gh * gw, patch_size * patch_size)
    hist = torch.zeros(patches.shape[0], GREY_LEVELS, dtype=torch.float64, device=images.device)
    hist.scatter_add_(1, patches, torch.ones_like(patches, dtype=torch.float64))
    prob = hist / hist.sum(dim=1, keepdim=True)
    logs = torch.where(prob > 0, torch.log2(prob.clamp_min(1e-300)), torch.zeros_like(prob))
    return -(prob * logs).sum(dim=1).reshape(b, gh * gw) + 0.0  # + 0.0: no -0.0


def vflow_importance(
    attention: torch.Tensor,
    entropy: torch.Tensor,
    t: float,
    alpha: float,
    alive: torch.Tensor | None = None,
) -> torch.Tensor:
    """Importance map ``S = I + α softmax(E)`` on the live tokens, float64 ``[B, N]`` (0 if dead).

    Args:
        attention: ``[B, N, N]`` or ``[B, heads, N, N]`` (head mean), rows sum to 1.
        entropy: patch entropies ``[B, N]`` (bits).
        t: global-token threshold, in multiples of the mean received attention.
        alpha: weight of the entropy term.
        alive: bool ``[B, N]`` of live tokens (default: all).
    """
    a = head_mean_attention(attention) if attention.ndim == 4 else attention.to(torch.float64)
    if alive is None:
        alive = torch.ones(a.shape[:2], dtype=torch.bool, device=a.device)
    live = alive.to(torch.float64)
    a = a * live[:, None, :]
    a = a / a.sum(dim=2, keepdim=True)  # restricted to live keys, rows sum to 1 again
    count = live.sum(dim=1, keepdim=True)
    received = (a * live[:, :, None]).sum(dim=1) / count  # mean over live queries
    mean_received = (received * live).sum(dim=1, keepdim=True) / count
    is_global = alive & (received > t * mean_received)
    fallback = torch.zeros_like(alive)
    fallback.scatter_(1, received.masked_fill(~alive, -math.inf).argmax(dim=1, keepdim=True), True)
    is_global = torch.where(is_global.any(dim=1, keepdim=True), is_global, fallback)
    g = is_global.to(torch.float64)
    relevance = (a * g[:, :, None]).sum(dim=1) / g.sum(dim=1, keepdim=True)
    soft = torch.softmax(entropy.to(torch.float64).masked_fill(~alive, -math.inf), dim=1)
    return torch.where(alive, relevance + alpha * soft, torch.zeros_like(relevance))


@IMPORTANCE.register(
    "vflowopt",
    description="Attention relevance of global tokens + patch entropy; progressive recycling",
    paper="arXiv:2508.05211",
)
class VFlowOptImportance(ImportanceEstimator):
    """VFlowOpt: importance ``w̃ = E_x[S(x)] / (1 + α)`` at the last stage's block.

    Args:
        batch_size: images per encoder pass.
        layers: encoder blocks of the progressive stages, in order (negative: from the last);
            default ``None``: every block, first to last. The importance weights use the last.
        t: global-token threshold in multiples of the mean received attention (default 1.0).
        alpha: weight of the patch-entropy term (default 0.5).
        cell: side ``a`` of the recycling cells, in patches (default 2).
        recycle: recycle pruned tokens into their cell's host (default True) or drop them.
        tune_keep: if set, :meth:`fit` first runs :meth:`tune` at this ``keep`` on its images.

    Raises:
        ConfigError: an option out of range; at fit time, a model without attention or a
            layer outside its encoder.

    Examples:
        >>> import torch
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> vit = build_model("vit", 16, dim=16, heads=2, depth=2)
        >>> est = VFlowOptImportance().fit(vit, torch.rand(3, 3, 32, 32))
        >>> est.importances_.shape, round(float(est.importances_.sum()), 12)
        ((16,), 1.0)
        >>> est.reduce(vit, torch.rand(2, 3, 32, 32), keep=6).kept_per_image.tolist()
        [6, 6]
    """

    name = "vflowopt"
    models = ("vit",)  # reads the encoder's attention
    T_GRID = (0.5, 1.0, 2.0, 4.0)
    ALPHA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)

    def __init__(
        self,
        batch_size: int = 256,
        layers: Sequence[int] | None = None,
        t: float = 1.0,
        alpha: float = 0.5,
        cell: int = 2,
        recycle: bool = True,
        tune_keep: int | None = None,
    ) -> None:
        super().__init__(batch_size)
        if layers is not None:
            if isinstance(layers, str | bytes) or not isinstance(layers, Sequence) or not layers:
                raise fail("layers", layers, "a non-empty list of encoder block indices, or null")
            layers = tuple(check_layer(layer) for layer in layers)
        self.layers = layers
        self.t = check_real("t", t, 0.0)
        self.alpha = check_real("alpha", alpha, 0.0)
        self.cell = check_int("cell", cell, 1, 4096)
        if not isinstance(recycle, bool):
            raise fail("recycle", recycle, "true or false")
        self.recycle = recycle
        self.tune_keep = None if tune_keep is None else check_int("tune_keep", tune_keep, 1)

    # --- helpers --------------------------------------------------------------------------------
    def _blocks(self, model: Any) -> list[int]:
        depth = encoder_depth(model)
        chosen = range(depth) if self.layers is None else self.layers
        return [resolve_layer(layer, depth) for layer in chosen]

    def _pass(self, model: Any, x: torch.Tensor) -> tuple[torch.Tensor, list, torch.Tensor]:
        """Features, attention per block, and patch entropies of one batch."""
        z, weights = encoder_pass(model, x)
        return z, weights, patch_entropy(x, int(model.patch_size))

    def _reduce_batch(self, model: Any, x: torch.Tensor, keep: int, t: float, alpha: float):
        blocks = self._blocks(model)
        z, weights, entropy = self._pass(model, x)
        n = z.shape[1]
        cells = cell_index(n, tuple(model.grid), self.cell)
        alive = torch.ones(z.shape[:2], dtype=torch.bool, device=z.device)
        owner, feats = None, z
        for block, budget in zip(blocks, stage_budgets(n, keep, len(blocks)), strict=True):
            scores = vflow_importance(weights[block], entropy, t, alpha, alive)
            alive, feats, owner = prune_and_recycle(
                feats, scores, alive, budget, cells, recycle=self.recycle, owner=owner
            )
        return alive, torch.where(alive[:, :, None], feats, torch.zeros_like(feats))

    # --- public API -----------------------------------------------------------------------------
    def token_scores(self, model: Any, images: Any) -> torch.Tensor:
        """``S / (1 + α)`` at the last stage's block, all tokens live: float64 ``[B, N]``, sum 1."""
        model, x = prepare(model, images)
        block = self._blocks(model)[-1]
        _, weights, entropy = self._pass(model, x)
        return vflow_importance(weights[block], entropy, self.t, self.alpha) / (1.0 + self.alpha)

    def _scores(self, model: Any, x: torch.Tensor) -> np.ndarray:
        return self.token_scores(model, x).sum(dim=0).cpu().numpy()

    def fit(self, model: Any, images: Any) -> VFlowOptImportance:
        """Optionally tune ``(t, alpha)`` (``tune_keep``), then estimate the importance weights."""
        if self.tune_keep is not None:
            self.tune(model, images, self.tune_keep)
        return super().fit(model, images)

    def reduce(self, model: Any, images: Any, keep: int) -> Reduction:
        """Progressive pruning, recycling in feature space ``z``, to exactly ``keep`` features."""
        return self._reduce(model, images, keep, self.t, self.alpha)

    def _reduce(self, model: Any, images: Any, keep: int, t: float, alpha: float) -> Reduction:
        model, x = prepare(model, images)
        check_keep(keep, int(model.n_features))
        self._blocks(model)  # layer errors before any work

        def step(batch: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
            return self._reduce_batch(model, batch, keep, t, alpha)

        return reduce_in_batches(model, x, keep, self.batch_size, step)

    @torch.no_grad()
    def discrepancy(self, model: Any, images: Any, reduction: Reduction) -> float:
        """``mean_x MSE(g(z_reduced), g(z))``: how far pruning moves the reconstruction."""
        model, x = prepare(model, images)
        total = 0.0
        with eval_mode(model):
            for start in range(0, x.shape[0], self.batch_size):
                stop = start + self.batch_size
                full = model.decode(model.encode(x[start:stop]))
                pruned = model.decode(reduction.features[start:stop])
                total += float(per_image_mse(full, pruned).sum())
        return total / x.shape[0]

    def tune(
        self,
        model: Any,
        images: Any,
        keep: int,
        t_grid: Sequence[float] | None = None,
        alpha_grid: Sequence[float] | None = None,
    ) -> dict[str, Any]:
        """Grid search of ``(t, alpha)`` minimising :meth:`discrepancy` at ``keep``; sets both.

        The grids default to :attr:`T_GRID` and :attr:`ALPHA_GRID`.

        Returns:
            ``{"t", "alpha", "discrepancy", "table"}``, ``table`` a list of
            ``(t, alpha, discrepancy)`` for every grid point (ties: the first in grid order).
        """
        t_grid = self.T_GRID if t_grid is None else t_grid
        alpha_grid = self.ALPHA_GRID if alpha_grid is None else alpha_grid
        t_values = [check_real("t_grid", v, 0.0) for v in t_grid]
        alpha_values = [check_real("alpha_grid", v, 0.0) for v in alpha_grid]
        if not t_values or not alpha_values:
            raise fail("t_grid/alpha_grid", (t_grid, alpha_grid), "non-empty lists")
        table = []
        for t, alpha in itertools.product(t_values, alpha_values):
            reduction = self._reduce(model, images, keep, t, alpha)
            table.append((t, alpha, self.discrepancy(model, images, reduction)))
        best = min(table, key=lambda row: row[2])
        self.t, self.alpha = best[0], best[1]
        return {"t": best[0], "alpha": best[1], "discrepancy": best[2], "table": table}
