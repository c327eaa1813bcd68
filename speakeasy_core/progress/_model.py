"""What a progress callback receives: :class:`Progress`, and the callback types."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeGuard

__all__ = [
    "LegacyProgressCallback",
    "Progress",
    "ProgressCallback",
    "as_callback",
    "clock",
    "speed_text",
    "warn_if_legacy",
]


def clock(seconds: float) -> str:
    """``seconds`` as a clock reading: ``12:30``, ``1:00:00`` (tqdm's style)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def speed_text(speed: float | None) -> str:
    """A real-time factor in words: ``180x real time``, ``0.8x real time``."""
    if not speed:
        return "?x real time"
    return f"{speed:.0f}x real time" if speed >= 10 else f"{speed:.2g}x real time"


@dataclass(frozen=True)
class Progress:
    """Where a run stands, in seconds of audio and in inputs.

    ``seconds_done`` counts audio transcribed so far, long recordings piece by piece;
    it never goes down. ``seconds_total`` is the audio of the whole run as far as it
    is known: the probed durations of the inputs (a failed input counts for what was
    transcribed of it), corrected as decoding learns the true lengths. While only some
    inputs are probed (they are probed a window at a time) the rest are reckoned at
    the mean probed duration and ``estimated`` is True; it is None while the number of
    inputs is not known yet (a lazy iterable not read to its end). ``inputs_done``
    counts finished inputs, failed ones too; ``failed`` the failed ones. ``elapsed``
    is wall-clock seconds since the run started; ``final`` marks the run's last report
    (finished, failed or stopped).
    """

    seconds_done: float
    seconds_total: float | None
    inputs_done: int
    inputs_total: int | None
    failed: int = 0
    elapsed: float = 0.0
    estimated: bool = False
    final: bool = False

    @property
    def fraction(self) -> float | None:
        """Share of the audio done, 0 to 1 (None: total unknown)."""
        if self.seconds_total is None:
            return None
        if self.seconds_total <= 0:
            return 1.0
        return min(1.0, self.seconds_done / self.seconds_total)

    @property
    def speed(self) -> float | None:
        """Seconds of audio per second of wall time (the real-time factor)."""
        if self.elapsed <= 0 or self.seconds_done <= 0:
            return None
        return self.seconds_done / self.elapsed

    @property
    def eta(self) -> float | None:
        """Seconds of wall time left at the speed so far (None: not known yet)."""
        speed = self.speed
        if self.seconds_total is None or speed is None:
            return None
        return max(0.0, self.seconds_total - self.seconds_done) / speed

    def __str__(self) -> str:
        """``12:30/1:00:00 audio (21%) [00:04<00:15, 180x real time] 0/1 files``."""
        fraction, eta = self.fraction, self.eta
        if self.seconds_total is None:
            total = "?"
        else:
            total = ("~" if self.estimated else "") + clock(self.seconds_total)
        share = f" ({fraction:.0%})" if fraction is not None else ""
        left = clock(eta) if eta is not None else "?"
        inputs = "?" if self.inputs_total is None else str(self.inputs_total)
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{clock(self.seconds_done)}/{total} audio{share} "
            f"[{clock(self.elapsed)}<{left}, {speed_text(self.speed)}] "
            f"{self.inputs_done}/{inputs} files{failed}"
        )


ProgressCallback = Callable[[Progress], None]
"""Called as ``progress(report)`` with a :class:`Progress` as the run advances."""

LegacyProgressCallback = Callable[[int, int | None], None]
"""The old form, ``progress(done, total)`` in inputs (deprecated; still called once
per finished input)."""

_LEGACY_MESSAGE = (
    "a progress callback taking (done, total) is deprecated: take one "
    "speakeasy_core.Progress argument instead (progress.inputs_done, .inputs_total, "
    ".seconds_done, .seconds_total, ...)"
)


def _is_legacy(
    callback: ProgressCallback | LegacyProgressCallback,
) -> TypeGuard[LegacyProgressCallback]:
    """Whether ``callback`` needs two positional arguments (the old form)."""
    try:
        parameters = inspect.signature(callback).parameters.values()
    except (TypeError, ValueError):  # no signature to read: assume the new form
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is p.empty]
    return len(required) >= 2


def warn_if_legacy(
    callback: ProgressCallback | LegacyProgressCallback | None, stacklevel: int = 2
) -> None:
    """Warn (DeprecationWarning, pointing ``stacklevel`` frames up) about an old-form
    callback."""
    if callback is not None and _is_legacy(callback):
        warnings.warn(_LEGACY_MESSAGE, DeprecationWarning, stacklevel=stacklevel + 1)


def as_callback(callback: ProgressCallback | LegacyProgressCallback) -> ProgressCallback:
    """``callback`` as a :data:`ProgressCallback`; an old-form one is called as before,
    ``(inputs done, input count)`` once per finished input."""
    if not _is_legacy(callback):
        return callback  # type: ignore[return-value]
    legacy = callback
    reported = 0

    def adapted(progress: Progress) -> None:
        nonlocal reported
        if progress.inputs_done != reported:
            reported = progress.inputs_done
            legacy(progress.inputs_done, progress.inputs_total)

    return adapted
