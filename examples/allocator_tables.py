"""The allocator comparison of docs/results.md §14: objective gaps, decision times and the
training curves of the learned policies, and the PSNR table of ``scenarios/allocators.yaml``.

Usage::

    python examples/allocator_tables.py gaps OUT_DIR [--frames 256] [--iterations 40] [--seeds 3]
    python examples/allocator_tables.py psnr RESULTS_DIR

``gaps``: on ``random_problem(6, 6, seed=0)`` (N = K = 6, so that ``exact`` enumerates every
frame) and ``--frames`` held-out Rayleigh draws of its gains (``default_rng(1)``), every
allocation method's objective through ``optim.solve_batch``: the mean relative gap to the exact
optimum and to ``hierarchical``, each with a 95% t-interval over the frames, and the decision
time per frame (the batched call's wall time over the frames, median of 3 after a warm-up, on
this machine's CPU). The nine ``rl:<kind>`` policies are trained first, ``--seeds`` times each
with policy-gradient iterations only (``--iterations``, no imitation warm start, the trainer's
other defaults), and their training curves (the mean objective of each iteration's episodes)
are written as ``curves.csv`` with the mean and a 95% t-interval over the seeds; the gap rows
of a kind are its seed-0 policy. Writes ``gaps.csv``, ``curves.csv`` and ``gaps.txt``.

``psnr``: the PSNR (with the run's 95% interval) of every scheme of a ``semcom run
scenarios/allocators.yaml`` results directory, per SNR, and the paired gain over
``isfr-uep`` (the hierarchical solver).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import optim
from optim.learned.method import load_or_train
from optim.methods import RL_KINDS
from optim.problem import random_problem
from semcom.metrics import mean_ci

PROPORTIONAL = ("dhondt", "harmony", "polca")


def _interval(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% t-interval of ``x`` (:func:`semcom.metrics.mean_ci`)."""
    est = mean_ci(np.asarray(x, dtype=float))
    return est.mean, est.low, est.high


def _timed(template, gains, method: str, **options):  # noqa: ANN001, ANN202
    """(result, seconds per frame): median of 3 batched calls after a warm-up call."""
    result = optim.solve_batch(template, gains, method, **options)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        optim.solve_batch(template, gains, method, **options)
        times.append(time.perf_counter() - start)
    return result, statistics.median(times) / gains.shape[0]


def gaps(out: Path, frames: int, iterations: int, seeds: int) -> None:
    """The ``gaps`` tables (module docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    template = random_problem(6, 6, seed=0)
    gains = np.random.default_rng(1).exponential(size=(frames, 6))
    rows, curves = [], []
    exact, _ = _timed(template, gains, "exact")
    hier = None
    with tempfile.TemporaryDirectory() as folder:
        methods: list[tuple[str, dict]] = [("exact", {}), ("hierarchical", {}),
                                           ("hierarchical", {"refine": False})]  # fmt: skip
        methods += [(name, {"seed": 0} if name != "dhondt" else {}) for name in PROPORTIONAL]
        for kind in RL_KINDS:
            for seed in range(seeds):
                train = {"iterations": iterations, "imitation": 0, "seed": seed}
                loaded = load_or_train(template, 6, kind, train=train, checkpoint_dir=folder,
                                       progress=False)  # fmt: skip
                for entry in loaded.history:
                    curves.append({"kind": kind, "seed": seed, "iteration": entry["iteration"],
                                   "objective": entry["objective"]})  # fmt: skip
                print(f"trained rl:{kind} seed {seed}", file=sys.stderr, flush=True)
            methods.append(
                (
                    f"rl:{kind}",
                    {
                        "train": {"iterations": iterations, "imitation": 0, "seed": 0},
                        "checkpoint_dir": folder,
                        "progress": False,
                    },
                )
            )
        for method, options in methods:
            result, seconds = _timed(template, gains, method, **options)
            if method == "hierarchical" and not options:
                hier = result.objective
            label = method + ("" if "refine" not in options else " (refine=False)")
            rows.append((label, result.objective, seconds))
    table = []
    for label, objective, seconds in rows:
        to_exact = _interval(objective / exact.objective - 1.0)
        to_hier = _interval(objective / hier - 1.0)
        table.append({"method": label, "gap_exact": to_exact[0], "gap_exact_low": to_exact[1],
                      "gap_exact_high": to_exact[2], "gap_hier": to_hier[0],
                      "gap_hier_low": to_hier[1], "gap_hier_high": to_hier[2],
                      "us_per_frame": seconds * 1e6})  # fmt: skip
    frame = pd.DataFrame(table)
    frame.to_csv(out / "gaps.csv", index=False)
    curve = pd.DataFrame(curves)
    curve.to_csv(out / "curves.csv", index=False)
    lines = ["| method | gap to exact (%) | gap to hierarchical (%) | CPU µs/frame |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for r in table:
        lines.append(
            f"| {r['method']} | {100 * r['gap_exact']:.1f} [{100 * r['gap_exact_low']:.1f}, "
            f"{100 * r['gap_exact_high']:.1f}] | {100 * r['gap_hier']:+.1f} "
            f"[{100 * r['gap_hier_low']:+.1f}, {100 * r['gap_hier_high']:+.1f}] | "
            f"{r['us_per_frame']:.0f} |"
        )
    marks = sorted({1, max(1, iterations // 4), max(1, iterations // 2), iterations})
    lines += ["", "| kind | " + " | ".join(f"iteration {m}" for m in marks) + " |",
              "|---|" + "---:|" * len(marks)]  # fmt: skip
    for kind in RL_KINDS:
        cells = []
        for m in marks:
            values = curve[(curve["kind"] == kind) & (curve["iteration"] == m)]["objective"]
            mean, low, high = _interval(values.to_numpy())
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        lines.append(f"| rl:{kind} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (out / "gaps.txt").write_text(text)
    print(text)


def psnr(results: Path) -> None:
    """The ``psnr`` table (module docstring)."""
    from semcom.report import gain_table, load_results

    res = load_results(results)
    table = res.results
    schemes = list(dict.fromkeys(table["scheme"]))
    snrs = sorted(set(table["snr_db"]))
    gains = gain_table(res, reference="isfr-uep", baselines=[s for s in schemes
                                                            if s != "isfr-uep"])  # fmt: skip
    lines = ["| scheme | " + " | ".join(f"{s:g} dB" for s in snrs) + " | "
             + " | ".join(f"vs isfr-uep at {s:g} dB" for s in snrs) + " |",
             "|---|" + "---:|" * (2 * len(snrs))]  # fmt: skip
    for scheme in schemes:
        cells = []
        for snr in snrs:
            r = table[(table["scheme"] == scheme) & (table["snr_db"] == snr)].iloc[0]
            cells.append(f"{r['psnr_db']:.2f} [{r['psnr_ci_low']:.2f}, {r['psnr_ci_high']:.2f}]")
        for snr in snrs:
            if scheme == "isfr-uep":
                cells.append("—")
                continue
            g = gains[(gains["snr_db"] == snr) & (gains["baseline"] == scheme)].iloc[0]
            # the table's gain is isfr-uep minus the scheme: flip it to scheme minus isfr-uep
            cells.append(f"{-g['psnr_gain_db']:+.2f} [{-g['psnr_gain_ci_high']:+.2f}, "
                         f"{-g['psnr_gain_ci_low']:+.2f}]")  # fmt: skip
        lines.append(f"| {scheme} | " + " | ".join(cells) + " |")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("gaps")
    g.add_argument("out", type=Path)
    g.add_argument("--frames", type=int, default=256)
    g.add_argument("--iterations", type=int, default=40)
    g.add_argument("--seeds", type=int, default=3)
    p = sub.add_parser("psnr")
    p.add_argument("results", type=Path)
    args = parser.parse_args()
    if args.command == "gaps":
        gaps(args.out, args.frames, args.iterations, args.seeds)
    else:
        psnr(args.results)


if __name__ == "__main__":
    main()
