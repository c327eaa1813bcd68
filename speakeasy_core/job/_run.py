"""``run_job``: a local job, from inputs to transcripts and journal."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence, Sized
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from ..cuts import CutAudio, CutSetWriter, as_cutset, is_set
from ..errors import InvalidOptionError, TempFileError
from ..tempfiles import TempWorkspace
from ..transcriber import Transcriber
from ._inputs import JobInput, cut_inputs
from ._recorder import JobRecorder, JobSummary, job_header

__all__ = ["LHOTSE_FORMAT", "LHOTSE_MANIFEST", "run_job"]

logger = logging.getLogger(__name__)

LHOTSE_FORMAT = "lhotse"
"""The job-level format: one lhotse manifest of the job's cuts with their new supervisions."""
LHOTSE_MANIFEST = "speakeasy-cuts.jsonl.gz"

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


def _job_inputs(
    inputs: Iterable[JobInput] | object, per_supervision: bool
) -> tuple[Iterable[JobInput], object | None]:
    """The job's inputs, and its CutSet when it was given one."""
    if is_set(inputs):
        cuts = as_cutset(inputs)
        return cut_inputs(cuts, per_supervision=per_supervision), cuts
    return inputs, None  # type: ignore[return-value]


def _manifest(
    cuts: object | None, formats: Sequence[str], out_dir: Path, per_supervision: bool
) -> AbstractContextManager[CutSetWriter | None]:
    """The job's lhotse manifest writer, if ``formats`` asks for one."""
    if LHOTSE_FORMAT not in formats:
        return nullcontext()
    if cuts is None:
        reason = "needs a lhotse CutSet or RecordingSet as the job's inputs"
        raise InvalidOptionError("format", LHOTSE_FORMAT, reason)
    return CutSetWriter(out_dir / LHOTSE_MANIFEST, cuts, per_supervision=per_supervision)


def run_job(
    transcriber: Transcriber,
    inputs: Iterable[JobInput] | object,
    out_dir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("txt",),
    resume: bool = False,
    journal_path: str | os.PathLike[str] | None = None,
    per_supervision: bool = False,
) -> JobSummary:
    """Transcribe ``inputs`` into ``out_dir``; see the package docstring.

    ``inputs`` are :class:`JobInput` s, or a lhotse CutSet or RecordingSet (one input
    per cut, or per supervision with ``per_supervision``; keyed by cut id, so resume
    works by cut). The format ``"lhotse"`` writes the cuts with their new supervisions
    to ``out_dir/`` :data:`LHOTSE_MANIFEST` at the end (also after a stop), complete
    with the results of earlier runs when resumed.

    Without ``resume`` an existing journal is started afresh. Failed inputs are
    journaled too, and retried by the next resumed run. Raises (after keeping every
    finished result) when the job cannot go on: JobLockedError, OutputError and
    JournalWriteError for the out-dir's disk, TempFileError for the temp dir's.
    """
    items, cuts = _job_inputs(inputs, per_supervision)
    manifest = _manifest(cuts, formats, Path(out_dir), per_supervision)
    in_flight: dict[int, tuple[str, JobInput]] = {}  # by index in the transcriber's stream
    with (
        JobRecorder.open(
            job_header(transcriber),
            out_dir,
            formats=[fmt for fmt in formats if fmt != LHOTSE_FORMAT],
            resume=resume,
            journal_path=journal_path,
        ) as job,
        manifest as writer,
    ):
        if writer is not None:
            for earlier in job.results():
                writer.record(earlier)

        def todo() -> Iterator[Path | CutAudio]:
            for index, (key, item) in enumerate(job.pending(items)):
                in_flight[index] = (key, item)
                yield item.audio

        # Counted inputs are listed up front, so progress has their number (and an ETA).
        audio = list(todo()) if isinstance(items, Sized) else todo()
        for index, result in transcriber.iter_completed(audio):
            job.record(*in_flight.pop(index), result)
            if writer is not None:
                writer.record(result)
            if result.error_type in _TEMP_ERRORS:
                _check_temp_root(transcriber)
    return job.summary
