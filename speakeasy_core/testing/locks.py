"""Windows file-locking rules on any OS, for testing code that uses temp files.

:class:`WindowsLockSimulator` is a :class:`~speakeasy_core.tempfiles.FileOps` over the
real filesystem (files really exist, so soundfile or NeMo can read them) that refuses
operations the way Windows does:

- a handle opened without share-delete (what Python's ``open`` does on Windows, and
  what every handle the simulator itself opens is) blocks deleting, renaming or
  replacing the file with ``PermissionError`` whose ``winerror`` is 32;
- a file deleted while a share-delete handle is open becomes *delete-pending*: its
  name stays taken (create, open, stat, delete: ``winerror`` 5) until the handle closes;
- :meth:`~WindowsLockSimulator.lock` adds a lock that clears after some attempts or
  some seconds of :class:`SimulatedClock` time (an antivirus scan), or never;
- :meth:`~WindowsLockSimulator.fail` injects a permanent error.

Inject :meth:`SimulatedClock.sleep` as the retry policy's sleep and no test ever
really waits::

    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock)
    policy = RetryPolicy(max_wait=1.0, sleep=clock.sleep)

    path = tmp_path / "job.json"
    path.write_bytes(b"{}")
    with sim.open_handle(path):  # another process holds it
        assert safe_delete(path, policy=policy, ops=sim).outcome is DeleteOutcome.LOCKED
    assert clock.now <= 1.0

    sim.lock(path, attempts=2)  # an antivirus scan: refuses twice, then clears
    result = safe_delete(path, policy=policy, ops=sim)
    assert result.outcome is DeleteOutcome.DELETED and result.attempts == 3

:class:`SimulatedProcesses` stands in for processes that own workspaces, so a test can
"crash" one and check what :func:`~speakeasy_core.tempfiles.sweep_stale` removes.
"""

from __future__ import annotations

import errno
import io
import os
import stat
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self

from .._fsops import EXCLUSIVE_FLAGS
from .._process import ProcessIdentity
from .._retry import WINERROR_ACCESS_DENIED, WINERROR_LOCK_VIOLATION, WINERROR_SHARING_VIOLATION
from ..errors import InvalidOptionError

__all__ = [
    "SimulatedClock",
    "SimulatedHandle",
    "SimulatedProcesses",
    "WindowsLockSimulator",
    "windows_error",
]

_MESSAGES = {
    WINERROR_ACCESS_DENIED: "Access is denied",
    WINERROR_SHARING_VIOLATION: (
        "The process cannot access the file because it is being used by another process"
    ),
    WINERROR_LOCK_VIOLATION: (
        "The process cannot access the file because another process has locked a portion"
        " of the file"
    ),
}


def _check_winerror(winerror: int) -> None:
    if winerror not in _MESSAGES:
        raise InvalidOptionError("winerror", winerror, f"must be one of {sorted(_MESSAGES)}")


def windows_error(winerror: int, path: str | os.PathLike[str]) -> PermissionError:
    """The ``PermissionError`` Windows raises for ``winerror`` (5, 32 or 33), on any OS.

    ``errno`` is ``EACCES`` as on Windows, and ``.winerror`` is set even on POSIX.
    """
    _check_winerror(winerror)
    error = PermissionError(errno.EACCES, _MESSAGES[winerror], os.fspath(path))
    setattr(error, "winerror", winerror)  # noqa: B010 - not a declared attribute off Windows
    return error


@dataclass
class SimulatedClock:
    """A clock that only moves when something sleeps on it; ``sleeps`` records each pause."""

    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        """Advance :attr:`now` by ``seconds`` at once (use as ``RetryPolicy(sleep=...)``)."""
        if seconds < 0:
            raise ValueError(f"sleep length must be non-negative, not {seconds}")
        self.sleeps.append(seconds)
        self.now += seconds


@dataclass(eq=False)
class SimulatedHandle:
    """An open handle on a file, held by another process (or by the simulator's own I/O)."""

    path: Path
    share_delete: bool
    _on_close: Callable[[SimulatedHandle], None] = field(repr=False)
    closed: bool = False

    def close(self) -> None:
        """Close it: its lock goes away, and a delete-pending file really disappears."""
        if not self.closed:
            self.closed = True
            self._on_close(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class _TrackedFileIO(io.FileIO):
    """A real file whose closing releases the simulator's handle record."""

    def __init__(self, fd: int, mode: str, handle: SimulatedHandle) -> None:
        super().__init__(fd, mode)
        self.name = str(handle.path)
        self._handle = handle

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
        finally:
            self._handle.close()


@dataclass
class _Lock:
    winerror: int
    attempts: int | None  # refusals left; None: not limited by attempts
    until: float | None  # clock time at which it clears; None: not limited by time


class WindowsLockSimulator:
    """A :class:`~speakeasy_core.tempfiles.FileOps` with Windows' locking rules.

    Every operation is delegated to :mod:`os` once the simulated locks allow it.
    ``fsync`` only flushes (durability is not simulated) but is recorded, see
    :meth:`was_synced`. :meth:`attempts` counts calls per operation and path.
    Not thread-safe.
    """

    def __init__(self, clock: SimulatedClock | None = None) -> None:
        self.clock = SimulatedClock() if clock is None else clock
        self._handles: dict[Path, list[SimulatedHandle]] = {}
        self._locks: dict[Path, _Lock] = {}
        self._failures: dict[Path, BaseException] = {}
        self._pending: set[Path] = set()
        self._synced: set[Path] = set()
        self._calls: Counter[tuple[str, Path]] = Counter()

    # ------------------------------------------------------------------ control

    @staticmethod
    def _key(path: str | os.PathLike[str]) -> Path:
        return Path(os.path.normcase(os.path.abspath(path)))

    def open_handle(
        self, path: str | os.PathLike[str], *, share_delete: bool = False
    ) -> SimulatedHandle:
        """Simulate another process opening ``path`` (it must exist) until ``close()``.

        Without ``share_delete`` the handle blocks delete/rename/replace (winerror 32);
        with it, a delete succeeds but leaves the name delete-pending until it closes.
        """
        key = self._key(path)
        self._refuse_if_pending(key)
        os.lstat(key)
        return self._add_handle(key, share_delete=share_delete)

    def lock(
        self,
        path: str | os.PathLike[str],
        *,
        attempts: int | None = None,
        seconds: float | None = None,
        winerror: int = WINERROR_SHARING_VIOLATION,
    ) -> None:
        """Make delete/rename/replace/rmdir of ``path`` fail with ``winerror``.

        The lock clears after refusing ``attempts`` operations, or once the clock has
        advanced ``seconds``; with neither it is persistent (until :meth:`unlock`).
        A path has one lock: a new one replaces the previous one.
        """
        _check_winerror(winerror)
        if attempts is not None and seconds is not None:
            raise InvalidOptionError("seconds", seconds, "give attempts or seconds, not both")
        if attempts is not None and attempts < 1:
            raise InvalidOptionError("attempts", attempts, "must be >= 1")
        if seconds is not None and not seconds >= 0:
            raise InvalidOptionError("seconds", seconds, "must be >= 0")
        until = None if seconds is None else self.clock.now + seconds
        self._locks[self._key(path)] = _Lock(winerror, attempts, until)

    def fail(self, path: str | os.PathLike[str], error: BaseException) -> None:
        """Make every delete/rename/replace/rmdir/create of ``path`` raise ``error``.

        For a real permanent error use e.g. ``PermissionError(errno.EACCES, "denied",
        str(path))`` (no ``winerror``: not retried).
        """
        self._failures[self._key(path)] = error

    def unlock(self, path: str | os.PathLike[str]) -> None:
        """Remove the lock and the injected failure on ``path`` (open handles stay)."""
        key = self._key(path)
        self._locks.pop(key, None)
        self._failures.pop(key, None)

    def release_all(self) -> None:
        """Close every handle and remove every lock and failure."""
        for handles in list(self._handles.values()):
            for handle in list(handles):
                handle.close()
        self._locks.clear()
        self._failures.clear()

    # ---------------------------------------------------------------- inspection

    def attempts(self, op: str, path: str | os.PathLike[str]) -> int:
        """How often ``op`` (a :class:`FileOps` method name) was called on ``path``."""
        return self._calls[op, self._key(path)]

    def held_paths(self) -> set[Path]:
        """The files that currently have an open handle (ours or simulated)."""
        return {key for key, handles in self._handles.items() if handles}

    def is_pending(self, path: str | os.PathLike[str]) -> bool:
        """Whether ``path`` is delete-pending (deleted, but a share-delete handle is open)."""
        return self._key(path) in self._pending

    def was_synced(self, path: str | os.PathLike[str]) -> bool:
        """Whether a handle the simulator opened on ``path`` was fsynced."""
        return self._key(path) in self._synced

    # ----------------------------------------------------------------- internals

    def _add_handle(self, key: Path, *, share_delete: bool) -> SimulatedHandle:
        handle = SimulatedHandle(key, share_delete, self._release)
        self._handles.setdefault(key, []).append(handle)
        return handle

    def _release(self, handle: SimulatedHandle) -> None:
        handles = self._handles.get(handle.path, [])
        handles.remove(handle)
        if not handles and handle.path in self._pending:
            self._pending.discard(handle.path)
            os.unlink(handle.path)

    def _enter(self, op: str, path: str | os.PathLike[str]) -> Path:
        key = self._key(path)
        self._calls[op, key] += 1
        return key

    def _refuse_if_pending(self, key: Path) -> None:
        if key in self._pending:
            raise windows_error(WINERROR_ACCESS_DENIED, key)

    def _refuse_if_held(self, key: Path) -> None:
        """Raise what Windows raises for changing the name ``key`` right now."""
        self._refuse_if_pending(key)
        lock = self._locks.get(key)
        if lock is not None:
            if lock.until is not None and self.clock.now >= lock.until:
                del self._locks[key]
            else:
                if lock.attempts is not None:
                    lock.attempts -= 1
                    if lock.attempts == 0:
                        del self._locks[key]
                raise windows_error(lock.winerror, key)
        if any(not handle.share_delete for handle in self._handles.get(key, ())):
            raise windows_error(WINERROR_SHARING_VIOLATION, key)
        if key in self._failures:
            raise self._failures[key]

    def _open(self, key: Path, flags: int, mode: int, fmode: str) -> _TrackedFileIO:
        fd = os.open(key, flags, mode)
        try:
            return _TrackedFileIO(fd, fmode, self._add_handle(key, share_delete=False))
        except BaseException:
            os.close(fd)
            raise

    # ------------------------------------------------------------------ FileOps

    def open_exclusive(self, path: Path, mode: int = 0o600) -> BinaryIO:
        key = self._enter("open_exclusive", path)
        self._refuse_if_pending(key)
        if key in self._failures:
            raise self._failures[key]
        return io.BufferedWriter(self._open(key, EXCLUSIVE_FLAGS, mode, "w"))

    def open_read(self, path: Path) -> BinaryIO:
        key = self._enter("open_read", path)
        self._refuse_if_pending(key)
        flags = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
        return io.BufferedReader(self._open(key, flags, 0, "r"))

    def fsync(self, handle: BinaryIO) -> None:
        handle.flush()
        self._synced.add(self._key(handle.name))

    def replace(self, src: Path, dst: Path) -> None:
        source = self._enter("replace", src)
        target = self._enter("replace", dst)
        self._refuse_if_held(source)
        self._refuse_if_held(target)
        os.replace(source, target)

    def unlink(self, path: Path) -> None:
        key = self._enter("unlink", path)
        self._refuse_if_pending(key)
        if stat.S_ISDIR(os.lstat(key).st_mode):
            raise windows_error(WINERROR_ACCESS_DENIED, key)  # DeleteFile on a directory
        self._refuse_if_held(key)
        if self._handles.get(key):  # only share-delete handles are left open
            self._pending.add(key)
        else:
            os.unlink(key)

    def mkdir(self, path: Path, mode: int = 0o700) -> None:
        os.mkdir(self._enter("mkdir", path), mode)

    def makedirs(self, path: Path, mode: int = 0o700) -> None:
        os.makedirs(self._enter("makedirs", path), mode, exist_ok=True)

    def rmdir(self, path: Path) -> None:
        key = self._enter("rmdir", path)
        self._refuse_if_held(key)
        os.rmdir(key)

    def scandir(self, path: Path) -> list[os.DirEntry[str]]:
        with os.scandir(self._enter("scandir", path)) as entries:
            return list(entries)

    def lstat(self, path: Path) -> os.stat_result:
        key = self._enter("lstat", path)
        self._refuse_if_pending(key)
        return os.lstat(key)


class SimulatedProcesses:
    """Fake processes to own workspaces: ``TempWorkspace(owner=procs.spawn())``.

    Pass :meth:`is_alive` to ``sweep_stale(is_alive=...)``; :meth:`kill` one to
    simulate a crash. The host name is not this machine's, so the real liveness
    check (the default of ``sweep_stale``) always treats them as alive.
    """

    def __init__(self, host: str = "simulated-host") -> None:
        self.host = host
        self._alive: set[ProcessIdentity] = set()
        self._next_pid = 1

    def spawn(self) -> ProcessIdentity:
        """A new running process."""
        process = ProcessIdentity(self._next_pid, self.host, started=self._next_pid)
        self._next_pid += 1
        self._alive.add(process)
        return process

    def kill(self, process: ProcessIdentity) -> None:
        """End ``process`` (a crash: nothing is cleaned up)."""
        self._alive.discard(process)

    def is_alive(self, process: ProcessIdentity) -> bool:
        """Whether ``process`` was spawned here and not killed."""
        return process in self._alive
