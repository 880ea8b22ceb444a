"""optim.distortion: the bit-error -> MSE model, feature terms, and the objective of (P0)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.errors import ConfigError
from channels.theory import ber_awgn, ber_bound
from optim.distortion import (
    bit_error_rate,
    dropped_cost,
    feature_costs,
    feature_terms,
    objective,
    scalar_mse,
)
from optim.problem import Allocation, Problem, random_problem
from optim.snr_range import gain_bounds


def _enumerated_bit_error_mse(q: int, pb: float, step: float) -> float:
    """E[(x_hat - x)^2] over a uniform index and independent flips, by enumeration."""
    total = 0.0
    for index in range(2**q):
        for flips in itertools.product((0, 1), repeat=q):
            prob = np.prod([pb if f else 1 - pb for f in flips])
            flipped = index ^ sum(f << j for j, f in enumerate(flips))
            total += prob * ((flipped - index) * step) ** 2
    return total / 2**q


@pytest.mark.parametrize("q", [1, 2, 3, 4])
@pytest.mark.parametrize("pb", [0.0, 1e-3, 0.1, 0.5])
def test_bit_error_term_matches_enumeration(q, pb):
    p = Problem([1.0], [0.2], [1.0], 1.0, 1e6, bits_per_scalar=q, scalars_per_feature=1)
    step = p.quantiser_step
    expected = step**2 / 12 + _enumerated_bit_error_mse(q, pb, step)
    assert scalar_mse(p, pb) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_feature_terms_absolute_and_normalised():
    p = random_problem(4, 4, seed=0)
    t = feature_terms(p)
    d = p.quantiser_step**2
    assert np.allclose(t.floor, 64 * d / 12)
    assert np.allclose(t.slope, 64 * d * (4**8 - 1) / 3)
    assert np.allclose(t.drop, 64 * p.drop_distortion)
    q = p.replace(distortion_model="normalised")
    tn = feature_terms(q)
    assert np.allclose(tn.drop, 1.0)
    assert np.allclose(tn.floor, d / 12 / p.drop_distortion)
    assert np.allclose(tn.slope * p.drop_distortion, d * (4**8 - 1) / 3)


@pytest.mark.parametrize("model", ["exact", "bound"])
def test_objective_by_hand(model):
    p = random_problem(4, 3, seed=2, ber_model=model)
    alloc = Allocation([3, 1], [2, 0], ("16qam", "bpsk"), [5.0, 2.5])
    ber = ber_awgn if model == "exact" else ber_bound
    t = feature_terms(p)
    pb3 = float(ber("16qam", p.gains[2] * 5.0))
    pb1 = float(ber("bpsk", p.gains[0] * 2.5))
    expected = (
        p.weights[0] * t.drop[0]
        + p.weights[2] * t.drop[2]
        + p.weights[3] * (t.floor[3] + t.slope[3] * pb3)
        + p.weights[1] * (t.floor[1] + t.slope[1] * pb1)
    )
    assert objective(p, alloc) == pytest.approx(expected, rel=1e-12)
    assert feature_costs(p, alloc).sum() == pytest.approx(expected, rel=1e-12)


def test_noise_power_scales_snr():
    p = random_problem(2, 2, seed=4)
    alloc = Allocation([0], [1], ("qpsk",), [3.0])
    q = p.replace(noise_power=2.0)
    same = Allocation([0], [1], ("qpsk",), [6.0])
    assert objective(q, same) == pytest.approx(objective(p, alloc), rel=1e-12)


def test_send_nothing_costs_the_drop_distortion():
    p = random_problem(5, 5, seed=1)
    assert objective(p, Allocation.send_nothing()) == pytest.approx(dropped_cost(p))
    assert dropped_cost(p) == pytest.approx(64 * p.weights @ p.drop_distortion)


def test_bit_error_rate_dispatches_by_modulation_index():
    p = random_problem(1, 1, seed=0)
    mods = np.array([[0, 1], [2, 3]])
    esno = np.array([[1.0, 2.0], [3.0, 40.0]])
    got = bit_error_rate(p, mods, esno)
    for idx in np.ndindex(mods.shape):
        name = p.modulations[mods[idx]]
        assert got[idx] == pytest.approx(float(ber_awgn(name, esno[idx])), rel=1e-14)


def test_objective_rejects_out_of_range_indices():
    p = random_problem(2, 2, seed=0)
    with pytest.raises(ConfigError, match="selected"):
        objective(p, Allocation([5], [0], ("bpsk",), [1.0]))
    with pytest.raises(ConfigError, match="subchannel"):
        objective(p, Allocation([0], [5], ("bpsk",), [1.0]))


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    power=st.floats(0, 1e300),
    gain_scale=st.sampled_from([0.0, 1e-100, 1.0, 1e100]),
    model=st.sampled_from(["exact", "bound"]),
    dist=st.sampled_from(["absolute", "normalised"]),
)
def test_objective_is_always_finite_and_bounded(seed, power, gain_scale, model, dist):
    p = random_problem(3, 3, seed=seed, ber_model=model, distortion_model=dist)
    low, high = gain_bounds(p.power_budget, p.noise_power)  # a Problem's range
    p = p.replace(gains=np.clip(p.gains * gain_scale, low, high) if gain_scale else 0 * p.gains)
    alloc = Allocation([0, 2], [1, 0], ("64qam", "bpsk"), [power, power / 3])
    value = objective(p, alloc)
    t = feature_terms(p)
    worst = p.weights @ np.maximum(t.drop, t.floor + 0.5 * t.slope)
    assert np.isfinite(value) and 0.0 <= value <= worst * (1 + 1e-12)
