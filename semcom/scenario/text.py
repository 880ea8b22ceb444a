"""The three shapes of a problem line (every line starts with the YAML path of the value).

<path>: <repr of the bad value> is invalid; allowed: <what is allowed>
<path>: unknown key; allowed: <the keys of that mapping>
<path>: required key is missing; allowed: <what is allowed>
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

MAX_REPR = 100
"""Longest value shown in a line; longer ones end with ``...``."""


def show(value: Any) -> str:
    """``repr(value)``, shortened to :data:`MAX_REPR` characters."""
    text = repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def invalid(path: str, value: Any, allowed: str) -> str:
    """The line ``<path>: <repr(value)> is invalid; allowed: <allowed>``."""
    return f"{path}: {show(value)} is invalid; allowed: {allowed}"


def unknown_key(path: str, allowed: Iterable[str]) -> str:
    """The line ``<path>: unknown key; allowed: <keys>``."""
    return f"{path}: unknown key; allowed: {', '.join(allowed)}"


def missing(path: str, allowed: str) -> str:
    """The line ``<path>: required key is missing; allowed: <allowed>``."""
    return f"{path}: required key is missing; allowed: {allowed}"


TEXT_RULE = "text without NUL bytes or lone surrogates (characters a UTF-8 file can hold)"


def text_problem(text: str) -> str | None:
    """``None`` if ``text`` can be written to a UTF-8 file and used in a path, else the rule.

    Examples:
        >>> text_problem("emoji🚀") is None, text_problem("a\\x00b") == TEXT_RULE
        (True, True)
    """
    if "\x00" in text:
        return TEXT_RULE
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return TEXT_RULE
    return None


def join(path: str, key: str) -> str:
    """``path.key`` (``key`` alone at the top level)."""
    return f"{path}.{key}" if path else key
