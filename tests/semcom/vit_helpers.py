"""Tiny seeded ViT codecs and random images shared by the token-importance tests."""

from __future__ import annotations

from typing import Any

import torch

from semcom.models import build_model


def tiny_vit(seed: int = 0, **options: Any) -> torch.nn.Module:
    """A ``vit`` codec with N = 16 features on ``[3, 32, 32]`` images (``dim=16``, ``heads=2``,
    ``depth=2`` unless ``options`` say otherwise), seeded by ``seed``, in eval mode."""
    torch.manual_seed(seed)
    return build_model("vit", 16, **{"dim": 16, "heads": 2, "depth": 2, **options}).eval()


def images(batch: int = 6, seed: int = 1) -> torch.Tensor:
    """``batch`` uniform images ``[batch, 3, 32, 32]`` (float32) drawn from ``seed``."""
    return torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def small_vit(n: int = 16) -> torch.nn.Module:
    """An untrained ``vit`` codec with ``n`` features on ``[3, 16, 16]`` images (one block,
    ``L = 4``), seeded with 0."""
    torch.manual_seed(0)
    return build_model("vit", n, input_shape=[3, 16, 16], dim=16, heads=2, depth=1, L=4)


def small_images(batch: int = 4) -> torch.Tensor:
    """``batch`` uniform images ``[batch, 3, 16, 16]`` (float32) drawn from seed 3."""
    return torch.rand(batch, 3, 16, 16, generator=torch.Generator().manual_seed(3))
