"""The one exception type for invalid user input, shared by every package of semcom."""

import operator
from typing import Any


class ConfigError(ValueError):
    """Invalid argument or configuration value, raised before any work starts.

    The message is one line naming the field, the bad value and what is allowed, e.g.
    ``modulation: '8psk' is not one of bpsk, qpsk, 16qam, 64qam, 256qam``.
    The command-line interface turns it into exit status 2 without a traceback.
    """


def fail(field: str, value: object, allowed: str) -> ConfigError:
    """Build a :class:`ConfigError` with the project's one-line message format."""
    return ConfigError(f"{field}: {value!r} is invalid; allowed: {allowed}")


def check_int(field: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``low..high`` (``high=None``: no upper bound), else ConfigError.

    Accepts Python and NumPy integers; rejects bools, floats and strings, so ``2.0`` or ``"2"``
    in a configuration is reported rather than silently truncated.
    """
    allowed = f"an integer >= {low}" if high is None else f"an integer in {low}..{high}"
    if isinstance(value, bool):
        raise fail(field, value, allowed)
    try:
        number = operator.index(value)
    except TypeError:
        raise fail(field, value, allowed) from None
    if number < low or (high is not None and number > high):
        raise fail(field, value, allowed)
    return int(number)
