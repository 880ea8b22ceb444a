"""A small synthetic results directory of ``semcom run`` with known per-image values.

The per-image PSNR of the reference scheme ``isfr-uep`` at a condition is

    r_i = 12 + 0.8 snr_db + 6 eta + 0.1 n_subchannels + u_i          (dB)

with an image difficulty ``u_i`` shared by every point (the same evaluation images). A baseline
``b`` with gain ``g_b`` (``GAINS``) has ``b_i = r_i − g_b − e_i`` where the noise ``e`` comes in
antithetic pairs ``(+e, −e)``, so the mean paired difference is exactly ``g_b`` while its sample
spread is not zero. ``MSE_i = 10^(−PSNR_i / 10)`` (data range 1). The results rows are the means
over images with Student-t intervals (computed here with ``scipy.stats.t``, independently of
``semcom.metrics``).

Used by tests/semcom/test_report.py, test_plots.py and tests/test_notebooks.py:

    fx = write_results_dir(tmp_path / "run", axes={"snr_db": [0.0, 5.0, 10.0]})
    fx.directory, fx.per_image, fx.results
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

DEFAULTS: dict[str, Any] = {"channel": "rayleigh", "snr_db": 10.0, "eta": 0.5,
                            "n_subchannels": 16, "rician_k": 3.0, "bits_per_scalar": 8,
                            "seed": 0}  # fmt: skip
SCHEMES = ("isfr-uep", "ui-ep", "ui-opt", "passive-uep")
GAINS = {"ui-ep": 3.0, "ui-opt": 1.0, "passive-uep": 0.0}
"""PSNR gain (dB) of isfr-uep over each baseline: a clear win, a smaller win, an exact tie."""
_TRIPLES = {"isfr-uep": ("isfr", "importance", "hierarchical"),
            "ui-ep": ("conventional", "uniform", "ui-ep"),
            "ui-opt": ("conventional", "uniform", "ui-opt"),
            "passive-uep": ("conventional", "importance", "passive")}  # fmt: skip
COLUMNS = ("point", "key", "channel", "snr_db", "eta", "n_subchannels", "rician_k",
           "bits_per_scalar", "seed", "scheme", "model", "weights", "method", "psnr_db",
           "psnr_ci_low", "psnr_ci_high", "ssim", "ssim_ci_low", "ssim_ci_high", "mse",
           "mse_ci_low", "mse_ci_high", "ber", "ber_ci_low", "ber_ci_high", "accuracy",
           "accuracy_ci_low", "accuracy_ci_high", "mean_selected", "bits_sent", "bit_errors",
           "n_images", "n_draws", "stop_reason", "confidence", "seconds")  # fmt: skip


@dataclass
class Fixture:
    """What was written: the directory and the tables as written."""

    directory: Path
    results: pd.DataFrame
    per_image: pd.DataFrame
    gains: dict[str, float]


def _t_interval(values: np.ndarray, confidence: float) -> tuple[float, float, float]:
    mean = float(values.mean())
    half = stats.t.ppf(0.5 + confidence / 2, values.size - 1) * values.std(ddof=1)
    half /= np.sqrt(values.size)
    return mean, mean - half, mean + half


def write_results_dir(
    directory: str | Path,
    axes: Mapping[str, Sequence[Any]] | None = None,
    schemes: Sequence[str] = SCHEMES,
    gains: Mapping[str, float] | None = None,
    n_images: int = 12,
    per_image: bool = True,
    importance: bool = True,
    ssim: bool = True,
    accuracy: bool = True,
    confidence: float = 0.95,
    seed: int = 0,
) -> Fixture:
    """Write results.csv (+ per_image.csv, importance.csv, provenance.json, scenario.yaml).

    ``axes`` override condition columns of :data:`DEFAULTS` with lists of values (the sweep);
    points are the product in axis order with the scheme varying fastest. ``n_images`` must be
    even (antithetic noise pairs).
    """
    assert n_images % 2 == 0 and n_images >= 2
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    gains = {**GAINS, **(gains or {})}
    axes = dict(axes or {})
    names = list(axes)
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0.0, 1.5, n_images)
    rows, images = [], []
    for combo in itertools.product(*(axes[n] for n in names)):
        cond = {**DEFAULTS, **dict(zip(names, combo, strict=True))}
        level = 12 + 0.8 * cond["snr_db"] + 6 * cond["eta"] + 0.1 * cond["n_subchannels"]
        ref = level + difficulty
        for scheme in schemes:
            if scheme == "isfr-uep":
                psnr = ref
            else:
                half = rng.normal(0.0, 0.4, n_images // 2)
                noise = np.stack([half, -half], axis=1).reshape(-1)
                psnr = ref - gains.get(scheme, 1.0) - noise
            mse = 10.0 ** (-psnr / 10.0)
            sim = 1.0 / (1.0 + 20.0 * np.sqrt(mse)) if ssim else np.full(n_images, np.nan)
            key = "|".join(f"{c}={cond[c]}" for c in DEFAULTS) + f"|scheme={scheme}"
            point = len(rows)
            for i in range(n_images):
                images.append({"key": key, "scheme": scheme, "image": i,
                               "psnr_db": psnr[i], "mse": mse[i], "ssim": sim[i]})  # fmt: skip
            p = _t_interval(psnr, confidence)
            m = _t_interval(mse, confidence)
            s = _t_interval(sim, confidence) if ssim else (np.nan,) * 3
            ber = 0.2 * 10.0 ** (-cond["snr_db"] / 10.0) * (1 + 0.2 * gains.get(scheme, 0.0))
            acc = min(1.0, 0.3 + 0.02 * p[0]) if accuracy else np.nan
            model, weights, method = _TRIPLES.get(scheme, ("isfr", "importance", "hierarchical"))
            rows.append({
                "point": point, "key": key, **cond, "scheme": scheme, "model": model,
                "weights": weights, "method": method,
                "psnr_db": p[0], "psnr_ci_low": p[1], "psnr_ci_high": p[2],
                "ssim": s[0], "ssim_ci_low": s[1], "ssim_ci_high": s[2],
                "mse": m[0], "mse_ci_low": m[1], "mse_ci_high": m[2],
                "ber": ber, "ber_ci_low": 0.8 * ber, "ber_ci_high": 1.2 * ber,
                "accuracy": acc, "accuracy_ci_low": acc - 0.05, "accuracy_ci_high": acc + 0.05,
                "mean_selected": 10.0, "bits_sent": 100000, "bit_errors": int(ber * 100000),
                "n_images": n_images, "n_draws": 4, "stop_reason": "converged",
                "confidence": confidence, "seconds": 0.5,
            })  # fmt: skip
    results = pd.DataFrame(rows, columns=list(COLUMNS))
    results.to_csv(root / "results.csv", index=False)
    table = pd.DataFrame(images, columns=["key", "scheme", "image", "psnr_db", "mse", "ssim"])
    if per_image:
        table.to_csv(root / "per_image.csv", index=False)
    if importance:
        _write_importance(root / "importance.csv")
    provenance = {"package_version": "0.1.0", "git_commit": None, "scenario": "fixture",
                  "points_done": len(rows), "points_total": len(rows)}  # fmt: skip
    (root / "provenance.json").write_text(json.dumps(provenance))
    (root / "scenario.yaml").write_text("name: fixture\nsweep: {}\n")
    return Fixture(root, results, table, gains)


def _write_importance(path: Path, n_features: int = 16) -> None:
    """ISFR: geometric profile (importance ordered to the front); conventional: near uniform."""
    rows = []
    isfr = 0.7 ** np.arange(n_features)
    flat = 1.0 + 0.1 * np.cos(np.arange(n_features))
    for model, raw, clean in (("isfr", isfr, 24.0), ("conventional", flat, 23.0)):
        weight = raw / raw.sum()
        for i in range(n_features):
            rows.append({"model": model, "feature": i + 1, "weight": weight[i],
                         "raw": 0.01 * raw[i], "clean_psnr_db": clean})  # fmt: skip
    pd.DataFrame(rows).to_csv(path, index=False)
