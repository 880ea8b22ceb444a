"""Validation of model build options (every bad value raises a one-line ConfigError)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from channels.errors import check_int, fail


def positive_int(field: str, value: Any, high: int | None = None) -> int:
    """``value`` as an int in ``1..high`` (``high=None``: no upper bound)."""
    return check_int(field, value, 1, high)


def scalars_per_feature_alias(options: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``options`` with the alias ``L`` renamed to ``scalars_per_feature``."""
    options = dict(options)
    if "L" in options:
        if "scalars_per_feature" in options:
            raise fail("L", options["L"], "either L or scalars_per_feature, not both")
        options["scalars_per_feature"] = options.pop("L")
    return options


MAX_WIDTH = 1 << 20
"""Largest layer width (``hidden``, ``widths``): the size bound of :mod:`semcom.models.size`
is the real limit; this one keeps every product of widths far inside int64."""

MAX_CHANNELS = 64
MAX_SIDE = 4096
MAX_CLASSES = 100_000


def int_list(field: str, value: Any, length: int, high: int = MAX_WIDTH) -> list[int]:
    """``value`` as a list of ``length`` ints in ``1..high``."""
    allowed = f"a list of {length} integers in 1..{high}"
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != length:
        raise fail(field, value, allowed)
    try:
        return [positive_int(field, v, high) for v in value]
    except ValueError:
        raise fail(field, value, allowed) from None


def image_shape(value: Any) -> list[int]:
    """``input_shape`` as ``[C, H, W]``: ``C`` in ``1..MAX_CHANNELS``, ``H, W`` in
    ``1..MAX_SIDE``."""
    allowed = f"[C, H, W] with C in 1..{MAX_CHANNELS} and H, W in 1..{MAX_SIDE}"
    shape = int_list("input_shape", value, 3, MAX_SIDE)
    if shape[0] > MAX_CHANNELS:
        raise fail("input_shape", value, allowed)
    return shape


def num_classes(value: Any) -> int | None:
    """``None`` (no classifier head) or an int in ``2..MAX_CLASSES``."""
    if value is None:
        return None
    allowed = f"None or an integer in 2..{MAX_CLASSES}"
    try:
        v = positive_int("num_classes", value, MAX_CLASSES)
    except ValueError:
        raise fail("num_classes", value, allowed) from None
    if v < 2:
        raise fail("num_classes", value, allowed)
    return v


def choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise fail(field, value, ", ".join(allowed))
    return value


def flag(field: str, value: Any) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise fail(field, value, "true or false")
    return value
