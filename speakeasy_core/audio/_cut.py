"""Cut a stream of samples at quiet points, on the fly, with bounded look-ahead.

Each cut is placed at the quietest 20 ms frame in the last ``search`` seconds before
the nominal boundary (``max_duration`` after the previous cut). A cut needs only the
samples up to that boundary plus one, so the cutter holds at most one piece and one
incoming block, and cuts a stream exactly where it would cut the whole signal.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from ..errors import InvalidOptionError

FRAME_SECONDS = 0.02


def _quietest_frame(samples: npt.NDArray[np.float32], start: int, stop: int, frame: int) -> int:
    """Sample index of the start of the lowest-energy frame in [start, stop)."""
    region = samples[start:stop]
    frames = len(region) // frame
    if frames < 2:
        return stop
    energy = np.square(region[: frames * frame].reshape(frames, frame)).sum(axis=1)
    # Prefer the latest of equally quiet frames: longer pieces, fewer cuts.
    best = frames - 1 - int(np.argmin(energy[::-1]))
    return start + best * frame


class QuietCutter:
    """Feed samples with :meth:`push`, then :meth:`finish`; both yield ``(start, samples)``
    pieces, contiguous, covering every sample, each at most ``max_duration`` long.

    ``max_duration`` None gives one piece; ``search`` is capped at half of
    ``max_duration`` so every piece but the last keeps at least half the maximum.
    """

    SEARCH_SECONDS = 5.0

    def __init__(
        self, sample_rate: int, max_duration: float | None, *, search: float = SEARCH_SECONDS
    ) -> None:
        if max_duration is not None and not max_duration > 0:
            raise InvalidOptionError("max_duration", max_duration, "must be positive")
        if max_duration is None or math.isinf(max_duration):
            self._limit = math.inf
            self._window = 0
        else:
            self._limit = max(1, int(max_duration * sample_rate))
            self._window = min(int(search * sample_rate), self._limit // 2)
        self._frame = max(1, int(FRAME_SECONDS * sample_rate))
        self._pending: list[npt.NDArray[np.float32]] = []
        self._buffered = 0
        self._start = 0

    def push(
        self, samples: npt.NDArray[np.float32]
    ) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """Take the next samples; yield every piece they complete."""
        if len(samples):
            self._pending.append(samples)
            self._buffered += len(samples)
        while self._buffered > self._limit:
            buffer = self._take()
            limit = int(self._limit)
            cut = _quietest_frame(buffer, limit - self._window, limit, self._frame)
            self._pending, self._buffered = [buffer[cut:].copy()], len(buffer) - cut
            start, self._start = self._start, self._start + cut
            yield start, buffer[:cut].copy()

    def finish(self) -> Iterator[tuple[int, npt.NDArray[np.float32]]]:
        """Yield the last piece (nothing if no samples came at all)."""
        if self._buffered:
            buffer = self._take()
            self._pending, self._buffered = [], 0
            yield self._start, buffer

    def _take(self) -> npt.NDArray[np.float32]:
        if len(self._pending) == 1:
            return self._pending[0]
        return np.concatenate(self._pending)
