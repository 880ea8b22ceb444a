"""SemanticLink with per-feature bits ``Q_i`` (issue 13): quantiser, allocation, kernels and
metrics carry ``Q[N]`` end to end.

Proven here: equal ``Q_i`` give the single-``Q`` link bit for bit; the noiseless link is
``decode(dequantise_i(quantise_i(encode(x))))`` with each feature's own ``Q_i``
(:mod:`channels.bits`); each frame's allocation is the one ``optim`` computes for the problem
with ``Q[N]`` (so a feature's bits set its symbols) and meets its symbol budget with the
per-feature counts; received features lie on their own quantiser grids; the torch quantiser
per feature equals :mod:`channels.bits`; the BER counts the ``L Q_i`` bits of every sent
feature; the cuda backend under Numba's CUDA simulator (float64 kernel) equals the cpu backend;
and on a real GPU (marker ``gpu``) the device path matches the cpu backend.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import optim
from channels.bits import dequantize, quantize
from channels.errors import ConfigError
from channels.names import BITS_PER_SYMBOL
from optim.problem import Problem
from semcom.link import dequantize_torch, quantize_torch
from tests.channels.cuda_helpers.simulator import run_simulated
from tests.semcom.test_link import TanhModel, flat_link, images

Q = (3, 8, 1, 12)  # per feature of TanhModel (N = 4, L = 3)


def per_feature_reference(z: np.ndarray, q, code: str = "binary") -> np.ndarray:
    """``dequantize(quantize(z_i, Q_i), Q_i)`` feature by feature with channels.bits."""
    out = np.empty_like(z)
    for i, qi in enumerate(q):
        out[:, i] = dequantize(quantize(z[:, i], int(qi), code), int(qi), code)
    return out


@pytest.mark.parametrize("code", ["binary", "gray"])
def test_noiseless_link_quantises_each_feature_with_its_own_q(code: str) -> None:
    model, x = TanhModel(), images(9)
    link = flat_link(model, bits_per_scalar=list(Q), channel="noiseless", code=code)
    frames = link.simulate(x)
    with torch.no_grad():
        z = model.encode(x).double().numpy()
        expected = model.decode(torch.from_numpy(per_feature_reference(z, Q, code)).float())
    assert torch.equal(frames.x_hat, expected)
    assert frames.sent.all() and frames.bit_errors.sum() == 0


def test_equal_q_values_give_the_scalar_link_bit_for_bit() -> None:
    model, x = TanhModel(), images(6)
    kwargs = dict(channel="rayleigh", snr_db=3.0, n_subchannels=3, eta=0.6)
    scalar = flat_link(model, bits_per_scalar=6, **kwargs)
    vector = flat_link(model, bits_per_scalar=[6] * 4, **kwargs)
    assert vector.config()["bits_per_scalar"] == [6] * 4
    for draw in (0, 1):
        a, b = scalar.simulate(x, draw=draw), vector.simulate(x, draw=draw)
        assert torch.equal(a.x_hat, b.x_hat)
        np.testing.assert_array_equal(a.z_hat, b.z_hat)
        np.testing.assert_array_equal(a.bit_errors, b.bit_errors)
        np.testing.assert_array_equal(a.objective, b.objective)
    ra, rb = scalar.evaluate(x, n_draws=2), vector.evaluate(x, n_draws=2)
    assert (ra.ber, ra.ber_ci, ra.psnr_db, ra.bits_sent) == (rb.ber, rb.ber_ci, rb.psnr_db,
                                                              rb.bits_sent)  # fmt: skip


def test_allocation_uses_the_per_feature_problem() -> None:
    model, x = TanhModel(), images(8)
    eta, n, length = 0.5, 4, 3
    link = flat_link(model, bits_per_scalar=list(Q), channel="rayleigh", snr_db=6.0,
                     n_subchannels=4, eta=eta)  # fmt: skip
    frames = link.simulate(x, draw=2)
    assert frames.bit_errors.sum() > 0
    s_max = eta * n * length * np.mean(Q) / 2
    for b in range(x.shape[0]):
        problem = Problem(np.full(n, 1 / n), np.full(n, 0.3), frames.gains[b],
                          10 ** 0.6 * 4, s_max, scalars_per_feature=length,
                          bits_per_scalar=list(Q))  # fmt: skip
        result = optim.solve(problem, "hierarchical")
        assert frames.objective[b] == result.objective
        alloc = result.allocation
        expected_m = np.zeros(n, dtype=np.int64)
        expected_m[alloc.selected] = [BITS_PER_SYMBOL[m] for m in alloc.modulation]
        expected_m[alloc.selected[alloc.power <= 0]] = 0
        np.testing.assert_array_equal(frames.bits_per_symbol[b], expected_m)
        used = sum(math.ceil(length * Q[i] / m) for i, m in enumerate(expected_m) if m)
        assert used <= s_max
    # every sent feature lies on its own grid -1 + (c + 1/2) 2 / 2^Q_i; dropped ones are 0
    for i, qi in enumerate(Q):
        zi = frames.z_hat[:, i][frames.sent[:, i]]
        c = (zi + 1.0) / (2.0 / 2**qi) - 0.5
        np.testing.assert_array_equal(c, np.round(c))
        assert np.all(frames.z_hat[:, i][~frames.sent[:, i]] == 0.0)


def test_evaluate_counts_each_features_bits() -> None:
    model, x = TanhModel(), images(12)
    link = flat_link(model, bits_per_scalar=list(Q), channel="awgn", snr_db=2.0,
                     n_subchannels=4, eta=1.0)  # fmt: skip
    result = link.evaluate(x, n_draws=2)
    sent = np.array(result.selection_rate) * 12 * 2
    assert result.bits_sent == int(round((sent * 3 * np.array(Q)).sum()))
    assert result.bit_errors > 0
    assert result.ber == result.bit_errors / result.bits_sent
    assert result.ber_ci[0] <= result.ber <= result.ber_ci[1]
    assert result.config["bits_per_scalar"] == list(Q)


@pytest.mark.parametrize("code", ["binary", "gray"])
def test_torch_quantiser_per_feature_equals_channels_bits(code: str) -> None:
    rng = np.random.default_rng(5)
    q = np.array([1, 5, 8, 15, 16])
    z = rng.uniform(-1.3, 1.3, (6, q.size, 40))
    z[0, :, :3] = [-1.0, 1.0, 0.0]
    got = quantize_torch(torch.from_numpy(z), q, code)
    assert got.dtype == torch.int32  # Q = 16 needs int32
    expected = np.stack([quantize(z[:, i], int(qi), code) for i, qi in enumerate(q)], axis=1)
    np.testing.assert_array_equal(got.numpy().astype(np.int64), expected)
    assert quantize_torch(torch.from_numpy(z[:, :4]), q[:4], code).dtype == torch.int16
    received = expected.copy()
    received[:, 1, ::3] = -1
    z_hat = dequantize_torch(torch.from_numpy(received), q, code).numpy()
    for i, qi in enumerate(q):
        ref = np.where(received[:, i] >= 0,
                       dequantize(np.maximum(received[:, i], 0), int(qi), code), 0.0)  # fmt: skip
        np.testing.assert_array_equal(z_hat[:, i], ref)


@pytest.mark.parametrize("bad", [[8, 8, 8], [8, 8, 8, 17], [0, 8, 8, 8], [8.5, 8, 8, 8],
                                 [True, 8, 8, 8]])  # fmt: skip
def test_bad_per_feature_bits_are_refused(bad: list) -> None:
    with pytest.raises(ConfigError, match="^bits_per_scalar: "):
        flat_link(TanhModel(), bits_per_scalar=bad)


# ---------------------------------------------------------------------- CUDA simulator

SIMULATOR_SCRIPT = """
import functools, json
from channels.kernels import cuda_link
from tests.semcom.test_link import TanhModel, flat_link, images

cuda_link.link_frames_cuda = functools.partial(cuda_link.link_frames_cuda, fast=False)
link = flat_link(TanhModel(), bits_per_scalar=[3, 8, 1, 12], channel="rayleigh", snr_db=4.0,
                 n_subchannels=3, eta=0.8, backend="cuda")
f = link.simulate(images(4), draw=1, first_image=2)
print(json.dumps(dict(z_hat=f.z_hat.tolist(), errors=f.bit_errors.tolist(),
                      m=f.bits_per_symbol.tolist())))
"""


def test_cuda_backend_under_the_simulator_matches_the_cpu_backend() -> None:
    simulated = run_simulated("-c", SIMULATOR_SCRIPT)
    link = flat_link(TanhModel(), bits_per_scalar=list(Q), channel="rayleigh", snr_db=4.0,
                     n_subchannels=3, eta=0.8, backend="cpu")  # fmt: skip
    f = link.simulate(images(4), draw=1, first_image=2)
    assert simulated == dict(z_hat=f.z_hat.tolist(), errors=f.bit_errors.tolist(),
                             m=f.bits_per_symbol.tolist())  # fmt: skip
    assert f.bit_errors.sum() > 0


# ---------------------------------------------------------------------- real GPU


@pytest.mark.gpu
def test_gpu_device_path_with_per_feature_bits_matches_cpu_backend() -> None:
    device = torch.device("cuda")
    model = TanhModel(n=8, length=16).to(device)
    x = images(64).to(device)
    q = [3, 8, 16, 1, 5, 12, 7, 2]
    kwargs = dict(bits_per_scalar=q, channel="rayleigh", snr_db=8.0, n_subchannels=6, eta=0.7)
    gpu = flat_link(model, backend="cuda", **kwargs)
    cpu = flat_link(model, backend="cpu", **kwargs)
    g, c = gpu.simulate(x, draw=1, first_image=10), cpu.simulate(x, draw=1, first_image=10)
    assert isinstance(g.received, torch.Tensor) and g.received.is_cuda
    np.testing.assert_array_equal(g.bits_per_symbol, c.bits_per_symbol)
    bits = int((g.sent * 16 * np.array(q)).sum())
    assert np.abs(g.bit_errors - c.bit_errors).sum() <= 2 + bits // 10**5
    assert (g.z_hat != c.z_hat).sum() <= 2 + bits // 10**5
    assert c.bit_errors.sum() > 0
    for code in ("binary", "gray"):
        ideal = dict(bits_per_scalar=q, channel="noiseless", code=code)
        g = flat_link(model, backend="cuda", **ideal).simulate(x)
        c = flat_link(model, backend="cpu", **ideal).simulate(x)
        assert torch.equal(g.x_hat, c.x_hat)
        np.testing.assert_array_equal(g.z_hat, c.z_hat)
        assert g.bit_errors.sum() == 0
