"""``semcom run``: a scenario from validated config to results, plots and a summary.

Steps (docs/architecture.md data flow):

1. open the results directory (:class:`semcom.sweep.ResultStore`): a fresh one, or with
   ``resume`` the one of an interrupted run of the same scenario (same config hash, data
   digest and code version; rows of another code version only with ``reuse_stale``), whose
   damaged rows are dropped and recomputed and whose lost ``store.json`` is rebuilt
   (:func:`semcom.sweep.recover.rebuild_store_json`); write ``scenario.yaml`` (the resolved
   config; ``scenario.resolved.yaml`` when ``scenario.yaml`` is the input file itself, which is
   never overwritten) and ``provenance.json``;
2. train or reuse one model per variant the schemes use (:func:`semcom.prepare.train_models`;
   checkpoints keyed by config hash, code version and training data, so a rerun reuses them);
3. measure importance weights (every estimator the schemes use, once per model variant), drop
   distortions and clean PSNRs on held-out calibration images (:func:`semcom.prepare.calibrate`)
   and write ``importance.csv`` and ``ordering.csv`` (each estimator's ordering quality);
   compress the codec of every scheme with a ``compression`` step (once per variant, method
   and options), measure the same on it, and write ``compression.csv``; when a scheme has
   ``bits``, write ``bits.csv`` (its per-feature quantiser bits);
4. expand the sweep grid (conditions × schemes), skip the points already in ``results.csv``,
   on the CPU compile the Numba kernels of the rest once in this process
   (:func:`compile_kernels`; the workers load them from Numba's cache), and evaluate them with
   the scenario's executor (:func:`semcom.sweep.run_points`,
   :class:`semcom.link_task.LinkPointTask`), appending each row as its point completes;
5. sort the results, write ``results.parquet``, the plots, the final provenance, and print the
   summary and the gain of ``isfr-uep`` over each baseline.

Interrupting (Ctrl-C, or a kill) loses at most the points in flight; ``resume=True`` computes
only the missing points, and the final results equal those of an uninterrupted run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import torch

from semcom.compile_notice import COMPILE_NOTICE_AFTER, with_compile_notice
from semcom.identity import code_identity
from semcom.link_task import LinkPointTask, typed_axes, typed_values
from semcom.prepare import calibrate, data_fingerprint, train_models, with_checkpoint_dir
from semcom.sweep import (
    OutputLock,
    Point,
    ResultStore,
    collect_provenance,
    describe_stale,
    expand,
    run_points,
    write_json_atomic,
    write_text_atomic,
)
from semcom.sweep.recover import rebuild_store_json


@dataclass(frozen=True)
class RunOutcome:
    """What :func:`run_scenario` did: the directory, and points total / computed / reused."""

    directory: Path
    points_total: int
    points_computed: int
    points_reused: int
    seconds: float


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is present, else ``cpu`` (the schema checked ``cuda``)."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def grid(scenario: Any) -> list:
    """Every sweep point of ``scenario`` (conditions × schemes, scheme varying fastest)."""
    return expand(typed_axes(scenario.axes()), typed_values(scenario.base_point()))


def _csv_text(rows: list[dict[str, Any]]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_csv(index=False)


def write_scenario(scenario: Any, out: Path, source: str | Path | None = None) -> Path:
    """Write the resolved ``scenario`` to ``out/scenario.yaml``, or to
    ``out/scenario.resolved.yaml`` when ``out/scenario.yaml`` is the input file ``source``
    itself (it is never overwritten); returns the path written."""
    target = out / "scenario.yaml"
    if source is not None and target.exists() and os.path.samefile(source, target):
        target = out / "scenario.resolved.yaml"
    return scenario.dump(target)


def open_store(
    scenario: Any, resume: bool, reuse_stale: bool, log: Callable[[str], None]
) -> tuple[ResultStore, str]:
    """The result store of ``scenario``'s output folder and the digest of the data it reads.

    With ``resume``, a lost ``store.json`` is rebuilt first; what was rebuilt, repaired or
    reused stale is logged (see :class:`semcom.sweep.ResultStore`).
    """
    out = scenario.output_dir()
    ex = scenario.execution
    first = scenario.reference_config()
    data = data_fingerprint(
        first, scenario.data.eval_images, scenario.data.calibration_images, ex.seed
    )
    rebuilt = rebuild_store_json(out) if resume else None
    store = ResultStore(
        out, scenario.config_hash(), resume=resume, code=code_identity(), data=data,
        reuse_stale=reuse_stale, row_counts={"per_image": "n_images"},
    )  # fmt: skip
    for line in ([rebuilt] if rebuilt else []) + store.notes:
        log(line)
    return store, data


def run_scenario(
    scenario: Any,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    source: str | Path | None = None,
    reuse_stale: bool = False,
) -> RunOutcome:
    """Run ``scenario`` (a validated :class:`semcom.scenario.Scenario`); see the module doc.

    ``source`` is the scenario file it was read from (kept from being overwritten);
    ``reuse_stale`` keeps rows and checkpoints made by another code version. The output
    directory is locked (:class:`semcom.sweep.OutputLock`) from before the result store opens
    until the run ends, however it ends.

    Raises:
        ConfigError: the output directory is in use by another run (the message names its pid
            and host), holds other results (without ``resume``), or results of a different
            scenario, of other data or (without ``reuse_stale``) of another code version (with
            ``resume``).
        KeyboardInterrupt: in any phase (training, calibration, sweep, writing), after ending
            the worker processes and saving what was finished; provenance says
            ``interrupted``. :class:`semcom.sweep.Interrupted` for SIGTERM and SIGHUP inside
            :func:`semcom.sweep.shutdown_on_signals`.
    """
    started = time.time()
    out = scenario.output_dir()
    with OutputLock(out, "semcom run") as lock:
        stale = describe_stale(lock)
        if stale:
            log(f"{stale}; taken over")
        return _run_locked(scenario, out, started, resume, progress, log, source, reuse_stale)


def _run_locked(
    scenario: Any,
    out: Path,
    started: float,
    resume: bool,
    progress: bool,
    log: Callable[[str], None],
    source: str | Path | None,
    reuse_stale: bool,
) -> RunOutcome:
    store, data = open_store(scenario, resume, reuse_stale, log)
    written = write_scenario(scenario, out, source)
    if written.name != "scenario.yaml":
        log(f"{out / 'scenario.yaml'} is the input scenario: the resolved one is in {written}")
    ex = scenario.execution
    cores = os.cpu_count() or 1
    workers = ex.workers or cores
    device = resolve_device(ex.device)
    points = grid(scenario)
    done = store.completed()
    pending = [p for p in points if p.key not in done]
    computed = 0

    def provenance(status: str, **more: Any) -> None:
        extra = {
            "status": status, "points_total": len(points),
            "points_done": len(store.completed()), "points_computed_this_run": computed,
            "wall_seconds": time.time() - started, "executor": ex.executor, "workers": workers,
            "threads": ex.threads, "device": device, "output_dir": str(out),
            "code": code_identity(), "result_codes": store.codes, "data_digest": data, **more,
        }  # fmt: skip
        record = collect_provenance(
            name=scenario.name, config_hash=scenario.config_hash(),
            seeds={"execution": ex.seed, "link": sorted({p["seed"] for p in points})},
            started=started, extra=extra,
        )  # fmt: skip
        write_json_atomic(out / "provenance.json", record)

    def on_result(result: Any) -> None:
        nonlocal computed
        store.add(result)
        computed += 1

    # the task's setup in this process (compile_kernels; workers == 1) sets its thread counts
    threads_before, solver_threads_before = torch.get_num_threads(), numba.get_num_threads()
    try:
        provenance("running")
        reused = f", {len(points) - len(pending)} reused from results.csv" if resume else ""
        log(
            f"scenario {scenario.name}: {len(points)} points, {len(pending)} to compute{reused} "
            f"-> {out}"
        )
        configs = {
            v: with_checkpoint_dir(scenario.train_config(v), out / "checkpoints")
            for v in scenario.model_variants()
        }
        processes = max(1, min(workers, len(configs)))
        checkpoints = train_models(
            configs, workers, threads=max(1, cores // processes), log=log, progress=progress,
            reuse_stale=reuse_stale,
        )  # fmt: skip
        calibration = calibrate(
            checkpoints, configs, scenario.data.eval_images, scenario.data.calibration_images,
            scenario.importance.method, scenario.importance.options, ex.seed, device,
            estimators=scenario.estimator_plan(), log=log,
            compressions=scenario.compression_plan(), reference=scenario.reference_config(),
        )  # fmt: skip
        for name, rows in (("importance.csv", calibration.importance_rows()),
                           ("ordering.csv", calibration.ordering),
                           ("models.csv", calibration.models)):  # fmt: skip
            if rows or configs:  # separate schemes only: no model, so none of these files
                write_text_atomic(out / name, _csv_text(rows))
        if calibration.codecs:
            write_text_atomic(out / "compression.csv", _csv_text(calibration.compression_rows()))

        point_workers = max(1, min(workers, len(pending)))
        task = LinkPointTask(scenario, calibration, device=device, threads=ex.threads,
                             solver_threads=max(1, cores // point_workers))  # fmt: skip
        bits_rows = task.bits_rows()
        if bits_rows:  # the schemes' per-feature quantiser bits Q[N]
            write_text_atomic(out / "bits.csv", _csv_text(bits_rows))
        if pending:
            compile_kernels(task, pending, log)
            run_points(
                task, pending, executor=ex.executor, workers=point_workers,
                ray_address=ex.ray_address, on_result=on_result, progress=progress,
                description=scenario.name,
                gpus_per_worker=1.0 / workers if device.startswith("cuda") else 0.0,
            )  # fmt: skip
        store.finalize(parquet=scenario.output.parquet)
        if scenario.output.plots:
            from semcom.plots import plot_all

            paths = plot_all(out)
            log(f"{len(paths)} plots in {out / 'plots'}")
        provenance("complete")
    except KeyboardInterrupt as error:
        name = str(error) or "SIGINT"  # a plain KeyboardInterrupt is Ctrl-C
        provenance("interrupted", signal=name)
        log(
            f"interrupted ({name}): {len(store.completed())} of {len(points)} points are saved "
            f"in {out}; rerun with --resume to compute the rest"
        )
        raise
    except BaseException as error:
        provenance("failed", error=f"{type(error).__name__}: {error}")
        raise
    finally:
        torch.set_num_threads(threads_before)
        numba.set_num_threads(solver_threads_before)
    return RunOutcome(out, len(points), computed, len(points) - len(pending),
                      time.time() - started)  # fmt: skip


def compile_kernels(
    task: LinkPointTask,
    points: Sequence[Point],
    log: Callable[[str], None],
    notice_after: float = COMPILE_NOTICE_AFTER,
) -> None:
    """Compile the sweep's Numba kernels once, in this process, before the workers start
    (:meth:`LinkPointTask.compile_kernels`); the workers then load them from Numba's cache.

    With the cache filled this takes about a second and prints nothing. When it takes longer
    than ``notice_after`` seconds (the first run after an install, or after a code change:
    on 2 CPU cores about 2 to 3 minutes, most of it the refined batched allocation solver), it
    says so while it works and how long it took when done
    (:func:`semcom.compile_notice.with_compile_notice`). An exception here is left to the
    sweep, whose points raise it again with their names (:class:`semcom.sweep.PointError`).

    A task on a GPU (``task.device`` ``cuda``) is left alone: there the first frame's time is
    mostly per process (CUDA context, module loading, not Numba's cache), which every worker
    pays anyway, so doing it here first only lengthened the run (measured on an H100 with 15
    workers: 9 to 10 s more for every run, cache warm or not).
    """
    if task.device.startswith("cuda"):
        return
    with_compile_notice(
        lambda: task.compile_kernels(points), "the link and allocation kernels", log, notice_after
    )


def summary(directory: Path) -> str:
    """The printed summary of a results directory: PSNR per scheme and the gain table."""
    from semcom.report import gain_summary, gain_table, load_results, summary_table

    results = load_results(directory)
    text = summary_table(results)
    gains = gain_table(results)
    if len(gains):
        text += "\n\n" + gain_summary(gains)
    return text


__all__ = [
    "RunOutcome", "compile_kernels", "grid", "open_store", "resolve_device", "run_scenario",
    "summary", "write_scenario",
]  # fmt: skip
