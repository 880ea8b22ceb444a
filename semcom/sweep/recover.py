"""Rebuild a lost ``store.json`` of a results folder from the files ``semcom run`` writes beside it.

``store.json`` names the scenario (config hash) whose points ``results.csv`` holds; without it a
resume cannot tell whether the rows belong to the scenario, and the store refuses them. The
runner also writes:

- the resolved scenario, ``scenario.yaml`` (or ``scenario.resolved.yaml`` when ``scenario.yaml``
  is the user's input file), whose first line is
  ``# scenario NAME, resolved; config hash <64 hex>``;
- ``provenance.json``, with the code identity (``code``), the code versions of the rows
  (``result_codes``) and the data digest (``data_digest``) of the run.

:func:`rebuild_store_json` writes ``store.json`` from these: the config hash of the newer of the
two scenario files, the codes and data digest of ``provenance.json`` (left out when it lacks
them, so the rows count as made by an unrecorded version), and as side tables the CSV files
whose header has a ``key`` column. The column kinds are then inferred from the rows
(:mod:`semcom.sweep.table_scan`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from semcom.sweep.store import FORMAT, RESULTS, STORE_FILE, ResultStore, write_json_atomic
from semcom.sweep.table_scan import parse_line

SCENARIO_FILES = ("scenario.yaml", "scenario.resolved.yaml")
"""Where the runner writes the resolved scenario (see :func:`resolved_scenario_path`)."""

_HASH_LINE = re.compile(r"# scenario .*, resolved; config hash ([0-9a-f]{64})\s*")


def scenario_hash(directory: Path | str) -> str | None:
    """The config hash in the header line of the newer resolved scenario file, or None."""
    found = []
    for name in SCENARIO_FILES:
        path = Path(directory) / name
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                match = _HASH_LINE.fullmatch(f.readline())
            if match:
                found.append((path.stat().st_mtime, match.group(1)))
        except OSError:
            continue
    return max(found)[1] if found else None


def _side_tables(directory: Path) -> list[str]:
    tables = []
    for path in sorted(directory.glob("*.csv")):
        if path.stem == RESULTS or not ResultStore._valid_table(path.stem):
            continue
        try:
            with open(path, encoding="utf-8") as f:
                header = parse_line(f.readline())
        except (OSError, UnicodeDecodeError):
            continue
        if header and "key" in header:
            tables.append(path.stem)
    return tables


def _store_json_ok(directory: Path) -> bool:
    try:
        meta = json.loads((directory / STORE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and bool(meta)


def rebuild_store_json(directory: Path | str) -> str | None:
    """Write ``DIR/store.json`` if it is missing or unreadable while ``results.csv`` exists.

    Returns:
        A line saying what was rebuilt, or None when nothing was written (``store.json`` is
        fine, there are no results, or no resolved scenario file names the config hash).
    """
    directory = Path(directory)
    if _store_json_ok(directory) or not (directory / f"{RESULTS}.csv").is_file():
        return None
    fingerprint = scenario_hash(directory)
    if fingerprint is None:
        return None
    meta: dict[str, Any] = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "tables": _side_tables(directory),
        "columns": {},
    }
    try:
        provenance = json.loads((directory / "provenance.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        provenance = None
    source = "the scenario file"
    if isinstance(provenance, dict) and provenance.get("config_hash") == fingerprint:
        codes = provenance.get("result_codes")
        if isinstance(codes, list) and codes:
            meta["codes"] = codes
        if isinstance(provenance.get("data_digest"), str):
            meta["data"] = provenance["data_digest"]
        source += " and provenance.json"
    write_json_atomic(directory / STORE_FILE, meta)
    return f"{STORE_FILE} was missing; rebuilt it from {source} (config hash {fingerprint[:12]})"


__all__ = ["SCENARIO_FILES", "rebuild_store_json", "scenario_hash"]
