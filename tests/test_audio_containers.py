"""Containers libsndfile cannot read, decoded by PyAV: files made with PyAV's own encoders."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakeasy_core import audio
from speakeasy_core.errors import AudioDecodeError, EmptyAudioError, InvalidOptionError
from tests.fixtures.audio import MakeAudio
from tests.fixtures.containers import CONTAINER_KINDS, MakeContainer, Track
from tests.test_audio import assert_released, dominant_frequency

DECODABLE = [kind for kind in CONTAINER_KINDS if kind != "video-only.mp4"]
# name -> (format, codec, sample rate, channels)
EXPECTED = {
    "phone.m4a": ("m4a", "aac", 44100, 2),
    "browser.webm": ("webm", "opus", 48000, 2),
    "mp3-in.mp4": ("mp4", "mp3float", 44100, 2),
    "video.mp4": ("mp4", "aac", 44100, 2),
    "video.mov": ("mov", "aac", 48000, 1),
    "two-streams.mkv": ("mkv", "aac", 44100, 2),
    "windows.wma": ("asf", "wmav2", 44100, 2),
    "voice.amr": ("amr", "amrnb", 8000, 1),
    "old-phone.3gp": ("3gp", "amrnb", 8000, 1),
    "raw.aac": ("aac", "aac", 44100, 2),
}


CopyOf = Callable[[str], Path]


@pytest.fixture
def copy_of(containers: dict[str, Path], tmp_path: Path) -> CopyOf:
    """A private copy of a shared container file (to change or delete)."""

    def copy(kind: str) -> Path:
        return Path(shutil.copy(containers[kind], tmp_path / kind))

    return copy


@pytest.mark.parametrize("kind", DECODABLE)
def test_probe_reads_the_container_header(containers: dict[str, Path], kind: str) -> None:
    info = audio.probe(containers[kind])
    assert (info.format, info.codec, info.sample_rate, info.channels) == EXPECTED[kind]
    assert (info.decoder, info.stream) == ("av", 0)
    assert info.duration == pytest.approx(2.0, abs=0.05)
    assert info.frames == round(info.duration * info.sample_rate)
    assert info.size == containers[kind].stat().st_size
    assert not audio.is_model_ready(info)


@pytest.mark.parametrize("kind", DECODABLE)
def test_every_container_decodes_to_its_tone(containers: dict[str, Path], kind: str) -> None:
    samples = audio.load_audio(containers[kind])
    assert samples.dtype == np.float32
    assert abs(len(samples) - 32000) <= 0.05 * 16000  # codec priming and padding
    assert dominant_frequency(samples, 16000) == pytest.approx(440, abs=2)
    mono = EXPECTED[kind][3] == 1
    rms = float(np.sqrt(np.mean(samples[2000:-2000] ** 2)))
    # stereo channels hold 0.5 and 0.25 times the sine: their mean has amplitude 0.375
    assert rms == pytest.approx((0.5 if mono else 0.375) / np.sqrt(2), rel=0.15)


@pytest.mark.parametrize("kind", ["phone.m4a", "browser.webm", "video.mp4"])
def test_container_handles_are_released(copy_of: CopyOf, kind: str) -> None:
    path = copy_of(kind)
    audio.probe(path)
    assert len(list(audio.iter_pieces(path, 0.5, label=str(path)))) >= 4
    assert_released(path)


def test_the_audio_track_of_a_video_is_decoded(containers: dict[str, Path]) -> None:
    with_video = audio.load_audio(containers["video.mp4"])
    without = audio.load_audio(containers["phone.m4a"])
    np.testing.assert_array_equal(with_video, without)  # same encoder, same tone


def test_first_audio_stream_by_default_and_a_chosen_one_on_request(
    containers: dict[str, Path],
) -> None:
    path = containers["two-streams.mkv"]
    first, second = audio.probe(path), audio.probe(path, stream=1)
    assert (first.stream, first.codec, first.sample_rate, first.channels) == (0, "aac", 44100, 2)
    assert (second.stream, second.codec, second.sample_rate, second.channels) == (
        1,
        "opus",
        48000,
        1,
    )
    (piece,) = audio.iter_pieces(path, None, info=second, label=str(path))
    assert dominant_frequency(piece.samples, 16000) == pytest.approx(1000, abs=2)
    (piece,) = audio.iter_pieces(path, None, info=first, label=str(path))
    assert dominant_frequency(piece.samples, 16000) == pytest.approx(440, abs=2)


def test_asking_for_a_stream_the_file_lacks_names_the_count(
    containers: dict[str, Path], wav_16k_mono: Path
) -> None:
    with pytest.raises(AudioDecodeError, match=r"two-streams\.mkv: audio stream 2 .* has 2"):
        audio.probe(containers["two-streams.mkv"], stream=2)
    with pytest.raises(AudioDecodeError, match=r"audio stream 1 .* has 1"):
        audio.probe(wav_16k_mono, stream=1)
    assert audio.probe(wav_16k_mono, stream=0).decoder == "sndfile"


@pytest.mark.parametrize("stream", [-1, 1.0, True, "1"])
def test_a_bad_stream_option_is_an_option_error(wav_16k_mono: Path, stream: object) -> None:
    with pytest.raises(InvalidOptionError, match="stream"):
        audio.probe(wav_16k_mono, stream=stream)  # type: ignore[arg-type]


def test_a_video_without_audio_says_so(containers: dict[str, Path]) -> None:
    path = containers["video-only.mp4"]
    with pytest.raises(AudioDecodeError, match=r"video-only\.mp4: no audio stream") as caught:
        audio.probe(path)
    assert "holds video" in str(caught.value)
    assert not isinstance(caught.value, EmptyAudioError)
    with pytest.raises(AudioDecodeError, match="no audio stream"):
        list(audio.iter_pieces(path, 10.0, label=str(path)))


def test_an_m4a_cut_in_half_is_corrupt(copy_of: CopyOf) -> None:
    path = copy_of("phone.m4a")  # the index (moov) follows the data: half a file has none
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudioDecodeError, match=r"phone\.m4a: cannot decode audio \(corrupt"):
        audio.probe(path)
    assert_released(path)


@pytest.mark.parametrize("kind", ["browser.webm", "two-streams.mkv"])
def test_a_truncated_stream_is_caught_after_decoding(copy_of: CopyOf, kind: str) -> None:
    path = copy_of(kind)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    info = audio.probe(path)  # the header survives and still promises 2 s
    assert info.duration == pytest.approx(2.0, abs=0.05)
    with pytest.raises(
        AudioDecodeError, match=r"truncated: the header promises \d+ frames \(2\.0\d* s\)"
    ):
        list(audio.iter_pieces(path, None, info=info, label=str(path)))
    assert_released(path)


def test_an_unknown_codec_is_unsupported(make_audio: MakeAudio) -> None:
    path = make_audio("odd-codec.wav")
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ") + 8
    data[fmt : fmt + 2] = struct.pack("<H", 0x1234)  # a format tag no decoder knows
    path.write_bytes(bytes(data))
    with pytest.raises(sf.LibsndfileError):
        sf.info(path)
    with pytest.raises(AudioDecodeError, match=r"odd-codec\.wav: unsupported codec"):
        audio.probe(path)


def test_a_raw_aac_stream_gets_its_duration_from_its_packets(
    containers: dict[str, Path],
) -> None:
    """ffmpeg estimates a raw stream's duration from the bit rate; we count packets."""
    path = containers["raw.aac"]
    info = audio.probe(path)
    (piece,) = audio.iter_pieces(path, None, info=info, label=str(path))
    assert abs(piece.duration - info.duration) < 0.03


def test_a_16k_mono_flac_in_matroska_is_decoded_but_not_used_in_place(
    make_container: MakeContainer,
) -> None:
    path = make_container("speech.mka", [Track("flac", 16000, 1)])
    info = audio.probe(path)
    assert (info.decoder, info.sample_rate, info.channels, info.format) == ("av", 16000, 1, "mka")
    assert not audio.is_model_ready(info)
    assert abs(len(audio.load_audio(path)) - 32000) <= 1
