"""Baseline ``greedy-distortion``: equals the brute-force optimum of ``Σ w_i L Δ_i² / 12`` on
small problems, stays within one bit of continuous reverse water-filling, meets the budget
exactly and is monotone in importance."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.errors import ConfigError
from semcom.bitalloc import BIT_ALLOCATION, GreedyDistortion
from semcom.bitalloc.greedy_distortion import weighted_distortion
from tests.semcom.bitalloc_contract import budgets, check_budget_and_monotone


def distortion(w: np.ndarray, q: tuple[int, ...], scalars: int = 4) -> float:
    """``Σ_i w_i · L · (2 / 2^Q_i)² / 12`` written out term by term."""
    return sum(wi * scalars * (2.0 / 2**qi) ** 2 / 12.0 for wi, qi in zip(w, q, strict=True))


def test_registered() -> None:
    assert BIT_ALLOCATION.get("greedy-distortion") is GreedyDistortion


@given(budgets())
def test_exact_budget_and_monotone(case: tuple) -> None:
    check_budget_and_monotone(GreedyDistortion(), *case)


@given(
    st.integers(1, 5).flatmap(
        lambda n: st.tuples(
            st.lists(st.floats(0.0, 1.0, allow_subnormal=False), min_size=n, max_size=n).filter(
                lambda v: sum(v) > 1e-6
            ),
            st.integers(1, 3),
            st.integers(0, 3),
            st.integers(0, 100),
        )
    )
)
def test_equals_the_brute_force_optimum(case: tuple) -> None:
    w, q_min, span, fill = case
    n, q_max = len(w), q_min + span
    total = n * q_min + fill % (n * span + 1)
    q = GreedyDistortion().allocate(w, total / n, q_min, q_max)
    wn = np.asarray(w) / sum(w)
    best = min(
        distortion(wn, c)
        for c in itertools.product(range(q_min, q_max + 1), repeat=n)
        if sum(c) == total
    )
    assert distortion(wn, tuple(q)) == pytest.approx(best, rel=1e-12, abs=1e-300)
    assert weighted_distortion(wn, q, 4) == pytest.approx(distortion(wn, tuple(q)), rel=1e-12)


def test_within_one_bit_of_reverse_water_filling() -> None:
    """Unbounded continuous optimum: ``Q_i = B̄ + ½ log2(w_i / geometric mean(w))``."""
    w = np.random.default_rng(0).uniform(0.2, 1.0, size=32)
    q = GreedyDistortion().allocate(w, 8, q_min=1, q_max=16)
    continuous = 8 + 0.5 * np.log2(w / np.exp(np.mean(np.log(w))))
    assert np.all(np.abs(q - continuous) < 1.0)


def test_a_steep_profile_matches_the_closed_form() -> None:
    """Each weight a quarter of the previous: water-filling puts them one bit apart,
    ``Q = 5.5 + (1.5, 0.5, -0.5, -1.5)``, an integer optimum with a unique minimiser."""
    w = [0.64, 0.16, 0.04, 0.01]
    assert GreedyDistortion().allocate(w, 5.5, q_min=1, q_max=16).tolist() == [7, 6, 5, 4]


def test_budget_that_cannot_be_met_is_refused() -> None:
    with pytest.raises(ConfigError, match="^average_bits:"):
        GreedyDistortion().allocate([0.5, 0.5], 0.5)
