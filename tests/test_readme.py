"""README's install and test commands are the ones CI runs (.ci/run)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def section_commands(section: str) -> list[str]:
    """Shell lines of the bash blocks in README's ``## section``."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, flags=re.S)
    return [line for block in blocks for line in block.strip().splitlines()]


def ci_commands(marker: str) -> list[str]:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    start = lines.index(f"# --- {marker} (as README.md) ---") + 1
    out = []
    for line in lines[start:]:
        if line.startswith("# ---"):
            break
        out.append(line)
    return out


def test_ci_installs_exactly_as_readme_says() -> None:
    readme = section_commands("Install")
    assert readme[0].startswith("python3 -m venv")  # CI makes its own venv the same way
    assert ci_commands("install") == readme[1:]


def test_ci_runs_readme_test_command() -> None:
    assert ci_commands("test") == section_commands("Test")
