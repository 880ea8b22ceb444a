"""semcom.models.attention: per-head key masks against a restricted-and-renormalised softmax,
physical head pruning against zeroed output columns, and attention recording."""

from __future__ import annotations

import pytest
import torch

from channels.errors import ConfigError
from semcom.models import build_model
from semcom.models.attention import SelfAttention, attention_layers, recording


def _layer(seed: int = 0) -> SelfAttention:
    torch.manual_seed(seed)
    return SelfAttention(12, 3).eval()


def _tokens(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 5, 12, generator=torch.Generator().manual_seed(seed))


def test_key_mask_restricts_and_renormalises_each_head() -> None:
    layer, t = _layer(), _tokens()
    with torch.no_grad():
        _, full = layer(t)
        mask = torch.rand(3, 5, 5, generator=torch.Generator().manual_seed(2)) < 0.5
        mask[:, torch.arange(5), torch.arange(5)] = True  # every row keeps one key
        layer.set_key_mask(mask)
        _, masked = layer(t)
    ref = full * mask / (full * mask).sum(-1, keepdim=True)
    assert torch.allclose(masked, ref, atol=1e-6)
    assert set(layer.state_dict()) == {"qkv.weight", "qkv.bias", "out.weight", "out.bias"}


def test_pruned_heads_equal_zeroed_output_columns() -> None:
    layer, t = _layer(), _tokens()
    reference = _layer()
    with torch.no_grad():
        reference.out.weight[:, 4:8] = 0.0  # head 1's columns of W_o
        expected, weights = reference(t)
        layer.prune_heads([0, 2])
        out, kept = layer(t)
    assert layer.heads == 2 and layer.qkv.out_features == 3 * 2 * 4
    assert layer.out.in_features == 8
    assert torch.allclose(out, expected, atol=1e-6)
    assert torch.allclose(kept, weights[:, [0, 2]], atol=1e-7)


@pytest.mark.parametrize("keep", [[], [0, 0], [3], [-1]])
def test_bad_pruning_is_refused(keep: list[int]) -> None:
    with pytest.raises(ConfigError, match="keep: "):
        _layer().prune_heads(keep)


def test_bad_masks_are_refused() -> None:
    layer = _layer()
    with pytest.raises(ConfigError, match="key_mask: "):
        layer.set_key_mask(torch.ones(2, 5, 5, dtype=torch.bool))
    with pytest.raises(ConfigError, match="key_mask: "):
        layer.set_key_mask(torch.zeros(3, 5, 5, dtype=torch.bool))


def test_recording_gives_every_blocks_maps_and_restores_the_flags() -> None:
    torch.manual_seed(0)
    vit = build_model("vit", 16, input_shape=[1, 8, 8], dim=8, heads=2, depth=2, L=2).eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), recording(vit) as layers:
        vit(x)
        maps = [m.last_weights for m in layers]
        _, trace = vit.encoder_trace(x)
    assert len(maps) == 4  # 2 encoder + 2 decoder blocks
    assert all(torch.equal(a, b) for a, b in zip(maps[:2], trace, strict=True))
    assert all(not m.keep_weights and m.last_weights is None for m in attention_layers(vit))
