"""Audio in: probe and decode files, validate arrays, convert to 16 kHz mono, write wavs.

Files are decoded by libsndfile (through ``soundfile``): WAV, FLAC, OGG/Vorbis, Opus,
MP3 and the other formats it lists, without ffmpeg. Container formats it cannot read
(m4a/mp4/aac, wma, webm, ...) raise :class:`~speakeasy_core.errors.AudioDecodeError`
with a hint to convert them first. Resampling uses soxr (``quality="HQ"``).

Every file is opened by Python and handed to libsndfile as a file object, so the
handle is closed deterministically when a call returns (Windows cannot delete open
files) and missing files, directories and permission problems get typed errors.

``probe`` reads the header only: the duration it reports is ``frames / sample_rate``
whatever the samples hold. ``load_audio`` decodes everything and rejects NaN or
infinite samples (possible in float WAVs), which would poison resampling and the model.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from .errors import (
    AudioDecodeError,
    EmptyAudioError,
    InputError,
    InputNotFoundError,
    InvalidOptionError,
)

__all__ = [
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "TARGET_SAMPLE_RATE",
    "AudioInfo",
    "is_model_ready",
    "load_audio",
    "probe",
    "to_mono_16k",
    "validate_array",
    "write_wav",
]

logger = logging.getLogger(__name__)

TARGET_SAMPLE_RATE = 16000
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
MAX_CHANNELS = 8

_MODEL_READY_FORMATS = frozenset({"wav", "flac"})
# Formats people commonly have that libsndfile cannot decode.
_UNSUPPORTED_SUFFIXES = frozenset(
    {".m4a", ".mp4", ".aac", ".m4b", ".mov", ".wma", ".webm", ".mkv", ".amr", ".3gp"}
)
# libsndfile logs "data : <header size> (should be <bytes present>)" for a WAV whose
# data chunk runs past the end of the file. 0 and 0xFFFFFFFF are streaming placeholders.
_WAV_TRUNCATED = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_WAV_SIZE_PLACEHOLDERS = frozenset({0, 0xFFFFFFFF})
_WAV_FORMATS = frozenset({"wav", "wavex"})
# MP3 frame counts without a Xing/LAME header are estimated from the file size.
_MP3_FRAME_TOLERANCE = 0.01


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says; ``format`` is libsndfile's major format, lower case."""

    path: Path
    sample_rate: int
    channels: int
    frames: int
    duration: float
    format: str


def _decode_error(path: Path, exc: Exception) -> AudioDecodeError:
    reason = f"cannot decode audio ({exc})"
    if path.suffix.lower() in _UNSUPPORTED_SUFFIXES:
        reason += (
            f"; {path.suffix} is not supported without ffmpeg: convert it to WAV or FLAC "
            f"first, e.g. ffmpeg -i {path.name} -ac 1 -ar 16000 {path.stem}.wav"
        )
    return AudioDecodeError(path, reason)


def _os_error(path: Path, exc: OSError) -> InputError:
    if isinstance(exc, FileNotFoundError):
        return InputNotFoundError(path)
    return InputError(path, f"cannot open: {exc.strerror or exc}")


@contextmanager
def _open(path: Path) -> Iterator[sf.SoundFile]:
    """Open ``path`` for decoding, mapping every failure to a typed error naming it."""
    try:
        status = path.stat()
    except OSError as exc:
        raise _os_error(path, exc) from exc
    if stat.S_ISDIR(status.st_mode):
        raise InputError(path, "is a directory, not an audio file")
    if not stat.S_ISREG(status.st_mode):
        raise InputError(path, "not a regular file")
    if status.st_size == 0:
        raise EmptyAudioError(path, "the file is empty (0 bytes)")
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise _os_error(path, exc) from exc
    with handle:
        try:
            sound = sf.SoundFile(handle)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise _decode_error(path, exc) from exc
        with sound:
            yield sound


def _info(path: Path, sound: sf.SoundFile) -> AudioInfo:
    info = AudioInfo(
        path=path,
        sample_rate=int(sound.samplerate),
        channels=int(sound.channels),
        frames=int(sound.frames),
        duration=sound.frames / sound.samplerate,
        format=str(sound.format).lower(),
    )
    if info.frames == 0:
        raise EmptyAudioError(path, "contains no audio frames")
    if not MIN_SAMPLE_RATE <= info.sample_rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            path,
            f"sample rate {info.sample_rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]",
        )
    if info.format in _WAV_FORMATS:
        match = _WAV_TRUNCATED.search(sound.extra_info)
        if match and int(match[1]) not in _WAV_SIZE_PLACEHOLDERS:
            raise AudioDecodeError(
                path,
                f"truncated: the header promises {match[1]} bytes of audio data, "
                f"the file holds {match[2]}",
            )
    return info


def probe(path: str | os.PathLike[str]) -> AudioInfo:
    """Read the header of an audio file (not the samples).

    Raises InputNotFoundError, InputError (a directory, not a regular file,
    unreadable), EmptyAudioError (zero bytes, zero frames) or AudioDecodeError (not
    audio, corrupt, truncated WAV, unsupported container, sample rate outside
    [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]), each naming the path.
    """
    file = Path(path)
    with _open(file) as sound:
        return _info(file, sound)


def load_audio(path: str | os.PathLike[str]) -> npt.NDArray[np.float32]:
    """Decode a whole file to float32 mono 16 kHz samples.

    Raises what :func:`probe` raises, and AudioDecodeError for a stream that breaks
    off before the header's frame count or holds NaN/infinite samples.
    """
    file = Path(path)
    with _open(file) as sound:
        info = _info(file, sound)
        try:
            data = sound.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as exc:
            raise _decode_error(file, exc) from exc
    tolerance = _MP3_FRAME_TOLERANCE * info.frames if info.format == "mp3" else 0
    if len(data) < info.frames - tolerance:
        raise AudioDecodeError(
            file, f"truncated: the header promises {info.frames} frames, {len(data)} decoded"
        )
    samples = to_mono_16k(data, info.sample_rate, label=str(file))
    if samples.size == 0:
        raise EmptyAudioError(file, "shorter than one sample at 16 kHz")
    return samples


def validate_array(samples: npt.ArrayLike, sample_rate: int, label: str) -> npt.NDArray[Any]:
    """Check in-memory audio and return it as an ndarray (dtype and shape unchanged).

    Accepts ``(frames,)`` or ``(frames, channels)`` with at most :data:`MAX_CHANNELS`
    channels, float or integer PCM, all values finite; ``sample_rate`` an integer in
    [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]. Raises InvalidOptionError (sample rate),
    EmptyAudioError (no samples) or AudioDecodeError (shape, dtype, NaN/inf), each
    naming ``label``.
    """
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, int | np.integer)
        or not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE
    ):
        raise InvalidOptionError(
            "sample_rate",
            sample_rate,
            f"{label}: must be an integer number of Hz in [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]",
        )
    try:
        array = np.asarray(samples)
    except (ValueError, TypeError) as exc:
        raise AudioDecodeError(label, f"not an array of samples ({exc})") from exc
    if array.dtype.kind not in "fiu":
        raise AudioDecodeError(
            label, f"dtype {array.dtype} is not audio: expected float or integer PCM"
        )
    if array.ndim not in (1, 2):
        raise AudioDecodeError(
            label, f"shape {array.shape}: expected (frames,) or (frames, channels)"
        )
    if array.size == 0:
        raise EmptyAudioError(label, f"no samples (shape {array.shape})")
    if array.ndim == 2 and array.shape[1] > MAX_CHANNELS:
        hint = (
            "; it looks like (channels, frames): pass samples.T"
            if array.shape[0] <= MAX_CHANNELS
            else ""
        )
        raise AudioDecodeError(
            label,
            f"shape {array.shape}: expected (frames, channels) with at most "
            f"{MAX_CHANNELS} channels{hint}",
        )
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise AudioDecodeError(label, "contains NaN or infinite samples")
    return array


def _to_float(array: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Float samples as float32; integer PCM scaled to [-1, 1) (unsigned: offset removed)."""
    if array.dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    bits = array.dtype.itemsize * 8
    offset = 2 ** (bits - 1) if array.dtype.kind == "u" else 0
    scaled: npt.NDArray[np.float64] = (array.astype(np.float64) - offset) / 2 ** (bits - 1)
    return scaled.astype(np.float32)


def to_mono_16k(
    samples: npt.ArrayLike, sample_rate: int, *, label: str = "samples"
) -> npt.NDArray[np.float32]:
    """Validate (see :func:`validate_array`), average channels, resample to 16 kHz.

    Integer PCM is scaled to [-1, 1]. The result is float32 and 1-D; it is empty when
    the input is shorter than one output sample.
    """
    array = _to_float(validate_array(samples, sample_rate, label))
    if array.ndim == 2:
        array = array.mean(axis=1, dtype=np.float32)
    if sample_rate != TARGET_SAMPLE_RATE:
        array = soxr.resample(
            np.ascontiguousarray(array), int(sample_rate), TARGET_SAMPLE_RATE, quality="HQ"
        )
    return np.ascontiguousarray(array, dtype=np.float32)


def write_wav(
    file: BinaryIO | Path, samples: npt.ArrayLike, sample_rate: int = TARGET_SAMPLE_RATE
) -> None:
    """Write samples as a 16-bit PCM WAV, clipped to [-1, 1].

    A file object is written from its current position and left open for the caller.
    """
    label = str(file) if isinstance(file, Path) else str(getattr(file, "name", "<stream>"))
    array = _to_float(validate_array(samples, sample_rate, label))
    peak = float(np.abs(array).max())
    if peak > 1.0:
        logger.warning("%s: samples peak at %.3g; clipping to [-1, 1]", label, peak)
    sf.write(file, np.clip(array, -1.0, 1.0), int(sample_rate), subtype="PCM_16", format="WAV")


def is_model_ready(info: AudioInfo) -> bool:
    """True when the file is already 16 kHz mono WAV/FLAC and can be used in place."""
    return (
        info.sample_rate == TARGET_SAMPLE_RATE
        and info.channels == 1
        and info.format in _MODEL_READY_FORMATS
    )
