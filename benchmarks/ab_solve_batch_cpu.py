"""A/B of ``optim.solve_batch`` on the CPU (one thread) between two source trees.

For checking what a change to the batched solver's kernels does to its speed: each tree (a
checkout of the repository, e.g. ``git worktree add /tmp/old <commit>``) runs in its own
process with ``PYTHONPATH`` set to it and its own ``NUMBA_CACHE_DIR`` (filled by a first,
untimed process per tree; ``--cache-root`` keeps them for the next run, in a folder named by
a digest of the tree's sources, since Numba's cache does not notice when a function compiled
into a cached caller changes in another file), the trees
alternating for ``--rounds`` rounds. A process times ``solve_batch`` of ``hierarchical``
with each option set of ``--options`` on one thread, on ``random_problem(N, N, seed=0,
snr_db=--snr-db)`` (10 dB by default) and
``--frames`` Rayleigh draws (``default_rng(1).exponential``): the median of ``--repeats``
calls after a warm-up call, in ms per frame.
Results are not compared here; see ``ab_solve_batch_gpu.py`` for that on the GPU.

Usage::

    python benchmarks/ab_solve_batch_cpu.py OLD_TREE NEW_TREE [--rounds 3] [--frames 128]
        [--snr-db 10] [--options "" "refine=False"] [--cache-root DIR] [--json ab.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_common import cpu_info, emit, median_seconds


def _options(spec: str) -> dict[str, Any]:
    """``"refine=False,dual_starts=0"`` -> keyword options (Python literals)."""
    import ast

    out: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise SystemExit(f"--options: {spec!r} has {item!r}; allowed: key=value")
        out[key.strip()] = ast.literal_eval(value.strip())
    return out


def worker(n: int, snr_db: float, frames: int, repeats: int, specs: list[str]) -> None:
    """Time every option set in this process's tree; one JSON line on stdout."""
    import numba
    import numpy as np

    import optim
    from optim.problem import random_problem

    numba.set_num_threads(1)
    template = random_problem(n, n, seed=0, snr_db=snr_db)
    gains = np.random.default_rng(1).exponential(size=(frames, n))
    out = {}
    for spec in specs:
        options = _options(spec)
        sec, _ = median_seconds(lambda o=options: optim.solve_batch(template, gains, **o), repeats)
        out[spec] = 1e3 * sec / frames
    print(json.dumps(out))


def source_digest(tree: Path) -> str:
    """SHA-256 (first 12 hex digits) of the paths and bytes of every ``.py`` file of the
    tree's packages: a cache filled from other sources is never reused."""
    digest = hashlib.sha256()
    for package in ("channels", "optim", "semcom"):
        for path in sorted((tree / package).rglob("*.py")):
            digest.update(str(path.relative_to(tree)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def run_tree(tree: Path, cache: Path, args: argparse.Namespace) -> dict[str, float]:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "--n", str(args.n),
               "--snr-db", str(args.snr_db),
               "--frames", str(args.frames), "--repeats", str(args.repeats),
               "--options", *args.options]  # fmt: skip
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: worker failed\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="*", type=Path, help="OLD_TREE NEW_TREE")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--n", type=int, default=16, help="N = K")
    ap.add_argument("--snr-db", type=float, default=10.0, help="mean SNR of the template, dB")
    ap.add_argument("--options", nargs="+", default=["", "refine=False"])
    ap.add_argument(
        "--cache-root",
        type=Path,
        default=None,
        help="keep the Numba caches here, one folder per tree and source digest",
    )
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.n, args.snr_db, args.frames, args.repeats, args.options)
        return
    if len(args.trees) != 2:
        ap.error("give two trees: OLD_TREE NEW_TREE")
    for spec in args.options:
        _options(spec)  # refuse a bad spec before any work
    names = ("old", "new")
    with tempfile.TemporaryDirectory() as tmp:
        caches = [
            (args.cache_root or Path(tmp)) / f"{name}-{source_digest(tree)}"
            for name, tree in zip(names, args.trees, strict=True)
        ]
        for tree, cache in zip(args.trees, caches, strict=True):  # compile, untimed
            run_tree(tree, cache, argparse.Namespace(**{**vars(args), "frames": 4, "repeats": 1}))
        runs: dict[str, dict[str, list[float]]] = {n: {s: [] for s in args.options} for n in names}
        for r in range(args.rounds):
            for name, tree, cache in zip(names, args.trees, caches, strict=True):
                for spec, ms in run_tree(tree, cache, args).items():
                    runs[name][spec].append(ms)
                    print(f"round {r + 1} {name} [{spec}] {ms:.2f} ms/frame", flush=True)
    figures = {}
    for spec in args.options:
        old = statistics.median(runs["old"][spec])
        new = statistics.median(runs["new"][spec])
        figures[spec or "default"] = {"old_ms": runs["old"][spec], "new_ms": runs["new"][spec],
                                      "speed_up": old / new}  # fmt: skip
        print(f"[{spec}] old {old:.2f} ms, new {new:.2f} ms a frame: {old / new:.2f}x")
    shown = argparse.Namespace(**{k: str(v) if isinstance(v, Path) else v
                                  for k, v in vars(args).items()})  # fmt: skip
    shown.trees = [str(t) for t in args.trees]
    emit(cpu_info(), shown, figures, args.json)


if __name__ == "__main__":
    main()
