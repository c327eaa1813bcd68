"""speakeasy_core.audio: probing, decoding, validation, conversion and writing."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from speakeasy_core import audio
from speakeasy_core.errors import (
    AudioDecodeError,
    EmptyAudioError,
    InputError,
    InputNotFoundError,
    InvalidOptionError,
)
from tests.fixtures.audio import BROKEN_KINDS, EMPTY_KINDS, MakeAudio, tone

FORMATS = [".wav", ".flac", ".ogg", ".opus", ".mp3"]
LOSSLESS = {".wav", ".flac"}


def dominant_frequency(samples: npt.NDArray[np.float32], sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / sample_rate)[spectrum.argmax()])


def assert_released(path: Path) -> None:
    """No descriptor of this process refers to ``path`` and the file can be deleted."""
    fd_dir = Path("/proc/self/fd")
    if fd_dir.is_dir():
        open_targets = set()
        for fd in fd_dir.iterdir():
            try:
                open_targets.add(os.readlink(fd))
            except OSError:
                continue
        assert str(path.resolve()) not in open_targets
    path.unlink()  # fails on Windows while a handle is open
    assert not path.exists()


# --- probe and load_audio: good files -------------------------------------------------


@pytest.mark.parametrize("suffix", FORMATS)
def test_probe_reads_header_of_every_supported_format(make_audio: MakeAudio, suffix: str) -> None:
    rate = 48000 if suffix == ".opus" else 44100  # Opus only encodes 8/12/16/24/48 kHz
    path = make_audio(f"tone{suffix}", seconds=1.0, sample_rate=rate, channels=2)
    info = audio.probe(path)
    status = path.stat()
    # libsndfile cannot decode MP3 in blocks (see speakeasy_core.audio._sndfile): PyAV does
    decoder = {"decoder": "av", "stream": 0, "codec": "mp3float"} if suffix == ".mp3" else {}
    assert info == audio.AudioInfo(
        path=path,
        sample_rate=rate,
        channels=2,
        frames=rate,
        duration=1.0,
        format=suffix.lstrip(".").replace("opus", "ogg"),
        size=status.st_size,
        mtime_ns=status.st_mtime_ns,
        **decoder,  # type: ignore[arg-type]
    )
    assert_released(path)


@pytest.mark.parametrize("suffix", FORMATS)
def test_load_audio_gives_float32_mono_16k_with_the_same_content(
    make_audio: MakeAudio, suffix: str
) -> None:
    rate = 48000 if suffix == ".opus" else 44100
    path = make_audio(f"tone{suffix}", seconds=1.0, sample_rate=rate, channels=2)
    samples = audio.load_audio(path)
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(len(samples) - 16000) <= 1
    assert dominant_frequency(samples, 16000) == pytest.approx(440, abs=2)
    # channels are 0.5 and 0.25 times the sine: their mean has amplitude 0.375
    rms = float(np.sqrt(np.mean(samples[1000:-1000] ** 2)))
    assert rms == pytest.approx(0.375 / np.sqrt(2), rel=0.01 if suffix in LOSSLESS else 0.1)
    assert_released(path)


def test_load_audio_of_a_16k_mono_file_returns_its_samples(wav_16k_mono: Path) -> None:
    expected = sf.read(wav_16k_mono, dtype="float32")[0]
    np.testing.assert_array_equal(audio.load_audio(wav_16k_mono), expected)


def test_probe_accepts_str_paths_and_keeps_them(wav_16k_mono: Path) -> None:
    assert audio.probe(str(wav_16k_mono)).path == wav_16k_mono


@pytest.mark.parametrize(
    ("name", "rate", "channels", "ready"),
    [
        ("a.wav", 16000, 1, True),
        ("a.flac", 16000, 1, True),
        ("a.wav", 16000, 2, False),
        ("a.wav", 8000, 1, False),
        ("a.flac", 44100, 1, False),
        ("a.ogg", 16000, 1, False),
        ("a.mp3", 16000, 1, False),
    ],
)
def test_is_model_ready_only_for_16k_mono_wav_or_flac(
    make_audio: MakeAudio, name: str, rate: int, channels: int, ready: bool
) -> None:
    info = audio.probe(make_audio(name, sample_rate=rate, channels=channels))
    assert audio.is_model_ready(info) is ready


# --- probe and load_audio: bad files ---------------------------------------------------


@pytest.mark.parametrize("func", [audio.probe, audio.load_audio])
def test_missing_file_raises_input_not_found_naming_it(tmp_path: Path, func: Any) -> None:
    missing = tmp_path / "nope.wav"
    with pytest.raises(InputNotFoundError, match=r"nope\.wav") as caught:
        func(missing)
    assert isinstance(caught.value, FileNotFoundError)
    assert caught.value.input == str(missing)


@pytest.mark.parametrize("func", [audio.probe, audio.load_audio])
def test_directory_raises_input_error_naming_it(tmp_path: Path, func: Any) -> None:
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    with pytest.raises(InputError, match="directory") as caught:
        func(folder)
    assert not isinstance(caught.value, AudioDecodeError)
    assert caught.value.input == str(folder)


def test_device_is_not_an_audio_file() -> None:
    with pytest.raises(InputError, match="not a regular file"):
        audio.probe(os.devnull)


@pytest.mark.parametrize("kind", BROKEN_KINDS)
def test_load_audio_of_broken_file_raises_typed_error_and_releases_it(
    broken_audio: dict[str, Path], kind: str
) -> None:
    path = broken_audio[kind]
    expected = EmptyAudioError if kind in EMPTY_KINDS else AudioDecodeError
    with pytest.raises(expected) as caught:
        audio.load_audio(path)
    assert caught.value.input == str(path)
    assert str(path) in str(caught.value)
    if kind not in EMPTY_KINDS:
        assert not isinstance(caught.value, EmptyAudioError)
    assert_released(path)


@pytest.mark.parametrize("kind", [k for k in BROKEN_KINDS if k != "truncated_flac"])
def test_probe_of_broken_file_raises_from_the_header_alone(
    broken_audio: dict[str, Path], kind: str
) -> None:
    expected = EmptyAudioError if kind in EMPTY_KINDS else AudioDecodeError
    with pytest.raises(expected, match=kind):
        audio.probe(broken_audio[kind])


def test_truncated_wav_reports_promised_and_present_sizes(broken_audio: dict[str, Path]) -> None:
    with pytest.raises(AudioDecodeError, match=r"truncated: .* promises \d+ bytes"):
        audio.probe(broken_audio["truncated_data_wav"])


def test_streaming_wav_with_placeholder_size_is_not_truncated(make_audio: MakeAudio) -> None:
    path = make_audio("stream.wav")
    data = bytearray(path.read_bytes())
    data_chunk = data.index(b"data")
    data[data_chunk + 4 : data_chunk + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert len(audio.load_audio(path)) == 16000


def test_truncated_mp3_is_detected(make_audio: MakeAudio) -> None:
    path = make_audio("cut.mp3", seconds=2.0, sample_rate=44100)
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(AudioDecodeError, match=r"truncated: the header promises 88200 frames"):
        audio.load_audio(path)


@pytest.mark.parametrize("kind", ["fake_m4a", "text_as_wav", "random_bytes_wav"])
def test_unreadable_file_says_neither_decoder_reads_it(
    broken_audio: dict[str, Path], kind: str
) -> None:
    with pytest.raises(
        AudioDecodeError, match=r"cannot decode audio \(corrupt or not audio: ffmpeg"
    ):
        audio.load_audio(broken_audio[kind])


def test_nan_samples_pass_probe_but_fail_load(make_audio: MakeAudio) -> None:
    samples = tone(1.0, 16000)
    samples[100] = np.nan
    path = make_audio("nan.wav", samples=samples, subtype="FLOAT")
    assert audio.probe(path).duration == 1.0  # header only: duration is frames / rate
    with pytest.raises(AudioDecodeError, match="NaN or infinite"):
        audio.load_audio(path)


def test_file_with_an_absurd_sample_rate_is_refused(make_audio: MakeAudio) -> None:
    path = make_audio("slow.wav", sample_rate=500)
    with pytest.raises(AudioDecodeError, match="sample rate 500 Hz is outside"):
        audio.probe(path)


def test_file_shorter_than_one_output_sample_is_empty(make_audio: MakeAudio) -> None:
    path = make_audio("one.wav", samples=np.array([0.1], np.float32), sample_rate=44100)
    with pytest.raises(EmptyAudioError, match="shorter than one sample"):
        audio.load_audio(path)


# --- validate_array ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros(16000, np.float32),
        np.zeros((16000, 2), np.float64),
        np.zeros((3, 5), np.int16),  # five channels, three frames: cannot be told apart
        np.zeros(10, np.uint8),
        np.zeros(10, np.float16),
        [0.0, 0.5, -0.5],
    ],
)
def test_validate_array_accepts_audio_and_keeps_dtype_and_shape(samples: Any) -> None:
    result = audio.validate_array(samples, 16000, "x")
    expected = np.asarray(samples)
    assert result.dtype == expected.dtype
    assert result.shape == expected.shape


@pytest.mark.parametrize("rate", [16000, np.int64(44100), 1000, 384000])
def test_validate_array_accepts_integer_rates_in_range(rate: int) -> None:
    audio.validate_array(np.zeros(4, np.float32), rate, "x")


@pytest.mark.parametrize("rate", [16000.0, True, 999, 384001, 0, -16000, "16000", None])
def test_validate_array_rejects_bad_rates_naming_the_label(rate: Any) -> None:
    with pytest.raises(InvalidOptionError, match="my-array") as caught:
        audio.validate_array(np.zeros(4, np.float32), rate, "my-array")
    assert caught.value.option == "sample_rate"


def test_channels_first_array_is_rejected_with_a_hint() -> None:
    with pytest.raises(AudioDecodeError, match=r"looks like \(channels, frames\): pass samples\.T"):
        audio.validate_array(np.zeros((2, 16000), np.float32), 16000, "stereo")


def test_too_many_channels_is_rejected_without_the_transpose_hint() -> None:
    with pytest.raises(AudioDecodeError, match="at most 8 channels") as caught:
        audio.validate_array(np.zeros((100, 9), np.float32), 16000, "wide")
    assert "samples.T" not in str(caught.value)


@pytest.mark.parametrize(
    ("samples", "error", "pattern"),
    [
        (np.zeros(0, np.float32), EmptyAudioError, "no samples"),
        (np.zeros((0, 2), np.float32), EmptyAudioError, "no samples"),
        (np.zeros((16000, 0), np.float32), EmptyAudioError, "no samples"),
        (np.float32(0.5), AudioDecodeError, "expected"),
        (np.zeros((2, 2, 2), np.float32), AudioDecodeError, "expected"),
        (np.array([0.0, np.nan], np.float32), AudioDecodeError, "NaN or infinite"),
        (np.array([0.0, -np.inf]), AudioDecodeError, "NaN or infinite"),
        (np.zeros(4, bool), AudioDecodeError, "dtype bool"),
        (np.zeros(4, complex), AudioDecodeError, "dtype complex"),
        (np.array(["a", "b"]), AudioDecodeError, "dtype <U1"),
        ([[0.0], [0.0, 1.0]], AudioDecodeError, "not an array"),
    ],
)
def test_validate_array_rejects_non_audio_naming_the_label(
    samples: Any, error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern) as caught:
        audio.validate_array(samples, 16000, "<array 7>")
    assert isinstance(caught.value, InputError)
    assert caught.value.input == "<array 7>"


# --- to_mono_16k ------------------------------------------------------------------------


def test_integer_pcm_is_scaled_to_unit_range() -> None:
    int16 = np.array([-32768, 0, 16384, 32767], np.int16)
    np.testing.assert_allclose(
        audio.to_mono_16k(int16, 16000), [-1.0, 0.0, 0.5, 32767 / 32768], rtol=1e-6
    )
    uint8 = np.array([0, 128, 255], np.uint8)
    np.testing.assert_allclose(audio.to_mono_16k(uint8, 16000), [-1.0, 0.0, 127 / 128])
    int32 = np.array([-(2**31), 2**30], np.int32)
    np.testing.assert_allclose(audio.to_mono_16k(int32, 16000), [-1.0, 0.5])


def test_channels_are_averaged() -> None:
    stereo = np.array([[1.0, 0.0], [0.5, -0.5], [-1.0, -0.5]], np.float64)
    result = audio.to_mono_16k(stereo, 16000)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [0.5, 0.0, -0.75])


def test_resampling_keeps_frequency_and_length() -> None:
    samples = tone(2.0, 44100, frequency=1000.0)
    result = audio.to_mono_16k(samples, 44100)
    assert abs(len(result) - 32000) <= 1
    assert dominant_frequency(result, 16000) == pytest.approx(1000, abs=1)


def test_resampling_is_not_circular() -> None:
    """An FFT resampler wraps an impulse at the end round to the start; soxr does not."""
    samples = np.zeros(44100, np.float32)
    samples[-1] = 1.0
    result = audio.to_mono_16k(samples, 44100)
    assert np.abs(result[:8000]).max() < 1e-6


def test_input_shorter_than_one_output_sample_gives_empty_output() -> None:
    assert audio.to_mono_16k(np.array([0.5], np.float32), 44100).size == 0


@given(
    samples=hnp.arrays(np.int16, st.integers(1, 3000)),
    rate=st.integers(audio.MIN_SAMPLE_RATE, 96000),
)
def test_converted_length_follows_the_rate_and_values_stay_bounded(
    samples: npt.NDArray[np.int16], rate: int
) -> None:
    result = audio.to_mono_16k(samples, rate)
    assert result.dtype == np.float32
    assert abs(len(result) - len(samples) * 16000 / rate) <= 1
    assert np.isfinite(result).all()
    if rate == 16000:
        assert np.abs(result).max() <= 1.0


# --- write_wav --------------------------------------------------------------------------


def test_write_wav_to_path_is_pcm16_and_round_trips(tmp_path: Path) -> None:
    samples = tone(0.5, 16000)
    path = tmp_path / "out.wav"
    audio.write_wav(path, samples)
    info = sf.info(path)
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "WAV",
        "PCM_16",
        16000,
        1,
    )
    np.testing.assert_allclose(audio.load_audio(path), samples, atol=1 / 32768)
    assert audio.is_model_ready(audio.probe(path))


def test_write_wav_to_file_object_leaves_it_open(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    audio.write_wav(buffer, np.array([0.25, -0.25], np.float32), sample_rate=8000)
    assert not buffer.closed
    data, rate = sf.read(io.BytesIO(buffer.getvalue()), dtype="int16")
    assert rate == 8000
    assert data.tolist() == [8192, -8192]


def test_write_wav_clips_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    buffer = io.BytesIO()
    with caplog.at_level(logging.WARNING, logger="speakeasy_core.audio"):
        audio.write_wav(buffer, np.array([2.0, -3.0, 0.0], np.float32))
    assert "clipping" in caplog.text
    data, _ = sf.read(io.BytesIO(buffer.getvalue()), dtype="int16")
    assert data.tolist() == [32767, -32768, 0]


def test_write_wav_validates_like_the_rest(tmp_path: Path) -> None:
    with pytest.raises(AudioDecodeError, match=r"out\.wav: contains NaN"):
        audio.write_wav(tmp_path / "out.wav", np.array([np.nan], np.float32))
