from __future__ import annotations

import pickle

import pytest

from speakeasy_core.errors import (
    AudioDecodeError,
    BackendUnavailableError,
    EmptyAudioError,
    InputNotFoundError,
    InvalidOptionError,
    SpeakEasyError,
    TempFileError,
    UnknownBackendError,
)


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (InputNotFoundError("/data/a.wav"), FileNotFoundError),
        (AudioDecodeError("/data/a.wav", "not audio"), ValueError),
        (EmptyAudioError("/data/a.wav", "no samples"), ValueError),
        (InvalidOptionError("batch_size", 0, "must be positive"), ValueError),
        (UnknownBackendError("nope", ["canary"]), LookupError),
        (BackendUnavailableError("install the nemo extra"), ImportError),
        (TempFileError("locked"), OSError),
    ],
)
def test_every_error_is_ours_and_a_builtin(error: Exception, builtin: type[Exception]) -> None:
    assert isinstance(error, SpeakEasyError)
    assert isinstance(error, builtin)
    with pytest.raises(builtin):
        raise error


def test_input_errors_name_the_input() -> None:
    missing = InputNotFoundError("/data/missing.wav")
    assert missing.input == "/data/missing.wav"
    assert missing.filename == "/data/missing.wav"
    assert "/data/missing.wav" in str(missing)
    assert str(AudioDecodeError("/data/x.ogg", "truncated")) == "/data/x.ogg: truncated"


def test_option_and_backend_errors_say_what_is_allowed() -> None:
    assert "batch_size=0" in str(InvalidOptionError("batch_size", 0, "must be positive"))
    message = str(UnknownBackendError("nope", ["canary", "parakeet"]))
    assert "'nope'" in message
    assert "canary, parakeet" in message


@pytest.mark.parametrize(
    "error",
    [
        InputNotFoundError("/a.wav"),
        EmptyAudioError("/a.wav", "no samples"),
        InvalidOptionError("task", "sing", "unknown"),
        UnknownBackendError("nope", ["whisper"]),
    ],
)
def test_errors_survive_pickling(error: Exception) -> None:
    """Errors cross process boundaries (multiprocessing, Ray) intact."""
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
