"""Progressive pruning with recycling: the pruned tokens of each patch-grid cell become one token.

One stage keeps ``k`` of the ``m`` live tokens of an image, ranked by an importance ``S``:

- the top ``p`` stay as they are;
- the others are grouped by the ``a × a`` cell of the patch grid they lie in, and each group
  becomes one recycled token ``Σ S_i z_i / Σ S_i`` written at its highest-``S`` member (kept), so
  every cell keeps the ``S``-weighted sum of the features it lost;
- ``p`` is the largest value with ``p + c(p) = k``, ``c(p)`` the number of cells among the pruned
  tokens ``ranks p..m-1``. Lowering ``p`` by one moves one token to the pruned set, so
  ``p + c(p)`` falls by 0 or 1 per step. It goes from ``> k`` at ``p = k`` down to the number of
  occupied cells at ``p = 0``, so ``k`` is reached exactly whenever at most ``k`` cells are
  occupied. Otherwise all tokens are pruned and only the ``k`` groups of largest total ``S`` are
  kept (the rest dropped).

Without recycling the top ``k`` are kept. Over several stages the live count falls geometrically
(:func:`stage_budgets`). Used by VFlowOpt (:mod:`semcom.importance.vflowopt`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from channels.errors import fail


def cell_index(n_tokens: int, grid: tuple[int, int], cell: int) -> list[int]:
    """Recycling cell of each token of a row-major ``grid``: ``(row // cell, col // cell)``."""
    gh, gw = grid
    if gh * gw != n_tokens:
        raise fail("grid", grid, f"a patch grid of {n_tokens} tokens")
    per_row = math.ceil(gw / cell)
    return [(i // gw // cell) * per_row + (i % gw) // cell for i in range(n_tokens)]


def prune_and_recycle(
    features: torch.Tensor,
    scores: torch.Tensor,
    alive: torch.Tensor,
    keep: int,
    cells: Sequence[int],
    *,
    recycle: bool = True,
    owner: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pruning stage: keep ``keep`` of the live tokens, recycling the pruned ones per cell.

    Args:
        features: ``[B, N, L]`` current token values.
        scores: importance ``[B, N]`` (>= 0 on live tokens).
        alive: bool ``[B, N]`` live tokens, at least ``keep`` per image.
        keep: live tokens left per image.
        cells: recycling cell of each token (:func:`cell_index`).
        recycle: merge the pruned tokens per cell (True) or drop them.
        owner: ``[B, N]`` int64 token -> live token that carries it (-1: dropped); default
            identity. Updated as tokens merge.

    Returns:
        ``(alive, features, owner)`` after the stage: exactly ``keep`` live tokens per image; a
        recycled host holds ``Σ S_i z_i / Σ S_i`` over its group (uniform weights if all
        ``S_i = 0``); features of dead tokens are left as they were.
    """
    b, n, _ = features.shape
    feats = features.clone()
    alive = alive.clone()
    own = np.tile(np.arange(n), (b, 1)) if owner is None else owner.cpu().numpy().copy()
    score = scores.to(torch.float64).cpu().numpy()
    live_np = alive.cpu().numpy()
    for row in range(b):
        live = [int(i) for i in np.argsort(-score[row], kind="stable") if live_np[row, i]]
        if keep >= len(live):
            continue
        plain, groups = _plan(live, score[row], keep, cells, recycle)
        carrier = dict.fromkeys(live, -1) | {i: i for i in plain}
        for members in groups:
            w = score[row, members]
            w = w / w.sum() if w.sum() > 0 else np.full(len(members), 1.0 / len(members))
            host = members[int(np.argmax(score[row, members]))]
            weights = torch.tensor(w, dtype=torch.float64, device=features.device)
            merged = (weights[:, None] * feats[row, members].to(torch.float64)).sum(dim=0)
            feats[row, host] = merged.to(feats.dtype)
            carrier.update(dict.fromkeys(members, host))
        own[row] = [carrier.get(o, o) if o >= 0 else -1 for o in own[row]]
        alive[row] = False
        alive[row, [i for i in live if carrier[i] == i]] = True
    return alive, feats, torch.from_numpy(own).to(features.device)


def _plan(
    live: list[int], score: np.ndarray, keep: int, cells: Sequence[int], recycle: bool
) -> tuple[list[int], list[list[int]]]:
    """Plain-kept tokens and recycled groups (each a list of tokens) for one image."""
    if not recycle:
        return live[:keep], []
    m = len(live)
    suffix_cells = [0] * (m + 1)  # distinct cells among live[p:]
    seen: set[int] = set()
    for p in range(m - 1, -1, -1):
        seen.add(cells[live[p]])
        suffix_cells[p] = len(seen)
    feasible = [p for p in range(keep + 1) if p + suffix_cells[p] == keep]
    p = max(feasible) if feasible else 0
    by_cell: dict[int, list[int]] = {}
    for i in live[p:]:
        by_cell.setdefault(cells[i], []).append(i)
    groups = list(by_cell.values())
    if not feasible:  # more cells than the budget: keep the groups of largest total score
        groups.sort(key=lambda g: -float(score[g].sum()))
        groups = groups[:keep]
    return live[:p], groups


def stage_budgets(n: int, keep: int, stages: int) -> list[int]:
    """Live tokens after each stage: ``round(n (keep/n)^{s/S})``, non-increasing, last = keep."""
    out = [max(keep, round(n * (keep / n) ** (s / stages))) for s in range(1, stages + 1)]
    out[-1] = keep
    return [min(out[: i + 1]) for i in range(stages)]
