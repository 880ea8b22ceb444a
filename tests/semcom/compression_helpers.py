"""Small trained codecs and checks shared by the compression method tests."""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch
from torch import nn

from semcom.compression.budget import prune_count
from semcom.compression.hidden_units import unit_groups
from semcom.compression.prunable import prunable_weights, zero_count
from semcom.data import load_dataset
from semcom.models.build import build_model


@functools.lru_cache(maxsize=1)
def digits() -> torch.Tensor:
    """The digits training images ``[1438, 1, 8, 8]`` (float32, embedded data set)."""
    return load_dataset("digits", "train").images


@functools.lru_cache(maxsize=4)
def _trained_mlp(hidden: tuple[int, int], steps: int) -> nn.Module:
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("mlp", 8, hidden=list(hidden))
    images = digits()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        x = images[torch.randint(0, images.shape[0], (128,), generator=generator)]
        loss = torch.mean((model(x) - x) ** 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
    return model.eval()


def trained_mlp(
    hidden: tuple[int, int] = (32, 16), steps: int = 800, dtype: torch.dtype = torch.float32
) -> nn.Module:
    """A small digits ``mlp`` codec (N = 8, L = 4: encoder ``64 -> h0 -> h1 -> 32``) trained
    ``steps`` Adam steps (seeded, in float32; returned in ``dtype``; MSE about 0.02).

    Returns a fresh deep copy each call, so a test may modify it.
    """
    return copy.deepcopy(_trained_mlp(tuple(hidden), steps)).to(dtype)


def small_models() -> list[nn.Module]:
    """Tiny untrained ``mlp``, ``cnn`` and ``vit`` codecs (seeded) for the shape contract."""
    with torch.random.fork_rng():
        torch.manual_seed(1)
        return [
            build_model("mlp", 4, hidden=[16, 8]).eval(),
            build_model("cnn", 4, widths=[6, 8], input_shape=[3, 8, 8]).eval(),
            build_model("vit", 4, dim=8, depth=1, heads=2, input_shape=[3, 8, 8]).eval(),
        ]


def tiny_codec(name: str = "mlp", **options: object) -> nn.Module:
    """A tiny untrained ``mlp`` (default), ``cnn`` or ``vit`` codec with N = 4 (seeded with 0,
    eval mode); ``options`` go to the ``mlp`` and ``cnn`` builders."""
    torch.manual_seed(0)
    if name == "cnn":
        return build_model("cnn", 4, widths=[6, 8], input_shape=[3, 8, 8], **options).eval()
    if name == "vit":
        return build_model("vit", 4, dim=16, heads=2, depth=1, input_shape=[1, 8, 8]).eval()
    return build_model("mlp", 4, hidden=[32, 16], **options).eval()


def check_exact_weight_pruning(
    model: nn.Module,
    before: list[torch.Tensor],
    pruned: nn.Module,
    x: torch.Tensor,
    sparsity: float,
) -> None:
    """The weight-pruning contract: ``pruned`` has exactly ``prune_count(sparsity, total)`` zero
    prunable weights, ``model`` still holds the parameters ``before``, and the pruned codec
    keeps the shapes of ``encode`` and ``decode`` on ``x``."""
    total = sum(w.numel() for _, w in prunable_weights(model))
    assert zero_count(pruned) == (prune_count(sparsity, total), total)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    z = pruned.encode(x)
    assert z.shape == model.encode(x).shape and pruned.decode(z).shape == x.shape


def removed_units(model: nn.Module) -> int:
    """Hidden units whose producer row, bias and consumer column are all exactly zero."""
    count = 0
    for g in unit_groups(model):
        w = g.producer.weight.detach().reshape(g.size, -1)
        dead = (w == 0).all(dim=1)
        if g.producer.bias is not None:
            dead &= g.producer.bias.detach() == 0
        col = g.consumer.weight.detach().transpose(0, 1).reshape(g.size, -1)
        dead &= (col == 0).all(dim=1)
        count += int(dead.sum())
    return count


def same_state(a: nn.Module, b: nn.Module) -> bool:
    """Bitwise-equal state dicts."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def check_untouched_and_deterministic(method: Any, model: nn.Module, x: torch.Tensor) -> Any:
    """Compress ``model`` twice with ``method`` on ``x``: the input codec must be unchanged and
    both runs bitwise equal (state and details). Returns the first result."""
    before = copy.deepcopy(model)
    a = method.compress(model, x)
    b = method.compress(model, x)
    assert same_state(model, before)
    assert same_state(a.model, b.model) and a.details == b.details
    return a


def compress_small(method: Any, index: int) -> tuple[nn.Module, Any]:
    """``(model, method.compress(model, x))`` for ``small_models()[index]`` on 8 seeded
    random images."""
    model = small_models()[index]
    x = torch.rand(8, *model.input_shape, generator=torch.Generator().manual_seed(2))
    return model, method.compress(model, x)


def codec_round_trip(model: nn.Module, batch: int = 3) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of ``encode`` and ``decode(encode(x))`` on random images."""
    x = torch.rand(batch, *model.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z = model.encode(x)
        y = model.decode(z)
    assert torch.isfinite(y).all()
    return tuple(z.shape), tuple(y.shape)
