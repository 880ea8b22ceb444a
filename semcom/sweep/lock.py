"""One run per output folder: an exclusive lock on ``DIR/run.lock`` recording its holder.

``semcom run`` holds the lock of its output folder from before it opens the result store until
it ends, so a second run or a ``--resume`` on a folder in use is refused at once (a
:class:`~channels.errors.ConfigError`, exit status 2), with one line naming the holder::

    output.dir: 'results/q' is in use by another run (pid 4242 on host node7, since
    2025-01-31T12:00:00+00:00); allowed: wait for it to end, or another --out

The lock is an ``flock(2)`` on the open file, so the operating system releases it when the
holder's process ends in any way (exit, a signal, ``SIGKILL``, the OOM killer): a lock left
by a dead process is simply free, and the next run takes it over and overwrites the record.
While it is held the file holds one JSON line ``{"pid", "host", "started", "command"}``; the
holder empties it on release. The file itself stays (deleting a lock file another process may
have just opened would let two runs in).

Where the filesystem has no ``flock`` (``ENOLCK``, ``EOPNOTSUPP``: e.g. NFS without a lock
daemon), the record alone decides, as a pid file: it is taken over when it is empty or names a
process of this host that is no longer alive; a live process, or any process of another host
(whose liveness cannot be checked), keeps the folder refused. That fallback is best effort: two
runs starting in the same millisecond could both pass it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from channels.errors import ConfigError, fail
from semcom.sweep.provenance import iso_utc

LOCK_FILE = "run.lock"
RECORD_WAIT_S = 1.0
"""Seconds to wait for a new holder to write its record before naming it 'unknown'."""
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (``kill(pid, 0)``; a zombie counts).

    Examples:
        >>> pid_alive(os.getpid())
        True
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def _describe(record: dict[str, Any] | None) -> str:
    if not record:
        return "pid unknown"
    text = f"pid {record.get('pid', '?')} on host {record.get('host', '?')}"
    if record.get("started"):
        text += f", since {record['started']}"
    return text


class OutputLock:
    """Exclusive lock of an output folder; a context manager (see the module docstring).

    Args:
        directory: The output folder; created with its parents on :meth:`acquire`.
        command: What holds it, recorded for the refusal message (e.g. ``semcom run``).

    Attributes:
        path: ``directory / "run.lock"``.
        stale: After :meth:`acquire`, the record left by a holder that ended without releasing
            the lock (killed), else None.

    Raises:
        ConfigError: (from :meth:`acquire`) the folder is in use, or cannot be created.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d, OutputLock(d) as lock:
        ...     lock.holder()["pid"] == os.getpid()
        True
    """

    def __init__(self, directory: Path | str, command: str = "semcom run") -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self.command = command
        self.stale: dict[str, Any] | None = None
        self._fd: int | None = None

    # -- record -----------------------------------------------------------------------------

    def _record(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": iso_utc(time.time()),
            "command": self.command,
        }

    @staticmethod
    def _read(fd: int) -> dict[str, Any] | None:
        """The JSON record in the file (None if empty or unreadable)."""
        try:
            data = os.pread(fd, 4096, 0)
            record = json.loads(data.decode("utf-8")) if data.strip() else None
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def holder(self) -> dict[str, Any] | None:
        """The record of the current holder (None when the folder is free)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            return self._read(fd)
        finally:
            os.close(fd)

    def _write(self, fd: int) -> None:
        data = (json.dumps(self._record()) + "\n").encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    # -- acquire / release --------------------------------------------------------------------

    def _refuse(self, record: dict[str, Any] | None, hint: str = "") -> ConfigError:
        return ConfigError(
            f"output.dir: '{self.directory}' is in use by another run ({_describe(record)}); "
            f"allowed: wait for it to end{hint}, or another --out"
        )

    def _busy_record(self, fd: int) -> dict[str, Any] | None:
        """The holder's record; a holder that just locked gets a moment to write it."""
        deadline = time.monotonic() + RECORD_WAIT_S
        record = self._read(fd)
        while record is None and time.monotonic() < deadline:
            time.sleep(0.05)
            record = self._read(fd)
        return record

    def _acquire_by_record(self, fd: int) -> None:
        """The pid-file fallback where ``flock`` is unavailable (module docstring)."""
        record = self._read(fd)
        if record:
            same_host = record.get("host") == socket.gethostname()
            pid = record.get("pid")
            if not same_host:
                raise self._refuse(record, f" (or delete {self.path} if it has ended)")
            if isinstance(pid, int) and pid != os.getpid() and pid_alive(pid):
                raise self._refuse(record)
            self.stale = record
        self._write(fd)

    def acquire(self) -> OutputLock:
        """Take the lock (never waits); returns ``self``.

        Raises:
            ConfigError: another process holds it (the message names its pid and host), or
                the folder cannot be created or the lock file opened.
        """
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this object")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except (OSError, ValueError) as error:  # ValueError: a NUL byte, an unencodable name
            reason = getattr(error, "strerror", None) or type(error).__name__
            allowed = f"a writable directory ({reason})"
            raise fail("output.dir", str(self.directory), allowed) from None
        try:
            try:
                import fcntl
            except ImportError:  # no flock on this platform: the record decides
                self._acquire_by_record(fd)
            else:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as error:
                    if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise self._refuse(self._busy_record(fd)) from None
                    if error.errno not in _NO_FLOCK:
                        raise
                    self._acquire_by_record(fd)
                else:
                    self.stale = self._read(fd)  # a record nobody locks: its holder died
                    self._write(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def check_free(self) -> None:
        """Refuse now if another process holds the lock; takes nothing and creates nothing.

        A cheap early check (``semcom run --out DIR`` makes it before loading the scenario); only
        :meth:`acquire` keeps other runs out. It looks at the record first and probes the lock
        (a shared ``flock``, dropped at once) only when a record is there, so a run starting at
        the same moment in a free folder is never disturbed by the probe. Without a lock file,
        or without ``flock``, it checks nothing.

        Raises:
            ConfigError: the folder is in use (the message names the holder's pid and host).
        """
        try:
            import fcntl

            fd = os.open(self.path, os.O_RDONLY)
        except (ImportError, OSError, ValueError):  # no flock, no lock file, or an odd path
            return
        try:
            if self._read(fd) is None:
                return  # released or never taken
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise self._refuse(self._busy_record(fd)) from None
                return
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def release(self) -> None:
        """Empty the record and drop the lock (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        finally:
            os.close(fd)  # closing the last descriptor drops the flock

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.release()


def describe_stale(lock: OutputLock) -> str | None:
    """One line about a lock taken over from a killed holder, or None when there was none."""
    if not lock.stale:
        return None
    return f"{lock.path}: the run that held it ({_describe(lock.stale)}) ended without releasing it"


__all__ = ["LOCK_FILE", "OutputLock", "describe_stale", "pid_alive"]
