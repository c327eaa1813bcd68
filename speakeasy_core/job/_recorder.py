"""Where a job's finished results go: output files first, then the journal, then the summary."""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..backends.base import Capabilities
from ..errors import InputError, OutputError
from ..formats import SUBTITLE_FORMATS
from ..journal import Journal, cut_key, job_key
from ..transcriber import Transcriber
from ..types import TranscribeOptions, TranscriptionResult, failed
from ._inputs import JobInput, plan_outputs
from ._lock import job_lock, prepare_out_dir

__all__ = [
    "JOURNAL_NAME",
    "STOP_ERRNOS",
    "JobRecorder",
    "JobSummary",
    "job_header",
    "options_for_formats",
]

logger = logging.getLogger(__name__)

JOURNAL_NAME = "speakeasy-journal.jsonl"
STOP_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EIO, errno.EROFS) if code
)
"""Write errors that are about the disk, not one input: they stop the job (full disk,
quota, I/O error, read-only filesystem). Any other error writing an output is that
input's failure."""


@dataclass
class JobSummary:
    """What a job did. ``failures`` lists ``(input, error)`` for every failed input;
    ``rewritten`` counts done inputs whose missing outputs were written from the journal
    (they are also ``skipped``: not transcribed again)."""

    total: int = 0
    transcribed: int = 0
    skipped: int = 0
    rewritten: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    audio_seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)


def _key(item: JobInput, header: dict[str, object]) -> str:
    """The journal key of an input; a missing file is keyed on its path alone."""
    if item.cut is not None:
        return cut_key(item.cut.identity, header)
    try:
        return job_key(item.path, header)
    except (OSError, InputError):
        return f"missing:{os.fspath(item.path)}"


def options_for_formats(
    options: TranscribeOptions, formats: Iterable[str], capabilities: Capabilities
) -> TranscribeOptions:
    """``options`` with timestamps on when a subtitle format is asked for and the backend
    gives them, so srt/vtt cues carry real times; otherwise ``options`` unchanged."""
    if SUBTITLE_FORMATS.isdisjoint(formats) or not capabilities.timestamps:
        return options
    return replace(options, timestamps=True)


def job_header(transcriber: Transcriber) -> dict[str, object]:
    """What a job's results depend on (backend, model, options, a chosen audio stream):
    its journal header.

    The model need not be loaded; jobs with equal headers share a journal.
    """
    backend = transcriber.backend
    header: dict[str, object] = {
        "backend": backend.name,
        "model": backend.model_name,
        "options": transcriber.options.to_dict(),
    }
    if transcriber.audio_stream:  # stream 0 is the default: the same results, the same key
        header["audio_stream"] = transcriber.audio_stream
    return header


def _sync_folders(paths: Iterable[Path]) -> None:
    """fsync the folders of ``paths`` so their renames survive a power cut (POSIX)."""
    if os.name == "nt":
        return
    for folder in dict.fromkeys(path.parent for path in paths):
        try:
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            if exc.errno in STOP_ERRNOS:
                raise OutputError(
                    exc.errno, f"cannot sync the output folder: {exc.strerror}", os.fspath(folder)
                ) from exc


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
        """Lock ``out_dir`` and open the job's journal (``out_dir``'s, unless
        ``journal_path``) for the block.

        Without ``resume`` an existing journal is started afresh. Another job running
        on ``out_dir`` raises JobLockedError before the journal is touched.
        """
        out = prepare_out_dir(out_dir)
        path = Path(journal_path) if journal_path else out / JOURNAL_NAME
        with job_lock(out), Journal.open(path, header=header, resume=resume) as journal:
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
        """Stream the inputs not done yet, with their journal keys; counts every input.

        Output names are planned for all inputs first (:func:`plan_outputs`). An input
        is done when the journal has its result and every requested format's output
        exists; a missing output is written from the journaled result, not transcribed.
        """
        planned = plan_outputs(inputs, self._formats)
        done = self._journal.done_keys()
        for item in planned:
            self.summary.total += 1
            key = _key(item, self._header)
            if key not in done:
                yield key, item
                continue
            missing = [fmt for fmt in self._formats if not item.output(self._out, fmt).is_file()]
            if missing:
                self._rewrite(key, item, missing)
            else:
                self.summary.skipped += 1

    def _rewrite(self, key: str, item: JobInput, formats: Sequence[str]) -> None:
        result = self._journal.get(key)
        assert result is not None  # a done key
        try:
            self._write(item, result, formats)
        except OutputError as exc:
            self._fail(key, result, exc)
            return
        logger.info("%s: wrote %s from the journal", item.source, ", ".join(formats))
        self.summary.skipped += 1
        self.summary.rewritten += 1

    def _write(self, item: JobInput, result: TranscriptionResult, formats: Sequence[str]) -> None:
        """Write ``formats`` for ``item``; OutputError naming the file that failed, raised
        further only for :data:`STOP_ERRNOS` (the caller makes others the input's error)."""
        written = []
        for fmt in formats:
            try:
                written.append(item.write(result, self._out, fmt))
            except OSError as exc:
                target = os.fspath(item.output(self._out, fmt))
                reason = os.strerror(exc.errno) if exc.errno else str(exc)
                raise OutputError(exc.errno, f"cannot write output: {reason}", target) from exc
        _sync_folders(written)

    def _fail(self, key: str, result: TranscriptionResult, exc: OutputError) -> None:
        if exc.errno in STOP_ERRNOS:
            raise exc
        logger.warning("%s", exc)
        self._journal_result(
            key, failed(result.source, exc, backend=result.backend, model=result.model)
        )

    def record(self, key: str, item: JobInput, result: TranscriptionResult) -> None:
        """Write ``result`` for ``item`` in every format (if it succeeded), then journal it.

        A write error of :data:`STOP_ERRNOS` raises OutputError (nothing journaled for
        ``item``); any other makes the input failed, journaled and retried on resume.
        """
        if result.ok:
            try:
                self._write(item, result, self._formats)
            except OutputError as exc:
                self._fail(key, result, exc)
                return
        self._journal_result(key, result)

    def results(self) -> Iterator[TranscriptionResult]:
        """Every result journaled so far, this run's and earlier runs'."""
        return (result for _, result in self._journal.results())

    def _journal_result(self, key: str, result: TranscriptionResult) -> None:
        """Count and journal ``result`` (its outputs, if any, already written)."""
        if result.ok:
            self.summary.transcribed += 1
            self.summary.audio_seconds += result.duration
        else:
            self.summary.failures.append((result.source, f"{result.error_type}: {result.error}"))
        self._journal.append(key, result)
