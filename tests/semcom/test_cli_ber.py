"""``semcom ber``: JSON output, agreement with theory, and usage errors (exit 2, one line)."""

from __future__ import annotations

import io
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
        (["--modulation", "qpsk", "--snr-db", "1", "--seed", "1.5"], "--seed"),
        (["--modulation", "qpsk", "--snr-db", "1", "--seed", "1e3"], "--seed"),
        (["--modulation", "qpsk", "--snr-db", "1", "--seed", "abc"], "--seed"),
        (["--modulation", "qpsk", "--snr-db", "1", "--seed", "-1"], "seed"),
        (["--modulation", "qpsk", "--snr-db", "1", "--seed", str(2**64)], "seed"),
        (["--modulation", "bpsk", "--snr-db", "1", "--max-bits", "1e14"], "max_bits"),
    ],
)  # fmt: skip
def test_usage_errors_exit_2_with_one_line(
    args: list[str], field: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Argparse errors (``--field``) exit 2 through SystemExit, ConfigErrors return 2."""
    if field.startswith("--"):
        with pytest.raises(SystemExit) as exit_info:
            main(["ber", *args])
        status = exit_info.value.code
    else:
        status = main(["ber", *args])
    assert status == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and field in err and "Traceback" not in err
    assert captured.out == ""  # refused before any work (no table header either)


def test_integer_seed_is_accepted(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ber", "--modulation", "qpsk", "--snr-db", "3", "--min-errors", "10",
            "--seed", str(2**64 - 1), "--json"]  # fmt: skip
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["errors"] >= 10


# 30 dB BPSK never errs, so the point runs to max_bits: 3e6 bits in several launches
LONG = ["ber", "--modulation", "bpsk", "--snr-db", "30", "--min-errors", "10",
        "--max-bits", "3e6", "--json"]  # fmt: skip


def test_long_point_shows_progress_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Progress after ``SEMCOM_PROGRESS_AFTER`` seconds (0 here instead of 2, to stay fast)."""
    monkeypatch.setenv("SEMCOM_PROGRESS_AFTER", "0")
    monkeypatch.setenv("SEMCOM_PROGRESS_EVERY", "0")
    assert main(LONG) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out)  # stdout keeps exactly the result
    lines = captured.err.splitlines()
    assert len(lines) >= 2
    assert all(line.startswith("semcom ber: snr_db 30: ") for line in lines)
    assert all("/10 errors" in line and "% done" in line for line in lines)
    assert lines[-1].split(": ")[2].startswith(f"{row['bits']:.2g} bits, 0/10 errors, 100% done")


def test_progress_is_quiet_for_short_points_and_with_no_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEMCOM_PROGRESS_AFTER", raising=False)
    assert main(LONG) == 0  # well under the default 2 s
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("SEMCOM_PROGRESS_AFTER", "0")
    monkeypatch.setenv("SEMCOM_PROGRESS_EVERY", "0")
    assert main([*LONG, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("SEMCOM_PROGRESS_AFTER", "soon")
    assert main(LONG) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "SEMCOM_PROGRESS_AFTER: 'soon' is invalid" in err


def test_progress_line_is_redrawn_in_place_on_a_terminal() -> None:
    from semcom.commands._progress import PointProgress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    show = PointProgress("semcom ber: snr_db 1", 100, 10_000, stream=out, after=0, every=0)
    show(10, 1000)
    show(50, 2000)
    show.close()
    text = out.getvalue()
    assert "\n" not in text and text.count("\r") == 4 and text.endswith("\r")
    assert "10/100 errors, 10% done" in text and "50/100 errors, 50% done" in text
    assert text.split("\r")[-2].strip() == ""  # erased at the end


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
