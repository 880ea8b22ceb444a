"""Baseline ``uniform`` bits: equal bits, spare bits to the most important features; exact
budget and monotone in importance for every feasible budget."""

from __future__ import annotations

import pytest
from hypothesis import given

from channels.errors import ConfigError
from semcom.bitalloc import BIT_ALLOCATION, UniformBits
from tests.semcom.bitalloc_contract import budgets, check_budget_and_monotone


def test_registered() -> None:
    assert BIT_ALLOCATION.get("uniform") is UniformBits


@given(budgets())
def test_exact_budget_and_monotone(case: tuple) -> None:
    q = check_budget_and_monotone(UniformBits(), *case)
    assert q.max() - q.min() <= 1  # as equal as the budget allows


def test_integer_average_gives_every_feature_the_same_bits() -> None:
    assert UniformBits().allocate([0.7, 0.1, 0.2], 6).tolist() == [6, 6, 6]


def test_spare_bits_go_to_the_most_important_features() -> None:
    w = [0.1, 0.4, 0.05, 0.3, 0.15]
    assert UniformBits().allocate(w, 4.4).tolist() == [4, 5, 4, 5, 4]  # 22 bits: 2 spare
    # ties: the lower index first
    assert UniformBits().allocate([1, 1, 1], 4 + 1 / 3).tolist() == [5, 4, 4]


@pytest.mark.parametrize(("average", "field"), [(3.3, "average_bits"), (17, "average_bits")])
def test_budget_that_cannot_be_met_is_refused(average: float, field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        UniformBits().allocate([0.5, 0.5], average)
