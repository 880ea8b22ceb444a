"""Crash-safe, resumable result store of a sweep: append-only CSV files in one directory.

Layout (docs of the results directory: ``results.csv`` and side tables such as
``per_image.csv``)::

    DIR/store.json       {"format": 1, "fingerprint": <config hash>, "tables": [side tables]}
    DIR/results.csv      one row per finished point (the commit log of the run)
    DIR/<table>.csv      rows of side tables, each carrying the ``key`` of its point
    DIR/results.parquet  the results table, written by :meth:`ResultStore.finalize`

Commit protocol of one point (:meth:`ResultStore.add`): the side-table rows are appended
first, the results row last, each write followed by ``flush`` + ``os.fsync``. A point is done
iff its results row exists. After a crash (power loss, ``SIGKILL``) at any instant the files
hold complete rows plus at most one partial trailing line, and maybe side-table rows of a point
whose results row never got written; opening the store cuts the partial line and drops those
orphan rows, so the directory is again exactly "the finished points".

Values are written so that reading back is exact: floats with ``repr`` (shortest round-trip
text, ``nan``, ``inf``), ints with ``str``, ``None`` as an empty field (NaN in pandas). Read
the files with :meth:`ResultStore.frame` (pandas, with its round-trip float parser).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import operator
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.errors import ConfigError, fail
from semcom.sweep.grid import format_value, plain_scalar

if TYPE_CHECKING:  # pandas is imported lazily: worker processes import this module too
    import pandas

RESULTS = "results"
STORE_FILE = "store.json"
FORMAT = 1
_TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")


@dataclass
class PointResult:
    """What a task returns for one point.

    ``row`` is the point's results row (must contain ``point`` and ``key``); ``tables`` maps a
    side-table name (e.g. ``per_image``) to its rows, each of which carries the same ``key``.
    """

    row: dict[str, Any]
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# atomic writes


def _fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (best effort, POSIX only)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: temp file in the same folder, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def write_text_atomic(path: Path | str, text: str) -> None:
    """Replace ``path`` by ``text`` (UTF-8) atomically; readers see the old or the new file."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path | str, obj: Any) -> None:
    """Write ``obj`` as indented JSON (keys in insertion order) atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


# ---------------------------------------------------------------------------------------------
# CSV text


def format_cell(value: Any, column: str) -> str:
    """The CSV text of one value; exact on reading back (see the module docstring)."""
    value = plain_scalar(value)
    if value is None:
        return ""
    if isinstance(value, str) and ("\n" in value or "\r" in value):
        raise ValueError(f"column {column!r}: text with a line break cannot be stored")
    if isinstance(value, bool | int | float | str):
        return format_value(value)  # the same canonical text as a point key's
    raise TypeError(
        f"column {column!r}: value {value!r} of type {type(value).__name__} cannot be stored; "
        "allowed: int, float, str, bool, None"
    )


def _exact_floats(pandas_version: str) -> dict[str, str]:
    """``read_csv`` options for bit-exact floats: pandas < 3 needs the round-trip parser (its
    default may be 1 ulp off); pandas >= 3 is exact by default and deprecates the option."""
    return {"float_precision": "round_trip"} if int(pandas_version.split(".")[0]) < 3 else {}


def _csv_line(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def _parse_line(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _repair(path: Path) -> tuple[list[str] | None, list[str]]:
    """Cut a partial trailing line off the CSV at ``path``; return its header and data lines.

    A line is partial when it has no final newline or a field count other than the header's.
    The file is rewritten (atomically) only when something was cut.
    """
    if not path.exists():
        return None, []
    text = path.read_bytes().decode("utf-8", errors="replace")
    complete = text[: text.rfind("\n") + 1]
    lines = complete.splitlines(keepends=True)
    header = _parse_line(lines[0]) if lines else None
    if len(lines) > 1 and len(_parse_line(lines[-1])) != len(header or []):
        lines.pop()
    repaired = "".join(lines)
    if repaired != text:
        write_text_atomic(path, repaired)
    return header, lines[1:]


# ---------------------------------------------------------------------------------------------
# the store


class ResultStore:
    """Append-only, crash-safe store of the points finished by a sweep (see module docstring).

    Parameters
    ----------
    directory : path
        The output directory (created with its parents).
    fingerprint : str
        Identifies what is computed (the scenario's config hash); kept in ``store.json``.
    resume : bool
        Continue a run whose directory already holds results of the same fingerprint.

    Raises
    ------
    ConfigError
        ``directory`` already holds results and ``resume`` is False, or ``resume`` is True and
        the directory belongs to another fingerprint, or it cannot be created.
    """

    def __init__(self, directory: Path | str, fingerprint: str, resume: bool = False) -> None:
        self.directory = Path(directory)
        self.fingerprint = str(fingerprint)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise fail("output.dir", str(directory), f"a writable directory ({reason})") from None
        meta = self._read_meta()
        tables = [t for t in meta.get("tables", []) if self._valid_table(t)]

        header, lines = _repair(self.path(RESULTS))
        if lines and not resume:
            raise ConfigError(
                f"output.dir: '{directory}' already holds results of a run; "
                "allowed: --resume to complete them, or another --out"
            )
        old = meta.get("fingerprint")
        if resume and (meta or lines) and old != self.fingerprint:
            old12 = str(old)[:12] if old is not None else "unknown"
            raise ConfigError(
                f"--resume: '{directory}' holds results of a different scenario "
                f"(config hash {old12} != {self.fingerprint[:12]}); "
                "allowed: the same scenario, or another --out"
            )

        self._headers: dict[str, list[str]] = {}
        self._keys: dict[str, int] = {}  # key -> point index, of every results row
        self._tables: list[str] = []
        if not lines:
            # Nothing finished: start afresh (leftovers of a run that finished no point).
            for name in [RESULTS, *tables]:
                with contextlib.suppress(FileNotFoundError):
                    self.path(name).unlink()
        else:
            self._headers[RESULTS] = header or []
            self._keys = self._read_keys(header or [], lines)
            self._tables = tables
            for name in tables:
                self._drop_orphans(name)
        with contextlib.suppress(FileNotFoundError):
            self.path(RESULTS, "parquet").unlink()  # stale until finalize() rewrites it
        self._write_meta()

    # -- paths and metadata -------------------------------------------------------------------

    def path(self, table: str = RESULTS, suffix: str = "csv") -> Path:
        """``DIR/<table>.<suffix>``."""
        return self.directory / f"{table}.{suffix}"

    @staticmethod
    def _valid_table(name: Any) -> bool:
        return isinstance(name, str) and bool(_TABLE_NAME.fullmatch(name)) and name != RESULTS

    def _read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.directory / STORE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _write_meta(self) -> None:
        meta = {"format": FORMAT, "fingerprint": self.fingerprint, "tables": self._tables}
        write_json_atomic(self.directory / STORE_FILE, meta)

    @staticmethod
    def _read_keys(header: list[str], lines: list[str]) -> dict[str, int]:
        if "key" not in header or "point" not in header:
            raise ValueError(f"results.csv has no 'point' and 'key' columns: {header}")
        k, p = header.index("key"), header.index("point")
        keys = {}
        for line in lines:
            cells = _parse_line(line)
            keys[cells[k]] = int(cells[p])
        return keys

    def _drop_orphans(self, table: str) -> None:
        """Repair the side table and drop its rows whose key has no results row."""
        header, lines = _repair(self.path(table))
        if header is None:
            return
        self._headers[table] = header
        if "key" not in header:
            raise ValueError(f"{table}.csv has no 'key' column: {header}")
        k = header.index("key")
        kept = [line for line in lines if _parse_line(line)[k] in self._keys]
        if len(kept) != len(lines):
            write_text_atomic(self.path(table), _csv_line(header) + "".join(kept))

    # -- reading --------------------------------------------------------------------------------

    def completed(self) -> set[str]:
        """Keys of the finished points (those with a results row)."""
        return set(self._keys)

    def frame(self, table: str = RESULTS) -> pandas.DataFrame:
        """The table as a DataFrame: results sorted by ``point``; a side table in point order.

        Floats read back exactly; empty fields and ``nan`` are NaN; int columns without
        missing values are int64. A table with no file yet is an empty DataFrame.
        """
        import numpy as np
        import pandas as pd

        path = self.path(table)
        if not path.exists() or path.stat().st_size == 0:
            return pd.DataFrame()
        df = pd.read_csv(path, **_exact_floats(pd.__version__))
        if table == RESULTS:
            return df.sort_values("point", kind="stable").reset_index(drop=True)
        if "key" in df.columns and len(df):
            order = df["key"].map(self._keys).to_numpy(dtype=float, na_value=math.inf)
            df = df.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)
        return df

    # -- writing --------------------------------------------------------------------------------

    def _format_rows(
        self, table: str, rows: list[dict[str, Any]]
    ) -> tuple[list[str], list[str], bool]:
        """Header of ``table`` (existing, or new from the first row), CSV lines of ``rows``,
        and whether the header is new. Every row must have exactly the header's columns."""
        header = self._headers.get(table)
        new = header is None
        if header is None:
            header = [str(c) for c in rows[0]]
        lines = []
        for row in rows:
            if len(row) != len(header) or set(row) != set(header):
                missing, extra = set(header) - set(row), set(row) - set(header)
                raise ValueError(
                    f"{table}: row columns differ from the table's "
                    f"(missing {sorted(missing)}, unexpected {sorted(map(str, extra))})"
                )
            lines.append(_csv_line([format_cell(row[c], c) for c in header]))
        return header, lines, new

    def _append(self, table: str, header: list[str], lines: list[str], new: bool) -> None:
        path = self.path(table)
        text = (_csv_line(header) if new else "") + "".join(lines)
        with open(path, "a", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if new:
            self._headers[table] = header
            _fsync_directory(self.directory)

    def add(self, result: PointResult) -> None:
        """Commit one finished point: side-table rows first, then its results row (fsynced).

        Raises ``ValueError`` for a row without ``point``/``key``, a key already stored, a side
        row with another key, columns that differ from the table's header, or an unknown table
        name; ``TypeError`` for a value that is not a number, string, bool or None. Nothing is
        written when it raises.
        """
        row = result.row
        if "point" not in row or "key" not in row:
            raise ValueError(f"results row needs 'point' and 'key' columns; got {list(row)}")
        key = str(row["key"])
        if not key:
            raise ValueError("results row 'key' must be non-empty")
        if key in self._keys:
            raise ValueError(f"point {key!r} is already stored")
        try:
            if isinstance(row["point"], bool):
                raise TypeError
            point = operator.index(row["point"])
        except TypeError:
            raise ValueError(f"results row 'point' must be an int; got {row['point']!r}") from None

        # Validate and format everything before the first write.
        pending = []
        for table, rows in result.tables.items():
            if not self._valid_table(table):
                raise ValueError(f"side table name {table!r} is invalid; allowed: [A-Za-z0-9_-]+")
            if not rows:
                continue
            for side in rows:
                if str(side.get("key")) != key:
                    raise ValueError(f"{table}: row key {side.get('key')!r} != point key {key!r}")
            pending.append((table, *self._format_rows(table, rows)))
        header, results_line, new = self._format_rows(RESULTS, [row])

        new_tables = [t for t, *_ in pending if t not in self._tables]
        if new_tables:  # register before the file exists, so a crash cannot hide an orphan
            self._tables.extend(new_tables)
            self._write_meta()
        for table, table_header, lines, table_new in pending:
            self._append(table, table_header, lines, table_new)
        self._append(RESULTS, header, results_line, new)
        self._keys[key] = point

    def finalize(self, parquet: bool = True) -> None:
        """Rewrite the CSVs sorted by point (atomically) and write ``results.parquet``.

        Results rows are sorted by ``point``; side-table rows by their point (stable, so an
        image order within a point is kept). The text of every row is kept byte for byte.
        With ``parquet`` the results table is also written to ``results.parquet`` (pyarrow),
        equal to :meth:`frame`; otherwise a stale ``results.parquet`` is removed.
        """
        for table in [RESULTS, *self._tables]:
            header, lines = _repair(self.path(table))
            if header is None:
                continue
            column = "point" if table == RESULTS else "key"
            index = header.index(column)

            def order(line: str, index: int = index, table: str = table) -> int:
                cell = _parse_line(line)[index]
                return int(cell) if table == RESULTS else self._keys.get(cell, math.inf)

            lines.sort(key=order)
            write_text_atomic(self.path(table), _csv_line(header) + "".join(lines))
        parquet_path = self.path(RESULTS, "parquet")
        if parquet and self._headers.get(RESULTS):
            buffer = io.BytesIO()
            self.frame(RESULTS).to_parquet(buffer, engine="pyarrow", index=False)
            write_bytes_atomic(parquet_path, buffer.getvalue())
        else:
            with contextlib.suppress(FileNotFoundError):
                parquet_path.unlink()
