"""Benchmark of the importance estimators: fit wall time against masking on the ViT (issue 12).

Every estimator registered in the ``importance`` family (or those named with ``--methods``) is
fitted on the same untrained ViT codec (``build_model("vit", N)``: 3x32x32 input, dim 64,
2 blocks, 4 heads, ``L = 16``) and the same ``--images`` random calibration images. The time
of one ``fit`` is the median of ``--repeats`` runs after one warm-up run. The table gives the
wall time, the process CPU time (less sensitive to other jobs on a shared machine), and each
estimator's wall time as a multiple of masking's. A method that cannot run on the ViT is
listed with its error.

Run ``python benchmarks/bench_importance.py --help``. On the CPU the script pins torch to
``--threads`` threads (default 1) so that the figures are comparable between runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from channels.errors import ConfigError
from semcom.importance import IMPORTANCE, make_estimator
from semcom.models import build_model


def time_fit(method: str, model: torch.nn.Module, images: torch.Tensor, repeats: int) -> dict:
    """Median wall and process CPU seconds of ``make_estimator(method).fit(model, images)``."""
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    walls, cpus = [], []
    for run in range(repeats + 1):
        sync()
        w0, c0 = time.perf_counter(), time.process_time()
        make_estimator(method).fit(model, images)
        sync()
        if run:  # the first run is the warm-up
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="*", default=None, help="default: every registered")
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="write the numbers here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model("vit", args.n_features).eval().to(args.device)
    images = torch.rand(args.images, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    images = images.to(args.device)
    methods = args.methods or IMPORTANCE.names()
    if "masking" not in methods:
        methods = ["masking", *methods]
    rows: dict[str, dict] = {}
    for method in methods:
        try:
            rows[method] = time_fit(method, model, images, args.repeats)
        except ConfigError as err:
            rows[method] = {"error": str(err)}
    base = rows["masking"]["wall_s"]
    cpu = platform.processor() or platform.machine()
    device = torch.cuda.get_device_name() if args.device.startswith("cuda") else cpu
    print(
        f"N = {args.n_features}, {args.images} images, device {args.device} ({device}), "
        f"{args.threads} CPU thread(s), median of {args.repeats}\n"
    )
    print("| estimator | wall (s) | CPU (s) | wall / masking |")
    print("|---|---|---|---|")
    for method, row in rows.items():
        if "error" in row:
            print(f"| {method} | - | - | {row['error']} |")
            continue
        row["vs_masking"] = row["wall_s"] / base
        print(f"| {method} | {row['wall_s']:.3f} | {row['cpu_s']:.3f} | {row['vs_masking']:.2f} |")
    result = {
        "n_features": args.n_features,
        "images": args.images,
        "device": args.device,
        "device_name": device,
        "threads": args.threads,
        "repeats": args.repeats,
        "torch": torch.__version__,
        "rows": rows,
    }
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
