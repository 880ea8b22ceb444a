"""Limits of the link's inputs shared by scenario files, ``SemanticLink`` and the commands.

Each limit is far beyond any meaningful value and keeps every derived quantity finite: at
``|snr_db| <= 300`` the linear SNR ``10^(snr_db/10)`` lies in ``[1e-30, 1e30]``, so power
budgets ``10^(snr_db/10) · K`` (``K <= MAX_SUBCHANNELS``) and their squares stay far from the
float64 range (``10^308``), where ``10 ** (1e308 / 10)`` raises ``OverflowError``.
"""

from __future__ import annotations

SNR_DB_LIMIT = 300.0
"""``snr_db`` is a finite number in ``[-SNR_DB_LIMIT, SNR_DB_LIMIT]`` (dB)."""

MAX_SUBCHANNELS = 4096
"""Most subchannels ``K`` of a link (as many as the most features ``N`` of a model)."""

MAX_FEATURES = 4096
"""Most semantic features ``N`` of a model."""

MAX_RICIAN_K = 1_000_000.0
"""Largest linear Rician K-factor (60 dB: the channel is AWGN to float precision)."""


def snr_db_rule() -> str:
    """The allowed text of an ``snr_db`` value."""
    return f"a finite number in [{-SNR_DB_LIMIT:g}, {SNR_DB_LIMIT:g}] (dB)"


__all__ = ["MAX_FEATURES", "MAX_RICIAN_K", "MAX_SUBCHANNELS", "SNR_DB_LIMIT", "snr_db_rule"]
