"""Baseline ``greedy-distortion``: marginal-gain bit allocation (integer reverse water-filling).

Feature ``i`` (``L`` scalars in ``[-1, 1]``, importance ``w_i``) quantised with ``Q_i`` bits has
step ``Δ_i = 2 / 2^Q_i`` and weighted distortion ``D_i(Q_i) = w_i · L · Δ_i² / 12``. Starting from
``Q_i = q_min``, each of the ``total - N · q_min`` remaining bits goes to the feature with the
largest gain ``D_i(Q_i) - D_i(Q_i + 1) = w_i · L · (3/4) · Δ_i² / 12`` among those below
``q_max`` (ties: the lower index). Each ``D_i`` is convex and decreasing in ``Q_i`` (every extra
bit gains a quarter of the previous one), so this greedy minimises ``Σ_i D_i`` over integer
allocations with the exact budget (the classic marginal-analysis result for separable convex
costs); it is the integer form of reverse water-filling,
``Q_i ≈ B̄ + ½ log2(w_i / (Π_j w_j)^(1/N))``. ``L`` scales every gain alike and does not change
the allocation.
"""

from __future__ import annotations

import heapq

import numpy as np

from semcom.bitalloc.base import BIT_ALLOCATION, BitAllocator


def weighted_distortion(w: np.ndarray, q: np.ndarray, scalars: int = 1) -> float:
    """``Σ_i w_i · L · Δ_i² / 12`` with ``Δ_i = 2 / 2^Q_i``."""
    step = 2.0 / np.exp2(np.asarray(q, dtype=np.float64))
    return float(np.sum(np.asarray(w, dtype=np.float64) * scalars * step**2 / 12.0))


@BIT_ALLOCATION.register(
    "greedy-distortion",
    description="Marginal-gain greedy on w_i·L·Δ_i²/12 (integer reverse water-filling)",
    paper="Gersho & Gray 1992, Vector Quantization and Signal Compression, ch. 8",
)
class GreedyDistortion(BitAllocator):
    """Greedy marginal-gain allocation minimising ``Σ w_i L Δ_i² / 12``.

    Examples:
        >>> GreedyDistortion().allocate([0.7, 0.2, 0.1], average_bits=4, q_min=1).tolist()
        [5, 4, 3]
    """

    name = "greedy-distortion"

    def __init__(self) -> None:
        pass

    def _allocate(self, w: np.ndarray, total: int, q_min: int, q_max: int) -> np.ndarray:
        q = np.full(w.size, q_min, dtype=np.int64)
        # gain of the next bit, (3/4)·w·Δ²/12 with Δ = 2^(1-Q); max-heap on (-gain, index)
        gain = lambda i: 0.75 * w[i] * 4.0 ** (1 - int(q[i])) / 12.0  # noqa: E731
        heap = [(-gain(i), i) for i in range(w.size) if q[i] < q_max]
        heapq.heapify(heap)
        for _ in range(total - int(q.sum())):
            _, i = heapq.heappop(heap)
            q[i] += 1
            if q[i] < q_max:
                heapq.heappush(heap, (-gain(i), i))
        return q
