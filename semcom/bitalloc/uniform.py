"""Baseline ``uniform``: every feature gets the same quantiser bits.

With ``total = B̄ · N`` bits, each feature gets ``b = floor(total / N)``; when ``B̄ · N`` is not a
multiple of ``N`` the ``total - N · b`` spare bits go one each to the most important features
(ties: the lower index first), so the budget is met exactly and a more important feature never
gets fewer bits. With an integer ``B̄`` this is today's single ``Q`` per scenario.
"""

from __future__ import annotations

import numpy as np

from semcom.bitalloc.base import BIT_ALLOCATION, BitAllocator
from semcom.registry import ISFR_PAPER


def importance_order(w: np.ndarray) -> np.ndarray:
    """Feature indices from the most to the least important (ties: the lower index first)."""
    return np.argsort(-w, kind="stable")


@BIT_ALLOCATION.register(
    "uniform",
    description="Equal bits per feature; spare bits to the most important features",
    paper=ISFR_PAPER,
)
class UniformBits(BitAllocator):
    """Equal bits ``floor(B̄)``, the remainder one bit each to the most important features.

    Examples:
        >>> UniformBits().allocate([0.1, 0.5, 0.4], average_bits=4 + 2 / 3).tolist()
        [4, 5, 5]
    """

    name = "uniform"

    def __init__(self) -> None:
        pass

    def _allocate(self, w: np.ndarray, total: int, q_min: int, q_max: int) -> np.ndarray:
        base, spare = divmod(total, w.size)
        q = np.full(w.size, base, dtype=np.int64)
        q[importance_order(w)[:spare]] += 1
        return q
