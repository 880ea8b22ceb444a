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

from channels.errors import ConfigError, check_int, check_real

MAX_ETA = 100.0
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
        help="method option, repeatable (e.g. refine=false, patterns=all, time_limit=inf)",
    )
    parser.add_argument("--ber-model", default=None, help="override the BER model: exact or bound")
    group = parser.add_argument_group("random instances (--random)")
    group.add_argument("--fading", default="rayleigh", help="rayleigh, awgn or rician")
    group.add_argument("--profile", default="ordered", help="ordered, flat or random importance")
    group.add_argument("--snr-db", type=_float, default=10.0, help="SNR = P_tot/(K sigma^2), dB")
    group.add_argument("--eta", type=_float, default=0.5, help="S_max = eta N b / 2 (default 0.5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


_INFINITE = ("inf", "+inf", "-inf", "infinity", "+infinity", "-infinity")
"""Option values read as a float infinity besides YAML's ``.inf`` (``float`` accepts them)."""


def _options(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` items as a dict; each value read as YAML 1.2 (``refine=false``,
    ``refine_steps=[power, matching]``), and ``inf``/``-inf`` as the float infinities."""
    import yaml

    from semcom.scenario.yaml12 import load_yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"option: {item!r} is invalid; allowed: KEY=VALUE")
        try:
            out[key] = load_yaml(value) if value.strip() else None
        except yaml.YAMLError:
            raise ConfigError(f"option: {item!r} is invalid; allowed: KEY=VALUE") from None
        if isinstance(out[key], str) and out[key].strip().lower() in _INFINITE:
            # YAML spells infinity ".inf"; "time_limit=inf" is what a user types
            out[key] = float(out[key])
    return out


def _check_random(n: int, k: int, seed: int, snr_db: float, eta: float) -> None:
    """Ranges of a random instance: ``N`` in 0..4096, ``K`` in 0..4096, a seed in
    ``0..2**64 - 1``, ``snr_db`` in [-300, 300] (so that ``10 ** (snr_db / 10)`` is finite)
    and ``eta`` in [0, 100]."""
    from semcom.limits import MAX_FEATURES, MAX_SUBCHANNELS, SNR_DB_LIMIT, snr_db_rule

    check_int("N", n, 0, MAX_FEATURES)
    check_int("K", k, 0, MAX_SUBCHANNELS)
    check_int("seed", seed, 0, 2**64 - 1, allowed="an integer in 0..2**64 - 1")
    check_real("snr_db", snr_db, -SNR_DB_LIMIT, SNR_DB_LIMIT, allowed=snr_db_rule())
    check_real("eta", eta, 0, MAX_ETA, allowed=f"a number in [0, {MAX_ETA:g}]")


def _load_problem(args: argparse.Namespace):
    from optim.problem import random_problem

    if (args.problem is None) == (args.random is None):
        given = args.problem if args.random is None else [args.problem, *args.random]
        raise ConfigError(
            f"problem: {given!r} is invalid; allowed: either PROBLEM.yaml or --random N K SEED"
        )
    overrides = {} if args.ber_model is None else {"ber_model": args.ber_model}
    if args.random is not None:
        n, k, seed = args.random
        _check_random(n, k, seed, args.snr_db, args.eta)
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
    problem = _read_problem(args.problem)
    return problem.replace(**overrides) if overrides else problem


def _read_problem(path: str):
    """The problem of a YAML file, read like a scenario file (YAML 1.2 core schema, at most
    1 MiB, limits on nesting and aliases), so that no file ends in a traceback or a hang."""
    from collections.abc import Mapping

    import yaml

    from optim.problem import Problem
    from semcom.scenario.yaml12 import MAX_FILE_BYTES, load_yaml

    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise ConfigError(f"problem: {path!r} cannot be read ({reason})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"problem: {path!r} is invalid; allowed: at most {MAX_FILE_BYTES} bytes")
    try:
        raw = load_yaml(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"problem: {path!r} is invalid; allowed: a UTF-8 text file") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"problem: {path!r} is not valid YAML{line} ({problem})") from None
    if isinstance(raw, Mapping) and "problem" in raw and len(raw) == 1:
        raw = raw["problem"]
    return Problem.from_dict(raw)


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
