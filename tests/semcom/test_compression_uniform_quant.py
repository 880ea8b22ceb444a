"""Baseline ``uniform-quant``: round-to-nearest against torch's own per-channel quantiser, the
half-step error bound, the level count, the reported bits and the family contract."""

from __future__ import annotations

import pytest
import torch

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, compressible_layers, measure_encoder
from semcom.compression.quantise import SCALE_BITS, round_to_nearest, symmetric_scale
from semcom.compression.uniform_quant import UniformQuant
from tests.semcom.quant_contract import (
    check_contract,
    images_for,
    small_model,
)

pytestmark = pytest.mark.usefixtures("one_thread_module")


def test_registered_with_paper() -> None:
    assert COMPRESSION.get("uniform-quant") is UniformQuant
    assert COMPRESSION.info("uniform-quant").paper.startswith("arXiv:")


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_channel_quantiser_equals_torch_fake_quantize_per_channel(bits: int) -> None:
    """Independent reference: torch's per-channel fake quantiser with the same scales and the
    code range ``[-(2^(b-1) - 1), 2^(b-1) - 1]``."""
    w = torch.randn(24, 40, generator=torch.Generator().manual_seed(bits))
    ours, scales = round_to_nearest(w, bits)
    s = symmetric_scale(w, bits).reshape(-1)
    m = 2 ** (bits - 1) - 1
    ref = torch.fake_quantize_per_channel_affine(w, s, torch.zeros(24, dtype=torch.int32), 0, -m, m)
    assert scales == 24
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("bits", [2, 3, 4, 6])
@pytest.mark.parametrize("granularity", ["channel", "tensor"])
def test_error_is_at_most_half_a_step_and_levels_fit_the_bits(bits: int, granularity: str) -> None:
    w = torch.randn(16, 50, generator=torch.Generator().manual_seed(bits), dtype=torch.float64)
    q, _ = round_to_nearest(w, bits, granularity)
    peak = w.abs().amax(dim=1, keepdim=True) if granularity == "channel" else w.abs().max()
    step = peak / (2 ** (bits - 1) - 1)
    # float16 scales move the step by at most 2^-11 relative
    assert bool(((q - w).abs() <= step * (0.5 + 2**-10) + 1e-12).all())
    rows = q if granularity == "channel" else q.reshape(1, -1)
    for row in rows:
        assert row.unique().numel() <= 2**bits - 1


@pytest.mark.parametrize("kind", ["mlp", "cnn", "vit"])
def test_reported_bits_are_code_bits_plus_scales(kind: str) -> None:
    model = small_model(kind)
    result = UniformQuant(bits=3).compress(model)
    layers = compressible_layers(model)
    weights = sum(m.weight.numel() for _, m in layers)
    scales = sum(m.weight.shape[0] for _, m in layers)
    assert result.details["quantised_weights"] == weights
    assert result.details["quantised_weight_bits"] == pytest.approx(
        3 + SCALE_BITS * scales / weights
    )
    # measure_encoder agrees: quantised weights at their bits, every other parameter at 32
    dense = measure_encoder(model, model.input_shape)
    expected = (3 * weights + SCALE_BITS * scales + 32 * (dense.params - weights)) / dense.params
    assert result.size.weight_bits == pytest.approx(expected)
    assert result.size.params == dense.params and result.size.flops == dense.flops


def test_more_bits_lower_the_feature_error() -> None:
    model = small_model("mlp")
    x = images_for(model, 32)
    with torch.no_grad():
        z = model.encode(x)
        errors = [
            float((UniformQuant(bits=b).compress(model).model.encode(x) - z).pow(2).mean())
            for b in (2, 4, 8)
        ]
    assert errors[0] > errors[1] > errors[2] > 0


@pytest.mark.parametrize("kind", ["mlp", "cnn", "vit"])
def test_contract(kind: str) -> None:
    check_contract(UniformQuant(bits=4), kind)


@pytest.mark.parametrize(
    ("options", "field"),
    [({"bits": 1}, "bits"), ({"bits": 17}, "bits"), ({"bits": 4.0}, "bits"),
     ({"granularity": "row"}, "granularity")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        UniformQuant(**options)
