"""One exception tree for the whole package.

Every error derives from :class:`SpeakEasyError` and, where one fits, from a builtin
as well, so ``except FileNotFoundError`` and ``except SpeakEasyError`` both work.
Errors about a particular input carry it in ``.input`` and name it in the message.
"""

from __future__ import annotations

import errno
from os import PathLike

__all__ = [
    "AudioDecodeError",
    "BackendError",
    "BackendUnavailableError",
    "EmptyAudioError",
    "InputChangedError",
    "InputError",
    "InputNotFoundError",
    "Interrupted",
    "InvalidOptionError",
    "JobLockedError",
    "JournalError",
    "JournalWriteError",
    "ModelLoadError",
    "OutputError",
    "SpeakEasyError",
    "TempFileError",
    "TempRootError",
    "TranscriptionError",
    "UnknownBackendError",
]


def _describe(value: object) -> str:
    if isinstance(value, (str, PathLike)):
        return str(value)
    return repr(value)


class SpeakEasyError(Exception):
    """Root of every error raised by speakeasy_core."""


class InputError(SpeakEasyError):
    """A problem with one input; ``.input`` names it (a path or an array label)."""

    def __init__(self, input: object, reason: str) -> None:
        self.input = _describe(input)
        self.reason = reason
        super().__init__(f"{self.input}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.input, self.reason))


class InputNotFoundError(InputError, FileNotFoundError):
    """The input path does not exist."""

    def __init__(self, input: object, reason: str = "no such file") -> None:
        InputError.__init__(self, input, reason)
        self.errno = errno.ENOENT
        self.strerror = reason
        self.filename = self.input

    def __str__(self) -> str:
        return f"{self.input}: {self.reason}"


class AudioDecodeError(InputError, ValueError):
    """The input exists but cannot be decoded as audio (corrupt, not audio, unsupported)."""


class EmptyAudioError(AudioDecodeError):
    """The input decodes to zero samples."""


class InputChangedError(AudioDecodeError):
    """The file changed (size, time or content) between probing and decoding it."""


class InvalidOptionError(SpeakEasyError, ValueError):
    """An option has a value the library or the chosen backend does not accept."""

    def __init__(self, option: str, value: object, reason: str) -> None:
        self.option = option
        self.value = value
        self.reason = reason
        super().__init__(f"invalid {option}={value!r}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.option, self.value, self.reason))


class UnknownBackendError(SpeakEasyError, LookupError):
    """No backend is registered under the requested name."""

    def __init__(self, name: str, available: list[str]) -> None:
        self.name = name
        self.available = available
        names = ", ".join(available) or "none"
        super().__init__(f"unknown backend {name!r}; available: {names}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.name, self.available))


class BackendError(SpeakEasyError, RuntimeError):
    """A backend failed."""


class BackendUnavailableError(BackendError, ImportError):
    """A backend's optional dependencies are not installed."""


class ModelLoadError(BackendError):
    """A model could not be loaded (bad path, wrong model class, broken checkpoint)."""


class TranscriptionError(BackendError):
    """The backend failed on an input that decoded fine."""


class _PathError(SpeakEasyError, OSError):
    """An OSError-shaped error (``errno, strerror, filename``) whose message is one line:
    ``"<filename>: <strerror>"``."""

    def __str__(self) -> str:
        if self.filename is None or self.strerror is None:
            return super().__str__()
        return f"{self.filename}: {self.strerror}"


class TempFileError(SpeakEasyError, OSError):
    """A temporary file could not be written, replaced or removed."""


class TempRootError(_PathError, TempFileError):
    """A temp root is unsafe (a symlink, another user's, writable by others) or unusable."""


class JournalError(SpeakEasyError, ValueError):
    """A job journal is unreadable or belongs to a different job."""


class JournalWriteError(_PathError, JournalError):
    """The journal cannot be created or appended to (full disk, read-only, I/O error)."""


class OutputError(_PathError):
    """An output file or the output folder cannot be written."""


class JobLockedError(_PathError):
    """Another job is running on the same output folder."""


class Interrupted(KeyboardInterrupt):
    """The job was stopped by a signal (SIGTERM, SIGHUP, SIGBREAK), handled like Ctrl-C.

    Deliberately outside :class:`SpeakEasyError`, as KeyboardInterrupt is: code that
    catches ``Exception`` must not swallow it. ``exit_status`` is ``128 + signum``.
    """

    def __init__(self, signum: int, name: str) -> None:
        self.signum = signum
        self.name = name
        super().__init__(f"interrupted by {name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.signum, self.name))
