"""Output names decided before the job starts: safe on any filesystem, distinct,
deterministic; the real source path kept (non-UTF-8 names round-trip)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakeasy_core.backends import PreparedAudio, register_backend, unregister_backend
from speakeasy_core.cli import main
from speakeasy_core.job import JOURNAL_NAME, NAME_MAX, JobInput, expand_inputs, plan_outputs
from speakeasy_core.journal import read_journal
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions
from tests.hostile import write_clip

DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10))}
HASHED = re.compile(r"~[0-9a-f]{8}$")

pytestmark = pytest.mark.usefixtures("no_pending_cleanups")


def stems(*paths: str, formats: tuple[str, ...] = ("txt",)) -> list[str]:
    return [item.stem for item in plan_outputs(expand_inputs(paths), formats)]


def name_bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


# -- unit: the rules -------------------------------------------------------------------


def test_plain_names_are_kept(tmp_path: Path) -> None:
    assert stems("a/talk.wav", "b/other.flac") == ["talk", "other"]


def test_same_name_in_two_folders_given_as_files_gets_path_hashes() -> None:
    first, second = stems("a/x.wav", "b/x.wav")
    assert first != second
    assert first.startswith("x~")
    assert second.startswith("x~")
    assert HASHED.search(first)
    assert stems("b/x.wav", "a/x.wav") == [second, first]  # order does not decide


def test_same_stem_different_extensions_keep_their_extension(tmp_path: Path) -> None:
    write_clip(tmp_path / "talk.wav")
    write_clip(tmp_path / "talk.flac")
    write_clip(tmp_path / "other.wav")
    assert stems(str(tmp_path)) == ["other", "talk.flac", "talk.wav"]


def test_names_differing_only_in_case_are_a_collision() -> None:
    first, second = stems("a/Talk.wav", "b/talk.wav")
    assert first.casefold() != second.casefold()


def test_the_same_file_given_twice_is_one_input() -> None:
    assert stems("a/x.wav", "a/x.wav", "a/../a/x.wav") == ["x"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("con.wav", "con_"),
        ("NUL.flac", "NUL_"),
        ("Com1.x.wav", "Com1_.x"),
        ("lpt9.wav", "lpt9_"),
        ("aux .wav", "aux _"),
        ("console.wav", "console"),
        ("com10.wav", "com10"),
    ],
)
def test_windows_device_names_get_an_underscore_on_every_os(name: str, expected: str) -> None:
    (stem,) = stems(f"in/{name}")
    if os.name == "nt" and expected.endswith(" _"):  # a trailing space is no Windows name
        assert stem.startswith(expected.rstrip(" _") + "_~")
        assert HASHED.search(stem)
    else:
        assert stem == expected


def test_a_device_name_colliding_with_its_mapping_is_resolved() -> None:
    first, second = stems("in/con.wav", "in/con_.wav")
    assert first != second
    assert {first[:4], second[:4]} == {"con_"}


def test_too_long_names_are_cut_by_bytes_with_a_hash() -> None:
    long_ascii = "a" * 251  # + ".wav" = 255 bytes: a legal input, but not with ".json"
    cjk = "語" * 84  # 252 bytes
    for stem in stems(f"in/{long_ascii}.wav", f"in/{cjk}.wav", formats=("json", "txt")):
        assert name_bytes(stem) + len(".json") <= NAME_MAX
        assert HASHED.search(stem)
    a, b = stems(f"in/{long_ascii}.wav", f"in/{long_ascii[:-1]}b.wav")
    assert a != b  # same cut prefix, different hashes


def test_undecodable_bytes_become_underscores_with_a_hash() -> None:
    raw = b"caf\xe9".decode("utf-8", "surrogateescape")
    (stem,) = stems(f"in/{raw}.wav")
    assert stem.startswith("caf_~")
    stem.encode("utf-8")  # valid UTF-8 now


@pytest.mark.skipif(os.name == "nt", reason="undecodable bytes in a folder name are POSIX only")
def test_folder_parts_are_made_safe_too(tmp_path: Path) -> None:
    folder = tmp_path / "in" / "aux" / b"d\xffir".decode("utf-8", "surrogateescape")
    write_clip(folder / "talk.wav")
    (stem,) = stems(str(tmp_path / "in"))
    first, second, last = PurePosixPath(stem).parts
    assert first == "aux_"
    assert second.startswith("d_ir~")
    assert last == "talk"


name_chars = st.characters(
    codec=None, exclude_characters="/\0", exclude_categories=("Cs",)
) | st.sampled_from([bytes([b]).decode("utf-8", "surrogateescape") for b in range(0x80, 0x100)])
names = st.one_of(
    st.text(name_chars, min_size=1, max_size=120).filter(lambda n: n not in {".", ".."}),
    st.sampled_from([*DEVICES, "con", "Nul", "talk", "Talk"]),
)


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), names, st.sampled_from([".wav", ".flac"]))))
def test_planned_names_are_safe_distinct_and_stable(
    entries: list[tuple[str, str, str]],
) -> None:
    inputs = [JobInput(Path(folder) / f"{name}{ext}", name) for folder, name, ext in entries]
    planned = plan_outputs(inputs, ("json", "txt"))
    seen: set[tuple[Path, str]] = set()
    expected = []
    for item in inputs:
        if (item.path.resolve(), item.stem) not in seen:
            seen.add((item.path.resolve(), item.stem))
            expected.append(item.path)
    assert [item.path for item in planned] == expected
    finals = [item.stem for item in planned]
    assert len({stem.casefold() for stem in finals}) == len(finals)
    for stem in finals:
        stem.encode("utf-8")
        assert name_bytes(stem) + len(".json") <= NAME_MAX
        assert stem.partition(".")[0].rstrip(" ").upper() not in DEVICES
        assert "/" not in stem
        assert "\\" not in stem
    assert plan_outputs(planned, ("json", "txt")) == planned  # planning again changes nothing


# -- the real filesystem, through the CLI ----------------------------------------------


def greet(item: PreparedAudio, options: TranscribeOptions) -> str:
    return "hello"


@pytest.fixture(autouse=True)
def backend() -> Iterator[None]:
    def factory(*, model: str | None, device: str, **options: Any) -> MockBackend:
        return MockBackend(greet)

    register_backend("names", factory)
    yield
    unregister_backend("names")


def run(*args: str) -> int:
    return main(["transcribe", "--backend", "names", "--no-progress", *args])


@pytest.mark.skipif(
    os.name == "nt", reason="undecodable bytes in a name, and CON is the console: POSIX files"
)
def test_hostile_names_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    raw = b"r\xe9union".decode("utf-8", "surrogateescape")
    hostile = [
        "a" * 251 + ".wav",  # 255 bytes
        "語" * 80 + ".wav",  # 240 bytes: the temp name once broke on it
        f"{raw}.wav",  # not UTF-8
        "talk.wav",
        "talk.flac",
        "con.wav",
    ]
    for name in hostile:
        write_clip(folder / name)
    twins = [write_clip(tmp_path / where / "speech.wav") for where in ("one", "two")]
    args = [str(folder), *map(str, twins), "--out-dir", str(out := tmp_path / "out")]
    status = run(*args, "--format", "json")
    assert status == 0, capsys.readouterr().err
    sources = {}
    for _key, result in read_journal(out / JOURNAL_NAME):
        assert result.ok
        sources[result.source] = result
    expected = {str(folder / name) for name in hostile} | set(map(str, twins))
    assert set(sources) == expected  # the real paths, the non-UTF-8 one byte for byte
    assert os.fsencode(str(folder / f"{raw}.wav")) in {os.fsencode(s) for s in sources}
    written = sorted(p.name for p in out.glob("*.json"))
    assert len(written) == len(expected)
    for path in out.glob("*.json"):
        assert name_bytes(path.name) <= NAME_MAX
        path.name.encode("utf-8")
        data = json.loads(path.read_bytes().decode("utf-8"))  # the file is valid UTF-8
        assert data["source"] in expected
    assert "con_.json" in written
    assert "talk.wav.json" in written
    assert "talk.flac.json" in written
    assert len([name for name in written if name.startswith("speech~")]) == 2
    # the journal line of the non-UTF-8 input is ASCII JSON with a \udcXX escape
    journal_text = (out / JOURNAL_NAME).read_bytes().decode("ascii")
    assert "r\\udce9union" in journal_text

    assert run(*args, "--format", "json", "--resume") == 0
    assert f"0 transcribed, {len(expected)} already done" in capsys.readouterr().err
