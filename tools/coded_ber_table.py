"""Measure the default coded-BER table shipped as ``channels/data/coded_ber.csv``.

Every (modulation, 5G LDPC rate) entry of :mod:`channels.coded`, ``k = 512`` information bits
per block, Sionna's encoder/decoder and Gray mapper/demapper over AWGN
(:func:`channels.coded_table.measure_table`). Entries run in parallel processes.

Usage::

    python tools/coded_ber_table.py [--workers 2] [--max-blocks 400] [--min-errors 300] [--out PATH]
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from channels.coded import CODE_RATES, CODED_MODULATIONS, coded_entries
from channels.coded_table import DEFAULT_K, CodedBerTable, measure_table


def _one(args: tuple[str, int, int]) -> CodedBerTable:
    import torch

    torch.set_num_threads(1)
    entry, blocks, errors = args
    return measure_table([entry], DEFAULT_K, max_blocks=blocks, min_bit_errors=errors,
                         progress=lambda line: print(line, flush=True))  # fmt: skip


def main() -> None:
    """Measure every entry and write the CSV."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-blocks", type=int, default=400)
    parser.add_argument("--min-errors", type=int, default=300)
    default = Path(__file__).resolve().parents[1] / "channels" / "data" / "coded_ber.csv"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    entries = coded_entries(CODED_MODULATIONS, CODE_RATES)
    jobs = [(e, args.max_blocks, args.min_errors) for e in entries]
    table = CodedBerTable(DEFAULT_K)
    with ProcessPoolExecutor(args.workers) as pool:
        for done in as_completed([pool.submit(_one, job) for job in jobs]):
            table.points.update(done.result().points)
            table.to_csv(args.out)  # after every entry: a partial table survives a stop
    order = {e: i for i, e in enumerate(entries)}
    table.points = dict(sorted(table.points.items(), key=lambda kv: order[kv[0]]))
    table.to_csv(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
