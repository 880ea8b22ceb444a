"""``semcom solve``: run an SI-UEP allocation method on a problem file or a random instance.

    semcom solve PROBLEM.yaml --method hierarchical --json
    semcom solve --random N K SEED --method ui-ep --json

Prints one JSON object (``--json``) with method, objective, selected (feature indices),
subchannel, modulation, power (per-symbol) and seconds, or a short table. ``exact`` adds its
certificate: optimal, lower_bound, gap and stopped_by (``--option time_limit=SECONDS``, default
60, bounds its wall time; stopped by it, the answer is the best allocation found, marked
``optimal: false`` unless the bound proves it optimal; the exit status is 0 either way).
``objective`` is the problem's own importance-weighted distortion (its weights and BER model)
of the returned allocation, so objectives of different methods compare directly. Degenerate
input that can still be solved (K = 0, budgets too small for one feature, P_tot = 0) gives the
"send nothing" solution; invalid input (negative power, non-finite weights, unknown method)
exits with status 2 and a one-line error.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from channels.errors import ConfigError

NAME = "solve"
HELP = "Solve an SI-UEP resource-allocation problem (selection, matching, modulation, power)."


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``semcom solve``."""
    from optim.methods import METHODS

    parser.add_argument("problem", nargs="?", help="problem YAML file (optim.Problem fields)")
    parser.add_argument(
        "--random",
        nargs=3,
        type=_int,
        metavar=("N", "K", "SEED"),
        help="solve a random instance with N features, K subchannels, this seed",
    )
    parser.add_argument(
        "--method",
        default="hierarchical",
        help=f"one of {', '.join(METHODS)} (default hierarchical)",
    )
    parser.add_argument(
        "--seed", type=_int, default=0, help="seed of randomised methods (default 0)"
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method option, repeatable (e.g. refine=false, patterns=all)",
    )
    parser.add_argument("--ber-model", default=None, help="override the BER model: exact or bound")
    group = parser.add_argument_group("random instances (--random)")
    group.add_argument("--fading", default="rayleigh", help="rayleigh, awgn or rician")
    group.add_argument("--profile", default="ordered", help="ordered, flat or random importance")
    group.add_argument("--snr-db", type=_float, default=10.0, help="SNR = P_tot/(K sigma^2), dB")
    group.add_argument("--eta", type=_float, default=0.5, help="S_max = eta N b / 2 (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _options(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"option: {item!r} is invalid; allowed: KEY=VALUE")
        try:
            out[key] = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"option: {item!r} is invalid; allowed: KEY=VALUE") from None
    return out


def _load_problem(args: argparse.Namespace):
    from optim.problem import Problem, random_problem

    if (args.problem is None) == (args.random is None):
        given = args.problem if args.random is None else [args.problem, *args.random]
        raise ConfigError(
            f"problem: {given!r} is invalid; allowed: either PROBLEM.yaml or --random N K SEED"
        )
    overrides = {} if args.ber_model is None else {"ber_model": args.ber_model}
    if args.random is not None:
        n, k, seed = args.random
        if seed < 0:
            raise ConfigError(f"seed: {seed!r} is invalid; allowed: an integer >= 0")
        return random_problem(
            n,
            k,
            seed,
            fading=args.fading,
            profile=args.profile,
            snr_db=args.snr_db,
            eta=args.eta,
            **overrides,
        )
    problem = Problem.from_yaml(args.problem)
    return problem.replace(**overrides) if overrides else problem


def _table(problem, result) -> str:
    alloc = result.allocation
    lines = [
        f"method {result.method}   objective {result.objective:.6g}   "
        f"seconds {result.seconds:.4g}   feasible {'yes' if result.feasible else 'NO'}",
        f"sent {alloc.n_selected}/{problem.n_features} features on "
        f"{problem.n_subchannels} subchannels; symbols {alloc.symbols_needed(problem)}/"
        f"{problem.symbol_budget:g}; power {alloc.power_used():.6g}/{problem.power_budget:.6g}",
    ]
    status = result.status
    if status is not None:
        stop = f"; stopped by {status['stopped_by']}" if status["stopped_by"] else ""
        proven = "proven optimal" if status["optimal"] else "NOT proven optimal"
        lines.append(
            f"{proven}: lower bound {status['lower_bound']:.6g}, gap {status['gap']:.3g}{stop}"
        )
    if alloc.n_selected == 0:
        lines.append("(send nothing)")
        return "\n".join(lines)
    lines.append(
        f"{'feature':>7}  {'weight':>9}  {'subch':>5}  {'gain':>8}  {'mod':<6}  {'power':>10}"
    )
    for f, k, m, p in zip(
        alloc.selected, alloc.subchannel, alloc.modulation, alloc.power, strict=True
    ):
        lines.append(
            f"{f:>7d}  {problem.weights[f]:>9.4g}  {k:>5d}  {problem.gains[k]:>8.4g}  "
            f"{m:<6}  {p:>10.4g}"
        )
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Load or draw the problem, solve it with ``--method``, print the result."""
    from optim.kernels import warm_up
    from optim.methods import METHODS, solve

    problem = _load_problem(args)
    options = _options(args.option)
    method = METHODS[args.method]
    warm_up()  # JIT / cache load outside the reported ``seconds`` (and ``time_limit``)
    if method.name == "exact":
        from optim.exact import warm_up as warm_up_exact

        warm_up_exact()
    if method.randomised and "seed" not in options:
        options["seed"] = args.seed
    result = solve(problem, method.name, **options)
    if args.json:
        print(json.dumps(result.to_dict(), allow_nan=False))
    else:
        print(_table(problem, result))
    return 0
