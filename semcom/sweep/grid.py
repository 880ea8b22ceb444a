"""The sweep grid: the cartesian product of the swept axes, one :class:`Point` per combination.

A grid with axes ``a_1 .. a_m`` of lengths ``n_1 .. n_m`` has ``n = n_1 · … · n_m`` points,
numbered ``0 .. n-1`` in row-major order (the last axis varies fastest)::

    index(i_1, …, i_m) = ((i_1 · n_2 + i_2) · n_3 + i_3) … · n_m + i_m

Every point carries all condition values: the fixed ``base`` values first, then the axes.
Its :attr:`Point.key` is a canonical text id, ``name=value`` joined by ``|`` in that order,
with floats written as ``repr(float(v))`` (shortest round-trip form, the same on every
platform and Python ≥ 3.1), ints with ``str`` and strings as they are, so the key of a point is
the same in every process, on every machine and in every later run (resume relies on it).

Examples:
    >>> points = expand({"snr_db": [0.0, 5], "scheme": ["a", "b"]}, base={"channel": "awgn"})
    >>> [p.key for p in points][:2]
    ['channel=awgn|snr_db=0.0|scheme=a', 'channel=awgn|snr_db=0.0|scheme=b']
    >>> points[3]["snr_db"], points[3].index
    (5, 3)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from channels.errors import fail

_FORBIDDEN_IN_TEXT = ("|", "\n", "\r")


def plain_scalar(value: Any) -> Any:
    """A NumPy or torch scalar (0-d) as the Python scalar it holds; anything else unchanged."""
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return value.item()
    return value


def _normalise(value: Any) -> Any:
    """A plain Python value: NumPy scalars become Python scalars, lists become tuples."""
    value = plain_scalar(value)
    if isinstance(value, list | tuple):
        return tuple(_normalise(v) for v in value)
    return value


def format_value(value: Any) -> str:
    """The canonical text of one point value (as used in :attr:`Point.key`).

    ``bool`` -> ``True``/``False``, ``int`` -> ``str``, ``float`` -> ``repr(float(v))``
    (``0.1``, ``1e-300``, ``inf``, ``nan``), ``str`` as is, ``None`` -> ``None``, a tuple or
    list -> ``[a,b,...]`` of its formatted items. Anything else raises ``TypeError``.
    """
    value = _normalise(value)
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    raise TypeError(f"point value {value!r} of type {type(value).__name__} has no canonical text")


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its position ``index`` in the grid and its named values.

    ``values`` holds ``(name, value)`` pairs in order: base values, then axes.
    """

    index: int
    values: tuple[tuple[str, Any], ...]

    def as_dict(self) -> dict[str, Any]:
        """The values as a new ``{name: value}`` dict (same order)."""
        return dict(self.values)

    @cached_property
    def key(self) -> str:
        """Canonical id ``name=value|name=value|…`` (see :func:`format_value`)."""
        return "|".join(f"{name}={format_value(value)}" for name, value in self.values)

    def __getitem__(self, name: str) -> Any:
        for item, value in self.values:
            if item == name:
                return value
        raise KeyError(name)


def _check_name(name: Any, field: str) -> str:
    if not isinstance(name, str) or not name or any(c in name for c in ("=", *_FORBIDDEN_IN_TEXT)):
        raise fail(field, name, "a non-empty name without '=', '|' or line breaks")
    return name


def _check_value(value: Any, field: str) -> Any:
    value = _normalise(value)
    try:
        text = format_value(value)
    except TypeError:
        raise fail(field, value, "a number, string, bool, None or a list of those") from None
    if isinstance(value, str | tuple) and any(c in text for c in _FORBIDDEN_IN_TEXT):
        raise fail(field, value, "text without '|' or line breaks")
    return value


def expand(axes: Mapping[str, Sequence[Any]], base: Mapping[str, Any] | None = None) -> list[Point]:
    """All points of the grid ``base × axes[0] × axes[1] × …`` in row-major order.

    Args:
        axes (mapping name -> non-empty sequence of distinct values): The swept axes, in the order
            they vary (the last one fastest).
        base (mapping name -> value, optional): Fixed values carried by every point, placed before
            the axes. An axis with the same name as a base value replaces it in place (the base
            order is kept for it).

    Returns:
        list of Point: ``prod(len(v) for v in axes.values())`` points, ``index`` 0..n-1; one
        point with the base values when ``axes`` is empty.

    Raises:
        ConfigError: An empty or non-list axis, repeated values on an axis, or a value without
            canonical text (field ``sweep.<name>``).
    """
    base = dict(base or {})
    for name in base:
        _check_name(name, "base")
        base[name] = _check_value(base[name], name)
    names: list[str] = []
    columns: list[list[Any]] = []
    for name, values in axes.items():
        field = f"sweep.{_check_name(name, 'sweep')}"
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise fail(field, values, "a non-empty list of values")
        column = [_check_value(v, f"{field}[{i}]") for i, v in enumerate(values)]
        texts = [format_value(v) for v in column]
        if len(set(texts)) != len(texts):
            raise fail(field, list(values), "distinct values")
        names.append(name)
        columns.append(column)

    order = list(base) + [n for n in names if n not in base]
    points = []
    for index, combo in enumerate(itertools.product(*columns)):
        merged = dict(base)
        merged.update(zip(names, combo, strict=True))
        points.append(Point(index, tuple((n, merged[n]) for n in order)))
    return points


def n_points(axes: Mapping[str, Sequence[Any]]) -> int:
    """Number of points of the grid: the product of the axis lengths."""
    return math.prod(len(v) for v in axes.values())
