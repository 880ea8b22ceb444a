"""PST: with the data-driven part at zero the mask is the magnitude mask (against numpy), the
straight-through gradients against an independent computation, exact density, and the
compression family contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, PST, compressible_layers, measure_encoder
from semcom.compression.budget import split_count
from semcom.compression.pst import PSTLayer, cubic_keep
from tests.semcom.compression_helpers import (
    check_untouched_and_deterministic,
    codec_round_trip,
    compress_small,
    digits,
    small_models,
    trained_mlp,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_registered_with_its_paper() -> None:
    assert COMPRESSION.get("pst") is PST
    assert COMPRESSION.info("pst").paper == "arXiv:2205.11005"


@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_untrained_scores_give_the_magnitude_mask(sparsity: float) -> None:
    """``A B + R + C = 0`` at the start: with no steps the result is magnitude pruning, each
    layer keeping its largest |w| (numpy argsort), with the apportioned per-layer counts."""
    model = trained_mlp()
    result = PST(sparsity=sparsity, steps=0).compress(model, digits()[:32])
    layers = [m.weight.detach().numpy() for _, m in compressible_layers(model)]
    cuts = split_count(round(sparsity * sum(w.size for w in layers)), [w.size for w in layers])
    for (name, _), w, cut in zip(compressible_layers(model), layers, cuts, strict=True):
        expected = np.zeros(w.size, dtype=w.dtype)
        keep = np.argsort(-np.abs(w).reshape(-1), kind="stable")[: w.size - cut]
        expected[keep] = w.reshape(-1)[keep]
        got = result.model.get_submodule(name).weight.detach().numpy().reshape(-1)
        np.testing.assert_array_equal(got, expected)
        assert result.details["removed_by_layer"][name] == cut


@pytest.mark.parametrize("conv", [False, True])
def test_straight_through_gradients(conv: bool) -> None:
    """Autograd through the PST layer equals the estimator written out with numpy:
    ``G_S = G ⊙ (W + UV)`` for ``G = ∂L/∂W'``, so ``dR = G_S 1``, ``dC = G_Sᵀ 1``,
    ``dA = G_S Bᵀ``, ``dB = Aᵀ G_S``; and ``dU = (G ⊙ M) Vᵀ``, ``dV = Uᵀ (G ⊙ M)``."""
    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        layer = (nn.Conv2d(3, 4, 3, padding=1) if conv else nn.Linear(6, 5)).double()
    pst = PSTLayer(layer, score_rank=2, lora_rank=3, generator=g)
    pst.keep = pst.W.numel() // 2
    with torch.no_grad():
        for p in (pst.B, pst.R, pst.C, pst.U):
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.3)
    x = torch.randn(2, 3, 5, 5) if conv else torch.randn(7, 6)
    x = x.double()
    target = torch.randn_like(pst(x))
    torch.sum((pst(x) - target) ** 2).backward()
    # Independent: a plain layer with the masked weight as a leaf.
    a, b, r, c, u, v = (t.detach().numpy() for t in (pst.A, pst.B, pst.R, pst.C, pst.U, pst.V))
    w = pst.W.numpy()
    dense = w + u @ v
    s = np.abs(w) / np.abs(w).mean() + a @ b + r[:, None] + c[None, :]
    mask = np.zeros(s.size)
    mask[np.argsort(-s.reshape(-1), kind="stable")[: pst.keep]] = 1.0
    mask = mask.reshape(s.shape)
    leaf = torch.tensor((dense * mask).reshape(pst.weight_shape), requires_grad=True)
    out = F.conv2d(x, leaf, pst.bias, padding=1) if conv else F.linear(x, leaf, pst.bias)
    torch.sum((out - target) ** 2).backward()
    grad = leaf.grad.numpy().reshape(s.shape)
    gs = grad * dense
    np.testing.assert_allclose(pst.R.grad.numpy(), gs.sum(axis=1), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pst.C.grad.numpy(), gs.sum(axis=0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pst.A.grad.numpy(), gs @ b.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pst.B.grad.numpy(), a.T @ gs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pst.U.grad.numpy(), (grad * mask) @ v.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(pst.V.grad.numpy(), u.T @ (grad * mask), rtol=1e-10, atol=1e-12)


def test_cubic_schedule_ends_at_the_target_and_never_rises() -> None:
    for steps, ramp in [(1, 0.75), (10, 0.75), (37, 0.3), (20, 1.0), (5, 0.0)]:
        keeps = [cubic_keep(t, steps, 500, 120, ramp) for t in range(steps)]
        assert keeps[0] == (500 if min(ramp * steps, steps - 1) > 0 else 120)
        assert all(a >= b for a, b in zip(keeps, keeps[1:], strict=False))
        assert keeps[-1] == 120


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.95])
def test_density_is_exact(sparsity: float) -> None:
    model = trained_mlp()
    result = PST(sparsity=sparsity, steps=20).compress(model, digits()[:128])
    zeros = sum(int((m.weight == 0).sum()) for _, m in compressible_layers(result.model))
    assert zeros == result.details["removed_weights"] == round(sparsity * 3072)
    dense = measure_encoder(model, model.input_shape)
    assert dense.nonzero_params - result.size.nonzero_params == zeros
    # Only U, V, A, B, R, C trained: r (m + n) + r_s (m + n) + m + n per layer.
    shapes = [(32, 64), (16, 32), (32, 16)]
    assert result.details["trainable_parameters"] == sum(9 * (m + n) for m, n in shapes)


def test_training_beats_magnitude_and_learns_a_different_mask() -> None:
    model = trained_mlp()
    x = digits()[:256]
    magnitude = PST(sparsity=0.8, steps=0).compress(model, x)
    trained = PST(sparsity=0.8, steps=100).compress(model, x)
    assert trained.details["loss_after"] < 0.5 * magnitude.details["loss_after"]
    first = "encoder.1"
    kept_mag = magnitude.model.get_submodule(first).weight != 0
    kept_pst = trained.model.get_submodule(first).weight != 0
    assert int((kept_mag != kept_pst).sum()) > 0


def test_input_unchanged_and_deterministic() -> None:
    model = trained_mlp()
    method = PST(sparsity=0.6, steps=10, batch_size=50, seed=4)
    a = check_untouched_and_deterministic(method, model, digits()[:150])
    assert all(p.requires_grad for p in model.parameters())
    assert a.model.state_dict().keys() == model.state_dict().keys()


@pytest.mark.parametrize("index", [0, 1, 2])
def test_compressed_codec_keeps_its_shapes(index: int) -> None:
    model, result = compress_small(PST(sparsity=0.7, steps=3), index)
    total = sum(m.weight.numel() for _, m in compressible_layers(model))
    zeros = sum(int((m.weight == 0).sum()) for _, m in compressible_layers(result.model))
    assert zeros == round(0.7 * total)
    assert codec_round_trip(result.model) == codec_round_trip(model)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"sparsity": 1.0}, "sparsity"), ({"steps": -1}, "steps"), ({"score_rank": 0}, "score_rank"),
     ({"lora_rank": 0}, "lora_rank"), ({"lr": -1.0}, "lr"),
     ({"score_lr": float("inf")}, "score_lr"), ({"ramp": 1.5}, "ramp"),
     ({"batch_size": 0}, "batch_size"), ({"seed": None}, "seed")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        PST(**options)


def test_unmeetable_budget_and_missing_images_are_refused() -> None:
    model = small_models()[0]  # 1024 + 128 + 128 weights; each layer keeps one: 1277 at most
    with pytest.raises(ConfigError, match=r"^sparsity: 0\.9999 .*0\.9977"):
        PST(sparsity=0.9999).compress(model, torch.rand(4, 1, 8, 8))
    with pytest.raises(ConfigError, match="^images:"):
        PST().compress(model)
