"""LoRA: a trainable rank-``r`` residual update on every linear and convolutional layer.

Each wrapped layer (see :mod:`semcom.adapters.lowrank` for the conv forms) computes

    y = W₀ x + b₀ + (alpha / r) · s_l · B A x,

with ``W₀, b₀`` frozen, ``A`` ``[r, a]`` initialised ``N(0, 1/a)`` (seeded) and ``B`` ``[b, r]``
initialised to zero, so that attaching changes no output; only ``A`` and ``B`` train. Trainable
parameters per layer: ``r (a + b)`` (``a = in`` features or ``c_in·kh·kw``, ``b`` the output
width), in total ``r Σ_l (a_l + b_l)``.

On the semantic link: re-adapting a codec trained at one channel (say 10 dB AWGN) to another
(0 dB Rayleigh) stores and trains only the ``A, B`` of each layer; the shared codec weights stay
as they are. It is also the reference that MoS (:mod:`semcom.adapters.mos`) reduces to.

Parameter names: the base layer at path ``p`` moves to ``p.base``; its factors are ``p.lora_A``
and ``p.lora_B``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from channels.errors import check_int, check_real
from semcom.adapters.base import ADAPTER, Adapter
from semcom.adapters.lowrank import (
    ADAPTER_ATTRIBUTE,
    LowRankAdapted,
    adapted_units,
    check_targets,
    check_unadapted,
    freeze,
    replace_module,
    set_unit_scales,
    target_modules,
)


class LoRALayer(LowRankAdapted):
    """A frozen layer with its own factors ``lora_A`` ``[r, a]`` and ``lora_B`` ``[b, r]``."""

    def __init__(
        self, base: nn.Module, rank: int, alpha: float, generator: torch.Generator
    ) -> None:
        super().__init__(base, rank, alpha)
        w = base.weight
        A = torch.randn(rank, self.a_dim, generator=generator, dtype=torch.float32)
        self.lora_A = nn.Parameter((A / math.sqrt(self.a_dim)).to(w.device, w.dtype))
        self.lora_B = nn.Parameter(torch.zeros(self.b_dim, rank, device=w.device, dtype=w.dtype))

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lora_A, self.lora_B


@ADAPTER.register(
    "lora",
    description="LoRA: a zero-initialised rank-r residual update B·A on every codec layer",
    paper="arXiv:2106.09685",
)
class LoRA(Adapter):
    """Low-rank adaptation of every linear / convolutional layer of the codec.

    Args:
        rank: ``r``, rank of each update (1..1024).
        alpha: numerator of the update scale ``alpha / r`` (> 0).
        targets: ``"all"``, ``"encoder"`` or ``"decoder"``: which half of the codec is adapted.

    Raises:
        ConfigError: an option out of range (named ``rank``, ``alpha`` or ``targets``).

    Examples:
        >>> from semcom.models import build_model
        >>> model = LoRA(rank=2).attach(build_model("mlp", 4), seed=0)
        >>> list(LoRA(rank=2).layers(model))[:2]
        ['encoder.1', 'encoder.3']
        >>> LoRA(rank=2).layers(model)["encoder.1"]
        ['encoder.1.lora_A', 'encoder.1.lora_B']
    """

    def __init__(self, rank: int = 4, alpha: float = 4.0, targets: str = "all") -> None:
        self.rank = check_int("rank", rank, 1, 1024)
        self.alpha = check_real("alpha", alpha, 0.0, 1e6, open_low=True, allowed="a number > 0")
        self.targets = check_targets(targets)

    def attach(self, model: nn.Module, seed: int = 0) -> nn.Module:
        check_unadapted(model)
        names = target_modules(model, self.targets)
        freeze(model)
        generator = torch.Generator().manual_seed(int(seed))
        for name in names:
            layer = LoRALayer(model.get_submodule(name), self.rank, self.alpha, generator)
            replace_module(model, name, layer)
        model._lowrank_units = list(names)
        setattr(model, ADAPTER_ATTRIBUTE, self)
        return model

    def layers(self, model: nn.Module) -> dict[str, list[str]]:
        return {n: [f"{n}.lora_A", f"{n}.lora_B"] for n in adapted_units(model)}

    def set_scale(self, model: nn.Module, scales: dict[str, float]) -> None:
        set_unit_scales(model, scales)

    @staticmethod
    def parameter_count(dims: list[tuple[int, int]], rank: int) -> int:
        """``r Σ (a + b)`` over the wrapped layers' ``(a, b)`` (:func:`~.lowrank.fan_dims`)."""
        return rank * sum(a + b for a, b in dims)
