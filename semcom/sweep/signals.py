"""Clean shutdown on a signal: SIGTERM, SIGINT and SIGHUP become an exception in the main thread.

By default ``SIGTERM`` (``kill``, ``timeout``, a cluster scheduler) and ``SIGHUP`` (the terminal
closed) end a Python process at once, skipping every ``finally``: its worker processes are
orphaned and its records left saying "running". Inside :func:`shutdown_on_signals` the first
of these signals raises :class:`Interrupted` in the main thread instead, a
``KeyboardInterrupt``, so the code that already handles Ctrl-C (stop the workers, keep the
finished rows, record "interrupted") handles all three. Repeats of a signal while that cleanup
runs are ignored, so it is never cut short; it is bounded (workers that ignore ``SIGTERM`` are
killed after :data:`semcom.sweep.pool.STOP_TIMEOUT_S`).

A few steps must not be cut in half: :func:`signals_deferred` holds the exception back until
its block ends (starting a worker process, whose parent must finish handing it its start-up
data and record it, or the worker is left behind reading a pipe that closes).

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
    """Raises :class:`Interrupted` for the first signal, ignores the rest; inside
    :func:`signals_deferred` it only records the first and the block's end raises it."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.deferring = 0  # depth of the signals_deferred blocks now open
        self.pending = False  # the first signal came inside them and is not raised yet

    def __call__(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            return  # cleanup of the first one is running: let it finish
        self.received = signum
        if self.deferring:
            self.pending = True
            return
        raise Interrupted(signum)


def _active_handler() -> _Handler | None:
    """The handler :func:`shutdown_on_signals` installed, when called from the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return None
    for signum in SIGNALS:
        handler = signal.getsignal(signum)
        if isinstance(handler, _Handler):
            return handler
    return None


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
def signals_deferred() -> Iterator[None]:
    """Hold back :class:`Interrupted` while the block runs and raise it when the block ends.

    Inside :func:`shutdown_on_signals`, a signal that arrives within the block is recorded
    (``handler.received``) and :class:`Interrupted` is raised as the outermost such block
    exits, chained to any exception the block raised. Blocks nest. Outside
    :func:`shutdown_on_signals`, or outside the main thread, it changes nothing. Keep the
    block short: a signal waits for it.

    Examples:
        >>> import os
        >>> with shutdown_on_signals():
        ...     try:
        ...         with signals_deferred():
        ...             os.kill(os.getpid(), signal.SIGTERM)
        ...             print("the block ran to its end")
        ...     except Interrupted as error:
        ...         print(error.name)
        the block ran to its end
        SIGTERM
    """
    handler = _active_handler()
    if handler is None:
        yield
        return
    handler.deferring += 1
    try:
        yield
    finally:
        handler.deferring -= 1
        if not handler.deferring and handler.pending:
            handler.pending = False
            raise Interrupted(handler.received)


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


__all__ = [
    "SIGNALS",
    "Interrupted",
    "exit_status",
    "preserve_handlers",
    "shutdown_on_signals",
    "signals_deferred",
]
