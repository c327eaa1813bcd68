"""Plan: probe a window of inputs, sort them into batches, and the tasks that prepare them.

A task decodes (through :func:`speakeasy_core.audio.iter_pieces`) and collates one
batch; it runs in a prefetch worker. Inputs no longer than the backend's
``max_duration`` are sorted by probed duration, longest first, and cut into batches of
similar lengths. A longer input becomes a *stream*: its pieces are decoded lazily and
each task takes the next few of them, so a recording of hours flows through in bounded
memory.

A batch holds at most ``batch_size`` items and, when ``batch_duration`` is set, at most
that many seconds of audio counted as the model sees them: padded to the longest item
(at least one item, however long). Memory for the model's activations grows with that
padded total, not with the count.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from typing import Any, TypeVar

from ..audio import AudioPiece
from ..backends.base import Backend, PreparedAudio, is_collating, is_featurizing
from ..errors import SpeakEasyError
from ..types import TranscribeOptions
from ._inputs import AudioInput, Probed, label_of, probe_input
from ._prefetch import Cancelled, Deferred, Prefetcher, wait

__all__ = ["Piece", "Planner", "Ready", "batch_count", "plan_batches"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


def batch_count(longest: float, batch_size: int, batch_duration: float | None) -> int:
    """How many items of at most ``longest`` seconds one batch takes (at least 1)."""
    if batch_duration is None or longest * batch_size <= batch_duration:
        return batch_size
    return max(1, int(batch_duration // longest))


def plan_batches(
    items: Sequence[T],
    durations: Sequence[float],
    batch_size: int,
    batch_duration: float | None = None,
) -> list[list[T]]:
    """Sort ``items`` by duration, longest first, and cut them into batches.

    Similar lengths share a batch, so little of each batch is padding. Each batch's
    first item is its longest, so it holds at most ``batch_size`` items and at most
    ``batch_duration`` seconds padded (see :func:`batch_count`).
    """
    order = sorted(range(len(items)), key=lambda i: durations[i], reverse=True)
    batches: list[list[T]] = []
    start = 0
    while start < len(order):
        size = batch_count(durations[order[start]], batch_size, batch_duration)
        batches.append([items[i] for i in order[start : start + size]])
        start += size
    return batches


@dataclass(frozen=True)
class Piece:
    """A piece of input ``owner`` (its index), ``offset`` seconds into it."""

    owner: int
    offset: float
    audio: PreparedAudio


@dataclass
class Ready:
    """A prepared batch: its pieces, the backend's collated input (or None), and what
    preparing it learnt: inputs that failed, and inputs whose piece count is now known.

    ``featurized`` is the backend's featurize step on ``collated``, when it has one.
    """

    pieces: list[Piece] = field(default_factory=list)
    collated: Any = None
    featurized: Deferred[Any] | None = None
    failed: list[tuple[int, SpeakEasyError]] = field(default_factory=list)
    counted: dict[int, int] = field(default_factory=dict)

    def model_input(self) -> Any:
        """The collated input, featurized (here and now, if no worker got to it yet)."""
        return self.collated if self.featurized is None else self.featurized.result()


@dataclass
class _Stream:
    """A long input whose pieces successive tasks take, one task at a time."""

    input: Probed
    pieces: Iterator[AudioPiece]
    lock: threading.Lock = field(default_factory=threading.Lock)
    count: int = 0
    done: bool = False


class Planner:
    """Turns the input stream into preparation tasks, one window at a time.

    ``on_input`` is called (in the calling thread) for every input that probed well,
    ``on_error`` for every one that did not, before any task of its window is handed
    out. The next window is read and probed while this window's tasks run.
    """

    def __init__(
        self,
        backend: Backend,
        options: TranscribeOptions,
        prefetcher: Prefetcher,
        *,
        batch_size: int,
        batch_duration: float | None = None,
        window: int,
        max_duration: float | None,
        audio_stream: int | None = None,
        on_input: Callable[[Probed], None],
        on_error: Callable[[int, str, SpeakEasyError], None],
    ) -> None:
        self.backend = backend
        self.options = options
        self.prefetcher = prefetcher
        self.batch_size = batch_size
        self.batch_duration = batch_duration
        self.window = window
        self.max_duration = max_duration
        self.audio_stream = audio_stream
        # A stream's pieces are up to max_duration long: this many fill a batch.
        self._stream_batch = batch_count(max_duration or 0.0, batch_size, batch_duration)
        self.on_input = on_input
        self.on_error = on_error
        self._streams: list[_Stream] = []

    def tasks(self, inputs: Iterable[AudioInput]) -> Iterator[Callable[[], Ready]]:
        """The tasks, in the order their batches should run.

        An exception from ``inputs`` is raised after the tasks of the inputs read
        before it.
        """
        numbered = enumerate(inputs)
        probes, failure = self._read(numbered)
        while True:
            ahead: tuple[list[tuple[int, str, Future[Probed]]], Exception | None] | None = None
            for task in self._window_tasks(probes):
                yield task
                # Probe the next window once this one's first batch is queued, so
                # those probes wait behind it in the workers, not in front of it.
                if ahead is None and failure is None:
                    ahead = self._read(numbered)
            if failure is not None:
                raise failure
            following, later = ahead if ahead is not None else self._read(numbered)
            if not following and later is None:
                return
            probes, failure = following, later

    def _read(
        self, numbered: Iterator[tuple[int, AudioInput]]
    ) -> tuple[list[tuple[int, str, Future[Probed]]], Exception | None]:
        """Read the next window of inputs and start probing them in the workers."""
        window: list[tuple[int, AudioInput]] = []
        try:
            window.extend(islice(numbered, self.window))
        except Exception as exc:
            return self._probe(window), exc
        return self._probe(window), None

    def _window_tasks(
        self, probes: list[tuple[int, str, Future[Probed]]]
    ) -> Iterator[Callable[[], Ready]]:
        self._streams = [stream for stream in self._streams if not stream.done]
        short: list[Probed] = []
        streams: list[_Stream] = []
        for index, label, future in probes:
            try:
                probed = wait(future)
            except SpeakEasyError as exc:
                logger.warning("skipping %s: %s", label, exc)
                self.on_error(index, label, exc)
                continue
            self.on_input(probed)
            if self.max_duration is None or probed.duration <= self.max_duration:
                short.append(probed)
            else:
                streams.append(_Stream(probed, probed.pieces(self.max_duration)))
        self._streams += streams
        yield from self._stream_tasks(streams)
        durations = [p.duration for p in short]
        for batch in plan_batches(short, durations, self.batch_size, self.batch_duration):
            yield partial(self._prepare_batch, batch)

    def _probe(self, window: list[tuple[int, AudioInput]]) -> list[tuple[int, str, Future[Probed]]]:
        submit = self.prefetcher.submit
        return [
            (
                index,
                label_of(item, index),
                submit(partial(probe_input, item, index, self.audio_stream)),
            )
            for index, item in window
        ]

    def _stream_tasks(self, streams: list[_Stream]) -> Iterator[Callable[[], Ready]]:
        for stream in streams:
            # A task past the end finds the stream done and prepares nothing; at most
            # the prefetcher's look-ahead of them run.
            while not stream.done:
                yield partial(self._prepare_stream, stream)

    def _prepare_batch(self, batch: list[Probed]) -> Ready:
        ready = Ready()
        for probed in batch:
            self.prefetcher.check()
            try:
                pieces = [
                    Piece(probed.index, piece.offset, PreparedAudio(probed.label, piece.samples))
                    for piece in probed.pieces(self.max_duration)
                ]
            except SpeakEasyError as exc:
                logger.warning("skipping %s: %s", probed.label, exc)
                ready.failed.append((probed.index, exc))
                continue
            ready.pieces.extend(pieces)
            ready.counted[probed.index] = len(pieces)
        return self._collate(ready)

    def _prepare_stream(self, stream: _Stream) -> Ready:
        ready = Ready()
        owner = stream.input
        with stream.lock:
            try:
                while not stream.done and len(ready.pieces) < self._stream_batch:
                    self.prefetcher.check()
                    piece = next(stream.pieces, None)
                    if piece is None:
                        stream.done = True
                        ready.counted[owner.index] = stream.count
                        break
                    stream.count += 1
                    audio = PreparedAudio(owner.label, piece.samples)
                    ready.pieces.append(Piece(owner.index, piece.offset, audio))
            except SpeakEasyError as exc:
                logger.warning("%s failed after %d pieces: %s", owner.label, stream.count, exc)
                stream.done = True
                ready.failed.append((owner.index, exc))
        return self._collate(ready)

    def _collate(self, ready: Ready) -> Ready:
        """Collate in the worker when the backend can; a failure is left to the model call."""
        if ready.pieces and is_collating(self.backend):
            self.prefetcher.check()
            try:
                batch = [piece.audio for piece in ready.pieces]
                ready.collated = self.backend.collate(batch, self.options)  # type: ignore[attr-defined]
            except Cancelled:
                raise
            except Exception as exc:  # the engine's model call reports it, per item
                logger.debug("collating ahead failed (%s); left to the model call", exc)
                return ready
            if is_featurizing(self.backend):
                ready.featurized = self.prefetcher.defer(partial(self._featurize, ready.collated))
        return ready

    def _featurize(self, collated: Any) -> Any:
        """The backend's featurize step; on failure the collated input as it was."""
        try:
            return self.backend.featurize(collated)  # type: ignore[attr-defined]
        except Exception as exc:
            logger.debug("featurizing ahead failed (%s); left to the model call", exc)
            return collated

    def close(self) -> None:
        """Close the decoders of unfinished streams (call once no task runs)."""
        for stream in self._streams:
            close = getattr(stream.pieces, "close", None)
            if close is not None:
                close()
        self._streams.clear()
