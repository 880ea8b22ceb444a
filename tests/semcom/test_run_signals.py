"""Clean shutdown of ``semcom run`` and of a sweep on SIGTERM, SIGINT, SIGHUP and SIGKILL.

- the first signal raises :class:`Interrupted` in the main thread, repeats are ignored while
  the cleanup runs, ignored signals stay ignored, and the handlers are restored afterwards;
- a signal in any phase of ``semcom run`` (training, calibration, sweep, writing the results)
  exits with ``128 + signal`` and one stderr line, leaves ``provenance.json`` saying
  ``interrupted`` and the folder unlocked, and keeps the finished rows (in process, each phase
  made to signal itself);
- a real ``semcom run`` sent SIGTERM while two worker processes train its models ends them all;
- a real sweep with two workers sent SIGTERM, SIGHUP or SIGINT (to its main process only, or
  to its whole group as a scheduler does) leaves no process behind and keeps its rows;
- after a SIGKILL of the main process (``kill -9``, the OOM killer) the workers and the
  resource tracker end within seconds, and the next run takes the stale lock over.

Processes are counted in /proc by process group: each command runs in its own session.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import semcom.runner as runner
from semcom.cli import main
from semcom.sweep import OutputLock, ResultStore, expand, run_points
from semcom.sweep.signals import (
    Interrupted,
    exit_status,
    preserve_handlers,
    shutdown_on_signals,
    signals_deferred,
)
from tests.semcom.sweep_helpers.processes import (
    HAS_PROC,
    live_group_members,
    spawned_workers,
    wait_for_workers,
    wait_until_gone,
)
from tests.semcom.sweep_helpers.tasks import AXES, BASE, FINGERPRINT, CheapTask

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
CHEAP = ROOT / "tests" / "semcom" / "sweep_helpers" / "run_cheap.py"
SPAWN_RACE = ROOT / "tests" / "semcom" / "sweep_helpers" / "spawn_race.py"
POINTS = expand(AXES, BASE)
ORPHAN_DEADLINE_S = 5.0
"""Seconds within which orphaned workers must be gone (their watchdog polls every 0.5 s)."""

needs_proc = pytest.mark.skipif(not HAS_PROC, reason="counts processes in /proc")


def smoke(checkpoints: Path, *extra: str) -> list[str]:
    """Overrides shrinking the quickstart to 8 points and a 1-epoch training."""
    return [
        "--set", "training.epochs=1", "--set", "sweep.snr_db=[0, 10]",
        "--set", "data.eval_images=8", "--set", "stop.min_draws=1", "--set", "stop.max_draws=2",
        "--set", f"training.checkpoint_dir={checkpoints}", "--set", "output.plots=false",
        "--no-progress", *extra,
    ]  # fmt: skip


def provenance(out: Path) -> dict:
    return json.loads((out / "provenance.json").read_text())


def assert_unlocked(out: Path) -> None:
    lock = OutputLock(out)
    assert lock.holder() is None  # the record was emptied on release
    with lock:  # and the lock is free
        assert lock.stale is None


# ---------------------------------------------------------------------------------------------
# the handlers


def test_the_first_signal_raises_repeats_are_ignored_and_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGTERM)
    ignored = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with shutdown_on_signals() as handler:
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # stays ignored
            with pytest.raises(Interrupted) as info:
                os.kill(os.getpid(), signal.SIGTERM)
            assert (info.value.name, info.value.exit_status) == ("SIGTERM", 143)
            assert handler.received == signal.SIGTERM
            os.kill(os.getpid(), signal.SIGINT)  # during cleanup: ignored, no exception
            os.kill(os.getpid(), signal.SIGTERM)
        assert signal.getsignal(signal.SIGTERM) == before
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, ignored)
    clone = pickle.loads(pickle.dumps(Interrupted(signal.SIGHUP)))
    assert (type(clone), clone.signum, str(clone)) == (Interrupted, signal.SIGHUP, "SIGHUP")
    assert exit_status(KeyboardInterrupt()) == 130 and exit_status(clone) == 129


def test_handlers_outside_the_main_thread_are_left_alone() -> None:
    seen: list[object] = []

    def body() -> None:
        with shutdown_on_signals() as handler:
            seen.append(signal.getsignal(signal.SIGTERM))
            seen.append(handler.received)

    thread = threading.Thread(target=body)
    thread.start()
    thread.join()
    assert seen == [signal.getsignal(signal.SIGTERM), None]


def test_preserve_handlers_undoes_a_library_s_handler() -> None:
    with shutdown_on_signals():
        ours = signal.getsignal(signal.SIGTERM)
        with preserve_handlers():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))  # as ray.init
        assert signal.getsignal(signal.SIGTERM) is ours
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_deferred_signal_is_raised_when_the_outermost_block_ends() -> None:
    with shutdown_on_signals() as handler:
        reached = []
        with pytest.raises(Interrupted) as info:
            with signals_deferred():
                with signals_deferred():
                    os.kill(os.getpid(), signal.SIGTERM)
                    os.kill(os.getpid(), signal.SIGHUP)  # a repeat: ignored
                    reached.append("inner end")
                reached.append("outer end")  # the inner block's end did not raise
        assert reached == ["inner end", "outer end"]
        assert (info.value.name, handler.received) == ("SIGTERM", signal.SIGTERM)
        assert (handler.deferring, handler.pending) == (0, False)


def test_a_deferred_signal_wins_over_the_blocks_own_error_and_chains_it() -> None:
    with shutdown_on_signals():
        with pytest.raises(Interrupted) as info:
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                raise ValueError("the block's own error")
        assert isinstance(info.value.__context__, ValueError)


def test_deferring_changes_nothing_outside_the_handler_or_the_main_thread() -> None:
    with pytest.raises(KeyboardInterrupt) as info:  # Python's own SIGINT handler: at once
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
            pytest.fail("SIGINT was held back without shutdown_on_signals")
    assert not isinstance(info.value, Interrupted)
    seen: list[int] = []
    with shutdown_on_signals() as handler:

        def body() -> None:
            with signals_deferred():
                seen.append(handler.deferring)

        thread = threading.Thread(target=body)
        thread.start()
        thread.join()
    assert seen == [0]


# ---------------------------------------------------------------------------------------------
# every phase of semcom run, in process


class SelfSignal:
    """Sends ``signum`` to this process; the handler of ``semcom run`` raises right here."""

    def __init__(self, signum: int) -> None:
        self.signum = signum

    def __call__(self, *args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), self.signum)
        raise AssertionError("the signal did not interrupt the run")


@dataclass
class SignallingTask(CheapTask):
    """The cheap task, which signals its own process when it reaches point ``signal_at``."""

    signal_at: int | None = None
    signum: int = signal.SIGTERM
    device: str = "cpu"

    def bits_rows(self) -> list[dict]:  # no scheme has per-feature bits
        return []

    def compile_kernels(self, points) -> int:  # noqa: ANN001 - no kernels to compile
        return 0

    def __call__(self, point):  # noqa: ANN001, ANN204
        if point.index == self.signal_at:
            SelfSignal(self.signum)()
        return super().__call__(point)


class FakeCalibration:
    ordering: tuple = ()
    codecs: tuple = ()  # no compressed codecs
    models: tuple = ()  # no models.csv rows

    def importance_rows(self) -> list[dict]:
        return [{"model": "isfr", "feature": 1, "weight": 1.0}]


def fake_phases(monkeypatch: pytest.MonkeyPatch, phase: str, signum: int) -> None:
    """Make ``phase`` of the runner send ``signum``; replace the phases before it by fakes."""
    if phase == "training":
        monkeypatch.setattr(runner, "train_models", SelfSignal(signum))
        return
    monkeypatch.setattr(runner, "train_models", lambda *a, **k: {})
    if phase == "calibration":
        monkeypatch.setattr(runner, "calibrate", SelfSignal(signum))
        return
    monkeypatch.setattr(runner, "calibrate", lambda *a, **k: FakeCalibration())
    at = 3 if phase == "sweep" else None
    monkeypatch.setattr(
        runner, "LinkPointTask", lambda *a, **k: SignallingTask(signal_at=at, signum=signum)
    )
    if phase == "finalize":
        monkeypatch.setattr(ResultStore, "finalize", SelfSignal(signum))


@pytest.mark.parametrize(
    ("phase", "signum", "rows"),
    [
        ("training", signal.SIGINT, 0),
        ("training", signal.SIGTERM, 0),
        ("calibration", signal.SIGTERM, 0),
        ("sweep", signal.SIGTERM, 3),
        ("sweep", signal.SIGHUP, 3),
        ("finalize", signal.SIGTERM, 8),
    ],
)
def test_a_signal_in_any_phase_records_interrupted_and_keeps_the_rows(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    phase: str,
    signum: int,
    rows: int,
) -> None:
    out = tmp_path / "out"
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    fake_phases(monkeypatch, phase, signum)
    args = ["run", str(QUICKSTART), "--out", str(out), "--workers", "1", *smoke(tmp_path)]
    assert main(args) == 128 + signum
    name = signal.Signals(signum).name
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [f"semcom run: interrupted ({name})"]
    assert f"interrupted ({name}): {rows} of 8 points are saved" in captured.out
    record = provenance(out)
    assert (record["status"], record["signal"]) == ("interrupted", name)
    assert record["points_done"] == rows == n_rows(out / "results.csv")
    assert_unlocked(out)
    assert not multiprocessing.active_children()
    assert {s: signal.getsignal(s) for s in before} == before  # handlers restored

    # the finished rows are kept: --resume computes only the rest
    monkeypatch.undo()
    fake_phases(monkeypatch, "none", signum)
    assert main([*args, "--resume"]) == 0
    assert f"{8 - rows} points computed, {rows} reused" in capsys.readouterr().out
    assert provenance(out)["status"] == "complete"
    assert len(pd.read_csv(out / "results.csv")) == 8


def test_a_failing_run_records_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(runner, "train_models", broken)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated failure"):
        main(["run", str(QUICKSTART), "--out", str(out), *smoke(tmp_path)])
    record = provenance(out)
    assert (record["status"], record["error"]) == ("failed", "RuntimeError: simulated failure")
    assert_unlocked(out)


# ---------------------------------------------------------------------------------------------
# a real sweep process (the cheap task) with two workers


class Command:
    """A command in its own session (so its process group can be counted), output to files.

    Files, not pipes: workers that outlive the command would keep a pipe open, and reading it
    would block. :meth:`kill_group` ends whatever is left (a failed test leaves nothing).
    """

    def __init__(self, command: list[str], directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.stdout_path, self.stderr_path = directory / "stdout", directory / "stderr"
        with open(self.stdout_path, "w") as out, open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(
                command, cwd=ROOT, stdout=out, stderr=err, start_new_session=True
            )
        self.pid = self.proc.pid

    def wait(self, timeout: float = 60.0) -> tuple[int, str, str]:
        """Exit status, stdout and stderr."""
        status = self.proc.wait(timeout=timeout)
        return status, self.stdout_path.read_text(), self.stderr_path.read_text()

    def wait_for_group(self, within: float) -> tuple[int, str, str, list[int]]:
        """Exit status, stdout, stderr and the group's members still alive after up to
        ``within`` s; the output is read once the group is gone (or the time is up), so it
        holds whatever a worker wrote after the command ended."""
        status = self.proc.wait(timeout=60.0)
        left, _ = wait_until_gone(self.pid, within)
        return status, self.stdout_path.read_text(), self.stderr_path.read_text(), left

    def kill_group(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in live_group_members(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def commands() -> Iterator[list[Command]]:
    """Commands a test starts; anything left of them is killed at the end."""
    started: list[Command] = []
    yield started
    for command in started:
        command.kill_group()


def start_cheap(commands: list[Command], out: Path, *args: str) -> Command:
    argv = [sys.executable, str(CHEAP), str(out), "--workers", "2", *args]
    commands.append(Command(argv, out.parent / "logs"))
    return commands[-1]


def n_rows(path: Path) -> int:
    try:
        return max(0, path.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def wait_for_rows(command: Command, path: Path, rows: int) -> None:
    deadline = time.monotonic() + 60
    while n_rows(path) < rows:
        assert command.proc.poll() is None, command.wait()
        assert time.monotonic() < deadline, "the sweep did not produce rows"
        time.sleep(0.01)


def cheap_reference(directory: Path) -> pd.DataFrame:
    """The uninterrupted cheap sweep, in this process, read back from its store."""
    store = ResultStore(directory, FINGERPRINT)
    run_points(CheapTask(), POINTS, on_result=store.add, progress=False)
    return store.frame().drop(columns="seconds")


@needs_proc
@pytest.mark.parametrize(
    ("signum", "target"),
    [
        (signal.SIGTERM, "main"),  # kill PID, timeout(1)
        (signal.SIGTERM, "group"),  # a scheduler ending the job
        (signal.SIGHUP, "main"),  # the terminal closed
        (signal.SIGINT, "main"),
    ],
)
def test_a_signal_mid_sweep_leaves_no_process_and_keeps_the_rows(
    tmp_path: Path, commands: list[Command], signum: int, target: str
) -> None:
    out = tmp_path / "out"
    proc = start_cheap(commands, out, "--sleep", "0.25")
    wait_for_rows(proc, out / "results.csv", 3)
    assert len(spawned_workers(proc.pid)) == 2
    if target == "main":
        os.kill(proc.pid, signum)
    else:
        os.killpg(proc.pid, signum)
    status, _, stderr, left = proc.wait_for_group(10.0)
    assert status == 128 + signum, stderr
    name = signal.Signals(signum).name
    [line] = stderr.splitlines()  # one line, no traceback
    assert line.startswith(f"interrupted ({name}): ")
    assert left == []
    assert_unlocked(out)
    kept = ResultStore(out, FINGERPRINT, resume=True)
    assert 3 <= len(kept.completed()) < len(POINTS)
    reference = cheap_reference(tmp_path / "reference")
    expected = reference[reference["key"].isin(kept.completed())].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept.frame().drop(columns="seconds"), expected)


@needs_proc
@pytest.mark.parametrize("busy", ["sleeping", "holding the GIL"])
def test_sigkill_of_the_main_process_ends_the_workers_within_seconds(
    tmp_path: Path, commands: list[Command], busy: str
) -> None:
    out = tmp_path / "out"
    # the workers are in a point at the kill: in time.sleep, or in a native call that holds
    # the GIL for 60 s (no watchdog thread can run then)
    how = ["--sleep", "5"] if busy == "sleeping" else ["--sleep", "0", "--hold-gil", "60"]
    proc = start_cheap(commands, out, *how)
    wait_for_workers(proc.pid, 2)
    time.sleep(1.0)  # let the workers start their points
    os.kill(proc.pid, signal.SIGKILL)  # only the main process: nothing cleans up
    killed = time.monotonic()
    assert proc.wait()[0] == -signal.SIGKILL
    left, _ = wait_until_gone(proc.pid, 2 * ORPHAN_DEADLINE_S)
    waited = time.monotonic() - killed
    assert left == [] and waited < ORPHAN_DEADLINE_S, (left, waited)
    # the lock of the dead run is stale: the next one takes it over
    with OutputLock(out) as lock:
        assert lock.stale is not None and lock.stale["pid"] == proc.pid


@needs_proc
@pytest.mark.parametrize(("how", "status"), [("term", 143), ("ctrl-c", 130)])
def test_a_signal_while_a_worker_starts_leaves_no_worker_and_no_traceback(
    tmp_path: Path, commands: list[Command], how: str, status: int
) -> None:
    # between the worker's exec and the pool's record of it. Without the hold-back, "term" left
    # a worker the pool did not know, which read a closed pipe and printed an EOFError
    # traceback; "ctrl-c" (to the whole group) interrupted the worker's start-up with a
    # KeyboardInterrupt traceback
    argv = [sys.executable, str(SPAWN_RACE), how]
    commands.append(proc := Command(argv, tmp_path / "logs"))
    got, stdout, stderr, left = proc.wait_for_group(ORPHAN_DEADLINE_S)
    assert (got, stdout, stderr, left) == (status, "1\n", "", [])


# ---------------------------------------------------------------------------------------------
# a real semcom run, while two worker processes train its models


@needs_proc
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL])
def test_a_signal_during_training_leaves_no_process(
    tmp_path: Path, commands: list[Command], signum: int
) -> None:
    out = tmp_path / "out"
    long_training = ["--set", "training.epochs=500", "--workers", "2", "--out", str(out)]
    argv = [sys.executable, "-m", "semcom.cli", "run", str(QUICKSTART),
            *smoke(tmp_path / "fresh-checkpoints"), *long_training]  # fmt: skip
    commands.append(proc := Command(argv, tmp_path / "logs"))
    wait_for_workers(proc.pid, 2)  # the two training workers
    os.kill(proc.pid, signum)  # the main process only, like kill PID
    signalled = time.monotonic()
    status, stdout, stderr, left = proc.wait_for_group(30.0)
    waited = time.monotonic() - signalled  # SIGTERM: includes the run's own cleanup
    limit = ORPHAN_DEADLINE_S if signum == signal.SIGKILL else 30.0
    assert left == [] and waited < limit, (left, waited)
    assert "model isfr: mlp" in stdout and "trained in" not in stdout  # it was training
    if signum == signal.SIGKILL:
        assert status == -signal.SIGKILL
        with OutputLock(out) as lock:  # dead without releasing: taken over
            assert lock.stale is not None and lock.stale["pid"] == proc.pid
        return
    assert status == 143, stderr
    assert stderr.splitlines() == ["semcom run: interrupted (SIGTERM)"]
    record = provenance(out)
    assert (record["status"], record["points_done"]) == ("interrupted", 0)
    assert_unlocked(out)
