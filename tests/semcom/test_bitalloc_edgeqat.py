"""``edgeqat`` bits: two bit-widths with the average ``p·b_lo + (1-p)·b_hi`` equal to the budget
exactly, the least important features at ``b_lo``, monotone in importance; EdgeQAT's token score
equals a loop over the ViT's attention maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given

from channels.errors import ConfigError
from semcom.bitalloc import BIT_ALLOCATION, EdgeQATBits
from semcom.bitalloc.edgeqat import token_scores
from tests.semcom.bitalloc_contract import budgets, check_budget_and_monotone
from tests.semcom.quant_contract import images_for, small_model


def test_registered_with_paper() -> None:
    assert BIT_ALLOCATION.get("edgeqat") is EdgeQATBits
    assert BIT_ALLOCATION.info("edgeqat").paper == "arXiv:2402.10787"


@given(budgets())
def test_exact_budget_and_monotone(case: tuple) -> None:
    alloc = EdgeQATBits()
    q = check_budget_and_monotone(alloc, *case)
    assert len(set(q.tolist())) <= 2
    assert q.mean() == pytest.approx(case[1])


@pytest.mark.parametrize(("n", "low", "high", "k"), [(8, 4, 8, 4), (10, 2, 6, 3), (6, 3, 4, 6)])
def test_average_is_p_low_plus_one_minus_p_high(n: int, low: int, high: int, k: int) -> None:
    """``k`` features at ``b_hi``: budget ``b_lo + k (b_hi - b_lo) / N``, ``p = 1 - k / N``."""
    w = np.random.default_rng(n).uniform(size=n)
    alloc = EdgeQATBits(low, high)
    average = low + k * (high - low) / n
    q = alloc.allocate(w, average, q_min=1, q_max=16)
    p = alloc.low_fraction_
    assert p == pytest.approx(1 - k / n)
    assert q.mean() == pytest.approx(p * low + (1 - p) * high)
    assert sorted(np.argsort(-w)[:k].tolist()) == sorted(np.flatnonzero(q == high).tolist())


def test_the_papers_setting_puts_the_lower_half_at_4_bits() -> None:
    w = [0.05, 0.3, 0.1, 0.2, 0.15, 0.2]
    q = EdgeQATBits(4, 8).allocate(w, 6, q_min=2, q_max=8)
    assert q.tolist() == [4, 8, 4, 8, 4, 8]


def test_budget_between_the_two_levels_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^average_bits: .*4 \+ k·4/4"):
        EdgeQATBits(4, 8).allocate([1, 2, 3, 4], 5.5)  # 22 bits: 6 over b_lo, not a multiple of 4


@pytest.mark.parametrize(
    ("options", "field"),
    [({"low_bits": 4}, "high_bits"), ({"high_bits": 8}, "low_bits"),
     ({"low_bits": 5, "high_bits": 5}, "high_bits"), ({"low_bits": 0, "high_bits": 2}, "low_bits"),
     ({"low_bits": 4, "high_bits": 17}, "high_bits")],
)  # fmt: skip
def test_bad_options_are_refused(options: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        EdgeQATBits(**options)


@pytest.mark.parametrize(("q_min", "q_max", "field"), [(5, 8, "low_bits"), (2, 6, "high_bits")])
def test_levels_outside_the_quantiser_range_are_refused(q_min: int, q_max: int, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        EdgeQATBits(4, 8).allocate([1, 2], 6, q_min, q_max)


@pytest.mark.parametrize("rule", ["first-key", "received"])
def test_token_scores_equal_a_loop_over_the_attention(rule: str) -> None:
    model = small_model("vit")
    x = images_for(model, 3)
    with torch.no_grad():
        _, weights = model.encoder_trace(x)
    a = weights[-1].numpy().astype(np.float64)
    b, heads, n, _ = a.shape
    expected = np.zeros(n)
    for i in range(n):
        for h in range(heads):
            if rule == "first-key":
                expected[i] += np.mean([a[k, h, i, 0] for k in range(b)])
            else:
                expected[i] += np.mean([a[k, h, q, i] for k in range(b) for q in range(n)])
    np.testing.assert_allclose(token_scores(model, x, rule), expected, rtol=1e-6)


def test_token_scores_refuse_bad_input() -> None:
    model = small_model("vit")
    x = images_for(model, 2)
    with pytest.raises(ConfigError, match="^rule:"):
        token_scores(model, x, "last")
    with pytest.raises(ConfigError, match="^block:"):
        token_scores(model, x, block=5)
    with pytest.raises(ConfigError, match="^model:"):
        token_scores(small_model("mlp"), images_for(small_model("mlp"), 2))
