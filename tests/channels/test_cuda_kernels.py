"""CUDA twins of the Monte Carlo kernels: the backend switch, the twins under Numba's CUDA
simulator against the CPU kernels (the float64 mode exactly: same Philox counters, and the
simulator's float math is the CPU's; the float32 fast mode to within a flipped decision or two,
and against theory), launch-shape independence, and real-GPU checks (marker ``gpu``).

The simulator must be switched on before Numba is imported and changing Numba's environment
inside pytest breaks its thread pool, so every simulator check runs in one subprocess
(``cuda_helpers/run_cudasim.py``) that prints JSON; the CPU side is computed here.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from channels.errors import ConfigError
from channels.kernels import backend as backend_module
from channels.kernels.backend import BACKENDS, resolve_backend
from channels.kernels.cpu import ber_trials
from channels.kernels.distortion import feature_distortion
from channels.kernels.link_cpu import transmit_codes
from channels.montecarlo import simulate_ber
from tests.channels.cuda_helpers.cases import (
    BER_CASES,
    FAST_THEORY_POINTS,
    KAT,
    LAUNCHES,
    LINK_CASES,
    distortion_inputs,
    link_inputs,
    run_ber,
    run_link,
)
from tests.channels.cuda_helpers.simulator import ROOT, run_simulated

HELPER = ROOT / "tests" / "channels" / "cuda_helpers" / "run_cudasim.py"


@pytest.fixture(scope="module")
def simulated() -> dict:
    """The twins' results under the CUDA simulator (one subprocess for the whole module)."""
    return run_simulated(str(HELPER))


# --------------------------------------------------------------------------- backend switch


def test_backend_names_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BACKENDS == ("auto", "cpu", "cuda")
    assert resolve_backend("cpu") == "cpu" and resolve_backend(" CPU ") == "cpu"
    with pytest.raises(ConfigError) as err:
        resolve_backend("tpu")
    assert str(err.value) == "backend: 'tpu' is invalid; allowed: auto, cpu or cuda"
    monkeypatch.setattr(backend_module, "gpu_available", lambda: False)
    assert resolve_backend("auto") == "cpu"
    with pytest.raises(ConfigError) as err:
        resolve_backend("cuda")
    assert str(err.value) == "backend: 'cuda' is invalid; allowed: auto or cpu (no CUDA GPU found)"
    with pytest.raises(ConfigError, match="^backend: 'cuda' is invalid"):
        simulate_ber("qpsk", "awgn", 1.0, backend="cuda")
    with pytest.raises(ConfigError, match="^backend: 'cuda' is invalid"):
        transmit_codes([[[1]]], [[2]], [[1.0]], [[1.0]], 0.0, 2, backend="cuda")
    monkeypatch.setattr(backend_module, "gpu_available", lambda: True)
    assert resolve_backend("auto") == "cuda" and resolve_backend("cuda") == "cuda"


def test_importing_channels_does_not_import_numba_cuda() -> None:
    code = ("import sys, channels.montecarlo, channels.kernels.link_cpu, "
            "channels.kernels.distortion; print('numba.cuda' in sys.modules)")  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=True)  # fmt: skip
    assert proc.stdout.strip() == "False"


def test_cli_backend_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from semcom.cli import main

    monkeypatch.setattr(backend_module, "gpu_available", lambda: False)
    assert main(["ber", "--modulation", "qpsk", "--snr-db", "1", "--backend", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("backend: 'cuda' is invalid; allowed: auto or cpu (no CUDA GPU found)")
    assert len(err.splitlines()) == 1


# --------------------------------------------------------------------------- simulator


def test_simulator_resolution_and_philox_known_answers(simulated: dict) -> None:
    assert simulated["simulator"] is True
    # under the simulator "auto" stays on the CPU; "cuda" asks for the simulator explicitly
    assert simulated["resolve"] == {"auto": "cpu", "cpu": "cpu", "cuda": "cuda"}
    assert simulated["kat"] == [expected for _, _, expected in KAT]


def close_counts(run: list, expected: list, tolerance: int = 2) -> bool:
    """Fast (float32) counts against the CPU's: the same counters and, within float32
    rounding, the same noise, so only a sample within ~1e-6 of a decision boundary can flip
    (about one symbol in 10^6); ``tolerance`` bit errors in all allow for that."""
    got, want = np.asarray(run[0]), np.asarray(expected[0])
    return got.shape == want.shape and int(np.abs(got - want).sum()) <= tolerance


@pytest.mark.parametrize("index", range(len(BER_CASES)))
def test_ber_twin_matches_cpu_kernel_for_every_launch_shape(simulated: dict, index: int) -> None:
    expected = run_ber(ber_trials, BER_CASES[index])
    runs = simulated["ber"][index]
    assert len(runs) == len(LAUNCHES)
    fast_runs = [run for run, launch in zip(runs, LAUNCHES, strict=True) if launch[3]]
    exact_runs = [run for run, launch in zip(runs, LAUNCHES, strict=True) if not launch[3]]
    for run in exact_runs:  # float64: the CPU's counts
        assert run == expected, (BER_CASES[index], run, expected)
    for run in fast_runs:  # float32: bit-identical across launch shapes, close to the CPU
        assert run == fast_runs[0]
        assert close_counts(run, expected), (BER_CASES[index], run, expected)
    assert sum(expected[0]) > 0  # the cases do make errors


def test_simulate_ber_cuda_matches_cpu_whatever_the_batch(simulated: dict) -> None:
    cpu = simulate_ber("16qam", "awgn", 8.0, min_errors=40, seed=5, backend="cpu").to_dict()
    for row in simulated["simulate_ber_exact"]:
        assert row["backend"] == "cuda"
        for key in ("ber", "ci_low", "ci_high", "errors", "bits", "blocks", "point"):
            assert row[key] == cpu[key], key
    fast = simulated["simulate_ber"]
    for row in fast:
        assert row["backend"] == "cuda"
        assert (row["bits"], row["point"]) == (cpu["bits"], cpu["point"])
        assert abs(row["errors"] - cpu["errors"]) <= 2
        assert (row["errors"], row["ber"]) == (fast[0]["errors"], fast[0]["ber"])


def test_fast_mode_ber_against_theory_under_the_simulator(simulated: dict) -> None:
    rows = simulated["fast_theory"]
    assert len(rows) == len(FAST_THEORY_POINTS)
    for row, (name, channel, snr) in zip(rows, FAST_THEORY_POINTS, strict=True):
        assert (row["modulation"], row["channel"], row["snr_db"]) == (name, channel, snr)
        assert row["errors"] > 300  # an informative sample
        assert row["ci_low"] <= row["theory_ber"] <= row["ci_high"], row


@pytest.mark.parametrize("index", range(len(LINK_CASES)))
def test_link_twin_matches_cpu_kernel_for_every_launch_shape(simulated: dict, index: int) -> None:
    inputs = link_inputs(LINK_CASES[index])
    cpu = transmit_codes(**inputs, backend="cpu")
    expected = [cpu.codes_hat.tolist(), cpu.bit_errors.tolist()]
    runs = simulated["link"][index]
    assert len(runs) == 1 + len(LAUNCHES)
    assert simulated["link_exact"][index] == expected  # transmit_codes, float64 kernel
    fast_runs = [runs[0]]  # transmit_codes(backend="cuda"): the fast kernel
    for run, launch in zip(runs[1:], LAUNCHES, strict=True):
        if launch[3]:
            fast_runs.append(run)
        else:
            assert run == expected
    for run in fast_runs:
        assert run == fast_runs[0]
        assert close_counts(run[::-1], expected[::-1])  # bit errors
        differing = np.asarray(run[0]) != np.asarray(expected[0])
        assert differing.sum() <= 2  # received codes
    powered = inputs["power"] > 0  # a zero-power feature is decided on noise (or on y = 0)
    if inputs["no"] == 0:
        assert cpu.bit_errors[powered].sum() == 0
        assert fast_runs[0] == expected  # no noise: nothing to round
    else:
        assert cpu.bit_errors.sum() > 0


def test_distortion_twin_equals_cpu(simulated: dict) -> None:
    results = iter(simulated["distortion"])
    for case in LINK_CASES:
        codes_hat = transmit_codes(**link_inputs(case), backend="cpu").codes_hat
        for code in ("binary", "gray"):
            cpu = feature_distortion(**distortion_inputs(case, codes_hat), code=code,
                                     backend="cpu")  # fmt: skip
            sq, weighted = next(results)
            np.testing.assert_array_equal(np.array(sq), cpu.squared_error)
            np.testing.assert_array_equal(np.array(weighted), cpu.weighted)


# --------------------------------------------------------------------------- CPU twin of (c)


def test_cpu_distortion_against_numpy() -> None:
    from channels.bits import dequantize

    rng = np.random.default_rng(7)
    b, n, length, q = 4, 5, 6, 6
    z = rng.uniform(-1, 1, (b, n, length))
    codes = rng.integers(0, 2**q, (b, n, length))
    codes[:, 1] = -1
    weights = rng.uniform(0, 1, n)
    for code in ("binary", "gray"):
        out = feature_distortion(z, codes, weights, q, code=code, backend="cpu")
        z_hat = np.where(codes >= 0, dequantize(np.maximum(codes, 0), q, code), 0.0)
        sq = ((z - z_hat) ** 2).sum(-1)
        np.testing.assert_allclose(out.squared_error, sq, rtol=1e-13)
        np.testing.assert_allclose(out.weighted, (weights * sq / length).sum(-1), rtol=1e-13)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(bits_per_scalar=0), "bits_per_scalar"),
        (dict(code="ternary"), "code"),
        (dict(z=np.zeros((2, 3))), "z"),
        (dict(codes_hat=np.full((1, 2, 3), 8)), "codes_hat"),
        (dict(codes_hat=np.zeros((1, 2, 3)) + 0.5), "codes_hat"),
        (dict(weights=[1.0, 2.0, 3.0]), "weights"),
        (dict(weights=[1.0, math.nan]), "weights"),
        (dict(backend="gpu"), "backend"),
    ],
)
def test_distortion_invalid_arguments(kwargs: dict, field: str) -> None:
    base = dict(z=np.zeros((1, 2, 3)), codes_hat=np.zeros((1, 2, 3), dtype=int), weights=[1, 1],
                bits_per_scalar=3)  # fmt: skip
    with pytest.raises(ConfigError, match=f"^{field}:"):
        feature_distortion(**{**base, **kwargs})


# --------------------------------------------------------------------------- real GPU


@pytest.mark.gpu
@pytest.mark.parametrize("case", BER_CASES)
def test_gpu_ber_twin_matches_cpu_at_scale(case: tuple) -> None:
    from channels.kernels.cuda_ber import ber_trials_cuda

    # 64 trials of about 4096 symbols (trial indices stay below 2^32, as simulate_ber's do)
    big = (*case[:4], 4096 // case[2] + 1, 64, min(case[6], 2**32 - 64), case[7])
    expected = run_ber(ber_trials, big)
    symbols = big[4] * big[2] * big[5]
    fast_runs = []
    for spt, tpb, max_blocks, fast in [(64, 256, None, True), (13, 96, 7, False),
                                       (1000, 32, None, True), (64, 128, None, False)]:  # fmt: skip
        run = run_ber(ber_trials_cuda, big, symbols_per_thread=spt, threads_per_block=tpb,
                      max_blocks=max_blocks, fast=fast)  # fmt: skip
        if fast:
            fast_runs.append(run)
            # same counters, float32 noise: flips only within ~1e-6 of a boundary
            assert close_counts(run, expected, tolerance=3 + symbols // 100_000)
        else:
            # float64 on both sides: a flip needs a sample within an ulp of a boundary
            assert run == expected
    assert fast_runs[0] == fast_runs[1]  # bit-identical across launch shapes


# the fast (default) kernel against theory: simultaneous 99% intervals (Bonferroni over the
# points of this test), each interval accounting for correlated errors
THEORY_POINTS = [(mod, channel, snr) for mod, snr in
                 [("bpsk", 4.0), ("qpsk", 7.0), ("16qam", 12.0), ("64qam", 18.0), ("256qam", 24.0)]
                 for channel in ("awgn", "rayleigh", "rician")] + [
    ("16qam", "awgn", 6.0 + 6.02), ("16qam", "awgn", 16.0), ("bpsk", "awgn", 9.6),
    ("64qam", "awgn", 24.0), ("qpsk", "rayleigh", 25.0),
]  # fmt: skip
THEORY_CONFIDENCE = 1.0 - 0.01 / len(THEORY_POINTS)


@pytest.mark.gpu
@pytest.mark.parametrize(("modulation", "channel", "snr"), THEORY_POINTS)
def test_gpu_fast_ber_against_theory_and_cpu(modulation: str, channel: str, snr: float) -> None:
    k = 3.0 if channel == "rician" else 0.0
    gpu = simulate_ber(modulation, channel, snr, rician_k=k, min_errors=20000, seed=3,
                       confidence=THEORY_CONFIDENCE, backend="cuda")  # fmt: skip
    assert gpu.backend == "cuda"
    assert gpu.ci_low <= gpu.theory_ber <= gpu.ci_high, gpu.to_dict()
    # the CPU kernel on the same counters (same seed and batches): the fast kernel's counts
    # differ only by decisions within ~1e-6 of a boundary
    cpu = simulate_ber(modulation, channel, snr, rician_k=k, min_errors=500, seed=3,
                       backend="cpu", batch_trials=7)  # fmt: skip
    small = simulate_ber(modulation, channel, snr, rician_k=k, min_errors=500, seed=3,
                         backend="cuda", batch_trials=7)  # fmt: skip
    assert small.bits == cpu.bits
    assert abs(small.errors - cpu.errors) <= 3 + cpu.bits // 10**7, (small.errors, cpu.errors)
    # and the two as independent estimates: the CPU's BER inside the GPU's interval
    # widened by the CPU's own (both simultaneous 99%)
    cpu_wide = simulate_ber(modulation, channel, snr, rician_k=k, min_errors=2000, seed=3,
                            confidence=THEORY_CONFIDENCE, backend="cpu")  # fmt: skip
    assert gpu.ci_low - (cpu_wide.ci_high - cpu_wide.ber) <= cpu_wide.ber
    assert cpu_wide.ber <= gpu.ci_high + (cpu_wide.ber - cpu_wide.ci_low)


@pytest.mark.gpu
def test_gpu_link_and_distortion_match_cpu_at_scale() -> None:
    from channels.kernels.cuda_link import link_frames_cuda

    case = (9, 64, 16, 64, 8, 1.0)
    inputs = link_inputs(case)
    cpu = transmit_codes(**inputs, backend="cpu")
    gpu = transmit_codes(**inputs, backend="cuda")  # the fast kernel
    bits = cpu.codes_hat.size * 8
    assert np.abs(gpu.bit_errors - cpu.bit_errors).sum() <= 3 + bits // 10**5
    assert (gpu.codes_hat != cpu.codes_hat).sum() <= 3 + bits // 10**5
    fast_runs = []
    for spt, tpb, fast, grouped in [(8, 64, False, True), (200, 512, True, False),
                                    (64, 256, True, True), (64, 96, False, False)]:  # fmt: skip
        codes_out, errors_out = run_link(
            link_frames_cuda, inputs, symbols_per_thread=spt, threads_per_block=tpb, fast=fast,
            grouped=grouped,
        )  # fmt: skip
        if fast:
            fast_runs.append((codes_out, errors_out))
        else:
            np.testing.assert_array_equal(codes_out, cpu.codes_hat)
            np.testing.assert_array_equal(errors_out, cpu.bit_errors)
    for codes_out, errors_out in fast_runs:
        np.testing.assert_array_equal(codes_out, gpu.codes_hat)
        np.testing.assert_array_equal(errors_out, gpu.bit_errors)
    d_cpu = feature_distortion(**distortion_inputs(case, cpu.codes_hat), backend="cpu")
    d_gpu = feature_distortion(**distortion_inputs(case, cpu.codes_hat), backend="cuda")
    # the GPU fuses multiply-adds: equal to a few ulps
    np.testing.assert_allclose(d_gpu.squared_error, d_cpu.squared_error, rtol=1e-14)
    np.testing.assert_allclose(d_gpu.weighted, d_cpu.weighted, rtol=1e-14)
