"""``svdquant``: the branch is NumPy's best rank-r approximation (Eckart–Young), the residual's
spectral norm is σ_{r+1}, smoothing keeps ``X̂ Ŵᵀ = X Wᵀ``, the branch lowers the 4-bit error of
a matrix with planted outliers, the wrapped layer computes its folded dense weight, and the extra
parameters, FLOPs and bits are measured."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, compressible_layers, measure_encoder
from semcom.compression.quantise import SCALE_BITS, round_to_nearest
from semcom.compression.svdquant import (
    LowRankBranch,
    SVDQuant,
    low_rank_split,
    smoothing_factors,
)
from tests.semcom.quant_contract import (
    check_contract,
    images_for,
    small_model,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")


def planted_outliers(seed: int) -> np.ndarray:
    """Small Gaussian weights plus three outlier input columns (large, shared structure)."""
    rng = np.random.default_rng(seed)
    w = 0.02 * rng.normal(size=(64, 128))
    for col in rng.choice(128, size=3, replace=False):
        w[:, col] += rng.normal(size=64) * rng.uniform(1.0, 2.0)
    return w


def test_registered_with_paper() -> None:
    assert COMPRESSION.get("svdquant") is SVDQuant
    assert COMPRESSION.info("svdquant").paper == "arXiv:2411.05007"


@pytest.mark.parametrize("rank", [1, 4, 16])
def test_branch_is_the_best_rank_r_approximation(rank: int) -> None:
    w = planted_outliers(rank)
    l1, l2 = low_rank_split(torch.from_numpy(w), rank)
    u, s, vh = np.linalg.svd(w, full_matrices=False)
    best = (u[:, :rank] * s[:rank]) @ vh[:rank]
    np.testing.assert_allclose((l1 @ l2).numpy(), best, atol=1e-10)
    residual = w - (l1 @ l2).numpy()
    assert np.linalg.norm(residual, 2) == pytest.approx(s[rank], rel=1e-9)
    full = low_rank_split(torch.from_numpy(w), 64)
    np.testing.assert_allclose((full[0] @ full[1]).numpy(), w, atol=1e-10)  # full rank: R = 0


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.8])
def test_smoothing_keeps_the_product_exact(alpha: float) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(30, 12, generator=g, dtype=torch.float64) * torch.logspace(-1, 2, 12).double()
    w = torch.randn(7, 12, generator=g, dtype=torch.float64)
    lam = smoothing_factors(x.abs().amax(0), w, alpha)
    torch.testing.assert_close((x / lam) @ (w * lam).T, x @ w.T, rtol=1e-12, atol=1e-12)
    expected = x.abs().amax(0) ** alpha / w.abs().amax(0) ** (1 - alpha)
    torch.testing.assert_close(lam, expected.clamp(1e-5, 1e5))


@pytest.mark.parametrize("seed", range(4))
def test_branch_lowers_the_4_bit_error_of_planted_outliers(seed: int) -> None:
    w = torch.from_numpy(planted_outliers(seed))
    plain, _ = round_to_nearest(w, 4, "channel", 64)
    l1, l2 = low_rank_split(w, 8)
    l1, l2 = l1.half().double(), l2.half().double()  # the stored float16 branch
    residual_q, _ = round_to_nearest(w - l1 @ l2, 4, "channel", 64)
    err_plain = torch.linalg.norm(w - plain)
    err_branch = torch.linalg.norm(w - (l1 @ l2 + residual_q))
    assert err_branch < 0.25 * err_plain


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_wrapped_layer_computes_its_folded_weight(kind: str) -> None:
    model = small_model(kind)
    x = images_for(model)
    result = SVDQuant(rank=4).compress(model, x)
    wrapped = [m for m in result.model.modules() if isinstance(m, LowRankBranch)]
    assert len(wrapped) == len(compressible_layers(model))
    for branch in wrapped:
        res, down, up = branch.residual, branch.down, branch.up
        folded = res.weight.reshape(res.weight.shape[0], -1) + up.weight.reshape(
            up.weight.shape[0], -1
        ) @ down.weight.reshape(down.weight.shape[0], -1)
        if isinstance(res, torch.nn.Conv2d):
            inp = torch.randn(2, res.in_channels, 8, 8)
            dense = F.conv2d(inp, folded.reshape(res.weight.shape), res.bias, res.stride,
                             res.padding, res.dilation)  # fmt: skip
        else:
            inp = torch.randn(5, res.in_features)
            dense = F.linear(inp, folded, res.bias)
        torch.testing.assert_close(branch(inp), dense, rtol=1e-5, atol=1e-5)


def test_rank_zero_without_smoothing_is_group_round_to_nearest() -> None:
    model = small_model("mlp")
    result = SVDQuant(rank=0, alpha=None, group=16).compress(model)
    for (_, a), (_, b) in zip(
        compressible_layers(model), compressible_layers(result.model), strict=True
    ):
        q, _ = round_to_nearest(a.weight.detach(), 4, "channel", 16)
        assert torch.equal(b.weight, q)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "vit"])
def test_branch_parameters_flops_and_bits_are_measured(kind: str) -> None:
    model = small_model(kind)
    x = images_for(model)
    result = SVDQuant(rank=3, group=8).compress(model, x)
    dense = measure_encoder(model, model.input_shape)
    layers = compressible_layers(model)
    extra = sum(3 * (m.weight.shape[0] + m.weight[0].numel()) for _, m in layers)
    assert result.details["branch_params"] == extra
    assert result.size.params == dense.params + extra
    assert result.size.flops > dense.flops
    stored = 0.0
    for _, m in layers:
        out, cols = m.weight.shape[0], m.weight[0].numel()
        scales = out * -(-cols // 8)
        stored += 4 * out * cols + SCALE_BITS * (scales + cols) + 16 * 3 * (out + cols)
    float_params = dense.params - sum(m.weight.numel() for _, m in layers)
    expected = (stored + 32 * float_params) / result.size.params
    assert result.size.weight_bits == pytest.approx(expected)


def test_branch_lowers_the_codec_error_at_equal_residual_bits() -> None:
    model = small_model("mlp")
    x = images_for(model, 32)
    with torch.no_grad():
        z = model.encode(x)
        err = lambda r: float((r.model.encode(x) - z).pow(2).mean())  # noqa: E731
        with_branch = err(SVDQuant(bits=3, rank=16).compress(model, x))
        without = err(SVDQuant(bits=3, rank=0).compress(model, x))
    assert with_branch < without


@pytest.mark.parametrize("kind", ["mlp", "cnn", "vit"])
def test_contract(kind: str) -> None:
    check_contract(SVDQuant(rank=2, group=16), kind)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"bits": 1}, "bits"), ({"rank": -1}, "rank"), ({"alpha": 1.5}, "alpha"),
     ({"alpha": "x"}, "alpha"), ({"group": 0}, "group"), ({"branch_bits": 8}, "branch_bits"),
     ({"batch_size": 0}, "batch_size")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        SVDQuant(**options)


def test_smoothing_needs_images() -> None:
    with pytest.raises(ConfigError, match="^images:"):
        SVDQuant().compress(small_model("mlp"))
    SVDQuant(alpha=None).compress(small_model("mlp"))  # data-free without smoothing
