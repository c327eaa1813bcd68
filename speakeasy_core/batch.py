"""The batch engine: stream inputs in windows, batch by duration, isolate failures.

Data flow for one window of inputs::

    prepare   probe each input; convert to 16 kHz mono wav in the workspace when
              needed; cut long audio into pieces (errors here are per input)
    plan      sort the window's pieces by duration, cut into batches
    run       one backend call per batch; a failing call is split in halves until
              the failing piece is found, the rest still transcribed
    merge     pieces back into one output per input, yielded as soon as the input
              is complete (completion order; each outcome carries its input index)

Only one window of inputs is in flight at a time, so memory does not grow with the
job; temporary wavs of a batch are deleted as soon as the batch is done.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar, Union

import numpy as np
import numpy.typing as npt

from . import audio
from .backends.base import Backend, BackendOutput, PreparedAudio, describe_batch
from .chunking import merge_outputs, split_spans
from .errors import BackendError, EmptyAudioError, SpeakEasyError, TranscriptionError
from .manifest import ManifestEntry
from .tempfiles import TempWorkspace
from .types import TranscribeOptions

__all__ = [
    "AudioArray",
    "AudioInput",
    "BatchEngine",
    "ItemOutcome",
    "ProgressCallback",
    "plan_batches",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class AudioArray:
    """In-memory audio: samples shaped ``(frames,)`` or ``(frames, channels)``."""

    samples: npt.NDArray[np.generic]
    sample_rate: int
    name: str | None = None


AudioInput = Union[str, "os.PathLike[str]", ManifestEntry, AudioArray]
"""What the Transcriber accepts: a path, a manifest entry, or an :class:`AudioArray`."""


@dataclass(frozen=True)
class ItemOutcome:
    """What the engine yields per input: the backend's output, or the error for it.

    ``index`` is the input's position in the whole input stream.
    """

    index: int
    label: str
    duration: float
    output: BackendOutput | None = None
    error: SpeakEasyError | None = None


ProgressCallback = Callable[[int, int | None], None]
"""Called as ``progress(done, total)``; ``total`` is None when the input count is unknown."""


def label_of(item: AudioInput, index: int) -> str:
    """The name an input is reported under: its path, or ``<array N>``."""
    if isinstance(item, AudioArray):
        return item.name or f"<array {index}>"
    if isinstance(item, ManifestEntry):
        return item.audio_filepath
    return os.fspath(item)


@dataclass
class _Piece:
    """A piece of one input ready for the model, and the temp file it lives in, if any."""

    owner: int
    offset: float
    audio: PreparedAudio
    temporary: bool


@dataclass
class _Pending:
    """An input of the current window: its pieces' outputs as they arrive."""

    index: int
    label: str
    duration: float
    pieces: int
    outputs: dict[float, tuple[float, BackendOutput]] = field(default_factory=dict)
    error: SpeakEasyError | None = None

    @property
    def finished(self) -> bool:
        return self.error is not None or len(self.outputs) == self.pieces

    def outcome(self) -> ItemOutcome:
        if self.error is not None:
            return ItemOutcome(self.index, self.label, self.duration, error=self.error)
        ordered = [(offset, *rest) for offset, rest in sorted(self.outputs.items())]
        return ItemOutcome(self.index, self.label, self.duration, output=merge_outputs(ordered))


def plan_batches(items: Sequence[T], durations: Sequence[float], batch_size: int) -> list[list[T]]:
    """Sort ``items`` by duration, longest first, and cut them into batches.

    Similar lengths share a batch, so little of each batch is padding.
    """
    order = sorted(range(len(items)), key=lambda i: durations[i], reverse=True)
    return [[items[i] for i in order[k : k + batch_size]] for k in range(0, len(order), batch_size)]


def _is_device_error(exc: BaseException | None) -> bool:
    """A CUDA / cuDNN failure, here or anywhere in the chain of causes."""
    while exc is not None:
        text = f"{type(exc).__name__}: {exc}"
        if "CUDA" in text or "cuDNN" in text or "OutOfMemoryError" in text:
            return True
        exc = exc.__cause__
    return False


class BatchEngine:
    """Runs inputs through one backend in batches; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        workspace: TempWorkspace,
        *,
        batch_size: int,
        window: int,
        max_duration: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.backend = backend
        self.workspace = workspace
        self.batch_size = batch_size
        self.window = window
        self.max_duration = max_duration
        self.progress = progress
        self._done = 0

    def run(
        self,
        inputs: Iterable[AudioInput],
        options: TranscribeOptions,
        total: int | None = None,
    ) -> Iterator[ItemOutcome]:
        """Yield one outcome for every input as soon as it is complete."""
        iterator = iter(inputs)
        start = 0
        while window := list(islice(iterator, self.window)):
            yield from self._run_window(window, start, options, total)
            start += len(window)

    def _run_window(
        self,
        window: list[AudioInput],
        start: int,
        options: TranscribeOptions,
        total: int | None,
    ) -> Iterator[ItemOutcome]:
        pending: dict[int, _Pending] = {}
        pieces: list[_Piece] = []
        for position, item in enumerate(window):
            label = label_of(item, start + position)
            try:
                duration, item_pieces = self._prepare(item, label, position)
            except SpeakEasyError as exc:
                logger.warning("skipping %s: %s", label, exc)
                yield self._finish(_Pending(start + position, label, 0.0, 0, error=exc), total)
                continue
            pending[position] = _Pending(start + position, label, duration, len(item_pieces))
            pieces.extend(item_pieces)
        durations = [piece.audio.duration for piece in pieces]
        for batch in plan_batches(pieces, durations, self.batch_size):
            try:
                finished = self._run_batch(batch, options, pending)
            finally:
                for piece in batch:
                    if piece.temporary:
                        self.workspace.delete(piece.audio.path)
            for entry in finished:
                yield self._finish(entry, total)

    def _prepare(self, item: AudioInput, label: str, owner: int) -> tuple[float, list[_Piece]]:
        """Probe and convert one input; returns its duration and its pieces."""
        max_duration = self.max_duration
        if isinstance(item, AudioArray):
            samples = audio.validate_array(item.samples, item.sample_rate, label)
            samples = audio.to_mono_16k(samples, item.sample_rate, label=label)
        else:
            path = Path(
                item.audio_filepath if isinstance(item, ManifestEntry) else os.fspath(item)
            ).absolute()
            info = audio.probe(path)
            fits = max_duration is None or info.duration <= max_duration
            if fits and audio.is_model_ready(info):
                prepared = PreparedAudio(label, path, info.duration)
                return info.duration, [_Piece(owner, 0.0, prepared, temporary=False)]
            samples = audio.load_audio(path)
        if len(samples) == 0:
            raise EmptyAudioError(label, "no samples left after conversion to 16 kHz")
        spans = (
            [(0, len(samples))]
            if max_duration is None
            else split_spans(samples, audio.TARGET_SAMPLE_RATE, max_duration)
        )
        pieces = []
        for lo, hi in spans:
            with self.workspace.new_file(".wav") as (wav_path, handle):
                audio.write_wav(handle, samples[lo:hi])
            offset = lo / audio.TARGET_SAMPLE_RATE
            prepared = PreparedAudio(label, wav_path, (hi - lo) / audio.TARGET_SAMPLE_RATE)
            pieces.append(_Piece(owner, offset, prepared, temporary=True))
        return len(samples) / audio.TARGET_SAMPLE_RATE, pieces

    def _run_batch(
        self, batch: list[_Piece], options: TranscribeOptions, pending: dict[int, _Pending]
    ) -> list[_Pending]:
        """Run one batch; returns the inputs it completed."""
        outcomes = self._isolate([piece.audio for piece in batch], options)
        finished: list[_Pending] = []
        for piece, outcome in zip(batch, outcomes, strict=True):
            entry = pending[piece.owner]
            if entry.finished:
                continue
            if isinstance(outcome, SpeakEasyError):
                entry.error = outcome
            else:
                entry.outputs[piece.offset] = (piece.audio.duration, outcome)
            if entry.finished:
                finished.append(entry)
        return finished

    def _isolate(
        self, batch: list[PreparedAudio], options: TranscribeOptions
    ) -> list[BackendOutput | SpeakEasyError]:
        """Transcribe ``batch``; on failure split it until the failing items are found."""
        try:
            return list(self._call(batch, options))
        except SpeakEasyError as exc:
            if len(batch) == 1:
                logger.warning("transcription failed for %s: %s", batch[0].key, exc)
                return [exc]
            logger.info("batch of %d failed (%s); splitting to isolate", len(batch), exc)
        middle = len(batch) // 2
        return self._isolate(batch[:middle], options) + self._isolate(batch[middle:], options)

    def _call(self, batch: list[PreparedAudio], options: TranscribeOptions) -> list[BackendOutput]:
        """One backend call; a device (CUDA) error reloads the model and retries once."""
        try:
            return self._checked_call(batch, options)
        except SpeakEasyError as exc:
            if not _is_device_error(exc):
                raise
            logger.warning("device error (%s); reloading %s", exc, self.backend.model_name)
        self.backend.unload()
        self.backend.load()
        return self._checked_call(batch, options)

    def _checked_call(
        self, batch: list[PreparedAudio], options: TranscribeOptions
    ) -> list[BackendOutput]:
        """One backend call; any failure comes out as a SpeakEasyError."""
        try:
            outputs = self.backend.transcribe_batch(batch, options, self.workspace)
        except SpeakEasyError:
            raise
        except Exception as exc:
            raise self._wrap(batch, exc) from exc
        if len(outputs) != len(batch):
            raise BackendError(
                f"backend {self.backend.name!r} returned {len(outputs)} outputs "
                f"for {len(batch)} inputs"
            )
        return outputs

    @staticmethod
    def _wrap(batch: list[PreparedAudio], exc: Exception) -> TranscriptionError:
        return TranscriptionError(f"{describe_batch(batch)}: {type(exc).__name__}: {exc}")

    def _finish(self, entry: _Pending, total: int | None) -> ItemOutcome:
        self._done += 1
        if self.progress is not None:
            self.progress(self._done, total)
        return entry.outcome()
