"""The tables of docs/results.md §9, from the results directory of
``semcom run scenarios/importance_methods.yaml``.

Usage::

    python examples/importance_methods_tables.py RESULTS_DIR

Prints markdown: (1) PSNR after the link with the run's intervals per estimator, model and SNR;
(2) the paired PSNR gap of the reference ``isfr-uep`` over each conventional-model scheme
(paired-t intervals over the evaluation images, :func:`semcom.report.gain_table`);
(3) per estimator and model, the fit's wall time and the ordering quality of ``ordering.csv``;
(4) the selection-step schemes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from semcom.report import gain_table, load_results

REFERENCE = "isfr-uep"


def _cell(mean: float, low: float, high: float) -> str:
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def _estimators(results: pd.DataFrame) -> list[str]:
    plain = results[(results["selection"] == "none")]
    return list(dict.fromkeys(plain["estimator"]))


def psnr_table(results: pd.DataFrame) -> str:
    """Rows: estimator; columns: model × SNR, each ``mean [low, high]`` dB."""
    snrs = sorted(results["snr_db"].unique())
    plain = results[results["selection"] == "none"]
    header = ["estimator"] + [f"{m} {s:g} dB" for m in ("conv", "ISFR") for s in snrs]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for est in _estimators(results):
        cells = [est]
        for model in ("conventional", "isfr"):
            for snr in snrs:
                row = plain[(plain["estimator"] == est) & (plain["model"] == model)
                            & (plain["snr_db"] == snr)]  # fmt: skip
                cells.append(
                    ""
                    if row.empty
                    else _cell(
                        *row.iloc[0][["psnr_db", "psnr_ci_low", "psnr_ci_high"]]
                    )  # fmt: skip
                )
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gap_table(res) -> str:  # noqa: ANN001
    """Paired PSNR gain of isfr-uep over every conventional-model scheme, per SNR."""
    results = res.results
    conv = [s for s in dict.fromkeys(results["scheme"])
            if results[results["scheme"] == s]["model"].iloc[0] == "conventional"]  # fmt: skip
    gains = gain_table(res, reference=REFERENCE, baselines=conv)
    snrs = sorted(gains["snr_db"].unique())
    header = ["conventional scheme"] + [f"{s:g} dB" for s in snrs]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * len(snrs) + "|"]
    for scheme in conv:
        cells = [scheme]
        for snr in snrs:
            g = gains[(gains["baseline"] == scheme) & (gains["snr_db"] == snr)].iloc[0]
            cells.append(f"{g['psnr_gain_db']:+.2f} [{g['psnr_gain_ci_low']:+.2f}, "
                         f"{g['psnr_gain_ci_high']:+.2f}]")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ordering_table(directory: Path) -> str:
    """Per estimator: wall time, ρ, insertion and deletion AUC on each model."""
    table = pd.read_csv(directory / "ordering.csv")
    header = ["estimator"] + [f"{m} {c}" for m in ("conv", "ISFR")
                              for c in ("time (s)", "ρ", "ins. AUC", "del. AUC")]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * 8 + "|"]
    for est in dict.fromkeys(table["estimator"]):
        cells = [est]
        for model in ("conventional", "isfr"):
            row = table[(table["estimator"] == est) & (table["model"] == model)]
            if row.empty:
                cells += [""] * 4
                continue
            r = row.iloc[0]
            time = "–" if r["estimator"] == "index-order" else f"{r['seconds']:.2f}"
            cells += [time, f"{r['spearman']:+.2f}", f"{r['insertion_auc']:.3f}",
                      f"{r['deletion_auc']:.3f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def selection_table(results: pd.DataFrame) -> str:
    """The selection-step schemes next to the same weights without the step."""
    chosen = results[(results["selection"] != "none")
                     | (results["scheme"] == "conv-masking")]  # fmt: skip
    snrs = sorted(results["snr_db"].unique())
    header = ["scheme", "keep"] + [f"{s:g} dB" for s in snrs] + ["features sent (0 dB)"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for scheme in dict.fromkeys(chosen["scheme"]):
        rows = chosen[chosen["scheme"] == scheme]
        cells = [scheme, str(int(rows["keep"].iloc[0]))]
        for snr in snrs:
            r = rows[rows["snr_db"] == snr].iloc[0]
            cells.append(_cell(r["psnr_db"], r["psnr_ci_low"], r["psnr_ci_high"]))
        zero = rows[rows["snr_db"] == 0.0]
        cells.append("" if zero.empty else f"{zero['mean_selected'].iloc[0]:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results_dir", type=Path)
    args = parser.parse_args(argv)
    res = load_results(args.results_dir)
    print("PSNR (dB) after the link, mean [95% interval]\n")
    print(psnr_table(res.results))
    print(f"\nPaired PSNR gain of {REFERENCE} (dB) [95% interval]\n")
    print(gap_table(res))
    print("\nWall time and ordering quality\n")
    print(ordering_table(args.results_dir))
    print("\nSelection step\n")
    print(selection_table(res.results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
