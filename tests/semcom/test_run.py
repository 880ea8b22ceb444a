"""``semcom run`` / ``semcom check`` end to end at smoke size (issue 5 item 7).

- the quickstart runs end to end (1 epoch, 8 images, 2 SNRs) and writes every results file;
- a run killed with SIGKILL and completed with ``--resume`` equals an uninterrupted run;
- the local executor with 1 and 2 workers and Ray on a local instance give identical results;
- bad scenario files exit with status 2, one ``error:`` line per problem, no traceback.

The models are trained once per module (a shared checkpoint folder); every run reuses them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from semcom.cli import main
from semcom.importance import IMPORTANCE
from semcom.scenario import load_scenario
from semcom.schemes import MODEL_VARIANTS, PROPOSED, SCHEMES, UNIFORM_IMPORTANCE_BASELINES

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
BAD = ROOT / "tests" / "semcom" / "scenario_corpus" / "bad"
CONTRACT_COLUMNS = [
    "point", "key", "channel", "snr_db", "eta", "n_subchannels", "rician_k", "bits_per_scalar",
    "seed", "scheme", "model", "weights", "method", "estimator", "selection", "keep",
    "compression", "encoder_params", "encoder_nonzero_params", "encoder_flops",
    "encoder_effective_flops", "encoder_weight_bits", "bit_allocation", "average_bits",
    "psnr_db", "psnr_ci_low", "psnr_ci_high",
    "ssim", "ssim_ci_low", "ssim_ci_high", "mse", "mse_ci_low", "mse_ci_high", "ber",
    "ber_ci_low", "ber_ci_high", "accuracy", "accuracy_ci_low", "accuracy_ci_high",
    "mean_selected", "bits_sent", "bit_errors", "n_images", "n_draws", "stop_reason",
    "confidence", "seconds", "bandwidth_ratio", "sep_rate", "sep_modulation", "sep_failures",
    "sep_failure_rate",
]  # fmt: skip


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("checkpoints")


def smoke(checkpoints: Path, snrs: str = "[0, 10]", plots: bool = True) -> list[str]:
    """Overrides shrinking the quickstart to a smoke run (seconds, not minutes); ``plots=False``
    for tests that compare results only (the figures take about a third of such a run)."""
    return [
        "--set", "training.epochs=1", "--set", f"sweep.snr_db={snrs}",
        "--set", "data.eval_images=8", "--set", "stop.min_draws=1", "--set", "stop.max_draws=2",
        "--set", f"training.checkpoint_dir={checkpoints}", "--no-progress",
        *([] if plots else ["--set", "output.plots=false"]),
    ]  # fmt: skip


def results(directory: Path) -> pd.DataFrame:
    return pd.read_csv(directory / "results.csv").drop(columns="seconds")


def semcom(*args: str, **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003
    return subprocess.run(
        [sys.executable, "-m", "semcom.cli", *args], capture_output=True, text=True,
        cwd=ROOT, timeout=600, **kwargs,
    )  # fmt: skip


def test_quickstart_smoke_writes_every_results_file(
    tmp_path: Path, checkpoints: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out"
    status = main(["run", str(QUICKSTART), "--out", str(out), "--workers", "1",
                   *smoke(checkpoints)])  # fmt: skip
    printed = capsys.readouterr().out
    assert status == 0
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns) == CONTRACT_COLUMNS
    assert sorted(frame["scheme"].unique()) == sorted([PROPOSED, *UNIFORM_IMPORTANCE_BASELINES])
    assert len(frame) == 2 * 4 and frame["point"].tolist() == list(range(8))
    assert set(frame["snr_db"]) == {0.0, 10.0} and set(frame["n_images"]) == {8}
    assert (frame["psnr_ci_low"] <= frame["psnr_db"]).all()
    assert (frame["psnr_db"] <= frame["psnr_ci_high"]).all()
    assert set(frame["stop_reason"]) <= {"converged", "max_draws"}
    pd.testing.assert_frame_equal(pd.read_parquet(out / "results.parquet"), frame)
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 8 * 8 and set(per_image["key"]) == set(frame["key"])
    importance = pd.read_csv(out / "importance.csv")
    assert set(importance["model"]) == {"isfr", "conventional"}
    assert importance.groupby("model")["weight"].sum().round(9).eq(1.0).all()
    assert (out / "scenario.yaml").is_file() and (out / "provenance.json").is_file()
    assert (
        load_scenario(out / "scenario.yaml").config_hash()
        == load_scenario(QUICKSTART, smoke(checkpoints)[1:-1:2]).config_hash()
    )
    assert sorted(p.name for p in (out / "plots").glob("*.png")) == [
        "ber_vs_snr_db.png", "gain_vs_snr_db.png", "importance.png", "mse_vs_snr_db.png",
        "psnr_db_vs_snr_db.png", "ssim_vs_snr_db.png",
    ]  # fmt: skip
    assert PROPOSED in printed and "passive-uep" in printed
    # a second run into the same directory is refused without --resume (exit 2)
    assert main(["run", str(QUICKSTART), "--out", str(out), *smoke(checkpoints)]) == 2
    assert "--resume" in capsys.readouterr().err


def test_resume_after_kill_equals_uninterrupted_run(tmp_path: Path, checkpoints: Path) -> None:
    args = ["run", str(QUICKSTART), "--workers", "1",
            *smoke(checkpoints, "[-5, 0, 5, 10]", plots=False)]  # fmt: skip
    reference = tmp_path / "reference"
    assert main([*args, "--out", str(reference)]) == 0
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "semcom.cli", *args, "--out", str(killed)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    rows = 0
    while process.poll() is None and time.monotonic() < deadline:
        if (killed / "results.csv").is_file():
            rows = (killed / "results.csv").read_text().count("\n") - 1
            if rows >= 3:
                break
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert 3 <= rows < 16, "the run must be killed part-way"
    done_before = set(pd.read_csv(killed / "results.csv")["key"])
    resumed = semcom(*args, "--out", str(killed), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert f"{16 - len(done_before)} points computed, {len(done_before)} reused" in resumed.stdout
    pd.testing.assert_frame_equal(results(killed), results(reference))
    assert (killed / "per_image.csv").read_text() == (reference / "per_image.csv").read_text()


def test_results_do_not_depend_on_executor_or_workers(tmp_path: Path, checkpoints: Path) -> None:
    base = ["run", str(QUICKSTART), *smoke(checkpoints, plots=False)]
    runs = {}
    for label, extra in (
        ("local-1", ["--workers", "1"]),
        ("local-2", ["--workers", "2"]),
        ("ray-2", ["--executor", "ray", "--workers", "2"]),
    ):
        out = tmp_path / label
        assert main([*base, *extra, "--out", str(out)]) == 0, label
        runs[label] = results(out)
    pd.testing.assert_frame_equal(runs["local-2"], runs["local-1"])
    pd.testing.assert_frame_equal(runs["ray-2"], runs["local-1"])


def test_every_shipped_scenario_validates() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        if path.stem == "cifar10":  # needs a local CIFAR-10 copy: its root is checked
            with pytest.raises(Exception, match="data.root"):
                load_scenario(path)
            continue
        load_scenario(path)


def test_check_runs_a_tiny_trial_of_every_scheme() -> None:
    done = semcom("check", str(QUICKSTART))
    assert done.returncode == 0, done.stderr
    for scheme in (PROPOSED, *UNIFORM_IMPORTANCE_BASELINES):
        assert f"  {scheme} " in done.stdout
    assert "check passed" in done.stdout


@pytest.mark.parametrize("command", ["run", "check"])
def test_bad_scenarios_exit_2_with_one_line_per_problem(command: str) -> None:
    path = BAD / "several_problems.yaml"
    names = ", ".join(IMPORTANCE.names())  # the corpus writes the estimator list {importance}
    schemes, variants = ", ".join(SCHEMES.names()), ", ".join(MODEL_VARIANTS)  # and these
    expected = [line.removeprefix("# expect: ").replace("{importance}", names)
                .replace("{schemes}", schemes).replace("{variants}", variants)
                for line in path.read_text().splitlines()
                if line.startswith("# expect: ")]  # fmt: skip
    done = semcom(command, str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert sorted(done.stderr.splitlines()) == sorted(
        f"semcom {command}: error: {e}" for e in expected
    )


def test_bad_set_override_exits_2() -> None:
    done = semcom("check", str(QUICKSTART), "--set", "sweep.snr_db=[0, nope]")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("semcom check: error: sweep.snr_db[1]: 'nope' is invalid")


@pytest.mark.gpu
def test_quickstart_smoke_on_cuda(tmp_path: Path, checkpoints: Path) -> None:
    """Models, link kernels and frames on the GPU (``--device cuda``): same files, sane PSNR."""
    out = tmp_path / "cuda"
    status = main(["run", str(QUICKSTART), "--out", str(out), "--workers", "1",
                   "--device", "cuda", *smoke(checkpoints)])  # fmt: skip
    assert status == 0
    frame = pd.read_csv(out / "results.csv")
    assert len(frame) == 8 and frame["psnr_db"].between(5, 60).all()
    assert "cuda" in (out / "scenario.yaml").read_text()
