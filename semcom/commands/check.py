"""``semcom check SCENARIO``: validate a scenario and run one tiny trial of every scheme.

Validation reports every problem of the file at once (one line each, exit status 2). The tiny
trial then builds every model variant untrained, measures its importance on a few calibration
images, builds the link of every sweep point (which validates each combination of condition,
scheme and allocation options), and sends two evaluation images through one channel draw of
every scheme. Nothing is trained or written; a scenario that passes runs with ``semcom run``.

The trial is bounded whatever the scenario: it uses :data:`TRIAL_IMAGES` evaluation and
:data:`CALIBRATION_IMAGES` calibration images, the models are within the size bound of
:mod:`semcom.models.size`, and it stops at a wall-clock budget (``--trial-seconds``, default
:data:`TRIAL_SECONDS`). A large scenario (``model.n_features: 4096`` makes the importance and
every allocation slow) is then reported valid, with the step the trial had reached and exit
status 0; its steps will be as slow in ``semcom run``.
"""

from __future__ import annotations

import argparse
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from semcom.commands._scenario_args import add_scenario_arguments, load

NAME = "check"
HELP = "Validate a scenario file and run one tiny trial of every scheme (no training)."

TRIAL_IMAGES = 2
CALIBRATION_IMAGES = 8
TRIAL_SECONDS = 30.0
MAX_TRIAL_SECONDS = 86_400.0


class TrialTimeout(Exception):
    """The trial ran past its budget (raised in the main thread by ``SIGALRM``)."""


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_TRIAL_SECONDS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is invalid; allowed: a number of seconds in [0, {MAX_TRIAL_SECONDS:g}]"
        )
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``semcom check``."""
    add_scenario_arguments(parser)
    parser.add_argument(
        "--trial-seconds",
        type=_seconds,
        default=TRIAL_SECONDS,
        metavar="S",
        help=f"wall-clock budget of the tiny trial (default {TRIAL_SECONDS:g}; 0: validate only)",
    )


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`TrialTimeout` in the block once ``seconds`` of wall time have passed.

    Uses ``SIGALRM`` (a Python handler runs between bytecodes, so a long NumPy, torch or Numba
    call finishes first); where there is none (Windows, or not the main thread) the block runs
    unbounded. The previous handler is restored, and an enclosing deadline's timer resumes with
    the time it had left.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise TrialTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    start = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:  # the enclosing timer, less the time spent here (at least 1 ms)
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


def run(args: argparse.Namespace) -> int:
    """Validate, then the tiny trial; prints one summary line per scheme."""
    from semcom.runner import grid

    start = time.perf_counter()
    scenario = load(args)
    points = grid(scenario)
    axes = ", ".join(f"{k} x{len(v)}" for k, v in scenario.axes().items())
    print(f"scenario {scenario.name}: valid; {len(points)} points ({axes})", flush=True)
    if args.trial_seconds == 0:
        return 0
    step = ["starting"]
    try:
        with deadline(args.trial_seconds):
            links, variants = _trial(scenario, points, step)
    except TrialTimeout:
        print(f"tiny trial stopped at its {args.trial_seconds:g} s budget while {step[0]} "
              f"(N = {scenario.model.n_features} features, {len(points)} points): the scenario "
              "is valid, but each step is slow and will be as slow in semcom run; "
              "--trial-seconds S gives the trial more time", flush=True)  # fmt: skip
        return 0
    print(f"check passed in {time.perf_counter() - start:.1f} s: "
          f"{links} schemes, {variants} model variants")  # fmt: skip
    return 0


def _trial(scenario: Any, points: list, step: list[str]) -> tuple[int, int]:
    """The tiny trial; ``step[0]`` names what it is doing. Returns (schemes, model variants)."""
    import torch

    from semcom.evaluation import LinkEvaluation
    from semcom.link_task import LinkPointTask, reference_model
    from semcom.models import build_model
    from semcom.models.build import at_input_shape
    from semcom.prepare import Calibration, allocation_inputs, split_test_set, test_split
    from semcom.runner import resolve_device
    from semcom.scheme_compression import compress_codec, dense_size
    from semcom.scheme_estimators import fit_profile
    from semcom.separate.task import SeparateOptions, make_link

    step[0] = "reading the test split"
    configs = {v: scenario.train_config(v) for v in scenario.model_variants()}
    first = next(iter(configs.values()), scenario.reference_config())
    test = test_split(first)
    eval_idx, calib_idx = split_test_set(
        len(test), scenario.data.eval_images, scenario.data.calibration_images,
        scenario.execution.seed,
    )  # fmt: skip
    images = test.images[torch.from_numpy(eval_idx[:TRIAL_IMAGES])]
    calibration_images = test.images[torch.from_numpy(calib_idx[:CALIBRATION_IMAGES])]
    device = resolve_device(scenario.execution.device)
    torch.manual_seed(scenario.execution.seed)
    models, weights, raw, drop, profiles = {}, {}, {}, {}, {}
    plan, default = scenario.estimator_plan(), scenario.default_estimator()
    for variant, c in configs.items():
        step[0] = f"building the {variant} model"
        model = build_model(c.model, c.n_features, **c.model_options).to(device).eval()
        model = at_input_shape(model, images.shape[1:])  # photos: test crops > train patches
        models[variant] = model
        step[0] = f"measuring the importance of the {variant} model"
        weights[variant], raw[variant], drop[variant] = allocation_inputs(
            model, calibration_images, scenario.importance.method, scenario.importance.options
        )
        for spec in plan[variant]:  # the schemes' own estimators and selection steps
            if spec.key != default.key:
                profiles[(variant, spec.key)] = fit_profile(
                    variant, model, calibration_images, spec
                )
    codecs, sizes = {}, {v: dense_size(m) for v, m in models.items()}
    for name, (variant, spec) in scenario.compression_plan().items():
        step[0] = f"compressing the {variant} model with {spec.method}"
        codecs[name] = compress_codec(variant, models[variant], calibration_images, spec)
        models[name], sizes[name] = codecs[name].load(device), codecs[name].size
        weights[name], raw[name], drop[name] = allocation_inputs(
            models[name], calibration_images, scenario.importance.method,
            scenario.importance.options,
        )  # fmt: skip
        for est in plan[name]:
            if est.key != default.key:
                profiles[(name, est.key)] = fit_profile(name, models[name], calibration_images,
                                                        est)  # fmt: skip
    calibration = Calibration({}, weights, raw, drop, dict.fromkeys(models, float("nan")),
                              eval_idx, calib_idx, profiles, codecs=codecs,
                              sizes=sizes)  # fmt: skip
    task = LinkPointTask(scenario, calibration, device=device)
    task.use_models(models, images)
    task.use_separate(calibration_images.mean(dim=0), calibration_images)  # trial: no train split
    task.use_switch(calibration_images)
    if not models:  # separate schemes only: the budget's N and L of the untrained model
        task.use_budget_model(reference_model(first, images.shape[1:]))
    links = {}
    for i, point in enumerate(points):  # every combination must build
        step[0] = f"building the link of point {i + 1} of {len(points)}"
        scheme = scenario.scheme(point["scheme"])
        if scheme.separate is not None:  # its first pair: no pair search in the trial
            values = point.as_dict()
            options = SeparateOptions.from_dict(scheme.separate_options)
            link = make_link(scheme.separate, calibration_images.mean(dim=0),
                             task.symbol_budget(values), values, values["scheme"],
                             options.rates[0], options.modulations[0], options,
                             task.fading_point(values, options.fading))  # fmt: skip
        else:
            link = task.link(point)
        links.setdefault(point["scheme"], link)
    for name, link in links.items():
        step[0] = f"sending the trial images with {name}"
        evaluation = LinkEvaluation(link, images, compute_ssim="ssim" in scenario.metrics,
                                    compute_ms_ssim="ms_ssim" in scenario.metrics)  # fmt: skip
        evaluation.add_draw(0)
        r = evaluation.result()
        codec = scenario.scheme(name).separate
        if codec is not None:
            pair = f"rate {link.rate:.3g}, {link.modulation}"
            pair = "capacity bound" if codec == "capacity" else pair
            what = f"(separate: {pair}), {link.failures} of {link.frames} frames failed"
        else:
            what = f"(untrained model), {r.mean_selected:.1f} features sent"
        print(f"  {name:<26} ok: {r.n_images} images x 1 draw, PSNR {r.psnr_db:6.2f} dB {what}",
              flush=True)  # fmt: skip
    return len(links), len(configs)
