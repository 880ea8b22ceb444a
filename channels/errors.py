"""The one exception type for invalid user input, and the validators every package shares.

Every check raises :class:`ConfigError` with the project's one-line message,
``<field>: <repr(value)> is invalid; allowed: <what is allowed>`` (:func:`fail`), before any
work starts; :func:`check_name` uses the shape ``<field>: <repr(value)> is not one of <names>``.
Each check returns the value converted to its canonical type (``int``, ``float``, ``bool``, a
read-only float64 vector, a lower-case name), so a caller writes ``x = check_real("x", x, 0)``.
The ``allowed`` argument, where a check has one, replaces the generated description of what is
allowed; the check itself does not change.

Examples:
    >>> check_real("snr", 3)
    3.0
    >>> check_int("n", 2.5, 1)
    Traceback (most recent call last):
        ...
    channels.errors.ConfigError: n: 2.5 is invalid; allowed: an integer >= 1
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """Invalid argument or configuration value, raised before any work starts.

    The message is one line naming the field, the bad value and what is allowed, e.g.
    ``modulation: '8psk' is not one of bpsk, qpsk, 16qam, 64qam, 256qam``.
    The command-line interface turns it into exit status 2 without a traceback.
    """


def fail(field: str, value: object, allowed: str, *, max_repr: int | None = None) -> ConfigError:
    """Build a :class:`ConfigError` with the project's one-line message format.

    Args:
        field: name of the argument or configuration key.
        value: the bad value; shown as its ``repr``.
        allowed: what the field accepts, in words.
        max_repr: longest ``repr`` shown; a longer one is cut to ``max_repr - 3`` characters
            followed by ``...`` (``None``: never cut).

    Returns:
        The error, for the caller to ``raise``.

    Examples:
        >>> str(fail("rate", -1, "a number > 0"))
        'rate: -1 is invalid; allowed: a number > 0'
        >>> str(fail("w", list(range(30)), "a short list", max_repr=20))
        'w: [0, 1, 2, 3, 4, 5... is invalid; allowed: a short list'
    """
    text = repr(value)
    if max_repr is not None and len(text) > max_repr:
        text = text[: max_repr - 3] + "..."
    return ConfigError(f"{field}: {text} is invalid; allowed: {allowed}")


def check_int(
    field: str,
    value: Any,
    low: int,
    high: int | None = None,
    *,
    coerce: bool = False,
    allowed: str | None = None,
    max_repr: int | None = None,
) -> int:
    """``value`` as an int in ``low..high`` (``high=None``: no upper bound), else ConfigError.

    Accepts Python and NumPy integers; rejects bools, floats and strings, so ``2.0`` or ``"2"``
    in a configuration is reported rather than silently truncated.

    Args:
        field: name shown in the message.
        value: the value to check.
        low: smallest value allowed.
        high: largest value allowed (``None``: no upper bound).
        coerce: also accept any number equal to an integer (``2.0``, ``Fraction(4, 2)``);
            strings stay rejected.
        allowed: message text instead of ``an integer >= low`` / ``an integer in low..high``.
        max_repr: passed to :func:`fail`.

    Returns:
        The value as a Python ``int``.

    Raises:
        ConfigError: ``value`` is not an integer in range.

    Examples:
        >>> check_int("n", 3, 1)
        3
        >>> check_int("n", 2.0, 1, coerce=True)
        2
        >>> check_int("q", 17, 1, 16)
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: q: 17 is invalid; allowed: an integer in 1..16
        >>> check_int("n", True, 0)
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: n: True is invalid; allowed: an integer >= 0
    """
    if allowed is None:
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    if isinstance(value, bool | np.bool_):
        raise fail(field, value, allowed, max_repr=max_repr)
    try:
        number = operator.index(value)
    except TypeError:
        if not coerce:
            raise fail(field, value, allowed, max_repr=max_repr) from None
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):
            raise fail(field, value, allowed, max_repr=max_repr) from None
        if number != value:
            raise fail(field, value, allowed, max_repr=max_repr) from None
    if number < low or (high is not None and number > high):
        raise fail(field, value, allowed, max_repr=max_repr)
    return int(number)


def _real_rule(low: float, high: float, open_low: bool, open_high: bool, allow_inf: bool) -> str:
    """The words for a real range, e.g. ``a number in (0, 1]`` or ``a finite number >= 0``."""
    has_low, has_high = low > -math.inf, high < math.inf
    if has_low and has_high:
        return f"a number in {'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
    noun = "a number" if allow_inf else "a finite number"
    if has_low:
        return f"{noun} {'>' if open_low else '>='} {low}"
    if has_high:
        return f"{noun} {'<' if open_high else '<='} {high}"
    return noun


def check_real(
    field: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    open_low: bool = False,
    open_high: bool = False,
    allow_inf: bool = False,
    also: Sequence[float] = (),
    coerce: bool = False,
    allowed: str | None = None,
    max_repr: int | None = None,
) -> float:
    """``value`` as a float in the interval from ``low`` to ``high``, else ConfigError.

    The interval is closed unless ``open_low`` / ``open_high``; NaN is always rejected and
    ``±inf`` unless ``allow_inf`` (and the bounds admit it) or listed in ``also``. Bools are
    rejected.

    Args:
        field: name shown in the message.
        value: the value to check: a real number (``int``, ``float``, NumPy scalar,
            ``Fraction``), or with ``coerce`` anything ``float()`` converts (``"1e3"``, a 0-d
            array).
        low: lower bound (``-inf``: none).
        high: upper bound (``inf``: none).
        open_low: exclude ``low`` itself.
        open_high: exclude ``high`` itself.
        allow_inf: accept an infinite value that lies within the bounds.
        also: values accepted besides the interval, e.g. ``(math.inf,)`` for an SNR in
            ``[-300, 300]`` dB where ``inf`` means no noise; the generated text ends with
            ``or <value>`` for each.
        coerce: convert with ``float()`` instead of requiring a real number type.
        allowed: message text instead of the generated one (``a number in [low, high]``,
            ``a finite number >= low``, ``a number > low`` with ``allow_inf``, ...).
        max_repr: passed to :func:`fail`.

    Returns:
        The value as a Python ``float``.

    Raises:
        ConfigError: ``value`` is not a number, is NaN, or lies outside the interval.

    Examples:
        >>> check_real("rho", 0.5, 0.0, 1.0, open_low=True)
        0.5
        >>> check_real("margin", float("inf"), 0, allow_inf=True)
        inf
        >>> check_real("budget", "1e3", 0, coerce=True)
        1000.0
        >>> check_real("snr_db", float("inf"), -300, 300, also=(math.inf,))
        inf
        >>> check_real("rho", 0.0, 0.0, 1.0, open_low=True)
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: rho: 0.0 is invalid; allowed: a number in (0.0, 1.0]
        >>> check_real("power", float("nan"), 0)
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: power: nan is invalid; allowed: a finite number >= 0
    """
    if allowed is None:
        allowed = _real_rule(low, high, open_low, open_high, allow_inf)
        allowed += "".join(f" or {extra}" for extra in also)
    if isinstance(value, bool | np.bool_) or not (coerce or isinstance(value, numbers.Real)):
        raise fail(field, value, allowed, max_repr=max_repr)
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise fail(field, value, allowed, max_repr=max_repr) from None
    if number in also and not math.isnan(number):
        return number
    below = number < low or (open_low and number == low)
    above = number > high or (open_high and number == high)
    if math.isnan(number) or (math.isinf(number) and not allow_inf) or below or above:
        raise fail(field, value, allowed, max_repr=max_repr)
    return number


def check_choice(field: str, value: Any, options: Sequence[Any], allowed: str | None = None) -> Any:
    """``value`` itself if it is one of ``options`` (exact match), else ConfigError.

    Args:
        field: name shown in the message.
        value: the value to check.
        options: the values allowed.
        allowed: message text instead of the options joined by ``", "``.

    Returns:
        ``value`` unchanged.

    Raises:
        ConfigError: ``value`` is not in ``options``.

    Examples:
        >>> check_choice("law", "uniform", ("geometric", "uniform"))
        'uniform'
        >>> check_choice("code", "GRAY", ("binary", "gray"), "'binary' or 'gray'")
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: code: 'GRAY' is invalid; allowed: 'binary' or 'gray'
    """
    if value not in options:
        raise fail(field, value, ", ".join(map(str, options)) if allowed is None else allowed)
    return value


def check_name(field: str, value: Any, names: Sequence[str], allowed: str | None = None) -> str:
    """The canonical form of a name (``str(value)``, stripped, lower-case) if it is in ``names``.

    The error reads ``<field>: <repr(value)> is not one of <names>``, or with ``allowed`` the
    message of :func:`fail`.

    Args:
        field: name shown in the message.
        value: the name to check, in any case and with surrounding blanks.
        names: the canonical (lower-case) names.
        allowed: message text; switches to the ``is invalid; allowed: ...`` shape.

    Returns:
        The canonical name.

    Raises:
        ConfigError: the canonical form is not in ``names``.

    Examples:
        >>> check_name("channel", " AWGN", ("awgn", "rayleigh"))
        'awgn'
        >>> check_name("channel", "ricean", ("awgn", "rayleigh"))
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: channel: 'ricean' is not one of awgn, rayleigh
        >>> check_name("mode", "Max", ("mean", "sum"), "mean or sum")
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: mode: 'Max' is invalid; allowed: mean or sum
    """
    key = str(value).strip().lower()
    if key not in names:
        if allowed is not None:
            raise fail(field, value, allowed)
        raise ConfigError(f"{field}: {value!r} is not one of {', '.join(names)}")
    return key


def check_flag(
    field: str, value: Any, none_ok: bool = False, allowed: str | None = None
) -> bool | None:
    """``value`` as a ``bool`` (Python or NumPy bool only; ``None`` too with ``none_ok``).

    Numbers and strings such as ``1`` or ``"yes"`` are rejected, not interpreted.

    Args:
        field: name shown in the message.
        value: the value to check.
        none_ok: accept ``None`` (returned as ``None``).
        allowed: message text instead of ``true or false`` / ``true, false or null``.

    Returns:
        ``True``, ``False`` or (with ``none_ok``) ``None``.

    Raises:
        ConfigError: ``value`` is not a bool.

    Examples:
        >>> check_flag("amp", False)
        False
        >>> check_flag("refine", None, none_ok=True) is None
        True
        >>> check_flag("amp", "yes")
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: amp: 'yes' is invalid; allowed: true or false
    """
    if value is None and none_ok:
        return None
    if not isinstance(value, bool | np.bool_):
        if allowed is None:
            allowed = "true, false or null" if none_ok else "true or false"
        raise fail(field, value, allowed)
    return bool(value)


def check_seed(
    field: str, value: Any, high: int | None = None, *, generator: bool = False
) -> int | np.random.Generator | None:
    """A random seed: ``None``, an int in ``0..high``, or (with ``generator``) a NumPy Generator.

    Args:
        field: name shown in the message.
        value: the seed.
        high: largest seed allowed (``None``: no bound).
        generator: accept a :class:`numpy.random.Generator` as it is.

    Returns:
        ``None``, the seed as an ``int``, or the generator.

    Raises:
        ConfigError: anything else (message of :func:`check_int` with ``low = 0``).

    Examples:
        >>> check_seed("seed", 7)
        7
        >>> check_seed("seed", None) is None
        True
        >>> check_seed("seed", -1, 2**32 - 1)
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: seed: -1 is invalid; allowed: an integer in 0..4294967295
    """
    if value is None or (generator and isinstance(value, np.random.Generator)):
        return value
    return check_int(field, value, 0, high)


def check_vector(
    field: str,
    value: Any,
    low: float = -math.inf,
    *,
    min_size: int = 0,
    allowed: str | None = None,
    unconvertible: str | None = None,
    max_repr: int | None = None,
) -> np.ndarray:
    """``value`` as a read-only one-dimensional float64 array of finite numbers ``>= low``.

    A list, tuple or array is converted with ``numpy.array``; a 0-d array counts as one
    element, while a bare number is rejected (it is not a list). Empty vectors are allowed
    unless ``min_size`` says otherwise.

    Args:
        field: name shown in the message.
        value: the vector.
        low: smallest element allowed (``-inf``: none).
        min_size: fewest elements allowed.
        allowed: message text instead of ``a list of finite numbers`` (``>= low``).
        unconvertible: message text, instead of ``allowed``, for a value that ``numpy.array``
            cannot convert to float64 at all (a string, a ragged list).
        max_repr: passed to :func:`fail` (vectors can be long).

    Returns:
        A new read-only float64 array ``[n]``.

    Raises:
        ConfigError: not convertible, not one-dimensional, shorter than ``min_size``, or an
            element is non-finite or below ``low``.

    Examples:
        >>> check_vector("gains", [1, 0.5], 0)
        array([1. , 0.5])
        >>> check_vector("g", [-2.0], 0)
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: g: [-2.0] is invalid; allowed: a list of finite numbers >= 0
        >>> check_vector("w", [], min_size=1, allowed="a non-empty list")
        Traceback (most recent call last):
            ...
        channels.errors.ConfigError: w: [] is invalid; allowed: a non-empty list
    """
    if allowed is None:
        allowed = "a list of finite numbers" + (f" >= {low}" if low > -math.inf else "")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        text = allowed if unconvertible is None else unconvertible
        raise fail(field, value, text, max_repr=max_repr) from None
    if arr.ndim == 0 and not isinstance(value, list | tuple | np.ndarray):
        raise fail(field, value, allowed, max_repr=max_repr)
    arr = arr.reshape(-1) if arr.ndim == 0 else arr
    if arr.ndim != 1 or arr.size < min_size:
        raise fail(field, value, allowed, max_repr=max_repr)
    if not np.all(np.isfinite(arr)) or np.any(arr < low):
        raise fail(field, value, allowed, max_repr=max_repr)
    arr.setflags(write=False)
    return arr
