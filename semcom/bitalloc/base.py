"""The ``bit-allocation`` family: quantiser bits per feature from importance, under a budget.

A bit allocator turns importance weights ``w[N]`` (>= 0, sum 1) into integer quantiser bits
``Q[N]`` per scalar of each feature, with the average fixed exactly::

    allocator = BIT_ALLOCATION.get("uniform")()
    q = allocator.allocate(w, average_bits=6, q_min=2, q_max=10)   # int64 [N]
    q.sum() == 6 * N                                                # exact budget

The budget ``Σ_i Q_i = B̄ · N`` must be an integer number of bits and lie in
``[N·q_min, N·q_max]``; otherwise :func:`check_budget` raises a one-line ConfigError before any
work. Feature ``i`` then carries ``L·Q_i`` bits, so its bits change its symbol count and the
allocator's symbol budget (the link and ``optim`` take ``Q`` per feature).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np

from channels.errors import ConfigError, check_int, fail
from semcom.registry import Registry

BIT_ALLOCATION = Registry("bit-allocation")
"""The ``bit-allocation`` method family: name -> :class:`BitAllocator` subclass."""

MAX_BITS = 16
"""Largest quantiser bits per scalar the link carries."""


def check_budget(
    n_features: int, average_bits: Any, q_min: Any, q_max: Any
) -> tuple[int, int, int]:
    """Validate a budget; return ``(total_bits, q_min, q_max)`` with ``total = B̄ · N`` exact.

    Raises:
        ConfigError: ``q_min``/``q_max`` outside ``1..16`` or crossed, ``average_bits`` not a
            finite number, ``B̄·N`` not an integer, or outside ``[N·q_min, N·q_max]``.
    """
    q_min = check_int("q_min", q_min, 1, MAX_BITS)
    q_max = check_int("q_max", q_max, q_min, MAX_BITS)
    if isinstance(average_bits, bool) or not isinstance(average_bits, int | float | np.number):
        raise fail("average_bits", average_bits, f"a number in [{q_min}, {q_max}]")
    value = float(average_bits)
    if not math.isfinite(value):
        raise fail("average_bits", average_bits, f"a number in [{q_min}, {q_max}]")
    total = value * n_features
    if abs(total - round(total)) > 1e-9 * max(1.0, abs(total)):
        raise ConfigError(
            f"average_bits: {average_bits!r} is invalid; allowed: a multiple of 1/N = "
            f"1/{n_features} (the total B̄·N must be a whole number of bits)"
        )
    total = int(round(total))
    if not n_features * q_min <= total <= n_features * q_max:
        raise fail("average_bits", average_bits, f"a number in [{q_min}, {q_max}]")
    return total, q_min, q_max


def check_weights(weights: Any) -> np.ndarray:
    """Importance ``w[N]`` as float64: finite, >= 0, not all zero, ``N >= 1``."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise fail("weights", np.asarray(weights).tolist(), "finite values >= 0, not all zero")
    return w


class BitAllocator:
    """Base class of the ``bit-allocation`` family.

    Subclasses take options in ``__init__`` and implement :meth:`_allocate`; :meth:`allocate`
    validates the inputs and checks the result's contract (integers in ``[q_min, q_max]``
    summing exactly to the budget).
    """

    name = "base"

    def allocate(
        self, weights: Any, average_bits: float, q_min: int = 1, q_max: int = MAX_BITS
    ) -> np.ndarray:
        """Bits per scalar ``Q[N]`` (int64) for importance ``weights[N]``."""
        w = check_weights(weights)
        total, q_min, q_max = check_budget(w.size, average_bits, q_min, q_max)
        q = np.asarray(self._allocate(w / w.sum(), total, q_min, q_max), dtype=np.int64)
        if q.shape != w.shape or q.sum() != total or q.min() < q_min or q.max() > q_max:
            raise AssertionError(f"{self.name}: allocation {q.tolist()} breaks the contract")
        return q

    def _allocate(
        self, w: np.ndarray, total: int, q_min: int, q_max: int
    ) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        """Constructor options (scikit-learn style)."""
        names = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in names if k != "self"}
