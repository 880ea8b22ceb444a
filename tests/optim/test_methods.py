"""optim.methods: the registry, lazy ``exact``, and solve()'s result contract."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

import optim
from channels.errors import ConfigError
from optim.distortion import objective
from optim.methods import METHODS, RL_KINDS, MethodRegistry, SolveResult
from optim.problem import Allocation, random_problem

NAMES = [
    "hierarchical",
    "ui-ep",
    "ui-opt",
    "passive",
    "hungarian",
    "equal-power",
    "random-matching",
    "lowest-order",
    "exact",
    "dhondt",
    "harmony",
    "polca",
    *(f"rl:{kind}" for kind in RL_KINDS),
]


def test_registry_names_and_descriptions():
    methods = optim.available_methods()
    assert list(methods) == NAMES
    for name in NAMES:
        entry = METHODS[name]
        assert entry.name == name and entry.description and "\n" not in entry.description
        assert entry.source
    randomised = {m for m in NAMES if METHODS[m].randomised}
    assert randomised == {"ui-ep", "random-matching", "harmony", "polca"}


def test_unknown_method_and_duplicate_registration():
    with pytest.raises(ConfigError) as info:
        METHODS["greedy"]
    assert str(info.value) == f"method: 'greedy' is not one of {', '.join(NAMES)}"
    registry = MethodRegistry()
    registry.register("a", "d", "s")(lambda problem: Allocation.send_nothing())
    with pytest.raises(ValueError):
        registry.register("a", "d", "s")(lambda problem: Allocation.send_nothing())
    assert registry["A"].name == "a" and len(registry) == 1


@pytest.mark.parametrize("method", [m for m in NAMES if m != "exact" and not m.startswith("rl:")])
def test_solve_reports_the_problems_own_objective(method):
    problem = random_problem(6, 5, seed=11, profile="random")
    result = optim.solve(problem, method, **({"seed": 2} if METHODS[method].randomised else {}))
    assert isinstance(result, SolveResult) and result.method == method
    assert result.objective == objective(problem, result.allocation)
    assert result.seconds >= 0 and result.feasible
    d = result.to_dict()
    assert list(d) == [
        "method",
        "objective",
        "selected",
        "subchannel",
        "modulation",
        "power",
        "seconds",
    ]


def test_objective_uses_the_problems_ber_model_not_the_deciders():
    """ui-opt decides with uniform weights and the bound; its score is the problem's own."""
    problem = random_problem(6, 6, seed=3, ber_model="exact")
    result = optim.solve(problem, "ui-opt")
    bound = problem.replace(ber_model="bound")
    assert result.objective == objective(problem, result.allocation)
    assert result.objective != objective(bound, result.allocation)


def test_option_errors_are_config_errors():
    problem = random_problem(3, 3, seed=0)
    with pytest.raises(ConfigError, match="colour"):
        optim.solve(problem, "hierarchical", colour="red")
    with pytest.raises(ConfigError, match="matching"):
        optim.solve(problem, "passive", ordered_prior=True)
    with pytest.raises(ConfigError):
        optim.solve(problem, "ui-ep", refine=True)
    with pytest.raises(ConfigError):
        optim.solve({"weights": [1]}, "hierarchical")
    # seed=None is accepted (and ignored) by deterministic methods
    assert optim.solve(problem, "lowest-order", seed=None).feasible


def test_exact_is_lazy(monkeypatch):
    """Registered without importing optim.exact; unavailable -> one-line ConfigError."""
    assert "exact" in optim.available_methods()
    if importlib.util.find_spec("optim.exact") is None:
        with pytest.raises(ConfigError, match="unavailable"):
            optim.solve(random_problem(2, 2, seed=0), "exact")
    else:
        monkeypatch.setitem(sys.modules, "optim.exact", None)  # import fails like a missing one
        with pytest.raises((ConfigError, ImportError)):
            _ = METHODS["exact"].func


def test_exact_is_never_worse():
    """optim.exact ships with the package: failing to import it fails this test (no skip)."""
    problem = random_problem(3, 3, seed=1)
    exact = optim.solve(problem, "exact")
    assert exact.objective <= optim.solve(problem, "hierarchical").objective * (1 + 1e-6)
    assert np.isfinite(exact.objective)
