"""Lazy public names for a package's ``__init__`` (PEP 562 module ``__getattr__``).

A package lists its public names and the submodule that defines each; the submodule is imported
on first access, so ``import channels`` (or ``optim``, ``semcom``) stays cheap: no SciPy, torch,
Numba compilation or Sionna import until a name that needs it is used.

Examples:
    >>> import types
    >>> pkg = types.ModuleType("pkg")
    >>> pkg.__getattr__, pkg.__dir__ = lazy_exports("pkg", {"sqrt": "math"})
    >>> pkg.__getattr__("sqrt")(9.0)
    3.0
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, names: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` exporting ``names`` (name -> defining module).

    The first access to a name imports its module, caches the object as a real attribute of the
    package (later accesses skip ``__getattr__``) and returns it. An unknown name raises
    ``AttributeError`` as usual.
    """

    def __getattr__(name: str) -> Any:
        module_name = names.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module_name), name)
        module = sys.modules.get(package)
        if module is not None:
            setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        module = sys.modules.get(package)
        own = list(vars(module)) if module is not None else []
        return sorted(set(own) | set(names))

    return __getattr__, __dir__
