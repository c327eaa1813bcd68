"""The CLI job in a hostile environment, faults injected for real: full and read-only
disks (tmpfs, bind mounts), an ext4 shut down under the job (EIO), real signals to a
real CLI process, a second real process on the same out-dir, blocked output paths."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speakeasy_core.audio import write_wav
from speakeasy_core.backends import PreparedAudio, register_backend, unregister_backend
from speakeasy_core.cli import main
from speakeasy_core.job import JOURNAL_NAME
from speakeasy_core.tempfiles import OWNER_FILE
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions
from tests.hostile import (
    Mounts,
    cli_child,
    fill,
    ok_sources,
    shut_down,
    stopped,
    wait_for,
    write_clip,
)

N_CLIPS = 6
LONG_TEXT = 20_000  # bytes of text per input where a disk must fill up

pytestmark = pytest.mark.usefixtures("no_pending_cleanups")


def greet(item: PreparedAudio, options: TranscribeOptions) -> str:
    return f"hello {Path(item.key).stem}"


class Spy:
    """The backends the ``spy`` factory made, to tell whether a model was loaded."""

    def __init__(self) -> None:
        self.backends: list[MockBackend] = []
        self.text_bytes = 0

    def answer(self, item: PreparedAudio, options: TranscribeOptions) -> str:
        return "x" * self.text_bytes if self.text_bytes else greet(item, options)

    def factory(self, *, model: str | None, device: str, **options: Any) -> MockBackend:
        backend = MockBackend(self.answer)
        self.backends.append(backend)
        return backend

    @property
    def loads(self) -> int:
        return sum(backend.loads for backend in self.backends)

    @property
    def transcribed(self) -> int:
        return sum(len(batch) for backend in self.backends for batch in backend.batches)


@pytest.fixture
def spy() -> Iterator[Spy]:
    made = Spy()
    register_backend("spy", made.factory)
    yield made
    unregister_backend("spy")


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    for i in range(N_CLIPS):
        write_clip(folder / f"clip{i}.wav")
    return folder


def run(*args: str) -> int:
    return main(["transcribe", "--backend", "spy", "--no-progress", *args])


def one_line_error(err: str) -> str:
    """The CLI's fatal error: exactly one line, no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("speakeasy-core: error:")]
    assert len(lines) == 1, err
    return lines[0]


def outputs_of_journal(out: Path, fmt: str = "txt") -> dict[str, str]:
    """Every journaled success's output text, by output name; fails if one is missing."""
    texts = {}
    for source in ok_sources(out / JOURNAL_NAME):
        path = out / (Path(source).stem + f".{fmt}")
        texts[path.name] = path.read_text(encoding="utf-8")
    return texts


def fails_before_the_model_loads(
    spy: Spy, capsys: pytest.CaptureFixture[str], args: list[str], path: Path, cause: str
) -> None:
    """The job exits 3 with one line naming ``path`` and ``cause``; no model was loaded."""
    assert run(*args) == 3
    line = one_line_error(capsys.readouterr().err)
    assert str(path) in line
    assert cause in line
    assert spy.loads == 0


# -- 1. one line, exit 3, before the model loads -----------------------------------------


def test_out_dir_that_is_a_file_fails_before_the_model_loads(
    clips: Path, tmp_path: Path, spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    args = [str(clips), "--out-dir", str(blocker)]
    fails_before_the_model_loads(spy, capsys, args, blocker, "not a directory")


def test_out_dir_on_a_read_only_mount_fails_before_the_model_loads(
    clips: Path, tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    mounts.read_only(locked)
    for out in (locked, locked / "new" / "out"):
        args = [str(clips), "--out-dir", str(out)]
        fails_before_the_model_loads(spy, capsys, args, locked, "Read-only file system")


def test_full_out_disk_at_start_fails_before_the_model_loads(
    clips: Path, tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "64k")
    fill(disk)
    args = [str(clips), "--out-dir", str(disk / "out")]
    fails_before_the_model_loads(spy, capsys, args, disk / "out", "No space left on device")


def test_unusable_temp_dir_fails_before_the_model_loads(
    clips: Path, tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir(mode=0o700)
    mounts.read_only(temp)
    args = [str(clips), "--out-dir", str(tmp_path / "out"), "--temp-dir", str(temp)]
    fails_before_the_model_loads(spy, capsys, args, temp, "Read-only file system")


def test_read_only_system_temp_dir_fails_before_the_model_loads(
    clips: Path,
    tmp_path: Path,
    spy: Spy,
    mounts: Mounts,
    *,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A read-only container: no --temp-dir, and the system temp dir takes nothing."""
    system_temp = tmp_path / "tmp"
    system_temp.mkdir()
    mounts.read_only(system_temp)
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    root = system_temp / f"speakeasy_core-{os.getuid()}"
    args = [str(clips), "--out-dir", str(tmp_path / "out")]
    fails_before_the_model_loads(spy, capsys, args, root, "cannot create the temp root")


def test_verbose_adds_the_traceback(
    clips: Path, tmp_path: Path, spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "out"
    blocker.touch()
    argv = ["-v", "transcribe", "--backend", "spy", str(clips), "--out-dir", str(blocker)]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert "OutputError" in err
    assert f"speakeasy-core: error: {blocker}: " in err


# -- 2. signals ------------------------------------------------------------------------


# Windows delivers no SIGTERM/SIGHUP to a process (os.kill terminates it) and CTRL_BREAK
# only to a process group of its own console, which Wine's console does not model.
posix_signals = pytest.mark.skipif(
    sys.platform == "win32", reason="POSIX signals; Windows' CTRL_BREAK is not tested here"
)


@posix_signals
@pytest.mark.parametrize(
    ("signum", "status", "name"),
    [
        (signal.SIGTERM, 143, "SIGTERM"),
        (getattr(signal, "SIGHUP", 1), 129, "SIGHUP"),
        (signal.SIGINT, 130, None),
    ],
)
def test_a_signal_keeps_finished_results_and_removes_the_workspace(
    tmp_path: Path, spy: Spy, *, signum: int, status: int, name: str | None
) -> None:
    out, temp = tmp_path / "out", tmp_path / "temp"
    temp.mkdir(mode=0o700)
    # converted inputs (44.1 kHz) so the workspace holds temp wavs when the signal lands
    for i in range(N_CLIPS):
        write_clip(tmp_path / "slow" / f"clip{i}.wav", rate=44100)
    child = cli_child(
        str(tmp_path / "slow"), "--out-dir", str(out), "--temp-dir", str(temp), hang_after=2
    )
    wait_for(lambda: len(ok_sources(out / JOURNAL_NAME)) == 2)
    assert [p.name for p in temp.iterdir() if p.name.startswith("speakeasy-")] != []
    child.send_signal(signum)
    err = stopped(child)  # hangs forever if the signal is not handled
    assert child.returncode == status
    assert "Traceback" not in err
    assert f"interrupted ({name or 'Ctrl-C'})" in err
    assert [p.name for p in temp.iterdir()] == []  # the workspace is gone
    done = ok_sources(out / JOURNAL_NAME)
    assert len(done) == 2
    assert outputs_of_journal(out) == {
        f"{Path(s).stem}.txt": f"hello {Path(s).stem}\n" for s in done
    }

    assert run(str(tmp_path / "slow"), "--out-dir", str(out), "--resume") == 0
    assert spy.transcribed == N_CLIPS - 2
    assert sorted(ok_sources(out / JOURNAL_NAME)) == sorted(
        str(p) for p in (tmp_path / "slow").iterdir()
    )


@posix_signals
def test_a_signal_that_lands_in_a_finalizer_still_stops_the_job(
    clips: Path, tmp_path: Path
) -> None:
    """Python swallows (as "Exception ignored") what a handler raises inside a
    ``__del__``: the stop must still happen, not leave the job running and deaf."""
    out = tmp_path / "out"
    child = cli_child(str(clips), "--out-dir", str(out), hang_after=2, finalizer=True)
    assert child.stderr is not None
    for line in child.stderr:  # the child is in the __del__ now
        if line.strip() == "finalizing":
            break
    child.send_signal(signal.SIGTERM)
    err = stopped(child)
    assert child.returncode == 143
    assert "interrupted (SIGTERM)" in err
    assert "Exception ignored" not in err
    assert "Traceback" not in err
    assert len(ok_sources(out / JOURNAL_NAME)) == 2


@posix_signals
def test_an_ignored_sighup_stays_ignored(clips: Path, tmp_path: Path) -> None:
    """Under ``nohup`` SIGHUP was ignored before the job started: it does not stop it."""
    out = tmp_path / "out"
    sighup = signal.Signals["SIGHUP"]
    child = cli_child(str(clips), "--out-dir", str(out), hang_after=2, ignore=(sighup,))
    wait_for(lambda: len(ok_sources(out / JOURNAL_NAME)) == 2)
    child.send_signal(sighup)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=1)
    child.send_signal(signal.SIGTERM)
    stopped(child)
    assert child.returncode == 143


# -- 3. write failures: ENOSPC, EROFS, EIO ---------------------------------------------


def assert_outputs_complete(out: Path, text: str) -> None:
    """The journal claims only outputs that are fully on disk; no temp file is left."""
    for name, content in outputs_of_journal(out).items():
        assert content == text + "\n", name
    assert [p.name for p in out.rglob(".*.tmp")] == []


def test_out_disk_filling_mid_job_stops_cleanly_and_resume_completes(
    clips: Path, tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "128k")
    out = disk / "out"
    spy.text_bytes = LONG_TEXT
    assert run(str(clips), "--out-dir", str(out)) == 3
    line = one_line_error(capsys.readouterr().err)
    assert "No space left on device" in line
    assert str(out) in line
    done = ok_sources(out / JOURNAL_NAME)
    assert 0 < len(done) < N_CLIPS
    assert_outputs_complete(out, "x" * LONG_TEXT)

    mounts.resize(disk, "4m")  # space freed
    assert run(str(clips), "--out-dir", str(out), "--resume") == 0
    assert len(ok_sources(out / JOURNAL_NAME)) == N_CLIPS
    assert len(outputs_of_journal(out)) == N_CLIPS
    assert_outputs_complete(out, "x" * LONG_TEXT)


def test_read_only_output_folder_stops_the_job_and_resume_completes(
    tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("day1/a.wav", "day1/b.wav", "day2/c.wav", "day2/d.wav"):
        write_clip(tmp_path / "in" / name)
    out = tmp_path / "out"
    (out / "day2").mkdir(parents=True)
    mounts.read_only(out / "day2")
    assert run(str(tmp_path / "in"), "--out-dir", str(out)) == 3
    line = one_line_error(capsys.readouterr().err)
    assert "Read-only file system" in line
    assert str(out / "day2") in line
    done = {Path(s).name for s in ok_sources(out / JOURNAL_NAME)}
    assert done <= {"a.wav", "b.wav"}
    for name in done:
        assert (out / "day1" / name).with_suffix(".txt").is_file()

    mounts.unmount(out / "day2")
    assert run(str(tmp_path / "in"), "--out-dir", str(out), "--resume") == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.txt")) == [
        "day1/a.txt",
        "day1/b.txt",
        "day2/c.txt",
        "day2/d.txt",
    ]


def test_io_error_under_the_job_stops_it_and_the_journal_survives(
    clips: Path, tmp_path: Path, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    """An ext4 shut down mid-job: every later write fails with EIO (a dying disk)."""
    disk = mounts.ext4(tmp_path / "disk")
    out = disk / "out"
    answered = 0

    def dies_after_two(item: PreparedAudio, options: TranscribeOptions) -> str:
        nonlocal answered
        answered += 1
        if answered == 3:
            shut_down(disk)
        return greet(item, options)

    register_backend("dying", lambda **_: MockBackend(dies_after_two))
    try:
        argv = ["transcribe", "--backend", "dying", "--no-progress", "--batch-size", "1"]
        assert main([*argv, str(clips), "--out-dir", str(out)]) == 3
    finally:
        unregister_backend("dying")
    line = one_line_error(capsys.readouterr().err)
    assert "Input/output error" in line
    assert str(out) in line

    mounts.remount(disk)  # the disk is back: what was journaled survived the shutdown
    done = ok_sources(out / JOURNAL_NAME)
    assert len(done) == 2
    assert outputs_of_journal(out) == {
        f"{Path(s).stem}.txt": f"hello {Path(s).stem}\n" for s in done
    }
    register_backend("dying", lambda **_: MockBackend(greet))
    try:
        assert main([*argv, str(clips), "--out-dir", str(out), "--resume"]) == 0
    finally:
        unregister_backend("dying")
    assert len(ok_sources(out / JOURNAL_NAME)) == N_CLIPS


def test_a_temp_dir_too_small_for_converted_audio_does_not_matter(
    tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    """Converted audio stays in memory (arrays go to the model), so a temp dir that could
    not hold one input as a 16 kHz wav fails nothing."""
    temp = mounts.tmpfs(tmp_path / "temp", "200k")
    folder = tmp_path / "in"
    write_clip(folder / "a.wav")
    write_clip(folder / "huge.wav", seconds=10, rate=44100, channels=2)  # 320 kB as 16 kHz
    write_clip(folder / "z.wav")
    out = tmp_path / "out"
    assert run(str(folder), "--out-dir", str(out), "--temp-dir", str(temp)) == 0
    assert sorted(p.name for p in out.glob("*.txt")) == ["a.txt", "huge.txt", "z.txt"]


def test_write_wav_to_a_full_disk_raises_the_disk_error(tmp_path: Path, mounts: Mounts) -> None:
    temp = mounts.tmpfs(tmp_path / "small", "64k")
    with (
        (temp / "x.wav").open("wb") as handle,
        pytest.raises(OSError, match="No space left") as raised,
    ):
        write_wav(handle, np.zeros(16000 * 10, dtype=np.float32))
    assert raised.value.errno == errno.ENOSPC


def test_temp_dir_full_before_the_job_is_a_clean_stop(
    clips: Path, tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = mounts.tmpfs(tmp_path / "temp", "64k")
    fill(temp)
    args = [str(clips), "--out-dir", str(tmp_path / "out"), "--temp-dir", str(temp)]
    fails_before_the_model_loads(spy, capsys, args, temp, "No space left on device")


# -- 6. per-file output errors ---------------------------------------------------------


def test_a_blocked_output_is_that_inputs_error_and_resume_retries_it(
    clips: Path, tmp_path: Path, spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    blocked = out / "clip2.txt"
    (blocked / "something").mkdir(parents=True)  # a directory where an output goes
    assert run(str(clips), "--out-dir", str(out)) == 1
    err = capsys.readouterr().err
    assert f"failed: {clips / 'clip2.wav'}: OutputError: {blocked}: cannot write output" in err
    assert f"{N_CLIPS - 1} transcribed, 0 already done, 1 failed" in err
    assert len(ok_sources(out / JOURNAL_NAME)) == N_CLIPS - 1

    (blocked / "something").rmdir()
    blocked.rmdir()
    assert run(str(clips), "--out-dir", str(out), "--resume") == 0
    assert "1 transcribed, 5 already done, 0 failed" in capsys.readouterr().err
    assert blocked.read_text(encoding="utf-8") == "hello clip2\n"


def test_a_file_where_an_output_folder_goes_is_those_inputs_error(
    tmp_path: Path, spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("day1/a.wav", "day2/b.wav"):
        write_clip(tmp_path / "in" / name)
    out = tmp_path / "out"
    out.mkdir()
    (out / "day2").write_text("a file where a folder goes", encoding="utf-8")
    assert run(str(tmp_path / "in"), "--out-dir", str(out)) == 1
    err = capsys.readouterr().err
    assert (
        f"failed: {tmp_path / 'in' / 'day2' / 'b.wav'}: OutputError: {out / 'day2' / 'b.txt'}"
        in err
    )
    assert (out / "day1" / "a.txt").is_file()
    (out / "day2").unlink()
    assert run(str(tmp_path / "in"), "--out-dir", str(out), "--resume") == 0
    assert (out / "day2" / "b.txt").read_text(encoding="utf-8") == "hello b\n"


def test_an_unwritable_output_folder_is_those_inputs_error(
    tmp_path: Path, spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    """Permission denied even for root: an immutable folder (chattr +i)."""
    for name in ("day1/a.wav", "day2/b.wav", "day3/c.wav"):
        write_clip(tmp_path / "in" / name)
    out = tmp_path / "out"
    (out / "day2").mkdir(parents=True)
    if shutil.which("chattr") is None:
        pytest.skip("no chattr(1) here: immutable folders are an ext4/tmpfs attribute")
    made = subprocess.run(["chattr", "+i", str(out / "day2")], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {made.stderr.strip()!r}")
    try:
        assert run(str(tmp_path / "in"), "--out-dir", str(out)) == 1
        err = capsys.readouterr().err
        assert f"failed: {tmp_path / 'in' / 'day2' / 'b.wav'}: OutputError" in err
        assert "Operation not permitted" in err
        assert sorted(p.name for p in out.rglob("*.txt")) == ["a.txt", "c.txt"]
    finally:
        subprocess.run(["chattr", "-i", str(out / "day2")], check=True)
    assert run(str(tmp_path / "in"), "--out-dir", str(out), "--resume") == 0
    assert (out / "day2" / "b.txt").read_text(encoding="utf-8") == "hello b\n"


# -- 7. one job per out-dir; what resume checks ----------------------------------------


@pytest.mark.parametrize("resume", [False, True])
def test_a_second_run_on_a_busy_out_dir_refuses_and_truncates_nothing(
    clips: Path, tmp_path: Path, resume: bool
) -> None:
    out = tmp_path / "out"
    first = cli_child(str(clips), "--out-dir", str(out), hang_after=2)
    wait_for(lambda: len(ok_sources(out / JOURNAL_NAME)) == 2)
    journal = (out / JOURNAL_NAME).read_bytes()
    second = cli_child(str(clips), "--out-dir", str(out), *(["--resume"] if resume else []))
    err = stopped(second, 60)
    assert second.returncode == 3
    line = one_line_error(err)
    assert "another speakeasy-core job is running on this output folder" in line
    assert str(out) in line
    assert (out / JOURNAL_NAME).read_bytes() == journal

    first.kill()  # the OS releases the lock of a dead process
    first.communicate()
    third = cli_child(str(clips), "--out-dir", str(out), "--resume")
    err = stopped(third, 60)
    assert third.returncode == 0, err
    assert len(ok_sources(out / JOURNAL_NAME)) == N_CLIPS


def test_resume_rewrites_deleted_outputs_and_new_formats_from_the_journal(
    clips: Path, tmp_path: Path, spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run(str(clips), "--out-dir", str(out)) == 0
    (out / "clip3.txt").unlink()
    capsys.readouterr()
    assert (
        run(str(clips), "--out-dir", str(out), "--resume", "--format", "txt", "--format", "json")
        == 0
    )
    assert spy.transcribed == N_CLIPS  # the first run's only: nothing transcribed again
    assert f"0 transcribed, {N_CLIPS} already done ({N_CLIPS} with outputs rewritten)" in (
        capsys.readouterr().err
    )
    assert (out / "clip3.txt").read_text(encoding="utf-8") == "hello clip3\n"
    for i in range(N_CLIPS):
        data = json.loads((out / f"clip{i}.json").read_text(encoding="utf-8"))
        assert data["text"] == f"hello clip{i}"
        assert data["source"] == str(clips / f"clip{i}.wav")
    assert run(str(clips), "--out-dir", str(out), "--resume", "--format", "json") == 0
    assert f"0 transcribed, {N_CLIPS} already done, 0 failed" in capsys.readouterr().err


# -- 9. permissions --------------------------------------------------------------------


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes and umask")
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_and_journal_follow_the_umask_and_temp_files_stay_private(
    clips: Path, tmp_path: Path, umask: int, mode: int
) -> None:
    seen: list[tuple[int, int]] = []

    temp = tmp_path / "temp"
    temp.mkdir(mode=0o700)

    def inspects_temp(item: PreparedAudio, options: TranscribeOptions) -> str:
        for workspace in temp.rglob("speakeasy-*"):  # the job's workspace, while it runs
            owner = workspace / OWNER_FILE
            seen.append(
                (stat.S_IMODE(owner.stat().st_mode), stat.S_IMODE(workspace.stat().st_mode))
            )
        return greet(item, options)

    write_clip(clips / "stereo.flac", rate=44100, channels=2)  # converted
    register_backend("modes", lambda **_: MockBackend(inspects_temp))
    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        argv = ["transcribe", "--backend", "modes", "--no-progress", "--temp-dir", str(temp)]
        argv.append(str(clips))
        assert main([*argv, "--out-dir", str(out), "--format", "txt", "--format", "json"]) == 0
    finally:
        os.umask(old)
        unregister_backend("modes")
    for path in [out / JOURNAL_NAME, *out.glob("*.txt"), *out.glob("*.json")]:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path
    assert seen
    assert set(seen) == {(0o600 & ~umask, 0o700 & ~umask)}
