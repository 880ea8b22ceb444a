"""Options shared by the commands that read a scenario file (``semcom run``, ``semcom check``)."""

from __future__ import annotations

import argparse
from typing import Any


def add_scenario_arguments(parser: argparse.ArgumentParser) -> None:
    """The scenario path and ``--set PATH=VALUE`` (repeatable)."""
    parser.add_argument("scenario", help="scenario YAML file (see docs/scenarios.md)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field, e.g. --set sweep.snr_db=[0,5] --set training.epochs=2 "
        "(VALUE is YAML; repeatable)",
    )


def load(args: argparse.Namespace, extra: list[str] | None = None) -> Any:
    """The validated scenario: the file, then ``--set`` overrides, then ``extra`` overrides."""
    from semcom.scenario import load_scenario

    return load_scenario(args.scenario, [*args.overrides, *(extra or [])])


def quoted(path: str, value: str) -> str:
    """A ``PATH=VALUE`` override whose VALUE stays the string ``value``, character for character.

    ``json.dumps`` would not do: it writes an emoji as two ``\\u`` surrogate escapes, which
    YAML reads as two lone surrogates, so ``--out emoji🚀`` named a folder no file system takes
    (``UnicodeEncodeError``).

    Examples:
        >>> quoted("output.dir", "emoji🚀")
        'output.dir="emoji🚀"'
    """
    from semcom.scenario.yaml12 import yaml_string

    return f"{path}={yaml_string(value)}"
