"""``semcom check SCENARIO``: validate a scenario and run one tiny trial of every scheme.

Validation reports every problem of the file at once (one line each, exit status 2). The tiny
trial then builds every model variant untrained, measures its importance on a few calibration
images, builds the link of every sweep point (which validates each combination of condition,
scheme and allocation options), and sends two evaluation images through one channel draw of
every scheme. Nothing is trained or written; a scenario that passes runs with ``semcom run``.
"""

from __future__ import annotations

import argparse
import time

from semcom.commands._scenario_args import add_scenario_arguments, load

NAME = "check"
HELP = "Validate a scenario file and run one tiny trial of every scheme (no training)."

TRIAL_IMAGES = 2
CALIBRATION_IMAGES = 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``semcom check``."""
    add_scenario_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Validate, then the tiny trial; prints one summary line per scheme."""
    import torch

    from semcom.evaluation import LinkEvaluation
    from semcom.link_task import LinkPointTask
    from semcom.models import build_model
    from semcom.prepare import Calibration, allocation_inputs, split_test_set, test_split
    from semcom.runner import grid, resolve_device
    from semcom.scheme_estimators import fit_profile

    start = time.perf_counter()
    scenario = load(args)
    points = grid(scenario)
    print(f"scenario {scenario.name}: valid; {len(points)} points "
          f"({', '.join(f'{k} x{len(v)}' for k, v in scenario.axes().items())})")  # fmt: skip
    configs = {v: scenario.train_config(v) for v in scenario.model_variants()}
    first = next(iter(configs.values()))
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
        model = build_model(c.model, c.n_features, **c.model_options).to(device).eval()
        models[variant] = model
        weights[variant], raw[variant], drop[variant] = allocation_inputs(
            model, calibration_images, scenario.importance.method, scenario.importance.options
        )
        for spec in plan[variant]:  # the schemes' own estimators and selection steps
            if spec.key != default.key:
                profiles[(variant, spec.key)] = fit_profile(
                    variant, model, calibration_images, spec
                )
    calibration = Calibration({}, weights, raw, drop, dict.fromkeys(configs, float("nan")),
                              eval_idx, calib_idx, profiles)  # fmt: skip
    task = LinkPointTask(scenario, calibration, device=device)
    task.use_models(models, images)
    links = {}
    for point in points:  # every combination must build
        link = task.link(point)
        links.setdefault(point["scheme"], link)
    for name, link in links.items():
        evaluation = LinkEvaluation(link, images, compute_ssim="ssim" in scenario.metrics)
        evaluation.add_draw(0)
        r = evaluation.result()
        print(f"  {name:<26} ok: {r.n_images} images x 1 draw, PSNR {r.psnr_db:6.2f} dB "
              f"(untrained model), {r.mean_selected:.1f} features sent")  # fmt: skip
    print(f"check passed in {time.perf_counter() - start:.1f} s: "
          f"{len(links)} schemes, {len(configs)} model variants")  # fmt: skip
    return 0
