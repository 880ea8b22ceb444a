"""SHRP: specialised head routing and pruning (heads as top-1-routed experts, pruned by usage).

Architecture (``build``): the ViT codec's attention in the chosen blocks becomes Expert
Attention (:mod:`semcom.models.expert_attention`): every head ``e`` is an expert, a linear router
scores the heads per token, the top-1 head's output, scaled by its gate ``σ(s_e*)``, goes through
an expander shared by the heads (``Linear(d_h, r d_h) → GELU → Linear(r d_h, d)``, replacing
``W_o``). Training is the ordinary loop: top-1 routing makes heads specialise.

Usage (``finalize``): on the training images, every routing decision (one per token, image and
layer) adds one to its winning head's count ``u[l, e]``; ``Σ_e u[l, e] = M · T`` for ``M``
images and ``T`` tokens. The share of head ``e`` is ``u[l, e] / Σ_e u[l, e]``.

Pruning (``apply``): in every routed layer, heads whose share is at most ``min_share`` are
removed (at least the most-used head stays); with ``keep = k`` only the ``k`` most used of the
remaining heads stay (ties: the earlier head). A removed head loses its ``W_qkv`` rows
(``3 d_h (d + 1)`` parameters) and its router row (``d + 1``); since the gate depends only on the
winner's own logit, a head that never won on the data can be removed without changing any
routed token's output. The same usage signal drives routing (training) and pruning
(deployment).

Semantic link: the attachment is the ViT codec's attention on the transmitter (``encoder``),
the receiver (``decoder``) or both; usage frequency is the head-importance signal used to
shrink either side. The router sees the token only (not the channel state: ``states`` is
unused). Ours vs the paper: the sigmoid gate (so that pruning unused heads is exact), the
expander's shape and the share rule are our choices where the paper's summary gives none; the
paper's language-model fine-tuning is replaced by training the codec from scratch.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from channels.errors import ConfigError, check_choice, check_int, check_real, fail
from semcom.channel_state import ChannelState
from semcom.models.expert_attention import ExpertAttention
from semcom.routing.base import ROUTING, RoutingMethod

BLOCKS = ("encoder", "decoder", "both")


def select_heads(usage: torch.Tensor, keep: int | None = None, min_share: float = 0.0) -> list[int]:
    """Heads kept for one layer (sorted indices) given its usage counts ``[h]``.

    Heads with share ``u_e / Σ u > min_share`` are candidates (the most-used head always is);
    with ``keep`` set, the ``keep`` most used candidates stay (ties: the earlier head).

    Examples:
        >>> select_heads(torch.tensor([5, 0, 3, 2]))
        [0, 2, 3]
        >>> select_heads(torch.tensor([5, 0, 3, 2]), keep=2)
        [0, 2]
        >>> select_heads(torch.tensor([5, 0, 3, 2]), min_share=0.25)
        [0, 2]
    """
    u = usage.to(torch.float64)
    share = u / u.sum().clamp_min(1.0)
    order = torch.sort(-u, stable=True).indices.tolist()
    chosen = [e for e in order if float(share[e]) > min_share] or order[:1]
    if keep is not None:
        chosen = chosen[:keep]
    return sorted(chosen)


def expert_layers(model: torch.nn.Module, blocks: str) -> list[ExpertAttention]:
    """The Expert Attention modules of the ViT ``blocks`` (ConfigError if there are none)."""
    enc = [b.attn for b in getattr(model, "enc_blocks", [])]
    dec = [b.attn for b in getattr(model, "dec_blocks", [])]
    layers = {"encoder": enc, "decoder": dec, "both": enc + dec}[blocks]
    if not layers or not all(isinstance(m, ExpertAttention) for m in layers):
        name = getattr(model, "name", type(model).__name__)
        raise fail(
            "model",
            name,
            f"a vit with expert attention in its {blocks} blocks (the model shrp's build returns)",
        )
    return layers  # type: ignore[return-value]


@ROUTING.register(
    "shrp",
    description="Heads as experts: a per-token top-1 router over attention heads with a shared "
    "expander; heads with low top-1 usage are pruned at deployment",
    paper="arXiv:2512.20635",
)
class SHRP(RoutingMethod):
    """Expert Attention in the ViT codec, usage counted on training images, unused heads pruned.

    Args:
        blocks: ``"encoder"``, ``"decoder"`` or ``"both"``: the blocks given Expert Attention.
        expander_ratio: hidden width of the shared expander in units of ``d_h`` (1 to 16).
        keep: heads kept per routed layer (``None``: every head above ``min_share``).
        min_share: a head whose usage share is at most this is pruned, in ``[0, 1)``.
        max_images: training images used by ``finalize`` (the first ones).

    Raises:
        ConfigError: an option out of range.
    """

    models = ("vit",)

    def __init__(
        self,
        blocks: str = "both",
        expander_ratio: int = 2,
        keep: int | None = None,
        min_share: float = 0.0,
        max_images: int = 256,
    ) -> None:
        self.blocks = check_choice("blocks", blocks, BLOCKS)
        self.expander_ratio = check_int("expander_ratio", expander_ratio, 1, 16)
        self.keep = None if keep is None else check_int("keep", keep, 1, 4096)
        self.min_share = check_real("min_share", min_share, 0.0, 1.0)
        if self.min_share >= 1.0:
            raise fail("min_share", min_share, "a number in [0, 1)")
        self.max_images = check_int("max_images", max_images, 1)
        self.usage: list[torch.Tensor] | None = None

    def build(
        self, model: str, n_features: int, model_options: dict[str, Any], seed: int = 0
    ) -> torch.nn.Module:
        """The ``vit`` with Expert Attention in ``blocks`` (weights from torch's global RNG)."""
        from semcom.models import build_model

        if model not in self.models:
            raise fail("model", model, "vit (routing method shrp)")
        vit = build_model(model, n_features, **model_options)
        chosen = {"encoder": ["enc"], "decoder": ["dec"], "both": ["enc", "dec"]}[self.blocks]
        for side in chosen:
            for block in getattr(vit, f"{side}_blocks"):
                old = block.attn
                block.attn = ExpertAttention(old.dim, old.heads, self.expander_ratio)
        return vit

    def finalize(
        self, model: torch.nn.Module, images: torch.Tensor, states: ChannelState | None = None
    ) -> None:
        """Count every head's top-1 wins on ``images`` ``[M, C, H, W]`` (clean forward)."""
        layers = expert_layers(model, self.blocks)
        x = torch.as_tensor(images)[: self.max_images]
        if x.ndim != 4 or len(x) == 0:
            raise fail("images", tuple(x.shape), "a non-empty [M, C, H, W] tensor")
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        for m in layers:
            m.usage.zero_()
            m.count_usage = True
        try:
            with torch.no_grad():
                for start in range(0, len(x), 64):
                    xb = x[start : start + 64].to(device)
                    model.decode(model.encode(xb))
        finally:
            for m in layers:
                m.count_usage = False
            model.train(was_training)
        self.usage = [m.usage.detach().cpu().clone() for m in layers]

    def kept_heads(self) -> list[list[int]]:
        """Heads kept in every routed layer (:func:`select_heads` of the counted usage)."""
        if self.usage is None:
            raise ConfigError("shrp: apply needs finalize (or a loaded state) first")
        return [select_heads(u, self.keep, self.min_share) for u in self.usage]

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``model`` without the pruned heads."""
        kept = self.kept_heads()
        deployed = copy.deepcopy(model)
        layers = expert_layers(deployed, self.blocks)
        assert self.usage is not None
        if [len(u) for u in self.usage] != [m.heads for m in layers]:
            raise fail(
                "model",
                [m.heads for m in layers],
                f"heads per routed layer {[len(u) for u in self.usage]} (the finalized model's)",
            )
        for m, heads in zip(layers, kept, strict=True):
            if len(heads) < m.heads:
                m.prune_heads(heads)
        return deployed

    def state_dict(self) -> dict[str, Any]:
        return {} if self.usage is None else {"usage": [u.clone() for u in self.usage]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.usage = (
            [torch.as_tensor(u, dtype=torch.int64) for u in state["usage"]] if state else None
        )
