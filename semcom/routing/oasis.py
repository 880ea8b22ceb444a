"""OASIS attention-specialisation routing: heads that already attend locally become window heads.

For a ViT codec with a ``g_h x g_w`` token grid (``T = g_h g_w`` tokens, token ``i`` at grid cell
``(r_i, c_i)``), the local support of query ``i`` is the square window of radius ``ρ``

    W_i = { j : |r_i - r_j| ≤ ρ and |c_i - c_j| ≤ ρ }          (|W_i| ≤ (2ρ+1)², clipped at edges)

For a head with attention ``P = A[b, h, i, :]`` and its restriction to the window, renormalised,
``Q_j = P_j 1[j ∈ W_i] / m`` with ``m = Σ_{j ∈ W_i} P_j`` (the mass the head keeps inside), the
head's locality score is the KL divergence between the two, averaged over the training images
and queries:

    D_h = mean_{b, i} KL(Q || P) = mean_{b, i} (-log m_{b,h,i})          (nats, ≥ 0)

``D_h = 0`` exactly when the head never attends outside its window. (The other direction,
``KL(P || Q)``, is infinite for every softmax head, since ``Q`` is zero where ``P`` is not; the
finite direction ranks heads by the same leaked mass.) Heads with small ``D_h`` are assigned to
the local-window group, the others stay global: ``D_h ≤ threshold``, or the ``local_fraction``
of all heads in scope with the smallest ``D_h`` (ties by position). ``apply`` installs, per local
head, the key mask ``1[j ∈ W_i]`` (:meth:`semcom.models.attention.HeadAttention.set_key_mask`):
that head's softmax is then restricted to the window and renormalised, and the heads' outputs
are concatenated as before (``W_o`` unchanged). A head with ``D_h = 0`` keeps its output exactly.

Compute: a window head needs ``2 d_h Σ_i |W_i|`` multiply-accumulates for its scores and
weighted sum instead of ``2 d_h T²`` (:func:`attention_macs`; the masked dense kernel used here
computes the full matrix, so the saving is that of a windowed kernel).

Semantic link: the attachment is the ViT codec's attention, on the transmitter (``encoder``
blocks), the receiver (``decoder``) or both; the token grid is the image's patch grid. The
paper's video groups (global, intra-frame, window) reduce to two for single images (the frame
is the whole image: intra-frame = global). The paper then trains the routed model with a
progressive degradation schedule; here ``apply`` deploys the trained codec with the routing as
is (no retraining), and ``finalize`` measures ``D_h`` on clean training images.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from channels.errors import ConfigError, check_choice, check_int, check_real, fail
from semcom.channel_state import ChannelState
from semcom.models.attention import HeadAttention, attention_layers, recording
from semcom.routing.base import ROUTING, RoutingMethod

BLOCKS = ("encoder", "decoder", "both")


def window_support(grid: tuple[int, int], radius: int) -> torch.Tensor:
    """Local support ``[T, T]`` (bool): ``S[i, j] = |r_i - r_j| ≤ ρ and |c_i - c_j| ≤ ρ``.

    Tokens are numbered row-major on the ``grid = (g_h, g_w)`` patch grid.

    Examples:
        >>> window_support((2, 3), 1).sum(-1).tolist()
        [4, 6, 4, 4, 6, 4]
    """
    gh, gw = grid
    r = torch.arange(gh).repeat_interleave(gw)
    c = torch.arange(gw).repeat(gh)
    return ((r[:, None] - r[None, :]).abs() <= radius) & ((c[:, None] - c[None, :]).abs() <= radius)


def locality_kl(weights: torch.Tensor, support: torch.Tensor) -> torch.Tensor:
    """``KL(Q || P) = -log m`` per image, head and query: ``[B, h, T, T]`` -> ``[B, h, T]``.

    Args:
        weights: attention ``P`` (rows sum to 1).
        support: allowed keys, ``[T, T]`` or ``[h, T, T]`` bool.

    Examples:
        >>> p = torch.tensor([[[[0.5, 0.25, 0.25]]]])
        >>> s = torch.tensor([[True, True, False]])
        >>> round(float(locality_kl(p, s)), 6)  # -log 0.75
        0.287682
    """
    inside = (weights.double() * support.to(weights.device)).sum(-1)
    return (-torch.log(inside.clamp_min(1e-300))).clamp_min(0.0)  # m may round above 1


def assign_local(
    kl: torch.Tensor, threshold: float | None = None, local_fraction: float | None = None
) -> torch.Tensor:
    """Which heads become local (bool ``[H]``): ``kl ≤ threshold``, or the
    ``round(local_fraction · H)`` smallest (ties: the earlier head first).

    Examples:
        >>> assign_local(torch.tensor([0.3, 0.0, 2.0]), threshold=0.5).tolist()
        [True, True, False]
        >>> assign_local(torch.tensor([0.3, 0.0, 2.0]), local_fraction=1 / 3).tolist()
        [False, True, False]
    """
    if (threshold is None) == (local_fraction is None):
        raise ValueError("give exactly one of threshold and local_fraction")
    if threshold is not None:
        return kl <= threshold
    k = int(round(float(local_fraction) * len(kl)))  # type: ignore[arg-type]
    order = torch.sort(kl, stable=True).indices
    local = torch.zeros(len(kl), dtype=torch.bool)
    local[order[:k]] = True
    return local


def attention_macs(model: torch.nn.Module) -> int:
    """Multiply-accumulates of the scores and weighted sums of every head of ``model`` for one
    image: ``Σ_heads 2 d_h · (allowed query-key pairs)`` (``T²`` for an unmasked head)."""
    total = 0
    for m in attention_layers(model):
        t = int(getattr(model, "n_features", 0))
        if m.key_mask is not None:
            total += 2 * m.head_dim * int(m.key_mask.sum())
        else:
            total += 2 * m.head_dim * m.heads * t * t
    return total


def scoped_layers(model: torch.nn.Module, blocks: str) -> list[HeadAttention]:
    """The attention modules of the ViT ``blocks`` (``encoder``, ``decoder`` or ``both``)."""
    enc = [b.attn for b in getattr(model, "enc_blocks", [])]
    dec = [b.attn for b in getattr(model, "dec_blocks", [])]
    if not enc and not dec:
        name = getattr(model, "name", type(model).__name__)
        raise fail("model", name, "a vit codec (attention blocks)")
    return {"encoder": enc, "decoder": dec, "both": enc + dec}[blocks]


@ROUTING.register(
    "oasis",
    description="Attention-specialisation routing: heads whose attention stays in a local window "
    "(small KL to its window restriction) become window heads, the others stay global",
    paper="arXiv:2509.23980",
)
class OASIS(RoutingMethod):
    """Routes every head of the ViT codec to a local window or to global attention.

    Args:
        radius: window radius ``ρ`` in grid cells (``0``: a token attends only to itself).
        local_fraction: fraction in ``[0, 1]`` of the heads in scope made local (the smallest
            ``D_h``); ``None`` when ``threshold`` is given.
        threshold: ``D_h`` (nats) at or below which a head is made local (``None``: use
            ``local_fraction``).
        blocks: ``"encoder"``, ``"decoder"`` or ``"both"``: the attention blocks routed.
        max_images: training images used by ``finalize`` (the first ones).

    Raises:
        ConfigError: an option out of range, or both / neither of threshold and local_fraction.
    """

    models = ("vit",)

    def __init__(
        self,
        radius: int = 1,
        local_fraction: float | None = 0.5,
        threshold: float | None = None,
        blocks: str = "both",
        max_images: int = 256,
    ) -> None:
        self.radius = check_int("radius", radius, 0, 4096)
        if threshold is not None:
            self.threshold: float | None = check_real(
                "threshold", threshold, 0.0, allow_inf=True, allowed="a number >= 0 (nats)"
            )
            if local_fraction is not None:
                raise fail("local_fraction", local_fraction, "null when threshold is given")
        else:
            self.threshold = None
            if local_fraction is None:
                raise fail("local_fraction", None, "a number in [0, 1] (or give threshold)")
        self.local_fraction = (
            None if local_fraction is None else check_real("local_fraction", local_fraction, 0, 1)
        )
        self.blocks = check_choice("blocks", blocks, BLOCKS)
        self.max_images = check_int("max_images", max_images, 1)
        self.kl: list[torch.Tensor] | None = None
        self.local: list[torch.Tensor] | None = None

    def finalize(
        self, model: torch.nn.Module, images: torch.Tensor, states: ChannelState | None = None
    ) -> None:
        """Measure ``D_h`` of every head in scope on ``images`` ``[M, C, H, W]`` (clean forward,
        no channel: ``states`` is not used) and assign the groups."""
        layers = scoped_layers(model, self.blocks)
        support = window_support(tuple(model.grid), self.radius)
        device = next(model.parameters()).device
        x = torch.as_tensor(images)[: self.max_images]
        if x.ndim != 4 or len(x) == 0:
            raise fail("images", tuple(x.shape), "a non-empty [M, C, H, W] tensor")
        sums = [torch.zeros(m.heads, dtype=torch.float64) for m in layers]
        count = 0
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), recording(model):
                for start in range(0, len(x), 64):
                    xb = x[start : start + 64].to(device)
                    model.decode(model.encode(xb))
                    for s, m in zip(sums, layers, strict=True):
                        assert m.last_weights is not None
                        s += locality_kl(m.last_weights, support).sum(dim=(0, 2)).cpu()
                    count += len(xb) * support.shape[0]
        finally:
            model.train(was_training)
        self.kl = [s / count for s in sums]
        flat = assign_local(torch.cat(self.kl), self.threshold, self.local_fraction)
        self.local = list(flat.split([len(k) for k in self.kl]))

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``model`` whose local heads attend only inside their windows."""
        if self.local is None:
            raise ConfigError("oasis: apply needs finalize (or a loaded state) first")
        deployed = copy.deepcopy(model)
        layers = scoped_layers(deployed, self.blocks)
        if [len(v) for v in self.local] != [m.heads for m in layers]:
            raise fail(
                "model",
                [m.heads for m in layers],
                f"heads per routed layer {[len(v) for v in self.local]} (the finalized model's)",
            )
        support = window_support(tuple(deployed.grid), self.radius)
        for m, local in zip(layers, self.local, strict=True):
            if bool(local.any()):
                full = torch.ones_like(support)
                m.set_key_mask(torch.stack([support if bool(v) else full for v in local]))
        return deployed

    def savings(self, model: torch.nn.Module) -> dict[str, Any]:
        """Attention multiply-accumulates per image of ``model`` and of ``apply(model)``."""
        full, routed = attention_macs(model), attention_macs(self.apply(model))
        return {"macs": full, "routed_macs": routed, "saved_fraction": 1.0 - routed / full}

    def state_dict(self) -> dict[str, Any]:
        if self.local is None or self.kl is None:
            return {}
        return {"kl": [k.clone() for k in self.kl], "local": [v.clone() for v in self.local]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            self.kl, self.local = None, None
            return
        self.kl = [torch.as_tensor(k, dtype=torch.float64) for k in state["kl"]]
        self.local = [torch.as_tensor(v, dtype=torch.bool) for v in state["local"]]
