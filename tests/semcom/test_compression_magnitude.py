"""Magnitude pruning: exact sparsity, the largest |w| kept (checked with NumPy), the contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from channels.errors import ConfigError
from semcom.compression import COMPRESSION, MagnitudePruning
from semcom.compression.budget import prune_count
from semcom.compression.groups import slice_values, unit_families
from semcom.compression.prunable import prunable_weights, zero_count
from semcom.models.build import build_model

pytestmark = pytest.mark.usefixtures("one_thread_module")


def tiny(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if name == "cnn":
        return build_model("cnn", 4, widths=[6, 8], input_shape=[3, 8, 8])
    if name == "vit":
        return build_model("vit", 4, dim=16, heads=2, depth=1, input_shape=[1, 8, 8])
    return build_model("mlp", 8)


def weights_np(model: torch.nn.Module) -> list[np.ndarray]:
    return [w.detach().numpy().copy() for _, w in prunable_weights(model)]


@pytest.mark.parametrize("name", ["mlp", "cnn", "vit"])
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.77])
def test_global_pruning_hits_the_target_and_keeps_the_largest(name: str, sparsity: float) -> None:
    model = tiny(name)
    before = weights_np(model)
    result = MagnitudePruning(sparsity=sparsity).compress(model)
    after = weights_np(result.model)
    flat_before = np.concatenate([w.ravel() for w in before])
    flat_after = np.concatenate([w.ravel() for w in after])
    k = int(np.floor(sparsity * flat_before.size + 0.5))
    # NumPy reference: the k smallest |w| (continuous random weights: no ties)
    gone = np.argsort(np.abs(flat_before), kind="stable")[:k]
    expected = flat_before.copy()
    expected[gone] = 0.0
    np.testing.assert_array_equal(flat_after, expected)
    assert zero_count(result.model) == (k, flat_before.size)
    assert result.details["pruned"] == k


def test_per_layer_pruning_splits_the_count_exactly() -> None:
    model = tiny("cnn")
    before = weights_np(model)
    sizes = [w.size for w in before]
    result = MagnitudePruning(sparsity=0.37, scope="layer").compress(model)
    after = weights_np(result.model)
    k = prune_count(0.37, sum(sizes))
    zeros = [int((a == 0).sum()) for a in after]
    assert sum(zeros) == k
    for z, n, b, a in zip(zeros, sizes, before, after, strict=True):
        assert int(np.floor(0.37 * n)) - 1 <= z <= int(np.ceil(0.37 * n)) + 1
        kept = np.abs(b[a != 0])
        removed = np.abs(b[a == 0])
        assert removed.max(initial=0.0) <= kept.min()  # the largest |w| of the layer survive


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_channel_pruning_removes_lowest_l1_filters_exactly(scope: str) -> None:
    model = tiny("cnn")
    families = unit_families(model)
    norms = [slice_values(model, f.slices[0]).abs().sum(dim=1).numpy() for f in families]
    result = MagnitudePruning(sparsity=0.5, scope=scope, structure="channels").compress(model)
    total = sum(f.units for f in families)
    removed = 0
    for family, norm in zip(families, norms, strict=True):
        rows = slice_values(result.model, family.slices[0])
        dead = (rows == 0).all(dim=1).numpy()
        removed += int(dead.sum())
        if scope == "layer":
            assert np.abs(norm[dead]).max(initial=0.0) <= norm[~dead].min()
        # the next layer's input columns of a removed channel are zero as well
        cols = slice_values(result.model, family.slices[-1])
        assert (cols[torch.from_numpy(dead)] == 0).all()
    assert removed == result.details["pruned"] == prune_count(0.5, total)


def test_input_model_is_unchanged_and_results_are_deterministic() -> None:
    model = tiny("vit")
    before = [p.clone() for p in model.parameters()]
    a = MagnitudePruning(sparsity=0.6, structure="channels").compress(model)
    b = MagnitudePruning(sparsity=0.6, structure="channels").compress(model)
    assert all(torch.equal(x, y) for x, y in zip(before, model.parameters(), strict=True))
    assert all(
        torch.equal(x, y) for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )


@pytest.mark.parametrize("name", ["mlp", "cnn", "vit"])
def test_compressed_codec_still_encodes_and_decodes(name: str) -> None:
    model = tiny(name)
    x = torch.rand(3, *model.input_shape)
    result = MagnitudePruning(sparsity=0.5).compress(model)
    z = result.model.encode(x)
    assert z.shape == model.encode(x).shape
    assert result.model.decode(z).shape == x.shape
    dense = result.size.params - result.size.nonzero_params
    assert dense >= result.details["pruned"]  # every pruned weight is a zero parameter
    assert result.size.effective_flops < result.size.flops


def test_registered_with_its_paper() -> None:
    info = COMPRESSION.info("magnitude")
    assert info.paper == "arXiv:1506.02626"
    assert COMPRESSION.get("magnitude") is MagnitudePruning


@pytest.mark.parametrize(
    ("options", "field"),
    [({"sparsity": 1.0}, "sparsity"), ({"sparsity": -0.1}, "sparsity"),
     ({"sparsity": float("nan")}, "sparsity"), ({"sparsity": True}, "sparsity"),
     ({"sparsity": "0.5"}, "sparsity"), ({"scope": "net"}, "scope"),
     ({"structure": "heads"}, "structure"), ({"scope": None}, "scope")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        MagnitudePruning(**options)


def test_budget_that_would_empty_a_layer_is_refused() -> None:
    method = MagnitudePruning(sparsity=0.99, structure="channels")
    with pytest.raises(ConfigError, match="^sparsity: 0.99 is invalid; allowed: at most"):
        method.compress(tiny("cnn"))
