"""Checking one CSV table of a result store line by line: which lines are intact, which damaged.

The store writes every line itself, so an intact line is exactly what its writer produces:

- it ends with ``\\n`` and decodes as strict UTF-8, without NUL bytes;
- it is the canonical CSV text of its cells (``csv.writer`` of the parsed cells gives back the
  same text), so a lost or extra quote, comma or space is seen;
- it has as many cells as the header;
- every cell fits its column's *kind*: ``number`` (decimal integer or float text as Python's
  ``repr`` writes it, ``nan``, ``inf``), ``bool`` (``True``/``False``) or ``str`` (any text);
  an empty cell (a ``None``) fits every kind; ``integer`` columns (a results row's ``point``)
  hold a non-empty decimal integer and ``key`` is non-empty.

The kinds come from the store's ``store.json`` (recorded from the values written). Where they
were not recorded (a ``store.json`` rebuilt, or written by an older version), a column's kind is
the one most of its cells fit (more than half of the non-empty ones), so a single row cannot be
checked for text in a numeric column.

A header is usable when it is canonical, its names are non-empty and distinct, it holds the
required columns and, where the store recorded its columns, equals them. A damaged header is
replaced by the recorded one (its line then counts as a damaged line); without a record the
table cannot be read and the caller refuses it.

Examples:
    >>> csv_line(["1", "a,b", ""])
    '1,"a,b",\\n'
    >>> cell_fits("1e-300", "number"), cell_fits("12abc", "number"), cell_fits("", "bool")
    (True, False, True)
    >>> merge_kind(None, "number"), merge_kind("number", "str")
    ('number', 'str')
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf)")
_INTEGER = re.compile(r"-?\d+")
KINDS = ("number", "bool", "str")
"""Column kinds: ``number`` (int or float), ``bool``, ``str``."""


def value_kind(value: Any) -> str | None:
    """The kind of a plain Python value as the store writes it (None: an empty cell)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "str"


def merge_kind(old: str | None, new: str | None) -> str | None:
    """The kind of a column that held values of kind ``old`` and now one of kind ``new``:
    the known one, or ``str`` (any text) when they differ."""
    if old is None or old == new:
        return new if old is None else old
    return old if new is None else "str"


def cell_fits(text: str, kind: str | None) -> bool:
    """Whether the cell text ``text`` can hold a value of ``kind`` (None: unknown, any text)."""
    if text == "" or kind in (None, "str"):
        return True
    if kind == "number":
        return bool(_NUMBER.fullmatch(text))
    if kind == "bool":
        return text in ("True", "False")
    return False


def csv_line(cells: Sequence[str]) -> str:
    """The canonical CSV line of ``cells`` (minimal quoting, ``\\n`` ending)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


def parse_line(line: str) -> list[str] | None:
    """The cells of one canonical CSV line (with its ``\\n``), or None if it is not one."""
    if "\x00" in line or not line.endswith("\n"):
        return None
    try:
        cells = next(csv.reader([line[:-1]]), [])
    except csv.Error:
        return None
    return cells if csv_line(cells) == line else None


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass
class TableScan:
    """What :func:`scan_table` found in one file.

    Attributes:
        header: the columns to keep (the file's, or the recorded ones replacing a damaged
            header); None when the file has no usable header.
        header_problem: why the file's header is unusable and could not be replaced, or None.
        header_replaced: the damaged header was replaced by the recorded columns.
        rows: ``(line, cells)`` of every intact data line, in file order.
        damaged: number of damaged data lines (including a partial last line).
        damaged_keys: the ``key`` cells that could still be read from damaged lines.
        kinds: the kind of every column used for the check (recorded or inferred).
        lines: complete data lines in the file (ending with a newline), intact or not; a
            partial last line (a write cut by a crash) is not counted.
        partial: the file ends with a partial line (counted in ``damaged``).
    """

    header: list[str] | None
    header_problem: str | None = None
    header_replaced: bool = False
    rows: list[tuple[str, list[str]]] = field(default_factory=list)
    damaged: int = 0
    damaged_keys: set[str] = field(default_factory=set)
    kinds: dict[str, str | None] = field(default_factory=dict)
    lines: int = 0
    partial: bool = False


def _header_problem(
    cells: list[str] | None, required: Sequence[str], expected: list[str] | None
) -> str | None:
    if cells is None:
        return "not a CSV line"
    if expected is not None and cells != expected:
        return "columns differ from those recorded in store.json"
    if any(not c for c in cells) or len(set(cells)) != len(cells):
        return "empty or repeated column names"
    missing = [c for c in required if c not in cells]
    return f"no {', '.join(repr(c) for c in missing)} column" if missing else None


def _infer_kinds(header: list[str], rows: list[list[str]]) -> dict[str, str | None]:
    kinds: dict[str, str | None] = {}
    for i, name in enumerate(header):
        cells = [r[i] for r in rows if r[i] != ""]
        kinds[name] = None
        for kind in ("number", "bool"):
            if 2 * sum(cell_fits(c, kind) for c in cells) > len(cells):
                kinds[name] = kind
                break
        else:
            kinds[name] = "str" if cells else None
    return kinds


def scan_table(
    path: Path,
    required: Sequence[str],
    recorded: dict[str, str | None] | None = None,
    integer: Sequence[str] = (),
) -> TableScan | None:
    """Check the CSV table at ``path`` line by line (module docstring); None if no file.

    Args:
        path: the table's file.
        required: columns the header must hold (``key`` is always checked non-empty).
        recorded: the columns and kinds recorded for the table (header order), or None.
        integer: columns that must hold a non-empty decimal integer.

    Returns:
        A :class:`TableScan`; the file is only read.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    chunks = data.split(b"\n")
    partial = chunks.pop()  # after the last newline: b"" for a complete file
    raw_lines = [c + b"\n" for c in chunks] + ([partial] if partial else [])
    if not raw_lines:
        return TableScan(header=None)
    expected = list(recorded) if recorded else None
    text = _decode(raw_lines[0])
    head = parse_line(text) if text is not None else None
    problem = _header_problem(head, required, expected)
    complete = len(chunks)  # lines ending with a newline, the header's included
    scan = TableScan(header=head, lines=max(0, complete - 1), partial=bool(partial))
    body = raw_lines[1:]
    if problem is not None:
        if expected is None:
            scan.header, scan.header_problem = None, problem
            return scan
        scan.header, scan.header_replaced = expected, True
        body = raw_lines  # the first line may be a data line whose header was lost
    header = scan.header or []
    key = header.index("key") if "key" in header else None
    candidates: list[tuple[str, list[str]]] = []
    for raw in body:
        line = _decode(raw)
        cells = parse_line(line) if line is not None else None
        if cells is not None and len(cells) == len(header):
            candidates.append((line, cells))
            continue
        scan.damaged += 1
        if cells is None:  # best effort, for the key: dropping its point is always safe
            text = raw.decode("utf-8", errors="replace").replace("\x00", "").rstrip("\n")
            cells = next(csv.reader([text]), [])
        if cells and key is not None and key < len(cells) and cells[key]:
            scan.damaged_keys.add(cells[key])
    scan.kinds = dict(recorded) if recorded else _infer_kinds(header, [c for _, c in candidates])
    columns = [(i, scan.kinds.get(name), name in integer) for i, name in enumerate(header)]
    for line, cells in candidates:
        fits = all(
            bool(_INTEGER.fullmatch(cells[i])) if whole else cell_fits(cells[i], kind)
            for i, kind, whole in columns
        )
        if fits and (key is None or cells[key]):
            scan.rows.append((line, cells))
            continue
        scan.damaged += 1
        if key is not None and cells[key]:
            scan.damaged_keys.add(cells[key])
    return scan


__all__ = [
    "KINDS",
    "TableScan",
    "cell_fits",
    "csv_line",
    "merge_kind",
    "parse_line",
    "scan_table",
    "value_kind",
]
