"""Results directories of ``semcom run``: loading, summary tables and paired gain statistics.

A results directory (docs/results.md, "The results files") holds ``results.csv`` (one row per
sweep point: condition columns, scheme, metrics with intervals, counts), and optionally
``per_image.csv`` (per point and evaluation image: ``psnr_db``, ``mse``, ``ssim``),
``importance.csv``, ``provenance.json`` and ``scenario.yaml``. This module only reads them.

**Paired gains** (the paper's claim: the reference ``isfr-uep`` against the uniform-importance
baselines). At one condition, let ``r_i`` and ``b_i`` be a metric of the reference and of a
baseline on evaluation image ``i``, for the ``n`` images both were evaluated on (the same images
for every point, so the comparison is paired):

- PSNR gain (dB): ``d_i = PSNR_r,i − PSNR_b,i``, gain ``d̄ = (1/n) Σ_i d_i`` with the paired
  Student-t interval ``d̄ ± t_{(1+c)/2, n−1} s_d / √n`` (``s_d`` the sample standard deviation,
  ``n − 1`` in the denominator); the same interval as
  ``scipy.stats.ttest_rel(r, b).confidence_interval(c)``.
- ``psnr_gain_pct = 100 (PSNR_r / PSNR_b − 1)`` from the two results rows' mean PSNRs.
- MSE reduction (%): ``100 (1 − Σ_i MSE_r,i / Σ_i MSE_b,i)``, i.e. one minus the ratio of the
  mean MSEs, with a percentile bootstrap interval: ``n_boot`` resamples of the image indices
  with replacement (the same indices for both schemes, which keeps the pairing), from a fresh
  ``numpy.random.default_rng(seed)`` per row, so that a row does not depend on the other rows.
- SSIM gain: paired Student-t, like the PSNR gain (NaN when SSIM was not computed).
- ``wins``: the PSNR-gain interval lies above 0; ``loses``: below 0; otherwise a tie.

``psnr_ref``, ``psnr_base``, ``mse_ref`` and ``mse_base`` are the results rows' means. Without
``per_image.csv`` (or without per-image rows for a pair) the gains are the differences of these
means, every interval is NaN, ``n_images`` is the smaller of the two rows' ``n_images``, and
``wins`` and ``loses`` are False (the summaries show no verdict). With one image the t interval
is ``(−inf, +inf)`` (:func:`semcom.metrics.mean_ci`) and so is the bootstrap interval.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from channels.errors import ConfigError, check_int, fail
from semcom.metrics import mean_ci
from semcom.schemes import DROPOUT_BASELINES, PROPOSED, UNIFORM_IMPORTANCE_BASELINES

CONDITION_COLUMNS = ("channel", "snr_db", "eta", "n_subchannels", "rician_k", "bits_per_scalar",
                     "seed")  # fmt: skip
"""The columns that make up one condition; within a condition the schemes are compared."""

METRICS = ("psnr_db", "ssim", "mse", "ber", "accuracy", "ms_ssim")
"""Metric columns of results.csv, each with ``<prefix>_ci_low`` and ``<prefix>_ci_high``."""

GAIN_COLUMNS = ("reference", "baseline", "psnr_ref", "psnr_base", "psnr_gain_db",
                "psnr_gain_ci_low", "psnr_gain_ci_high", "psnr_gain_pct", "mse_ref", "mse_base",
                "mse_reduction_pct", "mse_reduction_ci_low", "mse_reduction_ci_high", "ssim_ref",
                "ssim_base", "ssim_gain", "ssim_gain_ci_low", "ssim_gain_ci_high", "n_images",
                "wins", "loses")  # fmt: skip
"""Columns of :func:`gain_table` after the condition columns."""

_NOT_A_RESULTS_DIR = "a results directory of semcom run (with results.csv)"
_DIGITS = {"psnr_db": "{:.2f}", "ssim": "{:.4f}", "ms_ssim": "{:.4f}", "mse": "{:.3e}",
           "ber": "{:.3e}", "accuracy": "{:.3f}", "pct": "{:.1f}"}  # fmt: skip


@dataclass
class Results:
    """The files of one results directory; the optional ones are None when absent."""

    directory: Path
    results: pd.DataFrame
    per_image: pd.DataFrame | None = None
    importance: pd.DataFrame | None = None
    provenance: dict | None = None
    scenario: dict | None = None

    @property
    def schemes(self) -> list[str]:
        """Schemes present, proposed first, then the baselines, then the rest by appearance."""
        return order_schemes(self.results["scheme"].dropna().astype(str).unique())


def ci_columns(metric: str) -> tuple[str, str]:
    """Names of the interval columns of ``metric`` (``psnr_db`` -> ``psnr_ci_low``, ...)."""
    prefix = "psnr" if metric == "psnr_db" else metric
    return f"{prefix}_ci_low", f"{prefix}_ci_high"


def order_schemes(schemes: Iterable[str]) -> list[str]:
    """``schemes`` without duplicates: :data:`PROPOSED`, the uniform baselines (then their
    dropout-trained twins), then the rest."""
    seen = list(dict.fromkeys(schemes))
    baselines = (*UNIFORM_IMPORTANCE_BASELINES, *DROPOUT_BASELINES)
    first = [s for s in (PROPOSED, *baselines) if s in seen]
    return first + [s for s in seen if s not in first]


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise fail(str(path), "an empty file", "a CSV file with a header line") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise fail(str(path), f"unreadable CSV ({reason})", "a CSV file of semcom run") from None


def _require(frame: pd.DataFrame, path: Path, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise fail(str(path), f"no column {', '.join(missing)}", "the columns of semcom run")


def _require_numbers(frame: pd.DataFrame, path: Path) -> None:
    numeric = [*CONDITION_COLUMNS[1:], *METRICS, *(c for m in METRICS for c in ci_columns(m))]
    for column in (c for c in numeric if c in frame.columns):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][values.isna() & frame[column].notna()]
        if len(bad):
            raise fail(f"{path}: column {column}", bad.iloc[0], "numbers")


def _optional_csv(path: Path, columns: Sequence[str]) -> pd.DataFrame | None:
    if not path.is_file():
        return None
    frame = _read_csv(path)
    _require(frame, path, columns)
    return frame


def load_results(directory: str | Path) -> Results:
    """Read the results directory ``directory`` of ``semcom run``.

    Raises:
        ConfigError: the directory or its ``results.csv`` is missing, or a file is unreadable
            or lacks a required column (the message names the file).
    """
    root = Path(directory)
    csv = root / "results.csv"
    if not root.is_dir() or not csv.is_file():
        raise fail("results_dir", str(directory), _NOT_A_RESULTS_DIR)
    if (root / "store.json").is_file():  # written by semcom run: check every line
        from semcom.sweep.store import damage_report

        damage = damage_report(root, {"per_image": "n_images"})
        if damage:
            raise ConfigError(
                f"results_dir: '{root}' is damaged ({damage}); allowed: semcom run with its "
                f"scenario and --out {root} --resume, which recomputes the damaged points"
            )
    results = _read_csv(csv)
    _require(results, csv, ("key", "scheme"))
    _require_numbers(results, csv)
    results["scheme"] = results["scheme"].astype(str)
    if "point" in results.columns and len(results):
        results = results.sort_values("point", kind="stable").reset_index(drop=True)
    per_image = _optional_csv(root / "per_image.csv", ("key", "scheme", "image", "psnr_db", "mse"))
    importance = _optional_csv(root / "importance.csv", ("model", "feature", "weight"))
    provenance = scenario = None
    if (root / "provenance.json").is_file():
        try:
            provenance = json.loads((root / "provenance.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise fail(str(root / "provenance.json"), "invalid JSON", "a JSON object") from None
    if (root / "scenario.yaml").is_file():
        import yaml

        try:
            scenario = yaml.safe_load((root / "scenario.yaml").read_text())
        except (yaml.YAMLError, UnicodeDecodeError):
            raise fail(str(root / "scenario.yaml"), "invalid YAML", "a YAML mapping") from None
    return Results(root, results, per_image, importance, provenance, scenario)


def condition_columns(results: pd.DataFrame) -> list[str]:
    """The :data:`CONDITION_COLUMNS` present in ``results``, in that order."""
    return [c for c in CONDITION_COLUMNS if c in results.columns]


def varying_axes(results: pd.DataFrame | Results) -> list[str]:
    """The condition columns with more than one value (NaN counts as a value)."""
    frame = results.results if isinstance(results, Results) else results
    return [c for c in condition_columns(frame) if frame[c].nunique(dropna=False) > 1]


def _matches(column: pd.Series, value: Any) -> pd.Series:
    if isinstance(value, float) and math.isnan(value):
        return column.isna()
    return column == value


def select(res: Results, **values: Any) -> Results:
    """The rows of ``res`` at the given condition values (``select(res, eta=0.5)``).

    ``per_image`` keeps the rows of the selected points; the other files are shared.
    """
    frame = res.results
    mask = pd.Series(True, index=frame.index)
    for name, value in values.items():
        if name not in frame.columns:
            raise fail(name, value, f"a column of results.csv ({', '.join(frame.columns)})")
        mask &= _matches(frame[name], value)
    chosen = frame[mask].reset_index(drop=True)
    per_image = res.per_image
    if per_image is not None:
        per_image = per_image[per_image["key"].isin(set(chosen["key"]))].reset_index(drop=True)
    return replace(res, results=chosen, per_image=per_image)


def metrics_present(res: Results) -> list[str]:
    """The :data:`METRICS` columns of ``res.results`` with at least one non-NaN value."""
    frame = res.results
    return [m for m in METRICS if m in frame.columns and frame[m].notna().any()]


def check_metric(res: Results, metric: str) -> None:
    """Raise ConfigError unless ``metric`` is one of :data:`METRICS` and a column of ``res``."""
    if metric not in METRICS:
        raise fail("metric", metric, ", ".join(METRICS))
    if metric not in res.results.columns:
        raise fail("metric", metric, f"a metric of the results ({', '.join(metrics_present(res))})")


# ---------------------------------------------------------------------------------- gains


def _paired(by_key: dict[str, pd.DataFrame], key_ref: str, key_base: str) -> pd.DataFrame | None:
    """Per-image rows of two points joined on ``image`` (suffixes ``_r``, ``_b``)."""
    ref, base = by_key.get(key_ref), by_key.get(key_base)
    if ref is None or base is None:
        return None
    return ref.merge(base, on="image", suffixes=("_r", "_b"))


def _bootstrap_reduction(
    ref: np.ndarray, base: np.ndarray, confidence: float, n_boot: int, seed: int
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``100 (1 − mean ref / mean base)``, paired resamples."""
    n = ref.size
    if n < 2:
        return -math.inf, math.inf
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(base))):
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    values = np.empty(n_boot)
    chunk = max(1, 2**22 // n)
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in range(0, n_boot, chunk):
            count = min(chunk, n_boot - start)
            idx = rng.integers(0, n, size=(count, n))
            values[start : start + count] = 100.0 * (
                1.0 - ref[idx].mean(axis=1) / base[idx].mean(axis=1)
            )
    if np.any(np.isnan(values)):
        return math.nan, math.nan
    low, high = np.quantile(values, [0.5 - confidence / 2.0, 0.5 + confidence / 2.0])
    return float(low), float(high)


def _reduction(ref_mean: float, base_mean: float) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(100.0 * (1.0 - np.float64(ref_mean) / np.float64(base_mean)))


def _get(row: pd.Series, column: str) -> float:
    value = row.get(column, math.nan)
    return math.nan if value is None or pd.isna(value) else float(value)


def _gain_row(
    by_key: dict[str, pd.DataFrame],
    ref: pd.Series,
    base: pd.Series,
    confidence: float,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """Paired statistics of one (condition, baseline): the values of :data:`GAIN_COLUMNS`."""
    nan = math.nan
    row: dict[str, Any] = {
        "reference": ref["scheme"], "baseline": base["scheme"],
        "psnr_ref": _get(ref, "psnr_db"), "psnr_base": _get(base, "psnr_db"),
        "mse_ref": _get(ref, "mse"), "mse_base": _get(base, "mse"),
        "ssim_ref": _get(ref, "ssim"), "ssim_base": _get(base, "ssim"),
    }  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        row["psnr_gain_pct"] = float(100.0 * (np.float64(row["psnr_ref"]) / row["psnr_base"] - 1))
    pairs = _paired(by_key, ref["key"], base["key"])
    if pairs is None or pairs.empty:
        counts = [_get(ref, "n_images"), _get(base, "n_images")]
        counts = [c for c in counts if not math.isnan(c)]
        row.update(
            psnr_gain_db=row["psnr_ref"] - row["psnr_base"],
            psnr_gain_ci_low=nan, psnr_gain_ci_high=nan,
            mse_reduction_pct=_reduction(row["mse_ref"], row["mse_base"]),
            mse_reduction_ci_low=nan, mse_reduction_ci_high=nan,
            ssim_gain=row["ssim_ref"] - row["ssim_base"], ssim_gain_ci_low=nan,
            ssim_gain_ci_high=nan, n_images=int(min(counts)) if counts else 0,
        )  # fmt: skip
    else:
        psnr = mean_ci(pairs["psnr_db_r"] - pairs["psnr_db_b"], confidence, "t")
        mse_r = pairs["mse_r"].to_numpy(np.float64)
        mse_b = pairs["mse_b"].to_numpy(np.float64)
        low, high = _bootstrap_reduction(mse_r, mse_b, confidence, n_boot, seed)
        row.update(
            psnr_gain_db=psnr.mean, psnr_gain_ci_low=psnr.low, psnr_gain_ci_high=psnr.high,
            mse_reduction_pct=_reduction(mse_r.mean(), mse_b.mean()),
            mse_reduction_ci_low=low, mse_reduction_ci_high=high, n_images=len(pairs),
        )  # fmt: skip
        ssim_gain = (nan, nan, nan)
        if "ssim_r" in pairs.columns:
            diff = (pairs["ssim_r"] - pairs["ssim_b"]).to_numpy(np.float64)
            if diff.size and not np.any(np.isnan(diff)):
                est = mean_ci(diff, confidence, "t")
                ssim_gain = (est.mean, est.low, est.high)
        row.update(ssim_gain=ssim_gain[0], ssim_gain_ci_low=ssim_gain[1],
                   ssim_gain_ci_high=ssim_gain[2])  # fmt: skip
    row["wins"] = bool(row["psnr_gain_ci_low"] > 0)  # NaN compares False
    row["loses"] = bool(row["psnr_gain_ci_high"] < 0)
    return row


def gain_table(
    res: Results,
    reference: str = PROPOSED,
    baselines: Sequence[str] | None = None,
    confidence: float = 0.95,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired gains of ``reference`` over each baseline, one row per (condition, baseline).

    Columns: the condition columns, then :data:`GAIN_COLUMNS` (module docstring for the
    statistics). Rows only where both schemes were run at that condition, in condition order
    and then baseline order; no rows when ``reference`` is not in the results.
    ``baselines=None``: the :data:`~semcom.schemes.UNIFORM_IMPORTANCE_BASELINES` and
    :data:`~semcom.schemes.DROPOUT_BASELINES` present in the results.
    The confidence level is kept in ``table.attrs["confidence"]``.

    Raises:
        ConfigError: a baseline given in ``baselines`` is not a scheme of the results, a
            condition has several rows of one scheme, or ``confidence``/``n_boot``/``seed`` is
            invalid.
    """
    if not (isinstance(confidence, float | int) and 0.0 < confidence < 1.0):
        raise fail("confidence", confidence, "a number in (0, 1)")
    n_boot = check_int("n_boot", n_boot, 1)
    seed = check_int("seed", seed, 0)
    present = res.schemes
    if baselines is None:
        known = (*UNIFORM_IMPORTANCE_BASELINES, *DROPOUT_BASELINES)
        baselines = [s for s in known if s in present and s != reference]
    for name in baselines:
        if name not in present:
            raise fail("baselines", name, f"a scheme of the results ({', '.join(present)})")
    conditions = condition_columns(res.results)
    by_key: dict[str, pd.DataFrame] = {}
    if res.per_image is not None:
        by_key = {str(k): part for k, part in res.per_image.groupby("key", sort=False)}
    rows: list[dict[str, Any]] = []
    frame = res.results
    groups = frame.groupby(conditions, dropna=False, sort=True) if conditions else [((), frame)]
    for values, group in groups:
        by_scheme = {}
        for scheme, part in group.groupby("scheme", sort=False):
            if len(part) > 1:
                raise fail("results.csv", f"{len(part)} rows of scheme {scheme} at "
                           f"{_describe(dict(zip(conditions, values, strict=True)))}",
                           "one row per condition and scheme")  # fmt: skip
            by_scheme[scheme] = part.iloc[0]
        if reference not in by_scheme:
            continue
        for name in baselines:
            if name in by_scheme and name != reference:
                gains = _gain_row(by_key, by_scheme[reference], by_scheme[name], confidence,
                                  n_boot, seed)  # fmt: skip
                rows.append({**dict(zip(conditions, values, strict=True)), **gains})
    table = pd.DataFrame(rows, columns=[*conditions, *GAIN_COLUMNS])
    table.attrs["confidence"] = float(confidence)
    return table


# ----------------------------------------------------------------------------- formatting


def format_value(value: Any, metric: str | None = None) -> str:
    """A number for a table: the metric's digits, ``%g`` otherwise; NaN/None -> ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool | np.bool_ | str):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = _DIGITS.get(metric or "", "{:g}").format(value)
    return text[1:] if text.startswith("-") and not text.strip("-0.e+") else text  # no "-0.00"


def _interval(mean: Any, low: Any, high: Any, metric: str | None = None) -> str:
    text = format_value(mean, metric)
    if text == "-" or (pd.isna(low) and pd.isna(high)):
        return text
    return f"{text} [{format_value(low, metric)}, {format_value(high, metric)}]"


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={format_value(v)}" for k, v in values.items())


def _fixed(frame: pd.DataFrame, varying: Sequence[str]) -> dict[str, Any]:
    return {c: frame[c].iloc[0] for c in condition_columns(frame) if c not in varying}


def _render_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def _render_markdown(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: int) -> str:
    """A GitHub table; the columns from index ``numeric`` to the last but one are right-aligned."""

    def cells(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

    last = len(header) - 1
    align = ["---:" if numeric <= i < last else "---" for i in range(len(header))]
    return "\n".join([cells(header), "|" + "|".join(align) + "|", *map(cells, rows)])


def _confidence_label(res_or_gains: Results | pd.DataFrame) -> str:
    if isinstance(res_or_gains, Results):
        frame = res_or_gains.results
        levels = frame["confidence"].dropna().unique() if "confidence" in frame else []
        level = float(levels[0]) if len(levels) == 1 else None
    else:
        level = res_or_gains.attrs.get("confidence")
    return f"{100 * level:g}% CI" if level else "CI"


def summary_table(res: Results, metric: str = "psnr_db") -> str:
    """Plain-text table of ``metric``: one line per condition, one column per scheme.

    Each cell is ``mean [low, high]`` (the run's interval); ``-`` where a scheme was not run.
    The condition is given by the varying axes; the fixed ones are listed in the first line.
    """
    check_metric(res, metric)
    frame = res.results
    if frame.empty:
        return f"{metric}: no results yet"
    varying = varying_axes(frame)
    low_col, high_col = ci_columns(metric)
    schemes = res.schemes
    title = f"{metric} by scheme, mean [{_confidence_label(res)}]"
    fixed = _fixed(frame, varying)
    lines = [title + (f"; fixed: {_describe(fixed)}" if fixed else "")]
    header = [*varying, *schemes] if varying else ["condition", *schemes]
    rows = []
    groups = frame.groupby(varying, dropna=False, sort=True) if varying else [((), frame)]
    for values, group in groups:
        cells = [format_value(v) for v in values] if varying else ["all"]
        by_scheme = {s: part.iloc[-1] for s, part in group.groupby("scheme", sort=False)}
        for scheme in schemes:
            row = by_scheme.get(scheme)
            cells.append(
                "-"
                if row is None
                else _interval(row[metric], row.get(low_col), row.get(high_col), metric)
            )
        rows.append(cells)
    return "\n".join([*lines, _render_text(header, rows)])


def _gain_cells(gains: pd.DataFrame) -> tuple[str, list[str], list[list[str]], int]:
    """(first line, header, rows, index of the first numeric column) of a gain summary."""
    varying = [c for c in condition_columns(gains) if gains[c].nunique(dropna=False) > 1]
    fixed = _fixed(gains, varying)
    refs = ", ".join(map(str, gains["reference"].unique()))
    ci = _confidence_label(gains)
    first = f"Paired gains of {refs} over each baseline [{ci}]"
    first += f"; fixed: {_describe(fixed)}" if fixed else ""
    with_ssim = gains["ssim_gain"].notna().any()
    header = [*varying, "baseline", "PSNR ref (dB)", "PSNR base (dB)", "PSNR gain dB",
              "MSE reduction %"]  # fmt: skip
    header += ["SSIM gain"] if with_ssim else []
    header += ["images", "result"]
    rows = []
    for _, g in gains.iterrows():
        cells = [format_value(g[c]) for c in varying] + [str(g["baseline"])]
        cells += [format_value(g["psnr_ref"], "psnr_db"), format_value(g["psnr_base"], "psnr_db")]
        cells.append(
            _interval(g["psnr_gain_db"], g["psnr_gain_ci_low"], g["psnr_gain_ci_high"], "psnr_db")
        )
        mse = g["mse_reduction_pct"], g["mse_reduction_ci_low"], g["mse_reduction_ci_high"]
        cells.append(_interval(*mse, "pct"))
        if with_ssim:
            cells.append(
                _interval(g["ssim_gain"], g["ssim_gain_ci_low"], g["ssim_gain_ci_high"], "ssim")
            )
        verdict = "win" if g["wins"] else "lose" if g["loses"] else "tie"
        if pd.isna(g["psnr_gain_ci_low"]) and pd.isna(g["psnr_gain_ci_high"]):
            verdict = "-"  # no per-image data: no interval, no verdict
        cells += [format_value(g["n_images"]), verdict]
        rows.append(cells)
    return first, header, rows, len(varying) + 1


def gain_summary(gains: pd.DataFrame) -> str:
    """Plain-text table of a :func:`gain_table`: gains with intervals and win/lose/tie."""
    if gains.empty:
        return "No paired comparisons: the reference and a baseline never share a condition."
    first, header, rows, _ = _gain_cells(gains)
    return "\n".join([first, _render_text(header, rows)])


def to_markdown(gains: pd.DataFrame) -> str:
    """The :func:`gain_summary` as a GitHub markdown table (no ``tabulate`` needed)."""
    if gains.empty:
        return "_No paired comparisons: the reference and a baseline never share a condition._"
    first, header, rows, numeric = _gain_cells(gains)
    return "\n".join([first, "", _render_markdown(header, rows, numeric)])


__all__ = [
    "CONDITION_COLUMNS",
    "GAIN_COLUMNS",
    "METRICS",
    "ConfigError",
    "Results",
    "check_metric",
    "ci_columns",
    "condition_columns",
    "format_value",
    "gain_summary",
    "gain_table",
    "load_results",
    "metrics_present",
    "order_schemes",
    "select",
    "summary_table",
    "to_markdown",
    "varying_axes",
]
