"""Transcribe a folder into srt + txt files, resumably, with any backend.

    python examples/transcribe_folder.py recordings/ out/                    # embedded default
    python examples/transcribe_folder.py recordings/ out/ --backend parakeet --model m.nemo

Kill it at any point and run it again: finished files are skipped (the journal in
``out/`` remembers them) and the rest are transcribed. A full disk or an out-dir another
run is using stops it with one line and status 3; see docs/jobs.md.
"""

from __future__ import annotations

import argparse
import logging
import sys

from speakeasy_core import Transcriber
from speakeasy_core.errors import SpeakEasyError
from speakeasy_core.job import (
    JobSummary,
    expand_inputs,
    job_lock,
    options_for_formats,
    prepare_out_dir,
    run_job,
)

FORMATS = ("srt", "txt")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("out_dir")
    parser.add_argument("--backend")
    parser.add_argument("--model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        summary = transcribe(args)
    except SpeakEasyError as exc:  # the job could not run or had to stop; results are kept
        print(f"error: {exc}", file=sys.stderr)
        return 3
    for source, error in summary.failures:
        print(f"failed: {source}: {error}")
    print(f"{summary.transcribed} transcribed, {summary.skipped} skipped, {summary.failed} failed")
    return 1 if summary.failed else 0


def transcribe(args: argparse.Namespace) -> JobSummary:
    # where results go is checked (and locked) before the model loads
    with (
        job_lock(prepare_out_dir(args.out_dir)),
        Transcriber(args.backend, args.model, batch_size=8, show_progress=True) as transcriber,
    ):
        # real cue times in the srt files, where the backend gives them
        transcriber.options = options_for_formats(
            transcriber.options, FORMATS, transcriber.capabilities
        )
        return run_job(
            transcriber,
            expand_inputs([args.folder]),
            args.out_dir,
            formats=FORMATS,
            resume=True,
        )


if __name__ == "__main__":
    raise SystemExit(main())
