"""Tabulated post-decoding BER of the coded entries, its interpolation and its exponential fit.

The table holds, per coded entry (``"16qam-r1/2"``, :mod:`channels.coded`) and per ``Es/N0``
grid point (dB), the measured bit and block errors of :func:`channels.ldpc.measure_point`.
The default table ships with the package (``channels/data/coded_ber.csv``, written by
``tools/coded_ber_table.py``); any other block length, grid or budget is measured on first use
and cached as CSV under the cache folder (``$SEMCOM_CACHE`` or ``~/.cache/semcom``), keyed by
its parameters. Nothing is downloaded.

Two views of a curve:

- :func:`coded_ber`: the table interpolated linearly in (dB, ``log10 Pb``), made monotone
  (running minimum along the grid), held at the first value below the grid and at the last
  measured value above it; a point with no error counts as ``Pb = 1e-12``;
- :func:`exponential_fit`: ``(A, B)`` of ``Pb ~ A exp(-B gamma)``, the least-squares line of
  ``ln Pb`` against linear ``gamma`` over the waterfall points (``1e-6 <= Pb <= 0.1``). It is
  convex and decreasing, the form the allocation solvers handle in closed form
  (``optim``'s ``bound`` BER model).

Examples:
    >>> t = default_table()
    >>> bool(coded_ber("qpsk-r1/2", 10.0, t) < 1e-6 < coded_ber("qpsk-r1/2", -2.0, t))
    True
    >>> a, b = exponential_fit("qpsk-r1/2", t)
    >>> bool(a > 0 and b > 0)
    True
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from channels.coded import CODE_RATES, CODED_MODULATIONS, check_entry, coded_entries, parse_entry
from channels.errors import ConfigError, check_int, check_real, fail
from channels.names import BITS_PER_SYMBOL

DEFAULT_K = 512
"""Information bits per block of the default table (one 64-scalar, 8-bit feature)."""

PB_FLOOR = 1e-12
"""BER given to a point without errors when interpolating in ``log10 Pb``."""

FIT_RANGE = (1e-6, 0.1)
"""``Pb`` range of the points the exponential fit uses."""

COLUMNS = ("entry", "k", "esno_db", "bit_errors", "bits", "block_errors", "blocks")

_DATA = Path(__file__).with_name("data") / "coded_ber.csv"

__all__ = [
    "DEFAULT_K",
    "CodedBerTable",
    "cache_dir",
    "coded_ber",
    "default_table",
    "exponential_fit",
    "measure_table",
    "start_db",
    "table_for",
]


@dataclass(eq=False)
class CodedBerTable:
    """Measured points, grouped by entry.

    Attributes:
        k: information bits per block.
        points: entry name -> list of ``(esno_db, bit_errors, bits, block_errors, blocks)``
            in increasing ``esno_db``.
    """

    k: int
    points: dict[str, list[tuple[float, int, int, int, int]]] = field(default_factory=dict)

    @property
    def entries(self) -> tuple[str, ...]:
        """The entries of the table."""
        return tuple(self.points)

    def curve(self, entry: str) -> tuple[np.ndarray, np.ndarray]:
        """``(esno_db [G], ber [G])`` of one entry (ConfigError if absent)."""
        key = check_entry(entry)
        if key not in self.points:
            raise fail("modulation", entry, f"an entry of the table ({', '.join(self.entries)})")
        rows = self.points[key]
        db = np.array([r[0] for r in rows], dtype=np.float64)
        ber = np.array([r[1] / r[2] if r[2] else 0.0 for r in rows], dtype=np.float64)
        return db, ber

    def to_csv(self, path: str | Path) -> None:
        """Write the table as CSV (:data:`COLUMNS`)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as fh:
            out = csv.writer(fh)
            out.writerow(COLUMNS)
            for entry, rows in self.points.items():
                for db, be, b, ke, kb in rows:
                    out.writerow([entry, self.k, f"{db:g}", be, b, ke, kb])
        tmp.replace(path)

    @classmethod
    def from_csv(cls, path: str | Path) -> CodedBerTable:
        """Read a table written by :meth:`to_csv`."""
        table: CodedBerTable | None = None
        with Path(path).open(newline="") as fh:
            for row in csv.DictReader(fh):
                if table is None:
                    table = cls(int(row["k"]))
                point = (
                    float(row["esno_db"]),
                    int(row["bit_errors"]),
                    int(row["bits"]),
                    int(row["block_errors"]),
                    int(row["blocks"]),
                )
                table.points.setdefault(row["entry"], []).append(point)
        if table is None:
            raise ConfigError(f"coded_ber_table: {str(path)!r} holds no points")
        for rows in table.points.values():
            rows.sort()
        return table


@lru_cache(maxsize=1)
def default_table() -> CodedBerTable:
    """The table shipped with the package (block of :data:`DEFAULT_K` bits)."""
    return CodedBerTable.from_csv(_DATA)


def cache_dir() -> Path:
    """The cache folder: ``$SEMCOM_CACHE`` if set, else ``~/.cache/semcom``."""
    env = os.environ.get("SEMCOM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "semcom"


def start_db(entry: str) -> float:
    """First grid point of an entry: 0.5 dB below the Gaussian-input capacity limit of its
    rate (``gamma = 2^(beta r) - 1``; ``(2^(2r) - 1)/2`` for real BPSK), on a 0.5 dB grid."""
    mod, rate = parse_entry(entry)
    beta = BITS_PER_SYMBOL[mod]
    if beta == 1:
        limit = (2.0 ** (2.0 * float(rate)) - 1.0) / 2.0
    else:
        limit = 2.0 ** (beta * float(rate)) - 1.0
    return float(np.floor(2.0 * (10.0 * np.log10(limit) - 0.5)) / 2.0)


def measure_table(
    entries: Sequence[str],
    k: int = DEFAULT_K,
    *,
    step_db: float = 0.5,
    max_points: int = 16,
    max_blocks: int = 200,
    min_bit_errors: int = 200,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> CodedBerTable:
    """Measure the curves of ``entries`` with Sionna (:func:`channels.ldpc.measure_point`).

    Each curve starts at :func:`start_db` and steps up by ``step_db`` until a point has no
    bit error (kept, as the curve's last point) or ``max_points`` points.

    Args:
        entries: coded entry names.
        k: information bits per block.
        step_db, max_points: the grid.
        max_blocks, min_bit_errors: the stop rule of each point.
        seed: base seed.
        progress: called with one line per measured point.

    Returns:
        The :class:`CodedBerTable`.
    """
    from channels.ldpc import MAX_K, measure_point

    k = check_int("k", k, 16, MAX_K)
    step_db = check_real("step_db", step_db, 0, open_low=True)
    table = CodedBerTable(k)
    for entry in entries:
        key = check_entry(entry)
        if not parse_entry(key)[1] < 1:
            raise fail("entries", entry, "coded entries '<modulation>-r<rate>'")
        rows = []
        for j in range(max_points):
            db = start_db(key) + j * step_db
            c = measure_point(
                key, db, k, max_blocks=max_blocks, min_bit_errors=min_bit_errors, seed=seed
            )
            rows.append((db, c.bit_errors, c.bits, c.block_errors, c.blocks))
            if progress is not None:
                progress(f"{key} {db:5.1f} dB  BER {c.ber:.3g}  ({c.bits} bits)")
            if c.bit_errors == 0:
                break
        table.points[key] = rows
    return table


def table_for(
    k: int = DEFAULT_K,
    entries: Sequence[str] | None = None,
    *,
    max_blocks: int = 40,
    min_bit_errors: int = 100,
    seed: int = 0,
    folder: str | Path | None = None,
    progress: Callable[[str], None] | None = print,
) -> CodedBerTable:
    """The table of block length ``k``: the shipped one for :data:`DEFAULT_K` (when it holds
    every entry), else read from the cache or measured now (small budget) and cached."""
    entries = coded_entries(CODED_MODULATIONS, CODE_RATES) if entries is None else entries
    entries = tuple(check_entry(e, "entries") for e in entries)
    k = check_int("k", k, 16, 8448)
    shipped = default_table()
    if k == shipped.k and set(entries) <= set(shipped.entries):
        return shipped
    text = f"{k}|{','.join(entries)}|{max_blocks}|{min_bit_errors}|{seed}"
    name = f"coded_ber_{hashlib.sha256(text.encode()).hexdigest()[:16]}.csv"
    path = Path(folder) if folder is not None else cache_dir()
    path = path / name
    if path.exists():
        return CodedBerTable.from_csv(path)
    table = measure_table(
        entries, k, max_blocks=max_blocks, min_bit_errors=min_bit_errors, seed=seed,
        progress=progress,
    )  # fmt: skip
    table.to_csv(path)
    return table


def _monotone_log(entry: str, table: CodedBerTable) -> tuple[np.ndarray, np.ndarray]:
    db, ber = table.curve(entry)
    logp = np.log10(np.maximum(ber, PB_FLOOR))
    return db, np.minimum.accumulate(logp)


def coded_ber(entry: str, esno_db: float | np.ndarray, table: CodedBerTable | None = None):
    """Interpolated post-decoding BER of ``entry`` at ``Es/N0`` in dB (float or array).

    Linear in (dB, ``log10 Pb``) between grid points of the monotone curve; held constant
    outside the grid. Non-increasing in ``esno_db``.
    """
    table = default_table() if table is None else table
    db, logp = _monotone_log(entry, table)
    out = 10.0 ** np.interp(np.asarray(esno_db, dtype=np.float64), db, logp)
    return float(out) if np.ndim(out) == 0 else out


def exponential_fit(entry: str, table: CodedBerTable | None = None) -> tuple[float, float]:
    """``(A, B)`` of ``Pb ~ A exp(-B gamma)`` fitted to ``ln Pb`` over the waterfall points.

    Uses the points with ``FIT_RANGE[0] <= Pb <= FIT_RANGE[1]``; with fewer than two, the
    last point above ``FIT_RANGE[1]`` and the first below it are used.
    """
    table = default_table() if table is None else table
    return _fit(check_entry(entry), table)  # tables hash by identity (eq=False)


@lru_cache(maxsize=256)
def _fit(entry: str, table: CodedBerTable) -> tuple[float, float]:
    db, ber = table.curve(entry)
    gam = 10.0 ** (db / 10.0)
    use = (ber >= FIT_RANGE[0]) & (ber <= FIT_RANGE[1])
    if use.sum() < 2:
        high = np.flatnonzero(ber > FIT_RANGE[1])
        low = np.flatnonzero(ber < FIT_RANGE[1])
        if high.size == 0 or low.size == 0:
            raise ConfigError(f"coded_ber_table: curve of {entry!r} has no waterfall to fit")
        use = np.zeros_like(use)
        use[high[-1]] = use[low[0]] = True
    x, y = gam[use], np.log(np.maximum(ber[use], PB_FLOOR))
    slope, intercept = np.polyfit(x, y, 1)
    return float(np.exp(intercept)), float(-slope)
