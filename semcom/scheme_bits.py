"""A scheme's quantiser bits per feature: its importance weights through a bit allocator.

A custom scheme may name ``bits = {"method", "average_bits", "q_min", "q_max", "options"}``
(docs/scenarios.md). Its importance weights ``w[N]`` (those its allocation sees: the scheme's
estimator, the scenario's, or ``1/N`` for ``weights: uniform``) then go through the registered
bit allocator (:data:`semcom.bitalloc.BIT_ALLOCATION`), which returns integer bits per scalar
``Q[N]`` in ``q_min..q_max`` with ``Σ_i Q_i = average_bits · N`` exactly. The scheme's
:class:`~semcom.link.SemanticLink` takes ``Q[N]`` as its ``bits_per_scalar``, so the
quantiser, the allocation problem's symbol budget and the kernels all see per-feature bits.
Without ``bits`` the scheme keeps the condition's single ``bits_per_scalar``.

The allocation is a deterministic function of the weights and the spec, so every worker
computes the same ``Q`` for a scheme, and ``bits.csv`` records it.

Examples:
    >>> spec = {"method": "greedy-distortion", "average_bits": 4, "q_min": 1, "q_max": 8,
    ...         "options": {}}
    >>> scheme_bits(spec, [0.7, 0.2, 0.1]).tolist()
    [5, 4, 3]
    >>> bit_allocator_params({**spec, "method": "edgeqat"})
    {'low_bits': None, 'high_bits': None}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from semcom.bitalloc import BIT_ALLOCATION, BitAllocator


def make_bit_allocator(bits: dict[str, Any]) -> BitAllocator:
    """The allocator of a ``bits`` spec, built with its options.

    Raises:
        ConfigError: an unknown method or a bad option (the allocator's one-line message).
    """
    return BIT_ALLOCATION.get(bits["method"])(**bits.get("options", {}))


def bit_allocator_params(bits: dict[str, Any]) -> dict[str, Any]:
    """The allocator's options with every default filled in (the resolved scenario's)."""
    return make_bit_allocator(bits).get_params()


def scheme_bits(bits: dict[str, Any], weights: Any) -> np.ndarray:
    """``Q[N]`` (int64) of importance ``weights[N]`` under the ``bits`` spec.

    Args:
        bits: ``{"method", "average_bits", "q_min", "q_max", "options"}``.
        weights: importance ``w[N]``, finite, >= 0, not all zero (normalised here).

    Returns:
        Integer bits per scalar in ``q_min..q_max``, summing to ``average_bits · N``.

    Raises:
        ConfigError: the budget cannot be met (:func:`semcom.bitalloc.check_budget`).
    """
    allocator = make_bit_allocator(bits)
    return allocator.allocate(
        np.asarray(weights, dtype=np.float64),
        bits["average_bits"],
        q_min=bits.get("q_min", 1),
        q_max=bits.get("q_max", 16),
    )


__all__ = ["bit_allocator_params", "make_bit_allocator", "scheme_bits"]
