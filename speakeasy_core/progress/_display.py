"""Showing :class:`Progress` to a person: a tqdm bar (a widget in notebooks) with log
records printed above it, or plain log lines where there is no terminal."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import TracebackType
from typing import IO, Any, Literal

from ..errors import InvalidOptionError
from ._model import (
    LegacyProgressCallback,
    Progress,
    ProgressCallback,
    as_callback,
    clock,
    speed_text,
)

__all__ = [
    "LOGGER_NAME",
    "LOG_INTERVAL",
    "ProgressBar",
    "ProgressLog",
    "ShowProgress",
    "check_show_progress",
    "open_reporter",
    "write_line",
]

LOGGER_NAME = "speakeasy_core.progress"
"""The logger :class:`ProgressLog` writes to, at INFO."""
LOG_INTERVAL = 10.0
"""Seconds of wall time between two plain progress lines, at least."""

ShowProgress = bool | Literal["bar", "log"]
"""``True``: a bar on a terminal or in a notebook, else log lines; ``"bar"``, ``"log"``:
that one; ``False``: nothing."""

_BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} audio "
    "[{elapsed}<{remaining}, {rate_fmt}{postfix}]"
)


def _files(progress: Progress) -> str:
    inputs = "?" if progress.inputs_total is None else str(progress.inputs_total)
    failed = f", {progress.failed} failed" if progress.failed else ""
    return f"{progress.inputs_done}/{inputs} files{failed}"


def _audio_bar(base: type[Any]) -> type[Any]:
    """``base`` (a tqdm class) counting seconds of audio: clock readings, a real-time
    factor for the rate, and no ETA while the total is unknown."""

    class AudioBar(base):  # type: ignore[misc]
        total_prefix = ""

        @property
        def format_dict(self) -> dict[str, Any]:
            values: dict[str, Any] = super().format_dict
            n, total, elapsed = values["n"], values["total"], values["elapsed"]
            values["n_fmt"] = clock(n)
            values["total_fmt"] = self.total_prefix + clock(total) if total else "?"
            values["rate_fmt"] = speed_text(n / elapsed if elapsed else None)
            if not total:
                values["remaining"] = "?"
            return values

    return AudioBar


def _auto_tqdm() -> type[Any]:
    from tqdm.auto import tqdm

    return tqdm  # type: ignore[no-any-return]


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and handler.stream in (
        sys.stdout,
        sys.stderr,
    )


class _AboveBars(logging.StreamHandler):  # type: ignore[type-arg]
    """Stands in for a console handler: the same level, format and filters, written
    through tqdm, above any open bar."""

    def __init__(self, tqdm_class: type[Any], replaced: logging.StreamHandler) -> None:  # type: ignore[type-arg]
        super().__init__(replaced.stream)
        self.replaced = replaced
        self.setLevel(replaced.level)
        self.setFormatter(replaced.formatter)
        self.filters = list(replaced.filters)
        self._tqdm = tqdm_class

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


class _LogsAboveBars:
    """While any bar is open (counted, process-wide), every console log handler (a
    stream handler on stdout or stderr, on any logger) and the last-resort handler
    write through tqdm, so records land above the bars instead of inside them.

    Like tqdm's ``logging_redirect_tqdm``, but for every logger, not only the root (NeMo
    and Ray log through handlers of their own), and without adding a handler where
    there was none (that would print a propagating record twice).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._stack: ExitStack | None = None

    @contextmanager
    def __call__(self, tqdm_class: type[Any]) -> Iterator[None]:
        with self._lock:
            if self._users == 0:
                self._stack = self._redirect(tqdm_class)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._stack is not None:
                    self._stack.close()
                    self._stack = None

    @staticmethod
    def _redirect(tqdm_class: type[Any]) -> ExitStack:
        stack = ExitStack()
        named = logging.Logger.manager.loggerDict.values()
        for logger in [logging.getLogger(), *(x for x in named if isinstance(x, logging.Logger))]:
            if any(_is_console(handler) for handler in logger.handlers):
                logger.handlers = [
                    _AboveBars(tqdm_class, h) if _is_console(h) else h  # type: ignore[arg-type]
                    for h in logger.handlers
                ]
                stack.callback(_put_back, logger)
        last_resort = logging.lastResort
        if isinstance(last_resort, logging.StreamHandler):
            logging.lastResort = _AboveBars(tqdm_class, last_resort)

            def restore() -> None:
                logging.lastResort = last_resort

            stack.callback(restore)
        return stack


def _put_back(logger: logging.Logger) -> None:
    """The console handlers ``logger`` had, in place of their stand-ins (handlers added
    meanwhile stay)."""
    logger.handlers = [h.replaced if isinstance(h, _AboveBars) else h for h in logger.handlers]


_logs_above_bars = _LogsAboveBars()


class ProgressBar:
    """A tqdm bar of seconds of audio, as a progress callback:
    ``transcribing:  21%|██ | 12:30/1:00:00 audio [00:04<00:15, 180x real time, 0/1 files]``.

    Use it as a context manager (the Transcriber's ``show_progress`` does): while it is
    open, log records print above it, and it redraws every ``refresh`` seconds so the
    elapsed time and the ETA move during a long model call. It closes on the run's
    final report. ``tqdm_class`` defaults to ``tqdm.auto`` (a widget in Jupyter when
    ipywidgets is installed).
    """

    def __init__(
        self,
        desc: str = "transcribing",
        *,
        tqdm_class: type[Any] | None = None,
        refresh: float = 1.0,
        file: IO[str] | None = None,
    ) -> None:
        self.desc = desc
        self.refresh = refresh
        self._tqdm_class = tqdm_class
        self._file = file
        self._bar: Any = None
        self._logs = ExitStack()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> ProgressBar:
        base = self._tqdm_class or _auto_tqdm()
        self._logs.enter_context(_logs_above_bars(base))
        self._bar = _audio_bar(base)(
            total=None,
            desc=self.desc,
            bar_format=_BAR_FORMAT,
            postfix="0/? files",
            smoothing=0,
            file=self._file,
            dynamic_ncols=True,
        )
        self._stop.clear()
        self._ticker = threading.Thread(target=self._tick, name="speakeasy-progress", daemon=True)
        self._ticker.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _tick(self) -> None:
        while not self._stop.wait(self.refresh):
            with self._lock:
                if self._bar is not None:
                    self._bar.refresh()

    def __call__(self, progress: Progress) -> None:
        with self._lock:
            bar = self._bar
            if bar is None:
                return
            total = progress.seconds_total
            bar.total_prefix = "~" if progress.estimated else ""
            if total != bar.total:
                self._set_total(bar, total)
            bar.set_postfix_str(_files(progress), refresh=False)
            bar.update(progress.seconds_done - bar.n)
        if progress.final:
            self.close()

    @staticmethod
    def _set_total(bar: Any, total: float | None) -> None:
        bar.total = total
        container = getattr(bar, "container", None)  # tqdm.notebook's widget
        if container is not None:
            widget = container.children[1]
            widget.max = total or 1
            if total:
                widget.bar_style = ""
                widget.layout.width = None

    def close(self) -> None:
        """Stop redrawing and close the bar, showing its last state (idempotent)."""
        self._stop.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join()
        self._ticker = None
        with self._lock:
            bar, self._bar = self._bar, None
        if bar is not None:
            bar.close()
        self._logs.close()  # log records go where they went before


class ProgressLog:
    """Progress as plain log lines (INFO on :data:`LOGGER_NAME`), at most one every
    ``interval`` seconds of the run (default :data:`LOG_INTERVAL`), and a last one at
    its end if any was written: for CI logs and ``nohup`` jobs, where a bar would be a
    mess of carriage returns.

    ``transcribing: 12:30/1:00:00 audio (21%) [00:04<00:15, 180x real time] 0/1 files``
    """

    def __init__(
        self,
        interval: float | None = None,
        *,
        desc: str = "transcribing",
        logger: logging.Logger | None = None,
    ) -> None:
        interval = LOG_INTERVAL if interval is None else interval
        if not interval > 0:
            raise InvalidOptionError("interval", interval, "must be positive seconds")
        self.interval = interval
        self.desc = desc
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self._last = 0.0
        self._logged = False

    def __call__(self, progress: Progress) -> None:
        if progress.elapsed < self._last:  # a new run
            self._last, self._logged = 0.0, False
        if progress.final:
            if self._logged:
                self.logger.info("%s: %s", self.desc, progress)
            self._last, self._logged = 0.0, False
        elif progress.elapsed - self._last >= self.interval:
            self.logger.info("%s: %s", self.desc, progress)
            self._last, self._logged = progress.elapsed, True


def check_show_progress(show: object) -> None:
    """Raise InvalidOptionError unless ``show`` is a :data:`ShowProgress` value."""
    if not (isinstance(show, bool) or show in ("bar", "log")):
        raise InvalidOptionError("show_progress", show, 'must be True, False, "bar" or "log"')


def _in_notebook() -> bool:
    """Whether this runs in a Jupyter kernel (ipykernel merely imported is not one)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and hasattr(shell, "kernel")


def _chosen(show: ShowProgress) -> Literal["bar", "log"] | None:
    if show is True:
        return "bar" if sys.stderr.isatty() or _in_notebook() else "log"
    return show or None


def _fan_out(callbacks: list[ProgressCallback]) -> ProgressCallback | None:
    if len(callbacks) <= 1:
        return callbacks[0] if callbacks else None

    def report(progress: Progress) -> None:
        for callback in callbacks:
            callback(progress)

    return report


def open_reporter(
    stack: ExitStack,
    show: ShowProgress,
    callback: ProgressCallback | LegacyProgressCallback | None = None,
) -> ProgressCallback | None:
    """The callback for one run: the display ``show`` asks for (a bar is entered into
    ``stack``, so it closes with it) and then ``callback``, if any."""
    callbacks: list[ProgressCallback] = []
    display = _chosen(show)
    if display == "bar":
        callbacks.append(stack.enter_context(ProgressBar()))
    elif display == "log":
        callbacks.append(ProgressLog())
    if callback is not None:
        callbacks.append(as_callback(callback))
    return _fan_out(callbacks)


def write_line(text: str, file: IO[str] | None = None) -> None:
    """Write a line to ``file`` (stdout) without breaking any open bar."""
    from tqdm import tqdm

    tqdm.write(text, file=file or sys.stdout)
