"""The one seam through which :mod:`speakeasy_core.tempfiles` touches the filesystem.

Every call the temp-file code makes goes through a :class:`FileOps` object. The
default, :class:`OsFileOps`, delegates to :mod:`os`; tests inject
:class:`~speakeasy_core.testing.WindowsLockSimulator` to get Windows' locking rules
on any OS without patching :mod:`os`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["EXCLUSIVE_FLAGS", "FileOps", "OsFileOps"]

#: Create-new, write-only, binary, close-on-exec: the flags of :func:`tempfile.mkstemp`.
EXCLUSIVE_FLAGS = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_BINARY", 0)
    | getattr(os, "O_NOINHERIT", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


class FileOps(Protocol):
    """The filesystem operations the temp-file code needs, and nothing else."""

    def open_exclusive(self, path: Path, mode: int = 0o600) -> BinaryIO:
        """Create ``path`` (``FileExistsError`` if it exists) and open it for writing."""
        ...

    def open_read(self, path: Path) -> BinaryIO:
        """Open an existing file for reading."""
        ...

    def fsync(self, handle: BinaryIO) -> None:
        """Flush ``handle`` and force its data to disk."""
        ...

    def replace(self, src: Path, dst: Path) -> None:
        """Rename ``src`` over ``dst`` atomically."""
        ...

    def unlink(self, path: Path) -> None:
        """Remove a file (never a directory)."""
        ...

    def mkdir(self, path: Path, mode: int = 0o700) -> None:
        """Create one directory (``FileExistsError`` if it exists)."""
        ...

    def makedirs(self, path: Path, mode: int = 0o700) -> None:
        """Create a directory and its missing parents; existing ones are fine."""
        ...

    def rmdir(self, path: Path) -> None:
        """Remove an empty directory."""
        ...

    def scandir(self, path: Path) -> list[os.DirEntry[str]]:
        """The entries of a directory (their ``is_dir(follow_symlinks=False)`` works)."""
        ...

    def lstat(self, path: Path) -> os.stat_result:
        """Stat ``path`` without following a symlink."""
        ...


class OsFileOps:
    """:class:`FileOps` on the real filesystem, through :mod:`os`."""

    def open_exclusive(self, path: Path, mode: int = 0o600) -> BinaryIO:
        fd = os.open(path, EXCLUSIVE_FLAGS, mode)
        try:
            return os.fdopen(fd, "wb")
        except BaseException:
            os.close(fd)
            raise

    def open_read(self, path: Path) -> BinaryIO:
        return open(path, "rb")

    def fsync(self, handle: BinaryIO) -> None:
        handle.flush()
        os.fsync(handle.fileno())

    def replace(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def mkdir(self, path: Path, mode: int = 0o700) -> None:
        os.mkdir(path, mode)

    def makedirs(self, path: Path, mode: int = 0o700) -> None:
        os.makedirs(path, mode, exist_ok=True)

    def rmdir(self, path: Path) -> None:
        os.rmdir(path)

    def scandir(self, path: Path) -> list[os.DirEntry[str]]:
        with os.scandir(path) as entries:
            return list(entries)

    def lstat(self, path: Path) -> os.stat_result:
        return os.lstat(path)
