"""The rule for the folder paths of a scenario (``output.dir``, ``data.root``, ...).

A path must be a name the operating system takes and the results can record: non-empty, no NUL
byte, every character encodable in UTF-8 (the encoding of the results files) and in the file
system's encoding (``sys.getfilesystemencoding()``), at most :data:`MAX_PATH_BYTES` bytes in
all and :data:`MAX_NAME_BYTES` per component. Whether the folder exists or is writable is not
part of the rule (a run creates it).
"""

from __future__ import annotations

import os
import sys

MAX_PATH_BYTES = 4096
"""Longest path, in bytes of the file-system encoding (Linux ``PATH_MAX``)."""

MAX_NAME_BYTES = 255
"""Longest component of a path, in bytes (``NAME_MAX`` of common file systems)."""


def path_rule() -> str:
    """The rule as the ``allowed`` text of an error line."""
    return (
        f"a non-empty path without NUL bytes, in characters that UTF-8 and the file system "
        f"({sys.getfilesystemencoding()}) can encode, at most {MAX_PATH_BYTES} bytes "
        f"({MAX_NAME_BYTES} per name)"
    )


def path_problem(path: str) -> str | None:
    """``None`` if ``path`` follows the rule of the module doc, else the rule.

    Examples:
        >>> path_problem("results/emoji🚀") is None
        True
        >>> path_problem("a\\x00b") is not None, path_problem("") is not None
        (True, True)
        >>> path_problem("x" * 256) is not None
        True
    """
    if not path or "\x00" in path:
        return path_rule()
    try:
        path.encode("utf-8")
        encoded = os.fsencode(path)
    except UnicodeEncodeError:
        return path_rule()
    if len(encoded) > MAX_PATH_BYTES or any(len(n) > MAX_NAME_BYTES for n in encoded.split(b"/")):
        return path_rule()
    return None


__all__ = ["MAX_NAME_BYTES", "MAX_PATH_BYTES", "path_problem", "path_rule"]
