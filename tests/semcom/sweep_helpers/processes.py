"""Process counting for the signal tests: the live members of a process group, read from /proc.

A test starts the command in its own session (``start_new_session=True``), so its process
group holds the command, every worker it spawned and the ``multiprocessing`` resource tracker
(all inherit the group), and nothing else. Zombies (dead, not yet reaped by init) do not count.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HAS_PROC = Path("/proc/self/stat").exists()


def live_group_members(pgid: int) -> list[int]:
    """Pids of the processes of group ``pgid`` that still run (zombies excluded)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (name) "
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def wait_until_gone(pgid: int, timeout: float) -> tuple[list[int], float]:
    """Poll until group ``pgid`` has no live member or ``timeout`` s passed.

    Returns:
        The members still alive (empty on success) and the seconds waited.
    """
    start = time.monotonic()
    members = live_group_members(pgid)
    while members and time.monotonic() - start < timeout:
        time.sleep(0.05)
        members = live_group_members(pgid)
    return members, time.monotonic() - start


def spawned_workers(pgid: int) -> list[int]:
    """The live members of group ``pgid`` that are ``multiprocessing`` spawn workers."""
    workers = []
    for pid in live_group_members(pgid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            workers.append(pid)
    return workers


def wait_for_workers(pgid: int, count: int, timeout: float = 120.0) -> list[int]:
    """Poll until group ``pgid`` has at least ``count`` spawn workers; returns them."""
    deadline = time.monotonic() + timeout
    workers = spawned_workers(pgid)
    while len(workers) < count:
        assert time.monotonic() < deadline, f"group {pgid} has only {workers} workers"
        time.sleep(0.05)
        workers = spawned_workers(pgid)
    return workers
