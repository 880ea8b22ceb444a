"""Elastic Cache (Liu et al., ECCV 2024, arXiv:2407.18121): importance-driven merging.

The paper compresses the key/value cache of a vision-language model. Each cached token is scored
by the attention it *receives* during the instruction prefill (averaged over heads, summed over
queries); the highest-scoring tokens become *anchors*, and every other token is merged into an
anchor (its key and value averaged in) instead of being evicted.

On our codec the cached tokens are the ViT's ``N`` tokens, i.e. the ``N`` semantic features.
For image ``b``:

    s_j = Σ_{l ∈ layers} (1/H) Σ_h Σ_i A^{(l)}_h[i, j]           (attention received, [B, N])
    w̃_j = E_x[s_j]                                               (raw importance)

``reduce(model, images, keep)`` is the merging step, done in feature space ``z`` [B, N, L]:

    anchors  = the ``keep`` tokens with the largest s_j (per image)
    a(i)     = argmax_{a ∈ anchors} cos(z_i, z_a)     (``assign="similarity"``, default), or
               the anchor nearest to i on the patch grid (``assign="position"``: the authors'
               code merges into the nearest anchor by sequence position)
    z'_a     = mean{ z_i : a(i) = a }   (the anchor included, a(a) = a);   z'_i = 0 off anchors

so ``|group(a)| · z'_a = Σ_{i ∈ group(a)} z_i`` (the group sum is preserved up to the count).
With ``keep = N`` every token is its own anchor and ``z' = z``.

Not carried over: the paper's protection of the first tokens and of a recent window, and its
fixed-point elimination during generation, both tied to causal decoding (our encoder attends
in both directions and generates nothing). The paper works layer by layer on each layer's
cache; our features leave after the last block, so the score sums the selected blocks.

Cost: one encoder pass per image (plus one cosine-similarity matrix per image in ``reduce``),
against masking's ``N + 1`` decoder passes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from channels.errors import fail
from semcom.importance.base import (
    IMPORTANCE,
    ImportanceEstimator,
    check_model,
    encode_checked,
)
from semcom.importance.reduction import Reduction, reduce_in_batches, top_k_mask
from semcom.importance.token_graph import require_attention_model
from semcom.importance.vit_trace import (
    check_layers,
    received_attention,
    resolve_layers,
    trace,
)

ASSIGN = ("similarity", "position")


def assign_by_similarity(z: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Index ``[B, N]`` of the anchor each token merges into: ``argmax_a cos(z_i, z_a)``.

    Anchors map to themselves. Ties go to the lower anchor index; a zero vector has cosine 0
    with everything.
    """
    flat = z.reshape(z.shape[0], z.shape[1], -1).to(torch.float64)
    unit = flat / flat.norm(dim=2, keepdim=True).clamp_min(1e-300)
    sim = unit @ unit.transpose(1, 2)  # [B, N, N]
    sim = sim.masked_fill(~anchors[:, None, :], -torch.inf)
    target = sim.argmax(dim=2)
    self_index = torch.arange(z.shape[1], device=z.device).expand_as(target)
    return torch.where(anchors, self_index, target)


def assign_by_position(anchors: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Index ``[B, N]`` of the anchor nearest to each token on a ``(rows, cols)`` patch grid.

    Euclidean distance between patch centres (row-major token order); ties go to the lower
    anchor index; anchors map to themselves.
    """
    n = anchors.shape[1]
    idx = torch.arange(n, device=anchors.device)
    coords = torch.stack([idx // grid[1], idx % grid[1]], dim=1).to(torch.float64)
    dist = torch.cdist(coords, coords)  # [N, N]
    dist = dist.expand(anchors.shape[0], n, n).masked_fill(~anchors[:, None, :], torch.inf)
    target = dist.argmin(dim=2)
    return torch.where(anchors, idx.expand_as(target), target)


def merge_into_anchors(
    z: torch.Tensor, anchors: torch.Tensor, assign: torch.Tensor
) -> torch.Tensor:
    """Group means ``z'_a = mean{z_i : assign_i = a}`` on the anchors, zero elsewhere.

    Args:
        z: features ``[B, N, L]``.
        anchors: bool ``[B, N]``; ``assign[b, a] == a`` for every anchor ``a``.
        assign: int64 ``[B, N]``, the anchor of each token.

    Returns:
        ``[B, N, L]`` with the dtype of ``z``.
    """
    idx = assign.unsqueeze(-1).expand_as(z)
    sums = torch.zeros_like(z).scatter_add(1, idx, z)
    counts = torch.zeros(z.shape[:2], dtype=z.dtype, device=z.device)
    counts.scatter_add_(1, assign, torch.ones_like(counts))
    merged = sums / counts.clamp_min(1.0).unsqueeze(-1)
    return merged * anchors.unsqueeze(-1).to(z.dtype)


@IMPORTANCE.register(
    "elastic-cache",
    description="Attention received (heads mean, queries and blocks summed); "
    "reduce merges pruned features into their most similar anchor",
    paper="arXiv:2407.18121",
)
class ElasticCacheImportance(ImportanceEstimator):
    """Elastic Cache importance ``w̃_j = E_x Σ_l (1/H) Σ_h Σ_i A^{(l)}_h[i, j]`` and merging.

    Args:
        batch_size: images per encoder pass.
        layers: encoder blocks whose attention is summed: ``"all"`` (default), ``"last"`` or a
            block number ``1..depth``.
        assign: how ``reduce`` picks the anchor of a pruned feature: ``"similarity"`` (default,
            the most cosine-similar anchor in feature space) or ``"position"`` (the nearest
            anchor on the patch grid, as the authors' code does by sequence position).

    Raises:
        ConfigError: a bad option, or (at ``fit``/``reduce``) a model without attention.

    Examples:
        >>> import torch
        >>> from semcom.models import build_model
        >>> _ = torch.manual_seed(0)
        >>> vit = build_model("vit", 4, input_shape=[1, 8, 8], dim=8, heads=2, depth=1).eval()
        >>> x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        >>> est = ElasticCacheImportance().fit(vit, x)
        >>> est.importances_.shape, round(float(est.importances_.sum()), 12)
        ((4,), 1.0)
        >>> red = est.reduce(vit, x, keep=2)
        >>> red.kept_per_image.tolist()
        [2, 2, 2]
    """

    name = "elastic-cache"
    models = ("vit",)  # reads the encoder's attention

    def __init__(
        self, batch_size: int = 256, layers: str | int = "all", assign: str = "similarity"
    ) -> None:
        super().__init__(batch_size)
        self.layers = check_layers(layers)
        key = str(assign).strip().lower()
        if key not in ASSIGN:
            raise fail("assign", assign, " or ".join(ASSIGN))
        self.assign = key

    def token_scores(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        """Attention received per image, float64 ``[B, N]`` (higher = more important)."""
        _, weights = trace(model, x)
        picked = resolve_layers(self.layers, len(weights))
        return sum(received_attention(weights[l]) for l in picked)

    def _scores(self, model: Any, x: torch.Tensor) -> np.ndarray:
        require_attention_model(model)
        return self.token_scores(model, x).sum(dim=0).cpu().numpy()

    def fit(self, model: Any, images: Any) -> ElasticCacheImportance:
        """Estimate ``w̃`` on ``images`` [B, C, H, W]; ConfigError for a model without attention."""
        check_model(model)
        require_attention_model(model)
        return super().fit(model, images)

    @torch.no_grad()
    def reduce(self, model: Any, images: Any, keep: int) -> Reduction:
        """Keep the ``keep`` most-attended features per image and merge the rest into them.

        Returns a :class:`~semcom.importance.reduction.Reduction` whose ``features`` hold the
        anchors' group means (see the module docstring) and zeros elsewhere.
        """
        require_attention_model(model)

        def step(x: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
            z = encode_checked(model, x)
            anchors = top_k_mask(self.token_scores(model, x), keep)
            if self.assign == "similarity":
                target = assign_by_similarity(z, anchors)
            else:
                grid = tuple(getattr(model, "grid", (1, z.shape[1])))
                target = assign_by_position(anchors, grid)
            return anchors, merge_into_anchors(z, anchors, target)

        return reduce_in_batches(model, images, keep, self.batch_size, step)
