"""Output formats for a :class:`~speakeasy_core.types.TranscriptionResult`: a registry of
writers (``txt``, ``json``, ``srt``, ``vtt`` built in) and an atomic file writer.

A writer turns one result into the text of one file. Subtitles (srt, vtt) use the
result's segments; a result without segments becomes a single cue over
``[0, duration]``. Cue text is sanitised so that no transcript can break the file:
it is one line (whitespace runs, line breaks included, become one space; a blank cue
is dropped), an arrow cannot appear (srt: ``-->``, ``- >`` and the like become ``->``;
vtt: ``&``, ``<`` and ``>`` are escaped as the WebVTT spec requires), and cues are
sorted by start time. Start times are rounded down and end times up to whole milliseconds, so a cue
covers its whole segment, and a cue always ends at least 1 ms after it starts. Format
names are case-insensitive.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ._names import json_text
from .errors import InvalidOptionError
from .tempfiles import atomic_write_bytes
from .types import TranscriptionResult

__all__ = [
    "SUBTITLE_FORMATS",
    "OutputFormat",
    "Writer",
    "available_formats",
    "get_format",
    "register_format",
    "render",
    "unregister_format",
    "write_result",
]

Writer = Callable[[TranscriptionResult], str]
"""Renders one result as the complete text of one output file."""

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_EXTENSION = re.compile(r"(\.[A-Za-z0-9_-]+)+")
# Lenient SRT parsers take "- >", "-- >", "--->" ... for the "-->" of a timing line.
_ARROW = re.compile(r"-[ -]+>")


@dataclass(frozen=True)
class OutputFormat:
    """A registered format: its name, file extension (with the dot) and writer."""

    name: str
    extension: str
    writer: Writer


_registry: dict[str, OutputFormat] = {}
_lock = threading.Lock()


def register_format(name: str, writer: Writer, *, extension: str, replace: bool = False) -> None:
    """Register ``writer`` under ``name`` (lower-cased) writing files ending ``extension``.

    Raises InvalidOptionError for a malformed name or extension, or a name already
    taken unless ``replace``.
    """
    key = name.lower()
    if not _NAME.fullmatch(key):
        raise InvalidOptionError("format", name, "names are letters, digits, '_' and '-'")
    if not _EXTENSION.fullmatch(extension):
        raise InvalidOptionError("extension", extension, "must look like '.srt'")
    with _lock:
        if key in _registry and not replace:
            raise InvalidOptionError("format", name, "is already registered")
        _registry[key] = OutputFormat(key, extension, writer)


def unregister_format(name: str) -> None:
    """Remove a registered format; unknown names raise InvalidOptionError."""
    with _lock:
        if _registry.pop(name.lower(), None) is None:
            raise _unknown(name)


SUBTITLE_FORMATS = frozenset({"srt", "vtt"})
"""Formats whose cues use the result's segment times (one whole-input cue without them)."""


def available_formats() -> list[str]:
    """Names of every registered format, sorted."""
    with _lock:
        return sorted(_registry)


def _unknown(name: str) -> InvalidOptionError:
    names = ", ".join(sorted(_registry)) or "none"
    return InvalidOptionError("format", name, f"unknown output format; available: {names}")


def get_format(name: str) -> OutputFormat:
    """The format registered as ``name``; InvalidOptionError listing the known ones."""
    with _lock:
        found = _registry.get(name.lower())
        if found is None:
            raise _unknown(name)
    return found


def render(result: TranscriptionResult, fmt: str) -> str:
    """The text of ``result`` in format ``fmt``."""
    return get_format(fmt).writer(result)


def write_result(
    result: TranscriptionResult, out_dir: str | os.PathLike[str], fmt: str, *, stem: str
) -> Path:
    """Write ``result`` atomically to ``out_dir / (stem + extension)`` and return the path.

    ``stem`` must be a plain file name (no folders). Two inputs given the same stem
    overwrite each other's output: choosing distinct stems is the caller's job (a job
    does it with :func:`~speakeasy_core.job.plan_outputs`). ``out_dir`` is created if
    needed. The file is UTF-8 (a lone surrogate in the text, which UTF-8 cannot hold,
    becomes ``?``); its mode is the umask's, like any file the user creates.
    """
    if stem in ("", ".", "..") or any(char in stem for char in "/\\\0"):
        raise InvalidOptionError("stem", stem, "must be a plain file name without folders")
    output = get_format(fmt)
    text = output.writer(result)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}{output.extension}"
    # UTF-8; a lone surrogate (a backend echoing an undecodable file name) becomes "?"
    atomic_write_bytes(path, text.encode("utf-8", "replace"), mode=0o666)
    return path


# --- built-in writers -------------------------------------------------------------------


def _txt(result: TranscriptionResult) -> str:
    return f"{result.text}\n" if result.text else ""


def _json(result: TranscriptionResult) -> str:
    return json_text(result.to_dict(), allow_nan=False, indent=2) + "\n"


def _milliseconds(seconds: float, what: str, direction: Callable[[float], int]) -> int:
    """Whole milliseconds, rounded in ``direction`` (floor or ceil), at least 0."""
    if not math.isfinite(seconds):
        raise InvalidOptionError(what, seconds, "a cue time must be finite")
    # round(..., 6) first so that float noise (1.001 * 1000 = 1000.9999999999999)
    # does not cost a whole millisecond
    return max(0, direction(round(seconds * 1000, 6)))


def _timestamp(ms: int, separator: str) -> str:
    """``HH:MM:SS<sep>mmm``; hours grow past two digits instead of wrapping."""
    seconds, millis = divmod(ms, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{separator}{millis:03d}"


def _cues(result: TranscriptionResult) -> list[tuple[int, int, str]]:
    """``(start_ms, end_ms, one-line text)`` per non-blank segment, sorted by time."""
    spans = [(s.start, s.end, s.text) for s in result.segments] or [
        (0.0, result.duration, result.text)
    ]
    cues = []
    for start, end, text in spans:
        line = " ".join(text.split())
        if not line:
            continue
        start_ms = _milliseconds(start, "segment start", math.floor)
        end_ms = max(_milliseconds(end, "segment end", math.ceil), start_ms + 1)
        cues.append((start_ms, end_ms, line))
    cues.sort(key=lambda cue: cue[:2])
    return cues


def _srt(result: TranscriptionResult) -> str:
    blocks = [
        f"{index}\n{_timestamp(start, ',')} --> {_timestamp(end, ',')}\n"
        f"{_ARROW.sub('->', line)}\n\n"
        for index, (start, end, line) in enumerate(_cues(result), start=1)
    ]
    return "".join(blocks)


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _vtt(result: TranscriptionResult) -> str:
    blocks = [
        f"{_timestamp(start, '.')} --> {_timestamp(end, '.')}\n{_vtt_escape(line)}\n\n"
        for start, end, line in _cues(result)
    ]
    return "WEBVTT\n\n" + "".join(blocks)


register_format("txt", _txt, extension=".txt")
register_format("json", _json, extension=".json")
register_format("srt", _srt, extension=".srt")
register_format("vtt", _vtt, extension=".vtt")
