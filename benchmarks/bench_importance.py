"""Wall time of every registered importance estimator, relative to masking.

Every estimator in :data:`semcom.importance.IMPORTANCE` (whatever is registered when this runs,
so estimators added later are measured too) is built with its default options
(``make_estimator(name)``, overridable with ``--options``) and fitted on the same model and
images: the ViT and the CNN at ``N = --n-features`` (default 16), untrained (weights from
``torch.manual_seed(0)``), on ``--images`` random 3x32x32 images. A cell is the median of
``--repeats`` fits after ``--warmup`` untimed fits; a cell whose first timed fit exceeds
``--cell-budget`` seconds gets no further runs (its run count is printed). On a GPU every fit
ends with ``torch.cuda.synchronize()``.

An estimator that cannot work on a model (a white-box method on the CNN) raises ConfigError
in ``fit``; its cell shows ``n/a`` and the message goes to the notes. The ratio column is the
estimator's median over masking's on the same model. The iterative black-box methods
(ReAGent's stopping rule, TMC-Shapley's truncation and convergence test) stop on properties of
the game, so on a trained model their cost can differ from an untrained one's.

The machine (CPU model, core count, torch threads, GPU) is printed above the table;
``--json PATH`` also writes every number. Run ``python benchmarks/bench_importance.py --help``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, make_estimator
from semcom.models.build import build_model

MODELS = ("vit", "cnn")


def machine(device: torch.device) -> dict[str, Any]:
    """CPU model, core count, torch version and threads, and the GPU when one is used."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def time_fit(
    name: str, options: dict[str, Any], model: Any, images: torch.Tensor, args: argparse.Namespace
) -> dict[str, Any]:
    """Median wall time of ``make_estimator(name, **options).fit(model, images)``."""
    device = images.device

    def fit() -> Any:
        est = make_estimator(name, **options)
        start = time.perf_counter()
        est.fit(model, images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start, est

    try:
        for _ in range(args.warmup):
            fit()
    except ConfigError as err:
        return {"median_s": None, "runs": 0, "note": str(err)}
    times: list[float] = []
    est = None
    for _ in range(args.repeats):
        elapsed, est = fit()
        times.append(elapsed)
        if elapsed > args.cell_budget:
            break
    cell = {"median_s": statistics.median(times), "runs": len(times), "times_s": times}
    evaluations = getattr(est, "n_evaluations_", None)
    if evaluations is not None:
        cell["subsets_decoded"] = int(evaluations)
    return cell


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--images", type=int, default=64, help="images per fit")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--cell-budget", type=float, default=60.0, help="seconds per fit")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:i]")
    parser.add_argument("--only", nargs="+", help="estimator names (default: all registered)")
    parser.add_argument(
        "--options",
        default="{}",
        help='JSON {name: {option: value}}, e.g. \'{"data-shapley": {"n_permutations": 50}}\'',
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or args.images < 1:
        parser.error("--repeats >= 1, --warmup >= 0 and --images >= 1 are required")
    try:
        overrides = json.loads(args.options)
    except json.JSONDecodeError as err:
        parser.error(f"--options: not JSON ({err})")
    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    names = args.only or IMPORTANCE.names()
    for name in names:
        if name not in IMPORTANCE:
            parser.error(f"--only: {name!r} is not registered ({', '.join(IMPORTANCE.names())})")
    names = ["masking", *[name for name in names if name != "masking"]]  # the reference first

    info = machine(device)
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    print(
        f"N = {args.n_features}, {args.images} images 3x32x32, median of {args.repeats} fits "
        f"after {args.warmup} warm-up, untrained models (torch.manual_seed(0))\n"
    )
    results: dict[str, dict[str, Any]] = {}
    for kind in args.models:
        torch.manual_seed(0)
        model = build_model(kind, args.n_features).to(device).eval()
        images = torch.rand(args.images, 3, 32, 32, generator=torch.Generator().manual_seed(1)).to(
            device
        )
        for name in names:
            cell = time_fit(name, overrides.get(name, {}), model, images, args)
            results.setdefault(name, {})[kind] = cell
            shown = "n/a" if cell["median_s"] is None else f"{cell['median_s']:.4f} s"
            print(f"  {kind:4s} {name:22s} {shown}", file=sys.stderr)

    header = ["estimator", "paper"]
    for kind in args.models:
        header += [f"{kind} (s)", f"{kind} / masking", f"{kind} runs"]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join(["---"] * 2 + ["---:"] * (3 * len(args.models))) + "|")
    notes = []
    for name in names:
        row = [name, IMPORTANCE.info(name).paper]
        for kind in args.models:
            cell = results[name][kind]
            base = results["masking"][kind]["median_s"]
            if cell["median_s"] is None:
                row += ["n/a", "", "0"]
                notes.append(f"{name} on {kind}: {cell['note']}")
                continue
            ratio = cell["median_s"] / base if base else float("nan")
            cell["ratio_to_masking"] = ratio
            row += [f"{cell['median_s']:.4f}", f"{ratio:.2f}x", str(cell["runs"])]
        print("| " + " | ".join(row) + " |")
    for note in notes:
        print(f"- {note}")
    if args.json:
        payload = {"machine": info, "args": vars(args) | {"json": str(args.json)}}
        payload["results"] = results
        args.json.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
