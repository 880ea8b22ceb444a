"""semcom.registry: one registry mechanism for every method family, and ``semcom methods``."""

from __future__ import annotations

import json

import numpy as np
import pytest

import optim
import semcom.registry as registry_module
from channels.errors import ConfigError
from semcom.cli import main
from semcom.registry import ALLOCATION, MethodInfo, Registry, all_methods


@pytest.fixture
def isolated_families(monkeypatch: pytest.MonkeyPatch) -> None:
    """Families created by a test vanish after it."""
    registry_module.families()  # import the real families first
    monkeypatch.setattr(registry_module, "_FAMILIES", dict(registry_module._FAMILIES))


def test_register_get_names_info(isolated_families: None) -> None:
    reg = Registry("toy")

    @reg.register("Double", description="Twice the input", paper="arXiv:0000.00000")
    def double(x: int) -> int:
        return 2 * x

    assert reg.get("double") is double and reg.get(" DOUBLE ") is double
    assert reg.names() == ["double"] and "double" in reg and len(reg) == 1
    assert reg.info("double") == MethodInfo("toy", "double", "Twice the input", "arXiv:0000.00000")
    assert reg.check("Double") == "double"
    assert MethodInfo("toy", "double", "Twice the input", "arXiv:0000.00000") in all_methods()


def test_unknown_name_lists_the_available_ones(isolated_families: None) -> None:
    reg = Registry("toy")
    reg.register("a")(object())
    reg.register("b")(object())
    with pytest.raises(ConfigError, match=r"toy method: 'c' is not one of a, b$"):
        reg.get("c")
    with pytest.raises(ConfigError, match="hierarchical"):
        ALLOCATION.get("nope")


def test_programming_errors(isolated_families: None) -> None:
    reg = Registry("toy")
    reg.register("a")(1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("A")(2)
    with pytest.raises(ValueError, match="already exists"):
        Registry("toy")
    with pytest.raises(ValueError, match="one line"):
        reg.register("b", description="two\nlines")


def test_allocation_family_mirrors_optim() -> None:
    assert ALLOCATION.names() == list(optim.available_methods())
    for name, description in optim.available_methods().items():
        assert ALLOCATION.info(name).description == description
    assert ALLOCATION.info("hierarchical").paper == "arXiv:2604.00595"
    problem = optim.random_problem(4, 4, seed=0)
    allocation = ALLOCATION.get("lowest-order")(problem)
    assert allocation == optim.solve(problem, "lowest-order").allocation


def test_all_methods_covers_every_family() -> None:
    infos = all_methods()
    keys = {(i.family, i.name) for i in infos}
    assert {("importance", "masking"), ("importance", "gradient")} <= keys
    assert {("allocation", name) for name in optim.available_methods()} <= keys
    assert len(keys) == len(infos)
    assert all(i.description and "\n" not in i.description for i in infos)
    assert all(i.paper.startswith("arXiv:") for i in infos if i.family == "importance")


def test_cli_methods_json_and_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["methods", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [i.to_dict() for i in all_methods()]
    assert all(list(row) == ["family", "name", "description", "paper"] for row in rows)
    assert main(["methods"]) == 0
    text = capsys.readouterr().out
    for info in all_methods():
        assert info.name in text and info.description in text
    with pytest.raises(SystemExit) as exit_info:
        main(["methods", "--bogus"])
    assert exit_info.value.code == 2


def test_registry_entries_are_usable_by_name() -> None:
    # a name from YAML selects an implementation of each family
    from semcom.importance import IMPORTANCE, MaskingImportance

    assert IMPORTANCE.get("masking") is MaskingImportance
    assert np.isclose(optim.solve(optim.random_problem(3, 3, seed=1), "hierarchical").objective,
                      optim.solve(optim.random_problem(3, 3, seed=1),
                                  ALLOCATION.check("HIERARCHICAL")).objective)  # fmt: skip
