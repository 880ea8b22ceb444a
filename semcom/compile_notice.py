"""A line while Numba compiles: the first run after an install or an update compiles the
batched allocation solver and the link kernels (about 2 to 3 minutes on 2 CPU cores), and a
run that sat silent that long would look hung.

:func:`with_compile_notice` runs a warm-up that triggers the compilation in this process, so
that the work after it (and any worker process, through Numba's on-disk cache) loads the
kernels instead. When the warm-up takes longer than :data:`COMPILE_NOTICE_AFTER` seconds it
says what it is compiling while it works, then how long it took; with the cache filled it
takes about a second and prints nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["COMPILE_NOTICE_AFTER", "with_compile_notice"]

COMPILE_NOTICE_AFTER = 3.0
"""Seconds :func:`with_compile_notice` waits before it says that it is compiling."""


def with_compile_notice(
    warm_up: Callable[[], object],
    what: str,
    log: Callable[[str], None],
    notice_after: float = COMPILE_NOTICE_AFTER,
) -> None:
    """Run ``warm_up()``; past ``notice_after`` seconds ``log`` a line naming ``what`` is
    being compiled, and when done one with the seconds it took.

    An ``Exception`` from ``warm_up`` is swallowed: the caller's real work meets it again and
    reports it with its context. ``KeyboardInterrupt`` and other
    ``BaseException`` propagate. After a failure no "compiled" line is logged, and the notice
    timer never outlives the call.
    """
    shown: list[bool] = []

    def notice() -> None:
        shown.append(True)
        log(
            f"compiling {what} (Numba, once after an install or an update: about 2 to 3 min "
            "on 2 CPU cores; later runs load them from its cache)"
        )

    started = time.perf_counter()
    timer = threading.Timer(notice_after, notice)
    timer.daemon = True
    timer.start()
    try:
        warm_up()
    except Exception:  # noqa: BLE001 - the real work reports it, with its context
        return
    finally:
        timer.cancel()
    if shown:
        log(f"kernels compiled in {time.perf_counter() - started:.0f} s")
