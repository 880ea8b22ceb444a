"""Run the cheap 40-point sweep through ResultStore + run_points (the kill-and-resume tests).

Usage: ``python run_cheap.py OUT [--resume] [--workers N] [--executor local|ray]
[--sleep SECONDS] [--hold-gil SECONDS] [--log FILE]``. Prints a JSON report (points skipped
as already done, computed, done) on stdout; exits 130 on Ctrl-C and 143 on SIGTERM (keeping
the finished rows, ending the workers), and 2 on a ConfigError (an output folder in use
included). Holds the folder's :class:`OutputLock` while it runs, as ``semcom run`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from channels.errors import ConfigError  # noqa: E402
from semcom.sweep import (  # noqa: E402
    OutputLock,
    ResultStore,
    expand,
    run_points,
    shutdown_on_signals,
)
from semcom.sweep.signals import exit_status  # noqa: E402
from tests.semcom.sweep_helpers.tasks import AXES, BASE, FINGERPRINT, CheapTask  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--executor", default="local")
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--log", default=None)
    parser.add_argument("--hold-gil", type=int, default=0)
    args = parser.parse_args(argv)

    points = expand(AXES, BASE)
    with shutdown_on_signals():  # SIGTERM and SIGHUP are handled like Ctrl-C
        try:
            with OutputLock(args.out, "run_cheap"):
                store = ResultStore(args.out, FINGERPRINT, resume=args.resume)
                done = store.completed()
                todo = [p for p in points if p.key not in done]
                report = {"skipped": len(points) - len(todo), "computed": len(todo)}
                try:
                    run_points(
                        CheapTask(sleep=args.sleep, log=args.log, hold_gil=args.hold_gil),
                        todo,
                        executor=args.executor,
                        workers=args.workers,
                        on_result=store.add,
                        progress=False,
                    )
                except KeyboardInterrupt as error:
                    print(
                        f"interrupted ({str(error) or 'SIGINT'}): "
                        f"{len(store.completed())} points done",
                        file=sys.stderr,
                    )
                    return exit_status(error)
                store.finalize()
        except ConfigError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    report["done"] = len(store.completed())
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
