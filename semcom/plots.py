"""Figures of a results directory of ``semcom run`` (matplotlib), read from results files only.

- :func:`plot_metric`: a metric (PSNR, SSIM, MSE, BER, accuracy) against one condition axis,
  one line per scheme with its confidence interval as capped error bars; log scale for MSE
  and BER.
- :func:`plot_gains`: the paired PSNR gain of the reference over each baseline
  (:func:`semcom.report.gain_table`) against one axis, with its interval and the zero line.
- :func:`plot_importance`: the importance profile ``w_i`` against the 1-based feature index,
  one line per model variant.
- :func:`plot_all`: every figure of a results directory, written to ``<dir>/plots/``.

The single-axes functions draw on ``ax`` (or on a new pyplot figure when ``ax`` is None, for
notebooks) and need one value of every varying axis other than ``x``: facet with
:func:`semcom.report.select`. :func:`plot_all` draws on :class:`matplotlib.figure.Figure`
objects that pyplot never sees, so it neither changes nor needs the pyplot backend (no
``matplotlib.use``) and leaves no open figure behind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from channels.errors import fail
from semcom.importance.concentration import gini
from semcom.report import (
    CONDITION_COLUMNS,
    Results,
    check_metric,
    ci_columns,
    format_value,
    gain_table,
    load_results,
    metrics_present,
    select,
    varying_axes,
)
from semcom.schemes import PROPOSED

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PLOT_X_AXES = ("snr_db", "eta", "n_subchannels")
"""The axes :func:`plot_all` puts on the x axis when they vary."""
FORMATS = ("png", "pdf", "svg")
LOG_METRICS = ("mse", "ber")
METRIC_LABELS = {"psnr_db": "PSNR (dB)", "ssim": "SSIM", "ms_ssim": "MS-SSIM", "mse": "MSE",
                 "ber": "BER", "accuracy": "accuracy"}  # fmt: skip
AXIS_LABELS = {"snr_db": "average SNR Es/N0 (dB)", "eta": "symbol budget η",
               "n_subchannels": "subchannels K", "rician_k": "Rician K-factor",
               "bits_per_scalar": "bits per scalar Q", "seed": "link seed",
               "channel": "channel"}  # fmt: skip
_MARKERS = "osD^vP*Xh<>"


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5.0, 3.6), layout="constrained")[1]


def _check_x(res: Results, x: str) -> None:
    frame = res.results
    if x not in CONDITION_COLUMNS or x not in frame.columns:
        raise fail("x", x, ", ".join(c for c in CONDITION_COLUMNS if c in frame.columns))
    others = [a for a in varying_axes(frame) if a != x]
    if others:
        raise fail("results", f"several values of {', '.join(others)}",
                   f"one value of every axis but {x}; facet with semcom.report.select")  # fmt: skip


def _errors(mean: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Error-bar lengths ``[2, n]`` (below, above); NaN (nothing drawn) where not finite."""
    err = np.stack([mean - low, high - mean]).astype(np.float64)
    err[~np.isfinite(err)] = np.nan
    return np.clip(err, 0.0, None)


def _style(index: int, name: str, reference: str = PROPOSED) -> dict[str, Any]:
    proposed = name == reference
    # colour and marker follow the scheme's position, so a scheme looks the same in every figure
    return {"marker": _MARKERS[index % len(_MARKERS)], "color": f"C{index % 10}", "capsize": 3,
            "markersize": 4, "linewidth": 2.0 if proposed else 1.2,
            "linestyle": "-" if proposed else "--", "zorder": 3 if proposed else 2,
            "label": name}  # fmt: skip


def _x_values(column: pd.Series) -> np.ndarray:
    values = column.to_numpy()
    return values.astype(str) if column.dtype == object else values


def plot_metric(
    res: Results,
    metric: str,
    x: str,
    ax: Axes | None = None,
    schemes: Sequence[str] | None = None,
) -> Axes:
    """``metric`` against the condition column ``x``, one line per scheme with CI error bars.

    Every other varying axis must have one value (facet with :func:`semcom.report.select`).
    ``schemes``: which schemes and in which order (default: all, proposed first). Log y for
    ``mse`` and ``ber`` (when any value is positive).
    """
    check_metric(res, metric)
    _check_x(res, x)
    chosen = list(schemes) if schemes is not None else res.schemes
    for name in chosen:
        if name not in res.schemes:
            raise fail("schemes", name, f"a scheme of the results ({', '.join(res.schemes)})")
    ax = _axes(ax)
    low_col, high_col = ci_columns(metric)
    for index, scheme in enumerate(chosen):
        rows = res.results[res.results["scheme"] == scheme].sort_values(x)
        mean = rows[metric].to_numpy(np.float64)
        low = rows[low_col].to_numpy(np.float64) if low_col in rows else np.full_like(mean, np.nan)
        high = rows[high_col].to_numpy(np.float64) if high_col in rows else low
        style = _style(index, scheme)
        ax.errorbar(_x_values(rows[x]), mean, yerr=_errors(mean, low, high), **style)
    if metric in LOG_METRICS and (res.results[metric] > 0).any():
        ax.set_yscale("log")
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(METRIC_LABELS.get(metric, metric))
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return ax


def plot_importance(res: Results, ax: Axes | None = None) -> Axes:
    """Importance ``w_i`` against the feature index ``i = 1..N``, one line per model variant
    (per model variant and estimator when ``importance.csv`` has several estimators).

    The legend gives each profile's Gini index (0: uniform, ``(N−1)/N``: one-hot).
    """
    table = res.importance
    if table is None or table.empty:
        raise fail("importance.csv", str(res.directory / "importance.csv"),
                   "a results directory with importance profiles")  # fmt: skip
    from matplotlib.ticker import MaxNLocator

    ax = _axes(ax)
    label = table["model"].astype(str)
    if "estimator" in table and table["estimator"].nunique() > 1:
        label = label + " / " + table["estimator"].astype(str)
    models = list(dict.fromkeys(label))
    for index, model in enumerate(models):
        rows = table[label == model].sort_values("feature")
        weights = rows["weight"].to_numpy(np.float64)
        style = _style(index, model, reference="isfr")
        style.pop("capsize")
        style["label"] = f"{model} (Gini {gini(np.clip(weights, 0, None)):.2f})"
        ax.plot(rows["feature"].to_numpy(), weights, **style)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("feature index i")
    ax.set_ylabel("importance $w_i$")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    return ax


def _draw_gains(ax: Axes, gains: pd.DataFrame, x: str) -> None:
    reference = str(gains["reference"].iloc[0]) if len(gains) else PROPOSED
    for index, baseline in enumerate(dict.fromkeys(gains["baseline"])):
        rows = gains[gains["baseline"] == baseline].sort_values(x)
        mean = rows["psnr_gain_db"].to_numpy(np.float64)
        low = rows["psnr_gain_ci_low"].to_numpy(np.float64)
        high = rows["psnr_gain_ci_high"].to_numpy(np.float64)
        style = _style(index + 1, f"vs {baseline}", reference="")
        ax.errorbar(_x_values(rows[x]), mean, yerr=_errors(mean, low, high), **style)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xlabel(AXIS_LABELS.get(x, x))
    ax.set_ylabel(f"PSNR gain of {reference} (dB)")
    ax.grid(True, alpha=0.3)
    if len(gains):
        ax.legend(fontsize="small")


def plot_gains(res: Results, x: str, ax: Axes | None = None, reference: str = PROPOSED) -> Axes:
    """Paired PSNR gain of ``reference`` over each baseline against ``x``, with its interval.

    The gains are :func:`semcom.report.gain_table` (uniform-importance baselines); a horizontal
    line marks 0 dB. Every other varying axis must have one value.
    """
    _check_x(res, x)
    ax = _axes(ax)
    _draw_gains(ax, gain_table(res, reference=reference), x)
    return ax


# ------------------------------------------------------------------------------- plot_all


def _new_figure(n_panels: int) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure

    ncols = min(n_panels, 3)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(4.8 * ncols, 3.6 * nrows), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for extra in axes[n_panels:]:
        fig.delaxes(extra)
    return fig, axes[:n_panels]


def _save(fig: Figure, path: Path, dpi: int, written: list[Path]) -> None:
    fig.savefig(path, dpi=dpi)
    fig.clear()  # the Figure is not known to pyplot: dropping it frees it
    written.append(path)


def _facets(frame: pd.DataFrame, axes: Sequence[str]) -> list[dict[str, Any]]:
    """The combinations of values of ``axes`` present in ``frame``, sorted."""
    if not axes:
        return [{}]
    combos = frame[list(axes)].drop_duplicates().sort_values(list(axes))
    return [dict(zip(axes, row, strict=True)) for row in combos.itertuples(index=False)]


def _title(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in values.items())


def _select_gains(gains: pd.DataFrame, values: dict[str, Any]) -> pd.DataFrame:
    mask = pd.Series(True, index=gains.index)
    for name, value in values.items():
        mask &= gains[name].isna() if pd.isna(value) else gains[name] == value
    return gains[mask]


def _bars(
    ax: Axes, names: list[str], mean: np.ndarray, low: np.ndarray, high: np.ndarray, first: int = 0
) -> None:
    colors = [f"C{(first + i) % 10}" for i in range(len(names))]
    ax.bar(names, mean, yerr=_errors(mean, low, high), capsize=4, color=colors)
    ax.tick_params(axis="x", labelrotation=20)
    ax.grid(True, axis="y", alpha=0.3)


def plot_all(
    res_or_dir: Results | str | Path,
    out_dir: str | Path | None = None,
    fmt: str = "png",
    dpi: int = 120,
    reference: str = PROPOSED,
) -> list[Path]:
    """Write every figure of a results directory; returns the written paths.

    Into ``out_dir`` (default ``<dir>/plots/``), for each varying ``x`` among
    :data:`PLOT_X_AXES` (or, when none of them varies, each varying axis) and each metric
    present (:func:`semcom.report.metrics_present`):

    - ``<metric>_vs_<x>.<fmt>``: one panel per combination of the other varying axes;
    - ``gain_vs_<x>.<fmt>``: the paired PSNR gains of ``reference`` (when it and a baseline
      share a condition).

    With no varying axis: bar charts ``<metric>_by_scheme.<fmt>`` and
    ``gain_by_baseline.<fmt>``. Always ``importance.<fmt>`` when importance.csv exists.
    """
    res = res_or_dir if isinstance(res_or_dir, Results) else load_results(res_or_dir)
    if fmt not in FORMATS:
        raise fail("format", fmt, ", ".join(FORMATS))
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 10 <= dpi <= 2400:
        raise fail("dpi", dpi, "an integer in 10..2400")
    out = Path(out_dir) if out_dir is not None else res.directory / "plots"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    frame = res.results
    metrics = metrics_present(res) if len(frame) else []
    gains = gain_table(res, reference=reference) if reference in res.schemes else None
    varying = varying_axes(frame)
    xs = [a for a in PLOT_X_AXES if a in varying] or varying
    for x in xs:
        facets = _facets(frame, [a for a in varying if a != x])
        for metric in metrics:
            fig, axes = _new_figure(len(facets))
            for ax, values in zip(axes, facets, strict=True):
                plot_metric(select(res, **values), metric, x, ax=ax)
                ax.set_title(_title(values), fontsize="small")
            fig.suptitle(f"{METRIC_LABELS[metric]} vs {AXIS_LABELS.get(x, x)}")
            _save(fig, out / f"{metric}_vs_{x}.{fmt}", dpi, written)
        if gains is not None and len(gains):
            fig, axes = _new_figure(len(facets))
            for ax, values in zip(axes, facets, strict=True):
                _draw_gains(ax, _select_gains(gains, values), x)
                ax.set_title(_title(values), fontsize="small")
            fig.suptitle(f"Paired PSNR gain of {reference} vs {AXIS_LABELS.get(x, x)}")
            _save(fig, out / f"gain_vs_{x}.{fmt}", dpi, written)
    if not varying and len(frame):
        fixed = [f"{c}={format_value(frame[c].iloc[0])}" for c in CONDITION_COLUMNS if c in frame]
        condition = "\n".join(", ".join(fixed[i : i + 4]) for i in range(0, len(fixed), 4))
        for metric in metrics:
            low_col, high_col = ci_columns(metric)
            rows = frame.set_index("scheme").loc[res.schemes]
            fig, (ax,) = _new_figure(1)
            mean, low, high = (rows[c].to_numpy(np.float64) for c in (metric, low_col, high_col))
            _bars(ax, res.schemes, mean, low, high)
            ax.set_ylabel(METRIC_LABELS[metric])  # linear even for MSE/BER: bars start at 0
            ax.set_title(condition, fontsize="small")
            _save(fig, out / f"{metric}_by_scheme.{fmt}", dpi, written)
        if gains is not None and len(gains):
            fig, (ax,) = _new_figure(1)
            columns = ("psnr_gain_db", "psnr_gain_ci_low", "psnr_gain_ci_high")
            mean, low, high = (gains[c].to_numpy(np.float64) for c in columns)
            _bars(ax, [f"vs {b}" for b in gains["baseline"]], mean, low, high, first=1)
            ax.axhline(0.0, color="black", linewidth=0.8)
            ax.set_ylabel(f"PSNR gain of {reference} (dB)")
            ax.set_title(condition, fontsize="small")
            _save(fig, out / f"gain_by_baseline.{fmt}", dpi, written)
    if res.importance is not None and not res.importance.empty:
        fig, (ax,) = _new_figure(1)
        plot_importance(res, ax=ax)
        ax.set_title("Importance profiles (importance.csv)", fontsize="small")
        _save(fig, out / f"importance.{fmt}", dpi, written)
    return written


__all__ = [
    "AXIS_LABELS",
    "FORMATS",
    "METRIC_LABELS",
    "PLOT_X_AXES",
    "plot_all",
    "plot_gains",
    "plot_importance",
    "plot_metric",
]
