"""speakeasy_core.audio.iter_pieces: streaming decode equals the whole-file path, bounded
memory, handles closed, and files that change after probing refused."""

from __future__ import annotations

import gc
import os
import shutil
import sys
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from speakeasy_core import audio
from speakeasy_core.errors import (
    AudioDecodeError,
    EmptyAudioError,
    InputChangedError,
    InvalidOptionError,
)
from tests.fixtures.audio import MakeAudio

RATE = audio.TARGET_SAMPLE_RATE
SNDFILE_FORMATS = [".wav", ".flac", ".ogg", ".opus", ".mp3"]


def speechlike(
    seconds: float, sample_rate: int, channels: int, seed: int
) -> npt.NDArray[np.float32]:
    """Noise bursts of 0.3-2 s separated by 0.05-0.5 s of silence, ``(frames, channels)``."""
    rng = np.random.default_rng(seed)
    total = round(seconds * sample_rate)
    out = np.zeros((total, channels), np.float32)
    position = 0
    while position < total:
        burst = int(rng.uniform(0.3, 2.0) * sample_rate)
        out[position : position + burst] = 0.3 * rng.standard_normal(
            (min(burst, total - position), channels)
        )
        position += burst + int(rng.uniform(0.05, 0.5) * sample_rate)
    return out


def reference_spans(samples: npt.NDArray[np.float32], max_duration: float) -> list[tuple[int, int]]:
    """Cut points written out plainly: quietest 20 ms frame (latest of ties) in the last
    5 s (at most half the limit) before each boundary."""
    limit = max(1, int(max_duration * RATE))
    window = min(5 * RATE, limit // 2)
    frame = int(0.02 * RATE)
    spans, start = [], 0
    while len(samples) - start > limit:
        boundary = start + limit
        count = window // frame
        cut = boundary
        if count >= 2:
            lo = boundary - window
            energies = [
                np.square(samples[lo + k * frame : lo + (k + 1) * frame]).sum()
                for k in range(count)
            ]
            best = min(energies)
            cut = lo + max(k for k, e in enumerate(energies) if e == best) * frame
        spans.append((start, cut))
        start = cut
    spans.append((start, len(samples)))
    return spans


def todays_pieces(
    data: npt.NDArray[np.float32], sample_rate: int, max_duration: float | None
) -> list[tuple[float, npt.NDArray[np.float32]]]:
    """Today's path: the whole input in memory, channels averaged, one-shot soxr, cut."""
    mono = data.mean(axis=1, dtype=np.float32) if data.ndim == 2 else data
    if sample_rate != RATE:
        mono = soxr.resample(mono, sample_rate, RATE, quality="HQ")
    spans = [(0, len(mono))] if max_duration is None else reference_spans(mono, max_duration)
    return [(lo / RATE, mono[lo:hi]) for lo, hi in spans]


def assert_same_pieces(
    pieces: list[audio.AudioPiece],
    expected: list[tuple[float, npt.NDArray[np.float32]]],
    atol: float = 0.0,
) -> None:
    assert [p.offset for p in pieces] == [offset for offset, _ in expected]
    for piece, (_, samples) in zip(pieces, expected, strict=True):
        assert piece.samples.dtype == np.float32
        assert piece.samples.flags.c_contiguous
        np.testing.assert_allclose(piece.samples, samples, rtol=0, atol=atol)


def open_paths() -> set[str]:
    """What this process's descriptors point at (Linux)."""
    targets = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            targets.add(os.readlink(fd))
        except OSError:
            continue
    return targets


needs_proc = pytest.mark.skipif(sys.platform != "linux", reason="lists open handles in /proc")


@pytest.fixture(scope="module")
def long_flac(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """7 s of speech-like stereo noise at 44.1 kHz, FLAC."""
    path = tmp_path_factory.mktemp("stream") / "talk.flac"
    sf.write(path, speechlike(7.0, 44100, 2, seed=1), 44100, subtype="PCM_16")
    return path


CopyOf = Callable[[str], Path]


@pytest.fixture
def copy_of(long_flac: Path, containers: dict[str, Path], tmp_path: Path) -> CopyOf:
    """A private copy (to change or delete) of the ``flac``, ``webm`` or ``m4a`` sample."""
    sources = {
        "flac": long_flac,
        "webm": containers["browser.webm"],
        "m4a": containers["phone.m4a"],
    }

    def copy(kind: str) -> Path:
        return Path(shutil.copy(sources[kind], tmp_path / f"a.{kind}")).resolve()

    return copy


# --- streaming equals today's whole-file path ----------------------------------------


@pytest.mark.parametrize("suffix", SNDFILE_FORMATS)
@pytest.mark.parametrize("max_duration", [None, 2.5])
def test_pieces_of_a_file_equal_todays_whole_file_path(
    make_audio: MakeAudio, suffix: str, max_duration: float | None
) -> None:
    rate = 48000 if suffix == ".opus" else 44100
    path = make_audio(f"talk{suffix}", samples=speechlike(8.0, rate, 2, seed=2), sample_rate=rate)
    whole = sf.read(path, dtype="float32", always_2d=True)[0]
    pieces = list(audio.iter_pieces(path, max_duration, label=str(path), block_frames=5000))
    # MP3 moved from libsndfile's mpg123 to ffmpeg's decoder: equal within 1e-5, same cuts
    atol = 1e-5 if suffix == ".mp3" else 0.0
    assert_same_pieces(pieces, todays_pieces(whole, rate, max_duration), atol)
    if max_duration is not None:
        assert len(pieces) >= 4


@settings(max_examples=25)
@given(
    block_frames=st.integers(256, 40000),
    max_duration=st.floats(0.2, 8.0),
)
def test_any_block_size_gives_todays_pieces_of_a_file(
    long_flac: Path, block_frames: int, max_duration: float
) -> None:
    whole = sf.read(long_flac, dtype="float32", always_2d=True)[0]
    pieces = list(
        audio.iter_pieces(long_flac, max_duration, label="talk", block_frames=block_frames)
    )
    assert_same_pieces(pieces, todays_pieces(whole, 44100, max_duration))


@given(
    seconds=st.floats(0.01, 4.0),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000])
    | st.integers(1000, 96000),
    channels=st.integers(1, 3),
    block_frames=st.integers(1, 30000),
    max_duration=st.none() | st.floats(0.03, 5.0),
    seed=st.integers(0, 2**16),
)
def test_any_block_size_gives_todays_pieces_of_an_array(
    *,
    seconds: float,
    rate: int,
    channels: int,
    block_frames: int,
    max_duration: float | None,
    seed: int,
) -> None:
    data = speechlike(seconds, rate, channels, seed)
    block_frames = max(block_frames, len(data) // 300)  # tiny blocks on short inputs only
    if channels == 1:
        data = data[:, 0]
    expected = todays_pieces(data, rate, max_duration)
    if not len(expected[0][1]):
        with pytest.raises(EmptyAudioError):
            list(
                audio.iter_pieces((data, rate), max_duration, label="x", block_frames=block_frames)
            )
        return
    pieces = list(
        audio.iter_pieces((data, rate), max_duration, label="x", block_frames=block_frames)
    )
    assert_same_pieces(pieces, expected)
    limit = max(1, int(max_duration * RATE)) if max_duration else None
    assert all(limit is None or len(p.samples) <= limit for p in pieces)


@pytest.mark.parametrize("kind", ["phone.m4a", "browser.webm", "two-streams.mkv"])
def test_streamed_containers_equal_one_block_decoding(
    containers: dict[str, Path], kind: str
) -> None:
    path = containers[kind]
    (whole,) = audio.iter_pieces(path, None, label=kind, block_frames=1 << 30)
    streamed = list(audio.iter_pieces(path, 0.3, label=kind, block_frames=700))
    np.testing.assert_array_equal(np.concatenate([p.samples for p in streamed]), whole.samples)
    assert [p.offset for p in streamed] == [
        sum(len(q.samples) for q in streamed[:i]) / RATE for i in range(len(streamed))
    ]


def test_cuts_land_in_the_silences(tmp_path: Path) -> None:
    """Noise with 100 ms gaps every 3 s: every cut of 3.5 s pieces falls in a gap."""
    rng = np.random.default_rng(3)
    data = (0.3 * rng.standard_normal(20 * 44100)).astype(np.float32)
    gaps = [(round((3 * k - 0.1) * 44100), round(3 * k * 44100)) for k in range(1, 7)]
    for lo, hi in gaps:
        data[lo:hi] = 0.0
    path = tmp_path / "gaps.wav"
    sf.write(path, data, 44100, subtype="FLOAT")
    pieces = list(audio.iter_pieces(path, 3.5, label="gaps", block_frames=3000))
    assert len(pieces) == 7
    for piece, (lo, hi) in zip(pieces[1:], gaps, strict=True):
        assert lo / 44100 - 0.001 <= piece.offset <= hi / 44100


def test_load_audio_is_the_single_piece(long_flac: Path) -> None:
    (piece,) = audio.iter_pieces(long_flac, None, label="talk")
    np.testing.assert_array_equal(audio.load_audio(long_flac), piece.samples)
    assert piece.offset == 0.0
    assert piece.duration == pytest.approx(7.0, abs=1 / RATE)


def test_streaming_holds_one_piece_and_one_block_not_the_recording(tmp_path: Path) -> None:
    """The arrays alive while streaming 2 minutes stay far below even the 16 kHz copy."""
    path = tmp_path / "two-minutes.flac"
    with sf.SoundFile(path, "w", 44100, 2, subtype="PCM_16") as out:
        for seed in range(12):
            out.write(speechlike(10.0, 44100, 2, seed))
    whole_16k_bytes = 120 * RATE * 4
    tracemalloc.start()
    try:
        count = sum(1 for _ in audio.iter_pieces(path, 5.0, label="two-minutes"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count >= 24
    assert peak < whole_16k_bytes / 3


# --- errors -----------------------------------------------------------------------------


def test_an_input_shorter_than_one_output_sample_is_empty() -> None:
    with pytest.raises(EmptyAudioError, match="tiny: shorter than one sample"):
        list(audio.iter_pieces((np.array([0.1], np.float32), 44100), 5.0, label="tiny"))


@pytest.mark.parametrize("rate", [0, 16000.0, "16000", True])
def test_a_bad_array_rate_is_an_option_error(rate: object) -> None:
    with pytest.raises(InvalidOptionError, match="sample_rate"):
        list(audio.iter_pieces((np.zeros(100, np.float32), rate), None, label="x"))  # type: ignore[arg-type]


def test_array_errors_name_the_label() -> None:
    with pytest.raises(AudioDecodeError, match="<array 3>: contains NaN"):
        list(audio.iter_pieces((np.array([0.0, np.nan]), 16000), None, label="<array 3>"))


@pytest.mark.parametrize("max_duration", [0.0, -1.0, float("nan")])
def test_a_non_positive_max_duration_is_an_option_error(
    wav_16k_mono: Path, max_duration: float
) -> None:
    with pytest.raises(InvalidOptionError, match="max_duration"):
        list(audio.iter_pieces(wav_16k_mono, max_duration, label="x"))


def test_nan_in_a_file_is_refused_while_streaming(make_audio: MakeAudio) -> None:
    samples = np.zeros(48000, np.float32)
    samples[40000] = np.inf
    path = make_audio("inf.wav", samples=samples, subtype="FLOAT")
    pieces = audio.iter_pieces(path, 1.0, label="inf", block_frames=4000)
    assert next(pieces).offset == 0.0  # the first second is fine and comes first
    with pytest.raises(AudioDecodeError, match=r"inf\.wav: contains NaN or infinite"):
        list(pieces)


# --- handles ----------------------------------------------------------------------------


@needs_proc
@pytest.mark.parametrize("kind", ["flac", "m4a"])
def test_the_handle_is_open_only_while_the_generator_is_suspended(
    copy_of: CopyOf, kind: str
) -> None:
    path = copy_of(kind)
    info = audio.probe(path)
    assert str(path) not in open_paths()

    never_started = audio.iter_pieces(path, 0.5, info=info, label="x")
    assert str(path) not in open_paths()
    del never_started

    exhausted = audio.iter_pieces(path, 0.5, info=info, label="x")
    next(exhausted)
    assert str(path) in open_paths()  # the check can see an open handle
    list(exhausted)
    assert str(path) not in open_paths()

    closed = audio.iter_pieces(path, 0.5, info=info, label="x")
    next(closed)
    closed.close()
    assert str(path) not in open_paths()

    dropped = audio.iter_pieces(path, 0.5, info=info, label="x")
    next(dropped)
    del dropped
    gc.collect()
    assert str(path) not in open_paths()
    path.unlink()


@needs_proc
def test_the_handle_is_closed_after_an_error_mid_stream(make_audio: MakeAudio) -> None:
    path = make_audio("cut.flac", seconds=6.0, sample_rate=44100).resolve()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match="truncated"):
        list(audio.iter_pieces(path, 1.0, label="cut"))
    assert str(path) not in open_paths()


def test_pieces_stream_from_worker_threads(long_flac: Path, containers: dict[str, Path]) -> None:
    sources = [long_flac, containers["phone.m4a"], containers["browser.webm"]] * 2

    def decode(path: Path) -> tuple[str, list[npt.NDArray[np.float32]]]:
        pieces = [p.samples for p in audio.iter_pieces(path, 1.0, label=str(path))]
        return threading.current_thread().name, pieces

    expected = [[p.samples for p in audio.iter_pieces(s, 1.0, label="x")] for s in sources]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(decode, sources))
    assert all(name != threading.main_thread().name for name, _ in results)
    for (_, got), want in zip(results, expected, strict=True):
        assert len(got) == len(want)
        for a, b in zip(got, want, strict=True):
            np.testing.assert_array_equal(a, b)


# --- what the model reads is what was probed (InputChangedError) -------------------------


def _pieces(path: Path, info: audio.AudioInfo) -> Iterator[audio.AudioPiece]:
    return audio.iter_pieces(path, 1.0, info=info, label=str(path))


@pytest.mark.parametrize("kind", ["flac", "webm"])
def test_a_file_truncated_after_probing_is_refused(copy_of: CopyOf, kind: str) -> None:
    path = copy_of(kind)
    info = audio.probe(path)
    os.truncate(path, info.size // 2)  # type: ignore[operator]
    with pytest.raises(
        InputChangedError, match=rf"a\.{kind}: changed since it was probed"
    ) as caught:
        list(_pieces(path, info))
    assert isinstance(caught.value, AudioDecodeError)
    assert f"{info.size} -> {info.size // 2} bytes" in str(caught.value)  # type: ignore[operator]


def test_a_file_replaced_after_probing_is_refused(make_audio: MakeAudio) -> None:
    path = make_audio("a.wav", seconds=2.0)
    info = audio.probe(path)
    other = make_audio("b.wav", seconds=3.0)
    os.replace(other, path)
    with pytest.raises(InputChangedError, match="changed since it was probed"):
        list(_pieces(path, info))


def test_a_file_rewritten_in_place_is_refused(make_audio: MakeAudio) -> None:
    path = make_audio("a.wav", seconds=2.0)
    info = audio.probe(path)
    data = bytearray(path.read_bytes())
    data[-1000:] = bytes(1000)  # same size, other samples
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.mtime_ns + 10**9, info.mtime_ns + 10**9))  # type: ignore[operator]
    with pytest.raises(InputChangedError, match="rewritten in place"):
        list(_pieces(path, info))


def test_a_header_that_changed_under_the_same_size_and_time_is_refused(
    make_audio: MakeAudio,
) -> None:
    path = make_audio("a.wav", seconds=2.0)
    info = audio.probe(path)
    data = bytearray(path.read_bytes())
    rate_field = data.index(b"fmt ") + 12
    data[rate_field : rate_field + 4] = (8000).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    os.utime(path, ns=(info.mtime_ns, info.mtime_ns))  # type: ignore[arg-type]
    with pytest.raises(InputChangedError, match="sample_rate 16000 -> 8000"):
        list(_pieces(path, info))


@pytest.mark.parametrize("kind", ["flac", "webm"])
def test_a_file_cut_short_while_it_streams_is_refused(copy_of: CopyOf, kind: str) -> None:
    path = copy_of(kind)
    info = audio.probe(path)
    pieces = audio.iter_pieces(path, 0.25, info=info, label=str(path), block_frames=1024)
    next(pieces)
    os.truncate(path, 4096)
    with pytest.raises(InputChangedError, match="changed since it was probed"):
        list(pieces)


def test_a_missing_identity_is_not_checked(make_audio: MakeAudio) -> None:
    """An AudioInfo built by hand (no size, no mtime) still decodes."""
    path = make_audio("a.wav", seconds=1.0)
    probed = audio.probe(path)
    info = audio.AudioInfo(
        path, probed.sample_rate, probed.channels, probed.frames, probed.duration, probed.format
    )
    assert len(list(_pieces(path, info))) == 1
