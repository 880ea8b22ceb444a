"""``semcom plot``: figures, summary table and paired gain table of a results directory.

Reads only the files of ``semcom run`` (results.csv, per_image.csv, importance.csv). Writes the
figures of :func:`semcom.plots.plot_all` (default into ``RESULTS_DIR/plots/``), then prints the
summary table of ``--metric`` (one line per condition, one column per scheme) and the paired
gains of ``--reference`` over the uniform-importance baselines (:func:`semcom.report.gain_table`),
as plain text or, with ``--markdown``, as a GitHub table.
"""

from __future__ import annotations

import argparse

NAME = "plot"
HELP = "Draw the figures of a results directory and print its summary and paired gain tables."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``semcom plot``."""
    from semcom.plots import FORMATS
    from semcom.report import METRICS

    parser.add_argument("results_dir", metavar="RESULTS_DIR", help="output directory of semcom run")
    parser.add_argument("--out", default=None, help="figure directory (default RESULTS_DIR/plots)")
    parser.add_argument("--format", default="png", choices=FORMATS, help="figure file format")
    parser.add_argument("--dpi", type=int, default=120, help="resolution of png figures")
    parser.add_argument(
        "--reference",
        default=None,
        help="scheme whose paired gains are reported (default isfr-uep, skipped if absent)",
    )
    parser.add_argument(
        "--metric", default="psnr_db", choices=METRICS, help="metric of the summary table"
    )
    parser.add_argument("--markdown", action="store_true", help="print the gains as markdown")
    parser.add_argument("--no-figures", action="store_true", help="print the tables only")


def run(args: argparse.Namespace) -> int:
    """Load, plot, print; a user error raises ConfigError (exit 2 via semcom.cli)."""
    from channels.errors import fail
    from semcom.plots import plot_all
    from semcom.report import gain_summary, gain_table, load_results, summary_table, to_markdown
    from semcom.schemes import PROPOSED

    res = load_results(args.results_dir)
    reference = args.reference if args.reference is not None else PROPOSED
    if args.reference is not None and reference not in res.schemes:
        raise fail("--reference", reference, f"a scheme of the results ({', '.join(res.schemes)})")
    summary = summary_table(res, args.metric)  # fails on a bad option before writing anything
    gains = gain_table(res, reference=reference) if reference in res.schemes else None
    written = []
    if not args.no_figures:
        written = plot_all(res, args.out, fmt=args.format, dpi=args.dpi, reference=reference)
    print(summary)
    print()
    if gains is None:
        print(f"No paired gains: the results have no scheme {reference} (see --reference).")
    else:
        print(to_markdown(gains) if args.markdown else gain_summary(gains))
    if written:
        print()
        print(f"wrote {len(written)} figures to {written[0].parent}")
    return 0


__all__ = ["HELP", "NAME", "add_arguments", "run"]
