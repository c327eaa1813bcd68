"""The Windows lock simulator behaves like Windows, over the real filesystem."""

from __future__ import annotations

import errno
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakeasy_core.errors import InvalidOptionError
from speakeasy_core.tempfiles import ProcessIdentity, process_alive
from speakeasy_core.testing import (
    ExternalHandle,
    SimulatedClock,
    SimulatedProcesses,
    WindowsLockSimulator,
    windows_error,
)


@pytest.fixture
def sim() -> WindowsLockSimulator:
    return WindowsLockSimulator()


@pytest.fixture
def file(tmp_path: Path) -> Path:
    path = tmp_path / "held.bin"
    path.write_bytes(b"data")
    return path


def winerror(exc: BaseException) -> int | None:
    return getattr(exc, "winerror", None)


def test_windows_error_looks_like_windows(tmp_path: Path) -> None:
    error = windows_error(32, tmp_path / "x")
    assert isinstance(error, PermissionError)
    assert error.errno == errno.EACCES
    assert winerror(error) == 32
    assert error.filename == str(tmp_path / "x")
    with pytest.raises(InvalidOptionError, match="winerror"):
        windows_error(2, tmp_path)


def test_handle_without_share_delete_blocks_delete_and_replace(
    sim: WindowsLockSimulator, file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"new")
    with sim.open_handle(file):
        with pytest.raises(PermissionError) as deleting:
            sim.unlink(file)
        with pytest.raises(PermissionError) as replacing:
            sim.replace(other, file)
        with pytest.raises(PermissionError) as renaming:
            sim.replace(file, tmp_path / "renamed.bin")
        assert winerror(deleting.value) == winerror(renaming.value) == 32
        assert winerror(replacing.value) == 5  # MoveFileExW onto an open file
        assert file.read_bytes() == b"data"
        assert sim.held_paths() == {file}
    sim.unlink(file)
    assert not file.exists()
    assert sim.attempts("unlink", file) == 2


def test_share_delete_handle_leaves_the_name_delete_pending(
    sim: WindowsLockSimulator, file: Path
) -> None:
    handle = sim.open_handle(file, share_delete=True)
    sim.unlink(file)
    assert sim.is_pending(file)
    assert file.exists()  # the name is still taken
    for call in (
        lambda: sim.open_exclusive(file),
        lambda: sim.open_read(file),
        lambda: sim.lstat(file),
        lambda: sim.unlink(file),
    ):
        with pytest.raises(PermissionError) as caught:
            call()
        assert winerror(caught.value) == 5
    handle.close()
    assert not file.exists()
    assert not sim.is_pending(file)
    sim.open_exclusive(file).close()  # the name is free again


def test_lock_clearing_after_attempts(sim: WindowsLockSimulator, file: Path) -> None:
    sim.lock(file, attempts=2, winerror=33)
    for _ in range(2):
        with pytest.raises(PermissionError) as caught:
            sim.unlink(file)
        assert winerror(caught.value) == 33
    sim.unlink(file)
    assert not file.exists()


def test_lock_clearing_after_simulated_seconds(file: Path) -> None:
    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock)
    sim.lock(file, seconds=0.5)
    clock.sleep(0.25)
    with pytest.raises(PermissionError):
        sim.unlink(file)
    clock.sleep(0.25)
    sim.unlink(file)
    assert clock.now == 0.5
    assert clock.sleeps == [0.25, 0.25]


def test_persistent_lock_until_unlock(sim: WindowsLockSimulator, file: Path) -> None:
    sim.lock(file)
    for _ in range(20):
        with pytest.raises(PermissionError):
            sim.unlink(file)
    sim.unlock(file)
    sim.unlink(file)
    assert sim.attempts("unlink", file) == 21


def test_lock_arguments_are_checked(sim: WindowsLockSimulator, file: Path) -> None:
    with pytest.raises(InvalidOptionError, match="seconds"):
        sim.lock(file, attempts=1, seconds=1.0)
    with pytest.raises(InvalidOptionError, match="attempts"):
        sim.lock(file, attempts=0)
    with pytest.raises(InvalidOptionError, match="winerror"):
        sim.lock(file, winerror=2)


def test_injected_permanent_error(sim: WindowsLockSimulator, file: Path) -> None:
    denied = PermissionError(errno.EACCES, "denied", str(file))
    sim.fail(file, denied)
    with pytest.raises(PermissionError) as caught:
        sim.unlink(file)
    assert caught.value is denied
    assert winerror(caught.value) is None


def test_deleting_a_directory_is_access_denied_as_on_windows(
    sim: WindowsLockSimulator, tmp_path: Path
) -> None:
    with pytest.raises(PermissionError) as caught:
        sim.unlink(tmp_path)
    assert winerror(caught.value) == 5


def test_own_handles_lock_until_closed_and_files_are_real(
    sim: WindowsLockSimulator, tmp_path: Path
) -> None:
    path = tmp_path / "tone.wav"
    samples = np.sin(np.linspace(0, 100, 1600)).astype(np.float32)
    handle = sim.open_exclusive(path)
    sf.write(handle, samples, 16000, format="WAV", subtype="PCM_16")
    with pytest.raises(PermissionError):
        sim.unlink(path)  # our own handle is open: the original WinError 32
    sim.fsync(handle)
    handle.close()
    assert sim.was_synced(path)
    assert sim.held_paths() == set()
    decoded, rate = sf.read(path, dtype="float32")
    assert rate == 16000
    np.testing.assert_allclose(decoded, samples, atol=1e-4)
    with sim.open_read(path) as reader:
        assert reader.read(4) == b"RIFF"
        assert sim.held_paths() == {path}
    sim.unlink(path)


def test_release_all_closes_handles_and_drops_locks(
    sim: WindowsLockSimulator, file: Path, tmp_path: Path
) -> None:
    pending = tmp_path / "pending.bin"
    pending.write_bytes(b"")
    sim.open_handle(pending, share_delete=True)
    sim.unlink(pending)
    sim.open_handle(file)
    sim.lock(tmp_path / "x")
    sim.release_all()
    assert sim.held_paths() == set()
    assert not pending.exists()
    sim.unlink(file)


def test_open_handle_needs_an_existing_file(sim: WindowsLockSimulator, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        sim.open_handle(tmp_path / "missing")


def test_simulated_clock_rejects_negative_sleep() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        SimulatedClock().sleep(-1)


def test_simulated_processes() -> None:
    processes = SimulatedProcesses()
    first, second = processes.spawn(), processes.spawn()
    assert first != second
    assert processes.is_alive(first)
    processes.kill(first)
    assert not processes.is_alive(first)
    assert processes.is_alive(second)
    assert process_alive(first)  # another host cannot be checked: never swept by default


def test_external_handle_is_another_process_holding_the_file(tmp_path: Path) -> None:
    path = tmp_path / "held.bin"
    path.write_bytes(b"x")
    with ExternalHandle(path) as holder:
        assert not holder.released
        assert process_alive(ProcessIdentity(holder.pid, platform.node(), None))
        if sys.platform == "linux":  # the child really has it open
            fds = Path(f"/proc/{holder.pid}/fd")
            assert str(path) in {os.readlink(fd) for fd in fds.iterdir()}
    assert holder.released
    again = ExternalHandle(path)
    again.release_after(0.05).join()
    assert again.released
    with pytest.raises(OSError, match="could not hold"):
        ExternalHandle(tmp_path / "missing")
    if sys.platform != "win32":
        with pytest.raises(InvalidOptionError, match="mode"):
            ExternalHandle(path, "share_delete")


def test_delete_semantics_are_checked() -> None:
    with pytest.raises(InvalidOptionError, match="delete_semantics"):
        WindowsLockSimulator(delete_semantics="vista")  # type: ignore[arg-type]


def test_a_share_delete_handle_follows_its_renamed_file(
    sim: WindowsLockSimulator, file: Path, tmp_path: Path
) -> None:
    handle = sim.open_handle(file, share_delete=True)
    moved = tmp_path / "moved.bin"
    sim.replace(file, moved)  # renaming a file shared for delete is allowed
    assert sim.held_paths() == {moved}
    newer = tmp_path / "newer.bin"
    newer.write_bytes(b"new")
    with pytest.raises(PermissionError) as caught:
        sim.replace(newer, moved)
    assert winerror(caught.value) == 5
    handle.close()
    assert sim.held_paths() == set()
    sim.replace(newer, moved)
    assert moved.read_bytes() == b"new"
