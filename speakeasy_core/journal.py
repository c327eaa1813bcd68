"""A job journal for resumable batch jobs: JSON Lines, one finished result per line.

The first line is a header (format, version and the job's options); every other line
is ``{"key": ..., "result": ...}``, appended when a result is finished with a single
unbuffered write (and an fsync when ``durable``), so a crash or kill at any moment
leaves at most a partial last line; a write that fails (full disk) is cut off again and
raises :class:`~speakeasy_core.errors.JournalWriteError`. Reopening truncates that line away before
appending; readers ignore it. A complete line that does not parse is corruption, not a
crash artefact, and raises :class:`~speakeasy_core.errors.JournalError`.

Only successful results count as done: failed ones are journaled too but retried on
resume. The journal keeps in memory only the done keys and their line offsets, never
the results. One process appends to a journal at a time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from .errors import (
    InputError,
    InputNotFoundError,
    InvalidOptionError,
    JournalError,
    JournalWriteError,
)
from .types import TranscriptionResult

__all__ = ["JOURNAL_FORMAT", "JOURNAL_VERSION", "Journal", "array_key", "job_key", "read_journal"]

logger = logging.getLogger(__name__)

JOURNAL_FORMAT = "speakeasy_core.journal"
JOURNAL_VERSION = 1


def _jsonable(value: object) -> object:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON-serialisable")


def _canonical(value: object, option: str) -> str:
    """Deterministic ASCII JSON of ``value``; InvalidOptionError naming ``option`` if it
    holds something that has no JSON form."""
    try:
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), allow_nan=False, default=_jsonable
        )
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(option, value, f"must be JSON-serialisable ({exc})") from exc


def _key(kind: str, identity: Mapping[str, object], options: Mapping[str, Any]) -> str:
    text = _canonical({"input": identity, "options": options}, "options")
    return f"{kind}-{hashlib.sha256(text.encode('ascii')).hexdigest()[:32]}"


def job_key(path: str | os.PathLike[str], options: Mapping[str, Any]) -> str:
    """A stable key for transcribing the file at ``path`` with ``options``.

    It changes when the file's absolute (resolved) path, size or mtime_ns changes, or
    any of ``options`` (backend, model, TranscribeOptions...: whatever changes the
    output). Raises InputNotFoundError for a missing file.
    """
    file = Path(path)
    try:
        stat = file.stat()
    except FileNotFoundError:
        raise InputNotFoundError(file) from None
    except OSError as exc:
        raise InputError(file, f"cannot stat: {exc.strerror or exc}") from exc
    identity = {"path": str(file.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return _key("file", identity, options)


def cut_key(identity: Mapping[str, object], options: Mapping[str, Any]) -> str:
    """A stable key for a lhotse cut: its :attr:`~speakeasy_core.cuts.CutAudio.identity`
    (key, recording, offset, duration, channels) and ``options``."""
    return _key("cut", identity, options)


def array_key(samples: npt.ArrayLike, sample_rate: int, options: Mapping[str, Any]) -> str:
    """A stable key for in-memory audio: a hash of its content, shape, dtype and rate."""
    array = np.ascontiguousarray(samples)
    if array.dtype.hasobject:
        raise InvalidOptionError("samples", array.dtype, "object arrays have no content hash")
    content = hashlib.sha256(array.data).hexdigest()
    identity = {
        "sha256": content,
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "sample_rate": int(sample_rate),
    }
    return _key("array", identity, options)


def _header_line(header: Mapping[str, Any]) -> bytes:
    line = {"format": JOURNAL_FORMAT, "version": JOURNAL_VERSION, "header": header}
    return (_canonical(line, "header") + "\n").encode("ascii")


def _parse_header(line: bytes, path: Path) -> dict[str, Any]:
    """The job header stored in a journal's first line."""
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("format") != JOURNAL_FORMAT:
        raise JournalError(f"{path}: not a speakeasy_core journal (no journal header)")
    if data.get("version") != JOURNAL_VERSION:
        raise JournalError(
            f"{path}: journal format version {data.get('version')!r}; "
            f"this version of speakeasy_core reads version {JOURNAL_VERSION}"
        )
    header = data.get("header")
    if not isinstance(header, dict):
        raise JournalError(f"{path}: journal header is not an object")
    return header


def _entry_line(key: str, result: TranscriptionResult) -> bytes:
    data = {"key": key, "result": result.to_dict()}
    return (json.dumps(data, separators=(",", ":"), allow_nan=False) + "\n").encode("ascii")


def _parse_entry(line: bytes, path: Path, where: str) -> tuple[str, TranscriptionResult]:
    try:
        data = json.loads(line)
        key = data["key"]
        if not isinstance(key, str) or not key:
            raise ValueError("the key is not a non-empty string")
        return key, TranscriptionResult.from_dict(data["result"])
    except (ValueError, TypeError, KeyError) as exc:
        raise JournalError(f"{path}: {where} is not a journal entry ({exc!r})") from exc


def read_journal(path: str | os.PathLike[str]) -> Iterator[tuple[str, TranscriptionResult]]:
    """Stream ``(key, result)`` for every complete line, in the order written.

    A key may appear more than once (a failure, then its successful retry). A partial
    last line is ignored; an empty file or a partial header yields nothing.
    """
    file = Path(path)
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise JournalError(f"{file}: cannot read journal: {exc.strerror or exc}") from exc
    with handle:
        first = handle.readline()
        if not first.endswith(b"\n"):
            return
        _parse_header(first, file)
        for number, line in enumerate(handle, start=2):
            if not line.endswith(b"\n"):
                return
            yield _parse_entry(line, file, f"line {number}")


class Journal:
    """An open journal; create it with :meth:`Journal.open`, use it as a context manager."""

    def __init__(
        self, path: Path, handle: BinaryIO, header: dict[str, Any], *, durable: bool
    ) -> None:
        self._path = path
        self._file: BinaryIO | None = handle
        self._header = header
        self._durable = durable
        self._done: dict[str, int] = {}
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        header: Mapping[str, Any],
        resume: bool = True,
        durable: bool = True,
    ) -> Journal:
        """Open (creating it and its folder if needed) the journal at ``path``.

        ``header`` describes the job (backend, model, options) and must be JSON-able.
        With ``resume`` an existing journal is continued: its header must equal
        ``header``, else JournalError; a partial last line left by a crash is cut
        off. Without ``resume`` an existing journal is started afresh. Either way a
        file that is not a journal is never overwritten: JournalError. ``durable``
        fsyncs every line.
        """
        file = Path(path)
        expected = _header_line(header)
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            handle = file.open("a+b")
        except OSError as exc:
            raise JournalWriteError(
                exc.errno, f"cannot open journal: {exc.strerror or exc}", os.fspath(file)
            ) from exc
        journal = cls(file, handle, json.loads(expected)["header"], durable=durable)
        try:
            handle.seek(0)
            first = handle.readline()
            if first.endswith(b"\n"):
                stored = _parse_header(first, file)
                if resume:
                    journal._check_header(stored)
                    journal._scan(len(first))
                    return journal
            elif first and not expected.startswith(first):
                raise JournalError(f"{file}: not a speakeasy_core journal (no journal header)")
            handle.truncate(0)
            journal._write(expected)
        except BaseException:
            journal.close()
            raise
        return journal

    def _check_header(self, stored: dict[str, Any]) -> None:
        if stored != self._header:
            differ = "; ".join(
                f"{k}: journal {stored.get(k)!r}, this run {self._header.get(k)!r}"
                for k in sorted(stored.keys() | self._header.keys())
                if stored.get(k) != self._header.get(k)
            )
            raise JournalError(
                f"{self._path}: journal belongs to a different job (differs in {differ}); "
                "resume with the same settings, or start afresh"
            )

    def _scan(self, offset: int) -> None:
        """Index the done keys from ``offset`` on; cut off a partial last line."""
        handle = self._handle
        for number, line in enumerate(handle, start=2):
            if not line.endswith(b"\n"):
                logger.warning(
                    "%s: dropping a partial last line (%d bytes) left by an interrupted run",
                    self._path,
                    len(line),
                )
                handle.truncate(offset)
                break
            key, result = _parse_entry(line, self._path, f"line {number}")
            if result.ok:
                self._done[key] = offset
            offset += len(line)

    @property
    def _handle(self) -> BinaryIO:
        if self._file is None:
            raise JournalError(f"{self._path}: journal is closed")
        return self._file

    def _write(self, line: bytes) -> int:
        """Append one line, unbuffered; returns its offset.

        A failed write (full disk, I/O error) raises JournalWriteError after cutting off
        whatever part of the line reached the file.
        """
        handle = self._handle
        offset = handle.seek(0, os.SEEK_END)
        fd = handle.fileno()
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            if self._durable:
                os.fsync(fd)
        except OSError as exc:
            self._cut(offset)
            raise JournalWriteError(
                exc.errno, f"cannot write journal: {exc.strerror or exc}", os.fspath(self._path)
            ) from exc
        return offset

    def _cut(self, offset: int) -> None:
        """Best effort: truncate the file to ``offset`` (readers skip a partial line anyway)."""
        try:
            os.ftruncate(self._handle.fileno(), offset)
        except OSError as exc:
            logger.warning("%s: cannot cut off a partial line: %s", self._path, exc)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def header(self) -> dict[str, Any]:
        """The job header, as stored (JSON-normalised)."""
        return dict(self._header)

    def done_keys(self) -> set[str]:
        """Keys with a successful result; failed items are not done."""
        with self._lock:
            return set(self._done)

    def get(self, key: str) -> TranscriptionResult | None:
        """The latest successful result for ``key``, read from disk; None if not done."""
        with self._lock:
            offset = self._done.get(key)
            if offset is None:
                return None
            handle = self._handle
            handle.seek(offset)
            line = handle.readline()
        return _parse_entry(line, self._path, f"the line at byte {offset}")[1]

    def append(self, key: str, result: TranscriptionResult) -> None:
        """Record ``result`` for ``key``; durable once this returns (with ``durable``)."""
        if not isinstance(key, str) or not key:
            raise InvalidOptionError("key", key, "must be a non-empty string")
        try:
            line = _entry_line(key, result)
        except ValueError as exc:
            raise JournalError(f"{self._path}: cannot record {key}: {exc}") from exc
        with self._lock:
            offset = self._write(line)
            if result.ok:
                self._done[key] = offset

    def results(self) -> Iterator[tuple[str, TranscriptionResult]]:
        """Stream every recorded ``(key, result)`` from disk; see :func:`read_journal`."""
        return read_journal(self._path)

    def close(self) -> None:
        """Close the file (idempotent)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
