"""semcom.report: loading results directories, summary tables and paired gain statistics.

The gain statistics are checked against independent computations on the synthetic fixture
(tests/semcom/results_fixture.py): scipy's paired t-test interval, the fixture's known mean
paired differences, and a delta-method interval for the MSE ratio.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from channels.errors import ConfigError
from semcom import report
from tests.semcom.results_fixture import GAINS, write_results_dir

TWO_AXES = {"snr_db": [0.0, 5.0, 10.0], "eta": [0.25, 0.5]}


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory):
    return write_results_dir(tmp_path_factory.mktemp("swept"), axes=TWO_AXES)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory):
    return write_results_dir(tmp_path_factory.mktemp("single"))


def _pair(per_image: pd.DataFrame, key_ref: str, key_base: str, column: str):
    ref = per_image[per_image["key"] == key_ref].sort_values("image")[column].to_numpy()
    base = per_image[per_image["key"] == key_base].sort_values("image")[column].to_numpy()
    return ref, base


# ------------------------------------------------------------------------------- loading


def test_load_results_reads_every_file(swept) -> None:
    res = report.load_results(swept.directory)
    assert res.directory == Path(swept.directory)
    assert len(res.results) == 6 * 4 and list(res.results["point"]) == list(range(24))
    pd.testing.assert_frame_equal(res.results, swept.results, check_dtype=False)
    assert res.per_image is not None and len(res.per_image) == 24 * 12
    assert res.importance is not None and set(res.importance["model"]) == {"isfr", "conventional"}
    assert res.provenance["scenario"] == "fixture" and res.scenario["name"] == "fixture"
    assert res.schemes == ["isfr-uep", "ui-ep", "ui-opt", "passive-uep"]
    assert res.results["n_subchannels"].dtype.kind == "i"


def test_optional_files_may_be_missing(tmp_path: Path) -> None:
    fx = write_results_dir(tmp_path, per_image=False, importance=False)
    (tmp_path / "provenance.json").unlink()
    (tmp_path / "scenario.yaml").unlink()
    res = report.load_results(str(tmp_path))
    assert res.per_image is None and res.importance is None
    assert res.provenance is None and res.scenario is None
    assert len(res.results) == len(fx.results)


@pytest.mark.parametrize("make", ["missing_dir", "no_csv"])
def test_not_a_results_dir(tmp_path: Path, make: str) -> None:
    target = tmp_path / "nothing"
    if make == "no_csv":
        target.mkdir()
    with pytest.raises(ConfigError) as err:
        report.load_results(target)
    assert str(err.value) == (
        f"results_dir: '{target}' is invalid; allowed: a results directory of semcom run "
        "(with results.csv)"
    )


def test_unreadable_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("")
    with pytest.raises(ConfigError, match=r"results\.csv: 'an empty file' is invalid"):
        report.load_results(tmp_path)
    (tmp_path / "results.csv").write_text("point,key\n0,a\n")
    with pytest.raises(ConfigError, match=r"results\.csv: 'no column scheme' is invalid"):
        report.load_results(tmp_path)
    write_results_dir(tmp_path)
    (tmp_path / "provenance.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"provenance\.json: 'invalid JSON'"):
        report.load_results(tmp_path)


def test_varying_axes_in_condition_order(tmp_path: Path) -> None:
    none = report.load_results(write_results_dir(tmp_path / "a").directory)
    assert report.varying_axes(none) == []
    reverse = write_results_dir(tmp_path / "b", axes={"eta": [0.5, 1.0], "snr_db": [0.0, 3.0]})
    assert report.varying_axes(report.load_results(reverse.directory)) == ["snr_db", "eta"]
    assert report.varying_axes(reverse.results) == ["snr_db", "eta"]


def test_select_filters_results_and_per_image(swept) -> None:
    res = report.load_results(swept.directory)
    sub = report.select(res, snr_db=5.0, eta=0.25)
    assert len(sub.results) == 4 and set(sub.results["snr_db"]) == {5.0}
    assert set(sub.per_image["key"]) == set(sub.results["key"]) and len(sub.per_image) == 48
    assert report.varying_axes(sub) == []
    with pytest.raises(ConfigError, match="^colour: 'red' is invalid"):
        report.select(res, colour="red")


# --------------------------------------------------------------------------------- gains


def test_gain_table_matches_scipy_paired_t(swept) -> None:
    res = report.load_results(swept.directory)
    gains = report.gain_table(res)
    assert len(gains) == 6 * 3
    assert list(gains.columns[:7]) == list(report.CONDITION_COLUMNS)
    assert list(gains.columns[7:]) == list(report.GAIN_COLUMNS)
    rows = swept.results.set_index(["snr_db", "eta", "scheme"])
    for _, g in gains.iterrows():
        ref_row = rows.loc[(g["snr_db"], g["eta"], "isfr-uep")]
        base_row = rows.loc[(g["snr_db"], g["eta"], g["baseline"])]
        r, b = _pair(swept.per_image, ref_row["key"], base_row["key"], "psnr_db")
        assert g["psnr_gain_db"] == pytest.approx(GAINS[g["baseline"]], abs=1e-9)  # by design
        assert g["psnr_gain_db"] == pytest.approx(np.mean(r - b), abs=1e-12)
        ci = stats.ttest_rel(r, b).confidence_interval(0.95)
        assert g["psnr_gain_ci_low"] == pytest.approx(ci.low, abs=1e-9)
        assert g["psnr_gain_ci_high"] == pytest.approx(ci.high, abs=1e-9)
        assert g["psnr_ref"] == ref_row["psnr_db"] and g["psnr_base"] == base_row["psnr_db"]
        assert g["psnr_gain_pct"] == pytest.approx(
            100 * (ref_row["psnr_db"] / base_row["psnr_db"] - 1), rel=1e-12
        )
        sr, sb = _pair(swept.per_image, ref_row["key"], base_row["key"], "ssim")
        ci = stats.ttest_rel(sr, sb).confidence_interval(0.95)
        assert g["ssim_gain"] == pytest.approx(np.mean(sr - sb), abs=1e-12)
        assert (g["ssim_gain_ci_low"], g["ssim_gain_ci_high"]) == pytest.approx(ci, abs=1e-9)
        assert g["n_images"] == 12 and g["reference"] == "isfr-uep"


def test_mse_reduction_point_estimate_and_bootstrap_interval(swept) -> None:
    res = report.load_results(swept.directory)
    gains = report.gain_table(res, n_boot=4000, seed=3)
    keys = swept.results.set_index(["snr_db", "eta", "scheme"])["key"]
    for _, g in gains.iterrows():
        r, b = _pair(swept.per_image, keys[(g["snr_db"], g["eta"], "isfr-uep")],
                     keys[(g["snr_db"], g["eta"], g["baseline"])], "mse")  # fmt: skip
        assert g["mse_ref"] == pytest.approx(r.mean(), rel=1e-12)
        assert g["mse_reduction_pct"] == pytest.approx(100 * (1 - r.mean() / b.mean()), abs=1e-9)
        assert g["mse_reduction_ci_low"] < g["mse_reduction_pct"] < g["mse_reduction_ci_high"]
    # a 3 dB PSNR gain on every image is a 50% MSE reduction
    clear = gains[gains["baseline"] == "ui-ep"]
    assert np.all(np.abs(clear["mse_reduction_pct"] - 50) < 2.5)
    assert np.all(clear["mse_reduction_ci_low"] > 40)


def test_bootstrap_interval_agrees_with_delta_method(tmp_path: Path) -> None:
    """With 60 images the percentile bootstrap of the ratio is close to the delta method."""
    fx = write_results_dir(tmp_path, n_images=60, schemes=("isfr-uep", "ui-opt"))
    gains = report.gain_table(report.load_results(fx.directory), n_boot=4000)
    (g,) = gains.itertuples()
    keys = fx.results.set_index("scheme")["key"]
    r, b = _pair(fx.per_image, keys["isfr-uep"], keys["ui-opt"], "mse")
    ratio = r.mean() / b.mean()
    se = np.std(r - ratio * b, ddof=1) / math.sqrt(r.size) / b.mean()
    half = 100 * stats.norm.ppf(0.975) * se
    width = g.mse_reduction_ci_high - g.mse_reduction_ci_low
    assert width == pytest.approx(2 * half, rel=0.08)  # a 90% interval would be 16% narrower
    center = 0.5 * (g.mse_reduction_ci_high + g.mse_reduction_ci_low)
    assert abs(center - 100 * (1 - ratio)) < 0.2 * half


def test_bootstrap_interval_has_the_requested_confidence(tmp_path: Path) -> None:
    """At a non-default level (0.8), the MSE-reduction interval equals scipy's paired
    percentile bootstrap of the same statistic within 0.08 standard errors; the 0.85, 0.9 and
    0.95 intervals are at least 0.15 standard errors away (Monte Carlo noise ~0.01 each)."""
    fx = write_results_dir(tmp_path, n_images=200, schemes=("isfr-uep", "ui-opt"))
    res = report.load_results(fx.directory)
    (g,) = report.gain_table(res, confidence=0.8, n_boot=40_000, seed=1).itertuples()
    keys = fx.results.set_index("scheme")["key"]
    r, b = _pair(fx.per_image, keys["isfr-uep"], keys["ui-opt"], "mse")

    def reduction(ref: np.ndarray, base: np.ndarray, axis: int = -1) -> np.ndarray:
        return 100.0 * (1.0 - ref.mean(axis=axis) / base.mean(axis=axis))

    def scipy_interval(level: float) -> tuple[float, float, float]:
        out = stats.bootstrap((r, b), reduction, paired=True, vectorized=True,
                              confidence_level=level, n_resamples=40_000, method="percentile",
                              random_state=np.random.default_rng(9))  # fmt: skip
        return out.confidence_interval.low, out.confidence_interval.high, out.standard_error

    low, high, se = scipy_interval(0.8)
    assert abs(g.mse_reduction_ci_low - low) < 0.08 * se
    assert abs(g.mse_reduction_ci_high - high) < 0.08 * se
    for other in (0.85, 0.9, 0.95):
        o_low, o_high, _ = scipy_interval(other)
        assert abs(g.mse_reduction_ci_low - o_low) > 0.12 * se
        assert abs(g.mse_reduction_ci_high - o_high) > 0.12 * se


def test_bootstrap_is_seeded_per_row(swept) -> None:
    res = report.load_results(swept.directory)
    a = report.gain_table(res, seed=5)
    b = report.gain_table(res, seed=5)
    c = report.gain_table(res, seed=6)
    cols = ["mse_reduction_ci_low", "mse_reduction_ci_high"]
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a[cols], c[cols])
    # a row does not depend on the other rows of the table
    only = report.gain_table(res, baselines=["ui-opt"], seed=5)
    np.testing.assert_array_equal(only[cols], a[a["baseline"] == "ui-opt"][cols])


def test_win_lose_and_tie_flags(tmp_path: Path, swept) -> None:
    gains = report.gain_table(report.load_results(swept.directory))
    by = gains.groupby("baseline")
    assert by["wins"].all().to_dict() == {"passive-uep": False, "ui-ep": True, "ui-opt": True}
    assert not gains["loses"].any()
    tie = gains[gains["baseline"] == "passive-uep"]
    assert np.all(tie["psnr_gain_ci_low"] < 0) and np.all(tie["psnr_gain_ci_high"] > 0)
    fx = write_results_dir(tmp_path, gains={"ui-opt": -2.0})
    worse = report.gain_table(report.load_results(fx.directory)).set_index("baseline")
    assert worse.loc["ui-opt", "loses"] and not worse.loc["ui-opt", "wins"]
    assert worse.loc["ui-opt", "psnr_gain_db"] == pytest.approx(-2.0)
    text = report.gain_summary(worse.reset_index())
    assert [line.split()[-1] for line in text.splitlines()[3:]] == ["win", "lose", "tie"]


def test_without_per_image_point_estimates_only(tmp_path: Path) -> None:
    fx = write_results_dir(tmp_path, per_image=False)
    gains = report.gain_table(report.load_results(fx.directory))
    rows = fx.results.set_index("scheme")
    for _, g in gains.iterrows():
        base = rows.loc[g["baseline"]]
        assert g["psnr_gain_db"] == pytest.approx(rows.loc["isfr-uep", "psnr_db"] - base["psnr_db"])
        assert g["mse_reduction_pct"] == pytest.approx(
            100 * (1 - rows.loc["isfr-uep", "mse"] / base["mse"])
        )
        interval_columns = [c for c in report.GAIN_COLUMNS if "_ci_" in c]
        assert g[interval_columns].isna().all()
        assert not g["wins"] and not g["loses"] and g["n_images"] == 12
    text = report.gain_summary(gains)
    assert all(line.split()[-1] == "-" for line in text.splitlines()[3:])


def test_conditions_missing_a_scheme_and_custom_baselines(tmp_path: Path, swept) -> None:
    frame = swept.results.copy()
    drop = (frame["scheme"] == "ui-ep") & (frame["snr_db"] == 0.0)
    directory = tmp_path / "partial"
    directory.mkdir()
    frame[~drop].to_csv(directory / "results.csv", index=False)
    swept.per_image.to_csv(directory / "per_image.csv", index=False)
    res = report.load_results(directory)
    gains = report.gain_table(res)
    assert len(gains) == 18 - 2
    assert not ((gains["baseline"] == "ui-ep") & (gains["snr_db"] == 0.0)).any()
    assert list(gains["snr_db"]) == sorted(gains["snr_db"])
    other = report.gain_table(res, reference="ui-opt", baselines=["passive-uep"])
    assert set(other["baseline"]) == {"passive-uep"} and len(other) == 6
    assert other["psnr_gain_db"].to_numpy() == pytest.approx(-np.ones(6))
    assert report.gain_table(res, reference="isfr-exact").empty
    with pytest.raises(ConfigError, match="^baselines: 'isfr-exact' is invalid"):
        report.gain_table(res, baselines=["isfr-exact"])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"confidence": 1.0}, "confidence"), ({"n_boot": 0}, "n_boot"), ({"seed": -1}, "seed")],
)
def test_invalid_gain_options(single, kwargs: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        report.gain_table(report.load_results(single.directory), **kwargs)


def test_duplicate_rows_of_a_scheme_are_refused(tmp_path: Path, single) -> None:
    frame = pd.concat([single.results, single.results.iloc[:1]])
    frame.to_csv(tmp_path / "results.csv", index=False)
    with pytest.raises(ConfigError, match="2 rows of scheme isfr-uep"):
        report.gain_table(report.load_results(tmp_path))


# -------------------------------------------------------------------------------- tables


def test_summary_table_one_line_per_condition(swept) -> None:
    res = report.load_results(swept.directory)
    lines = report.summary_table(res).splitlines()
    assert lines[0].startswith("psnr_db by scheme, mean [95% CI]; fixed: channel=rayleigh")
    assert lines[1].split() == ["snr_db", "eta", "isfr-uep", "ui-ep", "ui-opt", "passive-uep"]
    assert len(lines) == 3 + 6
    row = swept.results.query("snr_db == 5.0 and eta == 0.5 and scheme == 'ui-opt'").iloc[0]
    expected = f"{row.psnr_db:.2f} [{row.psnr_ci_low:.2f}, {row.psnr_ci_high:.2f}]"
    assert lines[3 + 3].startswith("5 ") and expected in lines[3 + 3]
    mse = report.summary_table(res, "mse").splitlines()
    assert f"{row.mse:.3e} [{row.mse_ci_low:.3e}, {row.mse_ci_high:.3e}]" in mse[3 + 3]
    with pytest.raises(ConfigError, match="^metric: 'psnr' is invalid"):
        report.summary_table(res, "psnr")


def test_summary_table_without_axes_and_missing_scheme(tmp_path: Path) -> None:
    fx = write_results_dir(tmp_path, schemes=("isfr-uep", "ui-ep"), ssim=False)
    res = report.load_results(fx.directory)
    lines = report.summary_table(res).splitlines()
    assert lines[1].split() == ["condition", "isfr-uep", "ui-ep"] and lines[3].startswith("all")
    assert report.summary_table(res, "ssim").splitlines()[3].split() == ["all", "-", "-"]


def test_gain_summary_and_markdown(swept) -> None:
    gains = report.gain_table(report.load_results(swept.directory))
    text = report.gain_summary(gains).splitlines()
    assert text[0].startswith("Paired gains of isfr-uep over each baseline [95% CI]; fixed:")
    assert text[1].split()[:3] == ["snr_db", "eta", "baseline"] and len(text) == 3 + 18
    first = gains.iloc[0]
    assert (f"{first.psnr_gain_db:.2f} [{first.psnr_gain_ci_low:.2f}, "
            f"{first.psnr_gain_ci_high:.2f}]") in text[3]  # fmt: skip
    md = report.to_markdown(gains).splitlines()
    assert md[0] == text[0] and md[1] == ""
    table = md[2:]
    assert len(table) == 2 + 18
    assert all(line.startswith("| ") and line.endswith(" |") for line in table[:1] + table[2:])
    assert set(table[1].replace("|", "").replace("-", "").replace(":", "")) == set()
    widths = {line.count(" | ") for line in table[:1] + table[2:]}
    assert widths == {table[0].count(" | ")}
    assert "win" in table[2] and "ui-ep" in table[2]


def test_empty_gain_tables_have_a_message(single) -> None:
    gains = report.gain_table(report.load_results(single.directory), reference="nope")
    assert gains.empty and list(gains.columns)[-2:] == ["wins", "loses"]
    assert report.gain_summary(gains).startswith("No paired comparisons")
    assert report.to_markdown(gains).startswith("_No paired comparisons")


def test_format_value() -> None:
    assert report.format_value(-1e-9, "psnr_db") == "0.00"
    assert report.format_value(-0.004, "ssim") == "-0.0040"
    assert report.format_value(float("nan")) == "-" and report.format_value(None) == "-"
    assert report.format_value(float("-inf"), "psnr_db") == "-inf"
    assert report.format_value(np.int64(16)) == "16" and report.format_value(0.5) == "0.5"
    assert report.format_value(1.2345e-5, "ber") == "1.234e-05"
