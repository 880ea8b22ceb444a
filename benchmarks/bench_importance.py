"""Benchmark of the importance estimators: wall and CPU time of ``fit`` (and ``reduce``) against
masking's, on the ViT codec at ``N = 16`` (issue 12: attention-based estimators should cost at
most 3x masking).

Every estimator registered in the ``importance`` family is built with its default options and
fitted on the same untrained ViT (``--dim``, ``--depth``, ``--heads``; ``N`` features of 32x32 RGB
images) and the same ``--images`` random images. An estimator that refuses the model (a
``ConfigError``) is listed as skipped. For those with a ``reduce`` step, ``reduce(keep=N/2)`` is
timed as well. Times are the median of ``--repeats`` runs after one warm-up run, on one core
(torch threads and BLAS pinned to 1); the ratio column divides by masking's median wall time.

Run ``python benchmarks/bench_importance.py --help``; the defaults take well under a minute on
one core. Weights are untrained: cost does not depend on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

if __name__ == "__main__":
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"

import torch  # noqa: E402

from channels.errors import ConfigError  # noqa: E402
from semcom.importance import IMPORTANCE, make_estimator  # noqa: E402
from semcom.models.build import build_model  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of ``fn()`` over ``repeats`` runs after a warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-features", type=int, default=16)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", help="also write every number to this path")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(
        "vit", args.n_features, dim=args.dim, depth=args.depth, heads=args.heads
    ).eval()
    x = torch.rand(args.images, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    keep = max(1, args.n_features // 2)
    rows = []
    for name in IMPORTANCE.names():
        est = make_estimator(name)
        try:
            fit_wall, fit_cpu = timed(lambda est=est: est.fit(model, x), args.repeats)
        except ConfigError as err:
            rows.append({"method": name, "skipped": str(err)})
            continue
        row = {"method": name, "fit_wall_s": fit_wall, "fit_cpu_s": fit_cpu}
        if hasattr(est, "reduce"):
            wall, cpu = timed(lambda est=est: est.reduce(model, x, keep), args.repeats)
            row |= {"reduce_wall_s": wall, "reduce_cpu_s": cpu}
        rows.append(row)
    base = next(r["fit_wall_s"] for r in rows if r["method"] == "masking")
    setup = f"ViT N={args.n_features}, dim={args.dim}, depth={args.depth}, heads={args.heads}"
    print(f"{setup}, {args.images} images, 1 thread, median of {args.repeats}; keep={keep}")
    print("| method | fit wall (s) | fit CPU (s) | x masking | reduce wall (s) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['method']} | skipped: {r['skipped']} | | | |")
            continue
        red = f"{r['reduce_wall_s']:.3f}" if "reduce_wall_s" in r else ""
        print(
            f"| {r['method']} | {r['fit_wall_s']:.3f} | {r['fit_cpu_s']:.3f} "
            f"| {r['fit_wall_s'] / base:.2f} | {red} |"
        )
    result = {"args": vars(args), "machine": platform.processor() or platform.machine()}
    result["rows"] = rows
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
