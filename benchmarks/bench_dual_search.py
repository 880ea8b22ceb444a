"""Time the dual starts' ``kappa`` bisections alone (:func:`optim.dual.dual_search_into`), the
largest single cost of a refined hierarchical frame, on inputs the solver itself builds.

The whole-frame A/B (``ab_solve_batch_cpu.py``) cannot resolve a change of a few percent in
one stage on a shared VM. This script isolates the stage: it runs the per-frame solver
(``optim.solve``, hierarchical) on ``--frames`` Rayleigh draws of ``random_problem(N, N,
seed=0)`` and records every call of the compiled bisection (:func:`optim.dual._dual_search`,
the same kernel the batched solver calls per frame: its slot terms, symbols, budget, steps and
tie flag), then times ``--passes`` passes over the recorded calls on one thread after a
warm-up and prints the minimum and the median of the passes, in microseconds a call.
``--save`` writes every call's outputs (slots and modulations per step) to an ``.npz``, so that
two source trees can be compared bit for bit (run the script in each with ``PYTHONPATH`` set
to the tree and its own ``NUMBA_CACHE_DIR``).

Usage::

    python benchmarks/bench_dual_search.py [--frames 150] [--n 16] [--passes 15]
        [--save out.npz]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numba
import numpy as np

import optim
import optim.dual
from optim.problem import random_problem


def record(frames: int, n: int) -> list[tuple]:
    """The arguments of every bisection the per-frame solver runs on ``frames`` draws."""
    calls: list[tuple] = []
    inner = optim.dual._dual_search

    def spy(table, sym, smax, iters, certify):  # noqa: ANN001, ANN202
        calls.append((table.copy(), sym.copy(), smax, iters, certify))
        return inner(table, sym, smax, iters, certify)

    template = random_problem(n, n, seed=0)
    gains = np.random.default_rng(1).exponential(size=(frames, n))
    optim.dual._dual_search = spy
    try:
        for g in gains:
            optim.solve(template.replace(gains=g), "hierarchical")
    finally:
        optim.dual._dual_search = inner
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--n", type=int, default=16, help="N = K")
    ap.add_argument("--passes", type=int, default=15)
    ap.add_argument("--save", default=None, help="write the outputs to this .npz")
    args = ap.parse_args()
    numba.set_num_threads(1)
    calls = record(args.frames, args.n)
    search = optim.dual._dual_search
    for c in calls[:3]:
        search(*c)
    per_call = []
    for _ in range(args.passes):
        start = time.perf_counter()
        for c in calls:
            search(*c)
        per_call.append((time.perf_counter() - start) / len(calls) * 1e6)
    print(f"{len(calls)} bisections ({sum(c[4] for c in calls)} tie-free) from {args.frames} "
          f"frames, N = K = {args.n}: min {min(per_call):.1f} us, median "
          f"{statistics.median(per_call):.1f} us a call")  # fmt: skip
    if args.save:
        outs = [a for c in calls for a in search(*c)]
        np.savez(args.save, *outs)


if __name__ == "__main__":
    main()
