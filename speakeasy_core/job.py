"""Resumable batch jobs: inputs -> transcripts on disk, journaled as they finish.

``run_job`` feeds the inputs through a :class:`~speakeasy_core.Transcriber`, writes
each finished result in the requested formats (atomically) and appends it to a JSON
Lines journal in the output directory. Run it again with ``resume=True`` after a
crash or Ctrl-C and it skips every input whose result is already in the journal
(same file, same size and mtime, same options), redoing only the rest.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from .backends.base import Capabilities
from .errors import InputError
from .formats import SUBTITLE_FORMATS, write_result
from .journal import Journal, job_key
from .transcriber import Transcriber
from .types import TranscribeOptions, TranscriptionResult

__all__ = [
    "AUDIO_SUFFIXES",
    "JOURNAL_NAME",
    "JobInput",
    "JobRecorder",
    "JobSummary",
    "expand_inputs",
    "job_header",
    "options_for_formats",
    "run_job",
]

logger = logging.getLogger(__name__)

JOURNAL_NAME = "speakeasy-journal.jsonl"
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a"})


@dataclass(frozen=True)
class JobInput:
    """An input file and the output name its transcripts get: no extension, ``/``-separated
    folders allowed (``"day1/intro"`` writes ``out_dir/day1/intro.txt``)."""

    path: Path
    stem: str

    def write(self, result: TranscriptionResult, out_dir: Path, fmt: str) -> Path:
        """Write ``result`` for this input in format ``fmt`` under ``out_dir``."""
        name = PurePosixPath(self.stem)
        return write_result(result, out_dir.joinpath(*name.parent.parts), fmt, stem=name.name)


@dataclass
class JobSummary:
    """What a job did. ``failures`` lists ``(input, error)`` for every failed input."""

    total: int = 0
    transcribed: int = 0
    skipped: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)


def expand_inputs(paths: Sequence[str]) -> Iterator[JobInput]:
    """Files as given; directories searched recursively for audio files, sorted.

    A file under a directory argument keeps its relative path in its output name, so
    ``a/x.wav`` and ``b/x.wav`` do not overwrite each other's transcripts.
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


def _key(path: Path, header: dict[str, object]) -> str:
    """The journal key of an input; a missing file is keyed on its path alone."""
    try:
        return job_key(path, header)
    except (OSError, InputError):
        return f"missing:{os.fspath(path)}"


def options_for_formats(
    options: TranscribeOptions, formats: Iterable[str], capabilities: Capabilities
) -> TranscribeOptions:
    """``options`` with timestamps on when a subtitle format is asked for and the backend
    gives them, so srt/vtt cues carry real times; otherwise ``options`` unchanged."""
    if SUBTITLE_FORMATS.isdisjoint(formats) or not capabilities.timestamps:
        return options
    return replace(options, timestamps=True)


def job_header(transcriber: Transcriber) -> dict[str, object]:
    """What a job's results depend on (backend, model, options): its journal header.

    The model need not be loaded; jobs with equal headers share a journal.
    """
    backend = transcriber.backend
    return {
        "backend": backend.name,
        "model": backend.model_name,
        "options": transcriber.options.to_dict(),
    }


class JobRecorder:
    """Where a job's finished results go: output files, the journal, the summary.

    Create it with :meth:`open`. Whoever runs the transcription (:func:`run_job`
    here, :func:`~speakeasy_core.distributed.run_ray_job` on a Ray cluster) takes
    the inputs still to do from :meth:`pending` and hands each result to
    :meth:`record`.
    """

    def __init__(
        self, journal: Journal, header: dict[str, object], out_dir: Path, formats: Sequence[str]
    ) -> None:
        self.summary = JobSummary()
        self._journal = journal
        self._header = header
        self._out = out_dir
        self._formats = tuple(formats)

    @classmethod
    @contextmanager
    def open(
        cls,
        header: dict[str, object],
        out_dir: str | os.PathLike[str],
        *,
        formats: Sequence[str] = ("txt",),
        resume: bool = False,
        journal_path: str | os.PathLike[str] | None = None,
    ) -> Iterator[JobRecorder]:
        """Open the job's journal (``out_dir``'s, unless ``journal_path``) for the block.

        Without ``resume`` an existing journal is started afresh.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = Path(journal_path) if journal_path else out / JOURNAL_NAME
        with Journal.open(path, header=header, resume=resume) as journal:
            recorder = cls(journal, header, out, formats)
            yield recorder
        summary = recorder.summary
        logger.info(
            "job done: %d transcribed, %d skipped (already done), %d failed",
            summary.transcribed,
            summary.skipped,
            summary.failed,
        )

    def pending(self, inputs: Iterable[JobInput]) -> Iterator[tuple[str, JobInput]]:
        """Stream the inputs not done yet, with their journal keys; counts every input."""
        done = self._journal.done_keys()
        for item in inputs:
            self.summary.total += 1
            key = _key(item.path, self._header)
            if key in done:
                self.summary.skipped += 1
            else:
                yield key, item

    def record(self, key: str, item: JobInput, result: TranscriptionResult) -> None:
        """Write ``result`` for ``item`` in every format (if it succeeded) and journal it."""
        if result.ok:
            for fmt in self._formats:
                item.write(result, self._out, fmt)
            self.summary.transcribed += 1
            self.summary.audio_seconds += result.duration
        else:
            self.summary.failures.append((result.source, f"{result.error_type}: {result.error}"))
        self._journal.append(key, result)


def run_job(
    transcriber: Transcriber,
    inputs: Iterable[JobInput],
    out_dir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("txt",),
    resume: bool = False,
    journal_path: str | os.PathLike[str] | None = None,
) -> JobSummary:
    """Transcribe ``inputs`` into ``out_dir``; see the module docstring.

    Without ``resume`` an existing journal is started afresh. Failed inputs are
    journaled too, and retried by the next resumed run.
    """
    in_flight: dict[int, tuple[str, JobInput]] = {}  # by index in the transcriber's stream
    with JobRecorder.open(
        job_header(transcriber),
        out_dir,
        formats=formats,
        resume=resume,
        journal_path=journal_path,
    ) as job:

        def todo() -> Iterator[Path]:
            for index, (key, item) in enumerate(job.pending(inputs)):
                in_flight[index] = (key, item)
                yield item.path

        for index, result in transcriber.iter_completed(todo()):
            job.record(*in_flight.pop(index), result)
    return job.summary
