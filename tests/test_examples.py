"""``examples/isfr_vs_conventional.py``, the script README's Run section names, runs end to end
at a tiny size in a fresh process, and rejects a bad argument with one line and exit status 2.

The full-size run (15 epochs, 64 images) takes about a minute on 2 cores; here one epoch of a
4-feature model on the digits and 4 images check that every stage still fits together: both
trainings, both importance profiles, and one link row per scheme with its interval.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "isfr_vs_conventional.py"
SCHEMES = ("isfr-uep", "ui-ep", "ui-opt", "passive-uep")


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_isfr_vs_conventional_runs_at_a_tiny_size(tmp_path: Path) -> None:
    done = _run(
        "--dataset", "digits", "--features", "4", "--epochs", "1", "--images", "4",
        "--draws", "1", "--eta", "0.5", "--jobs", "1", "--no-cache", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "isfr: trained" in out and "conventional: trained" in out
    assert "Masking importance" in out
    for scheme in SCHEMES:  # one link row each: eta, SNR, scheme, PSNR and its interval
        row = re.search(rf"^ +0\.50 +0\.0 +{scheme} +(\S+) +\[(\S+), (\S+)\]", out, re.M)
        assert row, f"no link row for {scheme}:\n{out}"
        psnr, low, high = (float(x) for x in row.groups())
        assert low <= psnr <= high
    assert "isfr-uep vs best baseline" in out
    assert not list(tmp_path.iterdir())  # --no-cache: no checkpoint written


def test_isfr_vs_conventional_bad_argument_exits_2(tmp_path: Path) -> None:
    done = _run("--channel", "nakagami", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "channel: 'nakagami'" in done.stderr
    assert "Traceback" not in done.stderr
