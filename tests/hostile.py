"""Real faults for the hostile-environment tests: tmpfs and read-only bind mounts, an
ext4 image that can be shut down (EIO), and the real CLI in a child process.

Mounting needs root and mount(8): without them the fixtures skip, saying so.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakeasy_core.cli import STOP_SIGNALS
from speakeasy_core.journal import read_journal
from speakeasy_core.tempfiles import deferred_cleanups

__all__ = [
    "CHILD",
    "Mounts",
    "cli_child",
    "fill",
    "no_pending_cleanups",
    "ok_sources",
    "shut_down",
    "wait_for",
    "write_clip",
]

CHILD = Path(__file__).with_name("hostile_child.py")
# EXT4_IOC_SHUTDOWN = _IOR('X', 125, __u32); NOLOGFLUSH: every later I/O fails with EIO
_EXT4_IOC_SHUTDOWN = 0x8004587D
_EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


class Mounts:
    """Mounts made by one test, all unmounted at its end (``mounts`` fixture)."""

    def __init__(self, scratch: Path) -> None:
        self._scratch = scratch
        self._mounted: list[Path] = []

    def tmpfs(self, where: Path, size: str) -> Path:
        """A tmpfs of ``size`` (``64k``, ``1m``) mounted on ``where`` (created)."""
        where.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where))
        self._mounted.append(where)
        return where

    def resize(self, where: Path, size: str) -> None:
        """Grow (free space on) a tmpfs made by :meth:`tmpfs`."""
        _run("mount", "-o", f"remount,size={size}", str(where))

    def read_only(self, where: Path) -> Path:
        """Make the existing directory ``where`` a read-only bind mount of itself."""
        _run("mount", "--bind", str(where), str(where))
        self._mounted.append(where)
        _run("mount", "-o", "remount,bind,ro", str(where))
        return where

    def ext4(self, where: Path, size_mb: int = 8) -> Path:
        """A fresh ext4 filesystem in a loop-mounted image, on ``where``."""
        image = self._scratch / f"{where.name}.img"
        with image.open("wb") as handle:
            handle.truncate(size_mb << 20)
        _run("mkfs.ext4", "-q", "-F", str(image))
        where.mkdir(parents=True, exist_ok=True)
        _run("mount", "-o", "loop", str(image), str(where))
        self._mounted.append(where)
        return where

    def remount(self, where: Path) -> None:
        """Unmount the ext4 made by :meth:`ext4` on ``where`` and mount it again."""
        _run("umount", str(where))
        _run("mount", "-o", "loop", str(self._scratch / f"{where.name}.img"), str(where))

    def unmount(self, where: Path) -> None:
        self._mounted.remove(where)
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)

    def close(self) -> None:
        for where in reversed(self._mounted):
            subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
        self._mounted.clear()


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    if os.name != "posix" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs or a read-only bind mount needs root and mount(8)")
    probe = tmp_path / "mount-probe"
    probe.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(probe)],
        capture_output=True,
        check=False,
    )
    if made.returncode != 0:
        pytest.skip(f"mount is not permitted here: {made.stderr.decode().strip()}")
    _run("umount", str(probe))
    scratch = tmp_path / "mount-scratch"
    scratch.mkdir()
    made_mounts = Mounts(scratch)
    try:
        yield made_mounts
    finally:
        made_mounts.close()


@pytest.fixture
def no_pending_cleanups() -> Iterator[None]:
    """Fail a test that leaves a workspace cleanup pending (it would leak into others)."""
    yield
    assert deferred_cleanups() == (), "a test left a workspace cleanup pending"


def shut_down(mountpoint: Path) -> None:
    """Shut an ext4 filesystem down: from now on its reads and writes fail with EIO."""
    fd = os.open(mountpoint, os.O_RDONLY)
    try:
        import fcntl  # POSIX only, like the mounts

        fcntl.ioctl(fd, _EXT4_IOC_SHUTDOWN, struct.pack("I", _EXT4_GOING_FLAGS_NOLOGFLUSH))
    finally:
        os.close(fd)


def fill(folder: Path, leave: int = 0) -> Path:
    """Fill ``folder``'s filesystem to the last byte, then free ``leave`` bytes again."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as handle:
        for chunk in (1 << 16, 1 << 12, 1):
            try:
                while handle.write(b"\0" * chunk):
                    pass
            except OSError:
                pass
    if leave:
        os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def write_clip(path: Path, seconds: float = 0.5, rate: int = 16000, channels: int = 1) -> Path:
    """A quiet tone file (16 kHz mono wav is used in place; anything else is converted)."""
    frames = int(seconds * rate)
    samples = np.full((frames, channels), 0.1, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:  # soundfile's own path encoding fails odd names
        sf.write(handle, samples, rate, format=path.suffix.lstrip(".").upper())
    return path


def ok_sources(journal: Path) -> list[str]:
    """Inputs with a finished result in ``journal`` (a partial last line is ignored)."""
    if not journal.exists():
        return []
    return [result.source for _, result in read_journal(journal) if result.ok]


def wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the child job")
        time.sleep(0.05)


@contextmanager
def child_signals(ignore: tuple[int, ...] = ()) -> Iterator[None]:
    """For starting a child: SIGINT and the stop signals at their defaults, those in
    ``ignore`` ignored. An ignored disposition is inherited through exec, so without
    this a child started under ``nohup pytest`` (or a shell's background job) would
    ignore SIGHUP (or SIGINT) too."""
    dispositions = {number: signal.SIG_DFL for number in (signal.SIGINT, *STOP_SIGNALS)}
    dispositions |= {number: signal.SIG_IGN for number in ignore}
    previous = {number: signal.signal(number, how) for number, how in dispositions.items()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def cli_child(
    *args: str,
    hang_after: int = 0,
    text_bytes: int = 0,
    ignore: tuple[int, ...] = (),
    finalizer: bool = False,
) -> subprocess.Popen[str]:
    """The real CLI (``speakeasy_core.cli.main``) in a child process, on the
    ``slowmock`` backend; it hangs in the backend after ``hang_after`` results (0:
    never), answers ``text_bytes`` of text per input (default: a short greeting), and
    starts with the signals in ``ignore`` ignored (as ``nohup`` does) and the others at
    their defaults (:func:`child_signals`). With
    ``finalizer`` it runs a slow ``__del__`` first, writing ``finalizing`` to stderr."""
    command = [sys.executable, str(CHILD), str(hang_after), str(text_bytes)]
    command += ["transcribe", "--backend", "slowmock", "--no-progress", "--batch-size", "1"]

    env = {**os.environ, "SLOWMOCK_FINALIZER": "1"} if finalizer else None
    with child_signals(ignore):
        return subprocess.Popen(
            [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )


def stopped(child: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """Wait for ``child`` to exit; its stderr. A child still running after ``timeout``
    is killed, and the failure shows what it had written."""
    try:
        return child.communicate(timeout=timeout)[1]
    except subprocess.TimeoutExpired:
        child.kill()
        err = child.communicate()[1]
        raise AssertionError(f"the child did not stop in {timeout} s; its stderr:\n{err}") from None
