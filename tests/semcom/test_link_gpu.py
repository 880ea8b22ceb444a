"""SemanticLink's backends: the cpu path unchanged, the torch quantiser against channels.bits,
the cuda backend under Numba's CUDA simulator against the cpu backend (a subprocess: the
simulator must be switched on before Numba is imported), and the device path on a real GPU
(marker ``gpu``)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from channels.bits import dequantize, quantize
from channels.errors import ConfigError
from semcom.link import dequantize_torch, quantize_torch
from tests.channels.cuda_helpers.simulator import run_simulated
from tests.semcom.test_link import TanhModel, flat_link, images

ROOT = Path(__file__).resolve().parents[2]

SIMULATOR_SCRIPT = """
import functools, json
import numpy as np
import torch
from channels.kernels import cuda_link
from tests.semcom.test_link import TanhModel, flat_link, images

def run(backend, **kwargs):
    link = flat_link(TanhModel(), bits_per_scalar=6, channel="rayleigh", snr_db=4.0,
                     n_subchannels=3, eta=0.6, backend=backend, **kwargs)
    out = []
    for draw in (0, 1):
        f = link.simulate(images(5), draw=draw, first_image=3)
        out.append(dict(x_hat=f.x_hat.tolist(), z_hat=f.z_hat.tolist(), sent=f.sent.tolist(),
                        m=f.bits_per_symbol.tolist(), errors=f.bit_errors.tolist()))
    return dict(backend=link.config()["backend"], draws=out)

torch.set_num_threads(1)  # as the test's process: float32 decoding sums by thread count
result = {"fast": run("cuda"), "fast_gray": run("cuda", code="gray")}
cuda_link.link_frames_cuda = functools.partial(cuda_link.link_frames_cuda, fast=False)
result["exact"] = run("cuda")
print(json.dumps(result))
"""


def cpu_run(**kwargs: object) -> dict:
    link = flat_link(TanhModel(), bits_per_scalar=6, channel="rayleigh", snr_db=4.0,
                     n_subchannels=3, eta=0.6, backend="cpu", **kwargs)  # fmt: skip
    out = []
    for draw in (0, 1):
        f = link.simulate(images(5), draw=draw, first_image=3)
        out.append(dict(x_hat=f.x_hat.tolist(), z_hat=f.z_hat.tolist(), sent=f.sent.tolist(),
                        m=f.bits_per_symbol.tolist(), errors=f.bit_errors.tolist()))  # fmt: skip
    return dict(backend=link.config()["backend"], draws=out)


@pytest.fixture(scope="module")
def simulated() -> dict:
    return run_simulated("-c", SIMULATOR_SCRIPT)


# ------------------------------------------------------------------------------ cpu path


def test_backend_is_validated_resolved_and_reported() -> None:
    with pytest.raises(ConfigError, match="^backend: 'tpu' is invalid; allowed: auto, cpu or cuda"):
        flat_link(TanhModel(), backend="tpu")
    link = flat_link(TanhModel(), backend="cpu")
    assert link.backend == "cpu" and link.config()["backend"] == "cpu"
    json.dumps(link.config())


def test_cpu_backend_and_auto_without_gpu_give_the_same_frames(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from channels.kernels import backend as backend_module

    monkeypatch.setattr(backend_module, "gpu_available", lambda: False)
    kwargs = dict(bits_per_scalar=5, channel="rician", snr_db=0.0, n_subchannels=2, eta=2.0)
    auto = flat_link(TanhModel(), **kwargs)
    cpu = flat_link(TanhModel(), backend="cpu", **kwargs)
    assert auto.backend == "cpu"
    a, c = auto.simulate(images(6), draw=2), cpu.simulate(images(6), draw=2)
    assert torch.equal(a.x_hat, c.x_hat)
    np.testing.assert_array_equal(a.bit_errors, c.bit_errors)
    assert isinstance(c.received, np.ndarray) and c.z_hat is c.received
    assert c.bit_errors.sum() > 0  # the point makes errors
    # z_hat is the de-quantised received codes, zero where not sent
    q = 5
    assert np.all(c.z_hat[~c.sent] == 0.0)
    codes = quantize(c.z_hat[c.sent], q)
    np.testing.assert_array_equal(dequantize(codes, q), c.z_hat[c.sent])


@pytest.mark.parametrize("code", ["binary", "gray"])
@pytest.mark.parametrize("q", [1, 2, 5, 8, 15, 16])
def test_torch_quantiser_equals_channels_bits(q: int, code: str) -> None:
    rng = np.random.default_rng(q)
    step = 2.0 / 2**q
    edges = -1.0 + step * np.arange(2**q + 1)[:: max(1, 2**q // 64)]
    z = np.concatenate([
        rng.uniform(-1.3, 1.3, 500), edges, np.nextafter(edges, -2), np.nextafter(edges, 2),
        [-np.inf, np.inf, -1.0, 1.0, 0.0, -0.0, 1e-30, -1e-30],
    ]).astype(np.float32)  # fmt: skip
    expected = quantize(z.astype(np.float64), q, code)
    got = quantize_torch(torch.from_numpy(z), q, code)
    assert got.dtype == (torch.int16 if q <= 15 else torch.int32)
    np.testing.assert_array_equal(got.numpy().astype(np.int64), expected)
    # received codes with -1 for features not sent
    received = expected.copy()
    received[::7] = -1
    z_hat = dequantize_torch(torch.from_numpy(received.astype(np.int32)), q, code).numpy()
    reference = np.where(received >= 0, dequantize(np.maximum(received, 0), q, code), 0.0)
    assert z_hat.dtype == np.float64
    np.testing.assert_array_equal(z_hat, reference)


# ---------------------------------------------------------------------- CUDA simulator


@pytest.mark.usefixtures("one_thread")
def test_cuda_backend_under_the_simulator_matches_the_cpu_backend(simulated: dict) -> None:
    cpu = cpu_run()
    # float64 kernel: the cpu backend's frames bit for bit
    assert simulated["exact"]["backend"] == "cuda"
    assert simulated["exact"]["draws"] == cpu["draws"]
    # fast float32 kernel: the same allocation; the same received codes but for decisions
    # within ~1e-6 of a boundary (none at this size)
    fast = simulated["fast"]
    assert fast["backend"] == "cuda"
    errors = 0
    for f, c in zip(fast["draws"], cpu["draws"], strict=True):
        assert (f["m"], f["sent"]) == (c["m"], c["sent"])
        diff = np.abs(np.array(f["errors"]) - np.array(c["errors"])).sum()
        assert diff <= 1
        assert (np.array(f["z_hat"]) != np.array(c["z_hat"])).sum() <= 1
        errors += int(np.array(c["errors"]).sum())
    assert errors > 0
    gray = cpu_run(code="gray")
    for f, c in zip(simulated["fast_gray"]["draws"], gray["draws"], strict=True):
        assert np.abs(np.array(f["errors"]) - np.array(c["errors"])).sum() <= 1


# ---------------------------------------------------------------------- real GPU


@pytest.mark.gpu
def test_gpu_device_path_matches_cpu_backend() -> None:
    device = torch.device("cuda")
    model = TanhModel(n=8, length=16).to(device)
    x = images(64).to(device)
    kwargs = dict(bits_per_scalar=8, channel="rayleigh", snr_db=8.0, n_subchannels=4, eta=0.7)
    gpu = flat_link(model, backend="cuda", **kwargs)
    cpu = flat_link(model, backend="cpu", **kwargs)
    assert gpu.config()["backend"] == "cuda"
    g, c = gpu.simulate(x, draw=1, first_image=10), cpu.simulate(x, draw=1, first_image=10)
    assert isinstance(g.received, torch.Tensor) and g.received.is_cuda
    assert g.x_hat.is_cuda
    np.testing.assert_array_equal(g.bits_per_symbol, c.bits_per_symbol)
    bits = int(g.sent.sum()) * 16 * 8
    # float32 noise on the same counters: flips only within ~1e-6 of a boundary
    assert np.abs(g.bit_errors - c.bit_errors).sum() <= 2 + bits // 10**5
    assert (g.z_hat != c.z_hat).sum() <= 2 + bits // 10**5
    assert c.bit_errors.sum() > 0
    # noiseless: the device path is decode(dequantise(quantise(encode(x)))) bit for bit
    for code in ("binary", "gray"):
        for q in (3, 8, 16):
            ideal = dict(bits_per_scalar=q, channel="noiseless", code=code)
            g = flat_link(model, backend="cuda", **ideal).simulate(x)
            c = flat_link(model, backend="cpu", **ideal).simulate(x)
            assert torch.equal(g.x_hat, c.x_hat)
            np.testing.assert_array_equal(g.z_hat, c.z_hat)
            assert g.bit_errors.sum() == 0
    # NaN features are refused on the device path too
    nan_model = TanhModel().to(device)
    nan_model.enc.data[0, 0] = math.nan
    with pytest.raises(ConfigError, match="^z:"):
        flat_link(nan_model, backend="cuda").simulate(images(2).to(device))


@pytest.mark.gpu
def test_gpu_evaluation_keeps_frames_on_the_device_and_scores_them_like_the_host() -> None:
    """LinkEvaluation on a CUDA link computes its per-image metrics on the GPU; they equal the
    NumPy metrics of the same frames brought to the host."""
    from semcom import metrics
    from semcom.evaluation import LinkEvaluation

    device = torch.device("cuda")
    model = TanhModel(n=8, length=16, shape=(3, 16, 16)).to(device)
    x = torch.rand(48, 3, 16, 16, generator=torch.Generator().manual_seed(2)).to(device)
    link = flat_link(model, backend="cuda", channel="rayleigh", snr_db=6.0, n_subchannels=4)
    evaluation = LinkEvaluation(link, x, compute_ms_ssim=True)
    evaluation.add_draw(3)
    frames = link.simulate(x, draw=3)
    assert frames.x_hat.is_cuda
    host = frames.x_hat.double().cpu().numpy()
    reference = x.double().cpu().numpy()
    for name, fn in (("mse", metrics.mse), ("psnr_db", metrics.psnr), ("ssim", metrics.ssim),
                     ("ms_ssim", metrics.ms_ssim)):  # fmt: skip
        np.testing.assert_allclose(evaluation.per_image(name), fn(reference, host), atol=1e-9)


@pytest.mark.gpu
@pytest.mark.parametrize("channel", ["rayleigh", "rician"])
def test_gpu_resident_path_matches_cpu_backend(channel: str) -> None:
    """With the solver on the GPU (no refinement) the batch never leaves the device; the
    frames equal the CPU link's: the same allocations, objectives within 1e-9, gains within
    CUDA's last bits, bit errors within float32 noise."""
    device = torch.device("cuda")
    model = TanhModel(n=8, length=16).to(device)
    x = images(256).to(device)
    kwargs = dict(bits_per_scalar=8, channel=channel, snr_db=8.0, n_subchannels=4, eta=0.7,
                  method_options={"refine": False}, rician_k=2.0)  # fmt: skip
    gpu = flat_link(model, backend="cuda", **kwargs)
    cpu = flat_link(copy.deepcopy(model).cpu(), backend="cpu", **kwargs)
    assert gpu._resident(device)
    g = gpu.simulate(x, draw=2, first_image=7)
    c = cpu.simulate(x.cpu(), draw=2, first_image=7)
    assert g.x_hat.is_cuda and g.received.is_cuda
    np.testing.assert_allclose(g.gains, c.gains, rtol=1e-14, atol=0)
    np.testing.assert_array_equal(g.bits_per_symbol, c.bits_per_symbol)
    np.testing.assert_allclose(g.objective, c.objective, rtol=1e-9, atol=0)
    bits = int(g.sent.sum()) * 16 * 8
    assert np.abs(g.bit_errors - c.bit_errors).sum() <= 2 + bits // 10**5
    assert c.bit_errors.sum() > 0


@pytest.mark.gpu
def test_gpu_chunk_plan_on_the_device_equals_the_host_plan() -> None:
    from numba import cuda

    from channels.kernels.cuda_frames import chunk_plan_device
    from channels.kernels.cuda_link import chunk_plan, chunk_sizes

    rng = np.random.default_rng(5)
    m = rng.choice([0, 1, 2, 4, 6, 8], size=(300, 12)).astype(np.int8)
    for q in (8, np.array([3, 8, 16, 5, 8, 8, 1, 2, 9, 12, 4, 8])):
        chunk = chunk_sizes(q)
        order, offsets = chunk_plan(m, 16, q, chunk)
        d_order, d_offsets, threads = chunk_plan_device(cuda.to_device(m), 16, q, chunk)
        np.testing.assert_array_equal(d_order.cpu().numpy(), order)
        np.testing.assert_array_equal(d_offsets.cpu().numpy(), offsets)
        assert threads == offsets[-1]
