"""Sphinx configuration: the guides in this folder and the API reference (api.md) from
the docstrings. CI builds it with warnings as errors: sphinx-build -W docs OUT."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import speakeasy_core

project = "speakeasy_core"
author = "speakeasy_core developers"
copyright = "speakeasy_core developers"
release = version = speakeasy_core.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
html_theme = "alabaster"

# Names exported by speakeasy_core itself are documented there, not again under the
# subpackage that defines them (autodoc would describe one object twice).
_documenting: list[str] = []


def _note_module(app: object, what: str, name: str, *args: object) -> None:
    if what == "module":
        _documenting[:] = [name]


def _skip_reexport(
    app: object, what: str, name: str, obj: object, skip: bool, *args: object
) -> bool:
    elsewhere = bool(_documenting) and _documenting[0] != "speakeasy_core"
    exported = name in speakeasy_core.__all__ and getattr(speakeasy_core, name) is obj
    return True if elsewhere and exported else skip


def setup(app: object) -> None:
    app.connect("autodoc-process-docstring", _note_module)  # type: ignore[attr-defined]
    app.connect("autodoc-skip-member", _skip_reexport)  # type: ignore[attr-defined]
