"""Benchmark of the SI-UEP optimiser: solve time and optimality gap (issue 3, item 8).

Three parts, each printed as a Markdown table (``--json PATH`` also writes every number):

1. Solve time for ``N = K`` in ``--sizes`` (default 4 8 16 64 256 1024), one instance per size
   (``random_problem(N, N, seed=0)``: Rayleigh, ordered profile, 10 dB, eta 0.5, exact BER),
   median of ``--repeats`` runs after one warm-up run, on one core (``OMP_NUM_THREADS``,
   ``NUMBA_NUM_THREADS``, MKL/OpenBLAS threads set to 1 before numpy is imported):

   - ``hierarchical``: ``optim.solve(problem, "hierarchical")`` (default options);
   - ``exact``: :func:`optim.exact.solve_exact` while its candidate count is at most
     ``--exact-max-candidates``, else :func:`optim.bnb.solve_bnb` with ``--bnb-time-limit``
     (whether it certified is printed), skipped above ``--exact-max-n``;
   - ``SP4 closed-form`` / ``SP4 cvxpy``: one power subproblem with all ``N`` features on the
     greedy subchannels in QPSK, :func:`optim.power.water_filling` vs
     :func:`optim.power.water_filling_cvxpy` (Clarabel);
   - ``hierarchical + cvxpy``: the whole solver with ``power="cvxpy"`` (one cvxpy solve per
     candidate pattern), up to ``--cvxpy-path-max-n``.

   A cell whose first timed run exceeds ``--cell-budget`` seconds gets fewer runs (the count is
   printed). The growth exponent is the least-squares slope of ``log t`` on ``log N``.

2. Optimality gap ``(J_hier - J*) / J*`` of the hierarchical solver against
   :func:`optim.exact.solve_exact` over ``--gap-instances`` random instances per importance
   profile (ordered, flat, random) and BER model: ``N, K`` uniform in 2..6, average SNR in
   {-5, 0, 5, 10, 15, 20} dB, eta in {0.25, 0.5, 0.75, 1} (docs/method.md §4.3, §4.6), Rayleigh
   fading;
   instance ``i`` has the same draws for every profile (:func:`gap_instance`, also used by
   ``tests/optim/test_gap.py``).

3. Medium sizes: :func:`optim.bnb.solve_bnb` on ``--bnb-instances`` instances per size in
   ``--bnb-sizes`` (same draws as part 2 with ``N = K`` fixed): share certified, time, and the
   hierarchical gap against the B&B incumbent (and against its lower bound when not certified).

4. Batched frames (``batch``): frames/s of :func:`optim.solve_batch` (Numba-parallel over
   frames, ``--batch-threads`` threads, default all cores) against today's per-frame loop
   (``optim.solve(template.replace(gains=g[b]), ...)`` per frame, one core) at
   ``N = K = --batch-n`` (default 16), hierarchical with its default options (refinement
   and dual starts on) and with ``refine=False``, on ``--batch-frames`` Rayleigh draws (the
   loop on the first ``--batch-loop-frames``); each figure the median of ``--repeats`` runs
   after a warm-up, batched and loop in the same run.

The hierarchical solver's time is reported as wall and process CPU time (the latter is
unaffected by other jobs on a shared machine); the gap table also gives its mean time and the
worst instance per row.

Run ``python benchmarks/bench_optim.py --help``; the defaults take about 3 minutes on two
cores, most of it in the gap study and the cvxpy path.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # pin one core only when run as a script: tests import this module,
    # and changing NUMBA_NUM_THREADS inside a running test session breaks Numba's thread pool
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[_var] = "1"
    # Numba keeps its pool (the batched section uses it); main() pins it to 1 elsewhere

import numpy as np  # noqa: E402

import optim  # noqa: E402
from optim.bnb import solve_bnb  # noqa: E402
from optim.exact import candidate_count, solve_exact, solve_exact_result  # noqa: E402
from optim.matching import subchannel_order  # noqa: E402
from optim.power import bound_terms, water_filling, water_filling_cvxpy  # noqa: E402
from optim.problem import Problem, random_problem  # noqa: E402

PROFILES = ("ordered", "flat", "random")
SNRS_DB = (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
ETAS = (0.25, 0.5, 0.75, 1.0)


def gap_instance(
    i: int, profile: str, ber_model: str = "exact", n: int | None = None, k: int | None = None
) -> Problem:
    """Instance ``i`` of the gap study (same draws for every profile and BER model)."""
    rng = np.random.default_rng([7, i])
    n_draw, k_draw = int(rng.integers(2, 7)), int(rng.integers(2, 7))
    snr = float(rng.choice(SNRS_DB))
    eta = float(rng.choice(ETAS))
    seed = int(rng.integers(2**31))
    return random_problem(
        n_draw if n is None else n,
        k_draw if k is None else k,
        seed=seed,
        profile=profile,
        snr_db=snr,
        eta=eta,
        ber_model=ber_model,
    )


def relative_gap(value: float, best: float) -> float:
    """``(value - best) / best`` (0 when both are 0)."""
    if best > 0:
        return (value - best) / best
    return 0.0 if value <= 0 else float("inf")


def machine() -> str:
    """CPU model name and core count (lscpu when available)."""
    name = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                name = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, Python {platform.python_version()}"


LAST_CPU: list[float] = [0.0]
"""Median process CPU seconds of the last :func:`timed` call (the machine may be shared:
wall time includes waiting for the core, CPU time does not)."""


def timed(func, repeats: int, budget: float) -> tuple[float, int, object]:
    """(median wall seconds, runs, last result) after one untimed warm-up run; the median
    CPU seconds go to ``LAST_CPU[0]``."""
    func()
    times, cpu = [], []
    out = None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = func()
        cpu.append(time.process_time() - c)
        times.append(time.perf_counter() - t)
        if sum(times) > budget:
            break
    LAST_CPU[0] = float(np.median(cpu))
    return float(np.median(times)), len(times), out


def growth(sizes: list[int], times: list[float | None]) -> float | None:
    """Least-squares slope of log t on log N over the sizes with a time."""
    pts = [(np.log(n), np.log(t)) for n, t in zip(sizes, times, strict=True) if t]
    if len(pts) < 2:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def fmt_time(t: float | None, runs: int | None = None, note: str = "") -> str:
    if t is None:
        return "-"
    text = f"{t * 1e3:.3g} ms" if t < 1 else f"{t:.3g} s"
    if runs is not None:
        text += f" ({runs})"
    return text + note


# --------------------------------------------------------------------------------- part 1
def bench_time(args: argparse.Namespace) -> dict:
    sizes = args.sizes
    rows = {
        "hierarchical": [],
        "hierarchical_cpu": [],
        "exact": [],
        "sp4_closed_form": [],
        "sp4_cvxpy": [],
        "hierarchical_cvxpy": [],
    }
    runs: dict[str, list] = {key: [] for key in rows}
    notes: list[str] = []
    for n in sizes:
        p = random_problem(n, n, seed=0)
        t, r, _ = timed(lambda p=p: optim.solve(p, "hierarchical"), args.repeats, args.cell_budget)
        rows["hierarchical"].append(t)
        runs["hierarchical"].append(r)
        rows["hierarchical_cpu"].append(LAST_CPU[0])
        runs["hierarchical_cpu"].append(r)
        # exact / branch and bound
        if n <= args.exact_max_n:
            count = candidate_count(n, n, len(p.modulations))
            if count <= args.exact_max_candidates:
                t, r, _ = timed(lambda p=p: solve_exact(p), args.repeats, args.cell_budget)
                notes.append("enumeration")
            else:
                t, r, res = timed(
                    lambda p=p: solve_bnb(p, time_limit=args.bnb_time_limit),
                    max(1, min(args.repeats, 3)),
                    args.cell_budget,
                )
                notes.append(f"B&B, {'certified' if res.certified else f'gap {res.gap:.1%}'}")
            rows["exact"].append(t)
            runs["exact"].append(r)
        else:
            rows["exact"].append(None)
            runs["exact"].append(None)
            notes.append("")
        # one power subproblem
        sub = subchannel_order(p.gains)[:n]
        mods = np.full(n, p.modulation_index("qpsk"))
        alpha, c = bound_terms(p, np.arange(n), sub, mods)
        t, r, _ = timed(
            lambda a=alpha, c=c, b=p.power_budget: water_filling(a, c, b),
            max(args.repeats, 20),
            args.cell_budget,
        )
        rows["sp4_closed_form"].append(t)
        runs["sp4_closed_form"].append(r)
        t, r, _ = timed(
            lambda a=alpha, c=c, b=p.power_budget: water_filling_cvxpy(a, c, b),
            args.repeats,
            args.cell_budget,
        )
        rows["sp4_cvxpy"].append(t)
        runs["sp4_cvxpy"].append(r)
        if n <= args.cvxpy_path_max_n:
            t, r, _ = timed(
                lambda p=p: optim.solve(p, "hierarchical", power="cvxpy"),
                args.repeats,
                args.cell_budget,
            )
            rows["hierarchical_cvxpy"].append(t)
            runs["hierarchical_cvxpy"].append(r)
        else:
            rows["hierarchical_cvxpy"].append(None)
            runs["hierarchical_cvxpy"].append(None)
        print(f"  N = K = {n}: done", file=sys.stderr, flush=True)
    fits = {key: growth(sizes, vals) for key, vals in rows.items()}
    return {"sizes": sizes, "seconds": rows, "runs": runs, "exact_note": notes, "growth": fits}


def print_time(res: dict) -> None:
    sizes = res["sizes"]
    s, runs = res["seconds"], res["runs"]
    print("\n### Solve time (median of runs after warm-up; runs in parentheses), one core\n")
    print(
        "| N = K | hierarchical (wall) | hierarchical (CPU) | exact | SP4 closed-form "
        "| SP4 cvxpy | hierarchical + cvxpy power |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for j, n in enumerate(sizes):
        note = f" [{res['exact_note'][j]}]" if res["exact_note"][j] else ""
        print(
            f"| {n} | {fmt_time(s['hierarchical'][j], runs['hierarchical'][j])} "
            f"| {fmt_time(s['hierarchical_cpu'][j])} "
            f"| {fmt_time(s['exact'][j], runs['exact'][j], note)} "
            f"| {fmt_time(s['sp4_closed_form'][j], runs['sp4_closed_form'][j])} "
            f"| {fmt_time(s['sp4_cvxpy'][j], runs['sp4_cvxpy'][j])} "
            f"| {fmt_time(s['hierarchical_cvxpy'][j], runs['hierarchical_cvxpy'][j])} |"
        )
    g = res["growth"]
    cells = " | ".join(
        "-" if g[k] is None else f"{g[k]:.2f}"
        for k in (
            "hierarchical",
            "hierarchical_cpu",
            "exact",
            "sp4_closed_form",
            "sp4_cvxpy",
            "hierarchical_cvxpy",
        )
    )
    print(f"| log-log slope | {cells} |")


# --------------------------------------------------------------------------------- part 2
def bench_gap(args: argparse.Namespace) -> dict:
    out: dict = {}
    for model in args.ber_models:
        for profile in args.profiles:
            gaps, t_exact, t_hier = [], [], []
            for i in range(args.gap_instances):
                p = gap_instance(i, profile, model)
                r = solve_exact_result(p)
                h = optim.solve(p, "hierarchical")
                gaps.append(relative_gap(h.objective, r.objective))
                t_exact.append(r.seconds)
                t_hier.append(h.seconds)
            g = np.array(gaps)
            out[f"{model}/{profile}"] = {
                "n": int(g.size),
                "median": float(np.median(g)),
                "p90": float(np.quantile(g, 0.9)),
                "p99": float(np.quantile(g, 0.99)),
                "max": float(g.max()),
                "share_le_0.5pct": float(np.mean(g <= 0.005)),
                "share_le_5pct": float(np.mean(g <= 0.05)),
                "min": float(g.min()),
                "exact_seconds_mean": float(np.mean(t_exact)),
                "exact_seconds_max": float(np.max(t_exact)),
                "hier_seconds_mean": float(np.mean(t_hier)),
                "worst_instance": int(np.argmax(g)),
                "above_1pct": [int(j) for j in np.flatnonzero(g > 0.01)],
            }
            print(f"  gap {model}/{profile}: done", file=sys.stderr, flush=True)
    return out


def pct(x: float) -> str:
    return f"{100 * x:.3g}%"


def print_gap(res: dict, instances: int) -> None:
    print(f"\n### Optimality gap of hierarchical vs exact ({instances} instances each)\n")
    print(
        "| BER model / profile | median | p90 | p99 | max | gap <= 0.5% | gap <= 5% "
        "| exact mean / max time | hierarchical mean time | worst instance |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key, v in res.items():
        print(
            f"| {key} | {pct(v['median'])} | {pct(v['p90'])} | {pct(v['p99'])} | {pct(v['max'])} "
            f"| {pct(v['share_le_0.5pct'])} | {pct(v['share_le_5pct'])} "
            f"| {fmt_time(v['exact_seconds_mean'])} / {fmt_time(v['exact_seconds_max'])} "
            f"| {fmt_time(v['hier_seconds_mean'])} | {v['worst_instance']} |"
        )


# --------------------------------------------------------------------------------- part 3
def bench_bnb(args: argparse.Namespace) -> dict:
    out: dict = {}
    for n in args.bnb_sizes:
        cert, times, gaps, gaps_lb, bnb_gaps = [], [], [], [], []
        for i in range(args.bnb_instances):
            p = gap_instance(i, "ordered", "exact", n=n, k=n)
            h = optim.solve(p, "hierarchical")
            b = solve_bnb(p, time_limit=args.bnb_time_limit, initial=h.allocation)
            cert.append(b.certified)
            times.append(b.seconds)
            bnb_gaps.append(b.gap)
            gaps.append(relative_gap(h.objective, b.objective))
            gaps_lb.append(relative_gap(h.objective, b.lower_bound))
        out[str(n)] = {
            "instances": len(cert),
            "certified": float(np.mean(cert)),
            "seconds_median": float(np.median(times)),
            "seconds_max": float(np.max(times)),
            "bnb_gap_max": float(np.max(bnb_gaps)),
            "hier_gap_median": float(np.median(gaps)),
            "hier_gap_p90": float(np.quantile(gaps, 0.9)),
            "hier_gap_max": float(np.max(gaps)),
            "hier_gap_vs_lb_max": float(np.max(gaps_lb)),
        }
        print(f"  B&B N = {n}: done", file=sys.stderr, flush=True)
    return out


def print_bnb(res: dict, limit: float) -> None:
    print(f"\n### Branch and bound at medium size (ordered, exact BER, {limit:g} s limit)\n")
    print(
        "| N = K | instances | certified | B&B time median / max | worst B&B gap "
        "| hierarchical gap median / p90 / max (vs B&B best) | max gap vs lower bound |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, v in res.items():
        print(
            f"| {n} | {v['instances']} | {pct(v['certified'])} "
            f"| {fmt_time(v['seconds_median'])} / {fmt_time(v['seconds_max'])} "
            f"| {pct(v['bnb_gap_max'])} | {pct(v['hier_gap_median'])} / {pct(v['hier_gap_p90'])} "
            f"/ {pct(v['hier_gap_max'])} | {pct(v['hier_gap_vs_lb_max'])} |"
        )


# ---------------------------------------------------------------------------------- main
def bench_batch(args: argparse.Namespace) -> dict:
    """Frames/s of the batched solver against the per-frame loop (module docstring, part 4)."""
    import numba

    n = args.batch_n
    template = random_problem(n, n, seed=0)
    gains = np.random.default_rng(1).exponential(size=(args.batch_frames, n))
    loop_frames = min(args.batch_frames, args.batch_loop_frames)

    def loop(count: int, **options: object) -> None:
        for b in range(count):
            optim.solve(template.replace(gains=gains[b]), "hierarchical", **options)

    threads = args.batch_threads or numba.config.NUMBA_NUM_THREADS
    res = {"n": n, "frames": args.batch_frames, "threads": threads, "loop_frames": loop_frames}
    for key, opts in (("default", {}), ("plain", {"refine": False})):

        def batched(opts: dict = opts) -> None:
            optim.solve_batch(template, gains, "hierarchical", **opts)

        numba.set_num_threads(threads)
        try:
            optim.solve_batch(template, gains[:8], "hierarchical", **opts)  # compile / load
            loop(3, **opts)
            t_batch = float(np.median([_seconds(batched) for _ in range(args.repeats)]))
        finally:
            numba.set_num_threads(1)
        t_loop = float(np.median([_seconds(lambda opts=opts: loop(loop_frames, **opts))
                                  for _ in range(args.repeats)]))  # fmt: skip
        res[f"{key}_batched_frames_per_s"] = args.batch_frames / t_batch
        res[f"{key}_loop_frames_per_s"] = loop_frames / t_loop
        res[f"{key}_speedup"] = res[f"{key}_batched_frames_per_s"] / (loop_frames / t_loop)
    return res


def _seconds(func) -> float:  # noqa: ANN001
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def print_batch(res: dict) -> None:
    print(f"\n## Batched frames, N = K = {res['n']}, hierarchical\n")
    print("| options | per-frame loop (optim.solve), 1 core, frames/s "
          f"| optim.solve_batch, {res['threads']} threads, frames/s | speed-up |")  # fmt: skip
    print("|---|---:|---:|---:|")
    for key, label in (("default", "default (refinement on)"), ("plain", "refine=False")):
        loop_fps, batch_fps = res[f"{key}_loop_frames_per_s"], res[f"{key}_batched_frames_per_s"]
        print(f"| {label} | {loop_fps:.0f} | {batch_fps:.0f} | {res[f'{key}_speedup']:.1f}x |")
    print(f"\nLoop: {res['loop_frames']} frames; batch: {res['frames']} frames.")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="Solve time and optimality gap of the SI-UEP optimiser (issue 3, item 8).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ints = {"type": int, "nargs": "+"}
    ap.add_argument("--sizes", default=[4, 8, 16, 64, 256, 1024], help="N = K values", **ints)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per cell")
    ap.add_argument("--cell-budget", type=float, default=60.0, help="seconds per timing cell")
    ap.add_argument("--exact-max-n", type=int, default=16, help="largest N for exact/B&B timing")
    ap.add_argument("--exact-max-candidates", type=float, default=2e8)
    ap.add_argument("--cvxpy-path-max-n", type=int, default=16)
    ap.add_argument("--gap-instances", type=int, default=1000)
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=PROFILES)
    ap.add_argument("--ber-models", nargs="+", default=["exact", "bound"])
    ap.add_argument("--bnb-sizes", default=[8, 12, 16], **ints)
    ap.add_argument("--bnb-instances", type=int, default=20)
    ap.add_argument("--bnb-time-limit", type=float, default=30.0)
    ap.add_argument("--batch-n", type=int, default=16, help="N = K of the batched section")
    ap.add_argument("--batch-frames", type=int, default=4096)
    ap.add_argument("--batch-loop-frames", type=int, default=300, help="frames of the loop")
    ap.add_argument("--batch-threads", type=int, default=0, help="0: every core")
    ap.add_argument("--skip", nargs="*", default=[], choices=["time", "gap", "bnb", "batch"])
    ap.add_argument("--json", type=Path, default=None, help="also write all numbers here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    start = time.perf_counter()
    if __name__ == "__main__":  # one core except in the batched section
        import numba

        numba.set_num_threads(1)
    # compile the Numba kernels once, outside every timing
    for model in ("exact", "bound"):
        warm = random_problem(4, 4, seed=0, ber_model=model)
        solve_exact(warm)
        solve_bnb(warm)
    report: dict = {"machine": machine(), "argv": sys.argv[1:]}
    print(f"Machine: {report['machine']}; threads pinned to 1 (except the batched section).")
    if "time" not in args.skip:
        report["time"] = bench_time(args)
        print_time(report["time"])
    if "gap" not in args.skip:
        report["gap"] = bench_gap(args)
        print_gap(report["gap"], args.gap_instances)
    if "bnb" not in args.skip:
        report["bnb"] = bench_bnb(args)
        print_bnb(report["bnb"], args.bnb_time_limit)
    if "batch" not in args.skip:
        report["batch"] = bench_batch(args)
        print_batch(report["batch"])
    report["seconds"] = time.perf_counter() - start
    print(f"\nTotal {report['seconds']:.0f} s.")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
