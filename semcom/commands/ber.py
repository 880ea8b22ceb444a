"""``semcom ber``: Monte Carlo bit-error rate of uncoded modulation over AWGN or fading.

Prints one line per point (a JSON object with ``--json``): modulation, channel, snr_db (Es/N0 in
dB), ber, ci_low, ci_high, errors, bits, theory_ber, backend, seconds. A point still running
after 2 s shows a progress line on stderr (bits, errors, share done, time left; see
:mod:`semcom.commands._progress`), unless ``--no-progress``.
"""

from __future__ import annotations

import argparse
import json
import math

from channels.errors import ConfigError

NAME = "ber"
HELP = "Simulate the BER of a modulation over AWGN, Rayleigh or Rician fading (CPU or CUDA)."
MAX_COHERENCE = 2**31 - 1
MAX_BITS = 2**53
"""Largest ``--max-bits`` (the last integer a float holds exactly; months of simulation)."""
JSON_KEYS = ("modulation", "channel", "snr_db", "ber", "ci_low", "ci_high", "errors", "bits",
             "theory_ber", "backend", "seconds")  # fmt: skip


def _number(text: str) -> float:
    """Parse a float, accepting forms like 1e9; argparse reports failures as usage errors."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _seed(text: str) -> int:
    """Parse a decimal integer seed; a float or text is a usage error (exit 2)."""
    try:
        return int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``semcom ber``."""
    from channels.fading import FADING_MODELS
    from channels.names import MODULATION_NAMES

    parser.add_argument("--modulation", required=True, help=f"one of {', '.join(MODULATION_NAMES)}")
    parser.add_argument("--channel", default="awgn", help=f"one of {', '.join(FADING_MODELS)}")
    parser.add_argument(
        "--snr-db",
        type=_number,
        nargs="+",
        required=True,
        help="Es/N0 per complex symbol in dB (one or more points)",
    )
    parser.add_argument(
        "--rician-k",
        type=_number,
        default=None,
        help="Rician K-factor, linear (channel rician; default 1)",
    )
    parser.add_argument(
        "--coherence",
        type=_number,
        default=1,
        help="symbols per fading block (default 1: independent per symbol)",
    )
    parser.add_argument(
        "--csi-error-var",
        type=_number,
        default=0.0,
        help="channel-estimation error variance (default 0: perfect CSI)",
    )
    parser.add_argument(
        "--min-errors", type=_number, default=1000, help="stop at this many bit errors"
    )
    parser.add_argument(
        "--max-bits",
        type=_number,
        default=1e9,
        help="or at this many bits (at most 2**32 - 1 trials of 4096 symbols: 1.7e13 for bpsk; "
        "a CPU does roughly 1e7-1e8 bits/s, so 1e12 can take a day: progress shows on stderr)",
    )
    parser.add_argument(
        "--seed", type=_seed, default=0, help="integer seed, 0 <= seed < 2**64 (default 0)"
    )
    parser.add_argument("--confidence", type=_number, default=0.95, help="interval level")
    parser.add_argument(
        "--backend",
        default="auto",
        help="auto (CUDA when a GPU is present), cpu (Numba) or cuda (Numba CUDA)",
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress line on stderr (shown by default for points running over 2 s)",
    )
    # fmt: skip


def run(args: argparse.Namespace) -> int:
    """Validate every point first, then simulate and print them one by one."""
    from channels.montecarlo import check_ber_arguments, simulate_ber
    from semcom.commands._progress import PointProgress, progress_timing

    channel = str(args.channel).lower()
    rician_k = args.rician_k if args.rician_k is not None else (1.0 if channel == "rician" else 0.0)
    options = dict(
        rician_k=rician_k, coherence=args.coherence, csi_error_var=args.csi_error_var,
        min_errors=args.min_errors, max_bits=args.max_bits, seed=args.seed,
        confidence=args.confidence, backend=args.backend,
    )  # fmt: skip
    _check_limits(args)
    for snr in args.snr_db:  # fail before any work
        check_ber_arguments(args.modulation, channel, snr, **options)
    for name in ("coherence", "min_errors", "max_bits"):
        options[name] = int(options[name])
    after, every = progress_timing()
    if not args.json:
        print(f"{'snr_db':>8} {'ber':>11} {'ci_low':>11} {'ci_high':>11} {'theory':>11} "
              f"{'errors':>9} {'bits':>12} {'seconds':>8}")  # fmt: skip
    for snr in args.snr_db:
        show = None
        if not args.no_progress:
            show = PointProgress(f"semcom ber: snr_db {snr:g}", options["min_errors"],
                                 options["max_bits"], after=after, every=every)  # fmt: skip
        try:
            result = simulate_ber(args.modulation, channel, snr, progress=show, **options)
        finally:
            if show is not None:
                show.close()
        result = result.to_dict()
        if args.json:
            print(json.dumps({key: result[key] for key in JSON_KEYS}), flush=True)
        else:
            theory = result["theory_ber"]
            print(f"{snr:8.2f} {result['ber']:11.4e} {result['ci_low']:11.4e} "
                  f"{result['ci_high']:11.4e} {_fmt(theory):>11} {result['errors']:9d} "
                  f"{result['bits']:12d} {result['seconds']:8.3f}", flush=True)  # fmt: skip
    return 0


def _check_limits(args: argparse.Namespace) -> None:
    """The upper limits that :func:`channels.montecarlo.check_ber_arguments` leaves open.

    Raises:
        ConfigError: an SNR outside ``[-300, 300]`` dB (``10 ** (snr / 10)`` would overflow
            at ``1e308``), a K-factor above 1e6, ``--coherence`` above 2**31 - 1 or
            ``--max-bits`` above 2**53.
    """
    from semcom.limits import MAX_RICIAN_K, SNR_DB_LIMIT, snr_db_rule

    for snr in args.snr_db:
        if not -SNR_DB_LIMIT <= snr <= SNR_DB_LIMIT:
            raise ConfigError(f"snr_db: {snr!r} is invalid; allowed: {snr_db_rule()}")
    limits = (
        ("rician_k", args.rician_k, MAX_RICIAN_K),
        ("coherence", args.coherence, MAX_COHERENCE),
        ("max_bits", args.max_bits, MAX_BITS),
    )
    for name, value, high in limits:
        if value is not None and value > high:
            raise ConfigError(f"{name}: {value!r} is invalid; allowed: at most {high:.0f}")


def _fmt(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4e}"


__all__ = ["NAME", "HELP", "add_arguments", "run", "ConfigError"]
