"""The compression and bit-allocation family contracts: measured sizes and exact budgets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.bitalloc import BitAllocator, check_budget
from semcom.compression import Compressor, compressible_layers, measure_encoder
from semcom.models.build import build_model
from semcom.registry import families


def test_families_are_registered() -> None:
    assert {"compression", "bit-allocation"} <= set(families())


def test_mlp_flops_equal_the_matrix_product_count() -> None:
    """An MLP encoder's dense FLOPs are 2·Σ in·out over its Linear layers (bias-free count)."""
    model = build_model("mlp", 8)
    layers = [m for _, m in compressible_layers(model)]
    expected = sum(2 * m.in_features * m.out_features for m in layers)
    size = measure_encoder(model, model.input_shape)
    # FlopCounterMode counts matmuls only, so PReLU/flatten add nothing.
    assert size.flops == expected
    assert size.params == sum(p.numel() for p in model.encoder.parameters())
    assert size.weight_bits == 32.0


def test_zeroed_weights_lower_nonzero_params_and_effective_flops() -> None:
    model = build_model("cnn", 8)
    name, conv = compressible_layers(model)[1]
    dense = measure_encoder(model, model.input_shape)
    with torch.no_grad():
        conv.weight[: conv.weight.shape[0] // 2] = 0.0  # half the output channels
    pruned = measure_encoder(model, model.input_shape)
    removed = conv.weight.numel() // 2
    assert dense.nonzero_params - pruned.nonzero_params == pytest.approx(removed, abs=0)
    h, w = model.input_shape[1] // 4, model.input_shape[2] // 4  # second conv: stride 4 total
    assert dense.effective_flops - pruned.effective_flops == pytest.approx(2 * removed * h * w)
    assert pruned.flops == dense.flops


def test_quantised_bits_are_averaged_over_parameters() -> None:
    model = build_model("mlp", 8)
    first = next(n for n, _ in model.named_parameters() if n.endswith("weight"))
    size = measure_encoder(model, model.input_shape, {first: 4})
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in model.encoder.parameters())
    expected = (4 * params[first].numel() + 32 * (total - params[first].numel())) / total
    assert size.weight_bits == pytest.approx(expected)


def test_compress_works_on_a_copy() -> None:
    class ZeroFirst(Compressor):
        def _compress(self, model, images):  # noqa: ANN001, ANN202
            _, layer = compressible_layers(model)[0]
            with torch.no_grad():
                layer.weight.zero_()
            return {"zeroed": 1}, {}

    model = build_model("mlp", 8)
    before = [p.clone() for p in model.parameters()]
    result = ZeroFirst().compress(model)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert result.size.nonzero_params < measure_encoder(model, model.input_shape).nonzero_params


def test_model_without_encoder_is_refused() -> None:
    with pytest.raises(ConfigError, match="model"):
        Compressor().compress(torch.nn.Linear(2, 2))


@pytest.mark.parametrize(
    ("average", "q_min", "q_max", "field"),
    [(3.15, 1, 8, "average_bits"), (9, 1, 8, "average_bits"), (4, 0, 8, "q_min"),
     (4, 6, 5, "q_max"), (float("nan"), 1, 8, "average_bits"), (True, 1, 8, "average_bits")],
)  # fmt: skip
def test_budget_that_cannot_be_met_is_refused(average, q_min, q_max, field) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError, match=f"^{field}:"):
        check_budget(10, average, q_min, q_max)


def test_allocator_contract_is_checked() -> None:
    class Broken(BitAllocator):
        name = "broken"

        def _allocate(self, w, total, q_min, q_max):  # noqa: ANN001, ANN202
            return np.full(w.size, q_min)

    with pytest.raises(AssertionError, match="breaks the contract"):
        Broken().allocate(np.ones(4), 3, 1, 8)
