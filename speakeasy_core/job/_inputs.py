"""A job's inputs and the output names they get, all decided before the job starts.

Rules (docs/jobs.md has the user's view):

- A file given as such is named by its stem (``talk.wav`` -> ``talk``); a file found
  under a directory argument keeps its path relative to it (``day1/intro``).
- Every part of a name is made one the filesystem can hold, deterministically: bytes
  that are not UTF-8 become ``_``; a part longer than 255 bytes (with the longest
  extension) is cut at a character boundary; a Windows device name (``CON``, ``PRN``,
  ``AUX``, ``NUL``, ``COM1``-``COM9``, ``LPT1``-``LPT9``, any case, any extension)
  gets a ``_`` after it (``con.x`` -> ``con_.x``), on every OS, so an out-dir can move
  between them; on Windows, ``<>:"|?*``, control characters and a trailing dot or
  space become ``_``. A part changed in any way but the device-name rule ends in
  ``~`` and 8 hex digits of a hash of the original, so different names stay
  different.
- Names that still collide (compared case-insensitively, as Windows and macOS do) are
  all renamed, none wins by order: when their inputs' extensions differ each keeps its
  extension (``talk.wav`` -> ``talk.wav``, ``talk.flac`` -> ``talk.flac``), otherwise
  each gets ``~`` and a hash of its resolved path (``x~1a2b3c4d``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from .._names import fit_bytes, name_bytes
from ..cuts import CutAudio, as_inputs
from ..errors import InvalidOptionError
from ..formats import get_format, write_result
from ..types import TranscriptionResult

__all__ = [
    "AUDIO_SUFFIXES",
    "NAME_MAX",
    "JobInput",
    "cut_inputs",
    "expand_inputs",
    "plan_outputs",
]

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset(
    {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf"}
    | {".m4a", ".m4b", ".aac", ".mp4", ".mov", ".webm", ".mkv", ".mka", ".avi"}
    | {".wma", ".wmv", ".asf", ".amr", ".3gp", ".3g2", ".ac3"}
)
"""What a directory argument is searched for: what libsndfile or PyAV decodes (videos'
audio tracks included), case-insensitively."""
NAME_MAX = 255
"""Bytes in one file name on Linux, macOS and Windows filesystems."""
_EXTENSION_ROOM = 16  # bytes kept free for the extension, whatever formats are asked
_HASH_CHARS = 8

_DEVICES = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"{port}{n}" for port in ("COM", "LPT") for n in (*"123456789", "¹", "²", "³")}
)
_WINDOWS_ILLEGAL = re.compile(r'[<>:"|?*\x00-\x1f]|[. ]$')
_UNSAFE = re.compile("[\ud800-\udfff\\\\]")  # undecodable bytes; a backslash


@dataclass(frozen=True)
class JobInput:
    """An input file and the output name its transcripts get: no extension, ``/``-separated
    folders allowed (``"day1/intro"`` writes ``out_dir/day1/intro.txt``).

    For a lhotse cut (:func:`cut_inputs`), ``cut`` is what is transcribed and ``path``
    is the manifest it came from (or ``<cuts>``).
    """

    path: Path
    stem: str
    cut: CutAudio | None = None

    @property
    def audio(self) -> Path | CutAudio:
        """What the transcriber is given: the cut, else the file."""
        return self.path if self.cut is None else self.cut

    @property
    def source(self) -> str:
        """How the input is named in logs and errors: the cut's key, else the path."""
        return os.fspath(self.path) if self.cut is None else self.cut.name or ""

    def _identity(self) -> str:
        """What tells two inputs apart, however the path is spelled."""
        resolved = str(self.path.resolve())
        return resolved if self.cut is None else f"{resolved}#{self.cut.name}"

    def output(self, out_dir: Path, fmt: str) -> Path:
        """Where this input's output in format ``fmt`` goes under ``out_dir``."""
        name = PurePosixPath(self.stem)
        return out_dir.joinpath(*name.parent.parts, name.name + get_format(fmt).extension)

    def write(self, result: TranscriptionResult, out_dir: Path, fmt: str) -> Path:
        """Write ``result`` for this input in format ``fmt`` under ``out_dir``."""
        name = PurePosixPath(self.stem)
        return write_result(result, out_dir.joinpath(*name.parent.parts), fmt, stem=name.name)


def expand_inputs(paths: Sequence[str | os.PathLike[str]]) -> Iterator[JobInput]:
    """Files as given; directories searched recursively for audio files, sorted.

    A file under a directory argument keeps its relative path in its output name, so
    ``a/x.wav`` and ``b/x.wav`` do not overwrite each other's transcripts. The names
    are raw: :func:`plan_outputs` makes them safe and distinct.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
            )
            if not found:
                logger.warning("no audio files under %s", path)
            for file in found:
                yield JobInput(file, file.relative_to(path).with_suffix("").as_posix())
        else:
            yield JobInput(path, path.stem)


def cut_inputs(
    cuts: object, *, origin: Path | None = None, per_supervision: bool = False
) -> Iterator[JobInput]:
    """A lhotse CutSet or RecordingSet as job inputs, one per cut (or per supervision),
    named by the cut's key: ``"<cut id>"`` or ``"<cut id>/<supervision id>"``."""
    where = origin if origin is not None else Path("<cuts>")
    for cut in as_inputs(cuts, per_supervision=per_supervision):  # type: ignore[arg-type]
        if not isinstance(cut, CutAudio):
            raise InvalidOptionError("cuts", type(cuts).__name__, "is not a lhotse CutSet")
        yield JobInput(where, cut.name or "", cut)


def _digest(text: str) -> str:
    data = text.encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()[:_HASH_CHARS]


def _tagged(part: str, tag: str, budget: int) -> str:
    """``part`` cut to fit ``budget`` bytes together with ``tag``, then ``tag``."""
    return fit_bytes(part, budget - name_bytes(tag)) + tag


def _safe_part(part: str, budget: int) -> str:
    """``part`` as a name any filesystem holds in ``budget`` bytes (see the module doc)."""
    name = _UNSAFE.sub("_", part)
    if os.name == "nt":
        name = _WINDOWS_ILLEGAL.sub("_", name)
    if not name.strip("."):  # "", "." and ".." name no file of their own
        name = "_" * max(1, len(name))
    lossy = name != part
    base, dot, rest = name.partition(".")
    if base.rstrip(" ").upper() in _DEVICES:
        name = f"{base}_{dot}{rest}"
    if lossy or name_bytes(name) > budget:
        return _tagged(name, f"~{_digest(part)}", budget)
    return name


def _budget(formats: Sequence[str]) -> int:
    longest = max((name_bytes(get_format(fmt).extension) for fmt in formats), default=0)
    return NAME_MAX - max(_EXTENSION_ROOM, longest)


def _with_last(stem: str, last: str) -> str:
    parent = PurePosixPath(stem).parent
    return last if parent == PurePosixPath(".") else f"{parent.as_posix()}/{last}"


def _collisions(items: Sequence[JobInput]) -> list[list[int]]:
    groups: defaultdict[str, list[int]] = defaultdict(list)
    for index, item in enumerate(items):
        groups[item.stem.casefold()].append(index)
    return [group for group in groups.values() if len(group) > 1]


def _disambiguate(items: list[JobInput], group: list[int], budget: int, *, by_path: bool) -> None:
    """Rename every input of ``group``: by extension where those differ (unless
    ``by_path``), else by a hash of the resolved path."""
    suffixes = ["" if items[i].cut else items[i].path.suffix.lower() for i in group]
    by_suffix = not by_path and len(set(suffixes)) == len(suffixes) and all(suffixes)
    for index, suffix in zip(group, suffixes, strict=True):
        item = items[index]
        tag = suffix if by_suffix else f"~{_digest(item._identity())}"
        last = _tagged(PurePosixPath(item.stem).name, tag, budget)
        items[index] = replace(item, stem=_with_last(item.stem, last))


def plan_outputs(inputs: Iterable[JobInput], formats: Sequence[str] = ("txt",)) -> list[JobInput]:
    """``inputs`` with output names that are safe and distinct (see the module doc).

    Deterministic, and a no-op on names it made (so planning twice changes nothing).
    Renamed inputs are logged. Raises InvalidOptionError if names still collide (a
    hash collision: never seen in practice).
    """
    budget = _budget(formats)
    unique: dict[tuple[str, str], JobInput] = {}
    for item in inputs:  # the same file under the same name, however spelled: once
        unique.setdefault((item._identity(), item.stem), item)
    given = list(unique.values())
    items = []
    for item in given:
        parts = [part for part in item.stem.split("/") if part] or [""]
        safe = [_safe_part(part, NAME_MAX) for part in parts[:-1]]
        safe.append(_safe_part(parts[-1], budget))
        items.append(replace(item, stem="/".join(safe)))
    for by_path in (False, True):
        for group in _collisions(items):
            _disambiguate(items, group, budget, by_path=by_path)
    still = _collisions(items)
    if still:
        names = "; ".join(", ".join(items[i].source for i in group) for group in still)
        raise InvalidOptionError("inputs", names, "these inputs' output names collide")
    for before, after in zip(given, items, strict=True):
        if before.stem != after.stem:
            logger.info("%s: output name %r (was %r)", after.source, after.stem, before.stem)
    return items
