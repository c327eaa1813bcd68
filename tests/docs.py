"""The Python blocks of README.md and docs/*.md run as tests (Sybil), so the docs cannot
drift from the code.

Each document runs top to bottom in one namespace (its blocks build on each other, like
a tutorial), in a fresh working directory holding a copy of ``examples/``. Markup, in
HTML comments that Markdown viewers do not show:

- ``<!-- needs: nemo whisper -->``: the blocks after it need these extras (they get the
  markers, so a missing extra skips them by name; ``<!-- needs: -->`` ends it);
- ``<!-- invisible-code-block: python ... -->``: set-up the reader does not need to see,
  such as files the example opens; :func:`clips` and ``docs_models`` help there;
- ``<!-- skip: next "why" -->``: a block that cannot run here (a GPU, a cluster, a
  download), with the reason shown as the skip's.

Blocks needing a NeMo checkpoint get a tiny real one (speakeasy_core.testing.tiny_nemo)
under the name the block uses.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sybil import Sybil
from sybil.integration.pytest import SybilItem
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

from tests.extras import EXTRAS

__all__ = ["DOCS", "DocsModels", "clips", "docs_models", "docs_workdir", "mark_needs"]

REPO = Path(__file__).resolve().parents[1]
_NEEDS = re.compile(r"<!--\s*needs:([\w\s]*)-->")

DOCS = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["README.md", "docs/*.md"],
    path=str(REPO),
    fixtures=["docs_workdir", "docs_models"],
)


def clips(*names: str, seconds: float = 1.0, broken: tuple[str, ...] = ()) -> None:
    """Write a short tone under each of ``names`` (any format libsndfile writes, by
    suffix), and bytes that are not audio under each of ``broken``."""
    for name in broken:
        Path(name).write_bytes(b"not audio")
    for index, name in enumerate(names):
        path = Path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * 16000)) / 16000
        tone = 0.3 * np.sin(2 * np.pi * (220 + 110 * index) * t).astype(np.float32)
        sf.write(path, tone, 16000)


class DocsModels:
    """Tiny NeMo checkpoints, built once per session, copied in under the docs' names."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._built: dict[str, Path] = {}

    def put(self, name: str, kind: str) -> Path:
        """A tiny ``kind`` model (see ``tiny_nemo.build_tiny``) at ``name`` here."""
        from speakeasy_core.testing.tiny_nemo import build_tiny

        if kind not in self._built:
            self._built[kind] = build_tiny(kind, self._directory / kind).path  # type: ignore[arg-type]
        target = Path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._built[kind], target)
        return target


@pytest.fixture(scope="session")
def docs_models(tmp_path_factory: pytest.TempPathFactory) -> DocsModels:
    return DocsModels(tmp_path_factory.mktemp("docs-models"))


@pytest.fixture(scope="module")
def docs_workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh working (and temp) directory for one document, with ``examples/``."""
    directory = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "examples" / "audio", directory / "examples" / "audio")
    previous = Path.cwd()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(directory))
        os.chdir(directory)
        try:
            yield directory
        finally:
            os.chdir(previous)


def mark_needs(items: list[pytest.Item]) -> None:
    """Give each docs example the extras' markers of the ``needs`` comment above it."""
    for item in items:
        if not isinstance(item, SybilItem):
            continue
        text = item.example.document.text
        needs = [m for m in _NEEDS.finditer(text) if m.start() < item.example.start]
        for extra in needs[-1].group(1).split() if needs else ():
            if extra not in EXTRAS:
                raise pytest.UsageError(f"{item.nodeid}: unknown extra {extra!r} in needs")
            item.add_marker(getattr(pytest.mark, extra))
