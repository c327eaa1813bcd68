"""What the rest of the subpackage shares: finding lhotse, telling its objects apart."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import BackendUnavailableError, InputError

if TYPE_CHECKING:
    from lhotse.cut import Cut

__all__ = [
    "MANIFEST_SUFFIXES",
    "as_cutset",
    "is_lhotse",
    "is_set",
    "iter_cuts",
    "require_lhotse",
    "supervision_key",
]

MANIFEST_SUFFIXES = (".jsonl", ".jsonl.gz")
"""The manifest files :func:`load_manifest` opens lazily and :class:`CutSetWriter` writes."""

_INSTALL_HINT = "lhotse is not installed: pip install 'speakeasy_core[lhotse]'"


def supervision_key(cut_id: str, supervision_id: str) -> str:
    """The key a supervision is transcribed and reported under: ``"<cut>/<supervision>"``."""
    return f"{cut_id}/{supervision_id}"


def require_lhotse() -> Any:
    """The lhotse module; BackendUnavailableError if it is not installed."""
    try:
        import lhotse
    except ImportError as exc:
        raise BackendUnavailableError(_INSTALL_HINT) from exc
    return lhotse


def is_lhotse(value: object) -> bool:
    """True for a lhotse CutSet, RecordingSet, Cut or Recording (never imports lhotse)."""
    if "lhotse" not in sys.modules:
        return False  # lhotse objects cannot exist before lhotse is imported
    from lhotse import CutSet, Recording, RecordingSet
    from lhotse.cut import Cut

    return isinstance(value, CutSet | RecordingSet | Cut | Recording)


def is_set(value: object) -> bool:
    """A CutSet or RecordingSet (never imports lhotse)."""
    if "lhotse" not in sys.modules:
        return False
    from lhotse import CutSet, RecordingSet

    return isinstance(value, CutSet | RecordingSet)


def as_cutset(source: Any) -> Any:
    """A CutSet for a CutSet or RecordingSet; each recording becomes a cut with its id."""
    from lhotse import CutSet, Recording, RecordingSet
    from lhotse.lazy import LazyMapper

    if isinstance(source, RecordingSet):
        if source.is_lazy:
            return CutSet(LazyMapper(source.data, fn=Recording.to_cut))
        return CutSet.from_cuts(recording.to_cut() for recording in source)
    return source


def iter_cuts(cuts: Any) -> Iterator[Cut]:
    """Iterate a (possibly lazy) CutSet; a manifest that breaks off raises InputError."""
    iterator = iter(cuts)
    while True:
        try:
            cut = next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # a corrupt line or truncated .gz of a lazy manifest
            raise InputError("lhotse manifest", f"cannot read the next cut: {exc}") from exc
        yield cut
