"""Resumable batch jobs: inputs -> transcripts on disk, journaled as they finish.

``run_job`` feeds the inputs through a :class:`~speakeasy_core.Transcriber`, writes
each finished result in the requested formats (atomically, fsynced) and only then
appends it to a JSON Lines journal in the output directory. Run it again with
``resume=True`` after a crash, a full disk or Ctrl-C and it skips every input whose
result is in the journal (same file, same size and mtime, same options) and whose
outputs all exist, writes missing outputs from the journal, and redoes only the rest.

Output names are decided before the job starts (:func:`plan_outputs`); one job runs
per output folder at a time (:func:`job_lock`). docs/jobs.md lists the guarantees.
"""

from ._inputs import AUDIO_SUFFIXES, NAME_MAX, JobInput, cut_inputs, expand_inputs, plan_outputs
from ._lock import LOCK_NAME, job_lock, prepare_out_dir
from ._recorder import (
    JOURNAL_NAME,
    STOP_ERRNOS,
    JobRecorder,
    JobSummary,
    job_header,
    options_for_formats,
)
from ._run import LHOTSE_FORMAT, LHOTSE_MANIFEST, run_job

__all__ = [
    "AUDIO_SUFFIXES",
    "JOURNAL_NAME",
    "LHOTSE_FORMAT",
    "LHOTSE_MANIFEST",
    "LOCK_NAME",
    "NAME_MAX",
    "STOP_ERRNOS",
    "JobInput",
    "JobRecorder",
    "JobSummary",
    "cut_inputs",
    "expand_inputs",
    "job_header",
    "job_lock",
    "options_for_formats",
    "plan_outputs",
    "prepare_out_dir",
    "run_job",
]
