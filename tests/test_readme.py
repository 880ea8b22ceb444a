"""README's set-up is the Makefile's, and CI runs README's command (.ci/run calls make test)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def section_blocks(heading: str) -> list[list[str]]:
    """Shell lines of each bash block under README's ``heading`` (up to the next heading)."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"{heading}\n", 1)[1]
    body = re.split(r"\n#{2,3} ", body, maxsplit=1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    return [block.strip().splitlines() for block in blocks]


def make_recipe(target_pattern: str) -> list[str]:
    """Commands of the Makefile rule whose target line matches ``target_pattern``, with the
    venv prefix ``$(BIN)/`` removed and ``$(TORCH)`` expanded, as a user types them."""
    lines = (ROOT / "Makefile").read_text().splitlines()
    torch = next(line.split("?=")[1].strip() for line in lines if line.startswith("TORCH ?="))
    start = next(i for i, line in enumerate(lines) if re.match(target_pattern, line))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        command = line.strip().lstrip("@").replace("$(BIN)/", "").replace("$(TORCH)", torch)
        recipe.append(command)
    return recipe


def test_quick_start_is_two_make_commands() -> None:
    first = section_blocks("## Quick start")[0]
    assert first == ["make quickstart", "make test"]


def test_install_by_hand_is_what_make_runs() -> None:
    by_hand = section_blocks("### Install by hand")[0]
    assert by_hand[0].startswith("python3 -m venv .venv")
    assert make_recipe(r"^\$\(STAMP\):")[:2] == by_hand[1:]


def test_readme_test_command_is_what_make_test_runs() -> None:
    assert section_blocks("## Test")[0] == make_recipe(r"^test:")


def test_quickstart_target_runs_the_readme_scenario() -> None:
    run_block = section_blocks("## Run")[0]
    recipe = make_recipe(r"^quickstart:")
    assert recipe[0].startswith(run_block[0])


def test_ci_runs_make_test_on_a_fresh_venv() -> None:
    lines = [
        line
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert "rm -rf .venv-ci" in lines
    assert lines[-1] == "make test VENV=.venv-ci"
