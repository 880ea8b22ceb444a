"""Problems of a scenario: :class:`ScenarioError` and the one-line messages it holds.

Every problem is one line that starts with the YAML path of the offending value:

    <path>: <repr of the bad value> is invalid; allowed: <what is allowed>
    <path>: unknown key; allowed: <the keys of that mapping>
    <path>: required key is missing; allowed: <what is allowed>

Paths are dotted, with ``[i]`` for list indices (``sweep.snr_db[1]``, ``schemes[2].method``).
:func:`from_validation_error` turns pydantic's error list into such lines;
:func:`relocate` re-roots a :class:`~channels.errors.ConfigError` of the library (whose field is
the name of a function argument) at a YAML path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from channels.errors import ConfigError
from semcom.scenario.schema import (
    PROBLEMS,
    SCHEME_MAPPING_TAG,
    SCHEME_NAME_TAG,
    CustomScheme,
    ScenarioFields,
)
from semcom.scenario.text import invalid, join, missing, unknown_key
from semcom.schemes import SCHEMES

_TAGS = {SCHEME_NAME_TAG, SCHEME_MAPPING_TAG}
_KEY = "[key]"


class ScenarioError(ConfigError):
    """Every problem of a scenario, found before any work; ``str(err)`` is one line each.

    Attributes:
        problems: the problem lines (from load_scenario: grouped by section, in file order).
    """

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# ---------------------------------------------------------------------------------------------
# pydantic errors -> lines


def _walk(
    model: type[BaseModel], prefix: str, allowed: dict[str, str], keys: dict[str, str]
) -> None:
    """Fill ``allowed`` (normalised path -> allowed text) and ``keys`` (path -> its keys)."""
    keys[prefix] = ", ".join(model.model_fields)
    for name, field in model.model_fields.items():
        path = join(prefix, name)
        text = (field.json_schema_extra or {}).get("allowed", "")
        sub = field.annotation
        optional = get_origin(sub) in (Union, UnionType)
        if optional:  # ``Model | None``: walk the model, keep the field's own text
            sub = next((a for a in get_args(sub) if a is not type(None)), sub)
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            _walk(sub, path, allowed, keys)
            if not (optional and text):
                text = f"a mapping with keys {keys[path]}"
        allowed[path] = text


_ALLOWED: dict[str, str] = {}
_KEYS: dict[str, str] = {}
_walk(ScenarioFields, "", _ALLOWED, _KEYS)
_walk(CustomScheme, "schemes[]", _ALLOWED, _KEYS)
_ALLOWED["schemes[]"] = (
    f"a scheme name ({', '.join(SCHEMES.names())}), a mapping {{name, model, weights, method}} "
    "or a mapping {name, separate}"
)


def _paths(loc: tuple[Any, ...]) -> tuple[str, str]:
    """``(shown path, normalised path)`` of a pydantic ``loc``; tags and ``[key]`` dropped."""
    shown, normal = "", ""
    items = [x for x in loc if x not in _TAGS]
    for i, item in enumerate(items):
        if item == _KEY:
            continue
        is_key = i + 1 < len(items) and items[i + 1] == _KEY
        if isinstance(item, int) and not is_key:
            shown += f"[{item}]"
            normal += "[]"
        else:
            shown = join(shown, str(item))
            normal = join(normal, str(item))
    return shown, normal


def _allowed(normal: str) -> str:
    """The allowed text of the nearest described path at or above ``normal``."""
    path = normal
    while path:
        if _ALLOWED.get(path):
            return _ALLOWED[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return "see docs/scenarios.md"


def from_validation_error(err: ValidationError) -> list[str]:
    """One line per error of ``err`` (a validation of :class:`ScenarioFields` or a section)."""
    lines: list[str] = []
    for e in err.errors(include_url=False):
        kind, loc = e["type"], tuple(e["loc"])
        if kind == PROBLEMS:
            lines.extend(e["ctx"]["problems"])
            continue
        shown, normal = _paths(loc)
        if kind in ("extra_forbidden", "invalid_key"):
            if kind == "invalid_key":
                shown = join(_paths(loc[:-1])[0], str(loc[-1]))
            parent = _paths(loc[:-1])[1]
            lines.append(unknown_key(shown, [_KEYS.get(parent, "none")]))
        elif kind == "missing":
            lines.append(missing(shown, _allowed(normal)))
        elif loc and loc[-1] == _KEY:
            lines.append(invalid(shown, e["input"], "a string key"))
        else:
            lines.append(invalid(shown or "scenario", e["input"], _allowed(normal)))
    return lines


# ---------------------------------------------------------------------------------------------
# library ConfigErrors -> lines


def relocate(err: ConfigError, where: Callable[[str], str]) -> str:
    """``err``'s message with its leading field ``f`` (before ``": "``) replaced by ``where(f)``.

    A dotted field keeps its tail: ``where`` gets the first component, so
    ``"model_options.input_shape: ..."`` with ``model_options -> model.options`` becomes
    ``"model.options.input_shape: ..."``. A message without a field is put under ``where("")``.
    """
    message = str(err)
    field, sep, rest = message.partition(": ")
    if not sep or " " in field.strip():
        return f"{where('')}: {message}"
    head, dot, tail = field.partition(".")
    return f"{where(head)}{dot}{tail}: {rest}"


__all__ = ["ScenarioError", "from_validation_error", "relocate"]
