"""NeMo-style JSON Lines manifests as typed data: read users' manifests, describe ours.

A manifest line is one JSON object with at least ``audio_filepath`` and ``duration``.
Extra keys (Canary's ``source_lang``, ``target_lang``, ``pnc``, ``taskname``; a
reference ``text``) are kept in ``extra`` and written back unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, InputNotFoundError

__all__ = ["ManifestEntry", "read_manifest"]


@dataclass(frozen=True)
class ManifestEntry:
    """One line of a manifest. ``audio_filepath`` is absolute when we write it."""

    audio_filepath: str
    duration: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The object written as one manifest line."""
        line: dict[str, Any] = {"audio_filepath": self.audio_filepath}
        if self.duration is not None:
            line["duration"] = self.duration
        line.update(self.extra)
        return line

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, base_dir: Path | None = None) -> ManifestEntry:
        """Parse one line; a relative path is resolved against ``base_dir``."""
        rest = dict(data)
        audio = rest.pop("audio_filepath")
        if not isinstance(audio, str):
            raise TypeError("audio_filepath must be a string")
        if base_dir is not None and not Path(audio).is_absolute():
            audio = str(base_dir / audio)
        duration = rest.pop("duration", None)
        return cls(audio, None if duration is None else float(duration), rest)


def read_manifest(path: str | Path) -> Iterator[ManifestEntry]:
    """Stream the entries of a JSON Lines manifest (relative paths resolved against it).

    Raises InputNotFoundError if the manifest is missing and InputError naming the
    manifest and line number for a line that is not a valid entry. Blank lines are
    skipped.
    """
    manifest = Path(path)
    try:
        handle = manifest.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputNotFoundError(manifest) from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                yield ManifestEntry.from_json(json.loads(line), base_dir=manifest.parent)
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(manifest, f"line {number}: not a manifest entry ({exc})") from exc
