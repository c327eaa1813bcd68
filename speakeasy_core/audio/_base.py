"""What every decoder shares: limits, :class:`AudioInfo`, opening a file safely."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from ..errors import (
    AudioDecodeError,
    EmptyAudioError,
    InputChangedError,
    InputError,
    InputNotFoundError,
)

TARGET_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
MAX_CHANNELS = 8

Decoder = Literal["sndfile", "av"]


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says, and the file's identity when it was probed.

    ``format`` is libsndfile's major format (``"wav"``, ``"flac"``, ...) or, for
    files PyAV decodes, the container (``"m4a"``, ``"webm"``, ``"matroska"``, ...),
    lower case. ``stream`` is the chosen audio stream of a container (0: the first)
    and ``codec`` its codec; both are None for libsndfile files. ``size`` and
    ``mtime_ns`` identify the file as probed: decoding refuses a file that changed.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int
    duration: float
    format: str
    decoder: Decoder = "sndfile"
    stream: int | None = None
    codec: str | None = None
    size: int | None = None
    mtime_ns: int | None = None


def _os_error(path: Path, exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputNotFoundError(path)
    return InputError(path, f"cannot open: {exc.strerror or exc}")


@contextmanager
def open_file(path: Path) -> Iterator[BinaryIO]:
    """Open a regular, non-empty file for reading; every failure is a typed error."""
    try:
        status = path.stat()
    except OSError as exc:
        raise _os_error(path, exc) from exc
    if stat.S_ISDIR(status.st_mode):
        raise InputError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(status.st_mode):
        raise InputError(path, "not a regular file")
    if status.st_size == 0:
        raise EmptyAudioError(path, "the file is empty (0 bytes)")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _os_error(path, exc) from exc
    with handle:
        yield handle


def identity(handle: BinaryIO) -> tuple[int, int]:
    """``(size, mtime_ns)`` of an open file."""
    status = os.fstat(handle.fileno())
    return status.st_size, status.st_mtime_ns


def check_unchanged(info: AudioInfo, handle: BinaryIO) -> None:
    """Raise InputChangedError when the open file is not the one ``info`` describes."""
    if info.size is None or info.mtime_ns is None:
        return
    size, mtime_ns = identity(handle)
    if (size, mtime_ns) != (info.size, info.mtime_ns):
        what = f"{info.size} -> {size} bytes" if size != info.size else "rewritten in place"
        raise InputChangedError(info.path, f"changed since it was probed ({what})")


def check_same_header(probed: AudioInfo, now: AudioInfo) -> None:
    """Raise InputChangedError when a re-read header differs from the probed one."""
    fields = ("decoder", "stream", "sample_rate", "channels", "frames")
    changed = [f for f in fields if getattr(probed, f) != getattr(now, f)]
    if changed:
        details = ", ".join(f"{f} {getattr(probed, f)} -> {getattr(now, f)}" for f in changed)
        raise InputChangedError(probed.path, f"changed since it was probed ({details})")


def check_length(info: AudioInfo, decoded: int, tolerance: float = 0) -> None:
    """Raise AudioDecodeError when fewer frames decoded than the header promises."""
    if decoded < info.frames - tolerance:
        raise AudioDecodeError(
            info.path,
            f"truncated: the header promises {info.frames} frames ({info.duration:.3f} s), "
            f"{decoded} decoded",
        )
