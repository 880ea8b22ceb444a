"""Where a frame of the batched refined hierarchical solver spends its time (N = K = 16).

Numba code has no line profiler, so the stages are timed by switching them off one at a time
through the solver's own options (``refine=False``: the pipeline alone; ``dual_starts=0``;
``local_search_max=0``; ``refine_iters=0``) on one thread; the differences are the stages'
costs. Each figure is the median of ``--repeats`` runs after a warm-up.

Usage::

    python benchmarks/profile_batch.py [--frames 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import numba
import numpy as np

import optim
from optim.problem import random_problem

CONFIGS = {
    "default": {},
    "refine=False (pipeline only)": {"refine": False},
    "dual_starts=0": {"dual_starts": 0},
    "local_search_max=0": {"local_search_max": 0},
    "refine_iters=0": {"refine_iters": 0},
    "local_search_max=0, refine_iters=0": {"local_search_max": 0, "refine_iters": 0},
    "... and dual_starts=0": {"local_search_max": 0, "refine_iters": 0, "dual_starts": 0},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=16, help="N = K")
    args = ap.parse_args()
    numba.set_num_threads(1)
    template = random_problem(args.n, args.n, seed=0)
    gains = np.random.default_rng(1).exponential(size=(args.frames, args.n))
    print(f"| options (N = K = {args.n}, 1 thread) | ms per frame |\n|---|---:|")
    for label, options in CONFIGS.items():
        optim.solve_batch(template, gains[:4], "hierarchical", **options)  # compile / load
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            optim.solve_batch(template, gains, "hierarchical", **options)
            runs.append(time.perf_counter() - t0)
        print(f"| {label} | {1e3 * float(np.median(runs)) / args.frames:.2f} |", flush=True)


if __name__ == "__main__":
    main()
