"""semcom.sweep.executors and provenance: same rows from local(1), local(2) and Ray(2),
setup once per worker, errors with the point's key, Ctrl-C cleanup, kill-and-resume of a
sweep script (SIGKILL, then --resume; SIGINT -> exit 130), provenance fields."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from channels.errors import ConfigError
from semcom.sweep import (
    Point,
    PointError,
    PointResult,
    ResultStore,
    collect_provenance,
    expand,
    git_state,
    run_points,
    short_key,
)
from semcom.sweep import provenance as provenance_module
from tests.semcom.sweep_helpers.tasks import AXES, BASE, FINGERPRINT, CheapTask

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "semcom" / "sweep_helpers" / "run_cheap.py"
POINTS = expand(AXES, BASE)
SMALL = POINTS[:10]


def collect(task: CheapTask, points: list[Point], **options: object) -> list[PointResult]:
    results: list[PointResult] = []
    run_points(task, points, on_result=results.append, progress=False, **options)
    return results


def rows_without_seconds(results: list[PointResult]) -> list[dict]:
    rows = [{k: v for k, v in r.row.items() if k != "seconds"} for r in results]
    return sorted(rows, key=lambda row: row["point"])


def assert_same_rows(a: list[dict], b: list[dict]) -> None:
    """Equal rows, NaN equal to NaN (the rows hold NaN for 'ber')."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            same = (x[k] == y[k]) or (
                isinstance(x[k], float) and math.isnan(x[k]) and math.isnan(y[k])
            )
            assert same, (k, x[k], y[k])


def read_log(path: Path) -> list[list[str]]:
    return [line.split(" ", 2) for line in path.read_text().splitlines()] if path.exists() else []


def test_local_sequential_matches_independent_computation(tmp_path: Path) -> None:
    log = tmp_path / "log"
    results = collect(CheapTask(log=str(log)), SMALL)
    assert [r.row["point"] for r in results] == list(range(10))  # in order
    for r, p in zip(results, SMALL, strict=True):
        rng = np.random.default_rng((7, p.index))  # independent: the task's documented stream
        psnr = rng.normal(20.0, 5.0, size=3)
        assert r.row["key"] == p.key and r.row["psnr_db"] == float(psnr.mean())
        assert [img["psnr_db"] for img in r.tables["per_image"]] == psnr.tolist()
    entries = read_log(log)
    assert entries[0] == ["setup", str(os.getpid())]  # once, here, before any point
    assert [e[0] for e in entries[1:]] == ["point"] * 10


def test_process_pool_gives_the_same_rows_and_sets_up_each_worker_once(tmp_path: Path) -> None:
    reference = rows_without_seconds(collect(CheapTask(), SMALL))
    log = tmp_path / "log"
    calls: list[tuple[int, str]] = []
    results: list[PointResult] = []

    def on_result(r: PointResult) -> None:
        calls.append((os.getpid(), threading.current_thread().name))
        results.append(r)

    run_points(CheapTask(log=str(log)), SMALL, workers=2, on_result=on_result, progress=False)
    assert_same_rows(rows_without_seconds(results), reference)
    assert set(calls) == {(os.getpid(), "MainThread")}  # always in the caller's main thread
    entries = read_log(log)
    setups = [int(e[1]) for e in entries if e[0] == "setup"]
    assert len(setups) == 2 and len(set(setups)) == 2 and os.getpid() not in setups
    computed = [(int(e[1]), e[2]) for e in entries if e[0] == "point"]
    assert sorted(k for _, k in computed) == sorted(p.key for p in SMALL)  # each point once
    assert {pid for pid, _ in computed} <= set(setups)
    assert not multiprocessing.active_children()

    # never more workers than points
    log2 = tmp_path / "log2"
    collect(CheapTask(log=str(log2)), SMALL[:2], workers=4)
    assert sum(e[0] == "setup" for e in read_log(log2)) <= 2


def test_errors_name_the_point(tmp_path: Path) -> None:
    bad = SMALL[4]
    for workers in (1, 2):
        got: list[PointResult] = []
        with pytest.raises(PointError) as info:
            run_points(
                CheapTask(fail_key=bad.key, sleep=0.01),
                SMALL,
                workers=workers,
                on_result=got.append,
                progress=False,
            )
        assert str(info.value) == f"point 4 ({bad.key}) failed: ValueError: simulated failure"
        assert info.value.key == bad.key and isinstance(info.value.__cause__, ValueError)
        assert bad.key not in {r.row["key"] for r in got}
        assert not multiprocessing.active_children()
        # a setup() failure is raised as it is, not as a point failure
        with pytest.raises(OSError, match="no model checkpoint here"):
            collect(CheapTask(fail_setup=True), SMALL, workers=workers)
    clone = pickle.loads(pickle.dumps(info.value))
    assert type(clone) is PointError and str(clone) == str(info.value)


def test_ctrl_c_in_the_parent_ends_the_workers(tmp_path: Path) -> None:
    """Point 0 is instant, the others would take a minute: Ctrl-C at the first result must end
    the workers in the middle of their points, not wait for them."""
    log = tmp_path / "log"
    got: list[PointResult] = []

    def on_result(r: PointResult) -> None:
        got.append(r)
        raise KeyboardInterrupt

    task = CheapTask(sleep=60.0, sleep_from=1, log=str(log))
    with pytest.raises(KeyboardInterrupt):
        run_points(task, POINTS, workers=2, on_result=on_result, progress=False)
    assert [r.row["point"] for r in got] == [0]
    assert not multiprocessing.active_children()
    assert [e[2] for e in read_log(log) if e[0] == "point"] == [POINTS[0].key]  # none finished


def test_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        collect(CheapTask(), SMALL, executor="dask")
    assert str(info.value) == "execution.executor: 'dask' is invalid; allowed: local, ray"
    with pytest.raises(ConfigError, match=r"^execution.workers: 0 is invalid"):
        collect(CheapTask(), SMALL, workers=0)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(ConfigError) as info:
        collect(CheapTask(), SMALL, executor="ray")
    assert str(info.value) == (
        "execution.executor: 'ray' is invalid; "
        "allowed: local (install the 'distributed' extra for ray)"
    )


def test_no_points_no_work(tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert collect(CheapTask(log=str(log)), [], workers=2) == []
    assert not log.exists()


def test_progress_bar_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    run_points(CheapTask(), SMALL[:3], on_result=lambda r: None, description="cheap sweep")
    err = capsys.readouterr().err
    assert "cheap sweep" in err and "3/3" in err and "|ui-opt" in err  # the last key, shortened
    assert short_key("a=1|b=x") == "1|x"
    assert short_key("a=" + "x" * 100, width=10) == "…" + "x" * 9


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("ray") is None, reason="needs ray"
)  # fmt: skip
def test_ray_gives_the_same_rows_and_cleans_up() -> None:
    import ray

    reference = rows_without_seconds(collect(CheapTask(), SMALL))
    assert not ray.is_initialized()
    # 1. a local instance started (and shut down) by run_points itself
    results = collect(CheapTask(), SMALL, executor="ray", workers=2)
    assert_same_rows(rows_without_seconds(results), reference)
    assert not ray.is_initialized()

    # 2. an instance the caller started is used and left running
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        bad = SMALL[4]
        with pytest.raises(PointError) as info:
            collect(CheapTask(fail_key=bad.key), SMALL, executor="ray", workers=2)
        assert str(info.value) == f"point 4 ({bad.key}) failed: ValueError: simulated failure"
        with pytest.raises(OSError, match="no model checkpoint here"):
            collect(CheapTask(fail_setup=True), SMALL, executor="ray", workers=2)
        got: list[PointResult] = []

        def interrupt(r: PointResult) -> None:
            got.append(r)
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_points(CheapTask(sleep=0.1), SMALL, executor="ray", workers=2, on_result=interrupt)
        assert len(got) == 1 and ray.is_initialized()
        # The killed actors gave their CPUs back: two new actors can run (else this hangs).
        again = collect(CheapTask(), SMALL, executor="ray", workers=2)
        assert_same_rows(rows_without_seconds(again), reference)
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------
# kill and resume of a real sweep process


def n_rows(path: Path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def live_group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies left to init do not count)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry))
    return pids


def start_sweep(out: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the test can signal all of it
    )


def wait_for_rows(proc: subprocess.Popen, path: Path, rows: int) -> None:
    deadline = time.monotonic() + 60
    while n_rows(path) < rows:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the sweep did not produce rows"
        time.sleep(0.01)


def reference_tables(tmp_path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The uninterrupted sweep, in this process (no sleep: the rows do not depend on it)."""
    store = ResultStore(tmp_path / "reference", FINGERPRINT)
    run_points(CheapTask(), POINTS, on_result=store.add, progress=False)
    store.finalize()
    return store.frame().drop(columns="seconds"), store.frame("per_image")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = start_sweep(
        out, "--workers", "2", "--sleep", "0.25", "--log", str(tmp_path / "first.log")
    )
    wait_for_rows(proc, out / "results.csv", 5)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole run dies at once, like a power cut
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done_before = ResultStore(out, FINGERPRINT, resume=True).completed()
    assert 5 <= len(done_before) < len(POINTS)

    log = tmp_path / "resumed.log"
    proc = start_sweep(out, "--resume", "--workers", "2", "--log", str(log))
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    report = json.loads(stdout)
    assert report == {
        "skipped": len(done_before),
        "computed": len(POINTS) - len(done_before),
        "done": len(POINTS),
    }
    computed = [e[2] for e in read_log(log) if e[0] == "point"]
    assert len(computed) == len(set(computed))  # no point twice
    assert set(computed) == {p.key for p in POINTS} - done_before  # none of the finished ones

    results, per_image = reference_tables(tmp_path)
    final = ResultStore(out, FINGERPRINT, resume=True)
    pd.testing.assert_frame_equal(final.frame().drop(columns="seconds"), results)
    pd.testing.assert_frame_equal(final.frame("per_image"), per_image)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigint_exits_130_and_keeps_finished_rows(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # 0.25 s per point: the 35 points left take seconds, so the signal lands mid-run even on
    # a loaded machine
    proc = start_sweep(out, "--workers", "2", "--sleep", "0.25")
    wait_for_rows(proc, out / "results.csv", 5)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while live_group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_group_members(proc.pid) == []  # the workers were ended too
    kept = ResultStore(out, FINGERPRINT, resume=True)
    assert 5 <= len(kept.completed()) < len(POINTS)
    results, _ = reference_tables(tmp_path)
    frame = kept.frame().drop(columns="seconds")
    expected = results[results["key"].isin(kept.completed())].reset_index(drop=True)
    pd.testing.assert_frame_equal(frame, expected)


# ---------------------------------------------------------------------------------------------
# provenance


def test_provenance_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance_module, "git_state", lambda: ("abc123", False))
    record = collect_provenance(
        name="quickstart",
        config_hash="h" * 64,
        seeds={"execution": 0},
        started=0.0,
        extra={"points_total": 40},
    )
    json.dumps(record)  # JSON-ready
    assert record["version"] == __import__("semcom").__version__
    assert record["git_commit"] == "abc123" and record["git_dirty"] is False
    assert record["scenario"] == "quickstart" and record["config_hash"] == "h" * 64
    assert record["seeds"] == {"execution": 0} and record["points_total"] == 40
    assert record["started"] == "1970-01-01T00:00:00+00:00"
    assert record["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    libraries = record["libraries"]
    assert libraries["numpy"] == np.__version__ and libraries["pandas"] == pd.__version__
    hardware = record["hardware"]
    assert hardware["logical_cores"] == os.cpu_count() and hardware["memory_bytes"] > 0
    assert ("torch" in sys.modules) or hardware["gpus"] is None


def test_provenance_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import sys; from semcom.sweep import collect_provenance; "
        "collect_provenance(name='x', config_hash='y', seeds={}, started=0.0); "
        "print(sorted(m for m in ('torch', 'pandas', 'ray', 'numba', 'scipy') if m in sys.modules))"
    )
    env = {**os.environ, "GIT_DIR": str(tmp_path / "no-repo")}  # leave the real checkout alone
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    assert done.stdout.strip() == "[]"


def test_git_state(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    answers = {
        ("rev-parse", "HEAD"): "0123abcd\n",
        ("ls-files", "--", "."): "__init__.py\n",
        ("status", "--porcelain", "--untracked-files=no"): " M semcom/x.py\n",
    }
    monkeypatch.setattr(provenance_module, "_git", lambda args, cwd: answers[tuple(args)])
    assert git_state(tmp_path) == ("0123abcd", True)
    answers[("status", "--porcelain", "--untracked-files=no")] = ""
    assert git_state(tmp_path) == ("0123abcd", False)
    answers[("ls-files", "--", ".")] = ""  # a checkout that does not track the package
    assert git_state(tmp_path) == (None, None)
    monkeypatch.setattr(provenance_module, "_git", lambda args, cwd: None)  # no git / not a repo
    assert git_state(tmp_path) == (None, None)


def test_git_state_outside_a_repository(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert git_state(tmp_path) == (None, None)
