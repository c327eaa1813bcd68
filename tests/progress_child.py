"""The real ``speakeasy-core`` CLI with a ``paced`` backend, for terminal captures:
``python progress_child.py PACE MAX_DURATION ARGS...``.

The backend answers ``hello <stem>`` after PACE seconds per item, and takes pieces of
at most MAX_DURATION seconds (0: no limit), as a model of known speed would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from speakeasy_core.backends import Capabilities, PreparedAudio, register_backend
from speakeasy_core.cli import main
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions


def run() -> int:
    pace, max_duration = float(sys.argv[1]), float(sys.argv[2])

    def answer(item: PreparedAudio, options: TranscribeOptions) -> str:
        time.sleep(pace)
        return f"hello {Path(item.key).stem}"

    def factory(*, model: str | None, device: str, **options: Any) -> MockBackend:
        capabilities = Capabilities(max_duration=max_duration or None)
        return MockBackend(answer, capabilities=capabilities)

    register_backend("paced", factory)
    return main(sys.argv[3:])


if __name__ == "__main__":
    sys.exit(run())
