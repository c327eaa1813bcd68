"""The contract between the :class:`~speakeasy_core.Transcriber` and a model backend.

A backend receives a batch of :class:`PreparedAudio`: 16 kHz mono float32 samples the
Transcriber decoded (no file is involved). It returns one :class:`BackendOutput` per
item, in the same order. It never creates or deletes files itself; when it needs one
(a wav for a tool that only reads files, say) it asks the workspace it is given.

A backend that can also turn a batch into model input ahead of time implements
:class:`CollatingBackend`: the Transcriber then collates the next batches in its
prefetch workers while the model runs the current one. One that has a further step
worth moving off the model's thread (features on a CPU model, say) implements
:class:`FeaturizingBackend`: an idle worker runs that step, else the model's thread.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..audio import TARGET_SAMPLE_RATE
from ..errors import InvalidOptionError
from ..types import Segment, Task, TranscribeOptions, Word

if TYPE_CHECKING:
    from ..tempfiles import TempWorkspace

__all__ = [
    "Backend",
    "BackendFactory",
    "BackendOutput",
    "Capabilities",
    "CollatingBackend",
    "FeaturizingBackend",
    "PreparedAudio",
    "describe_batch",
    "is_backend",
    "is_collating",
    "is_featurizing",
    "validate_options",
]

_TASKS: tuple[Task, ...] = ("transcribe", "translate")


@dataclass(frozen=True)
class Capabilities:
    """What a loaded backend can do; the Transcriber validates options against it.

    ``languages`` is ``None`` when the backend does not restrict the source language.
    ``max_duration`` is the longest stretch of audio (seconds) the backend handles
    well in one piece; longer inputs are split by the caller. ``None``: no limit.
    """

    languages: frozenset[str] | None = None
    translation: bool = False
    target_languages: frozenset[str] | None = None
    timestamps: bool = False
    punctuation_control: bool = False
    max_duration: float | None = None


def _check_choice(option: str, value: str | None, allowed: frozenset[str] | None) -> None:
    if value is not None and allowed is not None and value not in allowed:
        raise InvalidOptionError(option, value, f"supported: {', '.join(sorted(allowed))}")


def validate_options(options: TranscribeOptions, caps: Capabilities) -> None:
    """Raise InvalidOptionError for options the backend cannot honour."""
    if options.task not in _TASKS:
        raise InvalidOptionError("task", options.task, "use 'transcribe' or 'translate'")
    if options.task == "translate" and not caps.translation:
        raise InvalidOptionError("task", "translate", "this backend cannot translate")
    if options.timestamps and not caps.timestamps:
        raise InvalidOptionError("timestamps", True, "this backend gives no timestamps")
    if not options.punctuation and not caps.punctuation_control:
        raise InvalidOptionError("punctuation", False, "this backend cannot switch it off")
    _check_choice("language", options.language, caps.languages)
    if options.task == "translate":
        _check_choice("target_language", options.target_language, caps.target_languages)


@dataclass(frozen=True, eq=False)
class PreparedAudio:
    """One input (or piece of one) ready for a backend: 16 kHz mono float32 samples.

    ``key`` names it in errors and logs (the input's path or label).
    """

    key: str
    samples: npt.NDArray[np.float32]

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return len(self.samples) / TARGET_SAMPLE_RATE


def describe_batch(batch: Sequence[PreparedAudio]) -> str:
    """How error messages name a batch: its one input, or its size."""
    return batch[0].key if len(batch) == 1 else f"a batch of {len(batch)}"


@dataclass(frozen=True)
class BackendOutput:
    """A backend's answer for one item; times are seconds from the item's start."""

    text: str
    words: tuple[Word, ...] = ()
    segments: tuple[Segment, ...] = ()
    language: str | None = None


@runtime_checkable
class Backend(Protocol):
    """A speech-to-text model behind a uniform, batched interface."""

    name: str
    model_name: str

    def load(self) -> None:
        """Load the model (idempotent). Raises ModelLoadError or BackendUnavailableError."""

    def unload(self) -> None:
        """Free the model and any device memory (idempotent)."""

    @property
    def capabilities(self) -> Capabilities:
        """What this backend (with its loaded model) supports."""

    def transcribe_batch(
        self,
        batch: Sequence[PreparedAudio],
        options: TranscribeOptions,
        workspace: TempWorkspace,
    ) -> list[BackendOutput]:
        """Transcribe every item in one model call; one output per item, same order.

        Raises on failure of the whole call; the caller splits the batch to isolate
        the item at fault.
        """


class CollatingBackend(Backend, Protocol):
    """A backend that prepares a batch's model input separately from running the model."""

    def collate(self, batch: Sequence[PreparedAudio], options: TranscribeOptions) -> Any:
        """The model input for ``batch``; thread-safe (called from prefetch workers).

        Raises InvalidOptionError for options the backend cannot honour.
        """

    def transcribe_collated(
        self, batch: Sequence[PreparedAudio], collated: Any, options: TranscribeOptions
    ) -> list[BackendOutput]:
        """Like :meth:`Backend.transcribe_batch`, on what :meth:`collate` returned for it."""


class FeaturizingBackend(CollatingBackend, Protocol):
    """A collating backend with a second step on the collated batch, run ahead when a
    prefetch worker is idle and otherwise by the model's thread just before the call."""

    def featurize(self, collated: Any) -> Any:
        """What :meth:`transcribe_collated` takes in place of ``collated``, giving the
        same outputs; thread-safe. ``collated`` itself when there is nothing to do."""


_BACKEND_MEMBERS = ("name", "model_name", "load", "unload", "capabilities", "transcribe_batch")
_COLLATING_MEMBERS = ("collate", "transcribe_collated")
_FEATURIZING_MEMBERS = (*_COLLATING_MEMBERS, "featurize")


def _has_members(obj: object, members: Sequence[str]) -> bool:
    missing = object()
    return all(inspect.getattr_static(obj, member, missing) is not missing for member in members)


def is_backend(obj: object) -> bool:
    """Whether ``obj`` has every member of :class:`Backend`, looked up without running any.

    ``isinstance(obj, Backend)`` would read the ``capabilities`` property on Python
    3.11, and a backend's capabilities load its model.
    """
    return _has_members(obj, _BACKEND_MEMBERS)


def is_collating(obj: object) -> bool:
    """Whether the backend ``obj`` is also a :class:`CollatingBackend`."""
    return _has_members(obj, _COLLATING_MEMBERS)


def is_featurizing(obj: object) -> bool:
    """Whether the backend ``obj`` is also a :class:`FeaturizingBackend`."""
    return _has_members(obj, _FEATURIZING_MEMBERS)


class BackendFactory(Protocol):
    """Builds a backend; registered under a name in :mod:`speakeasy_core.backends`.

    ``options`` are backend-specific keyword arguments passed through from
    ``Transcriber(backend_options=...)``; unknown ones raise InvalidOptionError.
    """

    def __call__(self, *, model: str | None, device: str, **options: Any) -> Backend: ...
