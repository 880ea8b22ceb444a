"""semcom.sweep.grid: grid order and index, canonical keys (hard-coded), base/axes merge."""

from __future__ import annotations

import itertools
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from channels.errors import ConfigError
from semcom.sweep import Point, expand, format_value, n_points

ROOT = Path(__file__).resolve().parents[2]


def test_row_major_order_and_index_match_nested_loops() -> None:
    axes = {"a": [1, 2], "b": ["x", "y", "z"], "c": [0.5, -1.0]}
    points = expand(axes)
    expected = []
    for a in axes["a"]:  # independent reference: nested loops, last axis innermost
        for b in axes["b"]:
            for c in axes["c"]:
                expected.append({"a": a, "b": b, "c": c})
    assert [p.as_dict() for p in points] == expected
    assert [p.index for p in points] == list(range(12)) == list(range(n_points(axes)))
    # index formula: ((i_a * 3) + i_b) * 2 + i_c
    combos = itertools.product(range(2), range(3), range(2))
    for (ia, ib, ic), p in zip(combos, points, strict=True):
        assert p.index == (ia * 3 + ib) * 2 + ic
    assert [name for name, _ in points[0].values] == ["a", "b", "c"]


def test_hard_coded_keys() -> None:
    base = {"channel": "rayleigh", "snr_db": 99.0, "eta": 0.5, "n_subchannels": 16, "seed": 0}
    axes = {"snr_db": [0.0, 0.1 + 0.2, 1e-300, -2.5, math.inf], "scheme": ["isfr-uep", "ui-ep"]}
    points = expand(axes, base)
    assert len(points) == 10
    expected = {
        0: "channel=rayleigh|snr_db=0.0|eta=0.5|n_subchannels=16|seed=0|scheme=isfr-uep",
        3: "channel=rayleigh|snr_db=0.30000000000000004|eta=0.5|n_subchannels=16|seed=0|"
        "scheme=ui-ep",
        4: "channel=rayleigh|snr_db=1e-300|eta=0.5|n_subchannels=16|seed=0|scheme=isfr-uep",
        7: "channel=rayleigh|snr_db=-2.5|eta=0.5|n_subchannels=16|seed=0|scheme=ui-ep",
        9: "channel=rayleigh|snr_db=inf|eta=0.5|n_subchannels=16|seed=0|scheme=ui-ep",
    }
    assert {i: points[i].key for i in expected} == expected
    # NumPy scalars give the same keys as Python numbers, and are stored as Python numbers.
    np_points = expand({"snr_db": list(np.array([0.0, 0.25])), "k": [np.int64(16)]})
    assert [p.key for p in np_points] == ["snr_db=0.0|k=16", "snr_db=0.25|k=16"]
    assert type(np_points[0]["snr_db"]) is float and type(np_points[0]["k"]) is int


def test_format_value() -> None:
    assert format_value(0.1) == "0.1"
    assert format_value(1e22) == "1e+22"
    assert format_value(5) == "5" and format_value(5.0) == "5.0"
    assert format_value(True) == "True" and format_value(None) == "None"
    assert format_value(math.nan) == "nan" and format_value(-math.inf) == "-inf"
    assert format_value(np.float32(0.5)) == "0.5"
    assert format_value([1, 0.5, "a"]) == "[1,0.5,a]"
    with pytest.raises(TypeError, match="no canonical text"):
        format_value({"a": 1})


def test_keys_are_the_same_in_another_process() -> None:
    """Keys must not depend on hash randomisation or process state (resume relies on them)."""
    axes = {"snr_db": [0.0, 1 / 3, 1e-300], "scheme": ["a", "b"], "seed": [0, 2**63 - 1]}
    base = {"channel": "awgn", "eta": 0.5}
    code = (
        "import json; from semcom.sweep import expand; "
        f"print(json.dumps([p.key for p in expand({axes!r}, {base!r})]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    assert json.loads(done.stdout) == [p.key for p in expand(axes, base)]


def test_base_and_axes_merge() -> None:
    base = {"channel": "awgn", "snr_db": 3.0, "eta": 0.5}
    points = expand({"scheme": ["x"], "snr_db": [1.0, 2.0]}, base)
    # the overridden name keeps its base position; new axes follow in axis order
    assert [n for n, _ in points[0].values] == ["channel", "snr_db", "eta", "scheme"]
    assert [p.as_dict() for p in points] == [
        {"channel": "awgn", "snr_db": 1.0, "eta": 0.5, "scheme": "x"},
        {"channel": "awgn", "snr_db": 2.0, "eta": 0.5, "scheme": "x"},
    ]
    assert base == {"channel": "awgn", "snr_db": 3.0, "eta": 0.5}  # not modified
    # no axes: one point with the base values
    (only,) = expand({}, base)
    assert only.index == 0 and only.key == "channel=awgn|snr_db=3.0|eta=0.5"


def test_point_access_pickle_and_hash() -> None:
    point = expand({"a": [1], "b": ["z"]}, {"c": None})[0]
    assert point["a"] == 1 and point["c"] is None
    with pytest.raises(KeyError):
        point["missing"]
    clone = pickle.loads(pickle.dumps(point))
    assert clone == point and clone.key == point.key and hash(clone) == hash(point)
    assert Point(0, (("a", 1),)) != Point(1, (("a", 1),))


@pytest.mark.parametrize(
    ("axes", "base", "message"),
    [
        ({"snr_db": []}, None, "sweep.snr_db: [] is invalid; allowed: a non-empty list of values"),
        ({"snr_db": "0"}, None, "sweep.snr_db: '0' is invalid; allowed: a non-empty list"),
        ({"snr_db": [0.0, 1.0, 0.0]}, None, "sweep.snr_db: [0.0, 1.0, 0.0] is invalid; allowed: d"),
        ({"x": [{"a": 1}]}, None, "sweep.x[0]: {'a': 1} is invalid; allowed: a number, string"),
        ({"x": ["a|b"]}, None, "sweep.x[0]: 'a|b' is invalid; allowed: text without '|'"),
        ({"a=b": [1]}, None, "sweep: 'a=b' is invalid; allowed: a non-empty name"),
        ({}, {"c": object}, "c: <class 'object'> is invalid; allowed: a number, string"),
    ],
)  # fmt: skip
def test_invalid_axes(axes: dict, base: dict | None, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        expand(axes, base)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)
