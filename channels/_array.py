"""Tiny NumPy / torch dispatch so each channel model is written once for both paths.

The torch path is differentiable (training uses it); the NumPy path is the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:  # torch is a dependency, but keep channels importable without it
    import torch
except ImportError:  # pragma: no cover
    torch = None

Array = Any  # numpy.ndarray or torch.Tensor


def is_torch(x: Array) -> bool:
    """True when ``x`` is a torch tensor."""
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy view of ``x`` (detached and on the host for torch tensors)."""
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


def complex_normal(shape: tuple[int, ...], rng: Any, like: Array) -> Array:
    """Samples of CN(0, 1) (variance 1/2 per real dimension) of the kind of ``like``.

    ``rng`` is a ``numpy.random.Generator`` (or int seed) for NumPy, a ``torch.Generator``
    (or None) for torch.
    """
    if is_torch(like):
        dtype = like.dtype if like.is_complex() else torch.complex64
        if dtype == torch.complex128 or like.dtype == torch.float64:
            dtype = torch.complex128
        return torch.randn(shape, generator=rng, dtype=dtype, device=like.device)
    gen = np.random.default_rng(rng)
    return (gen.standard_normal(shape) + 1j * gen.standard_normal(shape)) / np.sqrt(2.0)


def as_like(value: Any, like: Array) -> Array:
    """``value`` (scalar or array) converted to the array kind and device of ``like``."""
    if is_torch(like):
        if is_torch(value):
            return value.to(like.device)
        value = np.asarray(value)
        double = like.dtype in (torch.float64, torch.complex128)
        if np.iscomplexobj(value):
            dtype = torch.complex128 if double else torch.complex64
        else:
            dtype = torch.float64 if double else torch.float32
        return torch.as_tensor(value, device=like.device, dtype=dtype)
    return np.asarray(value)


def abs2(x: Array) -> Array:
    """|x|^2 elementwise, real."""
    return x.real**2 + x.imag**2 if (is_torch(x) and x.is_complex()) or np.iscomplexobj(x) else x**2
