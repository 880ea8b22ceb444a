"""How :func:`optim.twin.shared` compiles the CPU side of the shared kernels.

Shared code is compiled without Numba's reference counting (``_nrt=False``) and with NumPy's
error model; only a function that allocates may ask for counting (``nrt=True``). These tests
tie that list to the sources: a shared function whose body calls a NumPy allocator must ask
for counting (Numba would refuse to compile it otherwise, but only on first call), and one
that asks for counting must need it.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import sys
import textwrap

import numpy as np

import optim
from optim import twin

_ALLOCATORS = {
    "argsort", "array", "arange", "concatenate", "copy", "empty", "empty_like", "full", "ones",
    "sort", "zeros", "zeros_like",
}  # fmt: skip


def _shared_functions() -> dict[str, object]:
    """Every registered shared function's CPU dispatcher, by name (all of ``optim`` imported)."""
    for module in pkgutil.walk_packages(optim.__path__, "optim."):
        importlib.import_module(module.name)
    return {
        name: getattr(sys.modules[func.__module__], name) for name, func in twin._SOURCES.items()
    }


def _allocates(func: object) -> bool:
    """True when ``func``'s body calls ``np.<allocator>(...)`` or ``<array>.copy()``."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "np" and node.func.attr in _ALLOCATORS:
                return True
            if node.func.attr == "copy" and not node.args:
                return True
    return False


def test_every_shared_function_uses_numpys_error_model() -> None:
    functions = _shared_functions()
    assert len(functions) > 50
    wrong = [name for name, d in functions.items() if d.targetoptions["error_model"] != "numpy"]
    assert wrong == []


def test_only_the_shared_functions_that_allocate_count_references() -> None:
    functions = _shared_functions()
    counting = {name for name, d in functions.items() if d.targetoptions["_nrt"]}
    allocating = {name for name in functions if _allocates(twin._SOURCES[name])}
    assert allocating == {"sort_decreasing"}
    assert counting == allocating


def test_the_allocation_check_sees_an_allocation() -> None:
    def fills(out: object) -> None:
        out[:] = np.zeros(3)

    def copies(out: object) -> None:
        out[:] = out.copy()

    def writes(out: object) -> None:
        out[0] = 1.0

    assert _allocates(fills)
    assert _allocates(copies)
    assert not _allocates(writes)
