from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakeasy_core.errors import InputError, InputNotFoundError
from speakeasy_core.manifest import ManifestEntry, read_manifest

json_values = st.one_of(st.text(), st.integers(), st.booleans(), st.none())


@given(
    path=st.text(min_size=1).map(lambda s: "/audio/" + s.replace("\n", "")),
    duration=st.one_of(st.none(), st.floats(0, 1e5)),
    extra=st.dictionaries(
        st.text(min_size=1).filter(lambda k: k not in {"audio_filepath", "duration"}), json_values
    ),
)
def test_entry_round_trips_through_json(
    path: str, duration: float | None, extra: dict[str, object]
) -> None:
    entry = ManifestEntry(path, duration, extra)
    line = json.dumps(entry.to_json(), ensure_ascii=False)
    assert ManifestEntry.from_json(json.loads(line)) == entry


def test_read_manifest_resolves_relative_paths_and_skips_blank_lines(tmp_path: Path) -> None:
    manifest = tmp_path / "in.jsonl"
    manifest.write_text(
        '{"audio_filepath": "a.wav", "duration": 1.5, "text": "hi"}\n\n'
        '{"audio_filepath": "/abs/b.wav"}\n',
        encoding="utf-8",
    )
    entries = list(read_manifest(manifest))
    assert entries == [
        ManifestEntry(str(tmp_path / "a.wav"), 1.5, {"text": "hi"}),
        # rooted, not absolute, on Windows: on the manifest's drive
        ManifestEntry(str(Path(tmp_path.anchor, "abs", "b.wav")), None, {}),
    ]


def test_bad_manifest_line_names_file_and_line(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text('{"audio_filepath": "a.wav"}\n{"duration": 2}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl: line 2"):
        list(read_manifest(manifest))


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError) as info:
        list(read_manifest(tmp_path / "nope.jsonl"))
    assert info.value.input == str(tmp_path / "nope.jsonl")
