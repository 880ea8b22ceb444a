"""A/B of ``optim.solve_batch(..., backend="cuda")`` between two source trees, on one GPU.

For checking that a change to the solver's kernels costs no speed on the GPU and changes no
result: each tree (a checkout of the repository, e.g. ``git worktree add /tmp/old <commit>``)
runs in its own process with ``PYTHONPATH`` set to it and its own ``NUMBA_CACHE_DIR``, the
trees alternating for ``--rounds`` rounds. A process times, per method, the device path (gains
already on the GPU, results left there, ``cuda.synchronize()`` at the end) on
``random_problem(16, 16, seed=0)`` with Rayleigh gains (``default_rng(1).exponential``): the
median of ``--repeats`` calls after a compiling call and a warm-up call. It then solves the
same gains with host results and saves them. Per round, the driver compares the two trees'
results array by array (bit for bit: ``np.array_equal``) and prints frames/s per tree and
method.

Usage::

    python benchmarks/ab_solve_batch_gpu.py OLD_TREE NEW_TREE [--rounds 2] [--repeats 7]
        [--frames 4096 65536] [--json ab.json]

``--methods`` takes ``name`` or ``name:key=value,...`` entries (``hierarchical:refine=false``,
``ui-ep:seed=1``: a random method needs its seed for the comparison). Under Numba's CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``) use tiny sizes, e.g. ``--frames 2 --methods
lowest-order "ui-ep:seed=1" --repeats 1 --rounds 1``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import median_seconds

DEFAULT_METHODS = [
    "hierarchical:refine=false",
    "hungarian:refine=false",
    "equal-power:refine=false",
    "ui-opt:refine=false",
    "random-matching:refine=false,seed=1",
    "ui-ep:seed=1",
]
"""The GPU family of the allocation methods (the refined family runs on the CPU)."""

FIELDS = ("selected", "subchannel", "modulation", "power", "objective")


def _method(entry: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``"name:key=value,..."`` -> (name, options); values are JSON literals
    (``refine=false``, ``seed=1``) or else strings."""
    name, _, spec = entry.partition(":")
    options: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"--methods: {entry!r} has option {item!r}; allowed: key=value")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return name, options


def worker(frames: list[int], methods: list[str], repeats: int, dump: str) -> None:
    """Time and solve in this process's tree; one JSON line per (method, frames) on stdout."""
    from numba import cuda

    import optim
    from optim.problem import random_problem

    template = random_problem(16, 16, seed=0)
    results: dict[str, np.ndarray] = {}
    for count in frames:
        gains = np.random.default_rng(1).exponential(size=(count, 16))
        on_device = cuda.to_device(gains)
        for entry in methods:
            name, options = _method(entry)
            start = time.perf_counter()
            optim.solve_batch(template, gains[:4], name, backend="cuda", **options)
            first = time.perf_counter() - start
            seconds, times = median_seconds(
                lambda g=on_device, n=name, o=options: optim.solve_batch(
                    template, g, n, backend="cuda", out="device", **o),
                repeats, cuda.synchronize)  # fmt: skip
            solved = optim.solve_batch(template, gains, name, backend="cuda", **options)
            for field in FIELDS:
                results[f"{entry}/{count}/{field}"] = np.asarray(getattr(solved, field))
            row = {"method": entry, "frames": count, "first_call_s": first,
                   "frames_per_s": count / seconds, "times_s": times}  # fmt: skip
            print(json.dumps(row), flush=True)
    np.savez(dump, **results)


def _run_tree(tree: Path, args: argparse.Namespace, dump: Path, cache: Path) -> list[dict]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--dump", str(dump),
               "--repeats", str(args.repeats), "--frames", *map(str, args.frames),
               "--methods", *args.methods]  # fmt: skip
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: worker failed:\n{done.stderr[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", type=Path, help="OLD_TREE NEW_TREE")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--frames", type=int, nargs="+", default=[4096, 65536])
    ap.add_argument("--methods", nargs="+", default=DEFAULT_METHODS)
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--dump", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        for entry in args.methods:
            _method(entry)
    except ValueError as error:
        ap.error(str(error))
    if args.worker:
        worker(args.frames, args.methods, args.repeats, args.dump)
        return
    if len(args.trees) != 2 or not all((t / "optim").is_dir() for t in args.trees):
        ap.error(f"trees: {[str(t) for t in args.trees]}; give two checkouts, each with optim/")
    trees = [t.resolve() for t in args.trees]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as scratch:
        for r in range(args.rounds):
            dumps = []
            for label, tree in zip(("old", "new"), trees, strict=True):
                dump = Path(scratch) / f"{label}{r}.npz"
                for row in _run_tree(tree, args, dump, Path(scratch) / f"cache_{label}"):
                    rows.append({"tree": label, "round": r, **row})
                    print(f"round {r} {label}: {row['method']} B={row['frames']} "
                          f"{row['frames_per_s']:,.0f} frames/s", flush=True)  # fmt: skip
                with np.load(dump) as saved:
                    dumps.append({key: saved[key] for key in saved.files})
            differ = [k for k in dumps[0] if not np.array_equal(dumps[0][k], dumps[1][k])]
            print(f"round {r}: {len(dumps[0])} arrays compared, differ: {differ or 'none'}")
            rows.append({"round": r, "arrays": len(dumps[0]), "differ": differ})
    if args.json:
        Path(args.json).write_text(json.dumps({"trees": [str(t) for t in trees], "rows": rows},
                                              indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
