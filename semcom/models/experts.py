"""Channel-conditioned experts: a codec made of ``E`` expert codecs and a router.

Each expert ``e`` is a codec of the base architecture (``build_model(base, N, **options)``),
with the same ``N`` features of ``L`` scalars as the base, so the link sends ``z`` unchanged.
A router maps the frame's channel state (:meth:`ChannelState.features
<semcom.channel_state.ChannelState.features>`: SNR, realised SNR, channel class one-hot), and
for some routers the received features, to combine weights ``w`` ``[B, E]`` (rows sum to 1):

    encode:  z = tanh(Σ_e w_e(s) f_e(x))          (pre-tanh features mixed)
    decode:  x̂ = Σ_e w_e(s, z̃) g_e(z̃)             (reconstructions mixed; stays in [0, 1])

Both ends know the state ``s`` (the transmitter allocates from CSI, the receiver knows the
allocation), so a router on ``s`` alone picks the same experts at both ends. A router that
also reads the received ``z̃`` exists only at the receiver: the model is then built with
``shared_encoder=True`` (expert 0's encoder encodes every frame; the other experts act as
decoder towers, their encoders stored but unused and frozen).

Weights: the router's soft mixture while training; at evaluation (``model.eval()``) the soft
mixture, or with ``top_k`` the ``top_k`` largest weights renormalised (top-1: one expert per
frame). Without a state (``state=None``: importance estimation, a clean pass) a router that
needs the state routes the frames as at the *average training state*: the running mean of the
state features of every training frame (buffers ``state_mean``, ``state_count``, saved with the
weights); an untrained model, which has seen none, uses uniform weights ``w_e = 1/E``.

The router is any :class:`ExpertRouter`; the routing method that builds the model chooses it
(DDM's partition classifier, AdaptDHM's capsule routing, ...); the model stays generic. While
training, ``encode`` keeps the batch's images for the ``decode`` of the same batch
(``source`` of :meth:`ExpertRouter.forward`): a router that trains experts on a data
partition reads its training labels from them; it is never used at evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from channels.errors import check_flag, check_int, fail
from semcom.channel_state import STATE_FEATURES, ChannelState
from semcom.models.base import SemanticModel
from semcom.models.size import check_model_size


class ExpertRouter(nn.Module):
    """Base class of a router: inputs -> combine weights ``[B, E]`` (rows sum to 1).

    Attributes:
        experts: ``E``.
        uses_state: whether it reads the state features (without a state it is not called).
        uses_received: whether it reads the received features (only at the receiver; the
            model must share its encoder).
    """

    uses_state: bool = True
    uses_received: bool = False

    def __init__(self, experts: int) -> None:
        super().__init__()
        self.experts = int(experts)

    def forward(
        self,
        features: torch.Tensor | None,
        received: torch.Tensor | None,
        source: torch.Tensor | None,
    ) -> torch.Tensor:  # pragma: no cover - abstract
        """Weights ``[B, E]`` from state features ``[B, 5]`` (or ``None``), received features
        ``[B, N, L]`` (decode side, or ``None``) and, while training, the batch's images
        ``[B, C, H, W]`` (or ``None``)."""
        raise NotImplementedError


class StateRouter(ExpertRouter):
    """``w = softmax(MLP(state features))``: ``5 -> hidden -> E`` with a PReLU.

    Examples:
        >>> router = StateRouter(3)
        >>> w = router(torch.zeros(2, 5), None, None)
        >>> w.shape, bool(torch.allclose(w.sum(1), torch.ones(2)))
        (torch.Size([2, 3]), True)
    """

    def __init__(self, experts: int, hidden: int = 32) -> None:
        super().__init__(experts)
        self.net = nn.Sequential(
            nn.Linear(STATE_FEATURES, hidden), nn.PReLU(), nn.Linear(hidden, experts)
        )

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Router logits ``[B, E]``."""
        return self.net(features)

    def forward(
        self,
        features: torch.Tensor | None,
        received: torch.Tensor | None,
        source: torch.Tensor | None,
    ) -> torch.Tensor:
        return torch.softmax(self.logits(features), dim=-1)


def encoder_parameter_names(model: SemanticModel) -> set[str]:
    """Names of the parameters ``model._features`` depends on (found by one backward pass of
    a zero image, so it works for every architecture)."""
    model.zero_grad(set_to_none=True)
    device = next(model.parameters()).device
    with torch.enable_grad():
        model._features(torch.zeros(1, *model.input_shape, device=device)).sum().backward()
    names = {n for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return names


class ChannelExperts(SemanticModel):
    """``E`` expert codecs of one base architecture combined by a router (module docstring).

    Args:
        base: base architecture name (``"mlp"``, ``"cnn"``, ``"vit"``).
        n_features: ``N``.
        experts: ``E`` in 1..64.
        router: the :class:`ExpertRouter` (default: :class:`StateRouter`), or a factory
            called with the first expert codec (for its ``N``, ``L``, input shape) that
            returns one.
        shared_encoder: expert 0's encoder encodes every frame (required when the router reads
            the received features).
        top_k: evaluation keeps each frame's ``top_k`` weights (``None``: soft mixture).
        **options: the base architecture's options (``num_classes`` adds one classifier head
            to the whole model).

    Raises:
        ConfigError: bad ``experts``/``top_k``, a router with another ``E``, a router reading
            the received features without ``shared_encoder``, or a bad base option.

    Examples:
        >>> model = ChannelExperts("mlp", 4, experts=2)
        >>> z = model.encode(torch.rand(3, 1, 8, 8), ChannelState.constant(5.0, "awgn", 3))
        >>> tuple(z.shape), model.conditioned
        ((3, 4, 4), True)
    """

    name = "experts"
    conditioned = True

    def __init__(
        self,
        base: str,
        n_features: int,
        experts: int = 4,
        router: ExpertRouter | Callable[[SemanticModel], ExpertRouter] | None = None,
        shared_encoder: bool = False,
        top_k: int | None = None,
        **options: Any,
    ) -> None:
        from semcom.models.build import MODELS, build_model, resolve_model_options

        e = check_int("experts", experts, 1, 64)
        shared = check_flag("shared_encoder", shared_encoder)
        k = None if top_k is None else check_int("top_k", top_k, 1, e)
        classes = options.pop("num_classes", None)
        resolved = resolve_model_options(base, n_features, **options)
        size = e * MODELS[base].parameter_count(n_features, resolved)
        check_model_size(f"{e} x {base}", size, resolved)  # before anything is built
        members = [build_model(base, n_features, **resolved) for _ in range(e)]
        first = members[0]
        if router is None:
            router = StateRouter(e)
        elif not isinstance(router, nn.Module):
            router = router(first)
        if router.experts != e:
            raise fail("router", f"a router over {router.experts} experts", f"{e} experts")
        if router.uses_received and not shared:
            raise fail("shared_encoder", shared, "True for a router reading received features")
        router_count = sum(p.numel() for p in router.parameters())
        own = {
            "base": base,
            "base_options": resolved,
            "experts": e,
            "shared_encoder": shared,
            "top_k": k,
            "router_parameters": router_count,
            "num_classes": classes,
            "input_shape": list(first.input_shape),
        }
        super().__init__(n_features, first.scalars_per_feature, first.input_shape, classes, own)
        self.experts = nn.ModuleList(members)
        self.router = router
        self.register_buffer("state_mean", torch.zeros(STATE_FEATURES))
        self.register_buffer("state_count", torch.zeros((), dtype=torch.float64))
        self.shared_encoder = shared
        self.top_k = k
        self._source: torch.Tensor | None = None
        if shared:
            unused = encoder_parameter_names(first)
            for member in members[1:]:
                for pname, p in member.named_parameters():
                    if pname in unused:
                        p.requires_grad_(False)

    def encoder_parts(self) -> list[nn.Module]:
        """The codecs whose encoders encode frames: expert 0 with a shared encoder, else all."""
        return [self.experts[0]] if self.shared_encoder else list(self.experts)

    @classmethod
    def parameter_count(cls, n_features: int, options: dict[str, Any]) -> int:
        """``E`` times the base codec's parameters, plus the router's and the head's (the
        parameters stored; with a shared encoder ``E - 1`` encoders are stored but frozen)."""
        from semcom.models.base import ClassifierHead
        from semcom.models.build import MODELS

        base = MODELS[options["base"]].parameter_count(n_features, options["base_options"])
        classes = options.get("num_classes")
        head = (
            0
            if classes is None
            else ClassifierHead.parameter_count(options["input_shape"][0], classes)
        )
        return options["experts"] * base + options["router_parameters"] + head

    # routing ----------------------------------------------------------------------------------
    def combine_weights(
        self, state: ChannelState | None, received: torch.Tensor | None, batch: int
    ) -> torch.Tensor:
        """Combine weights ``[B, E]`` for the frames' state (module docstring)."""
        e = len(self.experts)
        device = next(self.parameters()).device
        features = None if state is None else state.to(device).features()
        if features is not None and self.training:
            self._record_state(features)
        if features is None and self.router.uses_state:
            if float(self.state_count) == 0.0:
                return torch.full((batch, e), 1.0 / e, device=device)
            # no state given (importance estimation, a clean pass): the frames are routed as at
            # the average channel state seen in training
            features = self.state_mean.to(device).expand(batch, -1)
        source = self._source if self.training else None
        if source is not None and source.shape[0] != batch:
            source = None
        w = self.router(features, received if self.router.uses_received else None, source)
        if not self.training and self.top_k is not None:
            from semcom.routing.routers import sparsify  # routing imports models: import late

            w = sparsify(w, self.top_k)
        return w

    def _record_state(self, features: torch.Tensor) -> None:
        """Running mean of the training frames' state features (the default state)."""
        with torch.no_grad():
            n = float(self.state_count)
            b = features.shape[0]
            mean = features.detach().mean(0).to(self.state_mean)
            self.state_mean.mul_(n / (n + b)).add_(mean * (b / (n + b)))
            self.state_count.add_(b)

    def _mix(self, w: torch.Tensor, outputs: Any) -> torch.Tensor:
        """``Σ_e w[:, e] out_e`` over the experts with a non-zero weight in the batch."""
        total = None
        for e in torch.nonzero(w.detach().abs().sum(0) > 0).flatten().tolist():
            out = outputs(e)
            term = w[:, e].reshape(-1, *([1] * (out.ndim - 1))) * out
            total = term if total is None else total + term
        return total

    def _features(self, x: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        self._source = x.detach() if self.training else None
        if self.shared_encoder:
            return self.experts[0]._features(x)
        w = self.combine_weights(state, None, x.shape[0])
        return self._mix(w, lambda e: self.experts[e]._features(x))

    def decode(self, z: torch.Tensor, state: ChannelState | None = None) -> torch.Tensor:
        """Received features ``z`` ``[B, N, L]`` -> ``Σ_e w_e g_e(z)`` ``[B, C, H, W]``."""
        self.check_features(z)
        w = self.combine_weights(state, z, z.shape[0])
        self._source = None
        return self._mix(w, lambda e: self.experts[e].decode(z))
