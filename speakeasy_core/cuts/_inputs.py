"""lhotse in: cuts as lazily loaded Transcriber inputs, manifests opened lazily."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..batch import AudioArray
from ..errors import AudioDecodeError, InputError, InputNotFoundError, InvalidOptionError
from ._common import (
    MANIFEST_SUFFIXES,
    as_cutset,
    is_lhotse,
    is_set,
    iter_cuts,
    require_lhotse,
    supervision_key,
)

if TYPE_CHECKING:
    from lhotse import CutSet
    from lhotse.cut import Cut

__all__ = ["CutAudio", "as_inputs", "load_manifest"]


class CutAudio(AudioArray):
    """One cut, or one supervision's stretch of a cut, as a Transcriber input.

    ``samples`` is loaded by lhotse (``cut.load_audio()``) each time it is read, shaped
    ``(frames, channels)`` at the cut's own rate; ``name`` is the result key (the cut
    id, or :func:`supervision_key`). Loading raises InputNotFoundError when a source
    file is missing and AudioDecodeError for anything else, naming the key and file.
    ``identity`` describes the audio span (recording, offset, duration, channels) for
    journal keys; it does not load audio.
    """

    cut: Cut
    _problem: str

    def __init__(self, cut: Cut, name: str, *, problem: str = "") -> None:
        # AudioArray is a frozen dataclass: set the fields the way its __init__ would.
        object.__setattr__(self, "cut", cut)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "sample_rate", int(cut.sampling_rate))
        object.__setattr__(self, "_problem", problem)

    @property
    def samples(self) -> npt.NDArray[np.generic]:
        if self._problem:
            raise AudioDecodeError(self.name, self._problem)
        try:
            loaded = self.cut.load_audio()
        except Exception as exc:  # lhotse raises AudioLoadingError, AssertionError, ...
            raise self._load_error(exc) from exc
        if loaded is None:
            raise AudioDecodeError(self.name, "the cut has no recording to load audio from")
        audio: npt.NDArray[np.generic] = np.asarray(loaded).T
        return audio

    def _load_error(self, exc: Exception) -> InputError:
        files = list(_source_files(self.cut))
        for file in files:
            if not file.exists():
                error = InputNotFoundError(self.name, f"source file {file} not found")
                error.filename = str(file)
                return error
        detail = str(exc).strip().splitlines() or [type(exc).__name__]
        where = ", ".join(map(str, files)) or "its sources"
        return AudioDecodeError(self.name, f"lhotse cannot load audio from {where}: {detail[0]}")

    @property
    def identity(self) -> dict[str, Any]:
        """The cut's span as JSON-able data: what its transcript depends on."""
        description: dict[str, Any] = self.cut.to_dict()
        return {"key": self.name, "cut": description}

    def __repr__(self) -> str:
        return f"CutAudio({self.name!r})"

    __eq__ = object.__eq__
    __hash__ = object.__hash__


def _source_files(cut: Cut) -> Iterator[Path]:
    """The local files a cut's audio comes from."""
    from lhotse.cut import MixedCut

    parts = [track.cut for track in cut.tracks] if isinstance(cut, MixedCut) else [cut]
    for part in parts:
        recording = getattr(part, "recording", None)
        for source in recording.sources if recording is not None else ():
            if source.type == "file":
                yield Path(source.source)


def _supervision_inputs(cut: Cut) -> Iterator[CutAudio]:
    """One input per supervision of ``cut``, over the supervision's span and channels."""
    from lhotse.cut import MultiCut

    bare = cut.drop_supervisions()
    for supervision in cut.supervisions:
        key = supervision_key(cut.id, supervision.id)
        start = max(0.0, supervision.start)
        end = min(cut.duration, supervision.end)
        if end <= start:
            problem = f"supervision [{supervision.start}, {supervision.end}] s lies outside the cut"
            yield CutAudio(bare, key, problem=problem)
            continue
        span = bare.truncate(offset=start, duration=end - start, preserve_id=True)
        channels = supervision.channel
        if isinstance(span, MultiCut) and channels is not None and channels != span.channel:
            span = span.with_channels(channels)
        yield CutAudio(span, key)


def _inputs_of(cut: Any, per_supervision: bool) -> Iterator[CutAudio]:
    """The inputs of one cut (or recording): the whole cut, or one per supervision."""
    from lhotse import Recording
    from lhotse.cut import MixedCut

    if isinstance(cut, Recording):
        cut = cut.to_cut()
    if not per_supervision:
        yield CutAudio(cut.drop_supervisions(), cut.id)
    elif isinstance(cut, MixedCut):
        problem = "per-supervision transcription does not support MixedCut"
        yield CutAudio(cut, cut.id, problem=problem)
    else:
        yield from _supervision_inputs(cut)


def _count(cut: Any, per_supervision: bool) -> int:
    """How many inputs :func:`_inputs_of` gives for ``cut`` (without making them)."""
    from lhotse.cut import MixedCut

    if not per_supervision or isinstance(cut, MixedCut):
        return 1
    return len(cut.supervisions)


class _SizedInputs:
    """The inputs of an eager CutSet: iterable again, with a length (for progress)."""

    def __init__(self, cuts: Any, per_supervision: bool) -> None:
        self._cuts = cuts
        self._per_supervision = per_supervision

    def __len__(self) -> int:
        return sum(_count(cut, self._per_supervision) for cut in self._cuts)

    def __iter__(self) -> Iterator[CutAudio]:
        for cut in self._cuts:
            yield from _inputs_of(cut, self._per_supervision)


class _MappedInputs:
    """Any iterable with its lhotse items turned into inputs (length kept when known)."""

    def __init__(self, items: Iterable[Any], per_supervision: bool) -> None:
        self._items = items
        self._per_supervision = per_supervision

    def __len__(self) -> int:
        return len(self._items)  # type: ignore[arg-type]  # only used when Sized

    def __iter__(self) -> Iterator[Any]:
        for item in self._items:
            if not is_lhotse(item):
                yield item
            elif is_set(item):
                kind = type(item).__name__
                reason = "a set is many inputs: pass it as the inputs of transcribe_batch"
                raise InvalidOptionError("input", kind, reason)
            else:
                yield from _inputs_of(item, self._per_supervision)


def as_inputs(inputs: Iterable[Any], *, per_supervision: bool = False) -> Iterable[Any]:
    """Transcriber inputs for lhotse data; anything else is passed through unchanged.

    A ``CutSet`` or ``RecordingSet`` gives one :class:`CutAudio` per cut (a recording
    is a cut with its id), or with ``per_supervision`` one per supervision (cuts
    without supervisions give none; a MixedCut gives a per-cut error). Other iterables
    keep their items, with any Cut or Recording among them converted the same way.
    Eager sets keep a length; lazy ones are streamed.
    """
    if "lhotse" not in sys.modules:
        return inputs
    if is_set(inputs):
        cuts = as_cutset(inputs)
        if cuts.is_lazy:
            return (i for cut in iter_cuts(cuts) for i in _inputs_of(cut, per_supervision))
        return _SizedInputs(cuts, per_supervision)
    if isinstance(inputs, _SizedInputs | _MappedInputs):
        return inputs
    mapped = _MappedInputs(inputs, per_supervision)
    sized = hasattr(inputs, "__len__") and not per_supervision  # one input per item
    return mapped if sized else iter(mapped)


def load_manifest(path: str | os.PathLike[str]) -> CutSet:
    """Open a lhotse CutSet or RecordingSet manifest as a CutSet.

    ``.jsonl`` and ``.jsonl.gz`` are opened lazily (read as the job goes); other
    formats lhotse reads (``.json``, ``.yaml``...) are loaded whole. Raises
    BackendUnavailableError without lhotse, InputNotFoundError for a missing file and
    InputError for a file that is not a CutSet or RecordingSet manifest.
    """
    lhotse = require_lhotse()
    file = Path(path)
    if not file.is_file():
        raise InputNotFoundError(file, "no such lhotse manifest")
    lazy = file.name.endswith(MANIFEST_SUFFIXES)
    try:
        manifest = lhotse.load_manifest_lazy(file) if lazy else lhotse.load_manifest(file)
    except Exception as exc:  # lhotse raises ValueError, KeyError, JSONDecodeError, ...
        raise InputError(file, f"not a lhotse manifest ({type(exc).__name__}: {exc})") from exc
    if not isinstance(manifest, lhotse.CutSet | lhotse.RecordingSet):
        kind = type(manifest).__name__
        raise InputError(file, f"is a {kind} manifest; expected a CutSet or RecordingSet")
    return as_cutset(manifest)
