"""Transcribe a folder into srt + txt files, resumably, with any backend.

    python examples/transcribe_folder.py recordings/ out/                    # embedded default
    python examples/transcribe_folder.py recordings/ out/ --backend parakeet --model m.nemo

Kill it at any point and run it again: finished files are skipped (the journal in
``out/`` remembers them) and the rest are transcribed.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import replace

from speakeasy_core import Transcriber
from speakeasy_core.job import expand_inputs, run_job


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("out_dir")
    parser.add_argument("--backend")
    parser.add_argument("--model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    with Transcriber(args.backend, args.model, batch_size=8, show_progress=True) as transcriber:
        if transcriber.capabilities.timestamps:  # real cue times in the srt files
            transcriber.options = replace(transcriber.options, timestamps=True)
        summary = run_job(
            transcriber,
            expand_inputs([args.folder]),
            args.out_dir,
            formats=("srt", "txt"),
            resume=True,
        )
    for source, error in summary.failures:
        print(f"failed: {source}: {error}")
    print(f"{summary.transcribed} transcribed, {summary.skipped} skipped, {summary.failed} failed")
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
