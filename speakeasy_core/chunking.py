"""Long audio: cut at quiet points into pieces a backend handles well, then merge back.

A recording longer than the backend's ``max_duration`` is cut into contiguous,
non-overlapping spans (on a stream, :func:`~speakeasy_core.audio.iter_pieces` makes the
same cuts). Each cut is placed at the quietest 20 ms frame in the last ``search``
seconds before the nominal boundary, so words are rarely split. Merging
shifts each piece's word and segment times by the piece's offset, so timestamps stay
monotonic and inside the input's duration.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from .audio import QuietCutter
from .backends.base import BackendOutput

__all__ = ["merge_outputs", "split_spans"]


def split_spans(
    samples: npt.NDArray[np.float32],
    sample_rate: int,
    max_duration: float,
    *,
    search: float = QuietCutter.SEARCH_SECONDS,
) -> list[tuple[int, int]]:
    """Cut ``samples`` into ``[start, stop)`` spans of at most ``max_duration`` seconds.

    Spans are contiguous and cover every sample. ``search`` (seconds) bounds how far
    before the nominal boundary a cut may move to find silence; it is capped at half
    of ``max_duration`` so every piece keeps at least half the maximum length. The
    cuts are those :class:`~speakeasy_core.audio.QuietCutter` makes on a stream.
    """
    cutter = QuietCutter(sample_rate, max_duration, search=search)
    pieces = [*cutter.push(samples), *cutter.finish()]
    spans = [(start, start + len(piece)) for start, piece in pieces]
    return spans or [(0, 0)]


def merge_outputs(pieces: Sequence[tuple[float, float, BackendOutput]]) -> BackendOutput:
    """Merge ``(offset, duration, output)`` pieces, in order, into one output.

    Piece-relative times are clamped to the piece and shifted by its offset.
    """

    def shift(start: float, end: float, offset: float, length: float) -> tuple[float, float]:
        lo = offset + min(max(start, 0.0), length)
        return lo, max(lo, offset + min(max(end, 0.0), length))

    texts: list[str] = []
    words, segments = [], []
    language = None
    for offset, length, output in pieces:
        if output.text.strip():
            texts.append(output.text.strip())
        language = language or output.language
        for word in output.words:
            start, end = shift(word.start, word.end, offset, length)
            words.append(replace(word, start=start, end=end))
        for segment in output.segments:
            start, end = shift(segment.start, segment.end, offset, length)
            segments.append(replace(segment, start=start, end=end))
    return BackendOutput(" ".join(texts), tuple(words), tuple(segments), language)
