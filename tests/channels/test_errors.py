"""The shared validators of channels.errors: what each accepts, converts and rejects, verbatim."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from channels.errors import (
    ConfigError,
    check_choice,
    check_flag,
    check_int,
    check_name,
    check_real,
    check_seed,
    check_vector,
    fail,
)


def message(call, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_fail_message_and_cut() -> None:
    assert str(fail("x", "a", "b")) == "x: 'a' is invalid; allowed: b"
    long = "y" * 100
    text = str(fail("x", long, "b", max_repr=80))
    shown = text.split(": ", 1)[1].split(" is invalid")[0]
    assert len(shown) == 80 and shown == repr(long)[:77] + "..."
    assert str(fail("x", "short", "b", max_repr=80)) == "x: 'short' is invalid; allowed: b"


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_check_int_accepts_integers(value) -> None:
    out = check_int("n", value, 0, 5)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [True, np.True_, 3.0, "3", None, Fraction(3), 2.5])
def test_check_int_rejects_non_integers(value) -> None:
    assert message(check_int, "n", value, 0) == f"n: {value!r} is invalid; allowed: an integer >= 0"


@pytest.mark.parametrize("value", [3.0, np.float64(3.0), Fraction(6, 2), 3])
def test_check_int_coerce_accepts_whole_numbers(value) -> None:
    out = check_int("n", value, 0, coerce=True)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize("value", [2.5, "3", math.nan, math.inf, True, None])
def test_check_int_coerce_still_rejects(value) -> None:
    assert "allowed: an integer in 0..9" in message(check_int, "n", value, 0, 9, coerce=True)


def test_check_int_bounds_and_override() -> None:
    assert check_int("n", 1, 1, 1) == 1
    assert message(check_int, "n", 0, 1) == "n: 0 is invalid; allowed: an integer >= 1"
    assert message(check_int, "n", 5, 1, 4) == "n: 5 is invalid; allowed: an integer in 1..4"
    assert message(check_int, "n", 5, 1, 4, allowed="few") == "n: 5 is invalid; allowed: few"


@pytest.mark.parametrize(
    ("kwargs", "rule"),
    [
        ({}, "a finite number"),
        ({"low": 0}, "a finite number >= 0"),
        ({"low": 0, "open_low": True}, "a finite number > 0"),
        ({"high": 1.5, "open_high": True}, "a finite number < 1.5"),
        ({"low": 0, "allow_inf": True}, "a number >= 0"),
        ({"low": 0.0, "high": 1.0}, "a number in [0.0, 1.0]"),
        ({"low": 0, "high": 1, "open_low": True, "open_high": True}, "a number in (0, 1)"),
        ({"low": 0.0, "high": 1.0, "open_high": True}, "a number in [0.0, 1.0)"),
    ],
)
def test_check_real_generated_rule(kwargs, rule) -> None:
    assert message(check_real, "x", math.nan, **kwargs) == f"x: nan is invalid; allowed: {rule}"


def test_check_real_interval_ends() -> None:
    assert check_real("x", 0, 0, 1) == 0.0
    assert check_real("x", 1, 0, 1) == 1.0
    for kwargs in ({"open_low": True}, {"open_high": True}):
        end = 0 if "open_low" in kwargs else 1
        with pytest.raises(ConfigError):
            check_real("x", end, 0, 1, **kwargs)
    with pytest.raises(ConfigError):
        check_real("x", -1e-300, 0)
    with pytest.raises(ConfigError):
        check_real("x", 1 + 1e-15, 0, 1)


def test_check_real_infinity() -> None:
    with pytest.raises(ConfigError):
        check_real("x", math.inf, 0)
    assert check_real("x", math.inf, 0, allow_inf=True) == math.inf
    with pytest.raises(ConfigError):
        check_real("x", -math.inf, 0, allow_inf=True)
    with pytest.raises(ConfigError):
        check_real("x", math.inf, 0, 10, allow_inf=True)


@pytest.mark.parametrize("value", [2, 2.0, np.float32(2.0), np.int64(2), Fraction(2)])
def test_check_real_accepts_real_numbers(value) -> None:
    out = check_real("x", value)
    assert out == 2.0 and type(out) is float


@pytest.mark.parametrize("value", [True, np.False_, "2", None, [2.0], np.array(2.0), 1j])
def test_check_real_rejects_non_reals(value) -> None:
    assert message(check_real, "x", value) == f"x: {value!r} is invalid; allowed: a finite number"


def test_check_real_coerce() -> None:
    assert check_real("x", "1e3", coerce=True) == 1000.0
    assert check_real("x", np.array(2.5), coerce=True) == 2.5
    for value in ("abc", None, True, 10**400, [1.0]):
        with pytest.raises(ConfigError):
            check_real("x", value, coerce=True)


def test_check_choice_and_name() -> None:
    assert check_choice("c", "a", ("a", "b")) == "a"
    assert message(check_choice, "c", "A", ("a", "b")) == "c: 'A' is invalid; allowed: a, b"
    assert message(check_choice, "c", 3, ("a", "b"), "a or b") == "c: 3 is invalid; allowed: a or b"
    assert check_name("c", "  B ", ("a", "b")) == "b"
    assert message(check_name, "c", "x", ("a", "b")) == "c: 'x' is not one of a, b"
    assert (
        message(check_name, "c", "x", ("a", "b"), "a or b") == "c: 'x' is invalid; allowed: a or b"
    )


def test_check_flag() -> None:
    assert check_flag("f", True) is True
    assert check_flag("f", np.False_) is False
    assert check_flag("f", None, none_ok=True) is None
    assert message(check_flag, "f", None) == "f: None is invalid; allowed: true or false"
    assert message(check_flag, "f", 1, none_ok=True) == (
        "f: 1 is invalid; allowed: true, false or null"
    )
    assert message(check_flag, "f", "no", allowed="yes") == "f: 'no' is invalid; allowed: yes"


def test_check_seed() -> None:
    gen = np.random.default_rng(0)
    assert check_seed("seed", None) is None
    assert check_seed("seed", np.int64(5)) == 5
    assert check_seed("seed", gen, generator=True) is gen
    assert message(check_seed, "seed", gen) == f"seed: {gen!r} is invalid; allowed: an integer >= 0"
    assert message(check_seed, "seed", 8, 7) == "seed: 8 is invalid; allowed: an integer in 0..7"


def test_check_vector() -> None:
    out = check_vector("v", (1, 2.5), 0)
    assert out.dtype == np.float64 and out.tolist() == [1.0, 2.5] and not out.flags.writeable
    assert check_vector("v", np.array(3.0)).tolist() == [3.0]
    assert check_vector("v", []).shape == (0,)
    source = np.array([1.0, 2.0])
    assert check_vector("v", source) is not source and source.flags.writeable
    rule = "a list of finite numbers >= 0"
    for value in (3.0, [[1.0]], [1.0, math.nan], [math.inf], [-1.0], "ab", [1, "x"]):
        assert message(check_vector, "v", value, 0) == f"v: {value!r} is invalid; allowed: {rule}"
    assert "allowed: a list of finite numbers" in message(check_vector, "v", [math.nan])


def test_check_vector_min_size_and_unconvertible_text() -> None:
    assert check_vector("v", [1.0], min_size=1).tolist() == [1.0]
    assert message(check_vector, "v", [], min_size=1) == (
        "v: [] is invalid; allowed: a list of finite numbers"
    )
    two = {"allowed": "a non-empty vector", "unconvertible": "a vector"}
    for value in ("ab", [1, "x"], [[1.0], [1.0, 2.0]], [10**400]):
        assert (
            message(check_vector, "v", value, **two)
            == f"v: {value!r} is invalid; allowed: a vector"
        )
    for value in ([], 3.0, [[1.0]], [math.nan]):
        assert message(check_vector, "v", value, min_size=1, **two) == (
            f"v: {value!r} is invalid; allowed: a non-empty vector"
        )


def test_check_real_also_accepts_listed_values_outside_the_interval() -> None:
    assert check_real("s", math.inf, -3, 3, also=(math.inf,)) == math.inf
    assert check_real("s", "inf", -3, 3, also=(math.inf,), coerce=True) == math.inf
    assert check_real("s", 2, -3, 3, also=(math.inf,)) == 2.0
    for value in (-math.inf, 4.0, math.nan):
        assert message(check_real, "s", value, -3, 3, also=(math.inf,)) == (
            f"s: {value!r} is invalid; allowed: a number in [-3, 3] or inf"
        )
    with pytest.raises(ConfigError):  # NaN never, even when listed
        check_real("s", math.nan, also=(math.nan,))
