"""The tables of docs/results.md §12 and §13, from the results directories of
``semcom run scenarios/adaptation.yaml`` and ``semcom run scenarios/robustness.yaml``.

Usage::

    python examples/training_tables.py adaptation RESULTS_DIR
    python examples/training_tables.py robustness RESULTS_DIR

``adaptation``: per adaptation method and number of epochs, the trainable parameters and the
optimiser steps (``models.csv``), the PSNR at each SNR with the run's 95% interval, and the
paired PSNR gain over the codec trained at 10 dB without adaptation (paired-t over the
evaluation images). ``robustness``: per scheme, the PSNR at each SNR with its interval, then
the paired gain of each scheme over plain ISFR training (``isfr-uep``) and over ``ui-ep``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from semcom.report import gain_table, load_results

ADAPTATION_REFERENCE = "trained-at-10db"


def _cell(mean: float, low: float, high: float, signed: bool = False) -> str:
    f = "+.2f" if signed else ".2f"
    return f"{mean:{f}} [{low:{f}}, {high:{f}}]"


def _gain_cells(res, reference: str, scheme: str, snrs: list[float]) -> list[str]:  # noqa: ANN001
    """Paired gains of ``reference`` over ``scheme`` per SNR, sign flipped: ``scheme`` minus
    ``reference``."""
    gains = gain_table(res, reference=reference, baselines=[scheme])
    cells = []
    for snr in snrs:
        g = gains[gains["snr_db"] == snr].iloc[0]
        cells.append(
            _cell(-g["psnr_gain_db"], -g["psnr_gain_ci_high"], -g["psnr_gain_ci_low"], True)
        )
    return cells


def adaptation_table(directory: Path) -> str:
    """One row per adapted scheme (and the unadapted reference)."""
    res = load_results(directory)
    results = res.results
    models = pd.read_csv(directory / "models.csv").set_index("model")
    snrs = sorted(results["snr_db"].unique())
    header = ["scheme", "adapter", "method", "trainable params", "steps",
              *[f"PSNR {s:g} dB" for s in snrs], *[f"gain {s:g} dB" for s in snrs]]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---|---|---" + "|---:" * (len(header) - 3) + "|"]
    for scheme in dict.fromkeys(results["scheme"]):
        at = results[results["scheme"] == scheme].set_index("snr_db")
        m = models.loc[at.iloc[0]["model"]]
        psnr = [_cell(*at.loc[s, ["psnr_db", "psnr_ci_low", "psnr_ci_high"]]) for s in snrs]
        if scheme == ADAPTATION_REFERENCE:
            gains, trainable, steps = ["—"] * len(snrs), "—", "0"
        else:
            gains = _gain_cells(res, ADAPTATION_REFERENCE, scheme, snrs)
            trainable, steps = f"{int(m['trainable_parameters'])}", f"{int(m['steps'])}"
        lines.append("| " + " | ".join([scheme, str(m["adapter"]), str(m["training_method"]),
                                        trainable, steps, *psnr, *gains]) + " |")  # fmt: skip
    return "\n".join(lines)


def robustness_tables(directory: Path) -> str:
    """PSNR per scheme and SNR, then the paired gains over isfr-uep and over ui-ep."""
    res = load_results(directory)
    results = res.results
    snrs = sorted(results["snr_db"].unique())
    schemes = list(dict.fromkeys(results["scheme"]))
    header = ["scheme", *[f"{s:g} dB" for s in snrs]]
    rule = "|---" + "|---:" * len(snrs) + "|"
    out = ["PSNR (dB) after the link, mean [95% interval]:", "",
           "| " + " | ".join(header) + " |", rule]  # fmt: skip
    for scheme in schemes:
        at = results[results["scheme"] == scheme].set_index("snr_db")
        cells = [_cell(*at.loc[s, ["psnr_db", "psnr_ci_low", "psnr_ci_high"]]) for s in snrs]
        out.append("| " + " | ".join([scheme, *cells]) + " |")
    for reference in ("isfr-uep", "ui-ep"):
        out += ["", f"Paired PSNR gain (dB) of each scheme over {reference}:", "",
                "| " + " | ".join(header) + " |", rule]  # fmt: skip
        for scheme in schemes:
            if scheme != reference:
                cells = _gain_cells(res, reference, scheme, snrs)
                out.append("| " + " | ".join([scheme, *cells]) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Print the tables of one results directory."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("adaptation", "robustness"))
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.experiment == "adaptation":
        print(adaptation_table(args.directory))
    else:
        print(robustness_tables(args.directory))
    return 0


if __name__ == "__main__":
    sys.exit(main())
