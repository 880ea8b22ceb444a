"""``semcom run`` arguments of a tiny one-point run (1 epoch, 4 images, 1 draw), for tests that
train a scenario's variants and run its schemes end to end."""

from __future__ import annotations

from pathlib import Path


def tiny_run_args(scenario: Path, out: Path, checkpoints: Path, schemes: str, snr_db: float):
    """The argument list of ``semcom run`` for ``schemes`` (YAML list text) at one SNR."""
    return [
        "run", str(scenario), "--out", str(out), "--workers", "1", "--no-progress",
        "--set", f"schemes={schemes}",
        "--set", "training.epochs=1", "--set", "training.batch_size=256",
        "--set", "output.plots=false", "--set", "output.parquet=false",
        "--set", f"sweep.snr_db=[{snr_db:g}]",
        "--set", "data.eval_images=4", "--set", "stop.min_draws=1", "--set", "stop.max_draws=1",
        "--set", f"training.checkpoint_dir={checkpoints}",
    ]  # fmt: skip
