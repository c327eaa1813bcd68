"""Public data types: options in, results out."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from .errors import SpeakEasyError

__all__ = [
    "Segment",
    "Task",
    "TimestampLevel",
    "TranscribeOptions",
    "TranscriptionResult",
    "Word",
]

Task = Literal["transcribe", "translate"]
TimestampLevel = Literal["word", "segment"]


@dataclass(frozen=True)
class Word:
    """One word with its start and end time in seconds from the start of the input."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    """A stretch of text with its start and end time in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class TranscribeOptions:
    """What to ask of the backend; every field changes the output.

    ``language`` is the spoken (source) language, ``target_language`` the language of
    the text for ``task="translate"``. ``timestamps`` asks for word and segment times.
    """

    task: Task = "transcribe"
    language: str | None = None
    target_language: str | None = None
    punctuation: bool = True
    timestamps: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TranscriptionResult:
    """The outcome for one input, in the order the inputs were given.

    A failed item of a batch has ``error`` (the message) and ``error_type`` (the
    exception class name) set and an empty ``text``; ``ok`` tells the two apart.
    """

    source: str
    text: str = ""
    duration: float = 0.0
    backend: str = ""
    model: str = ""
    task: Task = "transcribe"
    language: str | None = None
    words: tuple[Word, ...] = ()
    segments: tuple[Segment, ...] = ()
    error: str | None = None
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def raise_for_error(self) -> None:
        """Raise a :class:`~speakeasy_core.errors.SpeakEasyError` if this item failed."""
        if self.error is not None:
            raise SpeakEasyError(f"{self.error_type}: {self.error}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscriptionResult:
        fields = dict(data)
        fields["words"] = tuple(Word(**w) for w in fields.get("words", ()))
        fields["segments"] = tuple(Segment(**s) for s in fields.get("segments", ()))
        return cls(**fields)


def failed(
    source: str, exc: BaseException, *, backend: str = "", model: str = ""
) -> TranscriptionResult:
    """The result for an input that failed with ``exc``."""
    return TranscriptionResult(
        source=source,
        backend=backend,
        model=model,
        error=str(exc),
        error_type=type(exc).__name__,
    )
