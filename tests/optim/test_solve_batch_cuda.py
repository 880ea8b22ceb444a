"""``solve_batch(..., backend="cuda")``: the GPU twin equals the CPU backend frame by frame.

Under Numba's CUDA simulator (a subprocess, ``cuda_helpers/run_batch_cudasim.py``: the
simulator must be on before Numba is imported) the twin runs the very same per-frame source as
the CPU kernels, so every supported method and option variant must give the same discrete
choices and the objective within 1e-9 relative, on small templates chosen to reach every code
path (both BER models, K < N and K > N, per-feature bits, zero and tied gains). Device input,
the output place and bad input (the same one-line ``ConfigError`` as the CPU backend) are
checked too. On a real GPU (marker ``gpu``) thousands of random frames are compared; there
``log``/``exp``/``erfc`` round as libdevice does, which may move an objective by an ulp.
"""

from __future__ import annotations

import numpy as np
import pytest

import optim
from channels.errors import ConfigError
from tests.channels.cuda_helpers.simulator import ROOT, run_simulated
from tests.optim.cuda_helpers import batch_cases as cases

HELPER = ROOT / "tests" / "optim" / "cuda_helpers" / "run_batch_cudasim.py"
RTOL = 1e-9


@pytest.fixture(scope="module")
def simulated() -> dict:
    """The CUDA twin's results under the simulator (one subprocess for the module)."""
    return run_simulated(str(HELPER))


def _assert_same(gpu: dict, cpu, label: str) -> None:  # noqa: ANN001
    for field in ("selected", "subchannel", "modulation"):
        np.testing.assert_array_equal(np.asarray(gpu[field]), getattr(cpu, field),
                                      err_msg=f"{label}: {field}")  # fmt: skip
    np.testing.assert_allclose(np.asarray(gpu["objective"]), cpu.objective, rtol=RTOL, atol=0,
                               err_msg=f"{label}: objective")  # fmt: skip
    np.testing.assert_allclose(np.asarray(gpu["power"]), cpu.power, rtol=RTOL, atol=1e-12,
                               err_msg=f"{label}: power")  # fmt: skip


def test_simulated_twin_equals_cpu(simulated: dict) -> None:
    assert simulated["simulator"]
    for t, template in enumerate(cases.templates()):
        gains = cases.frame_gains(template, seed=t)
        for c, (method, options) in enumerate(cases.CUDA_CASES):
            cpu = optim.solve_batch(template, gains, method, **options)
            gpu = simulated["runs"][t][c]
            assert np.asarray(gpu["selected"]).shape == (cases.FRAMES, template.n_features)
            _assert_same(gpu, cpu, f"template {t}, {method} {options}")


def test_simulated_refined_twin_equals_cpu(simulated: dict) -> None:
    for t, template in enumerate(cases.templates()[:2]):
        gains = cases.frame_gains(template, seed=t)[: cases.REFINED_FRAMES]
        for c, (method, options) in enumerate(cases.REFINED_CASES):
            cpu = optim.solve_batch(template, gains, method, **options)
            _assert_same(simulated["refined"][t][c], cpu, f"template {t}, {method} {options}")


def test_simulated_device_input_and_output_place(simulated: dict) -> None:
    template = cases.templates()[0]
    gains = cases.frame_gains(template, seed=0)
    assert simulated["device_out_is_device"]
    ref = optim.solve_batch(template, gains, "hierarchical", refine=False)
    _assert_same(simulated["device_in"], ref, "device in")
    assert simulated["device_in_host_out_is_numpy"]
    lowest = optim.solve_batch(template, gains, "lowest-order")
    _assert_same(simulated["device_in_host_out"], lowest, "device in, host out")
    g32 = np.asarray(simulated["float32_gains"])
    _assert_same(simulated["float32_in"], optim.solve_batch(template, g32, "lowest-order"),
                 "float32 device gains")  # fmt: skip


def test_simulated_bad_input_same_error_as_cpu(simulated: dict) -> None:
    template = cases.templates()[0]
    for kind, case in cases.BAD_INPUTS:
        with pytest.raises(ConfigError) as err:
            optim.solve_batch(template, cases.bad_gains(kind, template), case["method"],
                              **case["options"])  # fmt: skip
        for message in simulated["bad"][kind]:  # host input, then device input
            assert message == str(err.value), kind


def test_auto_backend_runs_exact_and_the_refined_family_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a GPU present, ``auto`` sends exact and the refined family to the CPU (no device
    call is made: none exists here) and equals the CPU backend."""
    from channels.kernels import backend

    monkeypatch.setattr(backend, "gpu_available", lambda: True)
    template = cases.templates()[1]
    gains = cases.frame_gains(template, seed=1)[:3]
    for method, options in [("hierarchical", {}), ("random-matching", {"seed": 1}),
                            ("exact", {})]:  # fmt: skip
        auto = optim.solve_batch(template, gains, method, backend="auto", **options)
        cpu = optim.solve_batch(template, gains, method, **options)
        np.testing.assert_array_equal(auto.subchannel, cpu.subchannel)
        np.testing.assert_array_equal(auto.objective, cpu.objective)


def test_simulated_unsupported_combinations(simulated: dict) -> None:
    msg = simulated["unsupported"]
    assert msg["exact"] == (
        "method: 'exact' is not supported by solve_batch with backend 'cuda'; allowed: backend "
        "'cpu', or on 'cuda' the hierarchical family and the baselines"
    )
    assert msg["backend"] == "out: 'disk' is not one of auto, host, device"
    assert all("\n" not in m for m in msg.values())


def test_no_gpu_refuses_device_output_and_bad_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from channels.kernels import backend

    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    template = cases.templates()[0]
    gains = cases.frame_gains(template, seed=0)
    with pytest.raises(ConfigError, match=r"^out: 'device' is invalid; allowed: host or auto"):
        optim.solve_batch(template, gains, "lowest-order", out="device")
    with pytest.raises(ConfigError, match=r"^backend: 'cuda' is invalid; allowed: auto or cpu"):
        optim.solve_batch(template, gains, "lowest-order", backend="cuda")
    with pytest.raises(ConfigError, match=r"^backend: 'tpu' is invalid; allowed: auto, cpu or"):
        optim.solve_batch(template, gains, "lowest-order", backend="tpu")


@pytest.mark.gpu
def test_gpu_twin_equals_cpu_on_thousands_of_frames() -> None:
    """Real GPU: 4,096 Rayleigh frames per (template, method) (the refined hierarchical, slow
    to compile and to run on the GPU: 64 frames of the first small template); the objective
    within 1e-9 relative everywhere and the same discrete choices in all but at most 0.1% of
    frames (an ulp of libdevice rounding may flip an exact near-tie)."""
    from optim.problem import random_problem

    rng = np.random.default_rng(7)
    templates = [random_problem(16, 16, seed=0), *cases.templates(),
                 random_problem(12, 20, seed=5, ber_model="bound")]  # fmt: skip
    for template in templates:
        gains = rng.exponential(size=(4096, template.n_subchannels))
        gains[::97, 0] = 0.0
        refined = cases.REFINED_CASES[:1] if template is templates[1] else []
        for method, options in [*cases.CUDA_CASES, *refined]:
            if (method, options) in refined:
                gains = gains[:64]
            cpu = optim.solve_batch(template, gains, method, **options)
            gpu = optim.solve_batch(template, gains, method, backend="cuda", **options)
            same = ((gpu.selected == cpu.selected).all(1)
                    & (gpu.subchannel == cpu.subchannel).all(1)
                    & (gpu.modulation == cpu.modulation).all(1))  # fmt: skip
            assert same.mean() >= 0.999, (method, options, int((~same).sum()))
            np.testing.assert_allclose(gpu.objective, cpu.objective, rtol=RTOL, atol=0)
