"""``semcom solve``: JSON and table output, problem files, degenerate and invalid input."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from optim.distortion import objective
from optim.problem import Allocation, random_problem
from semcom.cli import main

KEYS = ["method", "objective", "selected", "subchannel", "modulation", "power", "seconds"]


def _json(capsys, argv):
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    data = json.loads(out)
    assert list(data) == KEYS
    return data


@pytest.mark.parametrize(
    "method",
    ["hierarchical", "ui-ep", "ui-opt", "passive", "hungarian", "equal-power",
     "random-matching", "lowest-order"],
)  # fmt: skip
def test_random_instance_every_method(capsys, method):
    data = _json(capsys, ["solve", "--random", "6", "5", "3", "--method", method, "--json"])
    assert data["method"] == method
    problem = random_problem(6, 5, 3)
    alloc = Allocation(data["selected"], data["subchannel"], data["modulation"], data["power"])
    assert alloc.is_feasible(problem)
    assert data["objective"] == pytest.approx(objective(problem, alloc), rel=1e-12)


def test_problem_file_and_options(capsys, tmp_path):
    problem = random_problem(5, 5, seed=8, ber_model="bound")
    path = tmp_path / "p.yaml"
    problem.to_yaml(path)
    a = _json(capsys, ["solve", str(path), "--json"])
    b = _json(capsys, ["solve", str(path), "--json", "--option", "patterns=all"])
    assert a["objective"] == pytest.approx(b["objective"])
    c = _json(capsys, ["solve", str(path), "--json", "--ber-model", "exact"])
    alloc = Allocation(c["selected"], c["subchannel"], c["modulation"], c["power"])
    assert c["objective"] == pytest.approx(objective(problem.replace(ber_model="exact"), alloc))


def test_randomised_method_seed(capsys):
    argv = ["solve", "--random", "8", "8", "1", "--method", "random-matching", "--json"]
    a = _json(capsys, [*argv, "--seed", "5"])
    b = _json(capsys, [*argv, "--seed", "5"])
    assert a["subchannel"] == b["subchannel"]


def test_human_table(capsys):
    assert main(["solve", "--random", "4", "4", "0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("method hierarchical") and "feature" in out and "objective" in out


@pytest.mark.parametrize("spelling", ["inf", "Infinity", "+inf", ".inf"])
def test_time_limit_inf_means_no_limit(capsys, spelling):
    """``time_limit=inf`` as a user types it (Python's spelling) is the documented "no
    limit", like YAML's ``.inf``: the search runs to its proof."""
    argv = ["solve", "--random", "4", "4", "1", "--method", "exact", "--json"]
    assert main([*argv, "--option", f"time_limit={spelling}"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["optimal"] is True and data["stopped_by"] is None


@pytest.mark.parametrize("value", ["-inf", "nan", "0"])
def test_time_limit_outside_its_range_exits_2(capsys, value):
    argv = ["solve", "--random", "4", "4", "1", "--method", "exact", "--json"]
    assert main([*argv, "--option", f"time_limit={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "time_limit=" in err and "allowed: time_limit > 0" in err


@pytest.mark.parametrize(
    "extra",
    [["--random", "6", "0", "1"], ["--random", "6", "4", "1", "--eta", "0.01"],
     ["--random", "0", "4", "1"], ["--random", "6", "4", "1", "--snr-db", "-200"]],
)  # fmt: skip
def test_degenerate_instances_send_nothing(capsys, extra):
    data = _json(capsys, ["solve", *extra, "--json"])
    assert data["selected"] == [] and math.isfinite(data["objective"])
    assert main(["solve", *extra]) == 0
    assert "send nothing" in capsys.readouterr().out


BAD_YAML = {
    "negative_power": "weights: [1, 2]\ndrop_distortion: [0.1, 0.1]\ngains: [1, 1]\n"
    "power_budget: -3\nsymbol_budget: 1000\n",
    "nan_weight": "weights: [.nan, 2]\ndrop_distortion: [0.1, 0.1]\ngains: [1, 1]\n"
    "power_budget: 3\nsymbol_budget: 1000\n",
    "inf_weight": "weights: [.inf, 2]\ndrop_distortion: [0.1, 0.1]\ngains: [1, 1]\n"
    "power_budget: 3\nsymbol_budget: 1000\n",
    "broken": "weights: [1, 2\n",
    "huge_span": "weights: [1, 2]\ndrop_distortion: [0.1, 0.1]\ngains: [1, 1]\n"
    "power_budget: 3\nsymbol_budget: 1000\nquantiser_span: 1.0e+300\n",
    "snr_out_of_range": "weights: [1, 2]\ndrop_distortion: [0.1, 0.1]\ngains: [1, 1.0e-200]\n"
    "power_budget: 3\nsymbol_budget: 1000\n",
}


@pytest.mark.parametrize("case", sorted(BAD_YAML))
def test_invalid_problem_files_exit_2(capsys, tmp_path, case):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_YAML[case])
    assert main(["solve", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("semcom solve: error:")


@pytest.mark.parametrize(
    "argv",
    [
        ["solve"],
        ["solve", "x.yaml", "--random", "2", "2", "2"],
        ["solve", "--random", "2", "2", "2", "--method", "nope"],
        ["solve", "--random", "-2", "2", "2"],
        ["solve", "--random", "2", "2", "-2"],
        ["solve", "--random", "2", "2", "2", "--option", "refine"],
        ["solve", "--random", "2", "2", "2", "--option", "colour=red"],
        ["solve", "--random", "2", "2", "2", "--fading", "nakagami"],
        ["solve", "--random", "2", "2", "2", "--ber-model", "chernoff"],
        ["solve", "--random", "2", "2", "x"],
        ["solve", "missing.yaml"],
    ],
)
def test_usage_errors_exit_2(capsys, argv):
    try:
        status = main(argv)
    except SystemExit as stop:  # argparse's own usage errors exit directly
        status = stop.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_subprocess_bad_input_exits_2_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_YAML["negative_power"])
    for argv in ([str(path)], ["--random", "3", "3", "1", "--method", "nope"]):
        proc = subprocess.run(
            [sys.executable, "-m", "semcom.cli", "solve", *argv, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
        assert proc.stderr.strip().count("\n") == 0


def test_subprocess_ok_prints_one_json_object():
    proc = subprocess.run(
        [sys.executable, "-m", "semcom.cli", "solve", "--random", "4", "4", "2", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert list(data) == KEYS and "NaN" not in proc.stdout
