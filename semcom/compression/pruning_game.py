"""Pruning as a game: hidden units choose how much to participate; pruning is the set that
chooses zero at equilibrium (Shah and Khan, "Pruning as a Game: Equilibrium-Driven
Sparsification of Neural Networks", arXiv:2512.22106).

**Players and strategies.** Every hidden unit ``i`` (:mod:`semcom.compression.hidden_units`)
holds a participation ``s_i ∈ [0, 1]`` that multiplies its output as the next layer reads it
(``s = 1``: the trained codec; ``s_i = 0``: the unit is gone).

**Utility (stand-in).** The paper's exact utility terms are not available to us; we use the
generic form "contribution minus participation cost minus redundancy/competition":

    U_i(s) = −L̃(θ, s) − λ s_i − γ s_i · mean_{j ≠ i} s_j |cos(w_i, w_j)|,

where ``L̃ = L / L_0`` is the calibration reconstruction MSE relative to that of the unpruned
codec (so ``λ`` and ``γ`` are relative loss changes), ``w_i`` the incoming weights of unit ``i``,
and the competition runs between the units of one layer (the mean, not the sum, so that ``γ``
means the same in layers of different widths). It is a potential game: every ``∂U_i/∂s_i``
is the partial derivative of one function ``Φ(s) = −L̃ − λ Σ s_i − (γ/2) Σ_i s_i m_i(s)``.

**Dynamics.** Gradient play with projection, ``s_i ← clip(s_i + η ∂U_i/∂s_i, 0, 1)``, jointly
with Adam steps on the encoder weights ``θ`` on ``L`` (``finetune_lr = 0`` freezes them; the
decoder is never trained). After ``steps`` rounds the kept units' participation is folded into
the next layer's input columns, so the compressed codec computes the equilibrium network.

**Budget.** ``sparsity=None``: the equilibrium decides; units with ``s_i ≤ threshold`` are removed
(each layer keeps its most participating unit). With ``sparsity`` set, the participation cost is
a price: ``λ ← λ · exp(κ (target − n₀) / U)`` after each round, with ``n₀`` the units at
``s ≤ threshold``, so that about the target number of players drop out at equilibrium; exactly
``round(sparsity · U)`` units are then removed, lowest ``s`` first (ties: the most negative final
``∂U_i/∂s_i``, then the lower index). Kept units that the price pushed to ``s = 0`` stay in
the model with a zero input column in the next layer. ``details["silent_units"]`` counts them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from channels.errors import check_int
from semcom.compression.base import COMPRESSION, Compressor, encoder_parameters
from semcom.compression.budget import (
    calibration_images,
    check_real,
    check_sparsity,
    mean_loss,
    random_batch,
    reconstruction_loss,
    trainable_only,
)
from semcom.compression.hidden_units import (
    UnitGroup,
    gated,
    remove_units,
    scale_units,
    unit_groups,
    unit_target,
)


def redundancy(group: UnitGroup) -> torch.Tensor:
    """``C_ij = |cos(w_i, w_j)|`` of the incoming weights of ``group``'s units, zero diagonal.

    ``[size, size]`` float64; a unit with an all-zero row has zero redundancy with every unit.
    """
    w = group.producer.weight.detach().reshape(group.size, -1).to(torch.float64).cpu()
    norms = w.norm(dim=1, keepdim=True)
    u = torch.where(norms > 0, w / norms.clamp_min(1e-300), torch.zeros_like(w))
    c = (u @ u.T).abs()
    c.fill_diagonal_(0.0)
    return c


def utility_gradient(
    loss_grad: torch.Tensor, s: torch.Tensor, c: torch.Tensor, cost: float, competition: float
) -> torch.Tensor:
    """``∂U_i/∂s_i = −∂L̃/∂s_i − λ − γ · Σ_{j≠i} C_ij s_j / (n − 1)`` (float64 ``[n]``)."""
    n = s.numel()
    mean_rival = (c @ s) / max(n - 1, 1)
    return -loss_grad - cost - competition * mean_rival


@COMPRESSION.register(
    "pruning-game",
    description="Hidden units as players choosing participation in [0, 1]; projected gradient "
    "play to equilibrium, non-participants pruned (stand-in utility)",
    paper="arXiv:2512.22106",
)
class PruningGame(Compressor):
    """Equilibrium-driven pruning of the encoder's hidden units (module docstring).

    Args:
        sparsity: fraction of the hidden units to remove, in [0, 1), or ``None`` to let the
            equilibrium decide. Default 0.5.
        cost: participation cost ``λ`` (the starting price in budget mode), > 0. Default 0.01.
        competition: redundancy penalty ``γ`` >= 0. Default 0.01.
        steps: rounds of play (default 100).
        lr: step ``η`` of the participation updates (default 0.2; ``L̃`` is relative; a
            too large step makes the play cycle instead of settling).
        finetune_lr: Adam step of the encoder weights during play; 0 freezes them.
            Default 1e-4.
        price_rate: ``κ``, how fast the price follows the budget (default 2.0).
        threshold: participation at or below which a unit counts as out (default 1e-3).
        batch_size: images per round, drawn without replacement each round when the calibration
            set is larger (default 64).
        seed: seed of the image draws.

    Examples:
        >>> import torch
        >>> from semcom.models.build import build_model
        >>> _ = torch.manual_seed(0)
        >>> model = build_model("mlp", 4, hidden=[16, 8])
        >>> result = PruningGame(sparsity=0.5, steps=20).compress(model, torch.rand(16, 1, 8, 8))
        >>> result.details["removed_units"]
        12
    """

    name = "pruning-game"

    def __init__(
        self,
        sparsity: float | None = 0.5,
        cost: float = 0.01,
        competition: float = 0.01,
        steps: int = 100,
        lr: float = 0.2,
        finetune_lr: float = 1e-4,
        price_rate: float = 2.0,
        threshold: float = 1e-3,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        self.sparsity = check_sparsity(sparsity, optional=True)
        self.cost = check_real("cost", cost, 0.0, low_open=True)
        self.competition = check_real("competition", competition, 0.0)
        self.steps = check_int("steps", steps, 1, 100_000)
        self.lr = check_real("lr", lr, 0.0, low_open=True)
        self.finetune_lr = check_real("finetune_lr", finetune_lr, 0.0, 1.0)
        self.price_rate = check_real("price_rate", price_rate, 0.0, 100.0)
        self.threshold = check_real("threshold", threshold, 0.0, 0.5)
        self.batch_size = check_int("batch_size", batch_size, 1)
        self.seed = check_int("seed", seed, 0)

    def play(
        self, model: nn.Module, x: torch.Tensor, target: int | None = None
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], float]:
        """Run the game on ``model`` (its encoder weights move when ``finetune_lr > 0``).

        Returns ``(s, dU, price)``: per unit group the final participation and the final
        ``∂U_i/∂s_i`` (float64), and the final participation cost ``λ``.
        """
        groups = unit_groups(model)
        generator = torch.Generator().manual_seed(self.seed)
        rivals = [redundancy(g) for g in groups]
        s = [torch.ones(g.size, dtype=torch.float64) for g in groups]
        du = [torch.zeros(g.size, dtype=torch.float64) for g in groups]
        theta = [p for _, p in encoder_parameters(model)] if self.finetune_lr > 0 else []
        optimizer = torch.optim.Adam(theta, lr=self.finetune_lr) if theta else None
        total = sum(g.size for g in groups)
        base = max(mean_loss(model, x, self.batch_size), 1e-300)
        price = self.cost
        for _ in range(self.steps):
            xb = random_batch(x, self.batch_size, generator)
            gates = {
                g: si.to(device=x.device, dtype=x.dtype).requires_grad_(True)
                for g, si in zip(groups, s, strict=True)
            }
            with gated(gates):
                loss = reconstruction_loss(model, xb) / base
            grads = torch.autograd.grad(loss, [*gates.values(), *theta])
            for i, grad in enumerate(grads[: len(groups)]):
                gi = grad.detach().to(torch.float64).cpu()
                du[i] = utility_gradient(gi, s[i], rivals[i], price, self.competition)
                s[i] = torch.clamp(s[i] + self.lr * du[i], 0.0, 1.0)
            if optimizer is not None:
                for p, grad in zip(theta, grads[len(groups) :], strict=True):
                    p.grad = grad
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if target is not None:
                out = sum(int((si <= self.threshold).sum()) for si in s)
                price *= float(torch.exp(torch.tensor(self.price_rate * (target - out) / total)))
        return s, du, price

    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        x = calibration_images(model, images, "pruning-game")
        groups = unit_groups(model)
        total, target = unit_target(groups, self.sparsity)
        tuned = [p for _, p in encoder_parameters(model)] if self.finetune_lr > 0 else []
        with trainable_only(model.parameters(), tuned):
            s, du, price = self.play(model, x, target)
        keep = _choose(s, du, self.threshold, target)
        removed = 0
        for g, si, ki in zip(groups, s, keep, strict=True):
            removed += remove_units(g, ki)
            scale_units(g, torch.where(ki, si, torch.zeros_like(si)))
        silent = sum(int(((si <= 0.0) & ki).sum()) for si, ki in zip(s, keep, strict=True))
        details = {
            "unit": "hidden units",
            "units": total,
            "removed_units": removed,
            "silent_units": silent,
            "widths": {g.name: int(k.sum()) for g, k in zip(groups, keep, strict=True)},
            "sizes": {g.name: g.size for g in groups},
            "participation": {g.name: si.tolist() for g, si in zip(groups, s, strict=True)},
            "price": price,
            "loss_after": mean_loss(model, x, self.batch_size),
        }
        return details, {}


def _choose(
    s: list[torch.Tensor], du: list[torch.Tensor], threshold: float, target: int | None
) -> list[torch.Tensor]:
    """Keep masks: units out at ``s ≤ threshold`` (adaptive) or exactly ``target`` removed,
    lowest ``s`` first, then most negative ``dU``, then lower index; one unit kept per layer."""
    keep = [torch.ones(si.numel(), dtype=torch.bool) for si in s]
    if target is None:
        for si, ki in zip(s, keep, strict=True):
            ki &= si > threshold
            if not ki.any():
                ki[int(torch.argmax(si))] = True
        return keep
    # Each layer's best unit (highest s, then highest dU, then lowest index) is never a candidate.
    ranked = []
    for layer, (si, di) in enumerate(zip(s, du, strict=True)):
        best = max(range(si.numel()), key=lambda k, si=si, di=di: (si[k], di[k], -k))
        ranked += [(float(si[k]), float(di[k]), layer, k) for k in range(si.numel()) if k != best]
    for _, _, layer, k in sorted(ranked)[:target]:
        keep[layer][k] = False
    return keep
