"""Write, close, use and delete temp files the way speakeasy_core does it for NeMo.

Run it: ``python examples/safe_tempfiles.py``. It needs no model and no GPU:

1. removes the workspaces of earlier runs that crashed (``sweep_stale``);
2. writes a WAV snippet and a NeMo manifest into a private workspace, closed before
   use, and reads them back the way NeMo would;
3. shows what happens when Windows keeps a file locked, on any OS, with the
   lock simulator and a simulated clock (so nothing really waits).
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from speakeasy_core.tempfiles import (
    DeleteOutcome,
    RetryPolicy,
    TempWorkspace,
    retry_deferred,
    sweep_stale,
)
from speakeasy_core.testing import SimulatedClock, WindowsLockSimulator

logger = logging.getLogger("safe_tempfiles")


def transcribe_job() -> None:
    """A job's temp files: a snippet and a manifest, gone when the block ends."""
    with TempWorkspace() as workspace:
        with workspace.new_file(".wav") as (wav, handle):
            tone = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000).astype(np.float32)
            sf.write(handle, 0.1 * tone, 16000, format="WAV", subtype="PCM_16")
        manifest = workspace.write_manifest([{"audio_filepath": wav, "duration": 1.0}])
        # Both are closed: NeMo could be given the manifest now. Read it as NeMo does.
        with manifest.open(encoding="utf-8") as lines:
            entries = [json.loads(line) for line in lines]
        info = sf.info(entries[0]["audio_filepath"])
        logger.info("manifest %s -> %s (%.1f s)", manifest.name, wav.name, info.duration)
    logger.info("workspace removed: %s", not workspace.path.exists())


def locked_file_demo() -> None:
    """A file held by another process is reported and deferred, never a crash."""
    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock)
    policy = RetryPolicy(max_wait=2.5, sleep=clock.sleep)
    root = Path(tempfile.mkdtemp(prefix="speakeasy-example-"))
    workspace = TempWorkspace(root, policy=policy, ops=sim)
    with workspace.new_file(".json") as (path, handle):
        handle.write(b"{}")

    sim.lock(path, attempts=3)  # an antivirus scan that lets go after three refusals
    result = workspace.delete(path)
    logger.info("scanned file: %s after %d attempts", result.outcome.value, result.attempts)

    with workspace.new_file(".json") as (path, handle):
        handle.write(b"{}")
    reader = sim.open_handle(path)  # a reader that never closes its handle in time
    report = workspace.cleanup()
    logger.info(
        "cleanup: %d locked after %.2f simulated seconds, retried at exit",
        len(report.locked),
        clock.now,
    )
    reader.close()
    logger.info("after the reader closed: clean=%s", retry_deferred().clean)
    assert result.outcome is DeleteOutcome.DELETED
    root.rmdir()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stale = sweep_stale()
    logger.info("removed %d stale workspace(s) of crashed runs", len(stale))
    transcribe_job()
    locked_file_demo()


if __name__ == "__main__":
    main()
