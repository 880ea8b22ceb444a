"""Reading a scenario: the YAML file, the ``--set`` overrides, validation and the checks.

:func:`load_scenario` collects every problem (file, ``--set``, pydantic's, the semantic checks)
and raises one :class:`~semcom.scenario.problems.ScenarioError`, before any work.

YAML is read with :class:`ScenarioLoader`: PyYAML's safe loader, plus two changes that keep a
file from meaning something else than it says: ``1e-3`` is a number (YAML 1.2; PyYAML's YAML 1.1
rules read it as a string), and a key given twice in one mapping is an error (PyYAML keeps the
last silently).
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
from semcom.scenario.text import invalid

SET_FORMAT = "PATH=VALUE (e.g. sweep.snr_db=[0,5])"
SCHEME_ENTRY = TypeAdapter(SchemeEntry)
OPTIONAL_SECTIONS = (*SECTIONS, "sweep")
"""Top-level keys whose empty value (``stop:`` with nothing under it) means "the defaults"."""


class ScenarioLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2 exponent floats and duplicate keys as errors."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # unhashable: the base class reports it
                continue
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


ScenarioLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?|[-+]?\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def parse_yaml(text: str) -> Any:
    """``text`` parsed with :class:`ScenarioLoader` (``yaml.YAMLError`` if it is not YAML)."""
    return yaml.load(text, Loader=ScenarioLoader)  # noqa: S506 - a SafeLoader subclass


def _yaml_error(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def _plain(value: Any) -> Any:
    """A deep copy with every Mapping turned into a dict."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


def read_source(source: str | Path | Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The raw mapping of a file or mapping, and the problems that prevent reading it."""
    if isinstance(source, Mapping):
        return _plain(source), []
    if not isinstance(source, str | Path):
        return {}, [invalid("scenario", source, "a file path or a mapping")]
    path, name = Path(source), str(source)
    if not path.is_file():
        return {}, [invalid("scenario", name, "the path of an existing scenario file")]
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
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
    raw = {k: v for k, v in raw.items() if not (k in OPTIONAL_SECTIONS and v is None)}
    bad: set[str] = set()
    schemes = None
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as err:
        problems += from_validation_error(err)
        bad = _failed_paths(err)
        scenario, schemes = _partial(raw, bad)
        if scenario is None:  # pragma: no cover - every failed key was dropped
            raise ScenarioError(problems) from None
    problems += semantic_problems(scenario, bad, schemes)
    if problems:
        raise ScenarioError(sorted(problems, key=_rank))
    return scenario


__all__ = ["ScenarioLoader", "apply_overrides", "load_scenario", "parse_yaml", "read_source"]
