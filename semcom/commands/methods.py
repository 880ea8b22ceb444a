"""``semcom methods``: list every registered method of every family.

One line per method: family, name, one-line description and source paper (an arXiv id where
one exists). With ``--json``, one JSON object per line with the keys ``family``, ``name``,
``description`` and ``paper``.
"""

from __future__ import annotations

import argparse
import json

NAME = "methods"
HELP = "List the registered methods (importance, allocation, ...) with description and paper."
JSON_KEYS = ("family", "name", "description", "paper")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Attach the options of ``semcom methods``."""
    parser.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args: argparse.Namespace) -> int:
    """Print the methods of :func:`semcom.registry.all_methods`."""
    from semcom.registry import all_methods

    infos = all_methods()
    if args.json:
        for info in infos:
            print(json.dumps(info.to_dict()), flush=True)
        return 0
    width_family = max([len("family"), *(len(i.family) for i in infos)])
    width_name = max([len("name"), *(len(i.name) for i in infos)])
    print(f"{'family':<{width_family}}  {'name':<{width_name}}  description  [paper]")
    for info in infos:
        paper = f"  [{info.paper}]" if info.paper else ""
        head = f"{info.family:<{width_family}}  {info.name:<{width_name}}"
        print(f"{head}  {info.description}{paper}")
    return 0


__all__ = ["HELP", "JSON_KEYS", "NAME", "add_arguments", "run"]
