"""Provenance of a run: what code, which libraries and which machine produced a results folder.

:func:`collect_provenance` returns a JSON-ready dict (written as ``provenance.json`` next to
``results.csv``). It is cheap: library versions come from package metadata
(``importlib.metadata``, nothing heavy is imported), the git state from two ``git`` calls with a
5 s timeout each, the hardware from ``/proc`` where it exists. GPU names are read through
``torch.cuda`` only when torch is already imported by the caller.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import semcom

LIBRARIES = (
    "numpy",
    "scipy",
    "torch",
    "numba",
    "pandas",
    "pyarrow",
    "pydantic",
    "ray",
    "cvxpy",
    "sionna-no-rt",
    "scikit-image",
    "scikit-learn",
    "matplotlib",
    "tqdm",
    "pyyaml",
)
"""Distributions whose version is recorded (those installed)."""

GIT_TIMEOUT_S = 5.0


def iso_utc(timestamp: float) -> str:
    """A POSIX timestamp (seconds, ``time.time()``) as ISO-8601 UTC, e.g.
    ``2025-01-31T12:00:00.123456+00:00``."""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat()


def _git(args: list[str], cwd: Path) -> str | None:
    """stdout of ``git <args>`` run in ``cwd``, or None if git is missing, fails or times out."""
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(directory: Path | str | None = None) -> tuple[str | None, bool | None]:
    """``(commit, dirty)`` of the git checkout holding ``directory`` (default: the package).

    ``commit`` is ``git rev-parse HEAD``; ``dirty`` is True when tracked files differ from
    it (``git status --porcelain --untracked-files=no``). ``(None, None)`` when
    ``directory`` is not inside a git work tree that tracks it (e.g. an installed copy in
    site-packages of some other repository), git is unavailable, or a call times out.
    ``--no-optional-locks`` keeps git from taking the index lock of a tree in use.
    """
    cwd = Path(directory) if directory is not None else Path(semcom.__file__).resolve().parent
    head = _git(["rev-parse", "HEAD"], cwd)
    commit = head.strip() if head else None
    if not commit or not (_git(["ls-files", "--", "."], cwd) or "").strip():
        return None, None  # not a checkout, or one that does not track this directory
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return commit, (None if status is None else bool(status.strip()))


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str]:
    """``{distribution: version}`` of the installed ones among ``names`` (no imports)."""
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, _, value = line.partition(":")
                if name.strip() in ("model name", "Model", "Hardware", "cpu model"):
                    return value.strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024  # the value is in KiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gpus() -> list[str] | None:
    """CUDA device names via torch, only if the caller already imported torch; else None."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # a broken driver must not fail the run
        return None


def hardware() -> dict[str, Any]:
    """CPU model, logical cores (all and usable by this process), memory in bytes, GPUs."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": _memory_bytes(),
        "gpus": _gpus(),
    }


def collect_provenance(
    *,
    name: str,
    config_hash: str,
    seeds: dict[str, Any],
    started: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Provenance record of a run (JSON-ready).

    Args:
        name: Scenario name.
        config_hash: The scenario's config hash (the result store's fingerprint).
        seeds: The run's seeds, recorded as given.
        started: Start time, POSIX seconds (``time.time()``).
        extra: Further fields (e.g. ``finished``, ``wall_seconds``, ``points_done``,
            ``points_total``), added last; they override the collected ones of the same name.

    Returns:
        A dict: ``package``, ``version``, ``git_commit``, ``git_dirty``, ``scenario``,
        ``config_hash``, ``seeds``, ``python``, ``platform``, ``libraries``, ``hardware``,
        ``started`` (ISO-8601 UTC), ``started_timestamp``, then ``extra``.
    """
    commit, dirty = git_state()
    record: dict[str, Any] = {
        "package": "semcom",
        "version": semcom.__version__,
        "git_commit": commit,
        "git_dirty": dirty,
        "scenario": name,
        "config_hash": config_hash,
        "seeds": dict(seeds),
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
        },
        "platform": platform.platform(),
        "libraries": library_versions(),
        "hardware": hardware(),
        "started": iso_utc(started),
        "started_timestamp": started,
    }
    record.update(extra or {})
    return record
