"""One run per output folder (:class:`semcom.sweep.OutputLock`).

- two real ``semcom run`` on one ``--out``: the second, and a ``--resume``, are refused at
  once (exit 2, one line naming the holder's pid and host, before any training) and the first
  finishes with one clean result set;
- the lock of a process killed with SIGKILL is taken over, and says whose it was;
- where ``flock`` is unavailable the record decides: a dead process of this host is taken
  over, a live one or one of another host is refused.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from channels.errors import ConfigError
from semcom.sweep import OutputLock, describe_stale
from semcom.sweep.lock import LOCK_FILE, pid_alive

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
HOLD = (
    "import sys, time; from semcom.sweep import OutputLock; "
    "OutputLock(sys.argv[1], 'holder').acquire(); print('held', flush=True); time.sleep(600)"
)


def refusal(directory: Path, pid: int | str, host: str | None = None) -> re.Pattern:
    """The one-line refusal naming the holder ``pid`` (a regex) on ``host`` (default: this
    host)."""
    host = re.escape(host or socket.gethostname())
    return re.compile(
        rf"output\.dir: '{re.escape(str(directory))}' is in use by another run "
        rf"\(pid {pid} on host {host}, since \d{{4}}-\d\d-\d\dT[^)]+\); "
        r"allowed: wait for it to end(?: \(or delete .+ if it has ended\))?, or another --out"
    )


def hold(directory: Path) -> subprocess.Popen:
    """Another process holding the lock of ``directory`` (returns once it holds it)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(directory)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    assert not pid_alive(proc.pid)
    return proc.pid


# ---------------------------------------------------------------------------------------------
# two real semcom run


def semcom_run(out: Path, checkpoints: Path, *extra: str) -> list[str]:
    """A smoke-size ``semcom run``: 1 epoch, 4 points of 1 draw over 4 images, no plots."""
    return [
        sys.executable, "-m", "semcom.cli", "run", str(QUICKSTART), "--set", f"output.dir={out}",
        "--workers", "1", "--no-progress", "--set", "training.epochs=1",
        "--set", "sweep.snr_db=[0]", "--set", "data.eval_images=4",
        "--set", "stop.min_draws=1", "--set", "stop.max_draws=1",
        "--set", f"training.checkpoint_dir={checkpoints}", "--set", "output.plots=false", *extra,
    ]  # fmt: skip


def test_two_runs_on_one_out_give_one_clean_result_set_and_one_refusal(tmp_path: Path) -> None:
    out, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
    first = subprocess.Popen(
        semcom_run(out, checkpoints), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while (OutputLock(out).holder() or {}).get("pid") != first.pid:
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGSTOP)  # hold it inside its run, however fast it is
        try:
            others = [  # a second run, and a --resume, at the same time
                subprocess.Popen(
                    semcom_run(out, checkpoints, *extra),
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )  # fmt: skip
                # output.dir: refused when it locks, after loading the scenario; --out: at once
                for extra in ([], ["--out", str(out), "--resume"])
            ]
            for other in others:
                stdout, stderr = other.communicate(timeout=300)
                assert other.returncode == 2, stderr
                [line] = stderr.splitlines()  # one line, no traceback
                assert line.startswith("semcom run: error: ")
                assert refusal(out, first.pid).fullmatch(line.removeprefix("semcom run: error: "))
                assert stdout == ""  # refused before anything started (no training)
        finally:
            os.killpg(first.pid, signal.SIGCONT)
        stdout, stderr = first.communicate(timeout=600)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
    assert first.returncode == 0, stderr
    assert "4 points computed, 0 reused" in stdout
    text = (out / "results.csv").read_text()
    assert text.count("point,key,") == 1  # one header
    frame = pd.read_csv(out / "results.csv")
    assert frame["point"].tolist() == list(range(4)) and frame["key"].is_unique
    per_image = pd.read_csv(out / "per_image.csv")
    assert len(per_image) == 4 * 4 and not per_image.duplicated(["key", "image"]).any()
    assert json.loads((out / "provenance.json").read_text())["status"] == "complete"
    assert OutputLock(out).holder() is None  # released


# ---------------------------------------------------------------------------------------------
# the lock itself


def test_a_folder_held_by_another_process_is_refused_naming_it(tmp_path: Path) -> None:
    holder = hold(tmp_path)
    try:
        record = OutputLock(tmp_path).holder()
        assert record is not None
        assert (record["pid"], record["host"]) == (holder.pid, socket.gethostname())
        assert record["command"] == "holder"
        with pytest.raises(ConfigError) as info:
            OutputLock(tmp_path).acquire()
        assert refusal(tmp_path, holder.pid).fullmatch(str(info.value))
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    holder = hold(tmp_path)
    holder.send_signal(signal.SIGKILL)  # no cleanup: its record stays in the file
    holder.wait()
    assert OutputLock(tmp_path).holder()["pid"] == holder.pid
    with OutputLock(tmp_path) as lock:
        assert lock.stale is not None and lock.stale["pid"] == holder.pid
        assert f"pid {holder.pid} on host" in describe_stale(lock)
        assert lock.holder()["pid"] == os.getpid()
    assert OutputLock(tmp_path).holder() is None
    assert (tmp_path / LOCK_FILE).is_file()  # kept: deleting it could let two runs in
    with OutputLock(tmp_path) as lock:  # a released lock is not stale
        assert lock.stale is None and describe_stale(lock) is None


def test_check_free_refuses_a_held_folder_and_changes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    OutputLock(missing).check_free()  # nothing to check, and nothing created
    assert not missing.exists()
    holder = hold(tmp_path)
    try:
        with pytest.raises(ConfigError) as info:
            OutputLock(tmp_path).check_free()
        assert refusal(tmp_path, holder.pid).fullmatch(str(info.value))
        assert OutputLock(tmp_path).holder()["pid"] == holder.pid  # untouched
    finally:
        holder.kill()
        holder.wait()
    OutputLock(tmp_path).check_free()  # a killed holder's record: free
    with OutputLock(tmp_path) as lock:
        assert lock.stale["pid"] == holder.pid


def test_one_holder_at_a_time_in_one_process_too(tmp_path: Path) -> None:
    lock = OutputLock(tmp_path).acquire()
    try:
        with pytest.raises(ConfigError, match=rf"in use by another run \(pid {os.getpid()} "):
            OutputLock(tmp_path).acquire()
        with pytest.raises(RuntimeError, match="already held"):
            lock.acquire()
    finally:
        lock.release()
    lock.release()  # a no-op now
    with OutputLock(tmp_path):
        pass


def test_a_folder_that_cannot_be_created_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^output\.dir: '.*file' is invalid; allowed: a writ"):
        OutputLock(tmp_path / "file").acquire()
    with pytest.raises(ConfigError, match=r"^output\.dir: '.*\\x00b' is invalid; allowed: a "):
        OutputLock(f"{tmp_path}/a\0b").acquire()


# ---------------------------------------------------------------------------------------------
# without flock: the record decides


@pytest.fixture
def no_flock(monkeypatch: pytest.MonkeyPatch) -> None:
    def unsupported(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", unsupported)


def write_record(directory: Path, **record: object) -> None:
    (directory / LOCK_FILE).write_text(json.dumps(record) + "\n")


@pytest.mark.usefixtures("no_flock")
def test_without_flock_a_dead_process_of_this_host_is_taken_over(tmp_path: Path) -> None:
    with OutputLock(tmp_path) as lock:  # no record at all
        assert lock.stale is None and lock.holder()["pid"] == os.getpid()
    pid = dead_pid()
    write_record(tmp_path, pid=pid, host=socket.gethostname(), started="2025-01-01T00:00:00")
    with OutputLock(tmp_path) as lock:
        assert lock.stale["pid"] == pid and lock.holder()["pid"] == os.getpid()


@pytest.mark.usefixtures("no_flock")
def test_without_flock_a_live_or_remote_holder_is_refused(tmp_path: Path) -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        write_record(tmp_path, pid=live.pid, host=socket.gethostname(), started="2025-01-01T0")
        with pytest.raises(ConfigError) as info:
            OutputLock(tmp_path).acquire()
        assert refusal(tmp_path, live.pid).fullmatch(str(info.value))
        assert "delete" not in str(info.value)  # it is alive: nothing to delete
    finally:
        live.kill()
        live.wait()
    # another host: its process cannot be checked, so it stays refused until deleted
    write_record(tmp_path, pid=dead_pid(), host="elsewhere", started="2025-01-01T00:00:00")
    with pytest.raises(ConfigError) as info:
        OutputLock(tmp_path).acquire()
    assert refusal(tmp_path, r"\d+", "elsewhere").fullmatch(str(info.value))
    assert f"(or delete {tmp_path / LOCK_FILE} if it has ended)" in str(info.value)


def test_pid_alive() -> None:
    assert pid_alive(os.getpid()) and pid_alive(os.getppid())
    assert not pid_alive(dead_pid()) and not pid_alive(0) and not pid_alive(-1)
