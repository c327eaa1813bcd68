"""The real CLI in a real pseudo-terminal: what a person sees on a 1-hour recording and
on a folder. The backend (``tests/progress_child.py``) takes a fixed time per piece."""

from __future__ import annotations

import os
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

termios = pytest.importorskip("termios", reason="needs a POSIX pseudo-terminal")
import fcntl  # noqa: E402
import pty  # noqa: E402

from tests.test_progress import frames  # noqa: E402

CHILD = Path(__file__).with_name("progress_child.py")
BAR = re.compile(
    r"transcribing: +(?P<percent>\d+)%\|.*\| (?P<done>\S+)/(?P<total>\S+) audio "
    r"\[(?P<elapsed>\S+)<(?P<eta>\S+), (?P<speed>\S+) real time, "
    r"(?P<files>\d+/[\d?]+) files(?:, (?P<failed>\d+) failed)?\]"
)


def in_terminal(
    pace: float, max_duration: float, *args: str, timeout: float = 180
) -> tuple[int, str]:
    """Run the CLI (``transcribe --backend paced ARGS``) on a pseudo-terminal 120
    columns wide; its exit status and everything it showed there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    command = [sys.executable, str(CHILD), str(pace), str(max_duration)]
    command += ["transcribe", "--backend", "paced", *args]
    child = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave)
    os.close(slave)
    shown = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 1.0)[0]:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        else:
            raise AssertionError(f"still running after {timeout} s; it showed:\n{shown.decode()}")
    finally:
        if child.poll() is None:
            child.kill()
        status = child.wait()
        os.close(master)
    return status, shown.decode("utf-8", "replace")


def bars(shown: str) -> list[re.Match[str]]:
    found = [BAR.fullmatch(frame) for frame in frames(shown) if "audio [" in frame]
    assert all(found), frames(shown)
    return [match for match in found if match is not None]


def assert_moving_with_total_and_eta(drawn: list[re.Match[str]], total: str) -> None:
    """Once the inputs are probed, every redraw has the total (while they are being
    probed, an estimate: ``~``); some, part way, an ETA; the numbers move."""
    totals = [m["total"] for m in drawn]
    assert total in totals
    exact = totals.index(total)
    assert set(totals[exact:]) == {total}
    assert all(t == "?" or t.startswith("~") for t in totals[:exact])
    part_way = [m for m in drawn if m["done"] not in ("00:00", total)]
    assert part_way, [m[0] for m in drawn]
    assert all(re.fullmatch(r"(\d+:)?\d\d:\d\d", m["eta"]) for m in part_way)
    assert all(m["speed"].endswith("x") and m["speed"] != "?x" for m in part_way)
    assert len({m["done"] for m in drawn}) >= 3
    assert len({m["elapsed"] for m in drawn}) >= 2


def write_long(path: Path, seconds: int, rate: int = 8000) -> Path:
    """Quiet noise, a minute at a time (8 kHz, as telephone recordings are)."""
    rng = np.random.default_rng(7)
    with sf.SoundFile(path, "w", samplerate=rate, channels=1, subtype="PCM_16") as out:
        for _ in range(seconds // 60):
            out.write((rng.normal(0, 0.02, 60 * rate)).astype(np.float32))
    return path


@pytest.mark.slow
def test_a_one_hour_recording_shows_moving_progress_with_total_and_eta(tmp_path: Path) -> None:
    recording = write_long(tmp_path / "meeting.wav", 3600)
    status, shown = in_terminal(0.4, 300, str(recording), "--out-dir", str(tmp_path / "out"))
    assert status == 0, shown
    drawn = bars(shown)
    assert_moving_with_total_and_eta(drawn, "1:00:00")
    # One input, moving by its pieces: not done until all of them are.
    assert {m["files"] for m in drawn[1:] if m["done"] != "1:00:00"} == {"0/1"}
    last = drawn[-1]
    assert (last["percent"], last["done"], last["files"]) == ("100", "1:00:00", "1/1")
    assert "1 transcribed, 0 already done, 0 failed, of 1 inputs" in shown


@pytest.mark.slow
@pytest.mark.parametrize("out_dir", [True, False], ids=["job", "printed"])
def test_a_folder_shows_moving_progress_and_warnings_above_the_bar(
    tmp_path: Path, out_dir: bool
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(7):
        sf.write(folder / f"clip{i}.wav", rng.normal(0, 0.05, 20 * 16000), 16000)
    (folder / "notes.wav").write_text("not audio", encoding="utf-8")
    args = [str(folder), "--batch-size", "1"]
    args += ["--out-dir", str(tmp_path / "out")] if out_dir else []
    status, shown = in_terminal(0.3, 0, *args)

    assert status == 1, shown
    drawn = bars(shown)
    assert_moving_with_total_and_eta(drawn, "02:20")
    last = drawn[-1]
    assert (last["percent"], last["done"], last["files"], last["failed"]) == (
        "100",
        "02:20",
        "8/8",
        "1",
    )
    lines = frames(shown)
    warning = [line for line in lines if "skipping" in line]
    assert len(warning) == 1, lines
    assert re.fullmatch(r"WARNING speakeasy_core\.\S+: skipping \S+notes\.wav: .*", warning[0])
    if not out_dir:
        assert [line for line in lines if line.startswith("hello")] == [
            f"hello clip{i}" for i in range(7)
        ]
