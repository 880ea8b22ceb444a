"""Decentralized Diffusion Models (DDM): experts trained on data partitions, combined by a router.

The paper (McAllister et al., CVPR 2025) splits the training data into ``K`` clusters
``S_1..S_K`` (k-means on frozen image embeddings), trains expert ``k`` only on ``S_k`` (its
flow-matching loss sees its cluster alone, with no communication between experts), and trains
a router ``r_φ(k | x_t, t)`` by cross-entropy to predict the cluster a noisy sample came from.
Sampling uses the ensemble ``v(x_t) = Σ_k r_φ(k|x_t) v_k(x_t)`` or its top-k sparsification.
Because the global marginal is the mixture ``p = Σ_k π_k p_k``, its score is

    ∇ log p(x) = Σ_k r(k|x) ∇ log p_k(x),   r(k|x) = π_k p_k(x) / Σ_j π_j p_j(x)

so with the Bayes router the ensemble of per-cluster experts is exactly the global model.

On the semantic link (channel-conditioned experts, :class:`~semcom.models.experts.
ChannelExperts`), the experts are codecs and the noisy input is the channel's output:

- ``partition="state"``: the clusters are k-means clusters of the frames' channel-state
  features (SNR, realised SNR, channel class); the experts are full codecs (encoder and
  decoder), since both ends know the state; the router reads the state.
- ``partition="content"``: the clusters are k-means clusters of the source images (average
  pooled to at most 8x8 per channel; the paper clusters image embeddings); the encoder is
  shared and the experts are decoder towers (the denoisers of the paper); the router reads
  what the receiver has, the received features ``z̃`` and the state: ``r(k | z̃, s)`` plays
  ``r(k | x_t, t)``.

Training uses the one loop: while training, the router returns the one-hot cluster of each
frame (the partition's mask), so frame ``b``'s loss reaches only expert ``k(b)``: expert ``k``
is trained on ``S_k`` alone. The router's classifier is fitted at the same time by
cross-entropy on the cluster labels (inputs detached, so it does not move the codec), added to
the step's loss by the method's hook (``router_weight`` × CE). The partition is fitted by
k-means (``kmeans_iters`` Lloyd iterations from a k-means++ start seeded by the build seed) on
the first training batch, before that batch's forward, and then stays fixed (buffers of the
router, saved with the weights).

Content warm-up: the content partition's encoder is learned (the paper's forward noising process
is fixed), and trained through the masked decoders alone it collapses: since the cluster of a
frame is a function of its image, each decoder quickly fits its cluster's mean image without
reading ``z̃``, the encoder's gradient stays tiny, Adam's normalised steps then drive the
pre-tanh features to saturation (``|f|`` ~ 100, ``tanh' ≈ 0``) and the codec is stuck at the
k-means codebook's error (cluster-mean images). So the first ``warmup_steps`` training steps of
the content partition send every frame to every decoder with weight ``1/K`` (a shared codec that
learns to use ``z̃``); the partition mask applies from then on (the step count is a buffer of the
router, saved with the weights, so a resumed run continues it). At evaluation the model is the
ensemble ``Σ_k r(k|·) expert_k`` or its top-``k`` sparsification: by default the ensemble of
decoders for the content partition and one expert per frame (``top_k=1``) for the state
partition, whose experts are whole codecs (mixing the latents of independently trained
encoders gives a latent no decoder was trained on). A frame without a channel state is not
routed (uniform weights, every expert sees it), so the state partition needs a channel-state
training channel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from channels.errors import check_choice, check_int, check_real
from semcom.channel_state import STATE_FEATURES, ChannelState
from semcom.models.base import SemanticModel
from semcom.models.experts import ChannelExperts, ExpertRouter
from semcom.routing.base import ROUTING, RoutingMethod
from semcom.routing.routers import kmeans, nearest
from semcom.training.base import TrainingHook

PARTITIONS = ("state", "content")
"""What DDM's k-means partitions: the channel state or the source images."""


def content_features(images: torch.Tensor) -> torch.Tensor:
    """Images ``[B, C, H, W]`` average-pooled to at most 8x8 per channel, flattened ``[B, D]``."""
    size = (min(8, images.shape[-2]), min(8, images.shape[-1]))
    return F.adaptive_avg_pool2d(images.float(), size).flatten(1)


class PartitionRouter(ExpertRouter):
    """DDM's router: a fixed k-means partition (training labels) and a cluster classifier.

    Args:
        experts: ``K``.
        partition: ``"state"`` or ``"content"`` (module docstring).
        received: ``N·L`` received scalars the classifier reads (content partition) or 0.
        hidden: classifier width.
        kmeans_iters: Lloyd iterations of the partition.
        seed: seed of the k-means++ start.
        warmup_steps: content partition: training steps with dense weights ``1/K`` before the
            partition mask (module docstring); ignored by the state partition.
    """

    def __init__(
        self,
        experts: int,
        partition: str,
        received: int,
        hidden: int = 32,
        kmeans_iters: int = 20,
        seed: int = 0,
        warmup_steps: int = 0,
    ) -> None:
        super().__init__(experts)
        self.partition = partition
        self.uses_received = partition == "content"
        self.uses_state = partition == "state"
        self.kmeans_iters = kmeans_iters
        self.seed = seed
        inputs = STATE_FEATURES + (received if self.uses_received else 0)
        self.classifier = nn.Sequential(
            nn.Linear(inputs, hidden), nn.PReLU(), nn.Linear(hidden, experts)
        )
        self.register_buffer("centroids", torch.zeros(0))
        self.warmup_steps = warmup_steps if self.uses_received else 0
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))
        self.last_loss: torch.Tensor | None = None

    @property
    def fitted(self) -> bool:
        """Whether the partition's centroids exist."""
        return self.centroids.numel() > 0

    def fit_partition(self, points: torch.Tensor) -> torch.Tensor:
        """Fit the k-means partition on points ``[M, D]``; returns their labels ``[M]``."""
        centroids, labels = kmeans(points, self.experts, self.kmeans_iters, self.seed)
        self.centroids = centroids.to(self.classifier[0].weight.device)
        return labels

    def labels(self, points: torch.Tensor) -> torch.Tensor:
        """Cluster ``[B]`` of each point (fitting the partition on them the first time)."""
        if not self.fitted:
            return self.fit_partition(points).to(points.device)
        return nearest(points, self.centroids)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        saved = state_dict.get(prefix + "centroids")
        if saved is not None:  # a fitted partition: take its shape before the copy
            self.centroids = torch.empty_like(saved, device=self.centroids.device)
        if prefix + "steps" not in state_dict:  # weights saved before the step count existed
            state_dict[prefix + "steps"] = torch.tensor(self.warmup_steps, dtype=torch.int64)
        super()._load_from_state_dict(state_dict, prefix, *args)

    def logits(self, features: torch.Tensor | None, received: torch.Tensor | None) -> torch.Tensor:
        """Classifier logits ``[B, K]`` of ``r(k | state, received)`` (inputs detached)."""
        parts = []
        if features is None:
            batch = received.shape[0]
            device = received.device
            parts.append(torch.zeros(batch, STATE_FEATURES, device=device))
        else:
            parts.append(features.detach())
        if self.uses_received:
            parts.append(received.detach().flatten(1))
        return self.classifier(torch.cat(parts, dim=1))

    def forward(
        self,
        features: torch.Tensor | None,
        received: torch.Tensor | None,
        source: torch.Tensor | None,
    ) -> torch.Tensor:
        logits = self.logits(features, received)
        points = features if self.partition == "state" else source
        if self.training and points is not None:
            points = points if self.partition == "state" else content_features(points)
            labels = self.labels(points)
            self.last_loss = F.cross_entropy(logits, labels)
            if torch.is_grad_enabled():  # a training step (not a no-grad probe of the loss)
                self.steps += 1
            if int(self.steps) <= self.warmup_steps:  # content warm-up: a shared codec
                return torch.full_like(logits, 1.0 / self.experts)
            return F.one_hot(labels, self.experts).to(logits.dtype)
        return torch.softmax(logits, dim=-1)


class DDMHook(TrainingHook):
    """Adds ``weight`` × the router's cross-entropy of the step (computed in the forward)."""

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def extra_loss(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        z: torch.Tensor,
        state: ChannelState | None = None,
    ) -> torch.Tensor | None:
        router = getattr(model, "router", None)
        loss = getattr(router, "last_loss", None)
        if loss is None:
            return None
        router.last_loss = None
        return self.weight * loss


@ROUTING.register(
    "ddm",
    description="Decentralized Diffusion Models: experts trained on k-means data partitions, "
    "combined by a cluster classifier (channel-state or content partitions)",
    paper="arXiv:2501.05450",
)
class DDM(RoutingMethod):
    """Decentralized experts on a k-means partition of the channel state or of the images.

    Args:
        experts: ``K`` clusters and experts, 2..16.
        partition: ``"state"`` (channel-state features; full-codec experts) or ``"content"``
            (source images; shared encoder, decoder experts, router on the received features).
        router_hidden: width of the router's classifier, 1..1024.
        router_weight: weight of the router's cross-entropy in the step's loss, ``[0, 100]``.
        kmeans_iters: Lloyd iterations of the partition, 0..1000.
        warmup_steps: content partition: first training steps in which every decoder sees
            every frame (weights ``1/K``) before the partition mask, 0..1000000 (module
            docstring: without it the shared encoder saturates and the codec stays at the
            k-means codebook's error); the state partition has none.
        top_k: experts kept per frame at evaluation; ``None``: one (its encoder and decoder)
            for the state partition, whose experts are whole codecs (a mixture of independently
            trained encoders is no latent any decoder was trained on), and the full ensemble of
            decoders for the content partition (the paper's ensemble).

    Raises:
        ConfigError: an option outside its range.
    """

    def __init__(
        self,
        experts: int = 4,
        partition: str = "state",
        router_hidden: int = 32,
        router_weight: float = 1.0,
        kmeans_iters: int = 20,
        warmup_steps: int = 100,
        top_k: int | None = None,
    ) -> None:
        self.experts = check_int("experts", experts, 2, 16)
        self.partition = check_choice("partition", partition, PARTITIONS)
        self.router_hidden = check_int("router_hidden", router_hidden, 1, 1024)
        self.router_weight = check_real("router_weight", router_weight, 0.0, 100.0)
        self.kmeans_iters = check_int("kmeans_iters", kmeans_iters, 0, 1000)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0, 1_000_000)
        self.top_k = None if top_k is None else check_int("top_k", top_k, 1, self.experts)

    def deployed_top_k(self) -> int | None:
        """Experts kept per frame at evaluation (``top_k``, or its partition's default)."""
        if self.top_k is not None:
            return self.top_k
        return 1 if self.partition == "state" else None

    def build(
        self, model: str, n_features: int, model_options: dict[str, Any], seed: int = 0
    ) -> ChannelExperts:
        def router(first: SemanticModel) -> PartitionRouter:
            received = first.n_features * first.scalars_per_feature
            return PartitionRouter(
                self.experts,
                self.partition,
                received,
                self.router_hidden,
                self.kmeans_iters,
                seed,
                self.warmup_steps,
            )

        return ChannelExperts(
            model,
            n_features,
            experts=self.experts,
            router=router,
            shared_encoder=self.partition == "content",
            top_k=self.deployed_top_k(),
            **model_options,
        )

    def hook(self) -> DDMHook:
        return DDMHook(self.router_weight)

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """The deployed ensemble: ``model`` in evaluation mode (router posterior weights)."""
        return model.eval()
