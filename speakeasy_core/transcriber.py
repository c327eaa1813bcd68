"""The public :class:`Transcriber`: one object, any backend, one input or ten thousand."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sized
from contextlib import ExitStack
from dataclasses import fields, replace
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, Unpack

import numpy as np

from ._options import check_int
from .backends.base import Backend, Capabilities, is_backend, validate_options
from .backends.registry import create_backend
from .batch import AudioArray, AudioInput, BatchEngine, ItemOutcome
from .cuts import as_inputs
from .errors import InvalidOptionError
from .progress import (
    LegacyProgressCallback,
    ProgressCallback,
    ShowProgress,
    check_show_progress,
    open_reporter,
    warn_if_legacy,
)
from .tempfiles import DEFAULT_POLICY, RetryPolicy, TempWorkspace, sweep_stale
from .types import Task, TranscribeOptions, TranscriptionResult, failed

__all__ = ["DEFAULT_BATCH_DURATION", "OptionOverrides", "Transcriber", "default_workers"]

logger = logging.getLogger(__name__)

_OPTION_NAMES = frozenset(f.name for f in fields(TranscribeOptions))

DEFAULT_BATCH_DURATION = 640.0
"""Seconds of audio per model call by default: 16 of Canary's 40 s pieces, or 2 of
Parakeet's 300 s ones (16 of those would need over 15 GB for activations)."""


def default_workers() -> int:
    """Prefetch threads by default: one per core but one (the model's), 1 to 4."""
    return max(1, min(4, (os.cpu_count() or 2) - 1))


class OptionOverrides(TypedDict, total=False):
    """Keyword options accepted by the Transcriber and its methods."""

    task: Task
    language: str | None
    target_language: str | None
    punctuation: bool
    timestamps: bool


class Transcriber:
    """Speech to text with a pluggable backend.

    ``backend`` is a registered name (``"parakeet"``, ``"canary"``, ``"whisper"`` or a
    third party's) or a ready :class:`~speakeasy_core.backends.Backend`. When neither
    backend nor model is given, the embedded offline ``"whisper"`` default is used; a
    model without a backend means ``"parakeet"`` (any NeMo ``ASRModel``).

    ``batch_size`` inputs go to the model per call, and at most ``batch_duration``
    seconds of audio, counted padded to the batch's longest input (None: no bound);
    ``window`` inputs (default: 8 batches, at least 64) are probed together and sorted
    by duration. Inputs longer
    than the backend's ``max_duration`` or ``chunk_duration`` (seconds) are cut at
    quiet points as they are decoded and merged back into one result.
    ``num_workers`` threads decode and collate the next batches while the model runs
    the current one (default: one per core but one, at most 4; 0: no threads).
    ``audio_stream`` picks which audio stream of a container (a video with several
    languages, say) is transcribed: 0, the first, by default; a file without that
    stream fails on its own. Arrays and lhotse cuts have no streams and ignore it.

    ``progress`` is called with a :class:`~speakeasy_core.Progress` (seconds of audio
    and inputs, done and total, failures, ETA) as each run advances; the old form
    ``progress(done, total)`` still works but is deprecated. ``show_progress`` shows
    it: True, a tqdm bar on a terminal or in a notebook and else a log line (INFO on
    ``speakeasy_core.progress``) every 10 s at most; ``"bar"`` or ``"log"``, that one.

    The model loads on first use (or :meth:`load`); use the object as a context manager
    to free it afterwards. Keyword ``options`` (task, language, target_language,
    punctuation, timestamps) set defaults that each call may override.

    >>> with Transcriber("parakeet", "model.nemo", batch_size=8) as t:  # doctest: +SKIP
    ...     for result in t.transcribe_batch(["a.wav", "b.flac"]):
    ...         print(result.text if result.ok else result.error)
    """

    def __init__(
        self,
        backend: str | Backend | None = None,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        batch_size: int = 16,
        batch_duration: float | None = DEFAULT_BATCH_DURATION,
        window: int | None = None,
        chunk_duration: float | None = None,
        num_workers: int | None = None,
        audio_stream: int | None = None,
        backend_options: Mapping[str, Any] | None = None,
        workspace_root: str | os.PathLike[str] | None = None,
        retry_policy: RetryPolicy = DEFAULT_POLICY,
        progress: ProgressCallback | LegacyProgressCallback | None = None,
        show_progress: ShowProgress = False,
        **options: Unpack[OptionOverrides],
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidOptionError("batch_size", batch_size, "must be a positive integer")
        if batch_duration is not None and not batch_duration > 0:
            raise InvalidOptionError("batch_duration", batch_duration, "must be positive seconds")
        if window is not None and (not isinstance(window, int) or window < 1):
            raise InvalidOptionError("window", window, "must be a positive integer")
        if chunk_duration is not None and not chunk_duration > 0:
            raise InvalidOptionError("chunk_duration", chunk_duration, "must be positive seconds")
        if num_workers is not None:
            check_int("num_workers", num_workers, 0)
        if audio_stream is not None:
            check_int("audio_stream", audio_stream, 0)
        check_show_progress(show_progress)
        warn_if_legacy(progress, stacklevel=2)
        self.audio_stream = audio_stream
        self.num_workers = default_workers() if num_workers is None else num_workers
        self.chunk_duration = chunk_duration
        self.batch_size = batch_size
        self.batch_duration = batch_duration
        self.window = window or max(64, 8 * batch_size)
        self.workspace_root = Path(workspace_root) if workspace_root is not None else None
        self.retry_policy = retry_policy
        self.progress = progress
        self.show_progress = show_progress
        self.options = self._merge(TranscribeOptions(), dict(options))
        if backend is None or isinstance(backend, str):
            name = backend or ("whisper" if model is None else "parakeet")
            model_name = os.fspath(model) if model is not None else None
            self.backend = create_backend(
                name, model=model_name, device=device, **dict(backend_options or {})
            )
        elif is_backend(backend):
            self.backend = backend
        else:
            raise InvalidOptionError("backend", backend, "neither a backend name nor a Backend")
        self._loaded = False

    # -- lifecycle ---------------------------------------------------------------------------

    def load(self) -> Transcriber:
        """Load the model now (otherwise the first call does), and sweep stale temp dirs."""
        if not self._loaded:
            for stale in sweep_stale(self.workspace_root):
                logger.info("removed temp workspace left by a dead process: %s", stale)
            self.backend.load()
            self._loaded = True
            validate_options(self.options, self.backend.capabilities)
        return self

    def unload(self) -> None:
        """Free the model; the next call loads it again."""
        if self._loaded:
            self.backend.unload()
            self._loaded = False

    def __enter__(self) -> Transcriber:
        return self.load()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unload()

    @property
    def capabilities(self) -> Capabilities:
        """What the loaded backend supports (loads it)."""
        return self.load().backend.capabilities

    # -- transcription -----------------------------------------------------------------------

    def transcribe(
        self,
        audio: AudioInput | np.ndarray[Any, Any],
        *,
        sample_rate: int | None = None,
        **options: Unpack[OptionOverrides],
    ) -> TranscriptionResult:
        """Transcribe one input; raises the typed error if it fails.

        ``audio`` is a path, a :class:`~speakeasy_core.manifest.ManifestEntry`, an
        :class:`AudioArray`, or a numpy array together with ``sample_rate``.
        """
        merged = self._merge(self.options, dict(options))
        (outcome,) = self._run([audio], sample_rate, merged)
        if outcome.error is not None:
            raise outcome.error
        return self._result(outcome, merged)

    def transcribe_batch(
        self,
        inputs: Iterable[AudioInput | np.ndarray[Any, Any]],
        *,
        sample_rate: int | None = None,
        **options: Unpack[OptionOverrides],
    ) -> list[TranscriptionResult]:
        """Transcribe many inputs; one result per input, in order, errors per item.

        A lhotse ``CutSet`` or ``RecordingSet`` gives one result per cut, keyed by cut id
        (see :mod:`speakeasy_core.cuts`).
        """
        return list(self.iter_transcribe(inputs, sample_rate=sample_rate, **options))

    def iter_transcribe(
        self,
        inputs: Iterable[AudioInput | np.ndarray[Any, Any]],
        *,
        sample_rate: int | None = None,
        **options: Unpack[OptionOverrides],
    ) -> Iterator[TranscriptionResult]:
        """Like :meth:`transcribe_batch`, but streams results in input order.

        At most two windows of inputs are held at a time (the next one is probed while
        the current one runs), so any number of inputs may be given as a lazy iterable.
        """
        waiting: dict[int, TranscriptionResult] = {}
        following = 0
        for index, result in self.iter_completed(inputs, sample_rate=sample_rate, **options):
            waiting[index] = result
            while following in waiting:
                yield waiting.pop(following)
                following += 1

    def iter_completed(
        self,
        inputs: Iterable[AudioInput | np.ndarray[Any, Any]],
        *,
        sample_rate: int | None = None,
        **options: Unpack[OptionOverrides],
    ) -> Iterator[tuple[int, TranscriptionResult]]:
        """Yield ``(input index, result)`` as soon as each input is done.

        Batches run longest-first, so this is not input order; use it to save or
        journal results the moment they exist (as :func:`~speakeasy_core.job.run_job`
        does), and :meth:`iter_transcribe` when order matters.
        """
        merged = self._merge(self.options, dict(options))
        for outcome in self._run(inputs, sample_rate, merged):
            yield outcome.index, self._result(outcome, merged)

    def _run(
        self,
        inputs: Iterable[AudioInput | np.ndarray[Any, Any]],
        sample_rate: int | None,
        options: TranscribeOptions,
    ) -> Iterator[ItemOutcome]:
        self.load()
        validate_options(options, self.backend.capabilities)
        inputs = as_inputs(inputs)  # lhotse CutSet / RecordingSet / cuts: one input per cut
        total = len(inputs) if isinstance(inputs, Sized) else None
        items = (self._coerce(item, sample_rate) for item in inputs)
        with ExitStack() as stack:
            workspace = stack.enter_context(
                TempWorkspace(self.workspace_root, policy=self.retry_policy)
            )
            engine = BatchEngine(
                self.backend,
                workspace,
                batch_size=self.batch_size,
                batch_duration=self.batch_duration,
                window=self.window,
                max_duration=self._max_duration(),
                progress=open_reporter(stack, self.show_progress, self.progress),
                num_workers=self.num_workers,
                audio_stream=self.audio_stream,
            )
            yield from engine.run(items, options, total)

    def _max_duration(self) -> float | None:
        """Longest piece sent to the backend: its own limit, or ours if shorter."""
        limits = [self.backend.capabilities.max_duration, self.chunk_duration]
        return min((limit for limit in limits if limit is not None), default=None)

    def _result(self, outcome: ItemOutcome, options: TranscribeOptions) -> TranscriptionResult:
        backend, model = self.backend.name, self.backend.model_name
        if outcome.error is not None:
            return failed(outcome.label, outcome.error, backend=backend, model=model)
        output = outcome.output
        assert output is not None
        return TranscriptionResult(
            source=outcome.label,
            text=output.text,
            duration=outcome.duration,
            backend=backend,
            model=model,
            task=options.task,
            language=options.language or output.language,
            words=output.words,
            segments=output.segments,
        )

    @staticmethod
    def _coerce(item: AudioInput | np.ndarray[Any, Any], sample_rate: int | None) -> AudioInput:
        if isinstance(item, np.ndarray):
            return AudioArray(item, sample_rate or 0)
        return item

    @staticmethod
    def _merge(base: TranscribeOptions, overrides: dict[str, Any]) -> TranscribeOptions:
        unknown = set(overrides) - _OPTION_NAMES
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidOptionError(name, overrides[name], "unknown option")
        return replace(base, **overrides)
