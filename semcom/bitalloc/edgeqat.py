"""EdgeQAT's token-importance-aware bit-width (Shen et al., arXiv:2402.10787), as a bit allocator.

EdgeQAT quantises the activations of a small language model with two bit-widths: the tokens
whose importance score is in the lowest fraction ``p`` get a low bit-width ``b_lo`` (e.g. 4), the
others a high one ``b_hi`` (e.g. 8). Here the tokens are the semantic features and the bit-width
is the feature quantiser's ``Q_i``. The budget fixes ``p``: with ``N`` features and
``total = B̄ · N`` bits, ``n_hi = (total - N · b_lo) / (b_hi - b_lo)`` features (the most
important) get ``b_hi``, the other ``N - n_hi`` (``p = 1 - n_hi / N``) get ``b_lo``, and the
average is ``p · b_lo + (1 - p) · b_hi = B̄`` exactly. ``n_hi`` must be a whole number in
``0..N``; without explicit bit-widths ``b_lo = floor(B̄)``, ``b_hi = b_lo + 1`` (always
feasible). The paper's setting is ``b_lo = 4``, ``b_hi = 8``, ``B̄ = 6`` (``p = 0.5``).

The importance comes from the scenario's importance estimator. EdgeQAT's own token score,
``s_i = Σ_h mean_b A[b, h, i, 0]`` (the attention of token ``i`` to the first token, from the
authors' code), is :func:`token_scores` for the ViT codec; ``rule="received"`` is the code's
alternative, the mean attention a token receives.

Not carried over (training side of the paper): the quantisation-aware training itself, its
distillation loss (cross-entropy plus KL to the teacher), the attention-map distribution
alignment and the entropy term on queries and keys. Those train the quantised network; this
module only chooses the bits per feature, and the link's uniform quantiser applies them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from channels.errors import ConfigError, check_int, fail
from semcom.bitalloc.base import BIT_ALLOCATION, MAX_BITS, BitAllocator
from semcom.bitalloc.uniform import importance_order


@torch.no_grad()
def token_scores(
    model: Any, images: torch.Tensor, rule: str = "first-key", block: int = -1
) -> np.ndarray:
    """EdgeQAT token importance ``[N]`` (float64) from the ViT encoder's attention.

    Args:
        model: a ``vit`` codec (``encoder_trace`` gives the attention of every block).
        images: ``[B, C, H, W]``.
        rule: ``"first-key"``: ``Σ_h mean_b A[b, h, i, 0]``; ``"received"``:
            ``Σ_h mean_b mean_q A[b, h, q, i]``.
        block: encoder block whose attention is used (default: the last).
    """
    if not hasattr(model, "encoder_trace"):
        raise fail("model", type(model).__name__, "a codec with attention (vit)")
    if rule not in ("first-key", "received"):
        raise fail("rule", rule, "first-key or received")
    _, weights = model.encoder_trace(images)
    depth = len(weights)
    if isinstance(block, bool) or not isinstance(block, int) or not -depth <= block < depth:
        raise fail("block", block, f"an integer in {-depth}..{depth - 1}")
    a = weights[block].to(torch.float64)  # [B, heads, N (queries), N (keys)]
    score = a[..., 0] if rule == "first-key" else a.mean(dim=2)
    return score.mean(dim=0).sum(dim=0).cpu().numpy()


@BIT_ALLOCATION.register(
    "edgeqat",
    description="Two bit-widths: the least important features (a budget-set fraction) get fewer",
    paper="arXiv:2402.10787",
)
class EdgeQATBits(BitAllocator):
    """Two-level, importance-ranked bit-widths (module docstring).

    Args:
        low_bits, high_bits: ``b_lo < b_hi`` (1..16), both or neither; ``None``: ``floor(B̄)``
            and ``floor(B̄) + 1``.

    Attributes:
        low_fraction_: ``p``, the share of features at ``b_lo`` after :meth:`allocate`.

    Examples:
        >>> alloc = EdgeQATBits(low_bits=4, high_bits=8)
        >>> alloc.allocate([0.4, 0.1, 0.3, 0.2], average_bits=6).tolist(), alloc.low_fraction_
        ([8, 4, 8, 4], 0.5)
    """

    name = "edgeqat"

    def __init__(self, low_bits: int | None = None, high_bits: int | None = None) -> None:
        if (low_bits is None) != (high_bits is None):
            missing = "low_bits" if low_bits is None else "high_bits"
            raise fail(missing, None, "an integer when the other bit-width is set")
        if low_bits is not None:
            low_bits = check_int("low_bits", low_bits, 1, MAX_BITS - 1)
            high_bits = check_int("high_bits", high_bits, low_bits + 1, MAX_BITS)
        self.low_bits = low_bits
        self.high_bits = high_bits
        self.low_fraction_: float | None = None

    def _allocate(self, w: np.ndarray, total: int, q_min: int, q_max: int) -> np.ndarray:
        n = w.size
        if self.low_bits is None:
            low = total // n
            high = min(low + 1, q_max)
        else:
            low, high = self.low_bits, self.high_bits
            if low < q_min:
                raise fail("low_bits", low, f"an integer >= q_min = {q_min}")
            if high > q_max:
                raise fail("high_bits", high, f"an integer <= q_max = {q_max}")
        n_high, rest = divmod(total - n * low, max(high - low, 1))
        if rest or not 0 <= n_high <= n:
            raise ConfigError(
                f"average_bits: {total / n!r} is invalid; allowed: {low} + k·{high - low}/{n}, "
                f"k = 0..{n} (a whole number of the {n} features at {high} bits, the rest at "
                f"{low})"
            )
        q = np.full(n, low, dtype=np.int64)
        q[importance_order(w)[:n_high]] = high
        self.low_fraction_ = 1.0 - n_high / n
        return q
