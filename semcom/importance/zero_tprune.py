"""Zero-TPrune (Wang, Dedhia & Jha, CVPR 2024, arXiv:2305.17328): weighted PageRank on the
encoder's attention graph, then similarity-based pruning.

The attention of one encoder block is a directed graph on the ``N`` tokens: query ``i`` sends
weight ``A_k[i, j]`` to key ``j`` in head ``k``. A token is important when important tokens attend
to it (Weighted PageRank, WPR), averaged over the ``h`` heads at every step:

    s^(0) = 1/N,    s^(t+1)_j = (1/h) Σ_k Σ_i A_k[i, j] s^(t)_i = (Āᵀ s^(t))_j,   Ā = mean_k A_k.

Because every row of ``Ā`` sums to 1, ``Āᵀ`` maps probability vectors to probability vectors, so
``s`` stays non-negative and sums to 1. Softmax attention has every entry > 0, so ``Ā`` is a
positive (primitive) stochastic matrix: by Perron-Frobenius the iteration converges to the unique
stationary distribution ``Āᵀ s = s``, the dominant eigenvector of ``Āᵀ`` (eigenvalue 1), at the
rate ``|λ₂|`` of its second eigenvalue. The iteration stops when ``max_b ||s^(t+1) − s^(t)||₁ <
tol`` or after ``iterations`` steps (the paper runs a fixed small number of steps).

Reduction to ``keep`` tokens, ``r = N − keep`` removals split into two stages:

- I-stage: drop the ``r₁`` tokens with the lowest ``s``.
- S-stage: sort the survivors by ``s`` and deal them alternately into group A (ranks 0, 2, 4, ...)
  and group B (ranks 1, 3, ...); tokens of near-equal importance, often near-duplicates, land in
  different groups. Each B token's redundancy is its largest cosine similarity to an A token
  (features ``z``); the ``r₂`` most redundant B tokens are dropped.

``r₂ = min(round(similarity_share · r), keep)`` (at most the size of group B) and ``r₁ = r − r₂``.
Head aggregation is a plain mean (our stand-in); the paper's refinements that re-weight heads
(emphasising informative regions, filtering heads by variance) are not implemented.

Cost: one encoder pass per image plus ``iterations`` products of ``[N, N]`` by ``[N]``. Measured
``fit``: about 0.03x masking's CPU time on the default ViT at ``N = 16``
(``benchmarks/bench_importance.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from channels.errors import check_int
from semcom.importance.base import IMPORTANCE, ImportanceEstimator
from semcom.importance.reduction import Reduction, reduce_in_batches, top_k_mask
from semcom.importance.token_graph import (
    check_layer,
    check_real,
    cosine_similarity,
    encoder_depth,
    encoder_pass,
    head_mean_attention,
    prepare,
    resolve_layer,
)


def weighted_pagerank(
    attention: torch.Tensor, iterations: int = 100, tol: float = 1e-12
) -> torch.Tensor:
    """WPR scores ``s`` float64 ``[B, N]`` (each row >= 0, sums to 1) of attention graphs.

    Args:
        attention: row-stochastic attention, ``[B, N, N]`` or ``[B, heads, N, N]`` (heads are
            averaged: ``Āᵀ s`` equals the mean over heads of ``A_kᵀ s``).
        iterations: largest number of steps ``s ← Āᵀ s`` from ``s = 1/N``.
        tol: stop once every image's step changes ``s`` by less than ``tol`` in L1 norm.

    Examples:
        >>> a = torch.tensor([[[0.5, 0.5], [0.9, 0.1]]])   # stationary: s = (9/14, 5/14)
        >>> weighted_pagerank(a).numpy().round(6)
        array([[0.642857, 0.357143]])
    """
    a = head_mean_attention(attention) if attention.ndim == 4 else attention.to(torch.float64)
    # float32 softmax rows sum to 1 only to ~1e-7; exact rows keep s a probability vector
    a = a / a.sum(dim=2, keepdim=True)
    b, n, _ = a.shape
    s = torch.full((b, n), 1.0 / n, dtype=torch.float64, device=a.device)
    for _ in range(iterations):
        nxt = torch.einsum("bij,bi->bj", a, s)
        nxt = nxt / nxt.sum(dim=1, keepdim=True)  # removes the last rounding drift
        done = bool((nxt - s).abs().sum(dim=1).max() < tol)
        s = nxt
        if done:
            break
    return s


def i_stage(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Bool ``[B, N]``: the ``n_keep`` tokens of highest importance per image."""
    return top_k_mask(scores, n_keep)


def s_stage(
    features: torch.Tensor, scores: torch.Tensor, alive: torch.Tensor, n_prune: int
) -> torch.Tensor:
    """Similarity stage: drop ``n_prune`` redundant tokens of group B from ``alive``.

    Args:
        features: ``[B, N, L]``, compared by cosine similarity.
        scores: importance ``[B, N]`` ordering the survivors.
        alive: bool ``[B, N]`` with the same count ``m`` per image; ``n_prune <= m // 2``.
        n_prune: tokens to drop per image.

    Returns:
        Bool ``[B, N]``: ``alive`` without the dropped tokens. Among equally redundant B tokens,
        the less important one is dropped first.
    """
    if n_prune == 0:
        return alive.clone()
    m = int(alive[0].sum())
    masked = torch.where(alive, scores.to(torch.float64), torch.full_like(scores, -np.inf))
    order = torch.argsort(masked, dim=1, descending=True, stable=True)[:, :m]
    group_a, group_b = order[:, 0::2], order[:, 1::2]
    sim = cosine_similarity(features)
    rows = torch.gather(sim, 1, group_b[:, :, None].expand(-1, -1, sim.shape[2]))
    redundancy = torch.gather(rows, 2, group_a[:, None, :].expand(-1, rows.shape[1], -1))
    redundancy = redundancy.max(dim=2).values  # [B, |B|]
    # reversed so that the stable sort breaks ties towards the less important B token
    pick = torch.argsort(redundancy.flip(1), dim=1, descending=True, stable=True)[:, :n_prune]
    dropped = torch.gather(group_b.flip(1), 1, pick)
    out = alive.clone()
    out.scatter_(1, dropped, False)
    return out


@IMPORTANCE.register(
    "zero-tprune",
    description="Weighted PageRank on the encoder attention graph; similarity-based pruning",
    paper="arXiv:2305.17328",
)
class ZeroTPruneImportance(ImportanceEstimator):
    """Zero-TPrune: importance ``w̃ = E_x[s(x)]``, ``s`` the WPR vector of one encoder block.

    Args:
        batch_size: images per encoder pass.
        layer: encoder block whose attention forms the graph (negative: from the last; -1).
        iterations: largest number of WPR steps (default 100).
        tol: WPR stopping tolerance on the L1 change of ``s`` (default 1e-12).
        similarity_share: share of the removals of :meth:`reduce` done by the S-stage, in
            ``[0, 1]`` (default 0.5; 0 is the I-stage alone).

    Raises:
        ConfigError: an option out of range; at fit time, a model without attention or a
            ``layer`` outside its encoder.

    Examples:
        >>> import torch
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> vit = build_model("vit", 16, dim=16, heads=2, depth=1)
        >>> est = ZeroTPruneImportance().fit(vit, torch.rand(3, 3, 32, 32))
        >>> est.importances_.shape, round(float(est.importances_.sum()), 12)
        ((16,), 1.0)
        >>> est.reduce(vit, torch.rand(2, 3, 32, 32), keep=5).kept_per_image.tolist()
        [5, 5]
    """

    name = "zero-tprune"
    models = ("vit",)  # reads the encoder's attention

    def __init__(
        self,
        batch_size: int = 256,
        layer: int = -1,
        iterations: int = 100,
        tol: float = 1e-12,
        similarity_share: float = 0.5,
    ) -> None:
        super().__init__(batch_size)
        self.layer = check_layer(layer)
        self.iterations = check_int("iterations", iterations, 1, 100_000)
        self.tol = check_real("tol", tol, 0.0, 1.0)
        self.similarity_share = check_real("similarity_share", similarity_share, 0.0, 1.0)

    def _graph(self, model: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features ``z`` and the WPR scores of the chosen block, one encoder pass."""
        layer = resolve_layer(self.layer, encoder_depth(model))
        z, weights = encoder_pass(model, x)
        return z, weighted_pagerank(weights[layer], self.iterations, self.tol)

    def token_scores(self, model: Any, images: Any) -> torch.Tensor:
        """Per-image WPR scores, float64 ``[B, N]`` (rows sum to 1; higher = more important)."""
        model, x = prepare(model, images)
        return self._graph(model, x)[1]

    def _scores(self, model: Any, x: torch.Tensor) -> np.ndarray:
        return self.token_scores(model, x).sum(dim=0).cpu().numpy()

    def reduce(self, model: Any, images: Any, keep: int) -> Reduction:
        """I-stage then S-stage down to exactly ``keep`` features per image (dropped ones zero)."""
        model, x = prepare(model, images)  # model and images are checked first, then keep
        n = int(model.n_features)

        def step(batch: torch.Tensor, keep: int) -> tuple[torch.Tensor, torch.Tensor]:
            removals = n - keep
            n_similar = min(round(self.similarity_share * removals), keep)
            z, s = self._graph(model, batch)
            alive = i_stage(s, n - (removals - n_similar))
            mask = s_stage(z, s, alive, n_similar)
            return mask, z * mask[:, :, None].to(z.dtype)

        return reduce_in_batches(model, x, keep, self.batch_size, step)
