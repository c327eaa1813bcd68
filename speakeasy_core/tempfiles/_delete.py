"""Deleting one file (or empty directory) with retries while another process holds it."""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .._fsops import FileOps, OsFileOps
from .._retry import DEFAULT_POLICY, WINERROR_ACCESS_DENIED, RetryPolicy, retry_transient
from ..errors import InvalidOptionError, TempFileError

__all__ = ["DeleteOutcome", "DeleteResult", "safe_delete"]

logger = logging.getLogger(__name__)

_OS_OPS = OsFileOps()


class DeleteOutcome(Enum):
    """What :func:`safe_delete` did."""

    DELETED = "deleted"
    """The file was removed."""
    ABSENT = "absent"
    """There was no such file (already gone counts as success)."""
    LOCKED = "locked"
    """Another process held the file for longer than the retry budget."""


@dataclass(slots=True)  # not frozen: frozen costs a third of an unlink on the fast path
class DeleteResult:
    """The outcome of one :func:`safe_delete`: ``error`` is the lock when LOCKED."""

    path: Path
    outcome: DeleteOutcome
    attempts: int
    waited: float
    error: OSError | None = None


def _failure(action: str, path: Path, exc: OSError) -> TempFileError:
    """``exc`` as a TempFileError naming ``path`` (chain it with ``from exc``)."""
    if isinstance(exc, TempFileError):
        return exc
    if exc.errno is None:
        return TempFileError(f"cannot {action} {path}: {exc}")
    return TempFileError(exc.errno, f"cannot {action}: {exc.strerror}", os.fspath(path))


def _check_name_part(option: str, value: str, *, required: bool = False) -> None:
    separators = {"/", "\0", os.sep, os.altsep or os.sep}
    if (required and not value) or any(sep in value for sep in separators):
        reason = "must be a non-empty name part" if required else "must be a name part"
        raise InvalidOptionError(option, value, f"{reason} without path separators")


def _is_directory(path: Path, ops: FileOps) -> bool:
    try:
        return stat.S_ISDIR(ops.lstat(path).st_mode)
    except OSError:
        return False


def safe_delete(
    path: str | os.PathLike[str],
    *,
    policy: RetryPolicy = DEFAULT_POLICY,
    ops: FileOps | None = None,
) -> DeleteResult:
    """Delete a file, retrying while another process briefly holds it.

    Retries only transient lock errors (winerror 32, 33; winerror 5 for
    ``policy.access_denied_wait`` only; EBUSY) within ``policy``'s budget. A missing
    file is ABSENT; a lock that outlasts the budget is LOCKED (not raised). Permanent
    errors (permission, a directory, ...) raise :class:`TempFileError` at once,
    chained from the ``OSError``; ``KeyboardInterrupt`` always propagates.
    """
    target = path if isinstance(path, Path) else Path(path)
    fs = _OS_OPS if ops is None else ops
    return _remove(target, policy, fs)


def _remove(
    target: Path, policy: RetryPolicy, ops: FileOps, *, directory: bool = False
) -> DeleteResult:
    """Remove a file (or an empty ``directory``): :func:`safe_delete`'s engine.

    The first attempt is a plain call, so an unlocked file costs about as much as
    ``os.unlink``; tenacity only gets involved once something holds the file.
    """
    remove = ops.rmdir if directory else ops.unlink
    try:
        remove(target)
    except FileNotFoundError:
        return DeleteResult(target, DeleteOutcome.ABSENT, 1, 0.0)
    except OSError as exc:
        return _remove_held(target, remove, exc, policy, ops, directory=directory)
    return DeleteResult(target, DeleteOutcome.DELETED, 1, 0.0)


def _remove_held(
    target: Path,
    remove: Callable[[Path], None],
    first_error: OSError,
    policy: RetryPolicy,
    ops: FileOps,
    *,
    directory: bool,
) -> DeleteResult:
    if (
        not directory
        and getattr(first_error, "winerror", None) == WINERROR_ACCESS_DENIED
        and _is_directory(target, ops)
    ):
        # Windows reports deleting a directory as "access denied", not EISDIR.
        raise TempFileError(
            errno.EISDIR, "cannot delete: is a directory", os.fspath(target)
        ) from first_error

    def attempt() -> DeleteOutcome:
        try:
            remove(target)
        except FileNotFoundError:
            return DeleteOutcome.ABSENT
        return DeleteOutcome.DELETED

    try:
        retried = retry_transient(first_error, attempt, policy)
    except OSError as exc:
        raise _failure("delete", target, exc) from exc
    if retried.value is None:  # still held when the budget ran out
        return DeleteResult(
            target, DeleteOutcome.LOCKED, retried.attempts, retried.waited, retried.error
        )
    return DeleteResult(target, retried.value, retried.attempts, retried.waited)


def _discard(path: Path, policy: RetryPolicy, ops: FileOps) -> None:
    """Remove a file we created while another error propagates; never raises OSError."""
    try:
        result = safe_delete(path, policy=policy, ops=ops)
    except OSError as exc:
        logger.warning("could not remove %s: %s", path, exc)
        return
    if result.outcome is DeleteOutcome.LOCKED:
        logger.warning("could not remove %s: still locked after %.2f s", path, result.waited)
