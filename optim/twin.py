"""One source, two targets: per-frame kernels written once in Python and compiled both by
``numba.njit`` (the CPU's parallel loop over frames) and by ``numba.cuda.jit(device=True)``
(the GPU's one-frame-per-thread kernels, :mod:`optim.batch.cuda`).

A function decorated with :func:`shared` is compiled for the CPU as usual (``cache=True``) and
remembered with its plain Python source. :func:`device_functions` later builds the GPU twin of
every remembered function: a copy of the function whose global names resolve in a copy of its
module's namespace where every shared function is replaced by its device twin, so a shared
function that calls another calls the CPU version on the CPU and the device version on the GPU,
with the very same code. Shared code therefore allocates nothing (its scratch arrays come from
the caller's per-frame workspace), raises nothing, returns scalars only, and uses ``math``
functions on scalars.

A few primitives differ on purpose between the targets (:func:`shared` with ``cuda=``): the
CPU keeps its exact tie rules (e.g. ``np.argsort`` of long rows) and the GPU gets an
allocation-free equivalent; each such pair is documented where it is defined.

On the CPU, shared code is compiled without Numba's reference counting (``_nrt=False``)
and with NumPy's error model. Numba otherwise counts references to every array a function
receives or slices, with an atomic increment and decrement each time: in the batched solver's
refined frames those two instructions took a fifth of the time. Code that allocates nothing
and returns scalars needs no counting: the caller holds a reference to every array it
passes. The error model only changes what a division by zero does: ``inf`` or ``nan`` (0 for
integers), as on the GPU, instead of a test before every division and an exception, which
shared code never relies on. Results are unchanged bit for bit. The few CPU primitives that
allocate ask for counting with ``nrt=True``.

Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) runs the same twins as Python.
"""

from __future__ import annotations

from collections.abc import Callable
from types import FunctionType
from typing import Any

import numba

_SOURCES: dict[str, FunctionType] = {}
_OVERRIDES: dict[str, FunctionType] = {}
_DEVICE: dict[str, Any] | None = None


def shared(
    cuda: FunctionType | None = None, nrt: bool = False, **njit_options: Any
) -> Callable[[FunctionType], Any]:
    """Decorator: compile ``func`` with ``numba.njit(cache=True, _nrt=nrt, error_model="numpy",
    **njit_options)`` and register its source for the GPU (``cuda``: a different source for
    the device twin, same name). ``nrt=True`` only for a function that allocates an array on
    the CPU; one compiled without it must not create arrays or return one."""

    def deco(func: FunctionType) -> Any:
        name = func.__name__
        if name in _SOURCES and _SOURCES[name].__module__ != func.__module__:
            raise RuntimeError(f"shared function name {name!r} is defined twice")
        _SOURCES[name] = func
        if cuda is not None:
            _OVERRIDES[name] = cuda
        return numba.njit(cache=True, _nrt=nrt, error_model="numpy", **njit_options)(func)

    return deco


def _clone(func: FunctionType, namespace: dict[str, Any]) -> FunctionType:
    out = FunctionType(func.__code__, namespace, func.__name__, func.__defaults__, func.__closure__)
    out.__qualname__ = func.__qualname__
    out.__doc__ = func.__doc__
    out.__module__ = func.__module__
    return out


def device_functions() -> dict[str, Any]:
    """The device twin of every :func:`shared` function, by name (built once, on first use;
    imports ``numba.cuda``)."""
    global _DEVICE
    if _DEVICE is None:
        from numba import cuda

        namespaces: dict[int, dict[str, Any]] = {}
        out: dict[str, Any] = {}
        for name, func in _SOURCES.items():
            src = _OVERRIDES.get(name, func)
            ns = namespaces.setdefault(id(src.__globals__), dict(src.__globals__))
            out[name] = cuda.jit(device=True)(_clone(src, ns))
        for ns in namespaces.values():
            ns.update(out)
        _DEVICE = out
    return _DEVICE


def cuda_kernel(func: FunctionType, **options: Any) -> Any:
    """``func`` (plain Python) as a CUDA kernel whose calls to shared functions go to their
    device twins."""
    from numba import cuda

    ns = dict(func.__globals__)
    ns.update(device_functions())
    return cuda.jit(**options)(_clone(func, ns))
