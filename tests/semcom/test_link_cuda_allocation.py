"""A GPU link solves its frames' allocations on the GPU where the batched solver is faster
there: the hierarchical family without refinement. Under Numba's CUDA simulator (a subprocess)
the frames a ``backend="cuda"`` link allocates equal the CPU link's: the same sent features and
modulations, the objective within 1e-9."""

from __future__ import annotations

import numpy as np

from tests.channels.cuda_helpers.simulator import ROOT, run_simulated
from tests.semcom.cuda_helpers.link_case import frames

HELPER = ROOT / "tests" / "semcom" / "cuda_helpers" / "run_link_cudasim.py"


def test_cuda_link_allocates_like_the_cpu_link() -> None:
    gpu = run_simulated(str(HELPER))
    cpu = frames("cpu")
    assert gpu["solver_backends"] and set(gpu["solver_backends"]) == {"cuda"}
    np.testing.assert_array_equal(gpu["sent"], cpu["sent"])
    np.testing.assert_array_equal(gpu["bits_per_symbol"], cpu["bits_per_symbol"])
    np.testing.assert_allclose(gpu["objective"], cpu["objective"], rtol=1e-9, atol=0)
    assert np.asarray(cpu["sent"]).any()
