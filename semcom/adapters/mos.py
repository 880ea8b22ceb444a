"""MoS (Mixture of Shards): LoRA whose low-rank vectors are assembled from a shared shard pool.

Every wrapped layer ``i`` has LoRA's form (:mod:`semcom.adapters.lowrank`),
``y = W₀ x + b₀ + (alpha / r) s_i B_i A_i x`` with ``A_i`` ``[r, a_i]`` and ``B_i``
``[b_i, r]``, but ``A_i`` and ``B_i`` are not own parameters. With ``l`` shards per vector:

- **Vector sharding.** Row ``j`` of ``A_i`` is the concatenation of ``l`` shards of length
  ``s = ceil(a_i / l)``, cut to ``a_i``: ``A_i[j] = [σ_{j,1} ‖ … ‖ σ_{j,l}][:a_i]``; likewise
  column ``j`` of ``B_i`` from ``l`` shards of length ``ceil(b_i / l)``. A layer has ``r·l``
  shard slots on each side.
- **Global pool (inter-layer sharing).** The shared shards live in one pool per side and shard
  length, ``P^A_s`` ``[n, s]`` and ``P^B_s``, used by every layer whose vectors cut into shards
  of that length (in the paper's LLMs all layers of a kind have one width; the codec's widths
  differ, hence one pool per length). A pool holds ``n = max(1, ceil(ρ D))`` shards, ``D``
  being the shared slots of its layers and ``ρ = pool_ratio``; ``ρ < 1`` shares.
- **Subset selection.** A layer's shared slots read the pool through a fixed, seeded random
  index matrix ``I_i`` (the paper's router in its simplest, non-learned form): successive
  random permutations of ``0..n-1``, so a layer uses distinct shards while it needs at most
  ``n`` and each layer a different subset.
- **Pair dissociation.** With ``dissociate=True`` the ``A`` and ``B`` index matrices are drawn
  independently; without it both sides use the same random stream (``I^B = I^A`` when the two
  pools have the same size), so row ``j`` of ``A`` and column ``j`` of ``B`` move as a pair.
- **Shard privatisation.** ``q = round(f · r · l)`` slots per side (``f = private_fraction``,
  at seeded random positions) hold shards private to the layer.

Initialisation: ``A``-side shards ``N(0, 1/(l s))`` (``≈ 1/a``, as LoRA's ``A``), ``B``-side
shards zero, so attaching changes no output. Trainable parameters (closed form):

    Σ_pools n·s  +  Σ_i q (s^A_i + s^B_i).

With ``l = 1`` and ``f = 1`` every vector is one private shard and MoS is LoRA of rank ``r``
(same ``ΔW`` for the same values). The paper's headline is about 8x fewer parameters than
LoRA of the same rank; ``r = 8, l = 4, f = 0.0625, ρ = 0.05`` gives 9x fewer on the MLP and CNN
codecs.

On the semantic link: many condition-specific adapters (one per SNR or channel class) for one
frozen codec, each costing a fraction of LoRA's memory. Parameter names: the base layer at path
``p`` moves to ``p.base``; private shards are ``p.private_A`` / ``p.private_B``, the pools
``mos_pools.A<s>`` / ``mos_pools.B<s>``; the index buffers ``p.index_A`` / ``p.index_B``
(into the concatenation pool ‖ private shards) are saved with the model.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from channels.errors import check_flag, check_int, check_real
from semcom.adapters.base import ADAPTER, Adapter
from semcom.adapters.lowrank import (
    ADAPTER_ATTRIBUTE,
    LowRankAdapted,
    adapted_units,
    check_targets,
    check_unadapted,
    fan_dims,
    freeze,
    replace_module,
    set_unit_scales,
    target_modules,
)
from semcom.isfr import derive_seed

POOLS = "mos_pools"
"""Name of the model's submodule (``nn.ParameterDict``) holding the shared pools."""


def shard_length(dim: int, l: int) -> int:  # noqa: E741 - the paper's symbol
    """``ceil(dim / l)``: length of one of the ``l`` shards of a vector of length ``dim``.

    Examples:
        >>> shard_length(10, 4)
        3
    """
    return -(-dim // l)


def private_slots(rank: int, l: int, private_fraction: float) -> int:  # noqa: E741
    """``q = round(f · r · l)`` private shards per side of a layer.

    Examples:
        >>> private_slots(8, 4, 0.125)
        4
    """
    return int(round(private_fraction * rank * l))


def slot_indices(
    n_pool: int, shared: int, private: int, generator: torch.Generator
) -> torch.Tensor:
    """Index ``[shared + private]`` of each slot into ``pool ‖ private`` (``n_pool + private``).

    Shared slots take successive random permutations of ``0..n_pool-1``; the private shards
    ``n_pool..n_pool+private-1`` go to random slot positions.
    """
    perms = []
    while sum(len(p) for p in perms) < shared:
        perms.append(torch.randperm(n_pool, generator=generator))
    shared_idx = torch.cat(perms)[:shared] if shared else torch.zeros(0, dtype=torch.int64)
    values = torch.cat([shared_idx, n_pool + torch.arange(private)])
    positions = torch.randperm(shared + private, generator=generator)
    out = torch.empty_like(values)
    out[positions] = values
    return out


class MoSLayer(LowRankAdapted):
    """A frozen layer whose ``A, B`` are gathered from shared pools and private shards."""

    def __init__(
        self,
        base: nn.Module,
        rank: int,
        alpha: float,
        l: int,  # noqa: E741
        private: int,
        pools: nn.ParameterDict,
        index_a: torch.Tensor,
        index_b: torch.Tensor,
        generator: torch.Generator,
    ) -> None:
        super().__init__(base, rank, alpha)
        w = base.weight
        self.l = int(l)
        self.s_a, self.s_b = shard_length(self.a_dim, l), shard_length(self.b_dim, l)
        self.key_a, self.key_b = f"A{self.s_a}", f"B{self.s_b}"
        object.__setattr__(self, "_pools", pools)  # a reference, not a submodule
        self.register_buffer("index_A", index_a.to(w.device))
        self.register_buffer("index_B", index_b.to(w.device))
        if private:
            std = 1.0 / math.sqrt(l * self.s_a)
            a = std * torch.randn(private, self.s_a, generator=generator)
            self.private_A = nn.Parameter(a.to(w.device, w.dtype))
            self.private_B = nn.Parameter(
                torch.zeros(private, self.s_b, device=w.device, dtype=w.dtype)
            )
        else:
            self.private_A = self.private_B = None

    def _side(
        self, key: str, private: nn.Parameter | None, index: torch.Tensor, s: int
    ) -> torch.Tensor:
        parts = [self._pools[key]] if key in self._pools else []
        if private is not None:
            parts.append(private)
        table = torch.cat(parts) if len(parts) > 1 else parts[0]
        shards = table.index_select(0, index)  # [r·l, s], slot (j, k) at j·l + k
        return shards.reshape(self.rank, self.l * s)

    def factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        A = self._side(self.key_a, self.private_A, self.index_A, self.s_a)[:, : self.a_dim]
        B = self._side(self.key_b, self.private_B, self.index_B, self.s_b)[:, : self.b_dim]
        return A, B.t()


@ADAPTER.register(
    "mos",
    description="Mixture of Shards: LoRA vectors concatenated from a global shard pool",
    paper="arXiv:2410.00938",
)
class MoS(Adapter):
    """Mixture-of-Shards low-rank adaptation of every linear / convolutional codec layer.

    Args:
        rank: ``r`` (1..1024).
        shards_per_vector: ``l``, shards concatenated into each low-rank vector (1..64).
        private_fraction: ``f`` in ``[0, 1]``, fraction of each layer's slots holding private
            shards.
        pool_ratio: ``ρ`` in ``(0, 4]``, shards per pool relative to the shared slots reading it.
        dissociate: pair dissociation (independent ``A`` and ``B`` index matrices).
        alpha: numerator of the update scale ``alpha / r`` (> 0).
        targets: ``"all"``, ``"encoder"`` or ``"decoder"``.

    Raises:
        ConfigError: an option out of range (the message names it).

    Examples:
        >>> from semcom.models import build_model
        >>> from semcom.adapters import trainable_parameter_count
        >>> model = MoS(rank=1, shards_per_vector=1, private_fraction=1.0).attach(
        ...     build_model("mlp", 4))
        >>> trainable_parameter_count(model)  # LoRA rank 1: Σ (in + out)
        1696
    """

    def __init__(
        self,
        rank: int = 8,
        shards_per_vector: int = 2,
        private_fraction: float = 0.25,
        pool_ratio: float = 0.25,
        dissociate: bool = True,
        alpha: float = 8.0,
        targets: str = "all",
    ) -> None:
        self.rank = check_int("rank", rank, 1, 1024)
        self.shards_per_vector = check_int("shards_per_vector", shards_per_vector, 1, 64)
        self.private_fraction = check_real("private_fraction", private_fraction, 0.0, 1.0)
        self.pool_ratio = check_real(
            "pool_ratio", pool_ratio, 0.0, 4.0, open_low=True, allowed="a number in (0, 4]"
        )
        self.dissociate = check_flag("dissociate", dissociate)
        self.alpha = check_real("alpha", alpha, 0.0, 1e6, open_low=True, allowed="a number > 0")
        self.targets = check_targets(targets)

    # sizes ----------------------------------------------------------------------------------
    def pool_sizes(self, dims: list[tuple[int, int]]) -> dict[str, tuple[int, int]]:
        """``{pool key: (n shards, shard length)}`` for layers of fan dims ``dims``."""
        r, l = self.rank, self.shards_per_vector  # noqa: E741
        shared = r * l - private_slots(r, l, self.private_fraction)
        demand: dict[str, int] = {}
        for a, b in dims:
            for key in (f"A{shard_length(a, l)}", f"B{shard_length(b, l)}"):
                demand[key] = demand.get(key, 0) + shared
        return {
            k: (max(1, math.ceil(self.pool_ratio * d)), int(k[1:])) for k, d in demand.items() if d
        }

    def parameter_count(self, dims: list[tuple[int, int]]) -> int:
        """Closed form ``Σ_pools n s + Σ_i q (s^A_i + s^B_i)`` (module docstring)."""
        l = self.shards_per_vector  # noqa: E741
        q = private_slots(self.rank, l, self.private_fraction)
        pools = sum(n * s for n, s in self.pool_sizes(dims).values())
        return pools + sum(q * (shard_length(a, l) + shard_length(b, l)) for a, b in dims)

    # contract ---------------------------------------------------------------------------------
    def attach(self, model: nn.Module, seed: int = 0) -> nn.Module:
        check_unadapted(model)
        names = target_modules(model, self.targets)
        freeze(model)
        r, l = self.rank, self.shards_per_vector  # noqa: E741
        q = private_slots(r, l, self.private_fraction)
        bases = [model.get_submodule(n) for n in names]
        sizes = self.pool_sizes([fan_dims(b) for b in bases])
        init = torch.Generator().manual_seed(derive_seed(int(seed), 0))
        w = bases[0].weight if bases else torch.zeros(0)
        pools = nn.ParameterDict()
        for key, (n, s) in sorted(sizes.items(), key=lambda kv: (kv[0][0], kv[1][1])):
            if key.startswith("A"):
                value = torch.randn(n, s, generator=init) / math.sqrt(l * s)
            else:
                value = torch.zeros(n, s)
            pools[key] = nn.Parameter(value.to(w.device, w.dtype))
        model.add_module(POOLS, pools)
        for i, (name, base) in enumerate(zip(names, bases, strict=True)):
            a, b = fan_dims(base)
            key_a, key_b = f"A{shard_length(a, l)}", f"B{shard_length(b, l)}"
            n_a = sizes[key_a][0] if key_a in sizes else 0
            n_b = sizes[key_b][0] if key_b in sizes else 0
            stream = derive_seed(int(seed), 1, i)
            index_a = slot_indices(n_a, r * l - q, q, torch.Generator().manual_seed(stream))
            stream_b = derive_seed(int(seed), 2, i) if self.dissociate else stream
            index_b = slot_indices(n_b, r * l - q, q, torch.Generator().manual_seed(stream_b))
            layer = MoSLayer(base, r, self.alpha, l, q, pools, index_a, index_b, init)
            replace_module(model, name, layer)
        model._lowrank_units = list(names)
        setattr(model, ADAPTER_ATTRIBUTE, self)
        return model

    def layers(self, model: nn.Module) -> dict[str, list[str]]:
        """Each unit's private shards and the pools it reads (shared pools appear in several)."""
        out = {}
        for name, layer in adapted_units(model).items():
            own = [f"{name}.private_A", f"{name}.private_B"] if layer.private_A is not None else []
            pools = [f"{POOLS}.{k}" for k in (layer.key_a, layer.key_b) if k in layer._pools]
            out[name] = own + pools
        return out

    def set_scale(self, model: nn.Module, scales: dict[str, float]) -> None:
        set_unit_scales(model, scales)
