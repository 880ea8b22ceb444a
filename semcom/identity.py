"""What produced a result: the code (package version, git commit) and the data (a digest).

Trained checkpoints and the rows of a results folder are reused by later runs only when they
were made by the same code from the same data. This module gives both identities cheaply:

- :func:`code_identity`: ``{"version": semcom.__version__, "git_commit": <40 hex> or None}``.
  The commit is read from the files of the source tree's ``.git`` (``HEAD``, the ref it names,
  ``packed-refs``; a worktree's ``.git`` file is followed), no ``git`` process is started. Only
  a ``.git`` next to the ``semcom`` package folder counts, so an installed copy inside some
  other repository (a virtual environment in a project) has no commit. Uncommitted edits are
  not seen: the commit is that of ``HEAD``.
- :func:`data_digest`: SHA-256 over arrays or tensors, each hashed with its dtype and shape,
  so the same values in another dtype or layout give another digest.

Examples:
    >>> import numpy as np
    >>> data_digest(np.zeros(3)) == data_digest(np.zeros(3))
    True
    >>> data_digest(np.zeros(3)) == data_digest(np.zeros(3, dtype=np.float32))
    False
    >>> describe_code({"version": "0.1.0", "git_commit": "0123456789abcdef" * 2 + "01234567"})
    'semcom 0.1.0 (git 012345678)'
    >>> describe_code(None)
    'an unrecorded semcom version'
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

import semcom

_SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")  # SHA-1 or SHA-256 object names


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _git_dir(root: Path) -> Path | None:
    """The git directory of the work tree at ``root``: ``root/.git`` or where its file points."""
    dot_git = root / ".git"
    if dot_git.is_dir():
        return dot_git
    text = _read(dot_git) if dot_git.is_file() else None
    if text and text.startswith("gitdir:"):
        target = Path(text.removeprefix("gitdir:").strip())
        return (root / target).resolve() if not target.is_absolute() else target
    return None


def git_head(root: Path | str) -> str | None:
    """The commit of ``HEAD`` of the git work tree whose top folder is ``root``, or None.

    Reads ``.git/HEAD``; a symbolic ``ref: refs/heads/NAME`` is resolved through the loose ref
    file (in the work tree's own git directory, then the common one of a linked worktree), then
    ``packed-refs``. None when ``root`` has no ``.git``, a file is unreadable, or the branch has
    no commit yet.
    """
    git_dir = _git_dir(Path(root))
    head = _read(git_dir / "HEAD") if git_dir is not None else None
    if git_dir is None or not head:
        return None
    if _SHA.fullmatch(head):
        return head  # a detached HEAD
    ref = head.removeprefix("ref:").strip() if head.startswith("ref:") else ""
    if not ref.startswith("refs/") or ".." in ref.split("/"):
        return None
    common_text = _read(git_dir / "commondir")
    common = (git_dir / common_text).resolve() if common_text else git_dir
    for base in dict.fromkeys((git_dir, common)):
        value = _read(base / ref)
        if value and _SHA.fullmatch(value):
            return value
    for line in (_read(common / "packed-refs") or "").splitlines():
        sha, _, name = line.partition(" ")
        if name.strip() == ref and _SHA.fullmatch(sha):
            return sha
    return None


@functools.cache
def code_identity() -> dict[str, str | None]:
    """``{"version": semcom.__version__, "git_commit": commit or None}`` of the running code.

    The commit is :func:`git_head` of the folder above the ``semcom`` package (the source
    tree of an editable install); cached for the life of the process.
    """
    root = Path(semcom.__file__).resolve().parent.parent
    return {"version": semcom.__version__, "git_commit": git_head(root)}


def same_code(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two code identities are the same version and commit (None: unknown, never)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return (a.get("version"), a.get("git_commit")) == (b.get("version"), b.get("git_commit"))


def code_key(code: dict[str, Any]) -> str:
    """8 hex digits of the SHA-256 of a code identity (for file names)."""
    text = json.dumps([code.get("version"), code.get("git_commit")], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def describe_code(code: dict[str, Any] | None) -> str:
    """``semcom VERSION (git COMMIT9)`` of a code identity, for messages."""
    if not isinstance(code, dict) or not code.get("version"):
        return "an unrecorded semcom version"
    commit = code.get("git_commit")
    return f"semcom {code['version']}" + (f" (git {str(commit)[:9]})" if commit else "")


def data_digest(*arrays: Any) -> str:
    """SHA-256 (hex) of the arrays' dtypes, shapes and values, in order.

    Args:
        *arrays: NumPy arrays or torch tensors (tensors are copied to the CPU first).

    Returns:
        64 hex digits; equal for equal sequences of arrays (same dtype, shape and bytes).
    """
    digest = hashlib.sha256()
    for array in arrays:
        if hasattr(array, "detach"):  # a torch tensor: no torch import needed here
            array = array.detach().cpu().numpy()
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{list(array.shape)};".encode())
        digest.update(array.reshape(-1).view(np.uint8) if array.size else b"")
    return digest.hexdigest()


__all__ = ["code_identity", "code_key", "data_digest", "describe_code", "git_head", "same_code"]
