"""A scriptable in-process backend for testing code that uses speakeasy_core.

Like httpx's ``MockTransport``: give it a handler that maps each prepared input to a
text (or a :class:`~speakeasy_core.backends.BackendOutput`), and it records every
batch it was called with. It is a :class:`~speakeasy_core.backends.base.CollatingBackend`:
``events`` lists ``("collate", keys)`` and ``("run", keys)`` in the order they happened
(collation runs in the Transcriber's prefetch workers), so tests can see the
preparation of a batch overlap the model's work on another. A handler that raises
makes the whole batch call fail, as a real model does when one file in a batch is
bad::

    def handler(item: PreparedAudio, options: TranscribeOptions) -> str:
        if "broken" in item.key:
            raise RuntimeError("decoder exploded")
        return f"hello from {Path(item.key).name}"

    backend = MockBackend(handler)
    results = Transcriber(backend).transcribe_batch(["a.wav", "broken.wav"])
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..backends.base import BackendOutput, Capabilities, PreparedAudio
from ..tempfiles import TempWorkspace
from ..types import TranscribeOptions

__all__ = ["MockBackend"]

Handler = Callable[[PreparedAudio, TranscribeOptions], "str | BackendOutput"]


def _describe(item: PreparedAudio, options: TranscribeOptions) -> str:
    return f"{item.key} {item.duration:.2f}"


@dataclass
class MockBackend:
    """A backend that answers from ``handler`` and records its batches."""

    handler: Handler = _describe
    capabilities: Capabilities = field(default_factory=Capabilities)
    name: str = "mock"
    model_name: str = "mock-model"
    batches: list[list[PreparedAudio]] = field(default_factory=list)
    events: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    loads: int = 0
    loaded: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _event(self, what: str, batch: Sequence[PreparedAudio]) -> None:
        with self._lock:
            self.events.append((what, tuple(item.key for item in batch)))

    def load(self) -> None:
        if not self.loaded:
            self.loads += 1
            self.loaded = True

    def unload(self) -> None:
        self.loaded = False

    def transcribe_batch(
        self,
        batch: Sequence[PreparedAudio],
        options: TranscribeOptions,
        workspace: TempWorkspace,
    ) -> list[BackendOutput]:
        return self.transcribe_collated(batch, self.collate(batch, options), options)

    def collate(self, batch: Sequence[PreparedAudio], options: TranscribeOptions) -> Any:
        """Records the batch; returns its keys."""
        self._event("collate", batch)
        return tuple(item.key for item in batch)

    def transcribe_collated(
        self, batch: Sequence[PreparedAudio], collated: Any, options: TranscribeOptions
    ) -> list[BackendOutput]:
        if not self.loaded:
            raise RuntimeError("MockBackend used before load()")
        self._event("run", batch)
        self.batches.append(list(batch))
        outputs = []
        for item in batch:
            answer = self.handler(item, options)
            outputs.append(BackendOutput(answer) if isinstance(answer, str) else answer)
        return outputs
