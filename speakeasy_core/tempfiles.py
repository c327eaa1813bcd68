"""Temporary files that are closed before use and removed even when Windows holds them.

On Windows a file that any process has open without share-delete cannot be deleted
or replaced: ``PermissionError: [WinError 32]``. Antivirus scanners and the search
indexer open fresh files for a moment; a data loader may close its handle late. This
module writes every temp file completely (write, flush, fsync, close) before handing
out its path, and removes files with bounded, tenacity-driven retries that report
what happened instead of crashing a batch job:

- :func:`safe_delete` removes a file, retrying only transient lock errors;
- :func:`safe_write_manifest` writes a NeMo JSON Lines manifest, closed on return;
- :func:`atomic_write_bytes` / :func:`atomic_write_text` replace a file atomically;
- :class:`TempWorkspace` is a private per-job directory removed on exit;
- :func:`sweep_stale` removes the workspaces of processes that died.

Nothing is created or swept in a root before it is checked (:func:`trusted_root`): a real
directory (no symlink or junction), owned by this user and, on POSIX, not writable by
group or others. The default root must pass as it is; a root passed by the caller that is
another user's or writable by others (``/tmp`` itself, say) is not used directly but
through a private ``speakeasy_core-<uid>`` folder inside it, which must pass in turn.

All filesystem calls go through a :class:`FileOps` object (``ops=``); pass
:class:`~speakeasy_core.testing.WindowsLockSimulator` to test Windows locking on any OS.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import re
import secrets
import stat
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Self

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from ._fsops import FileOps, OsFileOps
from ._process import ProcessIdentity, current_process, process_alive
from ._retry import DEFAULT_POLICY, WINERROR_ACCESS_DENIED, RetryPolicy, retry_transient
from .errors import InputError, InvalidOptionError, TempFileError, TempRootError

__all__ = [
    "DEFAULT_POLICY",
    "OWNER_FILE",
    "CleanupReport",
    "DeleteOutcome",
    "DeleteResult",
    "FileOps",
    "OsFileOps",
    "ProcessIdentity",
    "RetryPolicy",
    "TempWorkspace",
    "atomic_write_bytes",
    "atomic_write_text",
    "default_root",
    "deferred_cleanups",
    "process_alive",
    "retry_deferred",
    "safe_delete",
    "safe_write_manifest",
    "sweep_stale",
    "trusted_root",
]

logger = logging.getLogger(__name__)

#: The file inside each workspace that names the process owning it.
OWNER_FILE = ".speakeasy-owner.json"

_OS_OPS = OsFileOps()
# Random names collide only by astronomical bad luck; tempfile.mkstemp tries too.
_UNIQUE_NAME = Retrying(
    retry=retry_if_exception_type(FileExistsError), stop=stop_after_attempt(100), reraise=True
)
_MAX_STEM = 100  # bytes of a target's name kept in its temp file's name (NAME_MAX is 255)
_MAX_OWNER_BYTES = 4096
_SURROGATE = re.compile("[\ud800-\udfff]")


def _private_name() -> str:
    suffix = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    return f"speakeasy_core{suffix}"


def default_root() -> Path:
    """Where workspaces go by default: ``<system temp dir>/speakeasy_core-<uid>``.

    One root per user, so users sharing ``/tmp`` never collide; Windows' temp dir is
    already per user, and has no uid suffix.
    """
    return Path(tempfile.gettempdir()) / _private_name()


def _name_bytes(text: str) -> int:
    """Bytes ``text`` takes in a file name (an upper bound for surrogate-escaped bytes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def _fit_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` (whole characters) that fits in ``limit`` bytes."""
    used = 0
    for end, char in enumerate(text):
        used += _name_bytes(char)
        if used > limit:
            return text[:end]
    return text


def _json_text(value: object, **options: Any) -> str:
    """``json.dumps`` with non-ASCII kept as is, except lone surrogates (the undecodable
    bytes of a POSIX file name, as ``os.fsdecode`` gives them), written as ``\\udcXX``
    escapes: the text encodes as UTF-8, and ``json.loads`` gives the same str back."""
    text = json.dumps(value, ensure_ascii=False, **options)
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)


# ---------------------------------------------------------------------------- results


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


# ------------------------------------------------------------------------ primitives


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


@contextmanager
def _new_file(
    ops: FileOps,
    directory: Path,
    prefix: str,
    suffix: str,
    policy: RetryPolicy,
    *,
    mode: int = 0o600,
) -> Iterator[tuple[Path, BinaryIO]]:
    """A new unique file (``mode`` less the umask): fsynced and closed after the block,
    removed if it raises."""

    def create() -> tuple[Path, BinaryIO]:
        path = directory / f"{prefix}{secrets.token_hex(8)}{suffix}"
        return path, ops.open_exclusive(path, mode)

    try:
        path, handle = _UNIQUE_NAME(create)
    except OSError as exc:
        raise _failure("create a file in", directory, exc) from exc
    try:
        with handle:
            yield path, handle
            if not handle.closed:
                _sync(handle, path, ops)
    except TempFileError:
        _discard(path, policy, ops)
        raise
    except OSError as exc:  # the block's own writes (a full disk): the file's error
        _discard(path, policy, ops)
        raise _failure("write", path, exc) from exc
    except BaseException:
        _discard(path, policy, ops)
        raise


def _write(handle: BinaryIO, data: bytes, path: Path) -> None:
    try:
        handle.write(data)
    except OSError as exc:
        raise _failure("write", path, exc) from exc


def _sync(handle: BinaryIO, path: Path, ops: FileOps) -> None:
    try:
        ops.fsync(handle)
    except OSError as exc:
        raise _failure("write", path, exc) from exc


# ------------------------------------------------------------------- manifest, atomic


def _manifest_line(index: int, entry: Mapping[str, Any]) -> bytes:
    label = f"manifest entry {index}"
    if not isinstance(entry, Mapping):
        raise InputError(label, f"must be a mapping, not {type(entry).__name__}")
    audio = entry.get("audio_filepath")
    audio = os.fspath(audio) if isinstance(audio, os.PathLike) else audio
    if not isinstance(audio, str):
        raise InputError(label, "needs 'audio_filepath' as a str or a path")
    line = {**entry, "audio_filepath": str(Path(audio).absolute())}
    try:
        return (_json_text(line, allow_nan=False) + "\n").encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise InputError(label, f"is not JSON-serializable: {exc}") from exc


def safe_write_manifest(
    entries: Iterable[Mapping[str, Any]],
    directory: Path,
    *,
    prefix: str = "manifest-",
    policy: RetryPolicy = DEFAULT_POLICY,
    ops: FileOps | None = None,
) -> Path:
    """Write ``entries`` as a NeMo JSON Lines manifest in ``directory``; return its path.

    One UTF-8 JSON object per line (non-ASCII kept as is; the undecodable bytes of a
    POSIX file name as ``\\udcXX`` escapes, which ``json`` reads back as the same
    path), ``audio_filepath`` made absolute (not resolved). The file gets a unique name
    (created exclusively, mode 0600) and is flushed, fsynced and **closed** before the
    path is returned, so NeMo can open it and we can delete it on Windows. A bad entry raises
    :class:`~speakeasy_core.errors.InputError` naming it; on any failure the partial
    file is removed. ``policy`` bounds that removal's retries.
    """
    _check_name_part("prefix", prefix)
    fs = _OS_OPS if ops is None else ops
    with _new_file(fs, Path(directory), prefix, ".json", policy) as (path, handle):
        for index, entry in enumerate(entries):
            _write(handle, _manifest_line(index, entry), path)
    return path


def atomic_write_bytes(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o600,
    policy: RetryPolicy = DEFAULT_POLICY,
    ops: FileOps | None = None,
) -> None:
    """Replace ``path``'s content with ``data`` atomically.

    The file gets ``mode`` less the umask: the default keeps it private; ``0o666``
    makes it like any file the user creates (what output files use).

    ``data`` goes to a temp file in the same directory (fsynced, closed), which is
    then renamed over ``path``. Readers see the old or the new content, never a mix.
    The rename is retried while another process holds ``path`` (Windows refuses to
    replace an open file); if the lock outlasts ``policy`` or a permanent error
    occurs, :class:`TempFileError` is raised, ``path`` is unchanged and the temp file
    is removed.
    """
    target = Path(path)
    fs = _OS_OPS if ops is None else ops
    prefix = f".{_fit_bytes(target.name, _MAX_STEM)}."
    with _new_file(fs, target.parent, prefix, ".tmp", policy, mode=mode) as (temp, handle):
        _write(handle, data, temp)
    try:
        _replace(temp, target, policy, fs)
    except BaseException:
        _discard(temp, policy, fs)
        raise


def _replace(temp: Path, target: Path, policy: RetryPolicy, ops: FileOps) -> None:
    try:
        ops.replace(temp, target)
    except OSError as exc:
        try:
            retried = retry_transient(
                exc, lambda: ops.replace(temp, target), policy, replacing=True
            )
        except OSError as error:
            raise _failure("replace", target, error) from error
        if retried.error is not None:
            raise _failure(
                f"replace (still locked after {retried.waited:.2f} s)", target, retried.error
            ) from retried.error


def atomic_write_text(
    path: str | os.PathLike[str],
    text: str,
    *,
    encoding: str = "utf-8",
    mode: int = 0o600,
    policy: RetryPolicy = DEFAULT_POLICY,
    ops: FileOps | None = None,
) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded with ``encoding``.

    Newlines are written as given (no translation to ``os.linesep``). An unknown
    ``encoding`` raises :class:`~speakeasy_core.errors.InvalidOptionError`; text the
    encoding cannot represent raises ``UnicodeEncodeError``.
    """
    try:
        data = text.encode(encoding)
    except LookupError as exc:
        raise InvalidOptionError("encoding", encoding, "unknown encoding") from exc
    atomic_write_bytes(path, data, mode=mode, policy=policy, ops=ops)


# ------------------------------------------------------------------------- cleanup


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


# ----------------------------------------------------------------------- workspaces


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
