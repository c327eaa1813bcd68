"""Progress of a run, in seconds of audio and in inputs.

The batch engine (and the Ray driver) feed a :class:`ProgressTracker` events: an input
probed with its duration, a piece of it transcribed, an input done or failed. After
each event the tracker calls back with a :class:`Progress`; the Transcriber's
``progress=callback`` gets it, and its ``show_progress`` shows it as a
:class:`ProgressBar` (tqdm; a widget in notebooks) or as :class:`ProgressLog` lines
where there is no terminal. Backends that know how far into an item they are call
:func:`report_position`, so one long item moves the bar before its call returns.

>>> from speakeasy_core import Transcriber
>>> def show(p):  # doctest: +SKIP
...     print(f"{p.seconds_done:.0f}/{p.seconds_total} s, {p.inputs_done} inputs, eta {p.eta}")
>>> Transcriber(progress=show).transcribe_batch(["a.wav", "b.flac"])  # doctest: +SKIP
"""

from ._display import (
    LOG_INTERVAL,
    LOGGER_NAME,
    ProgressBar,
    ProgressLog,
    ShowProgress,
    check_show_progress,
    open_reporter,
    write_line,
)
from ._model import (
    LegacyProgressCallback,
    Progress,
    ProgressCallback,
    as_callback,
    warn_if_legacy,
)
from ._tracker import ProgressTracker, report_position, reporting_positions

__all__ = [
    "LOGGER_NAME",
    "LOG_INTERVAL",
    "LegacyProgressCallback",
    "Progress",
    "ProgressBar",
    "ProgressCallback",
    "ProgressLog",
    "ProgressTracker",
    "ShowProgress",
    "as_callback",
    "check_show_progress",
    "open_reporter",
    "report_position",
    "reporting_positions",
    "warn_if_legacy",
    "write_line",
]
