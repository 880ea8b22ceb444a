"""The one backend switch of the Monte Carlo kernels: ``"auto"``, ``"cpu"`` or ``"cuda"``.

``resolve_backend(name)`` turns a user's choice into the backend that runs:

- ``"cpu"``: the Numba CPU kernels (:mod:`channels.kernels.cpu`, :mod:`.link_cpu`).
- ``"cuda"``: their Numba-CUDA twins (:mod:`channels.kernels.cuda_ber`, :mod:`.cuda_link`).
  Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` set before Numba is imported) the
  twins run in the simulator: that is how they are tested without a GPU. Without a GPU and
  without the simulator, ``"cuda"`` is a :class:`~channels.errors.ConfigError`.
- ``"auto"``: ``"cuda"`` when a real CUDA GPU is present, else ``"cpu"``; never the simulator.

``numba.cuda`` is imported only when a GPU may be present (an NVIDIA driver is installed) or
the simulator is on, so importing :mod:`channels` stays cheap on machines without a GPU.
"""

from __future__ import annotations

import ctypes.util
import functools
import os

import numba

from channels.errors import fail

BACKENDS: tuple[str, ...] = ("auto", "cpu", "cuda")
"""Accepted values of every ``backend=`` argument and of ``semcom ber --backend``."""


def simulator_enabled() -> bool:
    """Whether Numba runs ``numba.cuda`` kernels in its CPU simulator (``NUMBA_ENABLE_CUDASIM``)."""
    return bool(numba.config.ENABLE_CUDASIM)


@functools.cache
def gpu_available() -> bool:
    """Whether a real CUDA GPU can run Numba-CUDA kernels (cached; False under the simulator)."""
    if simulator_enabled():
        return False
    has_driver = (
        os.path.exists("/dev/nvidiactl")
        or os.path.exists("/proc/driver/nvidia")
        or ctypes.util.find_library("cuda") is not None
    )
    if not has_driver:
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001 (a broken CUDA install means: no GPU for us)
        return False


def resolve_backend(name: str) -> str:
    """``"cpu"`` or ``"cuda"`` for a backend choice in :data:`BACKENDS` (module docstring).

    Raises:
        ConfigError: ``backend: 'tpu' is invalid; allowed: auto, cpu or cuda`` for an unknown
            name, and ``backend: 'cuda' is invalid; allowed: auto or cpu (no CUDA GPU found)``
            for ``"cuda"`` on a machine without a GPU (and without the simulator).
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in BACKENDS:
        raise fail("backend", name, "auto, cpu or cuda")
    if key == "cpu":
        return "cpu"
    if key == "auto":
        return "cuda" if gpu_available() else "cpu"
    if simulator_enabled() or gpu_available():
        return "cuda"
    raise fail("backend", name, "auto or cpu (no CUDA GPU found)")


__all__ = ["BACKENDS", "gpu_available", "resolve_backend", "simulator_enabled"]
