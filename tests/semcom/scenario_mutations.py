"""A seeded corpus of hostile scenario files, mutated from the shipped ``scenarios/*.yaml``.

:func:`mutants` returns ``(name, text)`` pairs, the same ones on every call: each shipped
scenario gives mutants of three kinds.

- **value** mutants replace one field (a leaf or a whole section, chosen at random) with a
  hostile value: huge, tiny, negative, non-finite, of the wrong type, YAML 1.1 spellings
  (``yes``, ``1:30``, ``9_6``), NUL bytes, lone surrogates, emoji, long strings, deep lists;
- **structure** mutants delete a key, add an unknown one, or replace the top level;
- **text** mutants edit the file's text: truncation, a duplicated or dropped line, bad
  indentation, tabs, invalid UTF-8, a BOM, control characters, deep nesting, self-referential
  aliases, alias bombs, non-core tags, merge keys and huge documents.

Every mutant must end with exit status 0 or 2 of ``semcom check``, errors as one line each.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import yaml

from semcom.scenario.yaml12 import load_yaml

SCENARIOS = sorted((Path(__file__).parents[2] / "scenarios").glob("*.yaml"))
SEED = 20_240_611

HOSTILE_VALUES: list[Any] = [
    1e308, -1e308, 1e-308, 10**30, -(10**30), 2**63, 2**64, -1, 0, 1, 4096, 4097, 10**9,
    1e9, 0.5, -0.0, math.inf, -math.inf, math.nan, True, False, None, "", " ", "yes", "no",
    "on", "1:30", "9_6", "0b11", "0o17", "0x1F", "1e3", "2024-01-01", "a\x00b", "\ud800",
    "emoji🚀", "x" * 5000, "../../../etc", "/dev/null", "~", [], {}, [1e9, 1e9],
    [1000000000, 1000000000], [[[[[[[[1]]]]]]]], {"a": {"b": {"c": 1}}}, [None], ["", ""],
    [0, 0], [1e308], list(range(200)),
]  # fmt: skip

TEXT_EDITS = (
    "truncate", "duplicate_line", "drop_line", "indent", "tab", "invalid_utf8", "bom",
    "control", "deep_flow", "deep_block", "self_alias", "alias_bomb", "tag", "merge",
    "huge_list", "long_line", "multi_document", "nul_escape",
)  # fmt: skip


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a nested mapping (sections and leaves)."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    return out


def _set(data: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def _delete(data: dict, path: tuple) -> None:
    for key in path[:-1]:
        data = data[key]
    del data[path[-1]]


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=False, width=10**6)


def _text_edit(kind: str, text: str, rng: random.Random) -> str | bytes:
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    if kind == "truncate":
        return text[: rng.randrange(1, len(text))]
    if kind == "duplicate_line":
        return "".join(lines[: i + 1] + lines[i:])
    if kind == "drop_line":
        return "".join(lines[:i] + lines[i + 1 :])
    if kind == "indent":
        return "".join(lines[:i] + ["   " + lines[i]] + lines[i + 1 :])
    if kind == "tab":
        return "".join(lines[:i] + ["\t" + lines[i].lstrip(" ")] + lines[i + 1 :])
    if kind == "invalid_utf8":
        return text.encode()[: len(text) // 2] + b"\xff\xfe\x80" + text.encode()[len(text) // 2 :]
    if kind == "bom":
        return "\ufeff" + text
    if kind == "control":
        return text[: len(text) // 2] + "\x07\x1b" + text[len(text) // 2 :]
    if kind == "deep_flow":
        depth = rng.choice([33, 100, 1000, 5000])
        return text + f"description: {'[' * depth}{']' * depth}\n"
    if kind == "deep_block":
        depth = rng.choice([40, 1000])
        body = "".join(" " * k + f"k{k}:\n" for k in range(depth)) + " " * depth + "x: 1\n"
        return text + "extra:\n" + "".join(" " + line for line in body.splitlines(True))
    if kind == "self_alias":
        return text + rng.choice(["loop: &x [*x]\n", "loop: &x {a: *x}\n", "model: &m {o: *m}\n"])
    if kind == "alias_bomb":
        width = rng.choice([9, 10])
        bomb = "a0: &a0 [" + ",".join(["lol"] * width) + "]\n"
        for level in range(1, 9):
            refs = ",".join([f"*a{level - 1}"] * width)
            bomb += f"a{level}: &a{level} [{refs}]\n"
        return text + bomb
    if kind == "tag":
        tags = ["!!python/object/apply:os.system ['true']", "!!binary aGk=",
                "!!timestamp 2001-12-14", "!!set {a}", "!custom x", "!!int 1_000"]  # fmt: skip
        tag = rng.choice(tags)
        return text + f"description: {tag}\n"
    if kind == "merge":
        return text + "base: &b {epochs: 1}\ntraining2: {<<: *b}\n"
    if kind == "huge_list":
        n = rng.choice([1000, 200_000])
        return text.replace("snr_db: [", "snr_db: [" + "0," * n, 1) + f"extra: [{'1,' * n}1]\n"
    if kind == "long_line":
        return text + "description: " + "x" * rng.choice([10_000, 2_000_000]) + "\n"
    if kind == "multi_document":
        return text + "---\nname: second\n"
    if kind == "nul_escape":
        return text + rng.choice(['description: "a\\0b"\n', 'output: {dir: "out\\x00"}\n',
                                  'output: {dir: "\\ud83d\\ude80"}\n'])  # fmt: skip
    raise ValueError(kind)  # pragma: no cover


def mutants(per_file: int = 18) -> list[tuple[str, str | bytes]]:
    """``(name, text)`` of the corpus: for every shipped scenario, ``per_file`` value mutants,
    a third as many structure mutants and one of each text edit (shuffled over the files)."""
    rng = random.Random(SEED)
    out: list[tuple[str, str | bytes]] = []
    for index, path in enumerate(SCENARIOS):
        text = path.read_text(encoding="utf-8")
        base = load_yaml(text)
        paths = _paths(base)
        for k in range(per_file):
            data = load_yaml(text)
            target = rng.choice(paths)
            value = rng.choice(HOSTILE_VALUES)
            _set(data, target, value)
            out.append((f"{path.stem}-value{k}-{'.'.join(map(str, target))}", _dump(data)))
        for k in range(per_file // 3):
            data = load_yaml(text)
            kind = rng.choice(["delete", "unknown", "top"])
            if kind == "delete":
                _delete(data, rng.choice(paths))
            elif kind == "unknown":
                parent = rng.choice([p for p in paths if isinstance(_get(data, p), dict)] or [()])
                _set(data, (*parent, "unknown_key"), rng.choice(HOSTILE_VALUES))
            else:
                data = rng.choice([[], "text", 5, None, [data]])
            out.append((f"{path.stem}-struct{k}-{kind}", _dump(data)))
        for k, kind in enumerate(TEXT_EDITS):
            if k % len(SCENARIOS) == index % len(SCENARIOS) or k < 4:
                out.append((f"{path.stem}-text-{kind}", _text_edit(kind, text, rng)))
    return out


def _get(data: Any, path: tuple) -> Any:
    for key in path:
        data = data[key]
    return data
