"""Prefetch: batches are prepared in worker threads while the model runs, within bounds."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakeasy_core import Transcriber
from speakeasy_core.backends import Capabilities, PreparedAudio
from speakeasy_core.batch import THREAD_PREFIX
from speakeasy_core.errors import AudioDecodeError, InputNotFoundError
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions
from tests.hostile import child_signals, stopped

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, seconds: float, rate: int = 16000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)
    return path


def name_of(item: PreparedAudio, options: TranscribeOptions) -> str:
    return Path(item.key).name


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]


def wait_for(condition: object, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "tmp-root"
    path.mkdir()
    return path


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    """Eight files of decreasing length: batches run in this order at batch_size 1."""
    return [write(tmp_path / f"f{i}.wav", 2.0 - i / 10) for i in range(8)]


def test_the_next_batch_is_prepared_while_the_model_runs(files: list[Path], root: Path) -> None:
    overlapped: list[bool] = []
    backend: MockBackend

    def slow_first(item: PreparedAudio, options: TranscribeOptions) -> str:
        if not overlapped:  # the model is busy with the first batch...
            second = ("collate", (str(files[1]),))
            overlapped.append(wait_for(lambda: second in backend.events))
        return name_of(item, options)

    backend = MockBackend(slow_first)
    results = Transcriber(
        backend, batch_size=1, num_workers=1, workspace_root=root
    ).transcribe_batch(files[:3])
    assert overlapped == [True]  # ...while a worker collated the second
    assert [r.text for r in results] == [f.name for f in files[:3]]


@pytest.mark.parametrize("workers", [1, 3])
def test_never_more_than_the_prefetch_bound_is_prepared_ahead(
    workers: int, files: list[Path], root: Path
) -> None:
    ahead = workers + 1  # the engine's default bound
    seen: list[int] = []  # batches prepared beyond the running one, seen from the model
    backend: MockBackend

    def counts() -> tuple[int, int]:
        """Batches collated beyond those run so far, and those run."""
        events = [what for what, _ in backend.events]
        runs = events.count("run")
        return events.count("collate") - runs, runs

    def patient(item: PreparedAudio, options: TranscribeOptions) -> str:
        # Wait (not sleep: a slow Windows runner decodes slowly) until the workers
        # filled the bound, then give them a moment to overshoot it.
        wanted = min(ahead, len(files) - counts()[1])
        wait_for(lambda: counts()[0] >= wanted)
        time.sleep(0.05)
        seen.append(counts()[0])
        return name_of(item, options)

    backend = MockBackend(patient)
    Transcriber(backend, batch_size=1, num_workers=workers, workspace_root=root).transcribe_batch(
        files
    )
    assert len(seen) == len(files)
    assert max(seen) == ahead  # it prepared ahead, up to the bound and no further


def test_no_workers_prepares_in_the_calling_thread(files: list[Path], root: Path) -> None:
    threads: set[str] = set()

    def record(item: PreparedAudio, options: TranscribeOptions) -> str:
        threads.add(threading.current_thread().name)
        return name_of(item, options)

    backend = MockBackend(record)
    Transcriber(backend, batch_size=2, num_workers=0, workspace_root=root).transcribe_batch(files)
    # Without workers a batch is collated right before it runs, never ahead.
    assert [what for what, _ in backend.events] == ["collate", "run"] * 4
    assert threads == {threading.current_thread().name}
    assert prefetch_threads() == []


@pytest.mark.parametrize("workers", [0, 2])
def test_per_file_errors_are_the_same_with_any_worker_count(
    workers: int, tmp_path: Path, root: Path
) -> None:
    good = [write(tmp_path / f"g{i}.wav", 1.0 + i / 10) for i in range(4)]
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + b"\x00" * 40)
    inputs = [good[0], tmp_path / "missing.wav", good[1], corrupt, good[2], good[3]]
    results = Transcriber(
        MockBackend(name_of), batch_size=2, num_workers=workers, workspace_root=root
    ).transcribe_batch(inputs)
    assert [r.text for r in results if r.ok] == [p.name for p in good]
    assert [r.error_type for r in results if not r.ok] == [
        InputNotFoundError.__name__,
        AudioDecodeError.__name__,
    ]


def test_a_long_input_is_batched_as_its_pieces_are_decoded(tmp_path: Path, root: Path) -> None:
    long = write(tmp_path / "long.wav", 20.0)
    backend = MockBackend(name_of, Capabilities(max_duration=1.0))
    [result] = Transcriber(
        backend, batch_size=2, num_workers=1, workspace_root=root
    ).transcribe_batch([long])
    assert result.ok
    assert result.duration == pytest.approx(20.0)
    kinds = [what for what, _ in backend.events]
    assert kinds.count("run") >= 10
    # The first pieces reach the model before the last ones are even decoded.
    assert kinds.index("run") < len(kinds) - 1 - kinds[::-1].index("collate")
    pieces = [p for batch in backend.batches for p in batch]
    assert sum(p.duration for p in pieces) == pytest.approx(20.0)
    assert max(len(batch) for batch in backend.batches) == 2


def test_ctrl_c_in_the_model_stops_the_workers_and_leaves_nothing(
    files: list[Path], root: Path
) -> None:
    calls = 0

    def interrupt_second(item: PreparedAudio, options: TranscribeOptions) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            assert prefetch_threads()  # workers are busy preparing the next batches
            raise KeyboardInterrupt
        return name_of(item, options)

    transcriber = Transcriber(
        MockBackend(interrupt_second), batch_size=1, num_workers=2, workspace_root=root
    )
    with pytest.raises(KeyboardInterrupt):
        transcriber.transcribe_batch(files)
    assert prefetch_threads() == []
    assert sorted(root.rglob("*")) == []


def test_a_failing_input_stream_stops_the_workers_and_leaves_nothing(
    files: list[Path], root: Path
) -> None:
    def broken() -> Iterator[Path]:
        yield from files[:3]
        raise RuntimeError("input stream broke")

    transcriber = Transcriber(
        MockBackend(name_of), batch_size=1, window=2, num_workers=2, workspace_root=root
    )
    done: list[str] = []

    def consume() -> None:
        for _, result in transcriber.iter_completed(broken()):
            done.append(result.text)

    with pytest.raises(RuntimeError, match="input stream broke"):
        consume()
    # What was read before the failure is transcribed and handed out first.
    assert sorted(done) == sorted(f.name for f in files[:3])
    assert prefetch_threads() == []
    assert sorted(root.rglob("*")) == []


def test_stopping_early_stops_the_workers(files: list[Path], root: Path) -> None:
    transcriber = Transcriber(
        MockBackend(name_of), batch_size=1, num_workers=2, workspace_root=root
    )
    stream = transcriber.iter_completed(files)
    next(stream)
    assert prefetch_threads()
    stream.close()
    assert prefetch_threads() == []
    assert sorted(root.rglob("*")) == []


_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from speakeasy_core import Transcriber
    from speakeasy_core.testing import MockBackend

    def slow(item, options):
        print("running", flush=True)
        time.sleep(0.2)
        return "x"

    files = sorted(Path(sys.argv[1]).glob("*.wav"))
    Transcriber(MockBackend(slow), batch_size=1, num_workers=2,
                workspace_root=sys.argv[2]).transcribe_batch(files * 50)
    """
)


@pytest.mark.skipif(os.name == "nt", reason="SIGINT to a child process is POSIX")
def test_a_real_sigint_mid_run_exits_promptly_and_leaves_nothing(
    files: list[Path], root: Path
) -> None:
    with child_signals():
        child = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(files[0].parent), str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert child.stdout is not None
    for _ in range(2):
        assert child.stdout.readline().strip() == "running"
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    stderr = stopped(child)
    assert time.monotonic() - sent < 5
    assert child.returncode != 0
    assert "KeyboardInterrupt" in stderr
    assert sorted(root.rglob("*")) == []


def test_a_deferred_step_runs_once_wherever_it_is_reached_first() -> None:
    from speakeasy_core.batch._prefetch import Deferred, Prefetcher

    calls: list[str] = []

    def step() -> int:
        calls.append(threading.current_thread().name)
        return len(calls)

    # No workers: the caller runs it, once, however often it asks.
    with Prefetcher(0, 1) as serial:
        deferred = serial.defer(step)
        assert calls == []
        assert deferred.result() == deferred.result() == 1
    assert calls == [threading.current_thread().name]

    # An idle worker runs it first; the caller gets that result without running it.
    calls.clear()
    with Prefetcher(1, 1) as pool:
        deferred = pool.defer(step)
        assert wait_for(lambda: bool(calls))
        assert deferred.result() == 1
    assert len(calls) == 1
    assert calls[0].startswith(THREAD_PREFIX)

    # A busy worker: the caller takes the step over, and the worker skips it later.
    calls.clear()
    release = threading.Event()
    with Prefetcher(1, 1) as pool:
        pool.submit(release.wait)
        deferred = pool.defer(step)
        assert deferred.result() == 1
        release.set()
    assert calls == [threading.current_thread().name]

    # A step's error is raised to whoever asks, every time.
    failing: Deferred[int] = Deferred(lambda: 1 // 0)
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            failing.result()


def test_a_failing_featurize_step_leaves_the_collated_batch_to_the_model(
    files: list[Path], root: Path
) -> None:
    class Featurizing(MockBackend):
        def featurize(self, collated: object) -> object:
            raise RuntimeError("no features today")

    backend = Featurizing(name_of)
    results = Transcriber(
        backend, batch_size=3, num_workers=1, workspace_root=root
    ).transcribe_batch(files)
    assert [r.text for r in results] == [f.name for f in files]
    assert sum(len(batch) for batch in backend.batches) == len(files)
