"""The tables of docs/results.md §10, from the results directory of
``semcom run scenarios/compression.yaml``.

Usage::

    python examples/compression_tables.py RESULTS_DIR

Prints markdown: (1) the pruners (and the uncompressed codec): per model and method, the
measured encoder size (non-zero parameters, parameters, effective FLOPs), the clean PSNR of the
compressed codec and the PSNR after the link with the run's 95% intervals at each SNR; (2) the
same for the quantisers against the average weight bits; (3) the paired PSNR loss of each
compressed scheme against its model's uncompressed codec (paired-t over the evaluation images).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from semcom.report import gain_table, load_results

QUANTISERS = ("uniform-quant", "rsq", "svdquant", "layerwise-quant")
REFERENCE = {"isfr": "isfr-uep", "conventional": "conv-uep"}
LABEL = {"isfr": "ISFR", "conventional": "conv"}


def _cell(mean: float, low: float, high: float) -> str:
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def _clean(directory: Path) -> dict[tuple[str, str], float]:
    """(model variant, scheme) -> clean PSNR of the scheme's codec."""
    importance = pd.read_csv(directory / "importance.csv")
    clean = importance.groupby("model")["clean_psnr_db"].first().to_dict()
    table = directory / "compression.csv"
    codecs = pd.read_csv(table) if table.exists() else pd.DataFrame(columns=["codec"])
    return clean | dict(zip(codecs["codec"], codecs["clean_psnr_db"], strict=True))


def _codec(row: pd.Series, scenario: dict) -> str:
    """The codec name of a results row (its variant, or ``variant+method{options}``)."""
    import json

    for entry in scenario["schemes"]:
        if entry["name"] == row["scheme"] and "compression" in entry:
            c = entry["compression"]
            options = json.dumps(c["options"], sort_keys=True, separators=(",", ":"))
            return f"{row['model']}+{c['method']}{options}"
    return row["model"]


def size_table(results: pd.DataFrame, clean: dict, scenario: dict, quantisers: bool) -> str:
    """One row per (model, scheme) of the pruners or of the quantisers, with the dense codec."""
    snrs = sorted(results["snr_db"].unique())
    size = (
        ["weight bits"]
        if quantisers
        else ["non-zero params", "params", "eff. MFLOPs"]
    )  # fmt: skip
    header = ["model", "scheme", *size, "clean dB", *[f"PSNR {s:g} dB" for s in snrs]]
    lines = ["| " + " | ".join(header) + " |", "|---|---" + "|---:" * (len(header) - 2) + "|"]
    kind = results["compression"].isin(QUANTISERS)
    chosen = results[(kind if quantisers else ~kind) | (results["compression"] == "none")]
    for model in ("isfr", "conventional"):
        rows = chosen[chosen["model"] == model]
        for scheme in dict.fromkeys(rows["scheme"]):
            at = rows[rows["scheme"] == scheme].set_index("snr_db")
            first = at.iloc[0]
            if quantisers:
                cells = [f"{first['encoder_weight_bits']:.2f}"]
            else:
                cells = [f"{int(first['encoder_nonzero_params'])}",
                         f"{int(first['encoder_params'])}",
                         f"{first['encoder_effective_flops'] / 1e6:.4f}"]  # fmt: skip
            psnr = [_cell(*at.loc[s, ["psnr_db", "psnr_ci_low", "psnr_ci_high"]]) for s in snrs]
            codec = _codec(first, scenario)
            lines.append("| " + " | ".join([LABEL[model], scheme, *cells,
                                            f"{clean[codec]:.2f}", *psnr]) + " |")  # fmt: skip
    return "\n".join(lines)


def gap_table(res) -> str:  # noqa: ANN001
    """Paired PSNR loss (dB): the model's uncompressed codec minus each compressed scheme."""
    results = res.results
    snrs = sorted(results["snr_db"].unique())
    header = ["model", "scheme", *[f"loss {s:g} dB" for s in snrs]]
    lines = ["| " + " | ".join(header) + " |", "|---|---" + "|---:" * len(snrs) + "|"]
    for model in ("isfr", "conventional"):
        rows = results[(results["model"] == model) & (results["compression"] != "none")]
        schemes = list(dict.fromkeys(rows["scheme"]))
        gains = gain_table(res, reference=REFERENCE[model], baselines=schemes)
        for scheme in schemes:
            cells = []
            for snr in snrs:
                g = gains[(gains["baseline"] == scheme) & (gains["snr_db"] == snr)].iloc[0]
                cells.append(f"{g['psnr_gain_db']:+.2f} [{g['psnr_gain_ci_low']:+.2f}, "
                             f"{g['psnr_gain_ci_high']:+.2f}]")  # fmt: skip
            lines.append("| " + " | ".join([LABEL[model], scheme, *cells]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the tables of one results directory."""
    import yaml

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    res = load_results(args.directory)
    scenario = yaml.safe_load((args.directory / "scenario.yaml").read_text())
    clean = _clean(args.directory)
    print("Pruning (size of the encoder):\n")
    print(size_table(res.results, clean, scenario, quantisers=False))
    print("\nQuantisation (average weight bits of the encoder):\n")
    print(size_table(res.results, clean, scenario, quantisers=True))
    print("\nPaired PSNR loss against the uncompressed codec of the same model:\n")
    print(gap_table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
