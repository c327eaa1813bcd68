"""The job layer's error types: in the one tree, the matching builtin, one-line messages."""

from __future__ import annotations

import errno
import pickle
import signal

import pytest

from speakeasy_core.errors import (
    Interrupted,
    JobLockedError,
    JournalError,
    JournalWriteError,
    OutputError,
    SpeakEasyError,
    TempFileError,
    TempRootError,
)


@pytest.mark.parametrize(
    ("error", "builtins"),
    [
        (OutputError(errno.ENOSPC, "cannot write output: full", "/o/a.txt"), (OSError,)),
        (JobLockedError(errno.EBUSY, "in use", "/o"), (OSError,)),
        (JournalWriteError(errno.EIO, "cannot write journal: eio", "/o/j"), (OSError, ValueError)),
        (TempRootError(errno.EPERM, "unsafe temp root: is a symlink", "/t"), (OSError,)),
    ],
)
def test_path_errors_are_ours_oserrors_and_one_line(
    error: OSError, builtins: tuple[type[Exception], ...]
) -> None:
    assert isinstance(error, SpeakEasyError)
    for builtin in builtins:
        assert isinstance(error, builtin)
    assert str(error) == f"{error.filename}: {error.strerror}"
    assert "\n" not in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.errno, str(copy)) == (type(error), error.errno, str(error))


def test_the_journal_and_temp_errors_keep_their_families() -> None:
    assert issubclass(JournalWriteError, JournalError)
    assert issubclass(TempRootError, TempFileError)


def test_interrupted_is_a_keyboard_interrupt_outside_exception() -> None:
    stop = Interrupted(signal.SIGTERM, "SIGTERM")
    assert isinstance(stop, KeyboardInterrupt)
    assert not isinstance(stop, Exception)  # `except Exception` cannot swallow it
    assert stop.exit_status == 143
    assert str(stop) == "interrupted by SIGTERM"
    assert pickle.loads(pickle.dumps(stop)).exit_status == 143
