"""Executors: run a :class:`PointTask` over sweep points in this process, a process pool or Ray.

Every executor calls ``task.setup()`` once per worker before its first point and hands each
:class:`~semcom.sweep.store.PointResult` to ``on_result`` **in the calling process**, one at a
time, in completion order. The engine draws no random numbers: a task derives its streams from
the point, so the results do not depend on the executor or the number of workers.

============  ========================================================================
executor      where the points run
============  ========================================================================
``local``     ``workers == 1``: in this process, in order. ``workers > 1``: a
              ``ProcessPoolExecutor`` with the *spawn* start method (no forked torch or
              CUDA state), ``min(workers, len(points))`` processes, each ending itself
              within a second of its parent's death (:mod:`semcom.sweep.pool`).
``ray``       ``min(workers, len(points))`` Ray actors, each holding the task; at most one
              point in flight per actor. A local Ray instance with ``num_cpus=workers``
              unless ``ray_address`` names a cluster (or Ray is already initialised).
============  ========================================================================

Failure and interruption: a point that raises stops the sweep (pending points are cancelled,
workers terminated) and a :class:`PointError` naming the point is raised from the original
exception; an exception of ``setup()`` is raised as it is (a ``ConfigError`` stays one).
``KeyboardInterrupt`` (Ctrl-C; also ``SIGTERM`` and ``SIGHUP`` inside
:func:`semcom.sweep.signals.shutdown_on_signals`) in the caller does the same cleanup and is
re-raised; only the results already passed to ``on_result`` exist.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any, Protocol, runtime_checkable

from channels.errors import check_int, fail
from semcom.sweep.grid import Point
from semcom.sweep.pool import spawn_pool, stop_pool
from semcom.sweep.signals import preserve_handlers
from semcom.sweep.store import PointResult

EXECUTORS = ("local", "ray")
KEY_WIDTH = 48
"""Characters of the last finished key shown in the progress bar."""


@runtime_checkable
class PointTask(Protocol):
    """The work of one sweep point; picklable (it is sent to worker processes and actors).

    ``setup()`` runs once per worker before any point (load models, set thread counts);
    ``task(point)`` computes the point and returns its :class:`PointResult`.
    """

    def setup(self) -> None: ...

    def __call__(self, point: Point) -> PointResult: ...


class PointError(RuntimeError):
    """A point's computation raised; ``point`` is the point, ``__cause__`` the exception."""

    def __init__(self, point: Point, error: BaseException | str) -> None:
        self.point = point
        self.key = point.key
        if isinstance(error, BaseException):
            error = f"{type(error).__name__}: {error}"
        super().__init__(f"point {point.index} ({point.key}) failed: {error}")
        self._reason = error

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.point, self._reason))


def short_key(key: str, width: int = KEY_WIDTH) -> str:
    """The values of a key (``a=1|b=x`` -> ``1|x``), cut to its last ``width`` characters."""
    text = "|".join(part.partition("=")[2] for part in key.split("|"))
    return text if len(text) <= width else "…" + text[-(width - 1) :]


def _progress_bar(total: int, enabled: bool, description: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=description, file=sys.stderr, disable=not enabled, leave=True)


class _Progress:
    """Counts finished points and shows the last key; a no-op when disabled."""

    def __init__(self, total: int, enabled: bool, description: str) -> None:
        self.bar = _progress_bar(total, enabled, description)

    def done(self, result: PointResult) -> None:
        self.bar.set_postfix_str(short_key(str(result.row.get("key", ""))), refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _cause(error: BaseException) -> BaseException:
    """The task's own exception inside a Ray wrapper (``RayTaskError.cause``), else ``error``."""
    ray_exceptions = sys.modules.get("ray.exceptions")
    if ray_exceptions is not None and isinstance(error, ray_exceptions.RayTaskError):
        cause = getattr(error, "cause", None)
        if isinstance(cause, BaseException):
            return cause
    return error


class _SetupFailure(Exception):
    """Carries a worker's ``setup()`` exception to the parent, which raises it unchanged."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


def _raise_failure(point: Point, error: BaseException) -> None:
    """Raise the task's exception for ``point``: a setup error as it is, else a PointError."""
    error = _cause(error)
    if isinstance(error, _SetupFailure):
        raise error.error from None
    raise PointError(point, error) from error


# ---------------------------------------------------------------------------------------------
# local, sequential


def _run_sequential(
    task: PointTask,
    points: Sequence[Point],
    on_result: Callable[[PointResult], None],
    bar: _Progress,
) -> None:
    task.setup()
    for point in points:
        try:
            result = task(point)
        except Exception as error:
            raise PointError(point, error) from error
        on_result(result)
        bar.done(result)


# ---------------------------------------------------------------------------------------------
# local, process pool (spawn)

_WORKER_TASK: PointTask | None = None
_WORKER_SETUP_ERROR: BaseException | None = None


def _init_worker(task: PointTask) -> None:
    """Pool initializer: keep the task and set it up (after :func:`spawn_pool`'s own setup:
    Ctrl-C ignored, parent watchdog).

    A failing ``setup()`` is kept and raised by the first point, so the parent sees the
    real error rather than a broken pool.
    """
    global _WORKER_TASK, _WORKER_SETUP_ERROR
    _WORKER_TASK = task
    try:
        task.setup()
    except Exception as error:
        _WORKER_SETUP_ERROR = error


def _run_in_worker(point: Point) -> PointResult:
    if _WORKER_SETUP_ERROR is not None:
        raise _SetupFailure(_WORKER_SETUP_ERROR)
    assert _WORKER_TASK is not None, "worker not initialised"
    return _WORKER_TASK(point)


def _run_pool(
    task: PointTask,
    points: Sequence[Point],
    workers: int,
    on_result: Callable[[PointResult], None],
    bar: _Progress,
) -> None:
    pool = spawn_pool(min(workers, len(points)), _init_worker, (task,))
    try:
        owner: dict[Future, Point] = {pool.submit(_run_in_worker, p): p for p in points}
        pending = set(owner)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: owner[f].index):
                try:
                    result = future.result()
                except Exception as error:
                    _raise_failure(owner[future], error)
                on_result(result)
                bar.done(result)
    except BaseException:
        stop_pool(pool)
        raise
    pool.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------
# Ray


class _RayWorker:
    """Body of a Ray actor: holds the task, set up once in the constructor."""

    def __init__(self, task: PointTask) -> None:
        self.task = task
        self.setup_error: Exception | None = None
        try:
            task.setup()
        except Exception as error:  # raised by run(), where the driver sees it plainly
            self.setup_error = error

    def run(self, point: Point) -> PointResult:
        if self.setup_error is not None:
            raise _SetupFailure(self.setup_error)
        return self.task(point)


def _import_ray() -> Any:
    # Local instances must not try to send usage statistics anywhere.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise fail(
            "execution.executor", "ray", "local (install the 'distributed' extra for ray)"
        ) from None
    return ray


def _run_ray(
    task: PointTask,
    points: Sequence[Point],
    workers: int,
    ray_address: str | None,
    on_result: Callable[[PointResult], None],
    bar: _Progress,
    gpus_per_worker: float = 0.0,
) -> None:
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        options: dict[str, Any] = {
            "log_to_driver": False,
            "logging_level": logging.ERROR,
            "configure_logging": True,
        }
        with preserve_handlers():  # ray.init would make SIGTERM exit at once, skipping cleanup
            if ray_address:
                ray.init(address=ray_address, **options)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, **options)
        started = True
    actors: list[Any] = []
    try:
        actor_class = ray.remote(num_cpus=1, num_gpus=gpus_per_worker)(_RayWorker)
        task_ref = ray.put(task)
        actors = [actor_class.remote(task_ref) for _ in range(min(workers, len(points)))]
        idle = list(actors)
        queue = list(reversed(points))  # pop() from the end: points in grid order
        in_flight: dict[Any, tuple[Any, Point]] = {}
        while queue or in_flight:
            while idle and queue:
                actor, point = idle.pop(), queue.pop()
                in_flight[actor.run.remote(point)] = (actor, point)
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            actor, point = in_flight.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as error:
                _raise_failure(point, error)
            idle.append(actor)
            on_result(result)
            bar.done(result)
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # already dead: nothing to end
                pass
        if started:
            ray.shutdown()


# ---------------------------------------------------------------------------------------------
# entry point


def run_points(
    task: PointTask,
    points: Sequence[Point],
    *,
    executor: str = "local",
    workers: int = 1,
    ray_address: str | None = None,
    on_result: Callable[[PointResult], None],
    progress: bool = True,
    description: str = "points",
    gpus_per_worker: float = 0.0,
) -> None:
    """Compute ``task(point)`` for every point and pass each result to ``on_result``.

    Parameters
    ----------
    task : PointTask
        Picklable; ``setup()`` is called once per worker before its first point.
    points : sequence of Point
        The points to compute (typically those not yet in the result store).
    executor : {"local", "ray"}
        See the module docstring.
    workers : int >= 1
        Worker processes or Ray actors (never more than ``len(points)``).
    ray_address : str, optional
        Address of an existing Ray cluster (``ray`` only); None starts a local instance.
    on_result : callable
        Called in this process with each :class:`PointResult`, one at a time.
    progress : bool
        Show a tqdm bar on stderr.
    description : str
        Label of the progress bar.
    gpus_per_worker : float
        GPUs each Ray actor reserves (``ray`` only; e.g. ``1 / workers`` to share one GPU).
        Ray hides GPUs from actors that reserve none. Local workers see every GPU.

    Raises
    ------
    ConfigError
        Unknown executor, ``workers`` < 1, or ``ray`` without Ray installed.
    PointError
        A point raised; the rest are cancelled and the workers ended.
    KeyboardInterrupt
        Re-raised after cancelling pending points and ending the workers.
    """
    if executor not in EXECUTORS:
        raise fail("execution.executor", executor, ", ".join(EXECUTORS))
    workers = check_int("execution.workers", workers, 1)
    if executor == "ray":
        _import_ray()  # a missing Ray is a configuration error even with no points
    if not points:
        return
    bar = _Progress(len(points), progress, description)
    try:
        if executor == "ray":
            _run_ray(task, points, workers, ray_address, on_result, bar, gpus_per_worker)
        elif workers == 1:
            _run_sequential(task, points, on_result, bar)
        else:
            _run_pool(task, points, workers, on_result, bar)
    finally:
        bar.close()
