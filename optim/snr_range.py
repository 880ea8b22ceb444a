"""The numeric range every solver is checked on: power budget and per-subchannel SNR.

The solvers work in the problem's own units: powers ``p`` (at most ``P_tot``) and normalised
gains ``nu_k = g_k / sigma^2``, whose product is the SNR ``gamma = nu_k p``. Far outside any
physical link, their arithmetic overflows or underflows (``P_tot / nu_k`` beyond 1e308, an
SNR that rounds to 0 inside the BER model's Newton steps), so a problem states its range:

- ``P_tot`` is 0 or in ``[1e-50, 1e50]``;
- every subchannel's SNR at the whole budget, ``g_k P_tot / sigma^2``, is 0 or in
  ``[1e-100, 1e100]`` (-1000 to +1000 dB), the spread within one frame included.

The methods that ``optim.solve_batch`` runs in its own kernels (the hierarchical family,
the baselines and ``exact``), per frame and batched, were run at the corners of this range
(budgets 1e-50, 1 and 1e50, noise powers 1e-50, 1 and 1e50, SNRs at both ends, spread over
the whole range, and with dead subchannels) and gave the same finite result both ways
(``tests/optim/test_snr_range.py``). A link at -300 to +300 dB average SNR (the scenarios'
range) over fading subchannels sits well inside it.

Examples:
    >>> low, high = gain_bounds(40.0, 1.0)  # P_tot = 40, sigma^2 = 1
    >>> f"{low:g} {high:g}"
    '2.5e-102 2.5e+98'
    >>> try:
    ...     check_power_budget(1e60)
    ... except ValueError as error:
    ...     print(error)
    power_budget: 1e+60 is invalid; allowed: 0 or a number in [1e-50, 1e+50]
"""

from __future__ import annotations

import math

import numpy as np

from channels.errors import fail

POWER_MIN, POWER_MAX = 1e-50, 1e50
"""Range of a positive power budget ``P_tot``."""

SNR_MIN, SNR_MAX = 1e-100, 1e100
"""Range of a positive SNR at the whole budget, ``g_k P_tot / sigma^2``."""


def check_power_budget(power_budget: float) -> None:
    """ConfigError unless ``power_budget`` (a finite number >= 0, checked by the caller) is 0
    or in ``[POWER_MIN, POWER_MAX]``."""
    if power_budget != 0 and not POWER_MIN <= power_budget <= POWER_MAX:
        raise fail("power_budget", power_budget, f"0 or a number in [{POWER_MIN:g}, {POWER_MAX:g}]")


def gain_bounds(power_budget: float, noise_power: float) -> tuple[float, float]:
    """``(low, high)``: a positive gain is allowed when ``low <= g <= high``, i.e. its SNR
    at the whole budget ``g P_tot / sigma^2`` is in ``[SNR_MIN, SNR_MAX]`` (widened by 1e-9
    relative, so that a gain computed from an end's SNR is allowed whatever its rounding);
    ``(0, inf)`` when ``P_tot = 0`` (no power, no SNR)."""
    if power_budget == 0:
        return 0.0, math.inf
    scale = noise_power / power_budget
    return SNR_MIN * scale * (1 - 1e-9), SNR_MAX * scale * (1 + 1e-9)


def check_gains_in_range(gains: np.ndarray, power_budget: float, noise_power: float) -> None:
    """ConfigError naming the first positive entry of ``gains`` (any shape, finite, >= 0)
    outside :func:`gain_bounds`: ``gains[k]`` for a frame [K], ``gains[b, k]`` for frames
    [B, K]."""
    low, high = gain_bounds(power_budget, noise_power)
    arr = np.asarray(gains, dtype=np.float64)
    bad = (arr > 0) & ((arr < low) | (arr > high))
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise fail(f"gains[{', '.join(map(str, index))}]", float(arr[index]),
                   gain_rule(power_budget, noise_power))  # fmt: skip


def gain_rule(power_budget: float, noise_power: float) -> str:
    """The allowed-values text of a gain: the SNR rule and the gains it allows here."""
    low, high = gain_bounds(power_budget, noise_power)
    return (
        f"0 or a gain whose SNR at the whole budget, g * power_budget / noise_power, is in "
        f"[{SNR_MIN:g}, {SNR_MAX:g}] (here g in [{low:.3g}, {high:.3g}])"
    )


__all__ = [
    "POWER_MAX", "POWER_MIN", "SNR_MAX", "SNR_MIN", "check_gains_in_range",
    "check_power_budget", "gain_bounds", "gain_rule",
]  # fmt: skip
