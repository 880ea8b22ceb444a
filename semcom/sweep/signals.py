"""Clean shutdown on a signal: SIGTERM, SIGINT and SIGHUP become an exception in the main thread.

By default ``SIGTERM`` (``kill``, ``timeout``, a cluster scheduler) and ``SIGHUP`` (the terminal
closed) end a Python process at once, skipping every ``finally``: its worker processes are
orphaned and its records left saying "running". Inside :func:`shutdown_on_signals` the first
of these signals raises :class:`Interrupted` in the main thread instead, a
``KeyboardInterrupt``, so the code that already handles Ctrl-C (stop the workers, keep the
finished rows, record "interrupted") handles all three. Repeats of a signal while that cleanup
runs are ignored, so it is never cut short; it is bounded (workers that ignore ``SIGTERM`` are
killed after :data:`semcom.sweep.pool.STOP_TIMEOUT_S`).

A signal that was ignored when the context was entered (``nohup`` ignores ``SIGHUP``, a shell
ignores ``SIGINT`` for background jobs) stays ignored. The exit status of a command stopped by
signal ``s`` is ``128 + s`` (130 for ``SIGINT``, 143 for ``SIGTERM``), as a shell reports it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals turned into :class:`Interrupted` (those this platform has)."""


class Interrupted(KeyboardInterrupt):
    """The process received signal ``signum``; raised in the main thread.

    Examples:
        >>> error = Interrupted(signal.SIGTERM)
        >>> error.name, error.exit_status, isinstance(error, KeyboardInterrupt)
        ('SIGTERM', 143, True)
    """

    def __init__(self, signum: int) -> None:
        self.signum = int(signum)
        super().__init__(self.name)

    @property
    def name(self) -> str:
        """The signal's name, e.g. ``SIGTERM``."""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_status(self) -> int:
        """``128 + signum``: the status a shell shows for a process ended by the signal."""
        return 128 + self.signum

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.signum,))


def exit_status(error: KeyboardInterrupt) -> int:
    """The exit status for an interruption: ``128 + signum``, 130 for a plain Ctrl-C."""
    return error.exit_status if isinstance(error, Interrupted) else 128 + signal.SIGINT


class _Handler:
    """Raises :class:`Interrupted` for the first signal, ignores the rest."""

    def __init__(self) -> None:
        self.received: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            return  # cleanup of the first one is running: let it finish
        self.received = signum
        raise Interrupted(signum)


@contextlib.contextmanager
def shutdown_on_signals(signals: tuple[int, ...] = SIGNALS) -> Iterator[_Handler]:
    """Within the block, the first of ``signals`` raises :class:`Interrupted` (module doc).

    Args:
        signals: Signal numbers to handle; those ignored on entry stay ignored.

    Yields:
        The handler; its ``received`` is the first signal number caught, else None.

    Outside the main thread (where Python cannot set handlers) it changes nothing. The previous
    handlers are restored on exit.

    Examples:
        >>> import os
        >>> with shutdown_on_signals() as handler:
        ...     try:
        ...         os.kill(os.getpid(), signal.SIGTERM)
        ...     except Interrupted as error:
        ...         print(error.name, handler.received == signal.SIGTERM)
        SIGTERM True
    """
    handler = _Handler()
    if threading.current_thread() is not threading.main_thread():
        yield handler
        return
    previous: dict[int, Any] = {}
    try:
        for signum in signals:
            old = signal.getsignal(signum)
            if old == signal.SIG_IGN:
                continue
            previous[signum] = old
            signal.signal(signum, handler)
        yield handler
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old if old is not None else signal.SIG_DFL)


@contextlib.contextmanager
def preserve_handlers(signals: tuple[int, ...] = SIGNALS) -> Iterator[None]:
    """Put back, on leaving, the handlers of ``signals`` that were set on entering.

    For calls into libraries that install handlers of their own: ``ray.init`` makes ``SIGTERM``
    call ``sys.exit`` and adds a native handler that logs a stack dump. Setting the handler
    again through :func:`signal.signal` restores both the Python handler and Python's native
    one. A no-op outside the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            if handler is not None:  # None: set outside Python; nothing to put back
                signal.signal(signum, handler)


__all__ = ["SIGNALS", "Interrupted", "exit_status", "preserve_handlers", "shutdown_on_signals"]
