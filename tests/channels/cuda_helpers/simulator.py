"""Run a Python program under Numba's CUDA simulator, in a subprocess.

The simulator must be switched on (``NUMBA_ENABLE_CUDASIM=1``) before Numba is imported, and
changing Numba's environment inside pytest breaks its thread pool; hence a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def run_simulated(*args: str) -> object:
    """``python *args`` under the simulator, from the repository root; the last line it prints,
    parsed as JSON. Fails with the end of its standard error if it does."""
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *args], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
