r"""Informed Routing: execute an MLP block or use its Lightweight Feature Forecaster, per token.

For a transformer block's MLP ``f`` with input ``u = norm2(t)`` ``[B, T, d]`` (a ViT codec's
encoder and/or decoder blocks), the **Lightweight Feature Forecaster** (LFF) is a 2-layer
linear network

    f̂(u) = W₂ (W₁ u + b₁) + b₂,   W₁ ∈ R^{h×d}, W₂ ∈ R^{d×h},

fitted by MSE to ``f(u)`` on calibration tokens in closed form: the optimal rank-``h`` affine
map is reduced-rank regression (least squares ``A`` on centred data ``u - ū → y - ȳ``, then the
fitted values projected onto their top-``h`` right singular vectors ``V_h``: ``W₁ = (A V_h)ᵀ``,
``b₁ = -W₁ ū``, ``W₂ = V_h``, ``b₂ = ȳ``).

**Router.** Per token it scores the two quantities the paper names: *importance*
``i = ‖f̂(u)‖₂`` (the forecast size of the block's update to the residual stream) and
*recoverability* ``r = 1 - ê/(i² + ê)`` in ``[0, 1]``, where ``ê(u) = max(0, [u, 1] g)`` is a
linear predictor of the forecast's squared error ``‖f(u) - f̂(u)‖²`` (least squares on the
calibration tokens). The execute score is

    s = i^α · (1 - r)^β        (α = 2, β = 1: s ≈ ê, the predicted cost of approximating),

and in every sequence the ``k = ⌈capacity · T⌉`` tokens of largest ``s`` run ``f``; the others
take ``f̂(u)`` (``mode="approximate"``) or nothing (``mode="skip"``, the execute-or-skip
baseline). Capacity 1 runs ``f`` everywhere: the original model exactly.

The paper routes LLM tokens and then trains the router and a LoRA; here the router is fitted
in closed form (no gradient stage) and the "tokens" are the ViT codec's patch tokens: a
compute-adaptive semantic encoder/decoder where low-score tokens get the cheap forecast.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn

from channels.errors import ConfigError, check_choice, check_int, check_real
from semcom.channel_state import ChannelState
from semcom.routing.base import ROUTING, RoutingMethod

BLOCKS = ("encoder", "decoder", "all")
MODES = ("approximate", "skip")


class LFF(nn.Module):
    """``f̂(u) = W₂(W₁u + b₁) + b₂`` (``u``: ``[..., d]``; hidden width ``h``)."""

    def __init__(self, d: int, h: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.fc2 = nn.Linear(h, d)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.fc1(u))


def _design(u: torch.Tensor) -> torch.Tensor:
    """``[u, 1]`` in float64 ``[M, d+1]``."""
    u = u.reshape(-1, u.shape[-1]).double()
    return torch.cat([u, torch.ones(len(u), 1, dtype=u.dtype)], 1)


def fit_lff(u: torch.Tensor, y: torch.Tensor, h: int, ridge: float = 1e-6) -> LFF:
    """The rank-``h`` least-squares LFF for targets ``y = f(u)`` (``[M, d]`` each, any dtype).

    Examples:
        >>> g = torch.Generator().manual_seed(0)
        >>> u = torch.randn(200, 3, generator=g)
        >>> a = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        >>> lff = fit_lff(u, u @ a.T + 1.0, h=1)  # a rank-1 map plus a bias
        >>> bool(torch.allclose(lff(u), u @ a.T + 1.0, atol=1e-4))
        True
    """
    uu = u.reshape(-1, u.shape[-1]).double()
    yy = y.reshape(-1, y.shape[-1]).double()
    u_mean, y_mean = uu.mean(0), yy.mean(0)
    uc, yc = uu - u_mean, yy - y_mean
    gram = uc.T @ uc + ridge * torch.eye(uc.shape[1], dtype=uc.dtype)
    a = torch.linalg.solve(gram, uc.T @ yc)  # [d, d]: centred least squares
    _, _, vh = torch.linalg.svd(uc @ a, full_matrices=False)
    v = vh[:h].T  # [d, h]: top-h directions of the fitted values
    w1 = (a @ v).T  # [h, d]
    lff = LFF(u.shape[-1], h).to(u.dtype)
    with torch.no_grad():
        lff.fc1.weight.copy_(w1)
        lff.fc1.bias.copy_(-(w1 @ u_mean))
        lff.fc2.weight.copy_(v)
        lff.fc2.bias.copy_(y_mean)
    return lff


class ExecOrApprox(nn.Module):
    """Wraps an MLP block: top-``k`` tokens per sequence execute it, the rest are forecast.

    Args:
        mlp: the block ``f`` (``[B, T, d] -> [B, T, d]``).
        lff: its forecaster.
        err: error-predictor weights ``g`` float ``[d+1]`` (``ê = max(0, [u,1] g)``).
        capacity: executed fraction of tokens in ``[0, 1]``.
        alpha, beta: exponents of importance and unrecoverability in the score.
        mode: ``"approximate"`` or ``"skip"``.

    Attributes:
        executed: tokens executed so far; ``seen``: tokens routed so far.
    """

    def __init__(
        self,
        mlp: nn.Module,
        lff: LFF,
        err: torch.Tensor,
        capacity: float,
        alpha: float,
        beta: float,
        mode: str,
    ) -> None:
        super().__init__()
        self.mlp, self.lff = mlp, lff
        self.register_buffer("err", err.float())
        self.capacity, self.alpha, self.beta, self.mode = capacity, alpha, beta, mode
        self.executed, self.seen = 0, 0

    def scores(self, u: torch.Tensor, forecast: torch.Tensor) -> torch.Tensor:
        """Execute scores ``s = i^α (1-r)^β`` ``[B, T]``."""
        imp2 = forecast.pow(2).sum(-1)
        e_hat = (u @ self.err[:-1] + self.err[-1]).clamp(min=0.0)
        unrec = e_hat / (imp2 + e_hat + 1e-12)
        return imp2.pow(self.alpha / 2) * unrec.pow(self.beta)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        b, t, _ = u.shape
        k = min(t, math.ceil(self.capacity * t - 1e-9))
        self.seen += b * t
        self.executed += b * k
        if k == t:
            return self.mlp(u)
        forecast = self.lff(u)
        out = forecast if self.mode == "approximate" else torch.zeros_like(forecast)
        if k == 0:
            return out
        top = self.scores(u, forecast).topk(k, dim=1).indices  # [B, k]
        rows = torch.arange(b, device=u.device)[:, None].expand(b, k)
        executed = self.mlp(u[rows, top])  # only the chosen tokens run f
        out = out.clone()
        out[rows, top] = executed
        return out


def vit_blocks(model: nn.Module, which: str) -> list[tuple[str, nn.Module]]:
    """The transformer blocks of a ViT codec: ``("enc_blocks.i" | "dec_blocks.i", block)``."""
    if not hasattr(model, "enc_blocks") or not hasattr(model, "dec_blocks"):
        raise ConfigError(
            f"model: {type(model).__name__} is invalid; allowed: a vit codec (informed-routing "
            "wraps transformer MLP blocks)"
        )
    out = []
    if which in ("encoder", "all"):
        out += [(f"enc_blocks.{i}", b) for i, b in enumerate(model.enc_blocks)]
    if which in ("decoder", "all"):
        out += [(f"dec_blocks.{i}", b) for i, b in enumerate(model.dec_blocks)]
    return out


@ROUTING.register(
    "informed-routing",
    description="Per-token execute-or-approximate of ViT MLP blocks with a lightweight feature "
    "forecaster, scored by importance x recoverability under a capacity",
    paper="arXiv:2510.13831",
)
class InformedRouting(RoutingMethod):
    """Informed Routing on a ViT codec's MLP blocks (module docstring).

    Args:
        capacity: executed fraction of tokens per block in ``[0, 1]``.
        hidden: LFF hidden width ``h >= 1`` (capped at the model width).
        blocks: ``"encoder"``, ``"decoder"`` or ``"all"``.
        mode: ``"approximate"`` (the forecast) or ``"skip"`` (zero: the execute-or-skip baseline).
        alpha: importance exponent ``>= 0``.
        beta: unrecoverability exponent ``>= 0``.
        calibration: at most this many calibration images.

    Raises:
        ConfigError: an option outside its range (the message names it).
    """

    models = ("vit",)

    def __init__(
        self,
        capacity: float = 0.5,
        hidden: int = 8,
        blocks: str = "all",
        mode: str = "approximate",
        alpha: float = 2.0,
        beta: float = 1.0,
        calibration: int = 256,
    ) -> None:
        self.capacity = check_real("capacity", capacity, 0.0, 1.0)
        self.hidden = check_int("hidden", hidden, 1)
        self.blocks = check_choice("blocks", blocks, BLOCKS)
        self.mode = check_choice("mode", mode, MODES)
        self.alpha = check_real("alpha", alpha, 0.0, 10.0)
        self.beta = check_real("beta", beta, 0.0, 10.0)
        self.calibration = check_int("calibration", calibration, 1)
        self.fitted: dict[str, dict[str, torch.Tensor]] | None = None

    def finalize(
        self, model: torch.nn.Module, images: torch.Tensor, states: ChannelState | None
    ) -> None:
        blocks = vit_blocks(model, self.blocks)
        seen: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {n: [] for n, _ in blocks}
        handles = [
            b.mlp.register_forward_hook(
                lambda _m, args, out, n=n: seen[n].append((args[0].detach(), out.detach()))
            )
            for n, b in blocks
        ]
        was = model.training
        model.eval()
        try:
            with torch.no_grad():
                x = images[: self.calibration].to(next(model.parameters()).device)
                model.decode(model.encode(x))
        finally:
            for h in handles:
                h.remove()
            model.train(was)
        self.fitted = {}
        for name, block in blocks:
            u = torch.cat([a for a, _ in seen[name]]).reshape(-1, block.norm2.normalized_shape[0])
            y = torch.cat([o for _, o in seen[name]]).reshape(u.shape)
            h = min(self.hidden, u.shape[1])
            lff = fit_lff(u.cpu(), y.cpu(), h)
            with torch.no_grad():
                err = (y.cpu() - lff(u.cpu())).pow(2).sum(-1).double()
            x = _design(u.cpu())
            g = torch.linalg.solve(x.T @ x + 1e-6 * torch.eye(x.shape[1], dtype=x.dtype), x.T @ err)
            self.fitted[name] = {
                **{f"lff.{k}": v.detach().clone() for k, v in lff.state_dict().items()},
                "err": g.float(),
            }

    def apply(self, model: torch.nn.Module) -> torch.nn.Module:
        if self.fitted is None:
            raise ConfigError(
                "routing: informed-routing has no forecasters; allowed: call finalize (or "
                "load_state_dict) before apply"
            )
        deployed = copy.deepcopy(model)
        for name, block in vit_blocks(deployed, self.blocks):
            state = self.fitted[name]
            w1 = state["lff.fc1.weight"]
            lff = LFF(w1.shape[1], w1.shape[0])
            lff.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("lff.")})
            lff.to(w1.device)
            block.mlp = ExecOrApprox(
                block.mlp, lff, state["err"], self.capacity, self.alpha, self.beta, self.mode
            )
        return deployed

    def state_dict(self) -> dict[str, Any]:
        return {"fitted": self.fitted}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fitted = state["fitted"]


def executed_fraction(model: nn.Module) -> float:
    """Executed / routed tokens over every :class:`ExecOrApprox` in ``model`` (1.0 if none ran)."""
    wraps = [m for m in model.modules() if isinstance(m, ExecOrApprox)]
    seen = sum(m.seen for m in wraps)
    return 1.0 if seen == 0 else sum(m.executed for m in wraps) / seen
