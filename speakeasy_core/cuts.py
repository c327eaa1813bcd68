"""lhotse in and out: transcribe a CutSet cut by cut, write the text back as supervisions.

In: :func:`as_inputs` turns a lhotse ``CutSet`` or ``RecordingSet`` (or single cuts and
recordings) into :class:`CutAudio` inputs for the :class:`~speakeasy_core.Transcriber`,
which calls it on whatever it is given, so ``transcriber.transcribe_batch(cuts)`` works.
Each cut is read over its own offset, duration and channel(s) by lhotse's own
``cut.load_audio()`` (MixedCuts are mixed by lhotse), lazily: a cut's audio is loaded
when the engine prepares it, one cut at a time, and results are keyed by cut id
(``result.source == cut.id``). With ``per_supervision=True`` every supervision of a cut
is transcribed on its own, keyed ``"<cut id>/<supervision id>"``. A cut whose audio
cannot be loaded is a per-cut error (InputNotFoundError or AudioDecodeError naming the
cut and its file), never a crash. :func:`load_manifest` opens a manifest file lazily.

Out: :func:`to_cutset` returns the cuts with new supervisions (text, language; backend,
model and task in ``custom``; word and segment times as lhotse ``AlignmentItem`` s);
:class:`CutSetWriter` writes a job's manifest atomically, resumable from a journal.

lhotse is imported only when it is already loaded or a manifest path is opened, so
this module costs nothing without the ``nemo`` extra.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .batch import AudioArray
from .errors import (
    AudioDecodeError,
    BackendUnavailableError,
    InputError,
    InputNotFoundError,
    InvalidOptionError,
    SpeakEasyError,
)
from .tempfiles import DEFAULT_POLICY, RetryPolicy, atomic_write_bytes
from .types import TranscriptionResult

if TYPE_CHECKING:
    from lhotse import CutSet, SupervisionSegment
    from lhotse.cut import Cut

__all__ = [
    "MANIFEST_SUFFIXES",
    "CutAudio",
    "CutSetReport",
    "CutSetWriter",
    "as_inputs",
    "is_lhotse",
    "load_manifest",
    "supervision_key",
    "to_cutset",
]

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".jsonl", ".jsonl.gz")
"""The manifest files :func:`load_manifest` opens lazily and :class:`CutSetWriter` writes."""

_SUPERVISION_SUFFIX = "-speakeasy"
_INSTALL_HINT = (
    "lhotse is not installed: pip install 'speakeasy_core[nemo]' (or pip install lhotse)"
)


def supervision_key(cut_id: str, supervision_id: str) -> str:
    """The key a supervision is transcribed and reported under: ``"<cut>/<supervision>"``."""
    return f"{cut_id}/{supervision_id}"


def _lhotse() -> Any:
    """The lhotse module; BackendUnavailableError if it is not installed."""
    try:
        import lhotse
    except ImportError as exc:
        raise BackendUnavailableError(_INSTALL_HINT) from exc
    return lhotse


def is_lhotse(value: object) -> bool:
    """True for a lhotse CutSet, RecordingSet, Cut or Recording (never imports lhotse)."""
    if "lhotse" not in sys.modules:
        return False  # lhotse objects cannot exist before lhotse is imported
    from lhotse import CutSet, Recording, RecordingSet
    from lhotse.cut import Cut

    return isinstance(value, CutSet | RecordingSet | Cut | Recording)


def _is_set(value: object) -> bool:
    """A CutSet or RecordingSet (lhotse already imported)."""
    from lhotse import CutSet, RecordingSet

    return isinstance(value, CutSet | RecordingSet)


# ----------------------------------------------------------------------------- in


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


def _cuts(source: Any) -> Any:
    """A CutSet for a CutSet or RecordingSet; each recording becomes a cut with its id."""
    from lhotse import CutSet, Recording, RecordingSet
    from lhotse.lazy import LazyMapper

    if isinstance(source, RecordingSet):
        if source.is_lazy:
            return CutSet(LazyMapper(source.data, fn=Recording.to_cut))
        return CutSet.from_cuts(recording.to_cut() for recording in source)
    return source


def _iter_cuts(cuts: Any) -> Iterator[Cut]:
    """Iterate a (possibly lazy) CutSet; a manifest that breaks off raises InputError."""
    iterator = iter(cuts)
    while True:
        try:
            cut = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # a corrupt line or truncated .gz of a lazy manifest
            raise InputError("lhotse manifest", f"cannot read the next cut: {exc}") from exc
        yield cut


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
            elif _is_set(item):
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
    if _is_set(inputs):
        cuts = _cuts(inputs)
        if cuts.is_lazy:
            return (i for cut in _iter_cuts(cuts) for i in _inputs_of(cut, per_supervision))
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
    lhotse = _lhotse()
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
    return _cuts(manifest)


# ---------------------------------------------------------------------------- out


def _times(items: Iterable[Any], base: float) -> list[Any]:
    """Words or segments as lhotse AlignmentItems, ``base`` seconds later."""
    from lhotse.supervision import AlignmentItem

    return [
        AlignmentItem(
            symbol=item.text,
            start=round(base + item.start, 8),
            duration=round(max(0.0, item.end - item.start), 8),
        )
        for item in items
    ]


def _labelled(
    supervision: SupervisionSegment, result: TranscriptionResult, base: float
) -> SupervisionSegment:
    """``supervision`` with ``result``'s text, language, origin and times.

    ``base`` is where the result's time 0 lies on the recording's time line, which is
    what lhotse's AlignmentItem times refer to. The old text is kept in
    ``custom["original_text"]``; stale word/segment alignments are dropped.
    """
    from lhotse.utils import fastcopy

    custom = dict(supervision.custom or {})
    if supervision.text:
        custom.setdefault("original_text", supervision.text)
    custom.update(backend=result.backend, model=result.model, task=result.task)
    alignment = {
        kind: items
        for kind, items in (supervision.alignment or {}).items()
        if kind not in ("word", "segment")
    }
    if result.words:
        alignment["word"] = _times(result.words, base)
    if result.segments:
        alignment["segment"] = _times(result.segments, base)
    return fastcopy(
        supervision,
        text=result.text,
        language=result.language or supervision.language,
        custom=custom,
        alignment=alignment or None,
    )


Lookup = Callable[[str], TranscriptionResult | None]


def _succeeded(key: str, lookup: Lookup) -> TranscriptionResult | None:
    result = lookup(key)
    return result if result is not None and result.ok else None


def _label_whole(cut: Any, lookup: Lookup) -> Any | None:
    """``cut`` with a new supervision over all of it; None without a successful result."""
    from lhotse import SupervisionSegment
    from lhotse.cut import MixedCut
    from lhotse.utils import fastcopy

    result = _succeeded(cut.id, lookup)
    if result is None:
        return None
    if isinstance(cut, MixedCut):  # a MixedCut's supervisions live in its tracks
        found = next(((i, t) for i, t in enumerate(cut.tracks) if t.cut.has_recording), None)
        if found is None:
            return None
        index, track = found
        holder, shift = track.cut, track.offset
    else:
        holder, shift = cut, 0.0
    new = SupervisionSegment(
        id=f"{cut.id}{_SUPERVISION_SUFFIX}",
        recording_id=holder.recording_id,
        start=0.0 - shift,
        duration=cut.duration,
        channel=holder.channel,
    )
    labelled = [s for s in holder.supervisions if s.id != new.id]
    labelled.append(_labelled(new, result, holder.start - shift))
    holder = fastcopy(holder, supervisions=labelled)
    if isinstance(cut, MixedCut):
        tracks = list(cut.tracks)
        tracks[index] = fastcopy(track, cut=holder)
        return fastcopy(cut, tracks=tracks)
    return holder


def _label_supervisions(cut: Any, lookup: Lookup) -> Any | None:
    """``cut`` with every supervision relabelled; None unless all of them succeeded."""
    from lhotse.cut import MixedCut
    from lhotse.utils import fastcopy

    if isinstance(cut, MixedCut):
        return None  # its input was a per-cut error

    labelled = []
    for supervision in cut.supervisions:
        result = _succeeded(supervision_key(cut.id, supervision.id), lookup)
        if result is None:
            return None
        base = cut.start + max(0.0, supervision.start)
        labelled.append(_labelled(supervision, result, base))
    return fastcopy(cut, supervisions=labelled)


def _label(cut: Any, lookup: Lookup, per_supervision: bool) -> Any | None:
    from lhotse import Recording

    if isinstance(cut, Recording):
        cut = cut.to_cut()
    return _label_supervisions(cut, lookup) if per_supervision else _label_whole(cut, lookup)


def _by_source(
    results: Iterable[TranscriptionResult] | Mapping[str, TranscriptionResult],
) -> dict[str, TranscriptionResult]:
    """Results by key; a success is never replaced by a later failure."""
    found: dict[str, TranscriptionResult] = {}
    for result in results.values() if isinstance(results, Mapping) else results:
        if result.ok or result.source not in found or not found[result.source].ok:
            found[result.source] = result
    return found


def to_cutset(
    cuts: Iterable[Any],
    results: Iterable[TranscriptionResult] | Mapping[str, TranscriptionResult],
    *,
    per_supervision: bool = False,
) -> CutSet:
    """``cuts`` labelled with ``results`` (matched by ``result.source``), as a CutSet.

    Each cut gets a new supervision ``"<cut id>-speakeasy"`` over the whole cut (kept
    beside its existing ones; in a MixedCut it is stored in the first track), or with
    ``per_supervision`` each of its supervisions gets the new text. A supervision
    carries ``text``, ``language``, ``custom`` = ``{backend, model, task}`` (and the
    text it replaced as ``original_text``) and, when the result has timestamps,
    ``alignment["word"]`` / ``alignment["segment"]`` as AlignmentItems on the
    recording's time line (lhotse's convention). Cuts without a successful result for
    every key are left out (and logged); the results hold their errors.
    """
    _lhotse()
    found = _by_source(results)
    labelled = []
    for cut in _iter_cuts(_cuts(cuts) if is_lhotse(cuts) else cuts):
        new = _label(cut, found.get, per_supervision)
        if new is None:
            logger.warning("cut %s left out: not every part of it was transcribed", cut.id)
        else:
            labelled.append(new)
    from lhotse import CutSet

    return CutSet.from_cuts(labelled)


@dataclass(frozen=True)
class CutSetReport:
    """What :class:`CutSetWriter` wrote: the file, how many cuts, and the ids left out."""

    path: Path
    written: int
    left_out: tuple[str, ...]


class CutSetWriter:
    """A job's lhotse manifest: results recorded as they finish, written whole at the end.

    ``path`` ends in ``.jsonl`` or ``.jsonl.gz``; ``cuts`` is the job's CutSet (lazy
    ones are read again at the end). :meth:`record` each result as it completes;
    :meth:`close` (the end of a ``with`` block, also on an exception) writes every cut
    with all its results, labelled as by :func:`to_cutset`, in the order of ``cuts``,
    atomically (readers see the old manifest or the new one). To resume a job, record
    the results of the earlier runs (e.g. from its journal) before closing: the
    manifest is rewritten complete. Results are held in memory until then.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        cuts: Any,
        *,
        per_supervision: bool = False,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.path = Path(path)
        if not self.path.name.endswith(MANIFEST_SUFFIXES):
            raise InvalidOptionError("path", os.fspath(path), "must end in .jsonl or .jsonl.gz")
        _lhotse()
        self._cuts = _cuts(cuts)
        self._per_supervision = per_supervision
        self._policy = policy
        self._results: dict[str, TranscriptionResult] = {}
        self.report: CutSetReport | None = None

    def record(self, result: TranscriptionResult) -> None:
        """Keep ``result`` for the manifest; a success is never replaced by a failure."""
        known = self._results.get(result.source)
        if result.ok or known is None or not known.ok:
            self._results[result.source] = result

    def close(self) -> CutSetReport:
        """Write the manifest now (again, if called twice); returns what was written."""
        buffer = io.BytesIO()
        compress = self.path.name.endswith(".gz")
        written, left_out = 0, []
        with (
            gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) if compress else nullcontext(buffer)
        ) as stream:
            for cut in _iter_cuts(self._cuts):
                new = _label(cut, self._results.get, self._per_supervision)
                if new is None:
                    left_out.append(cut.id)
                    continue
                # The line format of lhotse's SequentialJsonlWriter.
                line = json.dumps(new.to_dict(), ensure_ascii=False) + "\n"
                stream.write(line.encode("utf-8"))
                written += 1
        atomic_write_bytes(self.path, buffer.getvalue(), policy=self._policy)
        if left_out:
            logger.warning("%s: left out %d cut(s) not fully transcribed", self.path, len(left_out))
        self.report = CutSetReport(self.path, written, tuple(left_out))
        return self.report

    def __enter__(self) -> CutSetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except SpeakEasyError:
            if exc is None:
                raise
            logger.exception("could not write %s while stopping on an error", self.path)
