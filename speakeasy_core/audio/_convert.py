"""Arrays: validate them, downmix and resample to 16 kHz mono (whole or in a stream), write wavs."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr

from ..errors import AudioDecodeError, EmptyAudioError, InvalidOptionError
from ._base import MAX_CHANNELS, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, TARGET_SAMPLE_RATE, AudioInfo

logger = logging.getLogger(__name__)

_MODEL_READY_FORMATS = frozenset({"wav", "flac"})


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


def to_float(array: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Float samples as float32; integer PCM scaled to [-1, 1) (unsigned: offset removed)."""
    if array.dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    bits = array.dtype.itemsize * 8
    offset = 2 ** (bits - 1) if array.dtype.kind == "u" else 0
    scaled: npt.NDArray[np.float64] = (array.astype(np.float64) - offset) / 2 ** (bits - 1)
    return scaled.astype(np.float32)


class MonoResampler:
    """Average channels and resample to 16 kHz, block by block.

    soxr's streaming resampler gives the same samples as resampling the whole signal
    at once, whatever the block sizes, so streaming changes nothing downstream.
    """

    def __init__(self, sample_rate: int) -> None:
        self._stream = (
            None
            if sample_rate == TARGET_SAMPLE_RATE
            else soxr.ResampleStream(
                int(sample_rate), TARGET_SAMPLE_RATE, 1, dtype="float32", quality="HQ"
            )
        )

    def push(self, block: npt.NDArray[Any], *, last: bool = False) -> npt.NDArray[np.float32]:
        """Convert the next ``(frames,)`` or ``(frames, channels)`` block; ``last`` flushes."""
        array = to_float(block)
        if array.ndim == 2:
            array = array.mean(axis=1, dtype=np.float32)
        if self._stream is not None:
            array = self._stream.resample_chunk(np.ascontiguousarray(array), last=last)
        return np.ascontiguousarray(array, dtype=np.float32)


def to_mono_16k(
    samples: npt.ArrayLike, sample_rate: int, *, label: str = "samples"
) -> npt.NDArray[np.float32]:
    """Validate (see :func:`validate_array`), average channels, resample to 16 kHz.

    Integer PCM is scaled to [-1, 1]. The result is float32 and 1-D; it is empty when
    the input is shorter than one output sample.
    """
    array = validate_array(samples, sample_rate, label)
    return MonoResampler(int(sample_rate)).push(array, last=True)


def write_wav(
    file: BinaryIO | Path, samples: npt.ArrayLike, sample_rate: int = TARGET_SAMPLE_RATE
) -> None:
    """Write samples as a 16-bit PCM WAV, clipped to [-1, 1].

    A file object is written from its current position and left open for the caller;
    the WAV is rendered in memory first, so a full disk raises its ``OSError`` (soundfile's
    virtual I/O would swallow it and fail an assertion instead).
    """
    label = str(file) if isinstance(file, Path) else str(getattr(file, "name", "<stream>"))
    array = to_float(validate_array(samples, sample_rate, label))
    peak = float(np.abs(array).max())
    if peak > 1.0:
        logger.warning("%s: samples peak at %.3g; clipping to [-1, 1]", label, peak)
    clipped = np.clip(array, -1.0, 1.0)
    if isinstance(file, Path):
        sf.write(file, clipped, int(sample_rate), subtype="PCM_16", format="WAV")
        return
    rendered = io.BytesIO()
    sf.write(rendered, clipped, int(sample_rate), subtype="PCM_16", format="WAV")
    file.write(rendered.getbuffer())


def is_model_ready(info: AudioInfo) -> bool:
    """True when the file is already 16 kHz mono WAV/FLAC and can be used in place."""
    return (
        info.decoder == "sndfile"
        and info.sample_rate == TARGET_SAMPLE_RATE
        and info.channels == 1
        and info.format in _MODEL_READY_FORMATS
    )
