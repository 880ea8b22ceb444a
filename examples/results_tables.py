"""The tables of docs/results.md, from the results directories of the reproduction runs.

For each experiment, one seed's run is the main table (its paired 95% intervals over the
evaluation images); the other training seeds' runs add the range of their point estimates, so
both the Monte Carlo uncertainty (intervals) and the training-seed spread (range) are shown.

Usage::

    python examples/results_tables.py RESULTS_ROOT [--experiments psnr_vs_snr ...]

``RESULTS_ROOT`` holds ``<experiment>-seed<k>/`` directories written by
``semcom run scenarios/<experiment>.yaml --set execution.seed=<k> --out ...``. Prints markdown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from semcom.report import gain_table, load_results, varying_axes

EXPERIMENTS = ("psnr_vs_snr", "psnr_vs_eta", "psnr_vs_subchannels")
LABELS = {"snr_db": "SNR (dB)", "eta": "η", "n_subchannels": "K"}


def _seed_dirs(root: Path, experiment: str) -> dict[int, Path]:
    dirs = {}
    for path in sorted(root.glob(f"{experiment}-seed*")):
        if (path / "results.csv").is_file():
            dirs[int(path.name.rsplit("seed", 1)[1])] = path
    return dirs


def experiment_table(root: Path, experiment: str) -> str:
    """Markdown: per condition and baseline, the main seed's gains with intervals + seed range."""
    dirs = _seed_dirs(root, experiment)
    if not dirs:
        return f"(no results for {experiment} under {root})\n"
    gains = {seed: gain_table(load_results(path)) for seed, path in dirs.items()}
    main_seed = min(gains)
    main = gains[main_seed]
    axis = varying_axes(main)[0] if varying_axes(main) else "snr_db"
    keys = [axis, "baseline"]
    spread = pd.concat(
        [g[[*keys, "psnr_gain_db", "mse_reduction_pct", "wins"]] for g in gains.values()]
    ).groupby(keys, sort=False)
    low, high = spread["psnr_gain_db"].min(), spread["psnr_gain_db"].max()
    wins = spread["wins"].sum()
    n = len(gains)
    lines = [
        f"| {LABELS.get(axis, axis)} | baseline | ISFR-UEP (dB) | baseline (dB) | PSNR gain (dB) "
        f"| PSNR gain (%) | MSE reduction (%) | gain over {n} seeds (dB) | seeds won |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, row in main.iterrows():
        key = (row[axis], row["baseline"])
        lines.append(
            f"| {row[axis]:g} | {row['baseline']} | {row['psnr_ref']:.2f} | {row['psnr_base']:.2f} "
            f"| {row['psnr_gain_db']:+.2f} [{row['psnr_gain_ci_low']:+.2f}, "
            f"{row['psnr_gain_ci_high']:+.2f}] | {row['psnr_gain_pct']:+.1f} "
            f"| {row['mse_reduction_pct']:.1f} [{row['mse_reduction_ci_low']:.1f}, "
            f"{row['mse_reduction_ci_high']:.1f}] | {low[key]:+.2f} … {high[key]:+.2f} "
            f"| {int(wins[key])}/{n} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    args = parser.parse_args(argv)
    for experiment in args.experiments:
        print(f"### {experiment}\n")
        print(experiment_table(args.root, experiment))
    return 0


if __name__ == "__main__":
    sys.exit(main())
