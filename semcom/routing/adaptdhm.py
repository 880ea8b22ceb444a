"""AdaptDHM: distribution-adaptive routing of samples over learned clusters with cluster towers.

The paper (Li et al., 2022, multi-domain CTR) replaces hand-made domain groups by a
distribution-adaptation module: a shared bottom feeds a dynamic-routing module that gives each
sample "distribution coefficients" over ``K`` clusters; each cluster has its own tower, and
clustering and prediction are trained end to end. This module uses the textbook
capsule routing rather than the paper's customised variant:

    h_i = PReLU(W_b [z̃_i; s])                     shared bottom, per received feature i
    u_{k|i} = W_k h_i                              prediction of capsule i for cluster k
    for r iterations:  c_ik = softmax_k(b_ik),  v_k = squash(Σ_i c_ik u_{k|i}),
                       b_ik += u_{k|i} · v_k        (b = 0 at the start)
    α_k = (1/N) Σ_i c_ik                           per-sample coefficients, Σ_k α_k = 1
    x̂ = Σ_k α_k tower_k(z̃)                         (or the arg-max tower, ``top_k=1``)

On the semantic link the module sits at the receiver: the input capsules are the ``N``
received features ``z̃_i`` (``L`` scalars each), optionally with the frame's channel-state
features ``s`` appended to each (zeros without a state); the towers are ``K`` decoders of the
base architecture behind one shared encoder (:class:`~semcom.models.experts.ChannelExperts`
with ``shared_encoder=True``). It clusters channel or source conditions without labels, so
it also works when the receiver does not know the SNR or channel class (``state_inputs``
False). Everything is trained end to end by the reconstruction loss (no hook).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from channels.errors import check_flag, check_int
from semcom.channel_state import STATE_FEATURES
from semcom.models.base import SemanticModel
from semcom.models.experts import ChannelExperts, ExpertRouter
from semcom.routing.base import ROUTING, RoutingMethod
from semcom.routing.routers import dynamic_routing


class CapsuleRouter(ExpertRouter):
    """Distribution coefficients ``α`` ``[B, K]`` by dynamic routing (module docstring).

    Args:
        clusters: ``K``.
        scalars: ``L``, scalars per received feature.
        dim: capsule dimension ``D``.
        iters: routing iterations ``r``.
        state_inputs: append the state features to every received feature.

    Examples:
        >>> router = CapsuleRouter(3, scalars=4, dim=8, iters=1)
        >>> router(None, torch.randn(2, 5, 4), None).tolist()[0]  # b = 0, one iteration
        [0.3333333432674408, 0.3333333432674408, 0.3333333432674408]
    """

    uses_state = False
    uses_received = True

    def __init__(
        self, clusters: int, scalars: int, dim: int = 16, iters: int = 3, state_inputs: bool = True
    ) -> None:
        super().__init__(clusters)
        self.iters = iters
        self.state_inputs = state_inputs
        width = scalars + (STATE_FEATURES if state_inputs else 0)
        self.bottom = nn.Sequential(nn.Linear(width, dim), nn.PReLU())
        self.predict = nn.Linear(dim, clusters * dim, bias=False)
        self.dim = dim

    def predictions(self, features: torch.Tensor | None, received: torch.Tensor) -> torch.Tensor:
        """Prediction vectors ``u_{k|i}`` ``[B, N, K, D]``."""
        tokens = received
        if self.state_inputs:
            batch, n = received.shape[:2]
            s = (
                torch.zeros(batch, STATE_FEATURES, device=received.device)
                if features is None
                else features
            )
            tokens = torch.cat([received, s[:, None, :].expand(batch, n, -1)], dim=-1)
        h = self.bottom(tokens)
        return self.predict(h).reshape(*h.shape[:2], self.experts, self.dim)

    def forward(
        self,
        features: torch.Tensor | None,
        received: torch.Tensor | None,
        source: torch.Tensor | None,
    ) -> torch.Tensor:
        _, c = dynamic_routing(self.predictions(features, received), self.iters)
        return c.mean(dim=1)


@ROUTING.register(
    "adaptdhm",
    description="AdaptDHM: capsule dynamic routing of received features to per-sample "
    "cluster coefficients over decoder towers, trained end to end",
    paper="arXiv:2211.12105",
)
class AdaptDHM(RoutingMethod):
    """Receiver-side distribution-adaptive routing over ``clusters`` decoder towers.

    Args:
        clusters: ``K`` clusters and towers, 2..16.
        iters: dynamic-routing iterations, 1..10 (one iteration from ``b = 0`` is uniform).
        dim: capsule dimension, 1..256.
        state_inputs: append the channel-state features to the received features.
        top_k: towers kept per frame at evaluation (``None``: the coefficient mixture;
            1: the arg-max tower).

    Raises:
        ConfigError: an option outside its range.
    """

    def __init__(
        self,
        clusters: int = 4,
        iters: int = 3,
        dim: int = 16,
        state_inputs: bool = True,
        top_k: int | None = None,
    ) -> None:
        self.clusters = check_int("clusters", clusters, 2, 16)
        self.iters = check_int("iters", iters, 1, 10)
        self.dim = check_int("dim", dim, 1, 256)
        self.state_inputs = check_flag("state_inputs", state_inputs)
        self.top_k = None if top_k is None else check_int("top_k", top_k, 1, self.clusters)

    def build(
        self, model: str, n_features: int, model_options: dict[str, Any], seed: int = 0
    ) -> ChannelExperts:
        def router(first: SemanticModel) -> CapsuleRouter:
            return CapsuleRouter(
                self.clusters, first.scalars_per_feature, self.dim, self.iters, self.state_inputs
            )

        return ChannelExperts(
            model,
            n_features,
            experts=self.clusters,
            router=router,
            shared_encoder=True,
            top_k=self.top_k,
            **model_options,
        )

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """The deployed model: ``model`` in evaluation mode (``top_k`` routing if set)."""
        return model.eval()
