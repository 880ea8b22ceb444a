"""The sweep engine: grid of points, crash-safe resumable result store, executors, provenance.

Generic on purpose: it imports neither torch nor the models. A runner builds the points with
:func:`expand`, opens a :class:`ResultStore`, runs the points not yet
:meth:`~ResultStore.completed` through :func:`run_points` with ``on_result=store.add``, then
calls :meth:`ResultStore.finalize` and writes :func:`collect_provenance` with
:func:`write_json_atomic`. :class:`OutputLock` keeps a second run out of a directory in use;
:func:`shutdown_on_signals` turns SIGTERM into a ``KeyboardInterrupt`` (:class:`Interrupted`)
that every step cleans up after.
"""

from semcom.sweep.executors import EXECUTORS, PointError, PointTask, run_points, short_key
from semcom.sweep.grid import Point, expand, format_value, n_points
from semcom.sweep.lock import OutputLock, describe_stale
from semcom.sweep.pool import spawn_pool, stop_pool
from semcom.sweep.provenance import collect_provenance, git_state, iso_utc, library_versions
from semcom.sweep.signals import Interrupted, shutdown_on_signals
from semcom.sweep.store import (
    PointResult,
    ResultStore,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

__all__ = [
    "EXECUTORS",
    "Interrupted",
    "OutputLock",
    "Point",
    "PointError",
    "PointResult",
    "PointTask",
    "ResultStore",
    "collect_provenance",
    "describe_stale",
    "expand",
    "format_value",
    "git_state",
    "iso_utc",
    "library_versions",
    "n_points",
    "run_points",
    "short_key",
    "shutdown_on_signals",
    "spawn_pool",
    "stop_pool",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]
