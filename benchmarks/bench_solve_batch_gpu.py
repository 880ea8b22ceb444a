"""``optim.solve_batch`` on the GPU (``backend="cuda"``) against the CPU backend (all cores).

For the template ``random_problem(16, 16, seed=0)`` and Rayleigh gains
(``default_rng(1).exponential``), per batch size ``B`` and method: frames/s of the CPU backend
(every core), of the CUDA backend with the host<->device transfers (NumPy gains in, NumPy
results out) and without them (gains already on the device, results left there), each the
median of ``--repeats`` runs after a warm-up (compilation), and the number of frames on which
both backends agree (same selection, subchannels and modulations, objective within 1e-9
relative). Then the largest ``N = K`` (of ``--sizes``) at which 4,096 frames of
``hierarchical`` with ``refine=False`` (and, with ``--cuda-refined``, with its defaults)
solve within 1 s on the GPU (whole call, transfers included; prefixes with more monotone
patterns than ``max_patterns`` use ``patterns="all"``). The refined family runs on the GPU only
with ``--cuda-refined``: it is correct there but slow (:mod:`optim.batch.cuda`).

Needs only NumPy, Numba and Numba-CUDA. ``--smoke`` runs every step with tiny sizes, also
under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), to check the script itself.

Usage::

    python benchmarks/bench_solve_batch_gpu.py [--frames 4096 65536] [--repeats 3]
        [--json results.json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import numba
import numpy as np

import optim
from channels.errors import ConfigError
from optim.problem import random_problem

METHODS: list[tuple[str, dict[str, Any]]] = [
    ("hierarchical", {}),
    ("hierarchical", {"refine": False}),
    ("passive", {"refine": False}),
    ("ui-opt", {"refine": False}),
    ("hungarian", {"refine": False}),
    ("equal-power", {"refine": False}),
    ("random-matching", {"refine": False, "seed": 1}),
    ("lowest-order", {}),
    ("ui-ep", {"seed": 1}),
]
"""Hierarchical (default: refinement on; and refine=False) and the baselines."""


def _label(method: str, options: dict[str, Any]) -> str:
    extra = ", ".join(f"{k}={v}" for k, v in options.items())
    return f"{method} ({extra})" if extra else method


def _median_time(fn, repeats: int) -> float:  # noqa: ANN001
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return float(np.median(runs))


def _agreement(a, b) -> int:  # noqa: ANN001
    same = (
        (a.selected == b.selected).all(1)
        & (a.subchannel == b.subchannel).all(1)
        & (a.modulation == b.modulation).all(1)
        & np.isclose(a.objective, b.objective, rtol=1e-9, atol=0)
    )
    return int(same.sum())


def _device_info() -> dict[str, Any]:
    from numba import cuda

    info: dict[str, Any] = {"simulator": bool(numba.config.ENABLE_CUDASIM)}
    if not info["simulator"]:
        dev = cuda.get_current_device()
        info["gpu"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
    return info


def bench_methods(template, frames: int, repeats: int, cpu_frames: int,
                  cuda_refined: bool) -> list[dict]:  # noqa: ANN001  # fmt: skip
    """Frames/s per method on CPU and CUDA (with and without transfers) and the agreement."""
    from numba import cuda

    gains = np.random.default_rng(1).exponential(size=(frames, template.n_subchannels))
    g_dev = cuda.to_device(gains)
    rows = []
    for method, options in METHODS:
        row: dict[str, Any] = {"method": _label(method, options), "frames": frames}
        n_cpu = min(frames, cpu_frames)
        optim.solve_batch(template, gains[:4], method, **options)  # compile / load
        holder: dict[str, Any] = {}

        def cpu_run(m=method, o=options, n=n_cpu, h=holder) -> None:  # noqa: ANN001
            h["cpu"] = optim.solve_batch(template, gains[:n], m, **o)

        t = _median_time(cpu_run, repeats)
        row["cpu_frames"] = n_cpu
        row["cpu_fps"] = n_cpu / t
        refined = method not in ("lowest-order", "ui-ep") and options.get("refine", True)
        if refined and not cuda_refined:
            row["cuda"] = "skipped (the refined family is slow on the GPU; --cuda-refined)"
            rows.append(row)
            print(row, flush=True)
            continue
        optim.solve_batch(template, gains[:4], method, backend="cuda", **options)  # compile

        def host_run(m=method, o=options, h=holder) -> None:  # noqa: ANN001
            h["cuda"] = optim.solve_batch(template, gains, m, backend="cuda", **o)

        def device_run(m=method, o=options) -> None:  # noqa: ANN001
            optim.solve_batch(template, g_dev, m, backend="cuda", out="device", **o)
            cuda.synchronize()

        row["cuda_fps_with_transfer"] = frames / _median_time(host_run, repeats)
        row["cuda_fps_on_device"] = frames / _median_time(device_run, repeats)
        cpu_res = holder["cpu"]
        gpu_res = holder["cuda"]
        sub = type(gpu_res)(gpu_res.method, *(x[:n_cpu] for x in (
            gpu_res.selected, gpu_res.subchannel, gpu_res.modulation, gpu_res.power,
            gpu_res.objective)))  # fmt: skip
        row["agree"] = _agreement(cpu_res, sub)
        row["compared"] = n_cpu
        rows.append(row)
        print(row, flush=True)
    return rows


def largest_n(sizes: list[int], frames: int, limit_s: float, repeats: int,
              base: dict[str, Any], backend: str = "cuda") -> dict:  # fmt: skip
    """Time ``frames``-frame batches of ``hierarchical`` (options ``base``) on ``backend`` per
    N = K, up to the first size over ``limit_s``."""
    out: dict[str, Any] = {"frames": frames, "limit_s": limit_s, "options": dict(base),
                           "backend": backend, "sizes": [], "largest": None}  # fmt: skip
    for n in sizes:
        template = random_problem(n, n, seed=0)
        gains = np.random.default_rng(1).exponential(size=(frames, n))
        options: dict[str, Any] = dict(base)
        try:
            optim.solve_batch(template, gains[:2], "hierarchical", backend=backend, **options)
        except ConfigError:
            options["patterns"] = "all"
            t0 = time.perf_counter()
            optim.solve_batch(template, gains[:2], "hierarchical", backend=backend, **options)
            if time.perf_counter() - t0 > 10 * limit_s:  # the plan alone is too slow
                out["sizes"].append({"n": n, "seconds": None, "note": "plan over the limit"})
                break
        t0 = time.perf_counter()
        optim.solve_batch(template, gains, "hierarchical", backend=backend, **options)
        first = time.perf_counter() - t0
        reps = repeats if first < 5 * limit_s else 1
        sec = min(first, _median_time(
            lambda t=template, g=gains, o=options: optim.solve_batch(
                t, g, "hierarchical", backend=backend, **o), reps))  # fmt: skip
        entry = {"n": n, "seconds": sec, "fps": frames / sec,
                 "patterns": options.get("patterns", "auto")}  # fmt: skip
        out["sizes"].append(entry)
        print(entry, flush=True)
        if sec <= limit_s:
            out["largest"] = n
        else:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[4096, 65536])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=16, help="N = K of the template")
    ap.add_argument("--cpu-frames", type=int, default=1 << 30,
                    help="at most this many frames on the CPU (all on the GPU)")  # fmt: skip
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 24, 32, 48, 64])
    ap.add_argument("--largest-frames", type=int, default=4096)
    ap.add_argument("--limit", type=float, default=1.0, help="seconds for --largest-frames")
    ap.add_argument("--cuda-refined", action="store_true",
                    help="also time the refined family on the GPU (slow: minutes)")  # fmt: skip
    ap.add_argument("--largest-only", action="store_true",
                    help="only the largest-N search (no frames/s table)")  # fmt: skip
    ap.add_argument("--largest-backend", choices=["cuda", "cpu"], default="cuda",
                    help="backend of the largest-N search (cpu: every core)")  # fmt: skip
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (simulator-friendly)")
    args = ap.parse_args()
    if args.smoke:
        args.frames, args.repeats, args.n, args.cuda_refined = [4], 1, 6, True
        args.sizes, args.largest_frames = [4, 6], 2
    result: dict[str, Any] = {
        "command": "python benchmarks/bench_solve_batch_gpu.py "
        + " ".join(f"{k}={v}" for k, v in vars(args).items()),
        "cpu": platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "device": _device_info() if args.largest_backend == "cuda" else None,
        "template": f"random_problem({args.n}, {args.n}, seed=0)",
        "batches": [],
    }
    print(result["device"], flush=True)
    template = random_problem(args.n, args.n, seed=0)
    for frames in [] if args.largest_only else args.frames:
        result["batches"].extend(bench_methods(template, frames, args.repeats, args.cpu_frames,
                                               args.cuda_refined))  # fmt: skip
    result["largest_n"] = [
        largest_n(
            args.sizes, args.largest_frames, args.limit, args.repeats, base, args.largest_backend
        )
        for base in ({"refine": False}, {})[
            : 2 if args.cuda_refined or args.largest_backend == "cpu" else 1
        ]
    ]
    for entry in result["largest_n"]:
        label = entry["options"] or "default"
        print(f"largest N = K with {args.largest_frames} frames within {args.limit} s, "
              f"hierarchical {label} on {entry['backend']}: {entry['largest']}",
              flush=True)  # fmt: skip
    print("\n| B | method | CPU frames/s | CUDA frames/s (with transfers) | CUDA frames/s "
          "(on device) | agree |\n|---:|---|---:|---:|---:|---:|")  # fmt: skip
    for r in result["batches"]:
        if "cuda_fps_on_device" in r:
            print(f"| {r['frames']} | {r['method']} | {r['cpu_fps']:,.0f} | "
                  f"{r['cuda_fps_with_transfer']:,.0f} | {r['cuda_fps_on_device']:,.0f} | "
                  f"{r['agree']}/{r['compared']} |")  # fmt: skip
        else:
            print(f"| {r['frames']} | {r['method']} | {r['cpu_fps']:,.0f} | - | - | - |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
