"""Bits per scalar given per feature: validation and the bit layout of a frame.

The quantiser of feature ``i`` uses ``Q_i`` bits per scalar (one ``Q`` for every feature, the
default, or a vector ``Q[N]``; [OUR CHOICE] the per-feature form, so that a bit allocator can
give important features finer quantisers). A frame of ``N`` features of ``L`` scalars then
holds ``b_i = L Q_i`` bits of feature ``i``, features in order, so feature ``i`` starts at bit
``first_i = L sum_{j<i} Q_j`` (with one ``Q``: ``i L Q``, today's layout). Codes of every
feature share one integer array ``[..., N, L]``, each feature using its own ``Q_i`` bits.

Examples:
    >>> check_bits_per_scalar("bits_per_scalar", 8, 3, 16)
    8
    >>> check_bits_per_scalar("bits_per_scalar", [4, 8, 8], 3, 16).tolist()
    [4, 8, 8]
    >>> bits_array(8, 3).tolist(), bit_offsets([4, 8, 8], 2).tolist()
    ([8, 8, 8], [0, 8, 24])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from channels.errors import check_int, fail


def check_bits_per_scalar(
    field: str,
    value: Any,
    n_features: int | None,
    high: int,
    *,
    coerce: bool = False,
    max_repr: int | None = 80,
) -> int | np.ndarray:
    """``value`` as one ``Q`` (an ``int``) or as per-feature ``Q[N]`` (read-only int64 array).

    Args:
        field: name shown in error messages.
        value: an integer, or a list / array of integers (one per feature).
        n_features: ``N``, the length a vector must have (``None``: any length).
        high: the largest ``Q`` allowed (the smallest is 1).
        coerce: also accept numbers equal to integers (``8.0``), as
            :func:`channels.errors.check_int` does.
        max_repr: passed to :func:`channels.errors.fail`.

    Returns:
        ``int`` for a scalar (0-d arrays included), a new read-only int64 array ``[N]`` for a
        vector.

    Raises:
        ConfigError: not an integer (or list of integers) in ``1..high``, or a vector of the
            wrong length.
    """
    allowed = f"an integer in 1..{high}, or a list of such integers (one per feature)"
    if isinstance(value, str | bytes) or value is None:
        raise fail(field, value, allowed, max_repr=max_repr)
    if np.ndim(value) == 0:
        if isinstance(value, np.ndarray):
            value = value.item()
        return check_int(field, value, 1, high, coerce=coerce, allowed=allowed, max_repr=max_repr)
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise fail(field, value, allowed, max_repr=max_repr) from None
    shown = arr.tolist() if arr.dtype != object else value
    if arr.ndim != 1:
        raise fail(field, shown, allowed, max_repr=max_repr)
    if n_features is not None and arr.size != n_features:
        raise fail(field, shown, f"one integer per feature ({n_features} values) in 1..{high}",
                   max_repr=max_repr)  # fmt: skip
    if arr.dtype == np.bool_ or arr.dtype == object:
        raise fail(field, shown, allowed, max_repr=max_repr)
    if not isinstance(value, np.ndarray) and any(isinstance(v, bool | np.bool_) for v in value):
        raise fail(field, list(value), allowed, max_repr=max_repr)  # True is not a bit count
    if np.issubdtype(arr.dtype, np.integer):
        out = arr.astype(np.int64)
    elif coerce and np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)):
        out = arr.astype(np.int64)
        if not np.array_equal(out, arr):
            raise fail(field, shown, allowed, max_repr=max_repr)
    else:
        raise fail(field, shown, allowed, max_repr=max_repr)
    if out.size and (out.min() < 1 or out.max() > high):
        raise fail(field, shown, allowed, max_repr=max_repr)
    out.setflags(write=False)
    return out


def bits_array(bits_per_scalar: int | np.ndarray, n_features: int) -> np.ndarray:
    """``Q_i`` of every feature as an int64 array ``[N]`` (a scalar is repeated)."""
    if np.ndim(bits_per_scalar) == 0:
        return np.full(n_features, int(bits_per_scalar), dtype=np.int64)
    return np.asarray(bits_per_scalar, dtype=np.int64).reshape(-1)


def bit_offsets(bits_per_scalar: Any, n_scalars: int) -> np.ndarray:
    """First bit of each feature in its frame, ``first_i = L sum_{j<i} Q_j``: int64 ``[N]``."""
    q = np.asarray(bits_per_scalar, dtype=np.int64).reshape(-1)
    out = np.zeros(q.size, dtype=np.int64)
    if q.size > 1:
        np.cumsum(q[:-1] * int(n_scalars), out=out[1:])
    return out


def is_uniform(bits_per_scalar: int | np.ndarray) -> bool:
    """True for one ``Q``, or a vector whose entries are all equal (or empty)."""
    if np.ndim(bits_per_scalar) == 0:
        return True
    q = np.asarray(bits_per_scalar)
    return bool(q.size == 0 or np.all(q == q.flat[0]))


__all__ = ["bit_offsets", "bits_array", "check_bits_per_scalar", "is_uniform"]
