"""``semcom solve``: integer seeds, and the exact method's time limit and certificate."""

from __future__ import annotations

import json

import pytest

from optim.distortion import objective
from optim.problem import Allocation, random_problem
from semcom.cli import main

KEYS = ["method", "objective", "selected", "subchannel", "modulation", "power", "seconds"]
STATUS = ["optimal", "lower_bound", "gap", "stopped_by"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--random", "4", "4", "1", "--method", "ui-ep", "--seed", "1.5"],
        ["--random", "4", "4", "1", "--method", "ui-ep", "--seed", "1e3"],
        ["--random", "4", "4", "1", "--method", "ui-ep", "--seed", "abc"],
        ["--random", "4", "4", "1", "--method", "ui-ep", "--seed", "-1"],
        ["--random", "4", "4", "1", "--method", "ui-ep", "--option", "seed=1.5"],
        ["--random", "4", "4", "1.5"],
    ],
)
def test_seed_must_be_an_integer(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    try:
        status = main(["solve", *argv, "--json"])
    except SystemExit as stop:  # argparse's own usage errors
        status = stop.code
    assert status == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert "seed" in captured.err or "--random" in captured.err
    assert "Traceback" not in captured.err


def test_exact_time_limit_returns_the_best_allocation_marked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--option time_limit=0.05`` on a problem needing ~7 s: exit 0 with the incumbent and
    its certificate (it used to run the whole enumeration, then fail)."""
    argv = ["solve", "--random", "8", "8", "1", "--eta", "2", "--method", "exact",
            "--option", "time_limit=0.05", "--json"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == KEYS + STATUS
    assert data["stopped_by"] == "time_limit" and data["seconds"] < 20 * 0.05
    assert 0 < data["lower_bound"] <= data["objective"]
    problem = random_problem(8, 8, 1, eta=2.0)
    alloc = Allocation(data["selected"], data["subchannel"], data["modulation"], data["power"])
    assert alloc.is_feasible(problem)
    assert data["objective"] == pytest.approx(objective(problem, alloc), rel=1e-12)


def test_exact_table_says_whether_optimality_is_proven(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["solve", "--random", "7", "7", "3", "--snr-db", "5", "--method", "exact"]
    assert main([*base, "--option", "node_limit=1", "--option", "engine=bnb"]) == 0
    out = capsys.readouterr().out
    assert "NOT proven optimal: lower bound" in out and "stopped by node_limit" in out
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "proven optimal: lower bound" in out and "NOT" not in out and "stopped" not in out
    assert main([*base, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["optimal"] is True and data["stopped_by"] is None and data["gap"] <= 1.01e-9
