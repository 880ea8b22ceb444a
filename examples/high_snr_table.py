"""The 3-seed PSNR-vs-SNR table of ``scenarios/high_snr.yaml`` (docs/results.md, "No loss at
high SNR").

For every SNR and scheme: the mean PSNR over the training seeds with a 95% Student-t interval
over the seeds (``semcom.metrics.mean_ci``; each seed's value is that run's mean over its
evaluation images and draws). Then, for every ISFR scheme, its margin over the best
uniform-importance baseline, ``PSNR_ISFR - max(PSNR_ui-ep, PSNR_ui-opt, PSNR_passive-uep)``,
computed per seed (the best baseline of that seed and SNR), with its mean, interval and the
per-seed values.

Usage::

    python examples/high_snr_table.py RESULTS_ROOT [--experiment high_snr]

``RESULTS_ROOT`` holds ``<experiment>-seed<k>/`` directories written by
``semcom run scenarios/<experiment>.yaml --set execution.seed=<k> --out ...``. Prints markdown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from semcom.metrics import mean_ci
from semcom.report import load_results
from semcom.schemes import UNIFORM_IMPORTANCE_BASELINES


def seed_frames(root: Path, experiment: str) -> dict[int, pd.DataFrame]:
    """``{seed: results frame}`` of every ``<experiment>-seed<k>`` run under ``root``."""
    frames = {}
    for path in sorted(root.glob(f"{experiment}-seed*")):
        if (path / "results.csv").is_file():
            frames[int(path.name.rsplit("seed", 1)[1])] = load_results(path).results
    return frames


def _cell(values: list[float]) -> str:
    est = mean_ci(values)
    return f"{est.mean:.2f} [{est.low:.2f}, {est.high:.2f}]"


def psnr_table(frames: dict[int, pd.DataFrame]) -> str:
    """Markdown: mean PSNR over the seeds [95% t-interval over the seeds], SNR x scheme."""
    first = next(iter(frames.values()))
    schemes = list(dict.fromkeys(first["scheme"]))
    snrs = sorted(set(first["snr_db"]))
    lines = [
        "| SNR (dB) | " + " | ".join(schemes) + " |",
        "|---:|" + "---|" * len(schemes),
    ]
    for snr in snrs:
        cells = []
        for scheme in schemes:
            values = [
                float(f.loc[(f["snr_db"] == snr) & (f["scheme"] == scheme), "psnr_db"].iloc[0])
                for f in frames.values()
            ]
            cells.append(_cell(values))
        lines.append(f"| {snr:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def margin_table(frames: dict[int, pd.DataFrame]) -> str:
    """Markdown: each ISFR scheme's margin over the best baseline, per SNR (mean [interval]
    over the seeds, then the per-seed values)."""
    first = next(iter(frames.values()))
    schemes = [s for s in dict.fromkeys(first["scheme"]) if s not in UNIFORM_IMPORTANCE_BASELINES]
    snrs = sorted(set(first["snr_db"]))
    seeds = sorted(frames)
    lines = [
        "| SNR (dB) | scheme | margin over the best baseline (dB) | per seed "
        f"({', '.join(map(str, seeds))}) |",
        "|---:|---|---:|---|",
    ]
    for snr in snrs:
        for scheme in schemes:
            margins = []
            for seed in seeds:
                f = frames[seed]
                at = f[f["snr_db"] == snr].set_index("scheme")["psnr_db"]
                best = max(float(at[b]) for b in UNIFORM_IMPORTANCE_BASELINES)
                margins.append(float(at[scheme]) - best)
            per_seed = ", ".join(f"{m:+.2f}" for m in margins)
            lines.append(f"| {snr:g} | {scheme} | {_cell(margins)} | {per_seed} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--experiment", default="high_snr")
    args = parser.parse_args(argv)
    frames = seed_frames(args.root, args.experiment)
    if not frames:
        print(f"no {args.experiment}-seed*/results.csv under {args.root}", file=sys.stderr)
        return 2
    print(f"PSNR (dB), mean over {len(frames)} seeds [95% t-interval over the seeds]\n")
    print(psnr_table(frames))
    print("\nMargin of each ISFR scheme over the best of ui-ep, ui-opt, passive-uep (dB)\n")
    print(margin_table(frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
