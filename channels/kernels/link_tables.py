"""Tables the semantic-link kernels of both backends share (built once, on import).

Constellation points and square-QAM labels indexed by bits per symbol, straight from
:mod:`channels.modulation`; the CPU kernel (:mod:`channels.kernels.cpu_link`) reads them as
NumPy arrays and the CUDA one (:mod:`channels.kernels.cuda_link`) copies them to the device.
Neither backend imports the other: both import this file.

Examples:
    >>> float(LEVEL_I[1, 0]), float(LEVEL_I[1, 1])     # BPSK: label 0 -> +1, label 1 -> -1
    (1.0, -1.0)
    >>> int(POPCOUNT[0b1011])
    3
"""

from __future__ import annotations

import numpy as np

from channels.modulation import get_modulation, label_of_position
from channels.names import BITS_PER_SYMBOL

__all__ = [
    "LABEL_AT",
    "LEVEL_I",
    "LEVEL_Q",
    "MAX_M",
    "MAX_Q",
    "POPCOUNT",
    "SUPPORTED_BITS_PER_SYMBOL",
]

POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.int64)

SUPPORTED_BITS_PER_SYMBOL = (0, *sorted(BITS_PER_SYMBOL.values()))
"""Allowed entries of ``bits_per_symbol``: 0 (not sent) and those of the modulations."""

MAX_M = max(BITS_PER_SYMBOL.values())

MAX_Q = 16


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Constellation tables indexed by bits per symbol ``m`` (rows of unused ``m`` are zero).

    ``level_i[m, l], level_q[m, l]``: point of label ``l``; ``label_at[m, i, j]``: square-QAM
    label at in-phase position ``i`` and quadrature position ``j`` (positions from the most
    negative level), both straight from :mod:`channels.modulation`.
    """
    level_i = np.zeros((MAX_M + 1, 1 << MAX_M))
    level_q = np.zeros((MAX_M + 1, 1 << MAX_M))
    side_max = 1 << (MAX_M // 2)
    label_at = np.zeros((MAX_M + 1, side_max, side_max), dtype=np.int64)
    for name, m in BITS_PER_SYMBOL.items():
        points = get_modulation(name).points
        level_i[m, : points.size] = points.real
        level_q[m, : points.size] = points.imag
        if m > 1:
            side = 1 << (m // 2)
            label_at[m, :side, :side] = label_of_position(m)
    return level_i, level_q, label_at


LEVEL_I, LEVEL_Q, LABEL_AT = _tables()
