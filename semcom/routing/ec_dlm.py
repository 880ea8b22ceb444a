"""EC-DLM: expert-choice routing with a state-dependent capacity, on the receiver's tokens.

The paper (masked diffusion language models) swaps token-choice MoE routing for expert-choice
routing, where each expert picks its tokens, so the load is balanced by construction, and makes
the capacity depend on the denoising step: with ``T`` tokens, ``E`` experts and ``k`` experts
per token on average, each expert takes ``C = T k / E`` tokens, and

    k(r) = round(k_min + (1 - r)(k_max - k_min))        ("linear-reverse", the paper's best)

with ``r`` the step's mask ratio: more compute where less of the sequence is masked.

On the semantic link the MoE layer sits at the receiver, in front of the base decoder. Its
tokens are the ``N`` received features ``z̃_i`` (``L`` scalars each) of a frame; per frame

    P = softmax(z̃ W_r)                          router probabilities [N, E]
    C = clamp(round(N k(r) / E), 1, N)          tokens per expert
    expert e takes the C tokens of largest P[:, e]  (:func:`~semcom.routing.routers.
                                                   expert_choice_route`)
    z'_i = z̃_i + Σ_{e chose i} P[i, e] FFN_e(z̃_i),   FFN_e: L -> hidden -> L (GELU)
    x̂ = g(z')                                   the base decoder

The state scalar ``r`` is the frame's erasure ratio (``signal="erasure"``: the fraction of
features received as all zeros, i.e. unsent or dropped and zero-filled: the mask ratio's
analogue) or its SNR mapped to ``[0, 1]`` (``signal="snr"``: ``r = (hi - snr)/(hi - lo)``
clipped, so a noisy frame counts as "more masked"; a frame without a state has ``r = 0``).
The schedules are those of :func:`~semcom.routing.routers.capacity_schedule`. Trained end to
end by the reconstruction loss (no hook). Ours: the experts run densely and the dispatch mask
selects their outputs (exactly the expert-choice result; the compute is not saved here), and
the capacity is per frame rather than per batch.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from channels.errors import check_choice, check_int, check_vector, fail
from semcom.channel_state import ChannelState
from semcom.models.base import SemanticModel
from semcom.models.size import check_model_size
from semcom.routing.base import ROUTING, RoutingMethod
from semcom.routing.routers import (
    SCHEDULES,
    capacity_schedule,
    expert_capacity,
    expert_choice_route,
)

SIGNALS = ("erasure", "snr")
"""State scalars that set the capacity."""


class ExpertChoiceCodec(SemanticModel):
    """A base codec with a receiver-side expert-choice MoE layer on its received features.

    Args:
        base: base architecture name.
        n_features: ``N``.
        experts: ``E``.
        expert_hidden: width of each expert's FFN (named apart from the base's ``hidden``).
        kmin, kmax: the capacity schedule's range of experts per token.
        schedule: a kind of :func:`~semcom.routing.routers.capacity_schedule`.
        signal: ``"erasure"`` or ``"snr"`` (module docstring).
        snr_range: ``[lo, hi]`` dB mapped to ``r = 1 .. 0`` by the ``"snr"`` signal.
        **options: the base architecture's options.

    Attributes:
        last_dispatch: bool ``[B, N, E]`` of the last decode (which expert took which token).
        last_capacity: int64 ``[B]``, tokens per expert of each frame in the last decode.
    """

    name = "expert-choice"
    conditioned = True

    def __init__(
        self,
        base: str,
        n_features: int,
        experts: int = 4,
        expert_hidden: int = 32,
        kmin: int = 1,
        kmax: int = 2,
        schedule: str = "linear-reverse",
        signal: str = "erasure",
        snr_range: tuple[float, float] = (-5.0, 20.0),
        **options: Any,
    ) -> None:
        from semcom.models.build import build_model, resolve_model_options

        classes = options.pop("num_classes", None)
        resolved = resolve_model_options(base, n_features, **options)
        codec = build_model(base, n_features, **resolved)
        L = codec.scalars_per_feature
        own = {
            "base": base,
            "base_options": resolved,
            "experts": experts,
            "expert_hidden": expert_hidden,
            "kmin": kmin,
            "kmax": kmax,
            "schedule": schedule,
            "signal": signal,
            "snr_range": list(snr_range),
            "num_classes": classes,
            "input_shape": list(codec.input_shape),
            "scalars_per_feature": L,
        }
        check_model_size(base, self.parameter_count(n_features, own), own)
        super().__init__(n_features, L, codec.input_shape, classes, own)
        self.codec = codec
        self.router = nn.Linear(L, experts)
        h = expert_hidden
        bound_in, bound_hidden = 1.0 / math.sqrt(L), 1.0 / math.sqrt(h)
        self.w1 = nn.Parameter(torch.empty(experts, L, h).uniform_(-bound_in, bound_in))
        self.b1 = nn.Parameter(torch.empty(experts, h).uniform_(-bound_in, bound_in))
        self.w2 = nn.Parameter(torch.empty(experts, h, L).uniform_(-bound_hidden, bound_hidden))
        self.b2 = nn.Parameter(torch.empty(experts, L).uniform_(-bound_hidden, bound_hidden))
        self.kmin, self.kmax, self.schedule, self.signal = kmin, kmax, schedule, signal
        self.snr_range = (float(snr_range[0]), float(snr_range[1]))
        self.last_dispatch: torch.Tensor | None = None
        self.last_capacity: torch.Tensor | None = None

    def encoder_parts(self) -> list[nn.Module]:
        """The base codec: its encoder encodes every frame (the MoE layer is at the receiver)."""
        return [self.codec]

    @classmethod
    def parameter_count(cls, n_features: int, options: dict[str, Any]) -> int:
        """Base codec + router ``L·E + E`` + experts ``E (L·H + H + H·L + L)`` + head."""
        from semcom.models.base import ClassifierHead
        from semcom.models.build import MODELS

        base = MODELS[options["base"]].parameter_count(n_features, options["base_options"])
        L, e, h = options["scalars_per_feature"], options["experts"], options["expert_hidden"]
        classes = options.get("num_classes")
        head = (
            0
            if classes is None
            else ClassifierHead.parameter_count(options["input_shape"][0], classes)
        )
        return base + (L * e + e) + e * (2 * L * h + h + L) + head

    def ratio(self, z: torch.Tensor, state: ChannelState | None) -> torch.Tensor:
        """The frames' state scalar ``r`` ``[B]`` in [0, 1] (module docstring)."""
        if self.signal == "erasure":
            return (z.detach().abs().amax(dim=-1) == 0).to(torch.float64).mean(dim=1)
        if state is None:
            return torch.zeros(z.shape[0], dtype=torch.float64, device=z.device)
        lo, hi = self.snr_range
        snr = state.snr_db.to(device=z.device, dtype=torch.float64)
        return ((hi - snr) / (hi - lo)).clamp(0.0, 1.0)

    def moe(self, z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``z + Σ_e combine · FFN_e(z)`` ``[B, N, L]`` for state scalars ``r`` ``[B]``."""
        experts = self.w1.shape[0]
        k = capacity_schedule(r, self.kmin, self.kmax, self.schedule)
        capacity = expert_capacity(k, z.shape[1], experts).to(z.device)
        dispatch, combine = expert_choice_route(self.router(z), capacity)
        hidden = F.gelu(torch.einsum("bnl,elh->bneh", z, self.w1) + self.b1)
        out = torch.einsum("bneh,ehl->bnel", hidden, self.w2) + self.b2
        self.last_dispatch, self.last_capacity = dispatch.detach(), capacity
        return z + (combine.unsqueeze(-1) * out).sum(dim=2)

    def _features(self, x: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        return self.codec._features(x)

    def decode(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        """Received ``z`` ``[B, N, L]`` -> ``g(MoE(z))`` ``[B, C, H, W]``."""
        self.check_features(z)
        return self.codec.decode(self.moe(z, self.ratio(z, state)))


@ROUTING.register(
    "ec-dlm",
    description="EC-DLM: receiver-side expert-choice MoE over the received features with a "
    "capacity set by the frame's erasure ratio or SNR (linear-reverse schedule)",
    paper="arXiv:2604.01622",
)
class ECDLM(RoutingMethod):
    """Expert-choice MoE at the receiver with a state-dependent capacity (module docstring).

    Args:
        experts: ``E``, 2..64.
        hidden: each expert's FFN width, 1..4096.
        kmin, kmax: experts per token at ``r = 1`` and ``r = 0`` (linear-reverse),
            ``1 <= kmin <= kmax <= experts``.
        schedule: ``"linear-reverse"``, ``"linear"``, ``"cosine"`` or ``"constant"``.
        signal: ``"erasure"`` (fraction of zero-filled features) or ``"snr"``.
        snr_range: ``[lo, hi]`` dB with ``lo < hi`` (the ``"snr"`` signal's map to [0, 1]).

    Raises:
        ConfigError: an option outside its range.
    """

    def __init__(
        self,
        experts: int = 4,
        hidden: int = 32,
        kmin: int = 1,
        kmax: int = 2,
        schedule: str = "linear-reverse",
        signal: str = "erasure",
        snr_range: list[float] | tuple[float, float] = (-5.0, 20.0),
    ) -> None:
        self.experts = check_int("experts", experts, 2, 64)
        self.hidden = check_int("hidden", hidden, 1, 4096)
        self.kmin = check_int("kmin", kmin, 1, self.experts)
        self.kmax = check_int("kmax", kmax, self.kmin, self.experts)
        self.schedule = check_choice("schedule", schedule, SCHEDULES)
        self.signal = check_choice("signal", signal, SIGNALS)
        allowed = "[lo, hi] in dB with lo < hi"
        rng = check_vector("snr_range", snr_range, min_size=2, allowed=allowed)
        if len(rng) != 2 or not float(rng[0]) < float(rng[1]):
            raise fail("snr_range", list(snr_range), allowed)
        self.snr_range = [float(rng[0]), float(rng[1])]

    def build(
        self, model: str, n_features: int, model_options: dict[str, Any], seed: int = 0
    ) -> ExpertChoiceCodec:
        return ExpertChoiceCodec(
            model,
            n_features,
            experts=self.experts,
            expert_hidden=self.hidden,
            kmin=self.kmin,
            kmax=self.kmax,
            schedule=self.schedule,
            signal=self.signal,
            snr_range=tuple(self.snr_range),
            **model_options,
        )
