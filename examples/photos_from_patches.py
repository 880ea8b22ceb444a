"""Evaluate models trained on 32x32 patches on the 256x256 photo crops, without retraining.

The ``photos`` train split equals the ``patches`` train split (:mod:`semcom.photos`), so the
models that ``scenarios/dropout_baseline.yaml`` trains are the models ``scenarios/photos.yaml``
would train, except for the checkpoint key (which names the data set). This script reuses the
patches checkpoints (training them first if the folder lacks them), calibrates and evaluates
them on the photo crops with the photos scenario's link, schemes and metrics (PSNR, SSIM,
MS-SSIM), and writes one results row per point.

Usage::

    python examples/photos_from_patches.py CHECKPOINT_DIR OUT.csv [--set PATH=VALUE ...]

The ``--set`` overrides apply to ``scenarios/photos.yaml`` (e.g. ``execution.seed=1``); the
seed also selects the patches models. A checkpoint of the same training config and data made by
another code version is reused (``reuse_stale``).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pandas as pd

from semcom.link_task import LinkPointTask
from semcom.models.build import at_input_shape
from semcom.prepare import calibrate, test_split, train_models
from semcom.runner import grid
from semcom.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    checkpoints_dir, out = Path(argv[0]), Path(argv[1])
    overrides = [v for k, v in zip(argv[2::2], argv[3::2], strict=True) if k == "--set"]
    photos = load_scenario(ROOT / "scenarios" / "photos.yaml", overrides)
    seed = [o for o in overrides if o.startswith("execution.seed=")]
    patches = load_scenario(ROOT / "scenarios" / "dropout_baseline.yaml", seed)
    configs = {
        v: dataclasses.replace(patches.train_config(v), checkpoint_dir=str(checkpoints_dir))
        for v in photos.model_variants()
    }
    # a checkpoint of the same config and data made by an earlier code version is reused
    checkpoints = train_models(configs, workers=1, threads=2, progress=False, reuse_stale=True)
    photo_configs = {
        v: dataclasses.replace(c, dataset="photos", dataset_options=dict(photos.data.options))
        for v, c in configs.items()
    }
    calibration = calibrate(
        checkpoints, photo_configs, photos.data.eval_images, photos.data.calibration_images,
        photos.importance.method, photos.importance.options, photos.execution.seed,
        estimators=photos.estimator_plan(), ordering=False, log=print,
    )  # fmt: skip
    task = LinkPointTask(photos, calibration)
    task.setup()  # loads the patches-shaped models and test split; replaced below
    test = test_split(next(iter(photo_configs.values())))
    images = test.images[calibration.eval_indices]
    models = {v: at_input_shape(m, images.shape[1:]) for v, m in task._models.items()}
    task.use_models(models, images)
    rows = []
    for point in grid(photos):
        row = task(point).row
        rows.append(row)
        print(f"{row['snr_db']:>5} {row['scheme']:<20} PSNR {row['psnr_db']:.2f} "
              f"MS-SSIM {row['ms_ssim']:.4f}", flush=True)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
