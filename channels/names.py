"""Names of the supported modulations and their bits per symbol (the one list of them)."""

from __future__ import annotations

from channels.errors import check_name

BITS_PER_SYMBOL: dict[str, int] = {"bpsk": 1, "qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
"""Modulation name -> bits per symbol beta. BPSK is real; the others are square Gray QAM."""

MODULATION_NAMES: tuple[str, ...] = tuple(BITS_PER_SYMBOL)


def check_modulation(name: str, field: str = "modulation") -> str:
    """Return the canonical (lower-case) name, or raise ConfigError naming ``field``."""
    return check_name(field, name, MODULATION_NAMES)


def bits_per_symbol(name: str) -> int:
    """Bits per symbol of a modulation name (``'16qam'`` -> 4)."""
    return BITS_PER_SYMBOL[check_modulation(name)]
