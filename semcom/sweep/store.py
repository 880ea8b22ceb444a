"""Crash-safe, resumable result store of a sweep: append-only CSV files in one directory.

Layout (docs of the results directory: ``results.csv`` and side tables such as
``per_image.csv``)::

    DIR/store.json       {"format": 1, "fingerprint": <config hash>, "tables": [side tables],
                          "columns": {table: {column: kind}}, "codes": [...], "data": <digest>}
    DIR/results.csv      one row per finished point (the commit log of the run)
    DIR/<table>.csv      rows of side tables, each carrying the ``key`` of its point
    DIR/results.parquet  the results table, written by :meth:`ResultStore.finalize`

Commit protocol of one point (:meth:`ResultStore.add`): the side-table rows are appended
first, the results row last, each write followed by ``flush`` + ``os.fsync``. A point is done
iff its results row exists. After a crash (power loss, ``SIGKILL``) at any instant the files
hold complete rows plus at most one partial trailing line, and maybe side-table rows of a point
whose results row never got written; opening the store cuts the partial line and drops those
orphan rows, so the directory is again exactly "the finished points".

**Damage.** Opening with ``resume`` checks every line (:mod:`semcom.sweep.table_scan`: strict
UTF-8, no NUL, canonical CSV, the header's cell count, each cell fitting its column's kind). A
point is *recomputed* (its results row and all its side rows are dropped) when its results
row is damaged or repeated, when one of its side rows is damaged, or when a side table holds
another number of its rows than the results column named by ``row_counts`` says (e.g.
``per_image`` rows = ``n_images``). So the results and side rows stay consistent both ways. A
damaged header is replaced by the columns recorded in ``store.json``; without that record the
store refuses, naming the files to delete. :attr:`ResultStore.notes` says what was repaired.

**Provenance of the rows.** With ``code`` (:func:`semcom.identity.code_identity`) and ``data``
(a digest of the data the rows come from), ``store.json`` records every code version that
wrote rows (``codes``) and the data digest. ``resume`` refuses rows of other data, and rows of
another or an unrecorded code version unless ``reuse_stale``.

Values are written so that reading back is exact: floats with ``repr`` (shortest round-trip
text, ``nan``, ``inf``), ints with ``str``, ``None`` as an empty field (NaN in pandas). Read
the files with :meth:`ResultStore.frame` (pandas, with its round-trip float parser). Files are
created with the permissions the process's umask allows (``0666 & ~umask``).
"""

from __future__ import annotations

import contextlib
import json
import math
import operator
import os
import re
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from channels.errors import ConfigError, fail
from semcom.sweep.grid import format_value, plain_scalar
from semcom.sweep.table_scan import TableScan, csv_line, merge_kind, scan_table, value_kind

if TYPE_CHECKING:  # pandas is imported lazily: worker processes import this module too
    import pandas

RESULTS = "results"
STORE_FILE = "store.json"
FORMAT = 1
_TABLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")
_INTEGER = re.compile(r"-?\d+")


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


def current_umask() -> int:
    """The process's umask, read from ``/proc/self/status`` where it exists (no change of
    state), else by setting and restoring it."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes_atomic(path: Path | str, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically: temp file in the same folder, fsync, rename.

    The file keeps the permissions of the one it replaces; a new file gets ``0666 & ~umask``
    like one made by ``open`` (the temporary file would otherwise leave it ``0600``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mode = 0o666 & ~current_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
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
    if isinstance(value, str) and ("\n" in value or "\r" in value or "\x00" in value):
        raise ValueError(f"column {column!r}: text with a line break or NUL cannot be stored")
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


def _valid_columns(value: Any) -> dict[str, dict[str, str | None]]:
    """The ``columns`` record of ``store.json`` with anything malformed left out."""
    if not isinstance(value, dict):
        return {}
    kinds = ("number", "bool", "str", None)
    return {
        str(table): dict(cols)
        for table, cols in value.items()
        if isinstance(cols, dict) and cols and all(k in kinds for k in cols.values())
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def damage_report(directory: Path | str, row_counts: dict[str, str] | None = None) -> str | None:
    """What is damaged in the store at ``directory``, read only: None when nothing is.

    The checks of :meth:`ResultStore.__init__` with ``resume`` (module docstring), except that
    a partial last line (a write in progress, or cut by a crash) is not damage here. For
    readers of a results folder (``semcom plot``) that must not use damaged rows.
    """
    directory = Path(directory)
    try:
        meta = json.loads((directory / STORE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    meta = meta if isinstance(meta, dict) else {}
    columns = _valid_columns(meta.get("columns"))
    tables = [t for t in meta.get("tables", []) if ResultStore._valid_table(t)]
    tables += [t for t in row_counts or {} if t not in tables]
    path = directory / f"{RESULTS}.csv"
    scans = {RESULTS: scan_table(path, ("point", "key"), columns.get(RESULTS), ("point",))}
    scans.update({t: scan_table(directory / f"{t}.csv", ("key",), columns.get(t)) for t in tables})
    problems = []
    for name, scan in scans.items():
        if scan is None:
            continue
        if scan.header_problem or scan.header_replaced:
            problems.append(f"{name}.csv has a damaged header")
        elif scan.damaged - scan.partial:
            problems.append(
                f"{name}.csv has {_plural(scan.damaged - scan.partial, 'damaged line')}"
            )
    results = scans[RESULTS]
    if problems or results is None or results.header is None:
        return "; ".join(problems) or None
    header = results.header
    for table, column in (row_counts or {}).items():
        scan = scans.get(table)
        if column not in header or scan is None or scan.header is None:
            continue
        k, c, ks = header.index("key"), header.index(column), scan.header.index("key")
        counts = Counter(cells[ks] for _, cells in scan.rows)
        short = sum(cells[c] != str(counts[cells[k]]) for _, cells in results.rows)
        if short:
            lack = "lacks" if short == 1 else "lack"
            problems.append(f"{_plural(short, 'point')} {lack} some of their {table}.csv rows")
    return "; ".join(problems) or None


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
    code : dict, optional
        Identity of the code computing the rows (:func:`semcom.identity.code_identity`);
        None: not recorded, not checked.
    data : str, optional
        Digest of the data the rows are computed from; None: not recorded, not checked.
    reuse_stale : bool
        With ``resume``, keep rows written by another or an unrecorded code version (or with
        unrecorded data) instead of refusing them.
    row_counts : dict, optional
        ``{side table: results column}``: a point's rows in that table must number the value
        of that column of its results row (else the point is recomputed).

    Attributes
    ----------
    notes : list of str
        What opening found and did: repaired damage, points to recompute, stale rows kept.
    stale_codes : list
        With ``reuse_stale``, the other code identities (None: unrecorded) of the kept rows.

    Raises
    ------
    ConfigError
        ``directory`` already holds results and ``resume`` is False; or with ``resume`` the
        directory belongs to another fingerprint or other data, holds stale rows without
        ``reuse_stale``, lacks ``store.json``, or has a table whose header is damaged and was
        not recorded; or it cannot be created. A refused open changes no file.
    """

    def __init__(
        self,
        directory: Path | str,
        fingerprint: str,
        resume: bool = False,
        *,
        code: dict[str, Any] | None = None,
        data: str | None = None,
        reuse_stale: bool = False,
        row_counts: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.fingerprint = str(fingerprint)
        self.code = dict(code) if code is not None else None
        self.data = data
        self.notes: list[str] = []
        self.stale_codes: list[dict[str, Any] | None] = []
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise fail("output.dir", str(directory), f"a writable directory ({reason})") from None
        meta = self._read_meta()
        self._columns = _valid_columns(meta.get("columns"))
        row_counts = dict(row_counts or {})
        tables = [t for t in meta.get("tables", []) if self._valid_table(t)]
        tables += [t for t in row_counts if self._valid_table(t) and t not in tables]

        results = scan_table(
            self.path(RESULTS), ("point", "key"), self._columns.get(RESULTS), integer=("point",)
        )
        has_lines = results is not None and results.lines > 0
        if has_lines and not resume:
            raise ConfigError(
                f"output.dir: '{directory}' already holds results of a run; "
                "allowed: --resume to complete them, or another --out"
            )
        sides = {t: scan_table(self.path(t), ("key",), self._columns.get(t)) for t in tables}
        codes = meta.get("codes") if isinstance(meta.get("codes"), list) else None
        if resume and (meta or has_lines):
            self._check_resume(meta, has_lines, codes, reuse_stale, results, sides)

        self._headers: dict[str, list[str]] = {}
        self._keys: dict[str, int] = {}  # key -> point index, of every results row
        self._tables: list[str] = []
        if has_lines and results is not None:
            self._open_rows(results, sides, row_counts)
        if not self._keys:
            # Nothing finished: start afresh (leftovers of a run that finished no point).
            for name in [RESULTS, *tables]:
                with contextlib.suppress(FileNotFoundError):
                    self.path(name).unlink()
            self._headers, self._tables, self._columns = {}, [], {}
        # The code versions of the kept rows (None: unrecorded), then this one.
        kept = (codes if codes is not None else [None]) if self._keys else []
        if self.code is not None:
            kept = [*kept, self.code]
            self._codes: list[Any] | None = [c for i, c in enumerate(kept) if c not in kept[:i]]
        else:
            self._codes = codes if self._keys else None
        if self.data is None and self._keys:
            self.data = meta.get("data")  # keep the record of rows opened without a digest
        with contextlib.suppress(FileNotFoundError):
            self.path(RESULTS, "parquet").unlink()  # stale until finalize() rewrites it
        self._write_meta()

    # -- opening ---------------------------------------------------------------------------------

    def _check_resume(
        self,
        meta: dict[str, Any],
        has_lines: bool,
        codes: list[Any] | None,
        reuse_stale: bool,
        results: TableScan | None,
        sides: dict[str, TableScan | None],
    ) -> None:
        """Refuse a resume that cannot keep the rows (before any file is changed)."""
        where = self.directory
        if has_lines and not meta:
            raise ConfigError(
                f"--resume: '{where}' holds results but its {STORE_FILE} is missing or "
                f"unreadable, so their scenario is unknown; allowed: restore {STORE_FILE}, "
                f"delete {self._files_to_delete(sides)} to start over, or another --out"
            )
        old = meta.get("fingerprint")
        if old != self.fingerprint:
            old12 = str(old)[:12] if old is not None else "unknown"
            raise ConfigError(
                f"--resume: '{where}' holds results of a different scenario "
                f"(config hash {old12} != {self.fingerprint[:12]}); "
                "allowed: the same scenario, or another --out"
            )
        if not has_lines:
            return
        old_data = meta.get("data")
        if self.data is not None and old_data is not None and old_data != self.data:
            raise ConfigError(
                f"--resume: '{where}' holds results computed from other data (data digest "
                f"{str(old_data)[:12]} != {self.data[:12]}); allowed: another --out, or delete "
                f"{self._files_to_delete(sides)} to recompute every point"
            )
        if self.code is not None:
            from semcom.identity import describe_code, same_code

            stale = [c for c in (codes or [None]) if not same_code(c, self.code)]
            if self.data is not None and old_data is None and not stale:
                stale = [None]
            if stale and not reuse_stale:
                made_by = ", ".join(describe_code(c) for c in stale)
                raise ConfigError(
                    f"--resume: '{where}' holds results computed by {made_by}, not by this "
                    f"{describe_code(self.code)}; allowed: --reuse-stale to keep them, or "
                    "another --out"
                )
            self.stale_codes = stale
        for name, scan in [(RESULTS, results), *sides.items()]:
            if scan is not None and scan.header_problem is not None:
                raise ConfigError(
                    f"--resume: '{self.path(name)}' has a damaged header "
                    f"({scan.header_problem}); allowed: delete {self._files_to_delete(sides)} "
                    "to recompute every point, or another --out"
                )

    def _files_to_delete(self, sides: dict[str, Any]) -> str:
        names = [RESULTS, *sides]
        return " and ".join(f"{self.path(n)}" for n in names)

    def _open_rows(
        self, results: TableScan, sides: dict[str, TableScan | None], row_counts: dict[str, str]
    ) -> None:
        """Keep the intact points; drop damaged, repeated or incomplete ones (module doc)."""
        header = results.header or []
        k, p = header.index("key"), header.index("point")
        keys: dict[str, int] = {}
        drop = set(results.damaged_keys)
        for _, cells in results.rows:
            if cells[k] in keys:
                drop.add(cells[k])  # a point stored twice: recompute it
            keys[cells[k]] = int(cells[p])
        counts: dict[str, Counter[str]] = {}
        orphans = 0
        for table, scan in sides.items():
            counts[table] = Counter()
            if scan is None or scan.header is None:
                continue
            ks = scan.header.index("key")
            for _, cells in scan.rows:
                counts[table][cells[ks]] += 1
            orphans += sum(n for key, n in counts[table].items() if key not in keys)
            drop |= scan.damaged_keys & keys.keys()
        for table, column in row_counts.items():
            if column not in header:
                continue
            c = header.index(column)
            for _, cells in results.rows:
                n = cells[c]
                if not _INTEGER.fullmatch(n) or int(n) != counts.get(table, Counter())[cells[k]]:
                    drop.add(cells[k])
        recompute = drop | results.damaged_keys
        self._keys = {key: point for key, point in keys.items() if key not in drop}

        def keep(scan: TableScan, key_index: int) -> list[str]:
            return [line for line, cells in scan.rows if cells[key_index] in self._keys]

        kept = keep(results, k)
        if kept != [line for line, _ in results.rows] or results.damaged or results.header_replaced:
            write_text_atomic(self.path(RESULTS), csv_line(header) + "".join(kept))
        self._headers[RESULTS] = header
        self._columns[RESULTS] = dict(results.kinds)
        damaged = {RESULTS: results.damaged}
        for table, scan in sides.items():
            self._tables.append(table)
            if scan is None or scan.header is None:
                with contextlib.suppress(FileNotFoundError):
                    self.path(table).unlink()  # no header: nothing to keep, start it afresh
                continue
            lines = keep(scan, scan.header.index("key"))
            if len(lines) != len(scan.rows) or scan.damaged or scan.header_replaced:
                write_text_atomic(self.path(table), csv_line(scan.header) + "".join(lines))
            self._headers[table] = scan.header
            self._columns[table] = dict(scan.kinds)
            damaged[table] = scan.damaged
        self._note_repairs(damaged, orphans, len(recompute), results, sides)

    def _note_repairs(
        self,
        damaged: dict[str, int],
        orphans: int,
        recompute: int,
        results: TableScan,
        sides: dict[str, TableScan | None],
    ) -> None:
        parts = [
            f"{_plural(n, 'damaged line')} of {table}.csv" for table, n in damaged.items() if n
        ]
        replaced = [t for t, s in [(RESULTS, results), *sides.items()] if s and s.header_replaced]
        parts += [f"the damaged header of {t}.csv (rewritten from {STORE_FILE})" for t in replaced]
        if orphans:
            parts.append(f"{_plural(orphans, 'side row')} of unfinished points")
        if parts:
            self.notes.append(f"repaired {self.directory}: dropped " + ", ".join(parts))
        if recompute:
            self.notes.append(
                f"{_plural(recompute, 'point')} with damaged or incomplete rows will be recomputed"
            )
        if self.stale_codes:
            from semcom.identity import describe_code

            made_by = ", ".join(describe_code(c) for c in self.stale_codes)
            self.notes.append(
                f"--reuse-stale: keeping {_plural(len(self._keys), 'point')} computed by {made_by}"
            )

    # -- paths and metadata -------------------------------------------------------------------

    def path(self, table: str = RESULTS, suffix: str = "csv") -> Path:
        """``DIR/<table>.<suffix>``."""
        return self.directory / f"{table}.{suffix}"

    @staticmethod
    def _valid_table(name: Any) -> bool:
        return isinstance(name, str) and bool(_TABLE_NAME.fullmatch(name)) and name != RESULTS

    def _read_meta(self) -> dict[str, Any]:
        try:
            meta = json.loads((self.directory / STORE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return meta if isinstance(meta, dict) else {}

    def _write_meta(self) -> None:
        meta: dict[str, Any] = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "tables": self._tables,
            "columns": self._columns,
        }
        if self._codes is not None:
            meta["codes"] = self._codes
        if self.data is not None:
            meta["data"] = self.data
        write_json_atomic(self.directory / STORE_FILE, meta)

    @property
    def codes(self) -> list[Any] | None:
        """The code identities that wrote the stored rows and will write new ones (None: not
        recorded; an entry None: an unrecorded version)."""
        return None if self._codes is None else list(self._codes)

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
            lines.append(csv_line([format_cell(row[c], c) for c in header]))
        return header, lines, new

    def _learn_kinds(self, table: str, header: list[str], rows: list[dict[str, Any]]) -> bool:
        """Record the kinds of ``rows``' values in ``columns``; True if the record changed."""
        known = self._columns.get(table, dict.fromkeys(header))
        kinds = dict(known)
        for row in rows:
            for column in header:
                kinds[column] = merge_kind(kinds.get(column), value_kind(plain_scalar(row[column])))
        if kinds == known and table in self._columns:
            return False
        self._columns[table] = kinds
        return True

    def _append(self, table: str, header: list[str], lines: list[str], new: bool) -> None:
        path = self.path(table)
        text = (csv_line(header) if new else "") + "".join(lines)
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
            pending.append((table, rows, *self._format_rows(table, rows)))
        header, results_line, new = self._format_rows(RESULTS, [row])

        # Register new tables and column kinds before the rows exist, so a crash cannot hide
        # an orphan and a reopened store checks every cell against what was written.
        changed = False
        for table, rows, table_header, *_ in pending:
            if table not in self._tables:
                self._tables.append(table)
                changed = True
            changed |= self._learn_kinds(table, table_header, rows)
        changed |= self._learn_kinds(RESULTS, header, [row])
        if changed:
            self._write_meta()
        for table, _, table_header, lines, table_new in pending:
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
            scan = scan_table(self.path(table), ("key",), self._columns.get(table))
            if scan is None or scan.header is None:
                continue
            index = scan.header.index("key")
            rows = sorted(scan.rows, key=lambda r: self._keys.get(r[1][index], math.inf))
            text = csv_line(scan.header) + "".join(line for line, _ in rows)
            write_text_atomic(self.path(table), text)
        parquet_path = self.path(RESULTS, "parquet")
        if parquet and self._headers.get(RESULTS):
            import io

            buffer = io.BytesIO()
            self.frame(RESULTS).to_parquet(buffer, engine="pyarrow", index=False)
            write_bytes_atomic(parquet_path, buffer.getvalue())
        else:
            with contextlib.suppress(FileNotFoundError):
                parquet_path.unlink()
