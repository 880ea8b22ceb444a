"""House style of the three packages: Google docstring sections, one validation module.

Docstrings use Google sections (``Args:``, ``Returns:``, ``Raises:``, ``Examples:``,
``Attributes:``), never NumPy underlined headers. Argument checks call the shared validators of
``channels.errors`` (``check_int``, ``check_real``, ``check_choice``, ``check_name``,
``check_flag``, ``check_seed``, ``check_vector``, ``fail``) instead of module-local copies.

The allow-lists name the files not converted yet; each entry must still be needed, so an entry
whose file has been converted makes the test fail until it is removed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("channels", "optim", "semcom")

NUMPY_HEADERS = (
    "Parameters",
    "Returns",
    "Raises",
    "Examples",
    "Attributes",
    "Notes",
    "Yields",
    "See Also",
)
UNDERLINE = re.compile(r"\s*-{3,}\s*")

NUMPY_STYLE_ALLOWED: set[str] = set()
"""Files that still hold NumPy-style sections (to convert, then remove from this set)."""

LOCAL_VALIDATORS = (
    "_check_real",
    "_real",
    "_float_option",
    "_finite_number",
    "_fail",
    "_vector",
    "_scalar",
    "_integer",
    "_choice",
    "_option",
    "_count",
    "_flag",
    "_seed",
    "_check_seed",
    "_check_positive_int",
    "check_positive_int",
    "positive_int",
)
"""Names of the module-level validators that ``channels.errors`` replaced."""

LOCAL_VALIDATORS_ALLOWED: set[tuple[str, str]] = set()
"""(file, function) pairs still defining a local validator (to convert, then remove)."""


def _sources() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _numpy_sections(text: str) -> list[int]:
    """Line numbers (1-based) of NumPy underlines: dashes right below a section header."""
    lines = text.splitlines()
    return [
        i + 1
        for i in range(1, len(lines))
        if UNDERLINE.fullmatch(lines[i]) and lines[i - 1].strip() in NUMPY_HEADERS
    ]


def _local_validators(text: str) -> list[str]:
    """Module-level functions of ``text`` named like a replaced local validator."""
    tree = ast.parse(text)
    return [
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name in LOCAL_VALIDATORS
    ]


def test_detectors_see_what_they_look_for() -> None:
    numpy_doc = 'def f(x):\n    """F.\n\n    Parameters\n    ----------\n    x : int\n    """\n'
    google_doc = 'def f(x):\n    """F.\n\n    Args:\n        x: an int.\n    """\n'
    assert _numpy_sections(numpy_doc) == [5]
    assert _numpy_sections(google_doc) == []
    assert _numpy_sections("# Examples\n# --------\n") == []
    assert _local_validators("def _real(x):\n    pass\n\nclass A:\n    def _flag(self): ...\n") == [
        "_real"
    ]


def test_docstrings_use_google_sections() -> None:
    found = {}
    for path in _sources():
        rel = _rel(path)
        lines = _numpy_sections(path.read_text(encoding="utf-8"))
        if lines and rel not in NUMPY_STYLE_ALLOWED:
            found[rel] = lines
    assert not found, f"NumPy-style section underlines (use Google 'Args:' etc.): {found}"


def test_numpy_allow_list_is_still_needed() -> None:
    stale = [
        rel
        for rel in sorted(NUMPY_STYLE_ALLOWED)
        if not (ROOT / rel).is_file()
        or not _numpy_sections((ROOT / rel).read_text(encoding="utf-8"))
    ]
    assert not stale, f"no NumPy-style section any more: remove {stale} from NUMPY_STYLE_ALLOWED"


def test_validators_come_from_channels_errors() -> None:
    found = []
    for path in _sources():
        rel = _rel(path)
        if rel == "channels/errors.py":
            continue
        for name in _local_validators(path.read_text(encoding="utf-8")):
            if (rel, name) not in LOCAL_VALIDATORS_ALLOWED:
                found.append(f"{rel}:{name}")
    assert not found, f"local validators (use channels.errors.check_*): {found}"


def test_validator_allow_list_is_still_needed() -> None:
    stale = [
        f"{rel}:{name}"
        for rel, name in sorted(LOCAL_VALIDATORS_ALLOWED)
        if not (ROOT / rel).is_file()
        or name not in _local_validators((ROOT / rel).read_text(encoding="utf-8"))
    ]
    assert not stale, f"no longer defined: remove {stale} from LOCAL_VALIDATORS_ALLOWED"
