"""Transcribe a folder into srt + txt files, resumably, with any backend.

    python examples/transcribe_folder.py recordings/ out/                    # embedded default
    python examples/transcribe_folder.py recordings/ out/ --backend parakeet --model m.nemo

Kill it at any point and run it again: finished files are skipped (the journal in
``out/`` remembers them) and the rest are transcribed.
"""

from __future__ import annotations

import argparse
import logging

from speakeasy_core import Transcriber
from speakeasy_core.job import expand_inputs, options_for_formats, run_job

FORMATS = ("srt", "txt")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("out_dir")
    parser.add_argument("--backend")
    parser.add_argument("--model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with Transcriber(args.backend, args.model, batch_size=8, show_progress=True) as transcriber:
        # real cue times in the srt files, where the backend gives them
        transcriber.options = options_for_formats(
            transcriber.options, FORMATS, transcriber.capabilities
        )
        summary = run_job(
            transcriber,
            expand_inputs([args.folder]),
            args.out_dir,
            formats=FORMATS,
            resume=True,
        )
    for source, error in summary.failures:
        print(f"failed: {source}: {error}")
    print(f"{summary.transcribed} transcribed, {summary.skipped} skipped, {summary.failed} failed")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
