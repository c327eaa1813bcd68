"""Probe a file with the right decoder; stream any input as 16 kHz mono pieces."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

from .._options import check_int
from ..errors import AudioDecodeError, EmptyAudioError
from ._av import AvError, container_blocks, describe_av_error, opened_container
from ._base import TARGET_SAMPLE_RATE, AudioInfo, check_same_header, check_unchanged, open_file
from ._convert import MonoResampler, validate_array
from ._cut import QuietCutter
from ._sndfile import open_sound, sound_blocks, sound_info

BLOCK_FRAMES = 1 << 16
"""Source frames decoded, downmixed and resampled at a time."""

Blocks = Iterator[npt.NDArray[Any]]
_BlockDecoder = Callable[[AudioInfo, int], Blocks]


@dataclass(frozen=True)
class AudioPiece:
    """A stretch of an input: ``samples`` (16 kHz mono float32) from ``offset`` seconds."""

    offset: float
    samples: npt.NDArray[np.float32]

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / TARGET_SAMPLE_RATE


@contextmanager
def _decoder(
    path: Path, handle: BinaryIO, stream: int | None
) -> Iterator[tuple[AudioInfo, _BlockDecoder]]:
    """libsndfile for what it reads in blocks, else PyAV; yield the header and a block decoder."""
    sound, refusal = open_sound(handle)
    if sound is not None:
        with sound:
            if stream:
                raise AudioDecodeError(
                    path, f"audio stream {stream} was asked for; the file has 1 (from 0)"
                )
            yield sound_info(path, handle, sound), lambda info, n: sound_blocks(sound, info, n)
        return
    with ExitStack() as stack:
        try:
            info, container = stack.enter_context(opened_container(path, handle, stream or 0))
        except AvError as exc:
            raise AudioDecodeError(
                path, f"cannot decode audio ({describe_av_error(exc)}; libsndfile: {refusal})"
            ) from exc
        yield info, lambda info, n: container_blocks(container, info, n)


def probe(path: str | os.PathLike[str], *, stream: int | None = None) -> AudioInfo:
    """Read the header of an audio or video file (not the samples).

    libsndfile reads what it can (WAV, FLAC, OGG, Opus, ...), PyAV the rest (MP3, m4a,
    mp4, webm, mkv, mov, wma, amr, 3gp, ...). ``stream`` picks a container's audio stream
    (0, the default, is the first). Raises InputNotFoundError, InputError (a directory,
    not a regular file, unreadable), EmptyAudioError (zero bytes, zero frames) or
    AudioDecodeError (not audio, corrupt, truncated WAV, no audio stream, no such
    stream, unsupported codec, sample rate outside [MIN_SAMPLE_RATE,
    MAX_SAMPLE_RATE]), each naming the path; InvalidOptionError for a bad ``stream``.
    """
    if stream is not None:
        check_int("stream", stream, 0)
    file = Path(path)
    with open_file(file) as handle, _decoder(file, handle, stream) as (info, _):
        return info


@contextmanager
def _file_blocks(path: Path, probed: AudioInfo, block_frames: int) -> Iterator[Blocks]:
    with open_file(path) as handle:
        check_unchanged(probed, handle)
        try:
            with _decoder(path, handle, probed.stream) as (now, decode):
                check_same_header(probed, now)
                yield decode(probed, block_frames)
        except AudioDecodeError:
            check_unchanged(probed, handle)  # a file cut short while decoding: say so
            raise
        check_unchanged(probed, handle)


@contextmanager
def _array_blocks(
    samples: npt.ArrayLike, sample_rate: int, label: str, block_frames: int
) -> Iterator[Blocks]:
    array = validate_array(samples, sample_rate, label)
    yield (array[i : i + block_frames] for i in range(0, len(array), block_frames))


def iter_pieces(
    source: str | os.PathLike[str] | tuple[npt.ArrayLike, int],
    max_duration: float | None,
    *,
    info: AudioInfo | None = None,
    label: str,
    block_frames: int = BLOCK_FRAMES,
) -> Iterator[AudioPiece]:
    """Decode, downmix, resample and cut an input lazily into 16 kHz mono pieces.

    ``source`` is a file or ``(samples, sample_rate)``. Pieces are contiguous, cover
    the whole input and last at most ``max_duration`` seconds each (None: one piece),
    cut at the quietest 20 ms in the 5 s before each limit. Only one piece and one
    block of ``block_frames`` source frames are held at a time; the pieces equal
    those of decoding the whole input and cutting it with
    :func:`~speakeasy_core.chunking.split_spans`, whatever ``block_frames``.

    A file is decoded as ``info`` (its :func:`probe` result, re-probed when None)
    describes it; its handle stays open while the generator is suspended and is
    closed when the generator is exhausted, closed or garbage collected. Errors name
    the file (or ``label`` for arrays): what :func:`probe` raises, AudioDecodeError
    for a truncated or corrupt stream or NaN/infinite samples, EmptyAudioError for
    an input shorter than one 16 kHz sample, InputChangedError for a file that is not
    the one probed (size, time or header) — possibly after some pieces were yielded.
    """
    cutter = QuietCutter(TARGET_SAMPLE_RATE, max_duration)
    if isinstance(source, tuple):
        samples, rate = source
        name, opened = label, _array_blocks(samples, rate, label, block_frames)
    else:
        path = Path(source)
        probed = probe(path) if info is None else info
        name, rate = str(path), probed.sample_rate
        opened = _file_blocks(path, probed, block_frames)
    count = 0
    with opened as blocks:
        resampler = MonoResampler(rate)  # after the array's rate is validated
        for block in blocks:
            if block.dtype.kind == "f" and not np.isfinite(block).all():
                raise AudioDecodeError(name, "contains NaN or infinite samples")
            for start, piece in cutter.push(resampler.push(block)):
                count += 1
                yield AudioPiece(start / TARGET_SAMPLE_RATE, piece)
    tail = resampler.push(np.zeros(0, np.float32), last=True)
    for start, piece in chain(cutter.push(tail), cutter.finish()):
        count += 1
        yield AudioPiece(start / TARGET_SAMPLE_RATE, piece)
    if not count:
        raise EmptyAudioError(name, "shorter than one sample at 16 kHz")


def load_audio(path: str | os.PathLike[str]) -> npt.NDArray[np.float32]:
    """Decode a whole file to float32 mono 16 kHz samples.

    Raises what :func:`iter_pieces` raises.
    """
    (piece,) = iter_pieces(path, None, label=os.fspath(path))
    return piece.samples
