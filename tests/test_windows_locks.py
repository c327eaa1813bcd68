"""Real Windows locks: a second Windows process holds the file while our code works.

The holder is :class:`~speakeasy_core.testing.ExternalHandle`: another ``python.exe``
that opens the file (``open()``, ``CreateFileW`` without or with ``FILE_SHARE_DELETE``)
and says so on a pipe before our side acts. Short holds must be waited out, long ones
reported (per file) without crashing, and no result lost. Marker ``windows``: these
run on Windows and in the Windows lane (Wine); elsewhere nothing would be locked.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakeasy_core import Transcriber
from speakeasy_core.errors import TempFileError
from speakeasy_core.job import expand_inputs, run_job
from speakeasy_core.tempfiles import (
    OWNER_FILE,
    DeleteOutcome,
    ProcessIdentity,
    RetryPolicy,
    TempWorkspace,
    atomic_write_text,
    deferred_cleanups,
    process_alive,
    retry_deferred,
    safe_delete,
    sweep_stale,
)
from speakeasy_core.testing import ExternalHandle, HoldMode, MockBackend

pytestmark = pytest.mark.windows

MODES: list[HoldMode] = ["open", "no_share_delete", "share_delete"]
BLOCKING: list[HoldMode] = ["open", "no_share_delete"]
SHORT = RetryPolicy(max_wait=0.3, max_delay=0.1)  # outlasted by a held file
PATIENT = RetryPolicy(max_wait=10.0, max_delay=0.2)  # outlasts a short hold


@pytest.fixture(autouse=True)
def _no_deferred_cleanups_leak() -> Iterator[None]:
    yield
    assert deferred_cleanups() == (), "a test left a workspace cleanup pending"


def winerror(exc: BaseException | None) -> int | None:
    return getattr(exc, "winerror", None)


def test_the_holder_really_holds(tmp_path: Path) -> None:
    path = tmp_path / "held.txt"
    path.write_text("x")
    with ExternalHandle(path, "open") as holder:
        assert process_alive(ProcessIdentity(holder.pid, platform.node(), None))
        with pytest.raises(PermissionError) as caught:
            os.unlink(path)
        assert winerror(caught.value) == 32
    assert holder.released
    os.unlink(path)


# ------------------------------------------------------------------------- delete


@pytest.mark.parametrize("mode", BLOCKING)
def test_safe_delete_waits_out_a_short_hold(mode: HoldMode, tmp_path: Path) -> None:
    path = tmp_path / "held.bin"
    path.write_bytes(b"x")
    holder = ExternalHandle(path, mode)
    holder.release_after(0.5)
    result = safe_delete(path, policy=PATIENT)
    assert result.outcome is DeleteOutcome.DELETED
    assert result.attempts > 1
    assert 0 < result.waited <= PATIENT.max_wait
    assert holder.released
    assert not path.exists()


@pytest.mark.parametrize("mode", BLOCKING)
def test_safe_delete_reports_a_long_hold(mode: HoldMode, tmp_path: Path) -> None:
    path = tmp_path / "held.bin"
    path.write_bytes(b"x")
    with ExternalHandle(path, mode):
        result = safe_delete(path, policy=SHORT)
        assert result.outcome is DeleteOutcome.LOCKED
        assert winerror(result.error) == 32
        assert result.waited <= SHORT.max_wait
        assert path.read_bytes() == b"x"
    assert safe_delete(path, policy=SHORT).outcome is DeleteOutcome.DELETED
    assert not path.exists()


def test_safe_delete_of_a_share_delete_holder_succeeds_at_once(tmp_path: Path) -> None:
    path = tmp_path / "held.bin"
    path.write_bytes(b"x")
    with ExternalHandle(path, "share_delete"):
        result = safe_delete(path, policy=SHORT)
        assert result.outcome is DeleteOutcome.DELETED
        assert result.attempts == 1
    assert not path.exists()


# --------------------------------------------------------------- atomic replace


@pytest.mark.parametrize("mode", MODES)
def test_replacing_a_transcript_held_for_a_second_succeeds(mode: HoldMode, tmp_path: Path) -> None:
    """The lane's finding: os.replace onto a held file is winerror 5, and is waited out."""
    target = tmp_path / "talk.txt"
    target.write_text("old")
    holder = ExternalHandle(target, mode)
    holder.release_after(1.0)
    started = time.monotonic()
    atomic_write_text(target, "new")  # the default policy, as the job layer uses it
    assert time.monotonic() - started >= 0.5
    assert holder.released
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["talk.txt"]


@pytest.mark.parametrize("mode", MODES)
def test_replacing_a_file_held_too_long_is_a_temp_file_error(
    mode: HoldMode, tmp_path: Path
) -> None:
    target = tmp_path / "talk.txt"
    target.write_text("old")
    with ExternalHandle(target, mode):
        with pytest.raises(TempFileError, match="still locked") as caught:
            atomic_write_text(target, "new", policy=SHORT)
        assert winerror(caught.value.__cause__) == 5
        assert isinstance(caught.value, OSError)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["talk.txt"]  # no temp file left behind


# -------------------------------------------------------------- manifest, workspace


def test_a_written_manifest_is_closed_another_process_can_delete_it(tmp_path: Path) -> None:
    with TempWorkspace(tmp_path) as workspace:
        manifest = workspace.write_manifest([{"audio_filepath": "a.wav", "duration": 1.0}])
        done = subprocess.run(
            [sys.executable, "-c", "import os, sys; os.unlink(sys.argv[1])", str(manifest)],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert not manifest.exists()
    assert not workspace.path.exists()


def test_workspace_cleanup_waits_out_a_reader_of_its_manifest(tmp_path: Path) -> None:
    workspace = TempWorkspace(tmp_path, policy=PATIENT)
    manifest = workspace.write_manifest([{"audio_filepath": "a.wav", "duration": 1.0}])
    holder = ExternalHandle(manifest, "open")  # NeMo's data loader, late to close
    holder.release_after(0.5)
    report = workspace.cleanup()
    assert report.clean
    assert manifest in report.deleted
    assert not workspace.path.exists()


@pytest.mark.parametrize("mode", BLOCKING)
def test_workspace_cleanup_reports_a_long_hold_and_finishes_later(
    mode: HoldMode, tmp_path: Path
) -> None:
    workspace = TempWorkspace(tmp_path, policy=SHORT)
    with workspace.new_file(".wav") as (held, handle):
        handle.write(b"RIFF")
    with workspace.new_file(".json") as (other, handle):
        handle.write(b"{}")
    with ExternalHandle(held, mode):
        report = workspace.cleanup()
        assert report.locked == (held,)
        assert other in report.deleted
        assert not other.exists()
        assert held.exists()
        assert deferred_cleanups() == (workspace.path,)
    assert retry_deferred().clean
    assert not workspace.path.exists()


# ------------------------------------------------------------------ sweep_stale


OWNER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from speakeasy_core.tempfiles import TempWorkspace
    workspace = TempWorkspace(sys.argv[1])
    with workspace.new_file(".wav") as (path, handle):
        handle.write(b"RIFF")
    print(workspace.path, flush=True)
    time.sleep(600)
    """
)


def killed_owner_workspace(root: Path) -> Path:
    """A workspace whose owner, a real process, was killed (TerminateProcess)."""
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(root)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert owner.stdout is not None
    path = Path(owner.stdout.readline().strip())
    assert (path / OWNER_FILE).is_file(), owner.communicate()[1]
    assert sweep_stale(root) == []  # alive: not touched
    owner.kill()
    owner.communicate()
    return path


def test_sweep_removes_a_killed_processs_workspace(tmp_path: Path) -> None:
    live = TempWorkspace(tmp_path)
    stale = killed_owner_workspace(tmp_path)
    assert sweep_stale(tmp_path) == [stale]
    assert not stale.exists()
    assert live.path.exists()
    assert live.cleanup().clean


@pytest.mark.parametrize("mode", BLOCKING)
def test_sweep_leaves_a_held_stale_workspace_for_later(mode: HoldMode, tmp_path: Path) -> None:
    stale = killed_owner_workspace(tmp_path)
    held = next(stale.glob("*.wav"))
    with ExternalHandle(held, mode):
        assert sweep_stale(tmp_path, policy=SHORT) == []
        assert held.exists()
        assert (stale / OWNER_FILE).exists()  # still sweepable later
    assert sweep_stale(tmp_path, policy=SHORT) == [stale]
    assert not stale.exists()


# -------------------------------------------------------------------- batch job


@pytest.fixture
def recordings(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in ("a", "b", "c"):
        sf.write(folder / f"{name}.wav", np.full(1600, 0.1, dtype=np.float32), 16000)
    return folder


def mock_transcriber(tmp_path: Path, text: str) -> Transcriber:
    backend = MockBackend(lambda item, options: f"{text} {Path(item.key).stem}")
    return Transcriber(backend, workspace_root=tmp_path / "work")


@pytest.mark.parametrize("mode", MODES)
def test_job_writes_outputs_while_a_transcript_is_held_for_a_second(
    mode: HoldMode, recordings: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    first = run_job(mock_transcriber(tmp_path, "first"), expand_inputs([str(recordings)]), out)
    assert first.transcribed == 3
    holder = ExternalHandle(out / "b.txt", mode)  # an editor showing the old transcript
    holder.release_after(1.0)
    second = run_job(mock_transcriber(tmp_path, "second"), expand_inputs([str(recordings)]), out)
    assert holder.released
    assert second.failures == []
    assert second.transcribed == 3
    for name in ("a", "b", "c"):
        assert (out / f"{name}.txt").read_text(encoding="utf-8") == f"second {name}\n"
    assert not list((tmp_path / "work").glob("speakeasy-*"))  # workspaces cleaned


def test_job_reports_a_transcript_held_too_long_per_file(recordings: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    run_job(mock_transcriber(tmp_path, "first"), expand_inputs([str(recordings)]), out)
    with ExternalHandle(out / "b.txt", "open"):
        summary = run_job(
            mock_transcriber(tmp_path, "second"), expand_inputs([str(recordings)]), out
        )
        assert summary.transcribed == 2
        assert [source for source, _ in summary.failures] == [str(recordings / "b.wav")]
        assert summary.failures[0][1].startswith("OutputError: ")
        assert (out / "b.txt").read_text(encoding="utf-8") == "first b\n"  # not lost
    for name in ("a", "c"):
        assert (out / f"{name}.txt").read_text(encoding="utf-8") == f"second {name}\n"
    resumed = run_job(
        mock_transcriber(tmp_path, "second"), expand_inputs([str(recordings)]), out, resume=True
    )
    assert resumed.transcribed == 1
    assert (out / "b.txt").read_text(encoding="utf-8") == "second b\n"
