"""Instantaneous capacity of a frame on the link's subchannels (the ``sep-capacity`` bound).

A frame's ``S`` symbols sit on the subchannels as in :mod:`semcom.separate.chain` (symbol
``j`` on subchannel ``j mod K``: ``n_k`` symbols on subchannel ``k``). With per-symbol power
``p_k`` on subchannel ``k`` (``Σ_k p_k = P_tot``, noise ``σ² = 1``) the frame can carry at most

    C = Σ_k n_k · log2(1 + g_k p_k)   bits,   g_k = |h_k|².

``power="equal"``: ``p_k = P_tot / K``. ``power="waterfilling"`` (the default of
``sep-capacity``): ``p_k = max(0, μ - 1/g_k)`` with ``μ`` such that ``Σ_k p_k = P_tot``, the
capacity-achieving allocation for equal ``n_k`` (the bound of any scheme that knows the gains).
"""

from __future__ import annotations

import numpy as np

from channels.errors import fail
from semcom.separate.chain import symbol_subchannels

POWER_MODES = ("waterfilling", "equal")


def waterfilling(gains: np.ndarray, total_power: float) -> np.ndarray:
    """Water-filling powers ``p [K]`` for gains ``g [K]`` and noise 1, ``Σ p = total_power``.

    Examples:
        >>> waterfilling(np.array([1.0, 0.5]), 1.0).tolist()
        [1.0, 0.0]
        >>> waterfilling(np.array([1.0, 1.0]), 2.0).tolist()
        [1.0, 1.0]
    """
    g = np.asarray(gains, dtype=np.float64)
    p = np.zeros_like(g)
    order = np.argsort(-g)
    inv = 1.0 / np.maximum(g[order], 1e-300)
    for active in range(len(g), 0, -1):  # the largest set whose water level covers all
        mu = (total_power + inv[:active].sum()) / active
        if mu - inv[active - 1] >= 0:
            p[order[:active]] = mu - inv[:active]
            break
    return p


def capacity_bits(
    gains: np.ndarray, total_power: float, n_symbols: int, power: str = "waterfilling"
) -> float:
    """``C`` of one frame (module docstring), in bits.

    Examples:
        >>> round(capacity_bits(np.ones(2), 2.0, 10), 6)  # 10 symbols at SNR 1: 10 bits
        10.0
    """
    if power not in POWER_MODES:
        raise fail("power", power, " or ".join(POWER_MODES))
    g = np.asarray(gains, dtype=np.float64)
    k = g.size
    if power == "equal":
        p = np.full(k, total_power / k)
    else:
        p = waterfilling(g, total_power)
    counts = np.bincount(symbol_subchannels(n_symbols, k), minlength=k)
    return float(np.sum(counts * np.log2(1.0 + g * p)))


__all__ = ["POWER_MODES", "capacity_bits", "waterfilling"]
