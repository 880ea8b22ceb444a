"""Entropy-Guided Attention: a per-head attention-entropy regulariser with learnable targets.

For every attention layer ``l``, head ``h``, image ``b`` and query ``i`` of a codec with ``T``
tokens, the Shannon entropy (nats) of the query's attention row ``A[b, h, i, :]`` is

    E[l, b, h, i] = -Σ_j A[b, h, i, j] · log A[b, h, i, j]          (0 ≤ E ≤ log T)

Each head owns a learnable threshold weight ``θ[l, h]``; its target entropy is ``θ · log T``.
A deviation ``δ = E - θ log T`` inside the tolerance band ``|δ| ≤ γ log T`` is free; beyond it,
it costs ``δ²``:

    pen(l, b, h, i) = δ² · 1[|δ| > γ log T]
    P = mean_l mean_h mean_b Σ_i pen(l, b, h, i)
    loss = reconstruction loss + λ · P

(uniform attention has ``E = log T`` exactly; a one-hot row ``E = 0``). The gradient of ``P``
with respect to ``θ[l, h]`` is ``-2 log T · Σ δ`` over the out-of-band queries, so a descent step
moves the target toward the entropy the head actually shows, while the model's gradient moves
the entropies toward the targets: heads settle into their own entropy ranges instead of all
drifting to the same (the paper's "entropic overload", most heads near ``log T``).

Semantic link: the regulariser acts on every attention block of the ViT codec (encoder on the
transmitter, decoder on the receiver), keeping the encoder's attention spread where its
attention-based token importance is read. ``T`` is the number of tokens (= features ``N``).

Where ``θ`` lives: the trainer builds its optimiser from the model's parameters before the hook
sees the model, so the hook owns ``θ`` (float32 ``[Σ_l h_l]``, created at the first step from
the model's attention layers, initialised to ``theta_init``) and steps its own Adam
(``theta_lr``) on it in ``observe``, after the loop's ``backward`` filled ``θ.grad``.
``theta_lr = 0`` keeps the targets fixed. ``θ`` and its optimiser state are the hook's
``state_dict``.

Attention maps: the hook switches on attention recording
(:func:`semcom.models.attention.recording`'s flag) on the model's attention modules at its first
step; from then on it reads the maps of the loop's own forward (training channel included) and
only the first step recomputes them with a clean extra forward. The flag stays on in the trained
model (each attention module then keeps the maps of its last forward).

Ours vs the paper: the paper sums the penalty over the batch; we average over images so that
``λ`` does not scale with the batch size; the default ``λ = 1e-3`` (the paper's ``1e-5`` is for
an LLM's cross-entropy with ``T = 1024``) and ``θ``'s own Adam are our choices.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from channels.errors import ConfigError, check_real
from semcom.channel_state import ChannelState
from semcom.models.attention import HeadAttention, attention_layers
from semcom.training.base import TRAINING, TrainingHook


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of every attention row: ``[..., T]`` -> ``[...]``, ``-Σ_j A log A``.

    Zero weights (masked keys) contribute 0 with a finite gradient.

    Examples:
        >>> round(float(attention_entropy(torch.full((4,), 0.25))), 6) == round(math.log(4), 6)
        True
        >>> float(attention_entropy(torch.tensor([1.0, 0.0, 0.0])))
        0.0
    """
    return 0.0 - (weights * torch.log(weights.clamp_min(1e-30))).sum(-1)  # 0.0 - : no -0.0


def entropy_penalty(
    maps: list[torch.Tensor], theta: torch.Tensor, tolerance: float
) -> torch.Tensor:
    """``P = mean_l mean_h mean_b Σ_i δ² 1[|δ| > γ log T]`` with ``δ = E - θ log T``.

    Args:
        maps: attention of each layer ``l``, ``[B, h_l, T, T]`` (rows sum to 1).
        theta: threshold weights ``[Σ_l h_l]``, layer-major (layer 0's heads first).
        tolerance: ``γ ≥ 0``; the free band is ``|δ| ≤ γ log T``.

    Returns:
        A scalar tensor (differentiable in ``maps`` and ``theta``).

    Examples:
        >>> a = torch.full((1, 1, 4, 4), 0.25)  # uniform: E = log 4
        >>> float(entropy_penalty([a], torch.tensor([1.0]), 0.2))
        0.0
        >>> p = entropy_penalty([a], torch.tensor([0.5]), 0.2)  # δ = 0.5 log 4 per query
        >>> abs(float(p) - 4 * (0.5 * math.log(4)) ** 2) < 1e-5
        True
    """
    total = theta.new_zeros(())
    start = 0
    for a in maps:
        h, t = a.shape[1], a.shape[-1]
        log_t = math.log(t)
        target = theta[start : start + h].to(a.dtype)[None, :, None] * log_t
        start += h
        dev = attention_entropy(a.float()) - target  # [B, h, T]
        pen = torch.where(dev.abs() > tolerance * log_t, dev.square(), torch.zeros_like(dev))
        total = total + pen.sum(-1).mean()  # Σ over queries, mean over images and heads
    if start != len(theta):
        raise ValueError(f"theta has {len(theta)} entries for {start} heads")
    return total / max(len(maps), 1)


def _require_attention(model: torch.nn.Module) -> list[HeadAttention]:
    layers = attention_layers(model)
    if not layers:
        name = getattr(model, "name", type(model).__name__)
        raise ConfigError(
            f"model: {name!r} has no attention layers; expected an attention model (vit) "
            "for training method entropy-attention"
        )
    return layers


@TRAINING.register(
    "entropy-attention",
    description="Attention-entropy regulariser: per-head learnable targets theta*log T, "
    "squared deviations beyond a tolerance band",
    paper="arXiv:2501.03489",
)
class EntropyAttention(TrainingHook):
    """Adds ``λ · P`` (:func:`entropy_penalty`) over every attention layer of the model.

    Args:
        weight: ``λ`` in ``[0, 1e6]`` (0: the penalty is computed but changes nothing).
        tolerance: ``γ`` in ``[0, 1]``, the free band as a fraction of ``log T`` (paper: 0.2).
        theta_init: initial ``θ`` of every head, in ``[0, 1]``.
        theta_lr: Adam learning rate of ``θ`` in ``[0, 10]`` (0: fixed targets).

    Raises:
        ConfigError: an option outside its range; at the first step, a model without attention.
    """

    def __init__(
        self,
        weight: float = 1e-3,
        tolerance: float = 0.2,
        theta_init: float = 0.5,
        theta_lr: float = 1e-2,
    ) -> None:
        self.weight = check_real("weight", weight, 0.0, 1e6)
        self.tolerance = check_real("tolerance", tolerance, 0.0, 1.0)
        self.theta_init = check_real("theta_init", theta_init, 0.0, 1.0)
        self.theta_lr = check_real("theta_lr", theta_lr, 0.0, 10.0)
        self.theta: torch.Tensor | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._pending: dict[str, Any] | None = None
        self._layers: list[HeadAttention] | None = None

    def _materialise(self, layers: list[HeadAttention], device: torch.device) -> None:
        heads = sum(m.heads for m in layers)
        theta = torch.full((heads,), self.theta_init, dtype=torch.float32, device=device)
        pending, self._pending = self._pending, None
        if pending is not None and pending.get("theta") is not None:
            loaded = torch.as_tensor(pending["theta"], dtype=torch.float32)
            if loaded.shape != theta.shape:
                raise ConfigError(
                    f"hook_state.theta: {tuple(loaded.shape)}; expected ({heads},) "
                    "(one per attention head of the model)"
                )
            theta = loaded.to(device)
        self.theta = theta.requires_grad_(self.theta_lr > 0)
        if self.theta_lr > 0:
            self._optimizer = torch.optim.Adam([self.theta], lr=self.theta_lr)
            if pending is not None and pending.get("optimizer") is not None:
                self._optimizer.load_state_dict(pending["optimizer"])

    def _maps(self, model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """This step's attention maps: those the loop's forward recorded, else a fresh forward."""
        layers = self._layers
        stored = [m.last_weights for m in layers] if layers is not None else []
        fresh = bool(stored) and all(
            w is not None
            and w.shape[0] == len(x)
            and (w.requires_grad or not torch.is_grad_enabled())
            for w in stored
        )
        if fresh:
            return stored  # type: ignore[return-value]
        layers = _require_attention(model)
        for m in layers:
            m.keep_weights = True
        self._layers = layers
        model.decode(model.encode(x))
        return [m.last_weights for m in layers]  # type: ignore[misc]

    def extra_loss(
        self,
        model: torch.nn.Module,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        z: torch.Tensor,
        state: ChannelState | None = None,
    ) -> torch.Tensor:
        maps = self._maps(model, x)
        if self.theta is None:
            self._materialise(self._layers or [], maps[0].device)
        assert self.theta is not None
        for m in self._layers or []:
            m.last_weights = None  # the graph keeps what the penalty needs
        return self.weight * entropy_penalty(maps, self.theta, self.tolerance)

    def observe(
        self,
        epoch: int,
        indices: torch.Tensor,
        x: torch.Tensor,
        x_hat: torch.Tensor,
        per_sample_loss: torch.Tensor,
    ) -> None:
        for m in self._layers or []:
            m.last_weights = None  # nothing of this step stays on the model
        if self._optimizer is not None and self.theta is not None and self.theta.grad is not None:
            self._optimizer.step()
            self._optimizer.zero_grad(set_to_none=True)

    def state_dict(self) -> dict[str, Any]:
        if self.theta is None:
            return dict(self._pending or {})
        opt = None if self._optimizer is None else self._optimizer.state_dict()
        return {"theta": self.theta.detach().cpu().clone(), "optimizer": opt}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending = dict(state) if state else None
        self.theta, self._optimizer = None, None
