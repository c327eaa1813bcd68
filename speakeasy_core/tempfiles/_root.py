"""Where workspaces go, and the checks a root passes before anything is made in it."""

from __future__ import annotations

import errno
import logging
import os
import stat
import tempfile
from pathlib import Path

from .._fsops import FileOps
from ..errors import TempRootError
from ._delete import _OS_OPS

__all__ = ["default_root", "trusted_root"]

logger = logging.getLogger(__name__)


def _private_name() -> str:
    suffix = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    return f"speakeasy_core{suffix}"


def default_root() -> Path:
    """Where workspaces go by default: ``<system temp dir>/speakeasy_core-<uid>``.

    One root per user, so users sharing ``/tmp`` never collide; Windows' temp dir is
    already per user, and has no uid suffix.
    """
    return Path(tempfile.gettempdir()) / _private_name()


def _lstat_dir(path: Path, ops: FileOps, *, create: bool) -> os.stat_result | None:
    """``lstat`` of ``path``, made (0700) first if missing and ``create``; None if missing."""
    try:
        return ops.lstat(path)
    except FileNotFoundError:
        if not create:
            return None
    except OSError as exc:
        raise TempRootError(exc.errno, f"cannot use the temp root: {exc.strerror}", path) from exc
    try:
        ops.makedirs(path, 0o700)
        return ops.lstat(path)
    except OSError as exc:
        raise TempRootError(
            exc.errno, f"cannot create the temp root: {exc.strerror}", path
        ) from exc


def _link_or_not_dir(info: os.stat_result) -> str | None:
    if stat.S_ISLNK(info.st_mode):
        return "is a symlink, not a directory"
    if getattr(info, "st_file_attributes", 0) & stat.FILE_ATTRIBUTE_REPARSE_POINT:
        return "is a junction (reparse point), not a directory"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    return None


def _shared(info: os.stat_result) -> str | None:
    """Why others could plant or swap entries in this directory (POSIX), or None."""
    if not hasattr(os, "getuid"):
        return None
    if info.st_uid != os.getuid():
        return f"belongs to another user (uid {info.st_uid})"
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def _refuse(path: Path, reason: str) -> TempRootError:
    return TempRootError(errno.EPERM, f"unsafe temp root: {reason}", os.fspath(path))


def _checked_root(root: Path, ops: FileOps, *, create: bool) -> Path | None:
    """``root`` if it passes every check (see :func:`trusted_root`), else TempRootError."""
    info = _lstat_dir(root, ops, create=create)
    if info is None:
        return None
    reason = _link_or_not_dir(info) or _shared(info)
    if reason is not None:
        raise _refuse(root, reason)
    return root


def _resolve_root(
    root: str | os.PathLike[str] | None, ops: FileOps, *, create: bool
) -> Path | None:
    if root is None:
        return _checked_root(default_root(), ops, create=create)
    base = Path(root).absolute()
    info = _lstat_dir(base, ops, create=create)
    if info is None:
        return None
    reason = _link_or_not_dir(info)
    if reason is not None:
        raise _refuse(base, reason)
    if _shared(info) is None:
        return base
    return _checked_root(base / _private_name(), ops, create=create)


def trusted_root(root: str | os.PathLike[str] | None = None, *, ops: FileOps | None = None) -> Path:
    """The checked directory workspaces go in for ``root`` (default :func:`default_root`),
    created (0700) if missing.

    It must be a real directory (a symlink or junction is refused, never followed) owned
    by this user and, on POSIX, not writable by group or others. A ``root`` given that is
    another user's or writable by others is used through its private
    ``speakeasy_core-<uid>`` subfolder, checked the same way. Raises
    :class:`~speakeasy_core.errors.TempRootError` naming the path and the reason.
    """
    path = _resolve_root(root, _OS_OPS if ops is None else ops, create=True)
    assert path is not None
    return path
