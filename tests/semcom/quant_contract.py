"""Family-contract checks shared by the weight-quantiser tests (not a test module itself)."""

from __future__ import annotations

import torch

from semcom.compression import Compressor, encoder_parameters
from semcom.models.build import build_model

SMALL = {
    "mlp": ("mlp", 8, {}),
    "cnn": ("cnn", 16, {"input_shape": [3, 16, 16], "widths": [8, 16], "kernel_size": 3}),
    "vit": ("vit", 16, {"input_shape": [3, 16, 16], "dim": 32, "heads": 2, "depth": 1}),
}
"""Tiny codecs (name -> build_model arguments) that keep each compression to a fraction of a
second on one CPU core."""


def small_model(kind: str, seed: int = 0) -> torch.nn.Module:
    """A tiny seeded codec of ``kind`` (``mlp``, ``cnn`` or ``vit``) in eval mode."""
    name, n, options = SMALL[kind]
    torch.manual_seed(seed)
    return build_model(name, n, **options).eval()


def images_for(model: torch.nn.Module, count: int = 16, seed: int = 1) -> torch.Tensor:
    """``count`` seeded uniform images of the model's input shape."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand((count, *model.input_shape), generator=g)


def check_contract(method: Compressor, kind: str) -> None:
    """The input codec is unchanged, the result is deterministic, and the compressed codec still
    encodes and decodes with the same shapes."""
    model = small_model(kind)
    x = images_for(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    first = method.compress(model, x)
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    second = method.compress(model, x)
    p1 = dict(encoder_parameters(first.model))
    p2 = dict(encoder_parameters(second.model))
    assert p1.keys() == p2.keys() and all(torch.equal(p1[k], p2[k]) for k in p1)
    assert first.size == second.size
    with torch.no_grad():
        z = first.model.encode(x)
        assert z.shape == model.encode(x).shape
        assert first.model.decode(z).shape == x.shape
        assert bool(torch.isfinite(z).all())
