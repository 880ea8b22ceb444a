"""``semcom train-policy SCENARIO``: train the learned allocation policies a scenario names.

A scheme whose allocation method is ``rl:<kind>`` (:mod:`optim.learned.method`) decides with a
policy trained for its link's allocation problem: the template of every frame at a sweep point
(the importance weights and drop distortions of the scheme's model, the quantiser, the power
and symbol budgets of the point's SNR and ``eta``, the modulations), its ``K``, the kind and
the trainer config (the scheme's ``train`` option over the defaults). ``semcom run`` trains a
missing policy on first use; this command trains them all beforehand, the way ``semcom run``
will look them up:

1. train or reuse the scenario's models and measure their importance, as ``semcom run`` does
   (checkpoints in the scenario's output folder);
2. build the link of every sweep point of an ``rl:<kind>`` scheme (``--kind``: only those
   kinds) and find or train its policy (``checkpoint_dir`` and ``device`` from the scheme's
   options; ``--device`` replaces the device), each distinct policy once, with its progress
   on stderr;
3. print one line per policy: kind, ``N``, ``K``, the point, ``trained`` or ``reused``, file.

A scenario without ``rl:<kind>`` schemes, or a ``--kind`` it does not name, is a usage error
(exit status 2, one line).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from semcom.commands._scenario_args import add_scenario_arguments, load

NAME = "train-policy"
HELP = "Train the learned allocation policies (rl:<kind> methods) a scenario's schemes name."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``semcom train-policy``."""
    add_scenario_arguments(parser)
    parser.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        default=[],
        metavar="K",
        help="train only the policies of this objective (repeatable; default: every rl:<kind> "
        "of the scenario's schemes)",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:K or auto for training (default: the scheme's device option, "
        "else cpu)",
    )


def rl_schemes(scenario: Any, kinds: list[str]) -> dict[str, str]:
    """Scheme name -> kind of the scenario's ``rl:<kind>`` schemes (only ``kinds`` if given).

    Raises:
        ConfigError: no such scheme, or a kind in ``kinds`` that none of them has.
    """
    from channels.errors import ConfigError, fail

    found = {}
    for name in scenario.scheme_names():
        method = scenario.scheme(name).method
        if isinstance(method, str) and method.startswith("rl:"):
            found[name] = method.removeprefix("rl:")
    if not found:
        raise ConfigError(
            "schemes: none allocates with a learned policy; allowed: a scheme whose method is "
            "rl:<kind> (semcom methods lists them)"
        )
    named = sorted(set(found.values()))
    for kind in kinds:
        if kind not in named:
            allowed = "a kind of the scenario's rl: schemes (" + ", ".join(named) + ")"
            raise fail("kind", kind, allowed)
    return {n: k for n, k in found.items() if not kinds or k in kinds}


def run(args: argparse.Namespace) -> int:
    """Train or find every policy (module docstring); returns the exit status."""
    from optim.learned.env import resolve_device

    scenario = load(args)
    plan = rl_schemes(scenario, list(args.kinds))
    device = None if args.device is None else str(resolve_device(args.device))
    from optim.learned.checkpoints import policy_key
    from optim.learned.method import check_options, load_or_train

    start = time.perf_counter()
    links = scheme_links(scenario, plan)

    seen: set[str] = set()
    for values, link in links:
        kind = plan[values["scheme"]]
        options = dict(link.method_options)
        if device is not None:
            options["device"] = device
        config = check_options(options)["train"]
        key = policy_key(link.problem, link.n_subchannels, kind, config)
        if key in seen:
            continue
        seen.add(key)
        loaded = load_or_train(link.problem, link.n_subchannels, kind, **options)
        state = "trained" if loaded.trained else "reused"
        where = ", ".join(f"{k}={values[k]}" for k in ("snr_db", "eta", "n_subchannels"))
        head = f"rl:{kind}: N={link.problem.n_features} K={link.n_subchannels} ({where})"
        print(f"{head}: {state} -> {loaded.path}", flush=True)
    seconds = time.perf_counter() - start
    print(f"{len(seen)} policies for {len(plan)} schemes of {scenario.name} in {seconds:.1f} s")
    return 0


def scheme_links(scenario: Any, plan: dict[str, str]) -> list[tuple[dict[str, Any], Any]]:
    """``(point values, SemanticLink)`` of every sweep point of the schemes in ``plan``, with
    the models trained or reused and calibrated as ``semcom run`` does."""
    import os

    from semcom.link_task import LinkPointTask
    from semcom.prepare import calibrate, train_models, with_checkpoint_dir
    from semcom.runner import grid, resolve_device

    out = scenario.output_dir()
    ex = scenario.execution
    cores = os.cpu_count() or 1
    device = resolve_device(ex.device)
    configs = {
        v: with_checkpoint_dir(scenario.train_config(v), out / "checkpoints")
        for v in scenario.model_variants()
    }
    processes = max(1, min(ex.workers or cores, len(configs)))
    checkpoints = train_models(configs, ex.workers or cores, threads=max(1, cores // processes))
    calibration = calibrate(
        checkpoints, configs, scenario.data.eval_images, scenario.data.calibration_images,
        scenario.importance.method, scenario.importance.options, ex.seed, device,
        estimators=scenario.estimator_plan(), compressions=scenario.compression_plan(),
        reference=scenario.reference_config(),
    )  # fmt: skip
    task = LinkPointTask(scenario, calibration, device=device, threads=ex.threads)
    task.setup()
    out_links = []
    for point in grid(scenario):
        values = point.as_dict()
        if values["scheme"] in plan:
            out_links.append((values, task.link(point)))
    return out_links


__all__ = ["HELP", "NAME", "add_arguments", "rl_schemes", "run", "scheme_links"]
