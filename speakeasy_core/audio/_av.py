"""PyAV (bundled ffmpeg): containers libsndfile cannot read, and the audio of video files.

m4a/mp4/aac, webm/mkv, mov, wma, amr, 3gp and the rest ffmpeg demuxes. The duration
comes from the container's index (raw streams and containers without one: the sum
of the stream's packets); the decoded length is checked against it at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import av
import av.container
import numpy as np
import numpy.typing as npt

from ..errors import AudioDecodeError, EmptyAudioError
from ._base import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, AudioInfo, check_length, identity
from ._convert import to_float

# Encoders pad the last frame and add priming samples (AAC: up to 2048), and some
# containers round their duration: a shortfall up to this is not truncation.
_SHORTFALL_SECONDS = 0.1
_SHORTFALL_FRACTION = 0.002

# Raw elementary streams have no index: ffmpeg estimates their duration from the bit rate.
_RAW_FORMATS = frozenset({"aac", "ac3", "eac3", "dts", "truehd"})
# MP3 durations come from a Xing/LAME header, else from the bit rate.
_ESTIMATE_FRACTION = {"mp3": 0.01}

AvError = av.FFmpegError

# PyAV before 19 raises on container metadata that is not UTF-8 unless told to ignore
# it; 19 decodes metadata leniently itself and no longer takes the argument.
_OPEN_OPTIONS: dict[str, Any] = (
    {"metadata_errors": "ignore"} if int(av.__version__.split(".")[0]) < 19 else {}
)


def describe_av_error(exc: Exception) -> str:
    """An ffmpeg error in words, without the errno and file name PyAV adds."""
    if isinstance(exc, av.error.DecoderNotFoundError):
        return "unsupported codec: this ffmpeg has no decoder for it"
    if isinstance(exc, av.error.InvalidDataError):
        return "corrupt or not audio: ffmpeg finds invalid data"
    return f"ffmpeg: {getattr(exc, 'strerror', None) or exc}"


def open_container(handle: BinaryIO) -> av.container.InputContainer:
    """PyAV on an open file, from its start; raises what :data:`AvError` names."""
    handle.seek(0)
    container: av.container.InputContainer = av.open(handle, mode="r", **_OPEN_OPTIONS)
    return container


@contextmanager
def opened_container(
    path: Path, handle: BinaryIO, stream: int
) -> Iterator[tuple[AudioInfo, av.container.InputContainer]]:
    """The chosen stream's header and the container, ready to decode from the start.

    Counting packets (raw streams) reads the container to its end, so it is opened
    afresh for decoding.
    """
    with open_container(handle) as container:
        info = container_info(path, handle, container, stream)
        if not _counts_packets(container, container.streams.audio[stream]):
            yield info, container
            return
    with open_container(handle) as container:
        yield info, container


def _format_name(path: Path, container: av.container.InputContainer) -> str:
    names = container.format.name.split(",")
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in names or suffix in container.format.extensions else names[0]


def _counts_packets(container: av.container.InputContainer, stream: av.AudioStream) -> bool:
    return container.format.name in _RAW_FORMATS or (
        stream.duration is None and container.duration is None
    )


def _duration(container: av.container.InputContainer, stream: av.AudioStream) -> float:
    """Seconds of ``stream``: from the container's index, else the sum of its packets."""
    if _counts_packets(container, stream):
        total = sum(packet.duration or 0 for packet in container.demux(stream))
        return float(total * stream.time_base) if stream.time_base is not None else 0.0
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return float((container.duration or 0) / av.time_base)


def container_info(
    path: Path, handle: BinaryIO, container: av.container.InputContainer, stream: int
) -> AudioInfo:
    """The chosen audio stream of an open container, checked."""
    streams = container.streams.audio
    if not streams:
        kinds = ", ".join(sorted({str(s.type) for s in container.streams})) or "no streams"
        raise AudioDecodeError(path, f"no audio stream (the file holds {kinds})")
    if stream >= len(streams):
        raise AudioDecodeError(
            path, f"audio stream {stream} was asked for; the file has {len(streams)} (from 0)"
        )
    chosen = streams[stream]
    context = chosen.codec_context
    if context is None:
        raise AudioDecodeError(path, "unsupported codec: this ffmpeg has no decoder for it")
    rate = int(context.sample_rate)
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioDecodeError(
            path, f"sample rate {rate} Hz is outside [{MIN_SAMPLE_RATE}, {MAX_SAMPLE_RATE}]"
        )
    try:
        duration = _duration(container, chosen)
    except AvError as exc:
        raise AudioDecodeError(path, describe_av_error(exc)) from exc
    size, mtime_ns = identity(handle)
    info = AudioInfo(
        path=path,
        sample_rate=rate,
        channels=int(context.channels),
        frames=round(duration * rate),
        duration=duration,
        format=_format_name(path, container),
        decoder="av",
        stream=stream,
        codec=context.name,
        size=size,
        mtime_ns=mtime_ns,
    )
    if info.frames == 0:
        raise EmptyAudioError(path, "contains no audio frames")
    return info


def _frame_array(frame: av.AudioFrame, channels: int) -> npt.NDArray[np.float32]:
    data: npt.NDArray[Any] = frame.to_ndarray()
    data = data.T if frame.format.is_planar else data.reshape(-1, channels)
    return to_float(data)


def container_blocks(
    container: av.container.InputContainer, info: AudioInfo, block_frames: int
) -> Iterator[npt.NDArray[np.float32]]:
    """Decode ``(frames, channels)`` float32 blocks of at least ``block_frames`` (the
    last may be shorter); check the decoded length against the container's."""
    stream = container.streams.audio[info.stream or 0]
    frames = container.decode(stream)
    pending: list[npt.NDArray[np.float32]] = []
    buffered = decoded = 0
    while True:
        try:
            frame = next(frames, None)
        except AvError as exc:
            raise AudioDecodeError(info.path, describe_av_error(exc)) from exc
        if frame is None:
            break
        if frame.sample_rate != info.sample_rate or len(frame.layout.channels) != info.channels:
            raise AudioDecodeError(
                info.path,
                f"the audio changes from {info.sample_rate} Hz x {info.channels} to "
                f"{frame.sample_rate} Hz x {len(frame.layout.channels)} channels mid-stream",
            )
        pending.append(_frame_array(frame, info.channels))
        buffered += frame.samples
        decoded += frame.samples
        if buffered >= block_frames:
            yield np.concatenate(pending)
            pending, buffered = [], 0
    if pending:
        yield np.concatenate(pending)
    fraction = _ESTIMATE_FRACTION.get(info.format, _SHORTFALL_FRACTION)
    check_length(info, decoded, _SHORTFALL_SECONDS * info.sample_rate + fraction * info.frames)
