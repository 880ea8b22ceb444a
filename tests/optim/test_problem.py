"""optim.problem: validation, derived quantities, YAML/dict round trips, random instances."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.errors import ConfigError
from optim.problem import Allocation, Problem, random_problem


def small(**changes):
    data = dict(
        weights=[0.5, 0.3, 0.2],
        drop_distortion=[0.2, 0.1, 0.3],
        gains=[1.0, 0.5],
        power_budget=10.0,
        symbol_budget=1024,
    )
    data.update(changes)
    return Problem(**data)


def test_defaults_and_derived():
    p = small()
    assert (p.n_features, p.n_subchannels) == (3, 2)
    assert p.scalars_per_feature == 64 and p.bits_per_scalar == 8 and p.noise_power == 1.0
    assert p.modulations == ("bpsk", "qpsk", "16qam", "64qam")
    assert p.bits_per_feature == 512
    assert p.symbols_per_feature.tolist() == [512, 256, 128, 86]
    assert p.quantiser_step == pytest.approx(2 / 256)
    assert p.ber_model == "exact" and p.distortion_model == "absolute"


def test_modulations_are_sorted_by_order_and_deduplicated():
    p = small(modulations=["64QAM", "bpsk", "16qam", "bpsk"])
    assert p.modulations == ("bpsk", "16qam", "64qam")
    assert p.modulation_index("16QAM") == 1
    with pytest.raises(ConfigError, match="not in this problem"):
        p.modulation_index("qpsk")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"weights": [1.0, math.nan, 0.2]}, "weights"),
        ({"weights": [1.0, math.inf, 0.2]}, "weights"),
        ({"weights": [1.0, -0.1, 0.2]}, "weights"),
        ({"weights": 3.0}, "weights"),
        ({"weights": [[1.0, 2.0, 3.0]]}, "weights"),
        ({"weights": ["a", "b", "c"]}, "weights"),
        ({"weights": [1e308, 1e308, 1e308]}, "weights"),
        ({"drop_distortion": [0.1, 0.2]}, "drop_distortion"),
        ({"drop_distortion": [0.1, -0.2, 0.1]}, "drop_distortion"),
        ({"gains": [1.0, -1.0]}, "gains"),
        ({"power_budget": -1.0}, "power_budget"),
        ({"power_budget": math.inf}, "power_budget"),
        ({"power_budget": "lots"}, "power_budget"),
        ({"symbol_budget": -5}, "symbol_budget"),
        ({"scalars_per_feature": 0}, "scalars_per_feature"),
        ({"scalars_per_feature": 2.5}, "scalars_per_feature"),
        ({"bits_per_scalar": 0}, "bits_per_scalar"),
        ({"bits_per_scalar": 99}, "bits_per_scalar"),
        ({"bits_per_scalar": True}, "bits_per_scalar"),
        ({"noise_power": 0.0}, "noise_power"),
        ({"modulations": []}, "modulations"),
        ({"modulations": "bpsk"}, "modulations"),
        ({"modulations": ["8psk"]}, "modulations"),
        ({"ber_model": "chernoff"}, "ber_model"),
        ({"distortion_model": "relative"}, "distortion_model"),
        ({"distortion_model": "normalised", "drop_distortion": [0.1, 0.0, 0.1]}, "drop_distortion"),
        ({"quantiser_span": 0.0}, "quantiser_span"),
        ({"quantiser_span": 1e300}, "quantiser_span"),  # Delta^2 overflows a Python float
        ({"quantiser_span": 1e154, "bits_per_scalar": 1}, "quantiser_span"),  # L Delta^2 overflows
        (
            {"distortion_model": "normalised", "drop_distortion": [0.1, 5e-324, 0.1]},
            "drop_distortion",
        ),  # d / drop overflows
    ],
)
def test_invalid_fields_raise_one_line_config_error(changes, field):
    with pytest.raises(ConfigError) as info:
        small(**changes)
    message = str(info.value)
    assert message.startswith(f"{field}:")
    assert "\n" not in message


def test_empty_features_and_subchannels_are_allowed():
    p = small(weights=[], drop_distortion=[], gains=[])
    assert p.n_features == 0 and p.n_subchannels == 0


def test_arrays_are_read_only():
    p = small()
    with pytest.raises(ValueError):
        p.weights[0] = 3.0


def test_dict_and_yaml_round_trip(tmp_path):
    p = random_problem(5, 4, seed=7, profile="random", ber_model="bound")
    assert Problem.from_dict(p.to_dict()) == p
    path = tmp_path / "problem.yaml"
    text = p.to_yaml(path)
    assert path.read_text() == text
    q = Problem.from_yaml(path)
    assert q == p
    assert np.array_equal(q.weights, p.weights)  # bit-exact floats through YAML


def test_yaml_accepts_a_problem_section(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(
        "problem:\n  weights: [1, 2]\n  drop_distortion: [0.1, 0.2]\n  gains: [1]\n"
        "  power_budget: 3\n  symbol_budget: 600\n"
    )
    p = Problem.from_yaml(path)
    assert p.weights.tolist() == [1.0, 2.0] and p.power_budget == 3.0


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("weights: [1\n", "not valid YAML"),
        ("- 1\n- 2\n", "mapping"),
        ("weights: [1]\n", "missing field"),
        (
            "weights: [1]\ndrop_distortion: [1]\ngains: []\npower_budget: 1\n"
            "symbol_budget: 1\ncolour: red\n",
            "unknown field",
        ),
        (
            "weights: [.nan]\ndrop_distortion: [1]\ngains: []\npower_budget: 1\nsymbol_budget: 1\n",
            "weights",
        ),
    ],
)
def test_bad_yaml_is_config_error(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        Problem.from_yaml(path)


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        Problem.from_yaml(tmp_path / "nope.yaml")


def test_replace_revalidates():
    p = small()
    assert p.replace(power_budget=3.0).power_budget == 3.0
    with pytest.raises(ConfigError):
        p.replace(power_budget=-3.0)


@pytest.mark.parametrize("fading", ["rayleigh", "awgn", "rician"])
@pytest.mark.parametrize("profile", ["ordered", "flat", "random"])
def test_random_problem_follows_isfr_defaults(fading, profile):
    n, k, snr_db, eta = 12, 8, 5.0, 0.75
    p = random_problem(n, k, seed=3, fading=fading, profile=profile, snr_db=snr_db, eta=eta)
    assert p.power_budget == pytest.approx(10 ** (snr_db / 10) * k * p.noise_power)
    assert p.symbol_budget == pytest.approx(eta * n * p.bits_per_feature / 2)
    assert p.weights.sum() == pytest.approx(1.0)
    assert np.all((p.drop_distortion >= 0.05) & (p.drop_distortion <= 0.35))
    if profile == "ordered":
        assert np.all(np.diff(p.weights) <= 0)
    if profile == "flat":
        assert np.allclose(p.weights, 1 / n)
    if fading == "awgn":
        assert np.allclose(p.gains, 1.0)
    assert p == random_problem(n, k, seed=3, fading=fading, profile=profile, snr_db=snr_db, eta=eta)


def test_random_problem_rejects_bad_arguments():
    for kwargs in (
        {"n": -1, "k": 2},
        {"n": 2, "k": 2, "fading": "nakagami"},
        {"n": 2, "k": 2, "profile": "steep"},
        {"n": 2, "k": 2, "eta": -1},
        {"n": 2, "k": 2, "snr_db": math.nan},
    ):
        with pytest.raises(ConfigError):
            random_problem(**kwargs)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 6),
    k=st.integers(0, 6),
    seed=st.integers(0, 2**32 - 1),
    profile=st.sampled_from(["ordered", "flat", "random"]),
    ber=st.sampled_from(["exact", "bound"]),
    dist=st.sampled_from(["absolute", "normalised"]),
)
def test_round_trip_property(n, k, seed, profile, ber, dist):
    p = random_problem(n, k, seed, profile=profile, ber_model=ber, distortion_model=dist)
    assert Problem.from_dict(p.to_dict()) == p
    assert Problem.from_dict(__import__("yaml").safe_load(p.to_yaml())) == p


# ------------------------------------------------------------------------------ Allocation
def test_allocation_basics():
    p = small()
    a = Allocation([2, 0], [0, 1], ("QPSK", "bpsk"), [4.0, 6.0])
    assert a.modulation == ("qpsk", "bpsk")
    assert a.n_selected == 2
    assert a.symbols_needed(p) == 256 + 512
    assert a.power_used() == 10.0
    assert a.is_feasible(p)
    assert a.sorted().selected.tolist() == [0, 2]
    assert a.sorted().modulation == ("bpsk", "qpsk")
    assert a.to_dict() == {
        "selected": [2, 0],
        "subchannel": [0, 1],
        "modulation": ["qpsk", "bpsk"],
        "power": [4.0, 6.0],
    }


def test_send_nothing_is_always_feasible():
    a = Allocation.send_nothing()
    p = small(gains=[], power_budget=0.0, symbol_budget=0.0)
    assert a.n_selected == 0 and a.symbols_needed(p) == 0 and a.is_feasible(p)


def test_allocation_violations():
    p = small()
    two_bpsk = Allocation([0, 1], [0, 1], ("bpsk", "bpsk"), [1, 1])
    assert two_bpsk.is_feasible(p)  # 1024 symbols fit S_max = 1024 exactly
    assert "symbols" in two_bpsk.violations(small(symbol_budget=1023))[0]
    assert "power" in Allocation([0], [0], ("bpsk",), [11.0]).violations(p)[0]
    assert "subchannel" in Allocation([0], [5], ("bpsk",), [1.0]).violations(p)[0]
    assert "selected" in Allocation([7], [0], ("bpsk",), [1.0]).violations(p)[0]
    q = small(modulations=["bpsk"])
    assert "not in the problem" in Allocation([0], [0], ("qpsk",), [1.0]).violations(q)[0]
    # the power budget is met up to rounding
    assert Allocation([0], [0], ("bpsk",), [10.0 * (1 + 1e-12)]).is_feasible(p)


@pytest.mark.parametrize(
    "args",
    [
        ([0, 0], [0, 1], ("bpsk", "bpsk"), [1, 1]),
        ([0, 1], [1, 1], ("bpsk", "bpsk"), [1, 1]),
        ([0, 1], [0, 1], ("bpsk",), [1, 1]),
        ([0], [0], ("bpsk",), [-1.0]),
        ([0], [0], ("bpsk",), [math.nan]),
        ([0], [0], ("8psk",), [1.0]),
        ([-1], [0], ("bpsk",), [1.0]),
    ],
)
def test_allocation_rejects_malformed(args):
    with pytest.raises(ConfigError):
        Allocation(*args)
