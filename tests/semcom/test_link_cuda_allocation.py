"""A GPU link solves its frames' allocations on the GPU where the batched solver is faster
there: the hierarchical family without refinement. Under Numba's CUDA simulator (a subprocess)
the frames a ``backend="cuda"`` link allocates equal the CPU link's: the same sent features and
modulations, the objective within 1e-9. The GPU-resident chain (fading drawn on the device,
solved and mapped to per-feature inputs there) gives the same frames as well."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import optim
from tests.channels.cuda_helpers.simulator import ROOT, run_simulated
from tests.semcom.cuda_helpers.link_case import frames, link

HELPER = ROOT / "tests" / "semcom" / "cuda_helpers" / "run_link_cudasim.py"


@pytest.fixture(scope="module")
def simulated() -> dict:
    """The helper's output (one simulator subprocess for the module's tests)."""
    return run_simulated(str(HELPER))


def test_cuda_link_allocates_like_the_cpu_link(simulated: dict) -> None:
    gpu = simulated
    cpu = frames("cpu")
    assert gpu["solver_backends"] and set(gpu["solver_backends"]) == {"cuda"}
    np.testing.assert_array_equal(gpu["sent"], cpu["sent"])
    np.testing.assert_array_equal(gpu["bits_per_symbol"], cpu["bits_per_symbol"])
    np.testing.assert_allclose(gpu["objective"], cpu["objective"], rtol=1e-9, atol=0)
    assert np.asarray(cpu["sent"]).any()


def test_resident_chain_draws_solves_and_maps_frames_like_the_cpu_link(simulated: dict) -> None:
    resident = simulated["resident"]
    cpu_link = link("cpu")
    images = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    cpu = cpu_link.simulate(images, draw=1)
    np.testing.assert_array_equal(resident["bits_per_symbol"], cpu.bits_per_symbol)
    np.testing.assert_allclose(resident["objective"], cpu.objective, rtol=1e-9, atol=0)
    # the simulator's cuda.fma does not fuse: |h|^2 within a few ulps of NumPy's
    np.testing.assert_allclose(resident["gains"], cpu.gains, rtol=2.0**-50, atol=0)
    # the per-feature coefficients and powers the link kernel gets: the CPU link's choice
    h = trial_fading_for(cpu_link, 6)
    sent = cpu.sent
    assert sent.any() and (~sent).any()
    m = np.asarray(resident["bits_per_symbol"])
    np.testing.assert_array_equal(m > 0, sent)
    alloc = optim.solve_batch(cpu_link._problem, cpu.gains, cpu_link.method,
                              **cpu_link.method_options)  # fmt: skip
    rows, cols = np.nonzero(sent)
    expected_h = h[rows, alloc.subchannel[rows, cols]]
    np.testing.assert_array_equal(np.asarray(resident["h"][0])[rows, cols], expected_h.real)
    np.testing.assert_array_equal(np.asarray(resident["h"][1])[rows, cols], expected_h.imag)
    np.testing.assert_allclose(np.asarray(resident["power"])[rows, cols],
                               alloc.power[rows, cols], rtol=1e-9, atol=0)  # fmt: skip
    assert not np.asarray(resident["power"])[~sent].any()


def trial_fading_for(cpu_link, count: int) -> np.ndarray:  # noqa: ANN001
    from channels.fading import trial_fading

    return trial_fading("rayleigh", 4, (cpu_link.seed, cpu_link.draw_point(1)), np.arange(count))
