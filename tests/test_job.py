"""Resumable jobs: a run killed at any point, then resumed, equals one uninterrupted run."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speakeasy_core import Transcriber
from speakeasy_core.backends import Capabilities, PreparedAudio
from speakeasy_core.errors import OutputError
from speakeasy_core.job import JOURNAL_NAME, JobInput, options_for_formats, run_job
from speakeasy_core.journal import read_journal
from speakeasy_core.tempfiles import deferred_cleanups, retry_deferred
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions
from tests.hostile import Mounts

N_FILES = 12


def name_of(item: PreparedAudio, options: TranscribeOptions) -> str:
    return f"text of {Path(item.key).stem}"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[JobInput]:
    folder = tmp_path_factory.mktemp("corpus")
    inputs = []
    for i in range(N_FILES):
        path = folder / f"clip{i:02d}.wav"
        sf.write(path, np.full(1600 * (1 + i % 4), 0.1, dtype=np.float32), 16000)
        inputs.append(JobInput(path, f"clip{i:02d}"))
    broken = folder / "broken.wav"
    broken.write_bytes(b"not audio at all")
    inputs.insert(5, JobInput(broken, "broken"))
    return inputs


def outputs(out: Path) -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(out.glob("*.txt"))}


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_after=st.integers(0, N_FILES - 1), batch_size=st.integers(1, 5))
def test_resume_after_interrupt_equals_one_run(
    corpus: list[JobInput],
    tmp_path_factory: pytest.TempPathFactory,
    kill_after: int,
    batch_size: int,
) -> None:
    reference = tmp_path_factory.mktemp("reference")
    run_job(Transcriber(MockBackend(name_of), batch_size=batch_size), corpus, reference)

    out = tmp_path_factory.mktemp("interrupted")
    calls = 0

    def dies(item: PreparedAudio, options: TranscribeOptions) -> str:
        nonlocal calls
        calls += 1
        if calls > kill_after:
            raise KeyboardInterrupt
        return name_of(item, options)

    with pytest.raises(KeyboardInterrupt):
        run_job(Transcriber(MockBackend(dies), batch_size=batch_size), corpus, out)
    finished = ok_sources(out / JOURNAL_NAME)

    resumed = MockBackend(name_of)
    summary = run_job(Transcriber(resumed, batch_size=batch_size), corpus, out, resume=True)

    redone = {p.key for batch in resumed.batches for p in batch}
    good = {str(item.path) for item in corpus if item.stem != "broken"}
    assert redone.isdisjoint(finished)
    assert redone | finished == good
    ok = [result.source for _, result in read_journal(out / JOURNAL_NAME) if result.ok]
    assert sorted(ok) == sorted(good)  # each input exactly once
    assert outputs(out) == outputs(reference)
    assert (summary.skipped, summary.transcribed, summary.failed) == (
        len(finished),
        N_FILES - len(finished),
        1,
    )


def test_changed_file_or_options_are_redone(corpus: list[JobInput], tmp_path: Path) -> None:
    run_job(Transcriber(MockBackend(name_of)), corpus, tmp_path)
    touched = corpus[0].path
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))
    again = MockBackend(name_of)
    summary = run_job(Transcriber(again), corpus, tmp_path, resume=True)
    assert [p.key for batch in again.batches for p in batch] == [str(touched)]
    assert summary.skipped == N_FILES - 1


def test_partial_last_line_from_a_crash_is_dropped(corpus: list[JobInput], tmp_path: Path) -> None:
    run_job(Transcriber(MockBackend(name_of)), corpus[:4], tmp_path)
    journal = tmp_path / JOURNAL_NAME
    data = journal.read_bytes()
    journal.write_bytes(data[: len(data) - 25])  # the kill landed mid-line
    summary = run_job(Transcriber(MockBackend(name_of)), corpus[:4], tmp_path, resume=True)
    assert summary.skipped == 3
    assert summary.transcribed == 1
    lines = journal.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)


def test_sigkill_loses_no_finished_result(corpus: list[JobInput], tmp_path: Path) -> None:
    """A real process, killed with SIGKILL mid-job; the resumed run completes the set."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("no SIGKILL on this platform")
    script = textwrap.dedent(
        f"""
        import time, sys
        from pathlib import Path
        from speakeasy_core import Transcriber
        from speakeasy_core.job import JobInput, run_job
        from speakeasy_core.testing import MockBackend

        done = 0

        def slow(item, options):
            global done
            done += 1
            if done > 3:
                time.sleep(3600)  # hangs until killed, with 3 results journaled
            return "text of " + Path(item.key).stem

        inputs = [JobInput(Path(p), Path(p).stem) for p in sys.argv[2:]]
        run_job(Transcriber(MockBackend(slow), batch_size=1, workspace_root={str(tmp_path)!r}),
                inputs, sys.argv[1])
        """
    )
    out = tmp_path / "out"
    paths = [str(item.path) for item in corpus]
    child = subprocess.Popen([sys.executable, "-c", script, str(out), *paths])
    journal = out / JOURNAL_NAME
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(ok_sources(journal)) < 3:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    finished = ok_sources(journal)
    assert len(finished) == 3
    assert [p for p in tmp_path.iterdir() if p.name.startswith("speakeasy-")] != []

    summary = run_job(
        Transcriber(MockBackend(name_of), workspace_root=tmp_path), corpus, out, resume=True
    )
    assert (summary.skipped, summary.transcribed) == (len(finished), N_FILES - len(finished))
    ok = [result.source for _, result in read_journal(journal) if result.ok]
    assert sorted(ok) == sorted(p for p in paths if "broken" not in p)
    # the killed process's workspace was swept by the next run's Transcriber
    assert [p for p in tmp_path.iterdir() if p.name.startswith("speakeasy-")] == []


def ok_sources(journal: Path) -> set[str]:
    """Inputs with a finished result in the journal (a partial last line is ignored)."""
    if not journal.exists():
        return set()
    return {result.source for _, result in read_journal(journal) if result.ok}


def test_subtitle_formats_ask_for_timestamps_only_where_the_backend_has_them() -> None:
    plain = TranscribeOptions()
    timed = Capabilities(timestamps=True)
    assert options_for_formats(plain, ["txt", "srt"], timed).timestamps
    assert options_for_formats(plain, ["vtt"], timed).timestamps
    assert options_for_formats(plain, ["txt", "json"], timed) == plain
    assert options_for_formats(plain, ["srt"], Capabilities()) == plain


def test_a_full_output_disk_stops_the_job_before_journaling_that_input(
    corpus: list[JobInput], tmp_path: Path, mounts: Mounts
) -> None:
    """Outputs on a tiny disk, the journal elsewhere: the input whose output did not fit
    is not journaled, and resume after freeing space completes the set."""
    disk = mounts.tmpfs(tmp_path / "disk", "64k")
    journal = tmp_path / "journal.jsonl"
    long = "x" * 20_000

    def says_a_lot(item: PreparedAudio, options: TranscribeOptions) -> str:
        return long

    with pytest.raises(OutputError, match="No space left on device") as info:
        run_job(Transcriber(MockBackend(says_a_lot)), corpus, disk, journal_path=journal)
    assert info.value.errno == errno.ENOSPC
    done = ok_sources(journal)
    assert 0 < len(done) < N_FILES
    for item in corpus:
        output = disk / f"{item.stem}.txt"
        assert (str(item.path) in done) == output.exists()
        if output.exists():
            assert output.read_text(encoding="utf-8") == long + "\n"
    mounts.resize(disk, "2m")
    summary = run_job(
        Transcriber(MockBackend(says_a_lot)), corpus, disk, journal_path=journal, resume=True
    )
    assert (summary.skipped, summary.transcribed) == (len(done), N_FILES - len(done))


def test_a_temp_dir_gone_read_only_mid_job_loses_nothing(tmp_path: Path, mounts: Mounts) -> None:
    """Converted audio goes to the model as arrays, so the temp dir only holds the
    workspace itself: the job finishes, and the workspace it could not remove is
    reported and removed at the next retry once the dir is writable."""
    temp = tmp_path / "temp"
    temp.mkdir(mode=0o700)
    inputs = []
    for i in range(4):  # 44.1 kHz: every input is converted
        path = tmp_path / "in" / f"c{i}.wav"
        path.parent.mkdir(exist_ok=True)
        sf.write(path, np.full(4410, 0.1, dtype=np.float32), 44100)
        inputs.append(JobInput(path, f"c{i}"))
    calls = 0

    def freezes_the_temp_dir(item: PreparedAudio, options: TranscribeOptions) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            mounts.read_only(temp)
        return name_of(item, options)

    out = tmp_path / "out"
    transcriber = Transcriber(
        MockBackend(freezes_the_temp_dir), batch_size=1, window=1, workspace_root=temp
    )
    summary = run_job(transcriber, inputs, out)
    assert (summary.transcribed, summary.failed) == (4, 0)
    assert ok_sources(out / JOURNAL_NAME) == {str(item.path) for item in inputs}
    assert len(deferred_cleanups()) == 1  # the workspace could not be removed: retried at exit
    mounts.unmount(temp)
    assert retry_deferred().clean
    assert list(temp.iterdir()) == []
