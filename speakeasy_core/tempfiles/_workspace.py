"""Per-job workspaces, and sweeping those whose process died."""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

from .._fsops import FileOps
from .._process import ProcessIdentity, current_process, process_alive
from .._retry import DEFAULT_POLICY, RetryPolicy
from ..errors import InvalidOptionError, TempFileError
from ._cleanup import _DEFERRED, OWNER_FILE, CleanupReport, _is_plain_dir, _remove_workspace
from ._delete import _OS_OPS, DeleteOutcome, DeleteResult, _check_name_part, _failure, safe_delete
from ._root import _resolve_root, trusted_root
from ._write import _UNIQUE_NAME, _new_file, atomic_write_bytes, safe_write_manifest

__all__ = ["OWNER_FILE", "TempWorkspace", "sweep_stale"]

logger = logging.getLogger(__name__)

_MAX_OWNER_BYTES = 4096


def _read_owner(path: Path, ops: FileOps) -> ProcessIdentity | None:
    """The owner recorded in a workspace, or ``None`` if there is no readable record."""
    owner = path / OWNER_FILE
    try:
        if not stat.S_ISREG(ops.lstat(owner).st_mode):
            return None
        with ops.open_read(owner) as handle:
            record = json.loads(handle.read(_MAX_OWNER_BYTES))
        started = record["started"]
        return ProcessIdentity(
            int(record["pid"]), str(record["host"]), None if started is None else int(started)
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class TempWorkspace:
    """A private per-job temp directory, removed with everything in it on exit.

    The directory (mode 0700) is created at construction under ``root``, checked as
    :func:`trusted_root` says (default :func:`default_root`), and records ``owner``
    (default: this process) so that :func:`sweep_stale` can remove it if the process
    dies. Files made through the
    workspace are tracked; on exit from the ``with`` block (normal, exception or
    Ctrl-C, which still propagates) everything is deleted with retries. Files still
    locked after the retry budget are reported in the :class:`CleanupReport` and
    retried at interpreter exit.

    Use it as a context manager or call :meth:`cleanup`; a workspace that is never
    cleaned up is only removed by :func:`sweep_stale` after its process ends.
    """

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        *,
        prefix: str = "speakeasy-",
        policy: RetryPolicy = DEFAULT_POLICY,
        ops: FileOps | None = None,
        owner: ProcessIdentity | None = None,
    ) -> None:
        _check_name_part("prefix", prefix, required=True)
        self._policy = policy
        self._ops: FileOps = _OS_OPS if ops is None else ops
        self._created: dict[Path, None] = {}
        self._closed = False
        self.owner = current_process() if owner is None else owner
        base = trusted_root(root, ops=self._ops)

        def create() -> Path:
            path = base / f"{prefix}{secrets.token_hex(8)}"
            self._ops.mkdir(path, 0o700)
            return path

        try:
            self._path = _UNIQUE_NAME(create)
        except OSError as exc:
            raise _failure("create a workspace in", base, exc) from exc
        try:
            record = json.dumps(asdict(self.owner)).encode("utf-8")
            atomic_write_bytes(self._path / OWNER_FILE, record, policy=policy, ops=self._ops)
        except BaseException:
            self.cleanup()
            raise

    @property
    def path(self) -> Path:
        """The workspace directory."""
        return self._path

    @property
    def files(self) -> tuple[Path, ...]:
        """The files made through this workspace and not deleted yet."""
        return tuple(self._created)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "cleaned up" if self._closed else f"{len(self._created)} files"
        return f"TempWorkspace({str(self._path)!r}, {state})"

    def _check_open(self) -> None:
        if self._closed:
            raise TempFileError(f"workspace {self._path} is already cleaned up")

    @contextmanager
    def new_file(self, suffix: str = "") -> Iterator[tuple[Path, BinaryIO]]:
        """Create a new file (exclusive, 0600) and yield ``(path, handle)``.

        When the block exits the handle is flushed, fsynced and closed (closing it
        yourself first is fine); if the block raises, the file is removed, and an
        ``OSError`` (a full disk) comes out as :class:`TempFileError` naming the file.
        """
        self._check_open()
        _check_name_part("suffix", suffix)
        with _new_file(self._ops, self._path, "file-", suffix, self._policy) as (path, handle):
            yield path, handle
        self._created[path] = None

    def write_manifest(self, entries: Iterable[Mapping[str, Any]]) -> Path:
        """:func:`safe_write_manifest` into this workspace (closed on return)."""
        self._check_open()
        path = safe_write_manifest(entries, self._path, policy=self._policy, ops=self._ops)
        self._created[path] = None
        return path

    def delete(self, path: str | os.PathLike[str]) -> DeleteResult:
        """:func:`safe_delete` a file inside this workspace."""
        target = Path(path).absolute()
        if self._path not in target.parents or target == self._path / OWNER_FILE:
            raise InvalidOptionError("path", path, f"is not a file of workspace {self._path}")
        result = safe_delete(target, policy=self._policy, ops=self._ops)
        if result.outcome is not DeleteOutcome.LOCKED:
            self._created.pop(target, None)
        return result

    def cleanup(self) -> CleanupReport:
        """Delete the workspace and everything in it; a second call does nothing.

        Locked files are reported and retried at interpreter exit; permanent errors
        are logged and reported in ``failed``. Never raises for a locked file.
        """
        if self._closed:
            return CleanupReport()
        self._closed = True
        # Registered first, so an interrupted cleanup is still finished at exit.
        _DEFERRED.add(self._path, self._policy, self._ops)
        report = _remove_workspace(self._path, tuple(self._created), self._policy, self._ops)
        self._created.clear()
        if report.clean:
            _DEFERRED.discard(self._path)
            logger.debug("removed workspace %s (%d entries)", self._path, len(report.deleted))
        else:
            logger.warning(
                "workspace %s: %d locked, %d failed; retried at exit: %s",
                self._path,
                len(report.locked),
                len(report.failed),
                ", ".join(map(str, report.locked + report.failed)),
            )
        return report


def sweep_stale(
    root: str | os.PathLike[str] | None = None,
    *,
    prefix: str = "speakeasy-",
    policy: RetryPolicy = DEFAULT_POLICY,
    ops: FileOps | None = None,
    is_alive: Callable[[ProcessIdentity], bool] = process_alive,
) -> list[Path]:
    """Remove the workspaces under ``root`` whose owner process is gone; return them.

    ``root`` is checked first, as :func:`trusted_root` does (an unsafe root raises
    :class:`~speakeasy_core.errors.TempRootError` and nothing is touched; a missing one
    is not created). Only directories named with ``prefix`` (never symlinks or
    junctions) that hold a readable owner record naming a process for which
    ``is_alive`` is false are touched; a workspace with files still locked is left for
    a later sweep.
    """
    _check_name_part("prefix", prefix, required=True)
    fs = _OS_OPS if ops is None else ops
    base = _resolve_root(root, fs, create=False)
    if base is None:
        return []
    try:
        entries = fs.scandir(base)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise _failure("list", base, exc) from exc
    removed = []
    for entry in entries:
        if not entry.name.startswith(prefix) or not _is_plain_dir(entry):
            continue
        path = Path(entry.path)
        owner = _read_owner(path, fs)
        if owner is None or is_alive(owner):
            continue
        report = _remove_workspace(path, (), policy, fs)
        if report.clean:
            removed.append(path)
        else:
            logger.info("stale workspace %s still has locked files; left for later", path)
    return removed
