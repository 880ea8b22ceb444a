"""Send a few Rayleigh frames through ``SemanticLink(backend="cuda")`` under Numba's CUDA
simulator and print what the link allocated, as one JSON object; the test sends the same frames
through ``backend="cpu"`` and compares (``NUMBA_ENABLE_CUDASIM=1`` must be set before Numba is
imported, hence a subprocess)."""

from __future__ import annotations

import json
import os
import sys
from unittest import mock

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))

import optim  # noqa: E402
from tests.semcom.cuda_helpers.link_case import frames, resident_frames  # noqa: E402


def main() -> None:
    """Print the GPU link's frames and the backends its solver calls used, as JSON."""
    real = optim.solve_batch
    backends: list[str] = []

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        backends.append(kwargs.get("backend", "cpu"))
        return real(*args, **kwargs)

    with mock.patch.object(optim, "solve_batch", recording):
        result = frames("cuda")
    result["solver_backends"] = backends
    result["resident"] = resident_frames()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
