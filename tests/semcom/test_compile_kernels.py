"""``semcom run`` compiles the sweep's Numba kernels once, before the workers start
(:func:`semcom.runner.compile_kernels`): no row changes, a slow compile is announced and timed,
a fast one prints nothing, and an error is left to the points that raise it."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from semcom.runner import compile_kernels
from tests.semcom.link_task_helpers import tiny_task

SCHEMES = ["isfr-uep", "ui-ep", "sep-capacity"]
CHANNEL = {"model": "rayleigh", "n_subchannels": 4}


def _rows(task, points) -> pd.DataFrame:  # noqa: ANN001
    return pd.DataFrame([task(p).row for p in points]).drop(columns="seconds")


@pytest.mark.usefixtures("one_thread")  # setup() sets torch's thread count
def test_compiling_first_changes_no_row() -> None:
    sweep = {"snr_db": [0, 10], "channel": ["awgn", "rayleigh"]}
    plain, points = tiny_task(SCHEMES, CHANNEL, sweep)
    warmed, _ = tiny_task(SCHEMES, CHANNEL, sweep)
    assert len(points) == 2 * 2 * 3
    # one link per (scheme, channel) of the semantic schemes; the separate one is left out
    assert warmed.compile_kernels(points) == 2 * 2
    pd.testing.assert_frame_equal(_rows(warmed, points), _rows(plain, points))


class _Compiling:
    """A task whose compile takes ``seconds`` and then raises ``error`` (if any)."""

    def __init__(
        self, seconds: float, error: BaseException | None = None, device: str = "cpu"
    ) -> None:
        self.seconds, self.error, self.device = seconds, error, device
        self.calls = 0

    def compile_kernels(self, points: list) -> int:
        self.calls += 1
        time.sleep(self.seconds)
        if self.error is not None:
            raise self.error
        return 1


def test_a_slow_compile_is_announced_then_timed() -> None:
    lines: list[str] = []
    compile_kernels(_Compiling(0.6), [], lines.append, notice_after=0.05)
    assert len(lines) == 2
    assert lines[0].startswith("compiling the link and allocation kernels")
    assert lines[1].startswith("kernels compiled in ")


def test_a_fast_compile_prints_nothing() -> None:
    lines: list[str] = []
    compile_kernels(_Compiling(0.0), [], lines.append, notice_after=30.0)
    assert lines == []


def test_an_error_is_left_to_the_points_and_the_notice_is_cancelled() -> None:
    lines: list[str] = []
    compile_kernels(_Compiling(0.0, ValueError("bad")), [], lines.append, notice_after=0.2)
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C is not swallowed
        compile_kernels(_Compiling(0.0, KeyboardInterrupt()), [], lines.append, notice_after=0.2)
    time.sleep(0.5)  # past notice_after: a timer left running would have logged by now
    assert lines == []
    compile_kernels(_Compiling(0.6, ValueError("bad")), [], lines.append, notice_after=0.05)
    assert len(lines) == 1 and lines[0].startswith("compiling")  # no "compiled in" line


@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_a_gpu_task_is_left_to_its_workers(device: str) -> None:
    lines: list[str] = []
    task = _Compiling(0.3, device=device)
    compile_kernels(task, [], lines.append, notice_after=0.05)
    assert task.calls == 0 and lines == []
    cpu = _Compiling(0.0)
    compile_kernels(cpu, [], lines.append)
    assert cpu.calls == 1
