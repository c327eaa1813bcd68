"""The real ``speakeasy-core`` CLI with a ``slowmock`` backend, for tests that signal,
lock or starve a real process: ``python hostile_child.py HANG_AFTER TEXT_BYTES ARGS...``.

The backend answers ``hello <stem>`` (or ``TEXT_BYTES`` of text); once it has answered
``HANG_AFTER`` inputs (0: never) it blocks, as a long model call does, until signalled.
With ``SLOWMOCK_FINALIZER`` set it first spends a second in an object's ``__del__``
(announced on stderr), where Python swallows what a signal handler raises.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from speakeasy_core.backends import PreparedAudio, register_backend
from speakeasy_core.cli import main
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions


class _Finalizer:
    def __del__(self) -> None:
        sys.stderr.write("finalizing\n")
        sys.stderr.flush()
        time.sleep(1)


def run() -> int:
    hang_after, text_bytes = int(sys.argv[1]), int(sys.argv[2])
    answered = 0

    def answer(item: PreparedAudio, options: TranscribeOptions) -> str:
        nonlocal answered
        if hang_after and answered >= hang_after:
            if os.environ.get("SLOWMOCK_FINALIZER"):
                _Finalizer()  # collected at once: a signal lands in its __del__
            time.sleep(3600)  # until signalled
        answered += 1
        stem = Path(item.key).stem
        return ("x" * text_bytes) if text_bytes else f"hello {stem}"

    def factory(*, model: str | None, device: str, **options: Any) -> MockBackend:
        return MockBackend(answer)

    register_backend("slowmock", factory)
    return main(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(run())
