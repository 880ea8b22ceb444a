"""semcom.plots and ``semcom plot``: file names, facets, drawn data, errors (exit 2)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure

from channels.errors import ConfigError
from semcom import plots, report
from semcom.cli import main
from tests.semcom.results_fixture import write_results_dir

PNG = b"\x89PNG\r\n\x1a\n"
METRICS = ("psnr_db", "ssim", "mse", "ber", "accuracy")
DPI = 50


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk, which follows the 8-byte signature."""
    data = path.read_bytes()
    assert data[:8] == PNG and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _open_figures() -> list[int]:
    import matplotlib.pyplot as plt

    return plt.get_fignums()


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory):
    axes = {"snr_db": [0.0, 5.0, 10.0], "eta": [0.25, 0.5]}
    return write_results_dir(tmp_path_factory.mktemp("swept"), axes=axes)


def test_one_varying_axis(tmp_path: Path) -> None:
    fx = write_results_dir(tmp_path, axes={"snr_db": [0.0, 5.0, 10.0]})
    before = _open_figures()
    paths = plots.plot_all(fx.directory, dpi=DPI)
    assert _open_figures() == before
    expected = [f"{m}_vs_snr_db.png" for m in METRICS] + ["gain_vs_snr_db.png", "importance.png"]
    assert [p.name for p in paths] == expected
    assert all(p.parent == tmp_path / "plots" for p in paths)
    for path in paths:
        assert path.stat().st_size > 1000 and png_size(path)[0] > 0
    one_panel = round(4.8 * DPI)
    assert png_size(tmp_path / "plots" / "psnr_db_vs_snr_db.png")[0] == one_panel


def test_two_varying_axes_are_faceted(swept, tmp_path: Path) -> None:
    paths = plots.plot_all(report.load_results(swept.directory), out_dir=tmp_path, dpi=DPI)
    names = {p.name for p in paths}
    for x in ("snr_db", "eta"):
        assert {f"{m}_vs_{x}.png" for m in METRICS} | {f"gain_vs_{x}.png"} <= names
    assert len(names) == 2 * 6 + 1
    # vs snr_db: one panel per eta (2 columns); vs eta: one per snr_db (3 columns)
    assert png_size(tmp_path / "psnr_db_vs_snr_db.png")[0] == round(2 * 4.8 * DPI)
    assert png_size(tmp_path / "gain_vs_eta.png")[0] == round(3 * 4.8 * DPI)


def test_no_varying_axis_gives_bar_charts(tmp_path: Path) -> None:
    fx = write_results_dir(tmp_path, accuracy=False, importance=False)
    paths = plots.plot_all(fx.directory, fmt="svg", dpi=DPI)
    expected = [f"{m}_by_scheme.svg" for m in METRICS if m != "accuracy"]
    assert [p.name for p in paths] == [*expected, "gain_by_baseline.svg"]
    assert all(b"<svg" in p.read_bytes()[:2000] for p in paths)
    pdf = plots.plot_all(fx.directory, out_dir=tmp_path / "pdf", fmt="pdf", dpi=DPI)
    assert all(p.read_bytes()[:5] == b"%PDF-" for p in pdf)


def test_missing_metrics_and_reference_are_skipped(tmp_path: Path) -> None:
    fx = write_results_dir(tmp_path, axes={"eta": [0.25, 0.5]}, schemes=("ui-ep", "ui-opt"),
                           ssim=False, accuracy=False)  # fmt: skip
    names = [p.name for p in plots.plot_all(fx.directory, dpi=DPI)]
    assert names == ["psnr_db_vs_eta.png", "mse_vs_eta.png", "ber_vs_eta.png", "importance.png"]


def test_plot_all_validates_options(swept) -> None:
    with pytest.raises(ConfigError, match="^format: 'jpg' is invalid; allowed: png, pdf, svg$"):
        plots.plot_all(swept.directory, fmt="jpg")
    with pytest.raises(ConfigError, match="^dpi: "):
        plots.plot_all(swept.directory, dpi=0)


def test_plot_metric_draws_the_results(swept) -> None:
    res = report.select(report.load_results(swept.directory), eta=0.5)
    ax = Figure().subplots()
    assert plots.plot_metric(res, "psnr_db", "snr_db", ax=ax) is ax
    assert [t.get_text() for t in ax.get_legend().get_texts()] == res.schemes
    assert len(ax.lines) >= 4
    for line, scheme in zip(ax.lines[::3], res.schemes, strict=False):
        rows = res.results[res.results["scheme"] == scheme].sort_values("snr_db")
        np.testing.assert_allclose(line.get_xdata(), rows["snr_db"])
        np.testing.assert_allclose(line.get_ydata(), rows["psnr_db"])
    # error bars span the interval: the collection of the first scheme's bars
    bars = ax.containers[0].lines[2][0].get_segments()
    rows = res.results[res.results["scheme"] == "isfr-uep"].sort_values("snr_db")
    np.testing.assert_allclose([s[:, 1] for s in bars], rows[["psnr_ci_low", "psnr_ci_high"]])
    assert ax.get_yscale() == "linear"
    log_ax = plots.plot_metric(res, "mse", "snr_db", ax=Figure().subplots(), schemes=["ui-ep"])
    assert log_ax.get_yscale() == "log" and len(log_ax.containers) == 1


def test_plot_metric_errors(swept) -> None:
    res = report.load_results(swept.directory)
    ax = Figure().subplots()
    with pytest.raises(ConfigError, match="^results: 'several values of eta' is invalid"):
        plots.plot_metric(res, "psnr_db", "snr_db", ax=ax)
    sub = report.select(res, eta=0.5)
    with pytest.raises(ConfigError, match="^x: 'colour' is invalid"):
        plots.plot_metric(sub, "psnr_db", "colour", ax=ax)
    with pytest.raises(ConfigError, match="^metric: 'psnr' is invalid"):
        plots.plot_metric(sub, "psnr", "snr_db", ax=ax)
    with pytest.raises(ConfigError, match="^schemes: 'isfr-exact' is invalid"):
        plots.plot_metric(sub, "psnr_db", "snr_db", ax=ax, schemes=["isfr-exact"])


def test_plot_gains_and_importance(swept, tmp_path: Path) -> None:
    res = report.load_results(swept.directory)
    sub = report.select(res, snr_db=5.0)
    ax = plots.plot_gains(sub, "eta", ax=Figure().subplots())
    gains = report.gain_table(sub)
    ui_ep = gains[gains["baseline"] == "ui-ep"].sort_values("eta")
    np.testing.assert_allclose(ax.lines[0].get_ydata(), ui_ep["psnr_gain_db"])
    zero = [line for line in ax.lines if list(line.get_xdata()) == [0, 1]]  # axes coordinates
    assert len(zero) == 1 and list(zero[0].get_ydata()) == [0.0, 0.0]  # the axhline
    ax = plots.plot_importance(res, ax=Figure().subplots())
    isfr = res.importance[res.importance["model"] == "isfr"]
    np.testing.assert_allclose(ax.lines[0].get_xdata(), np.arange(1, 17))
    np.testing.assert_allclose(ax.lines[0].get_ydata(), isfr["weight"])
    assert ax.get_legend().get_texts()[0].get_text().startswith("isfr (Gini 0.")
    fx = write_results_dir(tmp_path, importance=False)
    with pytest.raises(ConfigError, match=r"^importance\.csv: "):
        plots.plot_importance(report.load_results(fx.directory), ax=Figure().subplots())


def test_pyplot_figure_when_no_axes_given(swept) -> None:
    import matplotlib.pyplot as plt

    before = set(plt.get_fignums())
    ax = plots.plot_importance(report.load_results(swept.directory))
    try:
        assert ax.figure.number not in before
    finally:
        plt.close(ax.figure)


def test_importing_plots_leaves_the_backend_alone() -> None:
    code = ("import sys, semcom.plots, semcom.report; "
            "print('matplotlib.pyplot' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_plot_all_keeps_the_pyplot_backend(tmp_path: Path) -> None:
    fx = write_results_dir(tmp_path, schemes=("isfr-uep", "ui-ep"), importance=False)
    backend = matplotlib.rcParams._get_backend_or_none()
    plots.plot_all(fx.directory, dpi=DPI)
    assert matplotlib.rcParams._get_backend_or_none() == backend


# ---------------------------------------------------------------------------- semcom plot


def test_semcom_plot_prints_tables(swept, capsys) -> None:
    assert main(["plot", str(swept.directory), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("psnr_db by scheme, mean [95% CI]")
    assert "Paired gains of isfr-uep over each baseline" in out
    assert out.count(" win\n") == 12 and out.count(" tie\n") == 6


def test_semcom_plot_writes_figures(tmp_path: Path, capsys) -> None:
    fx = write_results_dir(tmp_path / "run", schemes=("isfr-uep", "ui-opt"), ssim=False)
    argv = ["plot", str(fx.directory), "--out", str(tmp_path / "figs"), "--dpi", str(DPI)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "\nui-opt  " in out and out.rstrip().endswith(f"wrote 6 figures to {tmp_path}/figs")
    assert len(list((tmp_path / "figs").glob("*.png"))) == 6


def test_semcom_plot_options(tmp_path: Path, capsys) -> None:
    fx = write_results_dir(tmp_path, schemes=("ui-ep", "ui-opt"))
    assert main(["plot", str(fx.directory), "--no-figures", "--metric", "mse"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("mse by scheme") and "No paired gains" in out
    assert not (tmp_path / "plots").exists()
    argv = ["plot", str(fx.directory), "--no-figures", "--reference", "ui-opt", "--markdown"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "|---|" in out and "| ui-ep |" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "semcom plot: error: results_dir: '{missing}' is invalid; allowed: a results "
             "directory of semcom run (with results.csv)"),
        (["--format", "jpg"], "semcom plot: error: argument --format: invalid choice: 'jpg'"),
        (["--reference", "isfr-exact"], "semcom plot: error: --reference: 'isfr-exact' is invalid"),
    ],
)  # fmt: skip
def test_semcom_plot_usage_errors(swept, tmp_path: Path, capsys, extra, message) -> None:
    missing = tmp_path / "missing"
    target = swept.directory if extra else missing
    try:
        status = main(["plot", str(target), "--no-figures", *extra])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(message.format(missing=missing))


def test_semcom_plot_missing_dir_subprocess(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    proc = subprocess.run([sys.executable, "-m", "semcom.cli", "plot", str(missing)],
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"semcom plot: error: results_dir: '{missing}' is invalid; allowed: a results directory "
        "of semcom run (with results.csv)"
    ]
