"""Writing files completely: new private files, NeMo manifests, atomic replacement."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from .._fsops import FileOps
from .._names import fit_bytes, json_text
from .._retry import DEFAULT_POLICY, RetryPolicy, retry_transient
from ..errors import InputError, InvalidOptionError, TempFileError
from ._delete import _OS_OPS, _check_name_part, _discard, _failure

__all__ = ["atomic_write_bytes", "atomic_write_text", "safe_write_manifest"]

logger = logging.getLogger(__name__)

# Random names collide only by astronomical bad luck; tempfile.mkstemp tries too.
_UNIQUE_NAME = Retrying(
    retry=retry_if_exception_type(FileExistsError), stop=stop_after_attempt(100), reraise=True
)
_MAX_STEM = 100  # bytes of a target's name kept in its temp file's name (NAME_MAX is 255)


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
        return (json_text(line, allow_nan=False) + "\n").encode("utf-8")
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
    prefix = f".{fit_bytes(target.name, _MAX_STEM)}."
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
