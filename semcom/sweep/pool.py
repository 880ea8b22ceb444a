"""Process pools that never outlive their parent: spawn start, a parent watchdog, a hard stop.

Both pools of ``semcom run`` (training the model variants, evaluating sweep points) are
:func:`spawn_pool` pools. Each worker

- ignores ``SIGINT``: Ctrl-C reaches the whole foreground process group, and the parent alone
  decides what to do (stop the pool, keep the finished rows). A worker starts with ``SIGINT``
  blocked (the parent blocks it while it starts one, and a process inherits its signal mask
  across ``fork`` and ``exec``), and unblocks it once it ignores it, so a Ctrl-C during its
  start-up (importing its modules takes seconds) is dropped, not a ``KeyboardInterrupt``
  traceback;
- ends within about a second of its parent's death: on Linux the kernel kills it
  (:func:`die_with_parent`, ``PR_SET_PDEATHSIG``), and everywhere a watchdog thread
  (:func:`watch_parent`) ends it with ``os._exit`` within :data:`WATCH_INTERVAL_S` seconds. A
  parent killed by ``SIGKILL`` or the OOM killer runs no cleanup, and a pool worker waiting on
  its task queue never sees an end-of-file (it holds both ends of the queue's pipe), so
  without these it would wait for ever. The ``multiprocessing`` resource tracker of the parent
  exits by itself once the parent and every worker are gone (the last writer of its pipe
  closes).

:func:`stop_pool` ends a pool now: queued work dropped, workers sent ``SIGTERM`` and, after
:data:`STOP_TIMEOUT_S`, ``SIGKILL``. It ends the workers the pool has recorded, so a worker is
started and recorded with the shutdown signals held back (:class:`SpawnPool`): a signal
between the two would leave a worker waiting for start-up data that never comes.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from semcom.sweep.signals import signals_deferred

STOP_TIMEOUT_S = 10.0
"""Seconds to wait for terminated workers before killing them."""
WATCH_INTERVAL_S = 0.5
"""Seconds between two checks of a worker's watchdog that its parent is alive."""
ORPHAN_EXIT_STATUS = 3
"""Exit status of a worker ended by its watchdog."""
PR_SET_PDEATHSIG = 1
"""The ``prctl(2)`` option of Linux that names the signal a process gets when its parent dies."""
HELD_AT_START: frozenset[int] = (
    frozenset({signal.SIGINT}) if hasattr(signal, "pthread_sigmask") else frozenset()
)
"""Signals a worker starts with blocked, until it ignores them (none where Python has no
``pthread_sigmask``)."""


def watch_parent(parent_pid: int, interval: float = WATCH_INTERVAL_S) -> threading.Thread:
    """Start a daemon thread ending this process once ``parent_pid`` is no longer its parent.

    A process whose parent dies is re-parented (to init or a subreaper), so ``os.getppid()``
    changes; the thread then calls ``os._exit(ORPHAN_EXIT_STATUS)`` (no cleanup: the parent
    that would receive results is gone). Checks every ``interval`` seconds.

    Returns:
        The started thread.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(ORPHAN_EXIT_STATUS)

    thread = threading.Thread(target=watch, name="semcom-parent-watchdog", daemon=True)
    thread.start()
    return thread


def die_with_parent(parent_pid: int) -> bool:
    """Ask Linux to ``SIGKILL`` this process when its parent dies (``PR_SET_PDEATHSIG``).

    Unlike :func:`watch_parent` it needs no Python thread, so it also ends a worker stuck in
    native code that holds the GIL (a Numba kernel, a long solver call). The kernel sends the
    signal when the *thread* that started this process ends; pool workers are started by the
    thread that submits work, which waits for the pool. Exits at once if ``parent_pid`` is
    already gone.

    Returns:
        Whether the request was made (False off Linux or without ``prctl``).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        done = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:  # the parent died before the request
        os._exit(ORPHAN_EXIT_STATUS)
    return done


def _init_worker(
    parent_pid: int, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if HELD_AT_START:  # a Ctrl-C held since the start is dropped now (ignored)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_AT_START)
    die_with_parent(parent_pid)
    watch_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def _held_in_new_processes() -> Iterator[None]:
    """Block :data:`HELD_AT_START` in this thread within the block, so that the processes it
    starts inherit the block; a signal sent to this process meanwhile waits, or goes to
    another of its threads."""
    if not HELD_AT_START:
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, HELD_AT_START)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


class SpawnPool(ProcessPoolExecutor):
    """A ``ProcessPoolExecutor`` whose ``submit`` runs with the shutdown signals held back
    (:func:`semcom.sweep.signals.signals_deferred`).

    With the spawn start method ``submit`` starts a worker when none is idle: it executes a
    new interpreter, writes the worker's start-up data into a pipe and then records the
    worker. A signal raised between the first and the last step (the main process busy
    elsewhere for a moment is enough) left a worker that :func:`stop_pool` did not know:
    reading its start-up data, it met the pipe's end and printed an ``EOFError`` traceback
    after the run's one-line message. Held back, the signal is raised as ``submit`` returns,
    with every started worker recorded. The worker also starts with ``SIGINT`` blocked (module
    docstring).
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        with signals_deferred(), _held_in_new_processes():
            return super().submit(fn, *args, **kwargs)


def spawn_pool(
    max_workers: int,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> SpawnPool:
    """A :class:`SpawnPool` of ``max_workers`` spawned workers (see the module docstring).

    ``initializer(*initargs)`` runs in each worker after its Ctrl-C and watchdog setup.
    """
    return SpawnPool(
        max_workers=max_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(os.getpid(), initializer, initargs),
    )


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Drop the queued work and end the workers now (SIGTERM, then SIGKILL).

    The pool's manager thread cancels the queued futures, notices the dead workers and reaps
    them. Cancelling futures or reaping workers from this thread at the same time would race
    with it (on a future's state, on ``waitpid``), so this waits for that thread first.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.terminate()
    if manager is not None:
        manager.join(timeout=STOP_TIMEOUT_S)
        if manager.is_alive():  # a worker survived SIGTERM
            for process in processes:
                process.kill()
            manager.join(timeout=STOP_TIMEOUT_S)
    for process in processes:
        process.join(timeout=STOP_TIMEOUT_S)


__all__ = [
    "HELD_AT_START",
    "ORPHAN_EXIT_STATUS",
    "PR_SET_PDEATHSIG",
    "STOP_TIMEOUT_S",
    "WATCH_INTERVAL_S",
    "SpawnPool",
    "die_with_parent",
    "spawn_pool",
    "stop_pool",
    "watch_parent",
]
