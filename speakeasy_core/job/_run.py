"""``run_job``: a local job, from inputs to transcripts and journal."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from ..errors import TempFileError
from ..tempfiles import TempWorkspace
from ..transcriber import Transcriber
from ._inputs import JobInput
from ._recorder import JobRecorder, JobSummary, job_header

__all__ = ["run_job"]

logger = logging.getLogger(__name__)

_TEMP_ERRORS = frozenset({"TempFileError", "TempRootError"})


def _check_temp_root(transcriber: Transcriber) -> None:
    """After an input failed on a temp file: stop the job if the temp root cannot take a
    new workspace any more (full, gone read-only); else the failure stays that input's."""
    try:
        TempWorkspace(transcriber.workspace_root, policy=transcriber.retry_policy).cleanup()
    except TempFileError as exc:
        raise TempFileError(
            exc.errno, f"temp dir unusable, stopping the job: {exc.strerror}", exc.filename
        ) from exc


def run_job(
    transcriber: Transcriber,
    inputs: Iterable[JobInput],
    out_dir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("txt",),
    resume: bool = False,
    journal_path: str | os.PathLike[str] | None = None,
) -> JobSummary:
    """Transcribe ``inputs`` into ``out_dir``; see the package docstring.

    Without ``resume`` an existing journal is started afresh. Failed inputs are
    journaled too, and retried by the next resumed run. Raises (after keeping every
    finished result) when the job cannot go on: JobLockedError, OutputError and
    JournalWriteError for the out-dir's disk, TempFileError for the temp dir's.
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
            if result.error_type in _TEMP_ERRORS:
                _check_temp_root(transcriber)
    return job.summary
