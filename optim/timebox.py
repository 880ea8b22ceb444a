"""Wall-clock limits for the resumable Numba searches (:mod:`optim.enumeration`,
:mod:`optim.bnb_search`).

Compiled loops cannot read the clock, so a search runs in *slices*: a call does at most
``units`` steps (candidates, nodes), saves its position in arrays and returns; between calls
:class:`Deadline` checks the clock and sizes the next slice from the speed so far, so that a
slice lasts about :data:`SLICE_SECONDS` and never much more than the time left. A search
therefore overruns its deadline by at most about one slice (plus whatever its caller does
after stopping, e.g. computing a bound).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from channels.errors import ConfigError

SLICE_SECONDS = 0.05
"""Target duration of one slice (seconds)."""

STOPPED_BY = ("time_limit", "node_limit")
"""What can stop a search before it completes."""


def check_limits(time_limit: float, node_limit: int | None) -> None:
    """ConfigError unless ``time_limit > 0`` (``inf``: none) and ``node_limit`` is None or
    an integer >= 1."""
    ok_time = isinstance(time_limit, int | float) and not isinstance(time_limit, bool)
    ok_time = ok_time and not math.isnan(time_limit) and time_limit > 0
    ok_node = node_limit is None or (
        isinstance(node_limit, int) and not isinstance(node_limit, bool) and node_limit >= 1
    )
    if not (ok_time and ok_node):
        raise ConfigError(
            f"limits: time_limit={time_limit!r}, node_limit={node_limit!r} are invalid; "
            "allowed: time_limit > 0 seconds (inf: none), node_limit an integer >= 1 or None"
        )


class Deadline:
    """A wall-clock deadline ``start + time_limit`` (``time.perf_counter`` seconds).

    Args:
        time_limit: seconds from ``start`` (``inf``: never).
        start: the reference instant (default: now).

    Examples:
        >>> d = Deadline(math.inf)
        >>> d.passed(), d.left() == math.inf
        (False, True)
    """

    def __init__(self, time_limit: float, start: float | None = None) -> None:
        self.start = time.perf_counter() if start is None else float(start)
        self.at = self.start + float(time_limit)

    def passed(self) -> bool:
        """Whether the deadline is reached."""
        return time.perf_counter() >= self.at

    def left(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.perf_counter()

    def run(
        self, step: Callable[[int], bool], first: int, limit: int | None = None
    ) -> tuple[bool, str | None]:
        """Call ``step(units)`` (True: search complete) until complete, the deadline or
        ``limit`` units in all; slices are resized so that each lasts about
        :data:`SLICE_SECONDS` (and at most the time left).

        Returns:
            ``(complete, stopped_by)``: ``stopped_by`` is None when complete, else
            ``"time_limit"`` or ``"node_limit"``.
        """
        units = max(1, int(first))
        done_units = 0
        while True:
            if limit is not None:
                units = min(units, limit - done_units)
                if units <= 0:
                    return False, "node_limit"
            t0 = time.perf_counter()
            if step(units):
                return True, None
            done_units += units
            now = time.perf_counter()
            if now >= self.at:
                return False, "time_limit"
            target = min(SLICE_SECONDS, self.at - now)
            rate = units / max(now - t0, 1e-6)
            units = int(min(max(rate * target, 1.0), 8.0 * units, 2.0**62))
