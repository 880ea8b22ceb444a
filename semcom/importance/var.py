"""VAR: visual attention sinks and Visual Attention Redistribution (Kang et al., ICLR 2025,
arXiv:2503.03321), as a sink filter for attention-based importance.

In large multimodal models some image tokens draw much attention but carry little information
(*visual attention sinks*). They show massive activations in a few fixed hidden dimensions
``D_sink``. VAR finds them and, in *image-centric* heads, gives part of their attention to the
other image tokens. Here every token is an image token (one per feature), and the corrected
attention defines the importance. Per encoder block ``l`` with input tokens ``h`` [B, N, d]
and attention ``A`` [B, H, N, N]:

    sink(i)      ⇔  max_{d ∈ D_sink} |RMSNorm(h_i)_d| > τ,    RMSNorm(h) = h / sqrt(mean h² + 1e-6)
    centric(h,i) ⇔  Σ_{j ∈ sinks} A_h[i, j] <= ρ       (the head/query's sink share, ρ = 0.5)
    in centric rows:  A'[i, j] = p A[i, j]                                     j a sink
                      A'[i, j] = A[i, j] + (1 − p) S_i A[i, j] / Σ_{k ∉ sinks} A[i, k]   else
                      with S_i = Σ_{j ∈ sinks} A[i, j];   other rows: A' = A

so each row still sums to 1, the proportions among non-sink tokens are unchanged, and ``p = 1``
is the identity. The score is the attention received after redistribution,
``s_j = Σ_{l ∈ layers} (1/H) Σ_h Σ_i A'^{(l)}_h[i, j]``, and ``w̃_j = E_x[s_j]``.

Choices where the paper's setting does not carry over (documented stand-ins):

- ``D_sink`` is fixed per language model in the paper. Ours is either given (``sink_dims``) or
  found on the calibration images: the ``n_sink_dims`` hidden dimensions with the largest median
  over images of ``max_i |RMSNorm(h_i)_d| − median_i |RMSNorm(h_i)_d|`` (largest over the
  blocks), i.e. where a few tokens stand far above the rest (massive-activation dimensions).
  A dimension that is large for every token is an offset, not a sink dimension.
- The paper's ``τ = 20`` is for LLaMA's ``d = 4096``, where ``|RMSNorm(h)_d| <= sqrt(d) = 64``.
  A small encoder cannot reach 20 (at ``d = 64`` the bound is 8). The default keeps the same
  fraction of the bound, ``20 sqrt(d / 4096)``, floored at 3: ``τ = max(3, 20 sqrt(d / 4096))``
  (3 at ``d = 64``). Without the floor a narrow model would flag ordinary tokens (the scaled
  value is 1.25 at ``d = 16``, about the size of a typical RMS-normalised entry).
- The paper also requires a row's total image attention to be at least 0.2. Every key here is
  an image token, so that total is always 1 and the condition is dropped. There are no text
  sinks, whose budget the paper also hands to the image tokens.
- The paper skips the first two of 32 layers; our encoder has few blocks, so ``layers`` defaults
  to all of them.

Cost: one encoder pass per image (two in ``fit`` when the sink dimensions are detected).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from channels.errors import check_int, fail
from semcom.importance.base import (
    IMPORTANCE,
    ImportanceEstimator,
    as_images,
    check_model,
    eval_mode,
    model_dtype_device,
)
from semcom.importance.token_graph import require_attention_model
from semcom.importance.vit_trace import (
    check_layers,
    received_attention,
    resolve_layers,
    trace,
)

PAPER_TAU, PAPER_DIM, TAU_FLOOR = 20.0, 4096, 3.0


def rms_normalize(h: torch.Tensor) -> torch.Tensor:
    """``h / sqrt(mean_d h_d² + 1e-6)`` in float64 (RMSNorm without a gain)."""
    h = h.to(torch.float64)
    return h * torch.rsqrt(h.pow(2).mean(dim=-1, keepdim=True) + 1e-6)


def default_tau(dim: int) -> float:
    """``τ = max(3, 20 sqrt(d / 4096))``: the paper's 20 at ``d = 4096``, scaled with ``sqrt(d)``,
    and never below 3 times the token's RMS."""
    return max(TAU_FLOOR, PAPER_TAU * math.sqrt(dim / PAPER_DIM))


def dimension_activity(hidden: Sequence[torch.Tensor]) -> torch.Tensor:
    """How far the peak token stands out in each dimension, float64 ``[B, d]``.

    ``max_l (max_i |RMSNorm(h^{(l)}_i)_d| − median_i |RMSNorm(h^{(l)}_i)_d|)`` per image: a
    massive-activation dimension is near zero for most tokens and huge for a few, whereas a
    dimension that is large for every token (an offset) is not a sink dimension.
    """
    excess = []
    for h in hidden:
        mag = rms_normalize(h).abs()
        excess.append(mag.amax(dim=1) - mag.median(dim=1).values)
    return torch.stack(excess).amax(dim=0)


def sink_dimensions(activity: torch.Tensor, count: int) -> list[int]:
    """The ``count`` dimensions with the largest median (over images) of ``activity`` [B, d]."""
    median = activity.median(dim=0).values
    order = torch.argsort(median, descending=True, stable=True)
    return sorted(int(d) for d in order[:count])


def find_sinks(h: torch.Tensor, dims: Sequence[int], tau: float) -> torch.Tensor:
    """Sink tokens, bool ``[B, N]``: ``max_{d ∈ dims} |RMSNorm(h)_d| > τ`` for ``h`` [B, N, d]."""
    picked = rms_normalize(h)[..., list(dims)].abs()
    return picked.amax(dim=-1) > tau


def redistribute(attn: torch.Tensor, sinks: torch.Tensor, p: float, rho: float) -> torch.Tensor:
    """VAR on attention ``A`` ``[B, H, N, N]`` with sink keys ``sinks`` bool ``[B, N]``.

    Rows whose sink share is at most ``rho`` (image-centric head/query pairs) and that have
    at least one non-sink key get the redistribution of the module docstring; the others are
    returned unchanged. Float64 result; each row keeps its sum.
    """
    a = attn.to(torch.float64)
    s = sinks.to(torch.float64)[:, None, None, :]  # [B, 1, 1, N]
    sink_mass = (a * s).sum(dim=-1, keepdim=True)
    rest = a * (1.0 - s)
    rest_mass = rest.sum(dim=-1, keepdim=True)
    moved = a * (1.0 - (1.0 - p) * s) + (1.0 - p) * sink_mass * rest / rest_mass.clamp_min(1e-300)
    centric = (sink_mass <= rho) & (rest_mass > 0)
    return torch.where(centric, moved, a)


def _check_unit(field: str, value: Any, low_open: bool) -> float:
    allowed = "a number in (0, 1]" if low_open else "a number in [0, 1]"
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise fail(field, value, allowed)
    value = float(value)
    if not (0.0 < value <= 1.0 if low_open else 0.0 <= value <= 1.0):
        raise fail(field, value, allowed)
    return value


def _check_dims(dims: Any) -> list[int] | None:
    if dims is None:
        return None
    allowed = "null or a non-empty list of distinct hidden-dimension indices >= 0"
    if not isinstance(dims, list | tuple) or not dims:
        raise fail("sink_dims", dims, allowed)
    ok = all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims)
    if not ok or len(set(dims)) != len(dims):
        raise fail("sink_dims", dims, allowed)
    return sorted(int(d) for d in dims)


@IMPORTANCE.register(
    "var",
    description="Attention received after visual-attention-sink redistribution "
    "(sinks give 1-p of their attention to non-sink tokens in image-centric heads)",
    paper="arXiv:2503.03321",
)
class VarImportance(ImportanceEstimator):
    """Attention received after VAR: ``w̃_j = E_x Σ_l (1/H) Σ_h Σ_i A'^{(l)}_h[i, j]``.

    Args:
        batch_size: images per encoder pass.
        layers: blocks whose attention is corrected and summed: ``"all"`` (default),
            ``"last"`` or a block number ``1..depth``.
        p: share of its attention a sink keeps in an image-centric row, in [0, 1] (0.6).
        rho: largest sink share of an image-centric row, in (0, 1] (0.5).
        tau: sink threshold on ``|RMSNorm(h)_d|``; ``None`` (default): ``max(3, 20 sqrt(d/4096))``.
        sink_dims: hidden dimensions that carry sinks; ``None`` (default): detected in ``fit``.
        n_sink_dims: how many dimensions to detect when ``sink_dims`` is ``None`` (2).

    Attributes (after ``fit``):
        sink_dims_: the sink dimensions used.
        sink_rate_: fraction of (image, block, token) triples flagged as sinks.

    Examples:
        >>> import torch
        >>> from semcom.models import build_model
        >>> _ = torch.manual_seed(0)
        >>> vit = build_model("vit", 4, input_shape=[1, 8, 8], dim=8, heads=2, depth=1).eval()
        >>> x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(1))
        >>> est = VarImportance(n_sink_dims=1).fit(vit, x)
        >>> len(est.sink_dims_), round(float(est.importances_.sum()), 12)
        (1, 1.0)
    """

    name = "var"
    models = ("vit",)  # reads the encoder's attention

    def __init__(
        self,
        batch_size: int = 256,
        layers: str | int = "all",
        p: float = 0.6,
        rho: float = 0.5,
        tau: float | None = None,
        sink_dims: list[int] | None = None,
        n_sink_dims: int = 2,
    ) -> None:
        super().__init__(batch_size)
        self.layers = check_layers(layers)
        self.p = _check_unit("p", p, low_open=False)
        self.rho = _check_unit("rho", rho, low_open=True)
        if tau is not None:
            bad = isinstance(tau, bool) or not isinstance(tau, int | float | np.number)
            if bad or not 0.0 < float(tau) < math.inf:
                raise fail("tau", tau, "null or a finite number > 0")
            tau = float(tau)
        self.tau = tau
        self.sink_dims = _check_dims(sink_dims)
        self.n_sink_dims = check_int("n_sink_dims", n_sink_dims, 1)

    def _dims_and_tau(
        self, tokens: list[torch.Tensor], picked: list[int]
    ) -> tuple[list[int], float]:
        d = tokens[0].shape[-1]
        dims = self.sink_dims or getattr(self, "sink_dims_", None)
        if dims is None:
            if self.n_sink_dims > d:
                raise fail("n_sink_dims", self.n_sink_dims, f"an integer in [1, {d}]")
            dims = sink_dimensions(
                dimension_activity([tokens[l] for l in picked]), self.n_sink_dims
            )
        if max(dims) >= d:
            raise fail("sink_dims", dims, f"indices in [0, {d - 1}] (hidden width {d})")
        return list(dims), default_tau(d) if self.tau is None else self.tau

    def _trace_sinks(
        self, model: Any, x: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[int], dict[int, torch.Tensor]]:
        tokens, weights = trace(model, x)
        picked = resolve_layers(self.layers, len(weights))
        dims, tau = self._dims_and_tau(tokens, picked)
        return weights, picked, {l: find_sinks(tokens[l], dims, tau) for l in picked}

    def sink_tokens(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        """Sink flags per selected block, bool ``[layers, B, N]``."""
        _, picked, sinks = self._trace_sinks(model, x)
        return torch.stack([sinks[l] for l in picked])

    def _scores_and_sinks(self, model: Any, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        weights, picked, sinks = self._trace_sinks(model, x)
        scores = sum(
            received_attention(redistribute(weights[l], sinks[l], self.p, self.rho)) for l in picked
        )
        return (
            scores,
            sum(int(sinks[l].sum()) for l in picked),
            len(picked) * sinks[picked[0]].numel(),
        )

    def token_scores(self, model: Any, x: torch.Tensor) -> torch.Tensor:
        """Attention received after redistribution, float64 ``[B, N]``."""
        return self._scores_and_sinks(model, x)[0]

    def _scores(self, model: Any, x: torch.Tensor) -> np.ndarray:
        scores, flagged, total = self._scores_and_sinks(model, x)
        self._flagged += flagged
        self._total += total
        return scores.sum(dim=0).cpu().numpy()

    def fit(self, model: Any, images: Any) -> VarImportance:
        """Detect the sink dimensions (unless given), then score ``images`` [B, C, H, W]."""
        check_model(model)
        require_attention_model(model)
        images = as_images(images)
        dtype, device = model_dtype_device(model, images)
        self.__dict__.pop("sink_dims_", None)
        if self.sink_dims is None:
            activity = []
            with eval_mode(model):
                for start in range(0, images.shape[0], self.batch_size):
                    x = images[start : start + self.batch_size].to(device=device, dtype=dtype)
                    tokens, weights = trace(model, x)
                    width = tokens[0].shape[-1]
                    if self.n_sink_dims > width:
                        raise fail("n_sink_dims", self.n_sink_dims, f"an integer in [1, {width}]")
                    picked = resolve_layers(self.layers, len(weights))
                    activity.append(dimension_activity([tokens[l] for l in picked]))
            self.sink_dims_ = sink_dimensions(torch.cat(activity), self.n_sink_dims)
        else:
            self.sink_dims_ = list(self.sink_dims)
        self._flagged, self._total = 0, 0
        super().fit(model, images)
        self.sink_rate_ = self._flagged / self._total
        del self._flagged, self._total
        return self
