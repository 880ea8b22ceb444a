"""Signal a pool's first worker start between the worker's exec and the pool's record of it,
the moment :class:`semcom.sweep.pool.SpawnPool` holds signals back over.

Usage: ``python spawn_race.py term|ctrl-c``. The parent's hook runs right after the new
interpreter is executed, before the worker's start-up data is written into its pipe:

- ``term``: it sends this process ``SIGTERM`` (``kill PID``);
- ``ctrl-c``: it waits 1 s (the worker is then reading its start-up data) and sends ``SIGINT``
  to the whole process group, as Ctrl-C in a terminal does.

Prints how many workers the pool had recorded when :class:`Interrupted` arrived, stops the
pool and exits with ``128 + signal``; exits 1 if no signal interrupted it.
"""

from __future__ import annotations

import multiprocessing.util
import os
import signal
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from semcom.sweep import spawn_pool, stop_pool  # noqa: E402
from semcom.sweep.signals import Interrupted, shutdown_on_signals  # noqa: E402


def signal_after_exec(how: str) -> None:
    execute = multiprocessing.util.spawnv_passfds

    def execute_then_signal(path: bytes, args: list, passfds: tuple[int, ...]) -> int:
        pid = execute(path, args, passfds)
        if any("spawn_main" in os.fsdecode(arg) for arg in args):  # a worker, not the tracker
            if how == "term":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                time.sleep(1.0)
                os.killpg(os.getpgrp(), signal.SIGINT)
        return pid

    multiprocessing.util.spawnv_passfds = execute_then_signal


def main() -> int:
    [how] = sys.argv[1:]
    assert how in ("term", "ctrl-c"), how
    signal_after_exec(how)
    with shutdown_on_signals():
        pool = spawn_pool(1)
        try:
            pool.submit(os.getpid).result()
        except Interrupted as error:
            print(len(pool._processes), flush=True)
            stop_pool(pool)
            return error.exit_status
    return 1


if __name__ == "__main__":
    sys.exit(main())
