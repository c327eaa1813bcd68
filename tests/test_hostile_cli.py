"""The CLI job in a hostile environment, faults injected for real: full and read-only
disks (tmpfs, bind mounts), an ext4 shut down under the job (EIO), real signals to a
real CLI process, a second real process on the same out-dir, blocked output paths."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speakeasy_core.backends import PreparedAudio, register_backend, unregister_backend
from speakeasy_core.cli import main
from speakeasy_core.job import JOURNAL_NAME
from speakeasy_core.journal import read_journal
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions
from tests.hostile import Mounts, cli_child, fill, ok_sources, shut_down, wait_for, write_clip

N_CLIPS = 6
LONG_TEXT = 20_000  # bytes of text per input where a disk must fill up


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


# -- 1. one line, exit 3, before the model loads -----------------------------------------


def test_out_dir_that_is_a_file_fails_before_the_model_loads(
    clips: Path, tmp_path: Path, spy: Spy, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "out"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    assert run(str(clips), "--out-dir", str(blocker)) == 3
    line = one_line_error(capsys.readouterr().err)
    assert str(blocker) in line
    assert "not a directory" in line
    assert spy.loads == 0


def test_out_dir_on_a_read_only_mount_fails_before_the_model_loads(
    clips: Path, tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "ro"
    locked.mkdir()
    mounts.read_only(locked)
    for out in (locked, locked / "new" / "out"):
        assert run(str(clips), "--out-dir", str(out)) == 3
        line = one_line_error(capsys.readouterr().err)
        assert str(locked) in line
        assert "Read-only file system" in line
    assert spy.loads == 0


def test_full_out_disk_at_start_fails_before_the_model_loads(
    clips: Path, tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "64k")
    fill(disk)
    assert run(str(clips), "--out-dir", str(disk / "out")) == 3
    line = one_line_error(capsys.readouterr().err)
    assert str(disk / "out") in line
    assert "No space left on device" in line
    assert spy.loads == 0


def test_unusable_temp_dir_fails_before_the_model_loads(
    clips: Path, tmp_path: Path, spy: Spy, mounts: Mounts, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = tmp_path / "temp"
    temp.mkdir(mode=0o700)
    mounts.read_only(temp)
    assert run(str(clips), "--out-dir", str(tmp_path / "out"), "--temp-dir", str(temp)) == 3
    line = one_line_error(capsys.readouterr().err)
    assert str(temp) in line
    assert "Read-only file system" in line
    assert spy.loads == 0


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


@pytest.mark.parametrize(
    ("signum", "status", "name"),
    [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGHUP, 129, "SIGHUP"), (signal.SIGINT, 130, None)],
)
def test_a_signal_keeps_finished_results_and_removes_the_workspace(
    clips: Path, tmp_path: Path, spy: Spy, signum: int, status: int, name: str | None
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
    _stdout, err = child.communicate(timeout=30)  # hangs forever if the signal is not handled
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


def test_an_ignored_sighup_stays_ignored(clips: Path, tmp_path: Path) -> None:
    """Under ``nohup`` SIGHUP was ignored before the job started: it does not stop it."""
    out = tmp_path / "out"
    child = cli_child(str(clips), "--out-dir", str(out), hang_after=2, ignore=(signal.SIGHUP,))
    wait_for(lambda: len(ok_sources(out / JOURNAL_NAME)) == 2)
    child.send_signal(signal.SIGHUP)
    with pytest.raises(subprocess.TimeoutExpired):
        child.wait(timeout=1)
    child.send_signal(signal.SIGTERM)
    child.communicate(timeout=30)
    assert child.returncode == 143
