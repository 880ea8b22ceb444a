"""SVDQuant: a low-rank branch absorbs the outliers, the residual is quantised to 4 bits
(Li et al., arXiv:2411.05007).

For every ``Linear``/``Conv2d`` of the encoder, weights ``W`` ``[out, cols]`` (im2col columns
for a conv), calibration inputs ``X`` (rows, :mod:`semcom.compression.calibration`):

1. **Smooth** (``alpha`` set): migrate input outliers into the weights,
   ``λ_j = max|X_j|^α / max|W_:,j|^(1-α)``, ``Ŵ = W diag(λ)``, ``X̂ = X diag(λ)⁻¹``, so that
   ``X̂ Ŵᵀ = X Wᵀ`` exactly (``λ_j = 1`` where a column or its inputs are all zero).
2. **Split**: ``Ŵ = L1 L2 + R`` with the rank-``r`` truncated SVD ``L1 = U_r Σ_r``,
   ``L2 = V_rᵀ`` (Eckart–Young: the best rank-``r`` approximation; ``||R||_2 = σ_{r+1}``). The
   branch is stored in float16 (``branch_bits=16``, the paper's 16-bit branch) and ``R`` is
   taken against the rounded branch.
3. **Quantise** the residual: ``Q(R)`` at ``bits`` with one float16 scale per ``group`` input
   columns of each row (round-to-nearest, :mod:`semcom.compression.quantise`).

The layer becomes :class:`LowRankBranch`: ``y = x̂ Q(R)ᵀ + (x̂ L2ᵀ) L1ᵀ + b`` with the division by
``λ`` folded into the residual and the branch's first factor. The branch is real extra
parameters (``r · (out + cols)`` per layer) and real extra FLOPs, so ``measure_encoder`` counts
both; ``bits`` reports the residual at ``bits`` plus its scales and ``λ`` (float16 each), the
branch at ``branch_bits``. ``rank=0`` keeps the layer as it is (plain group quantisation).

Only the weight half of the paper's W4A4 is carried over: the family compresses stored
weights, the encoder's activations stay float.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from channels.errors import check_int, fail
from semcom.compression.base import COMPRESSION, Compressor, compressible_layers
from semcom.compression.calibration import (
    calibration_images,
    capture,
    check_batch_size,
    check_layer,
    layer_rows,
)
from semcom.compression.quantise import (
    check_bits,
    round_to_nearest,
    set_weight_matrix,
    stored_bits,
    weight_matrix,
)


class LowRankBranch(nn.Module):
    """``residual(x) + up(down(x))``: a quantised layer plus its float low-rank branch.

    ``residual`` is the original ``Linear``/``Conv2d`` (bias kept); ``down`` maps the input to
    ``r`` channels (a bias-free layer of the original kind and geometry), ``up`` back to the
    outputs (bias-free ``Linear``, or a 1x1 ``Conv2d``).
    """

    def __init__(self, residual: nn.Module, down: nn.Module, up: nn.Module) -> None:
        super().__init__()
        self.residual = residual
        self.down = down
        self.up = up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.up(self.down(x))


def smoothing_factors(act_max: torch.Tensor, w: torch.Tensor, alpha: float) -> torch.Tensor:
    """``λ_j = act_max_j^α / max_i |W_ij|^(1-α)`` ``[cols]`` (1 where either side is zero),
    clamped to ``[1e-5, 1e5]``.

    Examples:
        >>> smoothing_factors(torch.tensor([4.0, 0.0]), torch.tensor([[1.0, 2.0]]), 0.5).tolist()
        [2.0, 1.0]
    """
    a = act_max.to(torch.float64)
    m = w.to(torch.float64).abs().amax(dim=0)
    ok = (a > 0) & (m > 0)
    lam = torch.where(ok, a.clamp_min(1e-300) ** alpha / m.clamp_min(1e-300) ** (1 - alpha), 1.0)
    return lam.clamp(1e-5, 1e5)


def low_rank_split(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(L1 [out, r], L2 [r, cols])`` of the rank-``r`` truncated SVD of ``w`` (``L1 = U_r Σ_r``).

    Examples:
        >>> l1, l2 = low_rank_split(torch.tensor([[3.0, 0.0], [0.0, 1.0]]), 1)
        >>> (l1 @ l2).abs().tolist()
        [[3.0, 0.0], [0.0, 0.0]]
    """
    u, s, vh = torch.linalg.svd(w, full_matrices=False)
    return u[:, :rank] * s[:rank], vh[:rank]


def _branch_layers(layer: nn.Module, rank: int) -> tuple[nn.Module, nn.Module]:
    """Bias-free ``down`` (input -> rank) and ``up`` (rank -> outputs) of ``layer``'s kind."""
    kw = {"device": layer.weight.device, "dtype": layer.weight.dtype}
    if isinstance(layer, nn.Conv2d):
        down = nn.Conv2d(
            layer.in_channels, rank, layer.kernel_size, stride=layer.stride,
            padding=layer.padding, dilation=layer.dilation, bias=False, **kw,
        )  # fmt: skip
        return down, nn.Conv2d(rank, layer.out_channels, 1, bias=False, **kw)
    return (
        nn.Linear(layer.in_features, rank, bias=False, **kw),
        nn.Linear(rank, layer.out_features, bias=False, **kw),
    )


@COMPRESSION.register(
    "svdquant",
    description="A float16 low-rank SVD branch absorbs outliers; the residual goes to 4 bits",
    paper="arXiv:2411.05007",
)
class SVDQuant(Compressor):
    """SVDQuant weight quantisation of the encoder (module docstring).

    Args:
        bits: code bits of the residual, 2..8 (the paper: 4).
        rank: rank ``r`` of each layer's branch (capped at ``min(out, cols)``); 0: no branch.
        alpha: smoothing migration strength in ``[0, 1]``, or ``None`` for no smoothing (then no
            calibration images are needed).
        group: input columns per residual scale (the paper's group size 64), or ``None`` for
            one scale per output channel.
        branch_bits: storage of the branch, 16 (float16, the paper) or 32.
        batch_size: calibration images per encoder pass.

    Raises:
        ConfigError: bad options; no images when ``alpha`` is set.
    """

    name = "svdquant"

    def __init__(
        self,
        bits: int = 4,
        rank: int = 8,
        alpha: float | None = 0.5,
        group: int | None = 64,
        branch_bits: int = 16,
        batch_size: int = 64,
    ) -> None:
        self.bits = check_bits("bits", bits)
        self.rank = check_int("rank", rank, 0, 2**20)
        if alpha is not None and (
            isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 <= alpha <= 1
        ):
            raise fail("alpha", alpha, "a number in [0, 1] or null (no smoothing)")
        self.alpha = None if alpha is None else float(alpha)
        self.group = None if group is None else check_int("group", group, 1, 2**20)
        if branch_bits not in (16, 32) or isinstance(branch_bits, bool):
            raise fail("branch_bits", branch_bits, "16 or 32")
        self.branch_bits = int(branch_bits)
        self.batch_size = check_batch_size(batch_size)

    def _act_max(self, model: nn.Module, layer: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """``max_m |X_mj|`` over the calibration rows of ``layer`` (current weights)."""
        peak = None
        for seen in capture(model, images, [layer], self.batch_size):
            rows = layer_rows(layer, seen[id(layer)][0]).abs().amax(dim=0)
            peak = rows if peak is None else torch.maximum(peak, rows)
        return peak

    @torch.no_grad()
    def _compress(
        self, model: nn.Module, images: torch.Tensor | None
    ) -> tuple[dict[str, Any], dict[str, float]]:
        if self.alpha is not None:
            images = calibration_images(model, images, "svdquant")
        layers = compressible_layers(model)
        for _, layer in layers:
            check_layer(layer)
        bits: dict[str, float] = {}
        per_layer: dict[str, dict[str, Any]] = {}
        branch_params = 0
        for name, layer in layers:
            w = weight_matrix(layer).to(torch.float64)
            out, cols = w.shape
            lam = torch.ones(cols, dtype=torch.float64, device=w.device)
            if self.alpha is not None:
                lam = smoothing_factors(self._act_max(model, layer, images), w, self.alpha)
            smoothed = w * lam
            rank = min(self.rank, out, cols)
            residual = smoothed
            if rank > 0:
                l1, l2 = low_rank_split(smoothed, rank)
                if self.branch_bits == 16:
                    l1, l2 = l1.half().double(), l2.half().double()
                residual = smoothed - l1 @ l2
            q, scales = round_to_nearest(residual, self.bits, "channel", self.group)
            set_weight_matrix(layer, q / lam)
            side = scales + (cols if self.alpha is not None else 0)  # float16 scales and λ
            prefix = name
            if rank > 0:
                down, up = _branch_layers(layer, rank)
                set_weight_matrix(down, l2 / lam)
                set_weight_matrix(up, l1)
                parent_name, _, child = name.rpartition(".")
                parent = model.get_submodule(parent_name) if parent_name else model
                setattr(parent, child, LowRankBranch(layer, down, up))
                prefix = f"{name}.residual"
                bits[f"{name}.down.weight"] = float(self.branch_bits)
                bits[f"{name}.up.weight"] = float(self.branch_bits)
                branch_params += rank * (out + cols)
            bits[f"{prefix}.weight"] = stored_bits(self.bits, w.numel(), side)
            per_layer[name] = {
                "rank": rank,
                "smoothing_range": [float(lam.min()), float(lam.max())],
                "residual_bits": bits[f"{prefix}.weight"],
            }
        details = {
            "bits": self.bits,
            "rank": self.rank,
            "alpha": self.alpha,
            "group": self.group,
            "branch_bits": self.branch_bits,
            "branch_params": branch_params,
            "layers": per_layer,
        }
        return details, bits
