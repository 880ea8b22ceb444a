"""``semcom run SCENARIO``: train or reuse the models, run the sweep, write results and plots.

Writes into the output directory (``output.dir``, ``--out``): ``results.csv`` (a row per point
as it completes), ``per_image.csv``, ``importance.csv``, ``results.parquet``,
``provenance.json``, ``scenario.yaml`` (resolved; ``scenario.resolved.yaml`` when
``scenario.yaml`` there is the input file, which is never overwritten) and ``plots/*.png``;
then prints the PSNR table and the gain of ``isfr-uep`` over each baseline. ``--resume``
completes an interrupted run. Trained models go to the checkpoint folder
(``training.checkpoint_dir``, ``--checkpoint-dir``; default ``results/checkpoints`` under the
current directory, whatever ``--out`` is), shared by runs. docs/scenarios.md describes the
file format and the results.

The output directory is locked while the run lasts (``run.lock``): a second run or a
``--resume`` on it exits with status 2 and one line naming the holder's pid and host. Ctrl-C,
``SIGTERM`` and ``SIGHUP`` end the workers, keep the finished rows, record ``interrupted`` in
``provenance.json`` and exit with ``128 + signal`` (130, 143, 129).
"""

from __future__ import annotations

import argparse

from semcom.commands._scenario_args import add_scenario_arguments, load, quoted

NAME = "run"
HELP = "Run a scenario: train/reuse models, sweep with confidence-interval stopping, write results."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``semcom run``."""
    add_scenario_arguments(parser)
    parser.add_argument("--out", help="output directory (default: output.dir, results/NAME)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="complete the interrupted run in the output dir (refused, like a new run, while "
        "another run holds the dir's lock)",
    )
    parser.add_argument(
        "--checkpoint-dir",
        help="folder of the trained models, shared and reused by runs (default: "
        "training.checkpoint_dir, results/checkpoints under the current directory, not under "
        "--out; null there: OUT/checkpoints)",
    )
    parser.add_argument(
        "--reuse-stale",
        action="store_true",
        help="reuse checkpoints and --resume rows made by another semcom version or commit "
        "(refused or retrained otherwise)",
    )
    parser.add_argument("--executor", help="local (process pool) or ray")
    parser.add_argument("--workers", help="worker processes (default: CPU cores)")
    parser.add_argument("--device", help="auto, cpu or cuda (models and kernels)")
    parser.add_argument("--ray-address", help="address of an existing Ray cluster")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")


def run(args: argparse.Namespace) -> int:
    """Validate everything, then run; returns the exit status."""
    from semcom.runner import run_scenario, summary

    extra = []
    for path, value in (
        ("output.dir", args.out), ("execution.executor", args.executor),
        ("execution.device", args.device), ("execution.ray_address", args.ray_address),
        ("training.checkpoint_dir", args.checkpoint_dir),
    ):  # fmt: skip
        if value is not None:
            extra.append(quoted(path, value))
    if args.workers is not None:
        extra.append(f"execution.workers={args.workers}")
    if args.out is not None:  # refuse a folder in use now, not after loading the scenario
        from semcom.sweep.lock import OutputLock

        OutputLock(args.out).check_free()
    scenario = load(args, extra)
    log = (lambda _: None) if args.quiet else (lambda line: print(line, flush=True))
    outcome = run_scenario(
        scenario, resume=args.resume, progress=not args.no_progress, log=log,
        source=args.scenario, reuse_stale=args.reuse_stale,
    )  # fmt: skip
    log(
        f"done in {outcome.seconds:.1f} s: {outcome.points_computed} points computed, "
        f"{outcome.points_reused} reused -> {outcome.directory}"
    )
    print(summary(outcome.directory), flush=True)
    return 0
