"""One job per output folder: an OS-level lock (``filelock``: flock on POSIX, msvcrt on
Windows) held while the job runs, released by the OS when the process dies."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..errors import JobLockedError, OutputError

__all__ = ["LOCK_NAME", "job_lock", "prepare_out_dir"]

LOCK_NAME = ".speakeasy-job.lock"

_held: dict[Path, tuple[FileLock, int]] = {}
_guard = threading.Lock()


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir`` if needed and check that it takes a (small) file.

    Raises :class:`~speakeasy_core.errors.OutputError` naming the folder and the cause
    (a regular file in the way, a read-only mount, no permission, a full disk).
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(errno.ENOTDIR, "the output folder is not a directory", os.fspath(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".speakeasy-probe-{os.getpid()}"
        try:
            probe.write_bytes(b"speakeasy_core checks that this disk takes data\n")
        finally:
            probe.unlink(missing_ok=True)
    except OSError as exc:
        raise OutputError(
            exc.errno, f"cannot write in the output folder: {exc.strerror or exc}", os.fspath(out)
        ) from exc
    return out


@contextmanager
def job_lock(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold ``out_dir``'s job lock for the block; yields the lock file.

    Reentrant within a process (the CLI takes it before loading the model, the job
    again). Another process holding it: :class:`~speakeasy_core.errors.JobLockedError`
    at once, nothing touched.
    """
    path = (Path(out_dir) / LOCK_NAME).absolute()
    with _guard:
        lock, count = _held.get(path, (None, 0))
        if lock is None:
            lock = FileLock(path, timeout=0, thread_local=False)
            try:
                lock.acquire()
            except Timeout:
                raise JobLockedError(
                    errno.EBUSY,
                    "another speakeasy-core job is running on this output folder "
                    f"(it holds {LOCK_NAME}); wait for it or use another --out-dir",
                    os.fspath(path.parent),
                ) from None
            except OSError as exc:
                raise OutputError(
                    exc.errno, f"cannot lock the output folder: {exc.strerror}", os.fspath(path)
                ) from exc
        _held[path] = (lock, count + 1)
    try:
        yield path
    finally:
        with _guard:
            lock, count = _held.pop(path)
            if count > 1:
                _held[path] = (lock, count - 1)
            else:
                lock.release()
