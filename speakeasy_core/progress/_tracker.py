"""Turn a run's events into :class:`Progress` reports: :class:`ProgressTracker`, and
:func:`report_position` for backends that know how far into an item they are."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TypeVar

from ._model import Progress, ProgressCallback

__all__ = ["ProgressTracker", "report_position", "reporting_positions"]

T = TypeVar("T")

PositionReporter = Callable[[object, float], None]
_reporter: ContextVar[PositionReporter | None] = ContextVar("speakeasy_position", default=None)


def report_position(item: object, seconds: float) -> None:
    """For backends: ``item`` (the :class:`~speakeasy_core.backends.PreparedAudio` being
    transcribed) is done up to ``seconds`` into it.

    A backend that produces its output bit by bit (Whisper, segment by segment) calls
    this as it goes, so a long item shows progress before the call returns. It does
    nothing outside a run that listens (:func:`reporting_positions`).
    """
    reporter = _reporter.get()
    if reporter is not None:
        reporter(item, seconds)


@contextmanager
def reporting_positions(reporter: PositionReporter) -> Iterator[None]:
    """Within the block (in this thread or task), :func:`report_position` calls
    ``reporter(item, seconds)``."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


@dataclass
class _Open:
    """An input being transcribed: its probed length and how far it got."""

    duration: float
    position: float = 0.0

    @property
    def total(self) -> float:
        return max(self.duration, self.position)


class ProgressTracker:
    """Keeps the counts of one run from its events and reports a :class:`Progress`
    to ``callback`` at once and after each event (under a lock, so reports arrive in
    order).

    Events: :meth:`probed` (an input's duration is known), :meth:`advance` (an input
    is transcribed up to a position), :meth:`finished` (an input is done or failed)
    and :meth:`close` (the run is over: the ``final`` report). ``inputs_total`` is the
    number of inputs when known; :meth:`counting` learns it from the inputs as they
    are read. ``clock`` gives the time (injectable for tests).
    """

    def __init__(
        self,
        callback: ProgressCallback | None,
        inputs_total: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._inputs_total = inputs_total
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self._open: dict[int, _Open] = {}
        self._open_done = 0.0
        self._open_total = 0.0
        self._settled = 0.0  # seconds of finished inputs (their done and total alike)
        self._done = 0
        self._failed = 0
        self._probed = 0  # inputs whose duration was known (for the mean)
        self._probed_seconds = 0.0
        self._closed = False
        self._reported = 0.0  # seconds done, as last reported
        with self._lock:
            self._report()  # the start: the number of inputs, if known

    def counting(self, inputs: Iterable[T]) -> Iterator[T]:
        """``inputs`` passed through; once they run out, their number is the total."""
        count = 0
        for item in inputs:
            count += 1
            yield item
        with self._lock:
            if self._inputs_total is None:
                self._inputs_total = count
                self._report()

    def probed(self, index: int, seconds: float) -> None:
        """Input ``index`` is ``seconds`` long (as far as its header says)."""
        with self._lock:
            entry = self._open.setdefault(index, _Open(0.0))
            self._open_total -= entry.total
            entry.duration = max(0.0, seconds)
            self._open_total += entry.total
            self._probed += 1
            self._probed_seconds += entry.duration
            self._report()

    def advance(self, index: int, position: float) -> None:
        """Input ``index`` is transcribed up to ``position`` seconds into it."""
        with self._lock:
            entry = self._open.get(index)
            if entry is None or position <= entry.position:
                return
            self._open_total -= entry.total
            self._open_done += position - entry.position
            entry.position = position
            self._open_total += entry.total
            self._report()

    def finished(self, index: int, ok: bool) -> None:
        """Input ``index`` is done (``ok``) or failed. A done input counts for its
        whole length, a failed one for what was transcribed of it."""
        with self._lock:
            entry = self._open.pop(index, None)
            if entry is not None:
                self._open_done -= entry.position
                self._open_total -= entry.total
                if ok and entry.position <= 0:
                    entry.position = entry.duration  # no piece told us: trust the probe
                self._settled += entry.position
            if not self._open:  # no drift from adding and taking away
                self._open_done = self._open_total = 0.0
            self._done += 1
            self._failed += not ok
            self._report()

    def close(self) -> None:
        """The run is over: the final report (once)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._report()

    @property
    def progress(self) -> Progress:
        """The report as of now."""
        with self._lock:
            return self._snapshot()

    def _snapshot(self) -> Progress:
        total: float | None = None
        estimated = False
        if self._inputs_total is not None:
            total = self._settled + self._open_total
            unprobed = self._inputs_total - self._done - len(self._open)
            if unprobed > 0 and self._probed:  # reckoned at the mean probed duration
                total += unprobed * self._probed_seconds / self._probed
                estimated = True
            elif unprobed > 0:
                total = None
        # Sums of floats moved from open to settled inputs may drift by an ulp: never back.
        done = self._reported = max(self._reported, self._settled + self._open_done)
        return Progress(
            seconds_done=done,
            seconds_total=None if total is None else max(total, done),
            inputs_done=self._done,
            inputs_total=self._inputs_total,
            failed=self._failed,
            elapsed=self._clock() - self._start,
            estimated=estimated,
            final=self._closed,
        )

    def _report(self) -> None:
        if self._callback is not None:
            self._callback(self._snapshot())
