"""The repository explains itself: every document it points to exists.

- Every ``something.md`` named in a tracked text file (sources, docs, scenarios, notebooks,
  configuration) and every relative Markdown link target ``](path)`` in a Markdown file or a
  notebook resolves to a file of the repository, relative to the citing file's folder or to
  the repository root. URLs are not checked.
- Every section cited as ``path.md §N.N`` (also ``§4.3-§4.6``, ``§4.3, §4.6``,
  ``§2.3 and §4.5``) is a numbered heading of that file (``### 4.3 ...`` or ``## 4. ...``).
- No module of the packages skips a doctest: every example in a docstring runs.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

SELF = Path(__file__).resolve()
ROOT = SELF.parents[1]
TEXT_SUFFIXES = (".py", ".md", ".yaml", ".yml", ".toml", ".ipynb", ".cfg")
LINK_SUFFIXES = (".md", ".ipynb")
PACKAGES = ("channels", "optim", "semcom")

URL = re.compile(r"(?:https?|ftp)://[^\s)>\]\"'`]+")
MD_TOKEN = re.compile(r"(?<![\w./-])(\w[\w./-]*\.md)(?![\w])")
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
SECTION = r"§\d+(?:\.\d+)*"
CITATION = re.compile(
    rf"(?<![\w./-])(\w[\w./-]*\.md)((?:\s*(?:,|-|–|and)?\s*{SECTION})+)"  # noqa: RUF001
)
# a pathlib join of string literals, ``"docs" / "scenarios.md"``: checked as ``docs/scenarios.md``
PATH_JOIN = re.compile(r"""((?:(["'])[\w.-]+\2\s*/\s*)+)(["'])([\w./-]+\.md)\3""")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s")
SKIP_DIRECTIVE = re.compile(r"doctest:\s*\+SKIP")


@cache
def text_files() -> tuple[Path, ...]:
    """Tracked and untracked-but-not-ignored text files of the repository."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout (git ls-files failed)")
    files = []
    for name in out.splitlines():
        path = ROOT / name
        if path == SELF:  # its examples name files on purpose
            continue
        if (path.suffix in TEXT_SUFFIXES or path.name == "Makefile") and path.is_file():
            files.append(path)
    return tuple(sorted(files))


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def resolve(target: str, citing: Path) -> Path | None:
    """The file ``target`` names, relative to the citing file's folder or to the root."""
    for base in (citing.parent, ROOT):
        candidate = (base / target).resolve()
        if candidate.exists() and candidate.is_relative_to(ROOT):
            return candidate
    return None


def _joined(m: re.Match[str]) -> str:
    parts = re.findall(r"""["']([\w.-]+)["']""", m.group(1))
    return " " + "/".join([*parts, m.group(4)]) + " "


def md_targets(line: str, link_file: bool) -> list[str]:
    """Markdown files named on ``line`` and, in Markdown/notebook files, its link targets."""
    text = PATH_JOIN.sub(_joined, URL.sub(" ", line))
    found = [m.group(1).rstrip(".") for m in MD_TOKEN.finditer(text)]
    found = [t for t in found if t.endswith(".md")]
    if link_file:
        for m in LINK.finditer(line):
            target = m.group(1).split("#", 1)[0]
            if target and not URL.match(m.group(1)) and not target.startswith("mailto:"):
                found.append(target)
    return found


def heading_numbers(path: Path) -> set[str]:
    return {m.group(1) for line in lines_of(path) if (m := HEADING.match(line))}


def test_every_referenced_file_exists() -> None:
    missing = []
    for path in text_files():
        link_file = path.suffix in LINK_SUFFIXES
        for number, line in enumerate(lines_of(path), 1):
            for target in md_targets(line, link_file):
                if resolve(target, path) is None:
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {target}")
    assert not missing, "references to files that are not in the repository:\n" + "\n".join(missing)


def test_every_cited_section_exists() -> None:
    bad = []
    cited = 0
    for path in text_files():
        for number, line in enumerate(lines_of(path), 1):
            for m in CITATION.finditer(URL.sub(" ", line)):
                target = resolve(m.group(1), path)
                if target is None:
                    continue  # reported by test_every_referenced_file_exists
                headings = heading_numbers(target)
                for section in re.findall(r"§(\d+(?:\.\d+)*)", m.group(2)):
                    cited += 1
                    if section not in headings:
                        bad.append(f"{path.relative_to(ROOT)}:{number}: {m.group(1)} §{section}")
    assert cited > 50, f"only {cited} section citations found: is the pattern still right?"
    assert not bad, "cited sections that are not headings of the cited file:\n" + "\n".join(bad)


def test_method_sections_are_unique() -> None:
    numbers = [
        m.group(1) for line in lines_of(ROOT / "docs" / "method.md") if (m := HEADING.match(line))
    ]
    assert {"1.3", "2.3", "2.4", "2.5", "3.3", "4.3", "4.4", "4.5", "4.6", "5.3", "5.4"} <= set(
        numbers
    )
    assert len(numbers) == len(set(numbers)), "duplicate section numbers in docs/method.md"


def test_no_skipped_doctests() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(lines_of(path), 1)
        if SKIP_DIRECTIVE.search(line)
    ]
    assert not found, "doctests skipped with +SKIP (make them run):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "link_file", "expected"),
    [
        ("see docs/method.md §2.3 and README.md.", False, ["docs/method.md", "README.md"]),
        ("https://example.org/a/NOTES.md is a URL", False, []),
        ('suffix == ".md" or "docs/*.md"', False, []),
        ("[conventions](conventions.md#random-streams), [x](https://a.b/c.md)", True,
         ["conventions.md", "conventions.md"]),
        ("f(x)[0](y)", False, []),
        ('ROOT / "docs" / "scenarios.md"', False, ["docs/scenarios.md"]),
    ],
)  # fmt: skip
def test_reference_pattern(line: str, link_file: bool, expected: list[str]) -> None:
    assert md_targets(line, link_file) == expected


def test_citation_pattern() -> None:
    text = "(docs/method.md §4.3-§4.6 and §5.3), docs/results.md §4, method.md §2.3, §2.4"
    found = [(m.group(1), re.findall(r"§([\d.]+)", m.group(2))) for m in CITATION.finditer(text)]
    assert found == [
        ("docs/method.md", ["4.3", "4.6", "5.3"]),
        ("docs/results.md", ["4"]),
        ("method.md", ["2.3", "2.4"]),
    ]
