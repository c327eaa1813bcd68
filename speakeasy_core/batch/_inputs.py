"""What the engine accepts and yields: inputs, their probe, per-input outcomes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import numpy.typing as npt

from .. import audio
from ..backends.base import BackendOutput
from ..errors import SpeakEasyError
from ..manifest import ManifestEntry

__all__ = [
    "AudioArray",
    "AudioInput",
    "ItemOutcome",
    "Probed",
    "label_of",
    "probe_input",
]


@dataclass(frozen=True)
class AudioArray:
    """In-memory audio: samples shaped ``(frames,)`` or ``(frames, channels)``."""

    samples: npt.NDArray[np.generic]
    sample_rate: int
    name: str | None = None


AudioInput = Union[str, "os.PathLike[str]", ManifestEntry, AudioArray]
"""What the Transcriber accepts: a path, a manifest entry, or an :class:`AudioArray`."""


@dataclass(frozen=True)
class ItemOutcome:
    """What the engine yields per input: the backend's output, or the error for it.

    ``index`` is the input's position in the whole input stream.
    """

    index: int
    label: str
    duration: float
    output: BackendOutput | None = None
    error: SpeakEasyError | None = None


def label_of(item: AudioInput, index: int) -> str:
    """The name an input is reported under: its path, or ``<array N>``."""
    if isinstance(item, AudioArray):
        return item.name or f"<array {index}>"
    if isinstance(item, ManifestEntry):
        return item.audio_filepath
    return os.fspath(item)


@dataclass(frozen=True)
class Probed:
    """An input whose header (or array) was checked: what decoding it needs."""

    index: int
    label: str
    duration: float
    source: Path | tuple[npt.NDArray[Any], int]
    info: audio.AudioInfo | None = None

    def pieces(self, max_duration: float | None) -> Iterator[audio.AudioPiece]:
        """The input's 16 kHz mono pieces, decoded lazily (see :func:`audio.iter_pieces`)."""
        return audio.iter_pieces(self.source, max_duration, info=self.info, label=self.label)


def probe_input(item: AudioInput, index: int, stream: int | None = None) -> Probed:
    """Probe a file's audio stream ``stream`` (header only) or validate an array; raises
    the input's typed error."""
    label = label_of(item, index)
    if isinstance(item, AudioArray):
        samples = audio.validate_array(item.samples, item.sample_rate, label)
        return Probed(index, label, len(samples) / item.sample_rate, (samples, item.sample_rate))
    path = Path(
        item.audio_filepath if isinstance(item, ManifestEntry) else os.fspath(item)
    ).absolute()
    info = audio.probe(path, stream=stream)
    return Probed(index, label, info.duration, path, info)
