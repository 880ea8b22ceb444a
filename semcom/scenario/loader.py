"""Reading a scenario: the YAML file, the ``--set`` overrides, validation and the checks.

:func:`load_scenario` collects every problem (file, ``--set``, pydantic's, the semantic checks)
and raises one :class:`~semcom.scenario.problems.ScenarioError`, before any work.

YAML is read with :class:`~semcom.scenario.yaml12.ScenarioLoader`: the YAML 1.2 core schema
(``1e-3`` is a number, ``yes`` and ``1:30`` are strings), duplicate keys refused, and limits on
nesting, alias expansion and file size, so that no file can make the reader crash or hang.
Every string of the file and of the overrides must be text that can be written back: no NUL
bytes and no lone surrogates (which no UTF-8 file or path can hold).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from semcom.scenario.checks import semantic_problems
from semcom.scenario.config import Scenario
from semcom.scenario.problems import ScenarioError, from_validation_error
from semcom.scenario.schema import SECTIONS, SchemeEntry
from semcom.scenario.text import invalid, join, text_problem
from semcom.scenario.yaml12 import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, ScenarioLoader, load_yaml

SET_FORMAT = "PATH=VALUE (e.g. sweep.snr_db=[0,5])"
SCHEME_ENTRY = TypeAdapter(SchemeEntry)
OPTIONAL_SECTIONS = (*SECTIONS, "sweep")
"""Top-level keys whose empty value (``stop:`` with nothing under it) means "the defaults"."""
MAX_TEXT_PROBLEMS = 10
"""Most lines reported for strings that are not text (the first ones in file order)."""


def parse_yaml(text: str) -> Any:
    """``text`` parsed with :class:`ScenarioLoader` (``yaml.YAMLError`` if it is not YAML)."""
    return load_yaml(text)


def _yaml_error(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


class _TooLarge(ValueError):
    """A mapping source nested too deeply, containing itself, or too large."""


def _plain(value: Any) -> Any:
    """A deep copy with every Mapping turned into a dict (of data already within limits)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def _checked_plain(value: Any) -> Any:
    """:func:`_plain` of a mapping source, with the limits of a file.

    Raises:
        _TooLarge: nesting deeper than :data:`MAX_DEPTH`, a collection that contains itself, or
            more than :data:`MAX_NODES` values.
    """
    count = 0

    def copy_of(item: Any, depth: int, inside: frozenset[int]) -> Any:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise _TooLarge(f"at most {MAX_NODES} values")
        if not isinstance(item, Mapping | list | tuple):
            return copy.deepcopy(item)
        if id(item) in inside:
            raise _TooLarge("no collection that contains itself")
        if depth >= MAX_DEPTH:
            raise _TooLarge(f"nesting at most {MAX_DEPTH} levels deep")
        inside = inside | {id(item)}
        if isinstance(item, Mapping):
            return {k: copy_of(v, depth + 1, inside) for k, v in item.items()}
        items = [copy_of(v, depth + 1, inside) for v in item]
        return items if isinstance(item, list) else tuple(items)

    return copy_of(value, 0, frozenset())


def _text_problems(value: Any, path: str = "") -> list[str]:
    """A line per string key or value of ``value`` that is not writable text (NUL bytes,
    lone surrogates), at most :data:`MAX_TEXT_PROBLEMS`."""
    problems: list[str] = []
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack and len(problems) < MAX_TEXT_PROBLEMS:
        where, item = stack.pop()
        if isinstance(item, str):
            reason = text_problem(item)
            if reason:
                problems.append(invalid(where or "scenario", item, reason))
        elif isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                if isinstance(key, str) and text_problem(key):
                    problems.append(invalid(join(where, repr(key)), key, text_problem(key)))
                else:
                    stack.append((join(where, str(key)), sub))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}[{i}]", sub) for i, sub in reversed(list(enumerate(item))))
    return problems[:MAX_TEXT_PROBLEMS]


def read_source(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The raw mapping of a file or mapping, and the problems that prevent reading it."""
    if isinstance(source, Mapping):
        try:
            return _checked_plain(source), []
        except _TooLarge as err:
            return {}, [invalid("scenario", "a mapping", str(err))]
    if not isinstance(source, str | Path):
        return {}, [invalid("scenario", source, "a file path or a mapping")]
    path, name = Path(source), str(source)
    if not path.is_file():
        return {}, [invalid("scenario", name, "the path of an existing scenario file")]
    try:
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
        if len(data) > MAX_FILE_BYTES:
            return {}, [invalid("scenario", name, f"a file of at most {MAX_FILE_BYTES} bytes")]
        raw = parse_yaml(data.decode("utf-8"))
    except UnicodeDecodeError:
        return {}, [invalid("scenario", name, "a UTF-8 text file")]
    except OSError as err:
        return {}, [invalid("scenario", name, f"a readable file ({err.strerror})")]
    except yaml.YAMLError as err:
        return {}, [invalid("scenario", name, f"valid YAML ({_yaml_error(err)})")]
    if not isinstance(raw, dict):
        found = "an empty file" if raw is None else f"a {type(raw).__name__}"
        allowed = f"a mapping of sections (name, data, model, ...) at the top level, not {found}"
        return {}, [invalid("scenario", name, allowed)]
    return raw, []


def _apply(raw: dict[str, Any], overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    out, problems = _plain(raw), []
    for item in [overrides] if isinstance(overrides, str) else overrides:
        path, sep, text = item.partition("=") if isinstance(item, str) else ("", "", "")
        keys = [k.strip() for k in path.split(".")]
        if not sep or not all(keys):
            problems.append(invalid("--set", item, SET_FORMAT))
            continue
        if len(keys) > MAX_DEPTH:
            problems.append(invalid("--set", item, f"PATH=VALUE, PATH of at most {MAX_DEPTH} keys"))
            continue
        try:
            value = parse_yaml(text)
        except yaml.YAMLError as err:
            problems.append(
                invalid("--set", item, f"PATH=VALUE, VALUE in YAML ({_yaml_error(err)})")
            )
            continue
        node = out
        for depth, key in enumerate(keys[:-1]):
            if node.get(key) is None:
                node[key] = {}
            if not isinstance(node[key], dict):
                where = ".".join(keys[: depth + 1])
                allowed = f"PATH=VALUE, PATH through mappings ({where} is not a mapping)"
                problems.append(invalid("--set", item, allowed))
                break
            node = node[key]
        else:
            node[keys[-1]] = value
    return out, problems


def apply_overrides(raw: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``raw`` with each ``a.b.c=VALUE`` of ``overrides`` applied in order.

    ``VALUE`` is YAML (``sweep.snr_db=[0,5]``, ``execution.workers=2``, ``output.dir=/tmp/x``;
    an empty VALUE is null); missing mappings along the path are created.

    Raises:
        ScenarioError: one problem per malformed override.
    """
    out, problems = _apply(raw, overrides)
    if problems:
        raise ScenarioError(problems)
    return out


def _failed_paths(err: ValidationError) -> set[str]:
    """``section.field`` (or the top-level key) of every error of ``err``."""
    paths = set()
    for e in err.errors():
        loc = e["loc"]
        if len(loc) >= 2 and loc[0] in SECTIONS and isinstance(loc[1], str) and loc[1] != "[key]":
            paths.add(f"{loc[0]}.{loc[1]}")
        elif loc:
            paths.add(str(loc[0]))
    return paths


def _partial(
    raw: dict[str, Any], bad: set[str]
) -> tuple[Scenario | None, list[tuple[int, Any]] | None]:
    """The scenario without the failed fields, and the ``schemes`` entries that validated.

    Falls back to dropping whole top-level keys when a section cannot be repaired.
    """
    partial = _plain(raw)
    for path in bad:
        section, _, field = path.partition(".")
        if field and isinstance(partial.get(section), dict):
            partial[section].pop(field, None)
        else:
            partial = {k: v for k, v in partial.items() if str(k) != section}
    partial.setdefault("name", "scenario")
    schemes = None
    if "schemes" in bad and isinstance(raw.get("schemes"), list):
        schemes = []
        for i, entry in enumerate(raw["schemes"]):
            try:
                schemes.append((i, SCHEME_ENTRY.validate_python(entry)))
            except ValidationError:
                continue
    for _ in range(2):
        try:
            return Scenario.model_validate(partial), schemes
        except ValidationError as err:
            failed = {str(e["loc"][0]) for e in err.errors() if e["loc"]}
            partial = {k: v for k, v in partial.items() if str(k) not in failed}
            partial.setdefault("name", "scenario")
    return None, schemes


_ORDER = {key: i for i, key in enumerate(["--set", *Scenario.model_fields])}


def _rank(problem: str) -> int:
    """Position of a problem's top-level key in the file's section order (stable sort key)."""
    head = re.split(r"[.\[:]", problem, maxsplit=1)[0]
    return _ORDER.get(head, -1)


def load_scenario(
    source: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()
) -> Scenario:
    """Read, override, validate and check a scenario; see docs/scenarios.md.

    Args:
        source: a YAML file path or the mapping itself.
        overrides: ``PATH=VALUE`` strings (``--set``), applied in order after reading.

    Returns:
        The validated :class:`~semcom.scenario.config.Scenario`.

    Raises:
        ScenarioError: every problem found, one line each (nothing is trained or written).
    """
    raw, problems = read_source(source)
    if problems:
        raise ScenarioError(problems)
    raw, problems = _apply(raw, overrides)
    text = _text_problems(raw)
    if text:  # nothing downstream can use such a string, not even to name a file
        raise ScenarioError(problems + text)
    raw = {k: v for k, v in raw.items() if not (k in OPTIONAL_SECTIONS and v is None)}
    bad: set[str] = set()
    schemes = None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as err:
        problems += from_validation_error(err)
        bad = _failed_paths(err)
        scenario, schemes = _partial(raw, bad)
        if scenario is None:  # a rule of the whole file failed (e.g. too many points)
            raise ScenarioError(problems) from None
    problems += semantic_problems(scenario, bad, schemes)
    if problems:
        raise ScenarioError(sorted(problems, key=_rank))
    return scenario


__all__ = ["ScenarioLoader", "apply_overrides", "load_scenario", "parse_yaml", "read_source"]
