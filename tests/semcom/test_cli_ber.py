"""``semcom ber``: JSON output, agreement with theory, and usage errors (exit 2, one line)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from semcom.cli import main

KEYS = {"modulation", "channel", "snr_db", "ber", "ci_low", "ci_high", "errors", "bits",
        "theory_ber", "backend", "seconds"}  # fmt: skip


def test_json_lines_one_per_point(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ber", "--modulation", "16qam", "--channel", "awgn", "--snr-db", "0", "2", "4",
            "--min-errors", "1000", "--max-bits", "1e9", "--seed", "1", "--json"]  # fmt: skip
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line, snr in zip(lines, (0.0, 2.0, 4.0), strict=True):
        row = json.loads(line)
        assert set(row) == KEYS
        assert row["snr_db"] == snr and row["modulation"] == "16qam" and row["backend"] == "cpu"
        assert row["errors"] >= 1000
        assert row["ci_low"] <= row["ber"] <= row["ci_high"]
        assert row["ci_low"] <= row["theory_ber"] <= row["ci_high"]


def test_rician_coherence_and_table_output(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ber", "--modulation", "qpsk", "--channel", "rician", "--rician-k", "2",
            "--coherence", "8", "--snr-db", "10", "--min-errors", "500"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:2] == ["snr_db", "ber"] and len(out) == 2


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--modulation", "8psk", "--snr-db", "1"], "modulation"),
        (["--modulation", "qpsk", "--snr-db", "nan"], "snr_db"),
        (["--modulation", "qpsk", "--snr-db", "1", "--min-errors", "-3"], "min_errors"),
        (["--modulation", "qpsk", "--snr-db", "1", "--min-errors", "100", "--max-bits", "10"],
         "min_errors"),
        (["--modulation", "qpsk", "--snr-db", "1", "--max-bits", "nan"], "max_bits"),
        (["--modulation", "qpsk", "--snr-db", "1", "--coherence", "0"], "coherence"),
        (["--modulation", "qpsk", "--snr-db", "1", "--channel", "rician", "--rician-k", "-1"],
         "rician_k"),
        (["--modulation", "qpsk", "--snr-db", "1", "--channel", "fading"], "channel"),
        (["--modulation", "qpsk", "--snr-db", "1", "--backend", "quantum"], "backend"),
        (["--modulation", "qpsk", "--snr-db", "x"], "--snr-db"),
        (["--modulation", "qpsk"], "--snr-db"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_one_line(
    args: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) if field.startswith("--") else _no_raise():
        status = main(["ber", *args])
        assert status == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and field in err and "Traceback" not in err


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_console_script_exit_status_and_no_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "semcom.cli", "ber", "--modulation", "16qam", "--snr-db", "1",
         "--min-errors", "-1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        "semcom ber: error: min_errors: -1.0 is invalid; allowed: an integer >= 1"
    )


def test_closed_pipe_is_not_a_traceback() -> None:
    """`semcom ber ... | head -1`: the reader leaves after one line while 300 more points are
    still to be printed (each flushed), so the writer must meet the closed pipe."""
    snrs = " ".join(str(0.01 * i) for i in range(300))
    proc = subprocess.run(
        f"{sys.executable} -m semcom.cli ber --modulation bpsk --snr-db {snrs} "
        "--min-errors 1 --max-bits 1 --json | head -1",
        shell=True, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.stdout.count("\n") == 1
    assert proc.stderr == ""
