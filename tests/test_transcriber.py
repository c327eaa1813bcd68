"""The Transcriber and batch engine, driven by the MockBackend (no model needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from speakeasy_core import Transcriber
from speakeasy_core.backends import BackendOutput, Capabilities, PreparedAudio
from speakeasy_core.batch import AudioArray, AudioInput, plan_batches
from speakeasy_core.errors import (
    AudioDecodeError,
    EmptyAudioError,
    InputNotFoundError,
    InvalidOptionError,
)
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions, Word


def tone(seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def write(path: Path, seconds: float, rate: int = 16000, channels: int = 1) -> Path:
    sf.write(path, tone(seconds, rate, channels), rate)
    return path


def text_of(item: PreparedAudio, options: TranscribeOptions) -> str:
    return f"{Path(item.key).name}:{item.duration:.1f}"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The workspace root; tests assert it holds nothing of ours afterwards."""
    path = tmp_path / "tmp-root"
    path.mkdir()
    return path


def leftovers(root: Path) -> list[Path]:
    return sorted(root.rglob("*"))


@given(
    durations=st.lists(st.floats(0, 100), max_size=60),
    batch_size=st.integers(1, 17),
)
def test_plan_batches_keeps_every_item_once_and_groups_similar_lengths(
    durations: list[float], batch_size: int
) -> None:
    items = list(range(len(durations)))
    batches = plan_batches(items, durations, batch_size)
    assert sorted(i for batch in batches for i in batch) == items
    assert all(1 <= len(batch) <= batch_size for batch in batches)
    flat = [durations[i] for batch in batches for i in batch]
    assert flat == sorted(flat, reverse=True)


@given(
    durations=st.lists(st.floats(0, 400), max_size=60),
    batch_size=st.integers(1, 17),
    batch_duration=st.floats(1, 1000),
)
def test_plan_batches_bounds_padded_seconds_per_batch(
    durations: list[float], batch_size: int, batch_duration: float
) -> None:
    items = list(range(len(durations)))
    batches = plan_batches(items, durations, batch_size, batch_duration)
    assert sorted(i for batch in batches for i in batch) == items
    for batch in batches:
        padded = len(batch) * max(durations[i] for i in batch)
        # At most batch_duration padded seconds, unless one item alone is longer.
        assert len(batch) == 1 or padded <= batch_duration
        assert len(batch) <= batch_size
    # Each batch but the last is as full as the bound allows.
    for batch in batches[:-1]:
        longest = durations[batch[0]]
        fits = batch_size if longest * batch_size <= batch_duration else batch_duration // longest
        assert len(batch) == max(1, min(batch_size, fits))


def test_mixed_inputs_in_order_with_per_item_errors(tmp_path: Path, root: Path) -> None:
    ready = write(tmp_path / "ready.wav", 1.0)
    stereo = write(tmp_path / "stereo.flac", 2.0, rate=44100, channels=2)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF" + b"\x00" * 40)
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    missing = tmp_path / "missing.wav"
    backend = MockBackend(text_of)
    inputs: list[AudioInput] = [
        ready,
        missing,
        AudioArray(tone(3.0, 8000), 8000, "clip"),
        corrupt,
        stereo,
        empty,
    ]

    results = Transcriber(backend, batch_size=2, workspace_root=root).transcribe_batch(inputs)

    assert [r.source for r in results] == [
        str(ready),
        str(missing),
        "clip",
        str(corrupt),
        str(stereo),
        str(empty),
    ]
    assert [r.text for r in results if r.ok] == ["ready.wav:1.0", "clip:3.0", "stereo.flac:2.0"]
    errors = {Path(r.source).name: r.error_type for r in results if not r.ok}
    assert errors == {
        "missing.wav": InputNotFoundError.__name__,
        "corrupt.wav": AudioDecodeError.__name__,
        "empty.wav": EmptyAudioError.__name__,
    }
    assert all(r.backend == "mock" and r.model == "mock-model" for r in results)
    assert results[0].duration == pytest.approx(1.0)
    # batched longest first; every input reaches the backend as 16 kHz mono samples
    assert [[Path(p.key).name for p in batch] for batch in backend.batches] == [
        ["clip", "stereo.flac"],
        ["ready.wav"],
    ]
    used = {Path(p.key).name: p.samples for batch in backend.batches for p in batch}
    assert np.array_equal(used["ready.wav"], sf.read(ready, dtype="float32")[0])
    assert used["stereo.flac"].shape == (32000,)
    assert leftovers(root) == []


def test_converted_audio_is_16k_mono(tmp_path: Path, root: Path) -> None:
    seen: dict[str, tuple[np.dtype[np.float32], int, float]] = {}

    def inspect(item: PreparedAudio, options: TranscribeOptions) -> str:
        seen[item.key] = (item.samples.dtype, item.samples.ndim, item.duration)
        return ""

    stereo = write(tmp_path / "s.wav", 1.5, rate=48000, channels=2)
    Transcriber(MockBackend(inspect), workspace_root=root).transcribe_batch([stereo])
    dtype, ndim, duration = seen[str(stereo)]
    assert (dtype, ndim) == (np.float32, 1)
    assert duration == pytest.approx(1.5, abs=1e-3)


def test_one_bad_item_is_isolated_by_splitting(tmp_path: Path, root: Path) -> None:
    paths = [write(tmp_path / f"f{i}.wav", 1.0 + i / 10) for i in range(8)]

    def handler(item: PreparedAudio, options: TranscribeOptions) -> str:
        if item.key.endswith("f5.wav"):
            raise RuntimeError("decoder exploded")
        return "ok"

    backend = MockBackend(handler)
    results = Transcriber(backend, batch_size=8, workspace_root=root).transcribe_batch(paths)
    assert [r.ok for r in results] == [i != 5 for i in range(8)]
    assert "decoder exploded" in (results[5].error or "")
    assert results[5].error_type == "TranscriptionError"
    # 8 -> 4+4 -> 2+2 -> 1+1: the culprit is found in log2(n) levels, not n calls
    assert len(backend.batches) <= 1 + 2 * 3
    assert leftovers(root) == []


def test_device_error_reloads_the_model_and_continues(tmp_path: Path, root: Path) -> None:
    failures = iter([True])

    def handler(item: PreparedAudio, options: TranscribeOptions) -> str:
        if next(failures, False):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return "fine"

    backend = MockBackend(handler)
    results = Transcriber(backend, workspace_root=root).transcribe_batch(
        [write(tmp_path / "a.wav", 1.0)]
    )
    assert results[0].text == "fine"
    assert backend.loads == 2


def test_long_audio_is_split_and_merged(tmp_path: Path, root: Path) -> None:
    def words(item: PreparedAudio, options: TranscribeOptions) -> BackendOutput:
        return BackendOutput(
            f"piece{item.duration:.0f}",
            words=(Word("a", 0.1, 0.5), Word("b", item.duration - 0.5, item.duration + 9)),
        )

    long = write(tmp_path / "long.wav", 7.0)
    backend = MockBackend(words, Capabilities(max_duration=2.0, timestamps=True))
    (result,) = Transcriber(backend, workspace_root=root, timestamps=True).transcribe_batch([long])
    pieces = [p for batch in backend.batches for p in batch]
    assert len(pieces) == 4
    assert all(p.duration <= 2.0 for p in pieces)
    assert sum(p.duration for p in pieces) == pytest.approx(7.0)
    assert result.duration == pytest.approx(7.0)
    assert result.text.count("piece") == 4
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    assert all(0 <= w.start <= w.end <= 7.0 for w in result.words)
    assert leftovers(root) == []


def test_batches_are_bounded_by_seconds_of_audio(tmp_path: Path, root: Path) -> None:
    """Short files and the pieces of a long one: no call over batch_duration padded."""
    backend = MockBackend(text_of, Capabilities(max_duration=10.0))
    short = [write(tmp_path / f"s{i}.wav", 4.0) for i in range(6)]
    long = tone(95.0)
    transcriber = Transcriber(backend, batch_size=16, batch_duration=25.0, workspace_root=root)
    results = transcriber.transcribe_batch([*short, long], sample_rate=16000)
    assert all(result.ok for result in results)
    assert results[-1].duration == pytest.approx(95.0)
    sizes = sorted(len(batch) for batch in backend.batches)
    # Six 4 s files: 6 per call by seconds (24 s). Ten pieces of up to 10 s: 2 per call.
    assert sizes == [2, 2, 2, 2, 2, 6]
    assert all(len(b) * max(p.duration for p in b) <= 25.0 for b in backend.batches)

    unbounded = MockBackend(text_of, Capabilities(max_duration=10.0))
    unbound = Transcriber(unbounded, batch_size=16, batch_duration=None, workspace_root=root)
    unbound.transcribe_batch([*short, long], sample_rate=16000)
    assert sorted(len(batch) for batch in unbounded.batches) == [6, 10]


def test_batch_duration_must_be_positive(root: Path) -> None:
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(InvalidOptionError, match="batch_duration"):
            Transcriber(MockBackend(text_of), batch_duration=bad, workspace_root=root)


def test_interrupt_cleans_the_workspace(tmp_path: Path, root: Path) -> None:
    def interrupt(item: PreparedAudio, options: TranscribeOptions) -> str:
        raise KeyboardInterrupt

    converted = write(tmp_path / "a.wav", 1.0, rate=8000)
    with pytest.raises(KeyboardInterrupt):
        Transcriber(MockBackend(interrupt), workspace_root=root).transcribe_batch([converted])
    assert leftovers(root) == []


def test_single_transcribe_raises_the_typed_error(tmp_path: Path, root: Path) -> None:
    transcriber = Transcriber(MockBackend(text_of), workspace_root=root)
    with pytest.raises(InputNotFoundError) as info:
        transcriber.transcribe(tmp_path / "nope.wav")
    assert info.value.input == str(tmp_path / "nope.wav")
    result = transcriber.transcribe(tone(1.0), sample_rate=16000)
    assert result.text == "<array 0>:1.0"
    with pytest.raises(InvalidOptionError, match="sample_rate"):
        transcriber.transcribe(tone(1.0))


def test_streaming_reads_a_bounded_number_of_windows_ahead(tmp_path: Path, root: Path) -> None:
    path = write(tmp_path / "a.wav", 0.5)
    pulled = 0

    def inputs() -> Iterator[Path]:
        nonlocal pulled
        for _ in range(40):
            pulled += 1
            yield path

    transcriber = Transcriber(MockBackend(text_of), window=8, num_workers=1, workspace_root=root)
    stream = transcriber.iter_transcribe(inputs())
    next(stream)
    # One window per batch here: the one consumed, two prefetched (num_workers + 1),
    # and the window after them being probed.
    assert pulled <= 4 * 8 < 40
    assert sum(1 for _ in stream) == 39


def test_progress_is_reported_for_every_input(tmp_path: Path, root: Path) -> None:
    calls: list[tuple[int, int | None]] = []
    paths = [write(tmp_path / f"{i}.wav", 0.5) for i in range(5)] + [tmp_path / "missing.wav"]
    Transcriber(
        MockBackend(text_of),
        batch_size=2,
        workspace_root=root,
        progress=lambda done, total: calls.append((done, total)),
        show_progress=True,
    ).transcribe_batch(paths)
    assert [done for done, _ in calls] == list(range(1, 7))
    assert {total for _, total in calls} == {6}


def test_options_are_checked_against_the_backend(root: Path) -> None:
    plain = MockBackend(text_of)
    with pytest.raises(InvalidOptionError, match="translate"):
        Transcriber(plain, task="translate").load()
    with pytest.raises(InvalidOptionError, match="timestamps"):
        Transcriber(plain, workspace_root=root).transcribe_batch([], timestamps=True)
    with pytest.raises(InvalidOptionError, match="unknown option"):
        Transcriber(plain, colour="blue")  # type: ignore[call-arg]
    with pytest.raises(InvalidOptionError, match="batch_size"):
        Transcriber(plain, batch_size=0)
    multilingual = MockBackend(
        text_of,
        Capabilities(languages=frozenset({"en", "de"}), translation=True),
    )
    with pytest.raises(InvalidOptionError, match="supported: de, en"):
        Transcriber(multilingual, language="fr").load()
    Transcriber(multilingual, task="translate", language="de", target_language="en").load()


def test_context_manager_loads_and_unloads(root: Path) -> None:
    backend = MockBackend(text_of)
    with Transcriber(backend, workspace_root=root) as transcriber:
        assert backend.loaded
        assert transcriber.capabilities == backend.capabilities
    assert not backend.loaded


def test_creating_a_transcriber_does_not_load_the_model(root: Path) -> None:
    """Loading is lazy: building a Transcriber, checking its backend included, reads no
    capabilities (on Python 3.11 ``isinstance`` on the Protocol would)."""

    class Lazy:
        name, model_name = "lazy", "lazy-model"
        loads = 0

        def load(self) -> None:
            self.loads += 1

        def unload(self) -> None: ...

        @property
        def capabilities(self) -> Capabilities:
            assert self.loads, "capabilities read before load"
            return Capabilities()

        def transcribe_batch(self, *args: object) -> list[BackendOutput]:
            return []

    backend = Lazy()
    transcriber = Transcriber(backend, workspace_root=root)
    assert backend.loads == 0
    transcriber.load()
    assert backend.loads == 1
    with pytest.raises(InvalidOptionError, match="backend"):
        Transcriber(object())  # type: ignore[arg-type]
