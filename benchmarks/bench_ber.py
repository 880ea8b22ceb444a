"""BER Monte Carlo throughput: our fused Numba kernel against Sionna 2.x, same machine and run.

Measures simulated information bits per second for uncoded 16-QAM with hard (max-log) demapping:
(a) AWGN at Eb/N0 = 6 dB, (b) Rayleigh fading (independent per symbol, perfect CSI, zero-forcing
equalisation) at Eb/N0 = 10 dB. Peers: Sionna's BinarySource -> Mapper -> AWGN | FlatFadingChannel
-> Demapper chain, eager and under ``torch.compile``. Each figure is the median of ``--repeats``
timed runs after one warm-up run; every run simulates the same number of bits.

    python benchmarks/bench_ber.py --bits 2e8 --sionna-bits 2e7 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numba
import numpy as np
import torch

from channels.montecarlo import simulate_ber

EBNO_DB = {"awgn": 6.0, "rayleigh": 10.0}
BITS_PER_SYMBOL = 4


def esno_db(ebno_db: float) -> float:
    return ebno_db + 10 * np.log10(BITS_PER_SYMBOL)


def ours(channel: str, bits: int, seed: int) -> tuple[float, float]:
    """(seconds, ber) of our kernel for exactly ``bits`` bits (min_errors never reached)."""
    r = simulate_ber("16qam", channel, esno_db(EBNO_DB[channel]), min_errors=bits,
                     max_bits=bits, seed=seed)  # fmt: skip
    return r.seconds, r.ber


def sionna_chain(channel: str, batch: int):  # noqa: ANN201
    """A function running one batch through Sionna's chain and returning the bit-error count."""
    from sionna.phy.channel import AWGN, FlatFadingChannel
    from sionna.phy.mapping import BinarySource, Demapper, Mapper
    from sionna.phy.utils import ebnodb2no

    source, mapper = BinarySource(), Mapper("qam", BITS_PER_SYMBOL)
    demapper = Demapper("maxlog", "qam", BITS_PER_SYMBOL, hard_out=True)
    no = ebnodb2no(EBNO_DB[channel], BITS_PER_SYMBOL, 1.0)
    awgn, fading = AWGN(), FlatFadingChannel(1, 1, return_channel=True)

    def run() -> torch.Tensor:
        if channel == "awgn":  # one row of symbols (a contiguous layout torch.compile accepts)
            b = source([1, batch * BITS_PER_SYMBOL])
            y, no_eff = awgn(mapper(b), no), no
        else:  # FlatFadingChannel wants [batch, num_tx_ant]
            b = source([batch, BITS_PER_SYMBOL])
            y, h = fading(mapper(b), no)
            h = h[..., 0]
            y = y / h  # zero-forcing with perfect CSI
            no_eff = no / h.abs() ** 2
        b_hat = demapper(y, no_eff)
        return (b != b_hat).sum()

    return run


def time_sionna(channel: str, bits: int, batch: int, compiled: bool) -> tuple[float, float]:
    run = sionna_chain(channel, batch)
    if compiled:
        run = torch.compile(run)
    calls = max(1, int(bits // (batch * BITS_PER_SYMBOL)))
    run()  # compile / warm caches
    start = time.perf_counter()
    errors = sum(int(run()) for _ in range(calls))
    seconds = time.perf_counter() - start
    return seconds, errors / (calls * batch * BITS_PER_SYMBOL)


def median_rate(fn, bits: float, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    fn()  # warm-up (Numba compilation, torch.compile tracing)
    runs = [fn() for _ in range(repeats)]
    return bits / statistics.median(s for s, _ in runs), runs[-1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=float, default=2e8, help="bits per run of ours")
    parser.add_argument("--sionna-bits", type=float, default=2e7, help="bits per Sionna run")
    parser.add_argument("--batch", type=int, default=1 << 20, help="Sionna symbols per call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--channels", nargs="+", default=["awgn", "rayleigh"])
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--sionna-device", default="cpu", help="device of Sionna's chain")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()
    import sionna.phy

    sionna.phy.config.device = args.sionna_device  # Sionna picks a GPU by default when present

    info = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "numba_threads": numba.get_num_threads(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "sionna_device": args.sionna_device}  # fmt: skip
    print(json.dumps(info))
    table = []
    for channel in args.channels:
        bits, sbits = int(args.bits), int(args.sionna_bits)
        ours_rate, ours_ber = median_rate(lambda: ours(channel, bits, 1), bits, args.repeats)  # noqa: B023
        row = {"channel": channel, "ebno_db": EBNO_DB[channel], "ours_bit_s": ours_rate,
               "ours_ber": ours_ber}  # fmt: skip
        modes = [("eager", False)] + ([] if args.no_compile else [("compiled", True)])
        for mode, compiled in modes:
            fn = lambda c=compiled: time_sionna(channel, sbits, args.batch, c)  # noqa: B023, E731
            rate, ber = median_rate(fn, sbits, args.repeats)
            row[f"sionna_{mode}_bit_s"], row[f"sionna_{mode}_ber"] = rate, ber
            row[f"ratio_vs_{mode}"] = ours_rate / rate
        table.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"info": info, "rows": table}, fh, indent=2)


if __name__ == "__main__":
    main()
