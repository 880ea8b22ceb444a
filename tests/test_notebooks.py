"""Every notebook under notebooks/ runs top to bottom on a synthetic results directory.

No Jupyter kernel: a fresh ``python -c`` process reads the notebook JSON and ``exec``s its code
cells in order in one namespace, with ``SEMCOM_RESULTS`` pointing at the fixture of
tests/semcom/results_fixture.py and ``MPLBACKEND=Agg``. The notebooks are also kept free of
stored outputs so the repository stays clean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.semcom.results_fixture import write_results_dir

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RESULTS_DIR_LINE = 'RESULTS_DIR = os.environ.get("SEMCOM_RESULTS", "results/quickstart")'

RUNNER = """
import json, sys
notebook = json.load(open(sys.argv[1], encoding="utf-8"))
namespace = {"__name__": "__main__"}
for number, cell in enumerate(notebook["cells"]):
    if cell["cell_type"] != "code":
        continue
    source = "".join(cell["source"])
    exec(compile(source, f"{sys.argv[1]}, cell {number}", "exec"), namespace)
print("notebook ran")
"""


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    axes = {"snr_db": [0.0, 10.0], "eta": [0.25, 0.5]}
    return write_results_dir(tmp_path_factory.mktemp("run"), axes=axes, n_images=6).directory


def test_there_are_notebooks() -> None:
    assert {p.name for p in NOTEBOOKS} >= {"results.ipynb", "importance_profiles.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_clean(path: Path) -> None:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    assert code and any(c["cell_type"] == "markdown" for c in notebook["cells"])
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None
    assert RESULTS_DIR_LINE in "".join(code[0]["source"]).splitlines()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, results_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SEMCOM_RESULTS": str(results_dir), "MPLBACKEND": "Agg"}
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("notebook ran")
