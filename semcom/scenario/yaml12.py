"""A YAML reader that cannot be made to crash: the YAML 1.2 core schema, with size limits.

:class:`ScenarioLoader` is PyYAML's safe loader with four changes:

- **Scalars follow the YAML 1.2 core schema** (PyYAML follows YAML 1.1). A plain scalar is
  ``null`` (``null``, ``Null``, ``NULL``, ``~`` or empty), a boolean (``true``, ``True``,
  ``TRUE``, ``false``, ``False``, ``FALSE``), an integer (``[-+]?[0-9]+``, ``0o[0-7]+``,
  ``0x[0-9a-fA-F]+``), a float (``[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?``,
  ``[-+]?.inf``, ``.nan`` in the three spellings) or else a string. So ``1e-3`` is a number,
  while ``yes``, ``on``, ``1:30``, ``9_6``, ``0b11`` and ``2024-01-01`` are strings (YAML 1.1
  reads ``true``, ``true``, ``90``, ``96``, ``3`` and a date). The same rules hold for explicit
  ``!!int``, ``!!float``, ``!!bool`` and ``!!null`` tags; any other tag (``!!binary``,
  ``!!timestamp``, ``!!set``, ``!!merge``, ...) is refused, and ``<<`` is an ordinary key.
- **A key written twice** in one mapping is an error (PyYAML keeps the last silently).
- **Aliases cannot refer to a node that contains them** (``a: &x [*x]``), and the document,
  with every alias expanded, holds at most :data:`MAX_NODES` nodes: a "billion laughs" alias
  bomb is refused as soon as its expansion passes the limit, without expanding it.
- **Nesting** is at most :data:`MAX_DEPTH` collections deep (PyYAML's composer recurses once
  per level, so a deeper document would end in a ``RecursionError``).

Every violation is a ``yaml.YAMLError`` with the line and column of the offending node.

Examples:
    >>> load_yaml("a: [yes, 1:30, 9_6, 0o17, 0x1F, 1e3, .5, ~]")
    {'a': ['yes', '1:30', '9_6', 15, 31, 1000.0, 0.5, None]}
    >>> load_yaml("a: &x [*x]")
    Traceback (most recent call last):
    ...
    yaml.composer.ComposerError: alias *x refers to a node that contains it (a self-reference)
      in "<unicode string>", line 1, column 8:
        a: &x [*x]
               ^
    >>> yaml_string("emoji🚀 \\x00")
    '"emoji🚀 \\\\x00"'
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_DEPTH = 32
"""Deepest nesting of collections (a scenario needs 6: ``allocation.options.m.o: [..]``)."""

MAX_NODES = 100_000
"""Most nodes of one document with every alias expanded (each scalar, list, mapping: one)."""

MAX_FILE_BYTES = 1 << 20
"""Largest scenario file read (1 MiB; the shipped ones are about 1 kB)."""

MAX_INT_CHARS = 1000
"""Longest integer literal (Python refuses to print integers of more than 4300 digits)."""

TAG = "tag:yaml.org,2002:"
CORE_TAGS = ("null", "bool", "int", "float", "str", "seq", "map")

NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)

# characters PyYAML's reader accepts in a stream (the YAML 1.1/1.2 printable set)
_PRINTABLE = re.compile("[\t\n\r\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class ScenarioLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the YAML 1.2 core schema and the limits of the module doc."""

    yaml_implicit_resolvers: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
    yaml_constructors: dict[Any, Any] = {}
    yaml_multi_constructors: dict[Any, Any] = {}

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0
        self._open: set[str] = set()  # anchors of the collections being composed
        self._sizes: dict[int, int] = {}  # id(node) -> nodes with aliases expanded

    # ---- composing: depth, self-references, expanded size -----------------------------------

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            if event.anchor in self._open:
                raise ComposerError(
                    None,
                    None,
                    f"alias *{event.anchor} refers to a node that contains it (a self-reference)",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        collection = isinstance(event, CollectionStartEvent)
        if collection:
            if self._depth >= MAX_DEPTH:
                raise ComposerError(
                    None, None, f"nesting deeper than {MAX_DEPTH} levels", event.start_mark
                )
            self._depth += 1
            if event.anchor is not None:
                self._open.add(event.anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            if collection:
                self._depth -= 1
                self._open.discard(event.anchor)
        self._size(node)
        return node

    def _size(self, node: Node) -> int:
        """Nodes under ``node`` (itself included) with aliases expanded; ComposerError past
        :data:`MAX_NODES`."""
        if isinstance(node, SequenceNode):
            size = 1 + sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, MappingNode):
            size = 1 + sum(
                self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value
            )
        else:
            size = 1
        if size > MAX_NODES:
            raise ComposerError(
                None,
                None,
                f"more than {MAX_NODES} values once aliases are expanded",
                node.start_mark,
            )
        self._sizes[id(node)] = size
        return size

    # ---- constructing: YAML 1.2 core scalars, duplicate keys, no other tags ------------------

    def flatten_mapping(self, node: MappingNode) -> None:
        """No merge keys (``<<``) in YAML 1.2: nothing to flatten."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if not isinstance(node, MappingNode):
            raise ConstructorError(
                None, None, f"expected a mapping node, but found {node.id}", node.start_mark
            )
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    "found a key that is a list or a mapping",
                    key_node.start_mark,
                ) from None
            if duplicate:
                raise ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def _scalar(self, node: Node, kind: str, pattern: re.Pattern[str]) -> str:
        text = self.construct_scalar(node)
        if not pattern.match(text):
            raise ConstructorError(
                None, None, f"{text!r} is not a YAML 1.2 {kind}", node.start_mark
            )
        return text

    def construct_core_null(self, node: Node) -> None:
        self._scalar(node, "null", NULL)

    def construct_core_bool(self, node: Node) -> bool:
        return self._scalar(node, "boolean", BOOL).lower() == "true"

    def construct_core_int(self, node: Node) -> int:
        text = self._scalar(node, "integer", INT)
        if len(text) > MAX_INT_CHARS:
            raise ConstructorError(
                None, None, f"an integer of more than {MAX_INT_CHARS} characters", node.start_mark
            )
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)

    def construct_core_float(self, node: Node) -> float:
        text = self._scalar(node, "float", FLOAT)
        lower = text.lower()
        if lower.endswith(".inf"):
            return -math.inf if text.startswith("-") else math.inf
        if lower == ".nan":
            return math.nan
        return float(text)

    def construct_core_str(self, node: Node) -> str:
        return self.construct_scalar(node)

    def construct_unknown(self, node: Node) -> None:
        allowed = ", ".join(f"!!{t}" for t in CORE_TAGS)
        tag = "!!" + node.tag[len(TAG) :] if node.tag.startswith(TAG) else node.tag
        raise ConstructorError(
            None, None, f"the tag {tag} is not allowed; allowed: {allowed}", node.start_mark
        )


for _tag, _method in (
    ("null", ScenarioLoader.construct_core_null),
    ("bool", ScenarioLoader.construct_core_bool),
    ("int", ScenarioLoader.construct_core_int),
    ("float", ScenarioLoader.construct_core_float),
    ("str", ScenarioLoader.construct_core_str),
    ("seq", yaml.SafeLoader.construct_yaml_seq),
    ("map", yaml.SafeLoader.construct_yaml_map),
):
    ScenarioLoader.add_constructor(TAG + _tag, _method)
ScenarioLoader.add_constructor(None, ScenarioLoader.construct_unknown)

for _tag, _pattern, _first in (
    ("null", NULL, ["~", "n", "N", ""]),
    ("bool", BOOL, list("tTfF")),
    ("int", INT, list("-+0123456789")),
    ("float", FLOAT, list("-+0123456789.")),
):
    ScenarioLoader.add_implicit_resolver(TAG + _tag, _pattern, _first)


def core_tag(text: str) -> str:
    """The tag the YAML 1.2 core schema gives the plain scalar ``text`` (``...:str`` if none).

    Examples:
        >>> core_tag("1e3"), core_tag("yes")
        ('tag:yaml.org,2002:float', 'tag:yaml.org,2002:str')
    """
    for tag, pattern in (("null", NULL), ("bool", BOOL), ("int", INT), ("float", FLOAT)):
        if pattern.match(text):
            return TAG + tag
    return TAG + "str"


def load_yaml(text: str) -> Any:
    """``text`` read with :class:`ScenarioLoader`; ``yaml.YAMLError`` if it is not YAML or
    breaks a rule of the module doc."""
    return yaml.load(text, Loader=ScenarioLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_string(text: str) -> str:
    """``text`` as a YAML double-quoted scalar that :func:`load_yaml` reads back unchanged.

    Unlike ``json.dumps``, characters outside the Basic Multilingual Plane are kept (JSON
    writes them as two ``\\u`` surrogate escapes, which YAML reads as two lone surrogates).
    Characters a YAML stream may not hold, and line breaks (which a quoted scalar folds into
    a space), are escaped (``\\x00``, ``\\x85``, ``\\uXXXX``).
    """
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\t\n\r\x85\u2028\u2029" or not _PRINTABLE.match(ch):  # breaks fold
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "ScenarioLoader",
    "core_tag",
    "load_yaml",
    "yaml_string",
]
