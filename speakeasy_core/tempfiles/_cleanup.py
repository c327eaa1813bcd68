"""Removing trees with retries; cleanups left behind are retried at interpreter exit."""

from __future__ import annotations

import atexit
import logging
import os
import stat
import threading
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .._fsops import FileOps
from .._retry import RetryPolicy
from ._delete import DeleteOutcome, _remove

__all__ = ["OWNER_FILE", "CleanupReport", "deferred_cleanups", "retry_deferred"]

logger = logging.getLogger(__name__)

#: The file inside each workspace that names the process owning it.
OWNER_FILE = ".speakeasy-owner.json"


@dataclass(frozen=True)
class CleanupReport:
    """What a cleanup removed and what it had to leave behind.

    ``locked`` files were still held by another process after the retry budget (they
    are retried at interpreter exit); ``failed`` ones hit a permanent error (logged).
    """

    deleted: tuple[Path, ...] = ()
    locked: tuple[Path, ...] = ()
    failed: tuple[Path, ...] = ()

    @property
    def clean(self) -> bool:
        """Whether nothing was left behind."""
        return not self.locked and not self.failed


def _is_plain_dir(entry: os.DirEntry[str]) -> bool:
    """A directory that is neither a symlink nor a Windows junction: safe to descend."""
    if not entry.is_dir(follow_symlinks=False):
        return False
    attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return not attributes & stat.FILE_ATTRIBUTE_REPARSE_POINT


@dataclass
class _Cleaner:
    """Removes files and trees with retries, collecting a :class:`CleanupReport`."""

    policy: RetryPolicy
    ops: FileOps
    deleted: dict[Path, None] = field(default_factory=dict)  # ordered set
    locked: list[Path] = field(default_factory=list)
    failed: list[Path] = field(default_factory=list)

    def remove(self, path: Path, *, directory: bool = False) -> None:
        try:
            result = _remove(path, self.policy, self.ops, directory=directory)
        except OSError as exc:
            logger.error("cannot remove %s: %s", path, exc)
            self.failed.append(path)
            return
        if result.outcome is DeleteOutcome.DELETED:
            self.deleted[path] = None
        elif result.outcome is DeleteOutcome.LOCKED:
            # A file deleted while another process had it open with share-delete keeps
            # its name (delete-pending): it is locked, not gone.
            self.deleted.pop(path, None)
            self.locked.append(path)

    def left_behind(self) -> int:
        return len(self.locked) + len(self.failed)

    def clear(self, directory: Path, keep: Collection[Path] = ()) -> None:
        """Remove everything under ``directory`` except ``keep``; symlinks are not followed.

        A name still listed afterwards counts as locked: on Windows a file deleted while
        another process has it open with share-delete keeps its name (delete-pending)
        until that handle closes, so the directory cannot be removed yet either.
        """
        try:
            entries = self.ops.scandir(directory)
        except FileNotFoundError:
            return
        except OSError as exc:
            logger.error("cannot list %s: %s", directory, exc)
            self.failed.append(directory)
            return
        for entry in entries:
            path = Path(entry.path)
            if path in keep:
                continue
            if _is_plain_dir(entry):
                before = self.left_behind()
                self.clear(path)
                if self.left_behind() == before:
                    self.remove(path, directory=True)
            else:
                self.remove(path)
        try:
            lingering = self.ops.scandir(directory)
        except OSError:
            return  # gone already, or unlistable now: removing the directory will tell
        accounted = {*keep, *self.locked, *self.failed}
        for entry in lingering:
            path = Path(entry.path)
            if path not in accounted:
                self.deleted.pop(path, None)
                self.locked.append(path)

    def report(self) -> CleanupReport:
        return CleanupReport(tuple(self.deleted), tuple(self.locked), tuple(self.failed))


def _remove_workspace(
    path: Path, tracked: Iterable[Path], policy: RetryPolicy, ops: FileOps
) -> CleanupReport:
    """Remove a workspace; its owner file stays while anything else is left behind."""
    cleaner = _Cleaner(policy, ops)
    for file in tracked:
        cleaner.remove(file)
    owner = path / OWNER_FILE
    cleaner.clear(path, keep={owner, *cleaner.locked, *cleaner.failed})
    if not cleaner.left_behind():
        cleaner.remove(owner)
        cleaner.remove(path, directory=True)
    return cleaner.report()


class _DeferredCleanups:
    """Workspaces whose cleanup left files behind; retried at interpreter exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[Path, tuple[RetryPolicy, FileOps]] = {}

    def add(self, path: Path, policy: RetryPolicy, ops: FileOps) -> None:
        with self._lock:
            self._pending[path] = (policy, ops)

    def discard(self, path: Path) -> None:
        with self._lock:
            self._pending.pop(path, None)

    def paths(self) -> tuple[Path, ...]:
        with self._lock:
            return tuple(self._pending)

    def retry(self) -> CleanupReport:
        with self._lock:
            pending = list(self._pending.items())
        reports = []
        for path, (policy, ops) in pending:
            report = _remove_workspace(path, (), policy, ops)
            if report.clean:
                self.discard(path)
            reports.append(report)
        return CleanupReport(
            tuple(p for r in reports for p in r.deleted),
            tuple(p for r in reports for p in r.locked),
            tuple(p for r in reports for p in r.failed),
        )


_DEFERRED = _DeferredCleanups()


def deferred_cleanups() -> tuple[Path, ...]:
    """Workspaces of this process whose cleanup is still pending (locked files)."""
    return _DEFERRED.paths()


def retry_deferred() -> CleanupReport:
    """Retry the pending workspace cleanups now (also done at interpreter exit)."""
    return _DEFERRED.retry()


@atexit.register
def _retry_at_exit() -> None:
    if not _DEFERRED.paths():
        return
    report = retry_deferred()
    if not report.clean:
        logger.warning(
            "left %d locked temp file(s) behind; sweep_stale() removes them later: %s",
            len(report.locked) + len(report.failed),
            ", ".join(map(str, report.locked + report.failed)),
        )
