"""libsndfile (through ``soundfile``): WAV, FLAC, OGG/Vorbis, Opus and the rest it lists.

Not MP3: soundfile seeks to its position after every read, and with libsndfile 1.2
a seek in an MP3 corrupts what is decoded next, so reading one in blocks gives
garbage. PyAV decodes MP3 in blocks correctly (within 1.4e-6 of libsndfile's
whole-file read).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import soundfile as sf

from ..errors import AudioDecodeError, EmptyAudioError
from ._base import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioInfo, check_length, identity

# libsndfile logs "data : <header size> (should be <bytes present>)" for a WAV whose
# data chunk runs past the end of the file. 0 and 0xFFFFFFFF are streaming placeholders.
_WAV_TRUNCATED = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_WAV_SIZE_PLACEHOLDERS = frozenset({0, 0xFFFFFFFF})
_WAV_FORMATS = frozenset({"wav", "wavex"})
# Major formats left to PyAV (see above).
_BLOCK_UNSAFE_FORMATS = frozenset({"mp3"})

SndfileError = (sf.LibsndfileError, RuntimeError)


def open_sound(handle: BinaryIO) -> tuple[sf.SoundFile | None, str]:
    """libsndfile on an open file, or None and why when it cannot read it (in blocks)."""
    handle.seek(0)
    try:
        sound = sf.SoundFile(handle)
    except SndfileError as exc:
        return None, str(getattr(exc, "error_string", None) or exc)
    if str(sound.format).lower() in _BLOCK_UNSAFE_FORMATS:
        sound.close()
        return None, f"{sound.format} is left to PyAV"
    return sound, ""


def sound_info(path: Path, handle: BinaryIO, sound: sf.SoundFile) -> AudioInfo:
    """The header of an open file, checked: frames, sample rate, WAV data size."""
    size, mtime_ns = identity(handle)
    info = AudioInfo(
        path=path,
        sample_rate=int(sound.samplerate),
        channels=int(sound.channels),
        frames=int(sound.frames),
        duration=sound.frames / sound.samplerate,
        format=str(sound.format).lower(),
        size=size,
        mtime_ns=mtime_ns,
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


def sound_blocks(
    sound: sf.SoundFile, info: AudioInfo, block_frames: int
) -> Iterator[npt.NDArray[np.float32]]:
    """Decode ``(frames, channels)`` float32 blocks; check the count against the header."""
    decoded = 0
    while True:
        try:
            block = sound.read(block_frames, dtype="float32", always_2d=True)
        except SndfileError as exc:
            raise AudioDecodeError(
                info.path,
                f"corrupt or truncated: decoding stops after {decoded} of the {info.frames} "
                f"frames the header promises ({getattr(exc, 'error_string', None) or exc})",
            ) from exc
        if not len(block):
            break
        decoded += len(block)
        yield block
    check_length(info, decoded)
