"""``semcom run``: a scenario from validated config to results, plots and a summary.

Steps (docs/architecture.md data flow):

1. open the results directory (:class:`semcom.sweep.ResultStore`): a fresh one, or with
   ``resume`` the one of an interrupted run of the same scenario (same config hash);
   write ``scenario.yaml`` (the resolved config) and ``provenance.json``;
2. train or reuse one model per variant the schemes use (:func:`semcom.prepare.train_models`;
   checkpoints keyed by config hash, so a rerun reuses them);
3. measure importance weights (every estimator the schemes use, once per model variant), drop
   distortions and clean PSNRs on held-out calibration images (:func:`semcom.prepare.calibrate`)
   and write ``importance.csv`` and ``ordering.csv`` (each estimator's ordering quality);
4. expand the sweep grid (conditions × schemes), skip the points already in ``results.csv``,
   and evaluate the rest with the scenario's executor (:func:`semcom.sweep.run_points`,
   :class:`semcom.link_task.LinkPointTask`), appending each row as its point completes;
5. sort the results, write ``results.parquet``, the plots, the final provenance, and print the
   summary and the gain of ``isfr-uep`` over each baseline.

Interrupting (Ctrl-C, or a kill) loses at most the points in flight; ``resume=True`` computes
only the missing points, and the final results equal those of an uninterrupted run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from semcom.link_task import LinkPointTask, typed_axes, typed_values
from semcom.prepare import calibrate, train_models, with_checkpoint_dir
from semcom.sweep import (
    ResultStore,
    collect_provenance,
    expand,
    run_points,
    write_json_atomic,
    write_text_atomic,
)


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


def run_scenario(
    scenario: Any,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> RunOutcome:
    """Run ``scenario`` (a validated :class:`semcom.scenario.Scenario`); see the module doc.

    Raises:
        ConfigError: the output directory holds other results (without ``resume``), or results
            of a different scenario (with ``resume``).
        KeyboardInterrupt: after saving what was finished (provenance says ``interrupted``).
    """
    started = time.time()
    out = scenario.output_dir()
    store = ResultStore(out, scenario.config_hash(), resume=resume)
    scenario.dump(out / "scenario.yaml")
    ex = scenario.execution
    cores = os.cpu_count() or 1
    workers = ex.workers or cores
    device = resolve_device(ex.device)
    points = grid(scenario)
    done = store.completed()
    pending = [p for p in points if p.key not in done]

    def provenance(status: str, computed: int = 0) -> None:
        extra = {
            "status": status, "points_total": len(points),
            "points_done": len(store.completed()), "points_computed_this_run": computed,
            "wall_seconds": time.time() - started, "executor": ex.executor, "workers": workers,
            "threads": ex.threads, "device": device, "output_dir": str(out),
        }  # fmt: skip
        record = collect_provenance(
            name=scenario.name, config_hash=scenario.config_hash(),
            seeds={"execution": ex.seed, "link": sorted({p["seed"] for p in points})},
            started=started, extra=extra,
        )  # fmt: skip
        write_json_atomic(out / "provenance.json", record)

    provenance("running")
    log(f"scenario {scenario.name}: {len(points)} points, {len(pending)} to compute -> {out}")
    configs = {
        v: with_checkpoint_dir(scenario.train_config(v), out / "checkpoints")
        for v in scenario.model_variants()
    }
    processes = max(1, min(workers, len(configs)))
    checkpoints = train_models(
        configs, workers, threads=max(1, cores // processes), log=log, progress=progress
    )
    calibration = calibrate(
        checkpoints, configs, scenario.data.eval_images, scenario.data.calibration_images,
        scenario.importance.method, scenario.importance.options, ex.seed, device,
        estimators=scenario.estimator_plan(), log=log,
    )  # fmt: skip
    write_text_atomic(out / "importance.csv", _csv_text(calibration.importance_rows()))
    write_text_atomic(out / "ordering.csv", _csv_text(calibration.ordering))

    task = LinkPointTask(scenario, calibration, device=device, threads=ex.threads)
    computed = 0

    def on_result(result: Any) -> None:
        nonlocal computed
        store.add(result)
        computed += 1

    threads_before = torch.get_num_threads()  # an in-process run sets this process's threads
    try:
        if pending:
            run_points(
                task, pending, executor=ex.executor, workers=max(1, min(workers, len(pending))),
                ray_address=ex.ray_address, on_result=on_result, progress=progress,
                description=scenario.name,
                gpus_per_worker=1.0 / workers if device.startswith("cuda") else 0.0,
            )  # fmt: skip
    except KeyboardInterrupt:
        provenance("interrupted", computed)
        log(
            f"interrupted: {len(store.completed())} of {len(points)} points are saved in {out}; "
            "rerun with --resume to compute the rest"
        )
        raise
    finally:
        torch.set_num_threads(threads_before)
    store.finalize(parquet=scenario.output.parquet)
    provenance("complete", computed)
    if scenario.output.plots:
        from semcom.plots import plot_all

        paths = plot_all(out)
        log(f"{len(paths)} plots in {out / 'plots'}")
    return RunOutcome(out, len(points), computed, len(points) - len(pending),
                      time.time() - started)  # fmt: skip


def summary(directory: Path) -> str:
    """The printed summary of a results directory: PSNR per scheme and the gain table."""
    from semcom.report import gain_summary, gain_table, load_results, summary_table

    results = load_results(directory)
    text = summary_table(results)
    gains = gain_table(results)
    if len(gains):
        text += "\n\n" + gain_summary(gains)
    return text


__all__ = ["RunOutcome", "grid", "resolve_device", "run_scenario", "summary"]
