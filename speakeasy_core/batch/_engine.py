"""The engine: run prepared batches through the backend, isolate failures, merge pieces.

The model runs in the calling thread; preparing the next batches (decode, resample,
cut, collate: :mod:`._plan`) runs meanwhile in prefetch workers (:mod:`._prefetch`).
A failing backend call is split in halves until the failing piece is found, the rest
still transcribed. Pieces are merged back into one output per input, yielded as soon
as the input is complete (completion order; each outcome carries its input index).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Backend, BackendOutput, PreparedAudio, describe_batch, is_collating
from ..chunking import merge_outputs
from ..errors import BackendError, SpeakEasyError, TranscriptionError
from ..progress import ProgressCallback, ProgressTracker, reporting_positions
from ..tempfiles import TempWorkspace
from ..types import TranscribeOptions
from ._inputs import AudioInput, ItemOutcome, Probed
from ._plan import Piece, Planner, Ready
from ._prefetch import Prefetcher

__all__ = ["BatchEngine"]

logger = logging.getLogger(__name__)


@dataclass
class _Pending:
    """An input in flight: its pieces' outputs as they arrive.

    ``pieces`` is None until preparing it told how many pieces it has.
    """

    index: int
    label: str
    duration: float
    pieces: int | None = None
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


def _is_device_error(exc: BaseException | None) -> bool:
    """A CUDA / cuDNN failure, here or anywhere in the chain of causes."""
    while exc is not None:
        text = f"{type(exc).__name__}: {exc}"
        if "CUDA" in text or "cuDNN" in text or "OutOfMemoryError" in text:
            return True
        exc = exc.__cause__
    return False


def _positions(live: list[Piece], tracker: ProgressTracker) -> Callable[[object, float], None]:
    """Where a backend's :func:`~speakeasy_core.progress.report_position` on one of
    ``live``'s pieces goes: its input's position, in seconds of the whole input."""
    pieces = {id(piece.audio): piece for piece in live}

    def moved(item: object, seconds: float) -> None:
        piece = pieces.get(id(item))
        if piece is not None:
            seconds = min(max(seconds, 0.0), piece.audio.duration)
            tracker.advance(piece.owner, piece.offset + seconds)

    return moved


class BatchEngine:
    """Runs inputs through one backend in batches; see the module docstring.

    A batch holds at most ``batch_size`` items and ``batch_duration`` seconds of audio
    padded to its longest item (None: no bound). ``num_workers`` threads prepare batches
    ahead (0: in the calling thread, no prefetch); at most ``prefetch`` batches (default
    ``num_workers + 1``) are being prepared or wait ready at any time. Files are
    decoded from their audio stream ``audio_stream`` (None: the first). ``progress``
    gets a :class:`~speakeasy_core.progress.Progress` as inputs are probed, pieces
    transcribed and inputs finished.
    """

    def __init__(
        self,
        backend: Backend,
        workspace: TempWorkspace,
        *,
        batch_size: int,
        batch_duration: float | None = None,
        window: int,
        max_duration: float | None = None,
        progress: ProgressCallback | None = None,
        num_workers: int = 0,
        prefetch: int | None = None,
        audio_stream: int | None = None,
    ) -> None:
        self.backend = backend
        self.workspace = workspace
        self.batch_size = batch_size
        self.batch_duration = batch_duration
        self.window = window
        self.max_duration = max_duration
        self.progress = progress
        self.num_workers = num_workers
        self.prefetch = prefetch or num_workers + 1
        self.audio_stream = audio_stream

    def run(
        self,
        inputs: Iterable[AudioInput],
        options: TranscribeOptions,
        total: int | None = None,
    ) -> Iterator[ItemOutcome]:
        """Yield one outcome for every input as soon as it is complete."""
        pending: dict[int, _Pending] = {}
        finished: list[_Pending] = []
        tracker = ProgressTracker(self.progress, total)

        def on_input(probed: Probed) -> None:
            pending[probed.index] = _Pending(probed.index, probed.label, probed.duration)
            tracker.probed(probed.index, probed.duration)

        def on_error(index: int, label: str, exc: SpeakEasyError) -> None:
            finished.append(_Pending(index, label, 0.0, error=exc))

        with Prefetcher(self.num_workers, self.prefetch) as prefetcher:
            planner = Planner(
                self.backend,
                options,
                prefetcher,
                batch_size=self.batch_size,
                batch_duration=self.batch_duration,
                window=self.window,
                max_duration=self.max_duration,
                audio_stream=self.audio_stream,
                on_input=on_input,
                on_error=on_error,
            )
            try:
                for ready in prefetcher.results(planner.tasks(tracker.counting(inputs))):
                    yield from self._flush(finished, tracker)
                    self._apply(ready, pending, options, tracker)
                    finished += [entry for entry in pending.values() if entry.finished]
                    for entry in finished:
                        pending.pop(entry.index, None)
                    del ready  # the batch's samples go before the next one is taken
                    yield from self._flush(finished, tracker)
                yield from self._flush(finished, tracker)
            finally:
                prefetcher.close()
                planner.close()
                tracker.close()

    def _flush(self, finished: list[_Pending], tracker: ProgressTracker) -> Iterator[ItemOutcome]:
        while finished:
            yield self._finish(finished.pop(0), tracker)

    def _apply(
        self,
        ready: Ready,
        pending: dict[int, _Pending],
        options: TranscribeOptions,
        tracker: ProgressTracker,
    ) -> None:
        """Record what preparing ``ready`` learnt, then run its batch."""
        # An input already reported (a stream that failed) may still have pieces here.
        for owner, exc in ready.failed:
            if owner in pending:
                pending[owner].error = exc
        for owner, count in ready.counted.items():
            if owner in pending:
                pending[owner].pieces = count
        live = [
            piece
            for piece in ready.pieces
            if piece.owner in pending and not pending[piece.owner].finished
        ]
        if not live:
            return
        collated = ready.model_input() if len(live) == len(ready.pieces) else None
        with reporting_positions(_positions(live, tracker)):
            outcomes = self._isolate([piece.audio for piece in live], options, collated)
        for piece, outcome in zip(live, outcomes, strict=True):
            self._record(pending[piece.owner], piece, outcome, tracker)

    @staticmethod
    def _record(
        entry: _Pending,
        piece: Piece,
        outcome: BackendOutput | SpeakEasyError,
        tracker: ProgressTracker,
    ) -> None:
        if entry.error is not None:
            return
        if isinstance(outcome, SpeakEasyError):
            entry.error = outcome
        else:
            entry.outputs[piece.offset] = (piece.audio.duration, outcome)
            tracker.advance(entry.index, piece.offset + piece.audio.duration)

    def _isolate(
        self, batch: list[PreparedAudio], options: TranscribeOptions, collated: Any = None
    ) -> list[BackendOutput | SpeakEasyError]:
        """Transcribe ``batch``; on failure split it until the failing items are found."""
        try:
            return list(self._call(batch, options, collated))
        except SpeakEasyError as exc:
            if len(batch) == 1:
                logger.warning("transcription failed for %s: %s", batch[0].key, exc)
                return [exc]
            logger.info("batch of %d failed (%s); splitting to isolate", len(batch), exc)
        middle = len(batch) // 2
        return self._isolate(batch[:middle], options) + self._isolate(batch[middle:], options)

    def _call(
        self, batch: list[PreparedAudio], options: TranscribeOptions, collated: Any
    ) -> list[BackendOutput]:
        """One backend call; a device (CUDA) error reloads the model and retries once."""
        try:
            return self._checked_call(batch, options, collated)
        except SpeakEasyError as exc:
            if not _is_device_error(exc):
                raise
            logger.warning("device error (%s); reloading %s", exc, self.backend.model_name)
        self.backend.unload()
        self.backend.load()
        return self._checked_call(batch, options, None)

    def _checked_call(
        self, batch: list[PreparedAudio], options: TranscribeOptions, collated: Any
    ) -> list[BackendOutput]:
        """One backend call (on ``collated`` when given); any failure is a SpeakEasyError."""
        backend = self.backend
        try:
            if collated is not None and is_collating(backend):
                outputs = backend.transcribe_collated(batch, collated, options)  # type: ignore[attr-defined]
            else:
                outputs = backend.transcribe_batch(batch, options, self.workspace)
        except SpeakEasyError:
            raise
        except Exception as exc:
            raise TranscriptionError(
                f"{describe_batch(batch)}: {type(exc).__name__}: {exc}"
            ) from exc
        if len(outputs) != len(batch):
            raise BackendError(
                f"backend {backend.name!r} returned {len(outputs)} outputs for {len(batch)} inputs"
            )
        return list(outputs)

    @staticmethod
    def _finish(entry: _Pending, tracker: ProgressTracker) -> ItemOutcome:
        tracker.finished(entry.index, ok=entry.error is None)
        return entry.outcome()
