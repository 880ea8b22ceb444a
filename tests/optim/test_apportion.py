"""optim.apportion: the apportionment rules and the ``dhondt`` allocation method.

References we did not write: the worked examples of the D'Hondt, Sainte-Laguë and
largest-remainder articles (hand-checked quotient tables in the comments), and the
characterisations of the rules (a divisor method's seats are those of one common divisor;
D'Hondt meets the lower quota; Hamilton stays within the quota), checked on random votes.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import optim
from channels.errors import ConfigError
from optim.apportion import apportion, dhondt, dhondt_batch, dhondt_plan
from optim.distortion import dropped_cost
from optim.problem import random_problem

OFFSET = {"dhondt": 1.0, "sainte-lague": 0.5}
RULES = ("dhondt", "sainte-lague", "hamilton")
PROPS = settings(max_examples=150, deadline=None)
votes_st = st.lists(st.integers(0, 10_000), min_size=1, max_size=8).map(
    lambda v: np.array(v, dtype=float)
)


@pytest.mark.parametrize(
    ("votes", "seats", "method", "expected"),
    [
        # D'Hondt: quotients 100k, 80k, 50k, 40k, 33.3k, 30k, 26.7k, 25k | 20k (D), 20k (B)
        ([100_000, 80_000, 30_000, 20_000], 8, "dhondt", [4, 3, 1, 0]),
        # Sainte-Laguë (divisors 1, 3, 5): 100k, 80k, 33.3k, 30k, 26.7k, 20k (A), 20k (D), 16k
        ([100_000, 80_000, 30_000, 20_000], 8, "sainte-lague", [3, 3, 1, 1]),
        # Hare quota 10k: 4.70, 1.60, 1.58, 1.20, 0.61, 0.31 -> 4+1+1+1; remainders .70 .61 .60
        ([47_000, 16_000, 15_800, 12_000, 6_100, 3_100], 10, "hamilton", [5, 2, 1, 1, 1, 0]),
        # same votes, D'Hondt: 47k, 23.5k, 16k, 15.8k, 15.67k, 12k, 11.75k, 9.4k, 8k, 7.9k
        ([47_000, 16_000, 15_800, 12_000, 6_100, 3_100], 10, "dhondt", [5, 2, 2, 1, 0, 0]),
        # same votes, Sainte-Laguë: 47k, 16k, 15.8k, 15.67k, 12k, 9.4k, 6.71k, 6.1k, 5.33k, 5.27k
        ([47_000, 16_000, 15_800, 12_000, 6_100, 3_100], 10, "sainte-lague", [4, 2, 2, 1, 1, 0]),
    ],
)
def test_worked_examples(votes, seats, method, expected):
    assert apportion(votes, seats, method=method).tolist() == expected


@PROPS
@given(votes_st, st.integers(0, 60), st.sampled_from(RULES))
def test_seats_sum_to_s_and_more_votes_never_fewer_seats(v, seats, method):
    out = apportion(v, seats, method=method)
    assert out.dtype == np.int64 and out.shape == v.shape and np.all(out >= 0)
    assert out.sum() == (seats if v.sum() > 0 else 0)
    assert np.all(out[v == 0] == 0)
    for i in range(v.size):
        for j in range(v.size):
            if v[i] > v[j]:
                assert out[i] >= out[j]
            if v[i] == v[j]:
                assert abs(out[i] - out[j]) <= 1


@PROPS
@given(votes_st, st.integers(1, 60), st.sampled_from(["dhondt", "sainte-lague"]))
def test_divisor_methods_are_one_common_divisor_and_house_monotone(v, seats, method):
    """Seats ``s`` come from a divisor method iff every unseated quotient
    ``v_i / (s_i + delta)`` is <= every seated one ``v_j / (s_j - 1 + delta)``."""
    if v.sum() == 0:
        return
    d = OFFSET[method]
    out = apportion(v, seats, method=method)
    pos = v > 0
    next_q = (v / (out + d))[pos].max()
    last_q = (v[out > 0] / (out[out > 0] - 1 + d)).min()
    assert next_q <= last_q
    assert np.all(apportion(v, seats + 1, method=method) >= out)  # no Alabama paradox


@PROPS
@given(votes_st, st.integers(0, 60))
def test_quota_properties(v, seats):
    if v.sum() == 0:
        return
    quota = seats * v / v.sum()
    ham = apportion(v, seats, method="hamilton")
    assert np.all(ham >= np.floor(quota + 1e-9)) and np.all(ham <= np.ceil(quota - 1e-9))
    assert np.all(apportion(v, seats, method="dhondt") >= np.floor(quota + 1e-9))


@PROPS
@given(votes_st, st.integers(0, 40), st.floats(0, 1), st.sampled_from(RULES))
def test_threshold_respected(v, seats, threshold, method):
    out = apportion(v, seats, method=method, threshold=threshold)
    below = v < threshold * v.sum()
    assert np.all(out[below] == 0)
    kept = np.where(below, 0.0, v)
    assert np.array_equal(out, apportion(kept, seats, method=method))


@PROPS
@given(votes_st, st.integers(0, 40), st.sampled_from(RULES), st.data())
def test_alliances_pool_votes_then_share_inside(v, seats, method, data):
    labels = np.array(data.draw(st.lists(st.integers(0, 2), min_size=v.size, max_size=v.size)))
    out = apportion(v, seats, method=method, alliances=labels)
    ids = np.unique(labels)
    totals = np.array([v[labels == a].sum() for a in ids])
    top = apportion(totals, seats, method=method)
    for a, s in zip(ids, top, strict=True):
        members = labels == a
        assert out[members].sum() == s
        assert np.array_equal(out[members], apportion(v[members], int(s), method=method))


def test_alliance_threshold_applies_to_the_alliance():
    v = [40, 30, 15, 15]
    # alone, C and D (15 %) fall under a 20 % threshold; together (30 %) they pass
    assert apportion(v, 10, threshold=0.2).tolist()[2:] == [0, 0]
    assert apportion(v, 10, threshold=0.2, alliances=[0, 1, 2, 2]).tolist() == [4, 3, 2, 1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"votes": [1, -1], "seats": 2}, r"^votes: \[1, -1\] is invalid"),
        ({"votes": [1, 2], "seats": -1}, r"^seats: -1 is invalid"),
        ({"votes": [1, 2], "seats": 1.5}, r"^seats: 1.5 is invalid"),
        ({"votes": [1, 2], "seats": 1, "method": "adams"}, r"^method: 'adams' is not one of"),
        ({"votes": [1, 2], "seats": 1, "threshold": 1.5}, r"^threshold: 1.5 is invalid"),
        ({"votes": [1, 2], "seats": 1, "alliances": [0]}, r"^alliances: \[0\] is invalid"),
        ({"votes": [1, 2], "seats": 1, "alliances": [0.5, 1]}, r"^alliances: .* is invalid"),
    ],
)
def test_bad_input_is_one_line_config_error(kwargs, message):
    with pytest.raises(ConfigError, match=message) as info:
        apportion(**kwargs)
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------- the method
def _problems(count, base_seed):
    rng = np.random.default_rng(base_seed)
    for i in range(count):
        n, k = (int(x) for x in rng.integers(0, 9, size=2))
        fields = {
            "snr_db": float(rng.uniform(-10, 30)),
            "eta": float(rng.uniform(0, 1.5)),
            "ber_model": ("exact", "bound")[i % 2],
            "distortion_model": ("absolute", "normalised")[(i // 2) % 2],
            "profile": ("ordered", "random", "flat")[i % 3],
        }
        if i % 5 == 4:
            fields["bits_per_scalar"] = [int(q) for q in rng.integers(2, 10, size=n)]
            fields["scalars_per_feature"] = 8
        yield random_problem(n, k, seed=base_seed + i, **fields)


@pytest.mark.parametrize("rule", RULES)
def test_dhondt_is_feasible_and_follows_its_mapping(rule):
    for p in _problems(60, 100):
        threshold = 0.05
        result = optim.solve(p, "dhondt", rule=rule, threshold=threshold, power_levels=32)
        assert result.feasible, result.allocation.violations(p)
        assert result.objective <= dropped_cost(p) * (1 + 1e-12)  # a sent feature beats dropping
        plan = dhondt_plan(p, threshold=threshold, power_levels=32, rule=rule)
        table = p.symbol_table
        assert plan.symbol_seats.sum() <= p.symbol_budget and plan.power_levels.sum() <= 32
        for f, m, s in zip(plan.features, plan.modulation, plan.symbol_seats, strict=True):
            assert table[f, m] <= s and (m == 0 or table[f, m - 1] > s)  # most robust fit
            assert p.weights[f] >= threshold * p.weights.sum()
        alloc = result.allocation
        levels = dict(zip(plan.features.tolist(), plan.power_levels.tolist(), strict=True))
        for a in range(alloc.n_selected):  # more power levels -> a subchannel at least as good
            for b in range(alloc.n_selected):
                if levels[int(alloc.selected[a])] > levels[int(alloc.selected[b])]:
                    assert p.gains[alloc.subchannel[a]] >= p.gains[alloc.subchannel[b]]


def test_dhondt_votes_decide_the_seats():
    p = random_problem(4, 4, seed=0, profile="flat", eta=1.0).replace(
        weights=[0.4, 0.3, 0.2, 0.1], gains=[4.0, 3.0, 2.0, 1.0]
    )
    plan = dhondt_plan(p, power_levels=10)
    assert plan.features.tolist() == [0, 1, 2, 3]
    assert plan.power_levels.tolist() == [4, 3, 2, 1]  # D'Hondt of 40/30/20/10 over 10 seats
    assert plan.symbol_seats.tolist() == apportion(p.weights, 1024).tolist()
    assert np.allclose(plan.power, np.array([4, 3, 2, 1]) * p.power_budget / 10)


@pytest.mark.parametrize(
    "changes",
    [{"gains": []}, {"power_budget": 0.0}, {"gains": [0.0] * 6}, {"symbol_budget": 85.0}],
)
def test_dhondt_degenerate_problems_send_nothing(changes):
    p = random_problem(6, 6, seed=0).replace(**changes)
    assert dhondt(p).n_selected == 0


def test_solve_batch_equals_solve_frame_by_frame():
    rng = np.random.default_rng(5)
    for p in list(_problems(12, 300)):
        if p.n_subchannels == 0:
            continue
        gains = rng.exponential(size=(40, p.n_subchannels))
        gains[::7, 0] = 0.0
        gains[::5, -1] = gains[::5, 0]
        for options in ({}, {"rule": "hamilton", "threshold": 0.1, "power_levels": 7}):
            out = optim.solve_batch(p, gains, "dhondt", **options)
            for b in range(gains.shape[0]):
                ref = optim.solve(p.replace(gains=gains[b]), "dhondt", **options)
                assert out.allocation(b, p.modulations) == ref.allocation
                assert math.isclose(out.objective[b], ref.objective, rel_tol=1e-12)


def test_dhondt_options_are_checked_before_any_work():
    p = random_problem(3, 3, seed=0)
    with pytest.raises(ConfigError, match=r"^rule: 'adams' is not one of dhondt"):
        optim.solve(p, "dhondt", rule="adams")
    with pytest.raises(ConfigError, match=r"^power_levels: 0 is invalid"):
        optim.solve_batch(p, np.ones((2, 3)), "dhondt", power_levels=0)
    with pytest.raises(ConfigError, match=r"^threshold: -0.1 is invalid"):
        dhondt_batch(p, np.ones((2, 3)), threshold=-0.1)
    with pytest.raises(ConfigError, match=r"unexpected keyword argument 'seed'"):
        optim.solve(p, "dhondt", seed=3)
