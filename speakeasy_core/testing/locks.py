"""Windows file-locking rules on any OS, for testing code that uses temp files.

:class:`WindowsLockSimulator` is a :class:`~speakeasy_core.tempfiles.FileOps` over the
real filesystem (files really exist, so soundfile or NeMo can read them) that refuses
operations the way Windows does:

- a handle opened without share-delete (what Python's ``open`` does on Windows, and
  what every handle the simulator itself opens is) blocks deleting or renaming the
  file with ``PermissionError`` whose ``winerror`` is 32;
- replacing a file (``os.replace`` onto it) that any handle is open on, share-delete
  or not, is "access denied": ``winerror`` 5, as Windows' ``MoveFileExW`` reports it;
- a file deleted while a share-delete handle is open behaves as ``delete_semantics``
  says: ``"pending"`` (Windows before 10 1903, FAT, most network shares): the file is
  *delete-pending*, its name stays taken (create, open, stat, delete, replace onto it:
  ``winerror`` 5; its directory is not empty: ``winerror`` 145) until the handle
  closes; ``"posix"`` (NTFS on Windows 10 1903 and later): the name goes at once;
- removing a directory that is not empty fails with ``winerror`` 145, renaming one
  with a file open inside with ``winerror`` 5;
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

:class:`ExternalHandle` is the real thing the simulator models: a second Python process
holding a file open (plain ``open``, or on Windows ``CreateFileW`` with or without
``FILE_SHARE_DELETE``) until released, for tests on real Windows.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Literal, Self, get_args

from .._fsops import EXCLUSIVE_FLAGS
from .._process import ProcessIdentity
from .._retry import WINERROR_ACCESS_DENIED, WINERROR_LOCK_VIOLATION, WINERROR_SHARING_VIOLATION
from ..errors import InvalidOptionError

__all__ = [
    "DeleteSemantics",
    "ExternalHandle",
    "HoldMode",
    "SimulatedClock",
    "SimulatedHandle",
    "SimulatedProcesses",
    "WindowsLockSimulator",
    "windows_error",
]

#: How Windows deletes a file that a share-delete handle still has open.
DeleteSemantics = Literal["pending", "posix"]

_WINERROR_DIR_NOT_EMPTY = 145

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
    ``delete_semantics`` picks the Windows whose deletes it models (see the module).
    ``fsync`` only flushes (durability is not simulated) but is recorded, see
    :meth:`was_synced`. :meth:`attempts` counts calls per operation and path.
    Not thread-safe.
    """

    def __init__(
        self, clock: SimulatedClock | None = None, *, delete_semantics: DeleteSemantics = "pending"
    ) -> None:
        if delete_semantics not in get_args(DeleteSemantics):
            raise InvalidOptionError(
                "delete_semantics", delete_semantics, f"must be one of {get_args(DeleteSemantics)}"
            )
        self.clock = SimulatedClock() if clock is None else clock
        self.delete_semantics: DeleteSemantics = delete_semantics
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

        Without ``share_delete`` the handle blocks delete and rename (winerror 32); with
        it, a delete succeeds (see ``delete_semantics``). Either blocks a replace onto
        the file (winerror 5).
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
        if handle not in handles:
            return  # its file was deleted with POSIX semantics: no name left to free
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

    def _refuse_if_held(self, key: Path, *, replacing: bool = False) -> None:
        """Raise what Windows raises for changing the name ``key`` right now.

        ``replacing``: ``key`` is the existing target of a rename.
        """
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
        handles = self._handles.get(key, ())
        if replacing and handles:
            raise windows_error(WINERROR_ACCESS_DENIED, key)
        if any(not handle.share_delete for handle in handles):
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
        if any(source in held.parents for held in self.held_paths()):
            raise windows_error(WINERROR_ACCESS_DENIED, source)  # a directory with open files
        self._refuse_if_held(target, replacing=True)
        os.replace(source, target)
        moved = self._handles.pop(source, [])  # share-delete handles follow their file
        for handle in moved:
            handle.path = target
        if moved:
            self._handles[target] = moved

    def unlink(self, path: Path) -> None:
        key = self._enter("unlink", path)
        self._refuse_if_pending(key)
        if stat.S_ISDIR(os.lstat(key).st_mode):
            raise windows_error(WINERROR_ACCESS_DENIED, key)  # DeleteFile on a directory
        self._refuse_if_held(key)
        if self._handles.get(key) and self.delete_semantics == "pending":
            self._pending.add(key)  # only share-delete handles are open: name stays
        else:
            self._handles.pop(key, None)  # POSIX semantics: open handles lose the name
            os.unlink(key)

    def mkdir(self, path: Path, mode: int = 0o700) -> None:
        os.mkdir(self._enter("mkdir", path), mode)

    def makedirs(self, path: Path, mode: int = 0o700) -> None:
        os.makedirs(self._enter("makedirs", path), mode, exist_ok=True)

    def rmdir(self, path: Path) -> None:
        key = self._enter("rmdir", path)
        self._refuse_if_held(key)
        try:
            os.rmdir(key)
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY or getattr(exc, "winerror", None):
                raise
            error = OSError(errno.ENOTEMPTY, "The directory is not empty", os.fspath(key))
            setattr(error, "winerror", _WINERROR_DIR_NOT_EMPTY)  # noqa: B010 - as on Windows
            raise error from None

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


#: How :class:`ExternalHandle` opens its file: Python's ``open`` (no share-delete on
#: Windows), or ``CreateFileW`` sharing read and write, without or with share-delete.
HoldMode = Literal["open", "no_share_delete", "share_delete"]

_HOLDER = r"""
import sys
mode, path = sys.argv[1], sys.argv[2]
if mode == "open":
    held = open(path, "rb")
else:
    import ctypes
    from ctypes import wintypes
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.CreateFileW.restype = wintypes.HANDLE
    kernel32.CreateFileW.argtypes = (
        wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, wintypes.LPVOID,
        wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE,
    )
    share = 0x1 | 0x2 | (0x4 if mode == "share_delete" else 0)  # READ|WRITE|DELETE
    # GENERIC_READ, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS (directories too)
    held = kernel32.CreateFileW(path, 0x80000000, share, None, 3, 0x02000000, None)
    if held in (None, ctypes.c_void_p(-1).value):
        raise ctypes.WinError(ctypes.get_last_error())
print("ready", flush=True)
sys.stdin.read()  # until the parent closes the pipe
"""


class ExternalHandle:
    """A second, real Python process holding ``path`` open until :meth:`release`.

    The constructor returns once the handle is open (the child says so on a pipe).
    ``mode`` is a :data:`HoldMode`; the ``CreateFileW`` modes need Windows. Use it as a
    context manager, or :meth:`release_after` to let go from a timer (a short hold).
    """

    def __init__(self, path: str | os.PathLike[str], mode: HoldMode = "open") -> None:
        if mode not in get_args(HoldMode) or (mode != "open" and sys.platform != "win32"):
            raise InvalidOptionError("mode", mode, "must be 'open' off Windows")
        self.path = Path(path)
        self.mode: HoldMode = mode
        # Every stream a pipe: Windows' Python cannot start with a regular file there.
        self._process = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, mode, os.fspath(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        if self._process.stdout.readline().strip() != "ready":
            _, stderr = self._process.communicate()
            raise OSError(f"could not hold {path} open ({mode}): {stderr.strip()}")
        self._lock = threading.Lock()

    @property
    def pid(self) -> int:
        """The holding process's pid."""
        return self._process.pid

    @property
    def released(self) -> bool:
        """Whether the holding process has let go (and exited)."""
        return self._process.poll() is not None

    def release(self) -> None:
        """Close the handle: the holding process exits (waits for it)."""
        with self._lock:
            if self._process.poll() is None:
                self._process.communicate(timeout=60)

    def release_after(self, seconds: float) -> threading.Timer:
        """Release from a timer thread after ``seconds``; returns the started timer."""
        timer = threading.Timer(seconds, self.release)
        timer.daemon = True
        timer.start()
        return timer

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()
