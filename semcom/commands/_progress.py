"""A progress line on stderr for long Monte Carlo points (``semcom ber``).

Nothing is shown for a point that finishes within ``after`` seconds (default 2, environment
variable ``SEMCOM_PROGRESS_AFTER``); after that, one line every ``every`` seconds (default 1
on a terminal, where the line is redrawn in place and erased when the point ends, and 10
otherwise, where each update is a new line; ``SEMCOM_PROGRESS_EVERY``). The line reads::

    semcom ber: snr_db 12: 3.4e+09 bits, 120/1000 errors, 12% done, 41 s, about 5.0 min left

"done" is the fraction of the nearer stop rule, ``max(errors / min_errors, bits / max_bits)``,
and the time left assumes the rate so far.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TextIO

from channels.errors import ConfigError


def _env_seconds(name: str, default: float) -> float:
    text = os.environ.get(name)
    if text is None or not text.strip():
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name}: {text!r} is invalid; allowed: a number of seconds >= 0")
    return value


def _duration(seconds: float) -> str:
    if seconds < 100:
        return f"{seconds:.0f} s"
    if seconds < 6000:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def progress_timing(stream: TextIO | None = None) -> tuple[float, float]:
    """``(after, every)`` in seconds from the environment, with the defaults above.

    Raises:
        ConfigError: ``SEMCOM_PROGRESS_AFTER`` or ``SEMCOM_PROGRESS_EVERY`` is not a number
            of seconds >= 0.
    """
    stream = sys.stderr if stream is None else stream
    tty = bool(getattr(stream, "isatty", lambda: False)())
    after = _env_seconds("SEMCOM_PROGRESS_AFTER", 2.0)
    return after, _env_seconds("SEMCOM_PROGRESS_EVERY", 1.0 if tty else 10.0)


class PointProgress:
    """Callable ``progress(errors, bits)`` for :func:`channels.montecarlo.simulate_ber`.

    Args:
        label: what is running, e.g. ``"semcom ber: snr_db 12"``.
        min_errors: the error stop rule (count).
        max_bits: the bit stop rule (count).
        stream: where to write (default ``sys.stderr``).
        after, every: seconds before the first line and between lines (default:
            :func:`progress_timing`).

    Raises:
        ConfigError: an environment variable above is not a number >= 0.

    Examples:
        >>> import io
        >>> out = io.StringIO()
        >>> show = PointProgress("demo", 100, 10**6, stream=out, after=0, every=0)
        >>> show(25, 1000)
        >>> out.getvalue().split(": ", 1)[1].split(",")[:3]
        ['1e+03 bits', ' 25/100 errors', ' 25% done']
    """

    def __init__(
        self,
        label: str,
        min_errors: int,
        max_bits: int,
        *,
        stream: TextIO | None = None,
        after: float | None = None,
        every: float | None = None,
    ) -> None:
        self.label = label
        self.min_errors = max(int(min_errors), 1)
        self.max_bits = max(int(max_bits), 1)
        self.stream = sys.stderr if stream is None else stream
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        if after is None or every is None:
            env_after, env_every = progress_timing(self.stream)
            after = env_after if after is None else after
            every = env_every if every is None else every
        self.after = after
        self.every = every
        self.start = time.monotonic()
        self.last: float | None = None
        self.width = 0

    def __call__(self, errors: int, bits: int) -> None:
        now = time.monotonic()
        elapsed = now - self.start
        if elapsed < self.after or (self.last is not None and now - self.last < self.every):
            return
        self.last = now
        done = min(max(errors / self.min_errors, bits / self.max_bits), 1.0)
        left = f", about {_duration(elapsed * (1 - done) / done)} left" if done > 0 else ""
        line = (
            f"{self.label}: {bits:.2g} bits, {errors}/{self.min_errors} errors, "
            f"{100 * done:.0f}% done, {_duration(elapsed)}{left}"
        )
        if self.tty:
            self.stream.write("\r" + line.ljust(self.width))
            self.width = len(line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Erase the redrawn line on a terminal (nothing to do otherwise)."""
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0
