"""Copies of one codec trained on a partition of channel conditions by SNR bin.

:class:`SNRBinExperts` holds ``E`` copies of a base codec. Frame ``b`` with average SNR
``s_b = state.snr_db[b]`` belongs to bin ``e = #{j : s_b >= edges_j}`` (edges ascending, in dB,
``E = len(edges) + 1``) and is encoded and decoded by expert ``e`` only, so the one training
loop trains expert ``e`` on bin ``e``'s frames and nothing else. Both ends of the link know the
state, so the encoder and the decoder pick the same expert.

While :attr:`SNRBinExperts.tied` is set every frame goes to expert 0 (a shared warm-up);
:meth:`SNRBinExperts.untie` copies expert 0 into all experts and snapshots those weights as the
*base* ``θ_base``, the point the experts' task vectors ``τ_e = θ_e - θ_base`` start from (the
merge base of :mod:`semcom.routing.merging`). Without a warm-up the base is the common
initialisation. Without a state (``None``) every frame goes to expert 0.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from semcom.channel_state import ChannelState
from semcom.models.base import SemanticModel


def snr_bins(snr_db: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin index int64 ``[B]`` of each SNR: the number of edges ``<= snr_db`` (dB).

    Examples:
        >>> snr_bins(torch.tensor([-5.0, 0.0, 12.0]), torch.tensor([0.0, 10.0])).tolist()
        [0, 1, 2]
    """
    return torch.bucketize(snr_db.float(), edges.to(snr_db.device).float(), right=True)


class SNRBinExperts(SemanticModel):
    """``E`` channel-conditioned copies of ``base`` selected by SNR bin (module docstring).

    Args:
        base: the codec to copy (its weights become every expert's start and the base).
        edges_db: ascending bin edges in dB (``E = len(edges_db) + 1`` experts).
        tied: start in the tied phase (all frames to expert 0 until :meth:`untie`).

    Attributes:
        experts: the ``E`` codecs (``nn.ModuleList``).
        edges: float32 buffer ``[E-1]``.
        base_state: buffers holding ``θ_base`` (one per parameter of a codec).
    """

    conditioned = True

    def __init__(self, base: SemanticModel, edges_db: list[float], tied: bool = False) -> None:
        super().__init__(
            base.n_features,
            base.scalars_per_feature,
            base.input_shape,
            None,
            dict(base.options),
        )
        self.name = base.name
        self.num_classes = base.num_classes
        self.experts = nn.ModuleList(copy.deepcopy(base) for _ in range(len(edges_db) + 1))
        self.register_buffer("edges", torch.tensor(list(edges_db), dtype=torch.float32))
        self.register_buffer("tied_flag", torch.tensor(bool(tied)))
        self.base_state = nn.Module()
        for i, (_, p) in enumerate(base.named_parameters()):
            self.base_state.register_buffer(f"p{i}", p.detach().clone())

    def encoder_parts(self) -> list[nn.Module]:
        """The codecs whose encoders encode frames: every expert (one per SNR bin)."""
        return list(self.experts)

    @property
    def tied(self) -> bool:
        """Whether every frame still goes to expert 0."""
        return bool(self.tied_flag)

    def untie(self) -> None:
        """Copy expert 0 into every expert and snapshot it as ``θ_base``; clears :attr:`tied`."""
        with torch.no_grad():
            src = list(self.experts[0].parameters())
            for expert in self.experts[1:]:
                for p, q in zip(expert.parameters(), src, strict=True):
                    p.copy_(q)
            for i, q in enumerate(src):
                getattr(self.base_state, f"p{i}").copy_(q)
            self.tied_flag.fill_(False)

    def base_parameters(self) -> dict[str, torch.Tensor]:
        """``θ_base`` by parameter name of a codec."""
        names = [n for n, _ in self.experts[0].named_parameters()]
        return {n: getattr(self.base_state, f"p{i}") for i, n in enumerate(names)}

    def route(self, state: ChannelState | None, batch: int) -> torch.Tensor:
        """Expert index int64 ``[B]`` of each frame (0 without a state or while tied)."""
        device = self.edges.device
        if state is None or self.tied:
            return torch.zeros(batch, dtype=torch.int64, device=device)
        if len(state) != batch:
            raise ValueError(f"state has {len(state)} frames for a batch of {batch}")
        return snr_bins(state.snr_db.to(device), self.edges)

    def _dispatch(self, fn: str, inputs: torch.Tensor, state: ChannelState | None) -> torch.Tensor:
        index = self.route(state, inputs.shape[0])
        out: torch.Tensor | None = None
        for e, expert in enumerate(self.experts):
            rows = torch.nonzero(index == e).flatten()
            if rows.numel() == 0:
                continue
            y = getattr(expert, fn)(inputs[rows])
            if out is None:
                out = y.new_zeros((inputs.shape[0], *y.shape[1:]))
            out = out.index_copy(0, rows, y)
        assert out is not None or inputs.shape[0] == 0
        return out if out is not None else getattr(self.experts[0], fn)(inputs)

    def _features(self, x: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        return self._dispatch("_features", x, state)

    def decode(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        """Features ``[B, N, L]`` -> images ``[B, C, H, W]``, frame ``b`` by its bin's expert."""
        self.check_features(z)
        return self._dispatch("decode", z, state)

    def classify(self, x_hat: torch.Tensor) -> torch.Tensor:
        """Mean logits of the experts' classifier heads (the heads see every frame)."""
        return torch.stack([e.classify(x_hat) for e in self.experts]).mean(0)

    @classmethod
    def _own_parameter_count(cls, n_features: int, options: dict[str, Any]) -> int:
        raise NotImplementedError("count an SNRBinExperts model with sum(p.numel())")
