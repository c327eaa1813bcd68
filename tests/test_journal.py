"""speakeasy_core.journal: keys, the journal file, and resume after a crash."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakeasy_core.errors import (
    InputNotFoundError,
    InvalidOptionError,
    JournalError,
    JournalWriteError,
)
from speakeasy_core.journal import Journal, array_key, job_key, read_journal
from speakeasy_core.types import Segment, TranscribeOptions, TranscriptionResult, Word
from tests.hostile import Mounts, fill

HEADER: dict[str, Any] = {
    "backend": "parakeet",
    "model": "tiny",
    "options": TranscribeOptions().to_dict(),
}


def ok(source: str, text: str = "hello") -> TranscriptionResult:
    return TranscriptionResult(
        source=source,
        text=text,
        duration=1.5,
        backend="parakeet",
        model="tiny",
        words=(Word(text, 0.0, 1.0),),
        segments=(Segment(text, 0.0, 1.0),),
    )


def bad(source: str) -> TranscriptionResult:
    return TranscriptionResult(source=source, error="cannot decode", error_type="AudioDecodeError")


@pytest.fixture
def audio_file(tmp_path: Path) -> Path:
    path = tmp_path / "talk.wav"
    path.write_bytes(b"RIFF....WAVE")
    return path


# --- job_key and array_key --------------------------------------------------------------


def test_job_key_is_stable_and_independent_of_option_order(audio_file: Path) -> None:
    reordered = dict(reversed(list(HEADER.items())))
    assert job_key(audio_file, HEADER) == job_key(str(audio_file), reordered)
    assert job_key(audio_file, HEADER).startswith("file-")


def test_job_key_of_a_relative_path_or_symlink_is_that_of_the_file(
    audio_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    link = audio_file.with_name("link.wav")
    link.symlink_to(audio_file)
    monkeypatch.chdir(audio_file.parent)
    assert job_key(Path("talk.wav"), HEADER) == job_key(audio_file, HEADER)
    assert job_key(link, HEADER) == job_key(audio_file, HEADER)


def test_job_key_changes_with_anything_that_changes_the_output(audio_file: Path) -> None:
    before = job_key(audio_file, HEADER)
    stat = audio_file.stat()
    variants = [
        {**HEADER, "model": "other"},
        {**HEADER, "options": {**HEADER["options"], "timestamps": True}},
        {**HEADER, "chunk": 30},
    ]
    assert len({before, *(job_key(audio_file, v) for v in variants)}) == 4

    copy = audio_file.with_name("copy.wav")
    shutil.copy2(audio_file, copy)  # same size and mtime, other path
    assert job_key(copy, HEADER) != before

    os.utime(audio_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))  # NTFS: 100 ns steps
    touched = job_key(audio_file, HEADER)
    assert touched != before

    audio_file.write_bytes(b"RIFF....WAVE!")  # size changes
    os.utime(audio_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1000))
    assert job_key(audio_file, HEADER) not in (before, touched)


def test_job_key_accepts_dataclasses_paths_and_numpy_scalars(audio_file: Path) -> None:
    as_dataclass = {"options": TranscribeOptions(), "model": Path("m.nemo"), "n": np.int64(3)}
    as_json = {"options": TranscribeOptions().to_dict(), "model": "m.nemo", "n": 3}
    assert job_key(audio_file, as_dataclass) == job_key(audio_file, as_json)


@pytest.mark.parametrize("value", [object(), float("nan"), {1, 2}])
def test_job_key_rejects_options_without_a_stable_json_form(audio_file: Path, value: Any) -> None:
    with pytest.raises(InvalidOptionError, match="JSON"):
        job_key(audio_file, {"x": value})


def test_job_key_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"gone\.wav"):
        job_key(tmp_path / "gone.wav", HEADER)


def test_array_key_hashes_the_content() -> None:
    samples = np.arange(12, dtype=np.float32).reshape(6, 2)
    key = array_key(samples, 16000, HEADER)
    assert key.startswith("array-")
    assert array_key(samples.copy(), 16000, HEADER) == key
    assert array_key(np.asfortranarray(samples), 16000, HEADER) == key  # layout is not content
    changed = samples.copy()
    changed[3, 1] += 1
    others = {
        array_key(changed, 16000, HEADER),
        array_key(samples, 8000, HEADER),
        array_key(samples.astype(np.float64), 16000, HEADER),
        array_key(samples.reshape(12), 16000, HEADER),
        array_key(samples, 16000, {**HEADER, "model": "other"}),
    }
    assert len(others) == 5
    assert key not in others


def test_array_key_rejects_object_arrays() -> None:
    with pytest.raises(InvalidOptionError, match="object"):
        array_key(np.array([object()]), 16000, HEADER)


# --- the journal file -------------------------------------------------------------------


def test_new_journal_records_results_and_reopens_with_them(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "job.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        assert journal.done_keys() == set()
        journal.append("a", ok("a.wav", "ünïcødé ☃"))
        journal.append("b", bad("b.wav"))
        journal.append("c", ok("c.wav"))
        assert journal.done_keys() == {"a", "c"}
        assert journal.get("a") == ok("a.wav", "ünïcødé ☃")
        assert journal.get("b") is None
        assert journal.get("zzz") is None
        assert list(journal.results()) == [
            ("a", ok("a.wav", "ünïcødé ☃")),
            ("b", bad("b.wav")),
            ("c", ok("c.wav")),
        ]
    with Journal.open(path, header=HEADER) as again:
        assert again.done_keys() == {"a", "c"}
        assert again.get("c") == ok("c.wav")
        assert again.header == HEADER


def test_every_line_is_complete_json_after_each_append(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        for i in range(3):
            journal.append(str(i), ok(f"{i}.wav"))
            data = path.read_bytes()  # what another process (or a crash) would see
            assert data.endswith(b"\n")
            assert data.count(b"\n") == i + 2  # header + entries


def test_failed_item_retried_later_counts_as_done(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        journal.append("a", bad("a.wav"))
    with Journal.open(path, header=HEADER) as journal:
        assert journal.done_keys() == set()
        journal.append("a", ok("a.wav"))
        assert journal.get("a") == ok("a.wav")
        assert [key for key, _ in journal.results()] == ["a", "a"]
    with Journal.open(path, header=HEADER) as journal:
        assert journal.done_keys() == {"a"}


def test_a_key_appended_twice_keeps_the_latest_success(tmp_path: Path) -> None:
    with Journal.open(tmp_path / "j.jsonl", header=HEADER) as journal:
        journal.append("a", ok("a.wav", "first"))
        journal.append("a", ok("a.wav", "second"))
        journal.append("a", bad("a.wav"))
        assert journal.get("a") == ok("a.wav", "second")


def test_durable_journal_fsyncs_each_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with Journal.open(tmp_path / "fast.jsonl", header=HEADER, durable=False) as fast:
        fast.append("a", ok("a.wav"))
    assert synced == []
    with Journal.open(tmp_path / "safe.jsonl", header=HEADER) as safe:
        safe.append("a", ok("a.wav"))
        safe.append("b", ok("b.wav"))
    assert len(synced) == 3  # header and two lines


def test_header_mismatch_names_the_file_and_the_difference(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        journal.append("a", ok("a.wav"))
    before = path.read_bytes()
    with pytest.raises(
        JournalError,
        match=r"j\.jsonl.*different job \(differs in model: journal 'tiny', this run 'big'\)",
    ):
        Journal.open(path, header={**HEADER, "model": "big"})
    assert path.read_bytes() == before


def test_without_resume_an_old_journal_is_started_afresh(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        journal.append("a", ok("a.wav"))
    with Journal.open(path, header={**HEADER, "model": "big"}, resume=False) as journal:
        assert journal.done_keys() == set()
        assert list(journal.results()) == []
    with Journal.open(path, header={**HEADER, "model": "big"}) as journal:
        assert journal.done_keys() == set()


@pytest.mark.parametrize("resume", [True, False])
@pytest.mark.parametrize(
    "content", [b"my notes\nplease keep\n", b'{"some": "json"}\n', b"no newline at all"]
)
def test_a_file_that_is_not_a_journal_is_never_overwritten(
    tmp_path: Path, content: bytes, resume: bool
) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(content)
    with pytest.raises(JournalError, match=r"notes\.txt: not a speakeasy_core journal"):
        Journal.open(path, header=HEADER, resume=resume)
    assert path.read_bytes() == content


def test_other_journal_versions_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"format":"speakeasy_core.journal","version":99,"header":{}}\n')
    with pytest.raises(JournalError, match="version 99"):
        Journal.open(path, header=HEADER)


def test_a_corrupt_complete_line_is_an_error_with_its_number(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        journal.append("a", ok("a.wav"))
    with path.open("ab") as handle:
        handle.write(b'{"key": "b", "result": {"nonsense": 1}}\n')
    with pytest.raises(JournalError, match=r"j\.jsonl: line 3 is not a journal entry"):
        Journal.open(path, header=HEADER)
    with pytest.raises(JournalError, match="line 3"):
        list(read_journal(path))


def test_partial_last_line_is_ignored_by_readers_and_cut_off_by_writers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        journal.append("a", ok("a.wav"))
    complete = path.read_bytes()
    path.write_bytes(complete + b'{"key":"b","result":{"sour')
    assert [key for key, _ in read_journal(path)] == ["a"]
    with caplog.at_level(logging.WARNING, logger="speakeasy_core.journal"):
        journal = Journal.open(path, header=HEADER)
    assert "partial last line" in caplog.text
    with journal:
        assert path.read_bytes() == complete
        journal.append("b", ok("b.wav"))
    assert [key for key, _ in read_journal(path)] == ["a", "b"]


def test_a_journal_killed_while_writing_its_header_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER):
        pass
    path.write_bytes(path.read_bytes()[:10])
    assert list(read_journal(path)) == []
    with Journal.open(path, header=HEADER) as journal:
        journal.append("a", ok("a.wav"))
    assert [key for key, _ in read_journal(path)] == ["a"]


def test_a_closed_journal_refuses_appends(tmp_path: Path) -> None:
    journal = Journal.open(tmp_path / "j.jsonl", header=HEADER)
    journal.close()
    journal.close()
    with pytest.raises(JournalError, match="closed"):
        journal.append("a", ok("a.wav"))
    assert [key for key, _ in journal.results()] == []  # reading needs no open journal


@pytest.mark.parametrize("key", ["", None, 3])
def test_keys_must_be_non_empty_strings(tmp_path: Path, key: Any) -> None:
    with (
        Journal.open(tmp_path / "j.jsonl", header=HEADER) as journal,
        pytest.raises(InvalidOptionError, match="key"),
    ):
        journal.append(key, ok("a.wav"))


def test_results_that_cannot_be_json_are_refused_without_writing(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        before = path.read_bytes()
        with pytest.raises(JournalError, match="cannot record a"):
            journal.append("a", TranscriptionResult(source="a.wav", duration=float("nan")))
        assert path.read_bytes() == before


def test_opening_a_folder_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal.open(tmp_path, header=HEADER)


def test_memory_does_not_grow_with_the_journal(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    text = "word " * 4000  # 20 kB per result, 10 MB in all
    with Journal.open(path, header=HEADER, durable=False) as journal:
        for i in range(500):
            journal.append(f"k{i}", ok(f"{i}.wav", text))
    tracemalloc.start()
    try:
        with Journal.open(path, header=HEADER) as journal:
            assert len(journal.done_keys()) == 500
            assert sum(1 for _ in journal.results()) == 500
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert path.stat().st_size > 10_000_000
    assert peak < 1_000_000


# --- crash and resume -------------------------------------------------------------------

results_strategy = st.builds(
    TranscriptionResult,
    source=st.text(min_size=1, max_size=20),
    text=st.text(max_size=30),
    duration=st.floats(0, 1e5),
    error=st.none() | st.text(max_size=10),
    segments=st.lists(
        st.builds(Segment, st.text(max_size=10), st.floats(0, 10), st.floats(10, 20)), max_size=2
    ).map(tuple),
)


@given(
    items=st.lists(results_strategy, min_size=1, max_size=12).map(
        lambda results: [(f"key{i}", r) for i, r in enumerate(results)]
    ),
    cut_fraction=st.floats(0, 1),
)
def test_resume_after_a_kill_at_any_byte_equals_one_uninterrupted_run(
    items: list[tuple[str, TranscriptionResult]], cut_fraction: float
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        whole, path = Path(folder) / "whole.jsonl", Path(folder) / "crashed.jsonl"
        with Journal.open(whole, header=HEADER, durable=False) as journal:
            for key, result in items:
                journal.append(key, result)
        data = whole.read_bytes()
        path.write_bytes(data[: round(cut_fraction * len(data))])  # the kill

        survivors = list(read_journal(path))  # a crashed journal parses: a prefix of the run
        assert survivors == items[: len(survivors)]

        with Journal.open(path, header=HEADER, durable=False) as journal:
            done = journal.done_keys()
            assert done == {key for key, r in survivors if r.ok}
            for key, result in items:  # the resumed job: redo all that is not done
                if key not in done:
                    journal.append(key, result)

        resumed = list(read_journal(path))
        assert path.read_bytes().endswith(b"\n")
        latest = dict(resumed)
        assert latest == dict(items)
        ok_keys = [key for key, r in resumed if r.ok]
        assert sorted(ok_keys) == sorted(key for key, r in items if r.ok)  # no duplicates
        with Journal.open(path, header=HEADER) as journal:
            assert journal.done_keys() == set(ok_keys)
            assert all(journal.get(key) == latest[key] for key in ok_keys)


# --- a hostile disk and hostile names ---------------------------------------------------


def test_a_full_disk_at_the_header_is_a_journal_write_error_leaving_no_header(
    tmp_path: Path, mounts: Mounts
) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "64k")
    fill(disk)
    with pytest.raises(JournalWriteError, match="No space left on device") as info:
        Journal.open(disk / "j.jsonl", header=HEADER)
    assert isinstance(info.value, OSError)
    assert info.value.errno == errno.ENOSPC
    assert (disk / "j.jsonl").read_bytes() == b""
    (disk / "filler").unlink()
    with Journal.open(disk / "j.jsonl", header=HEADER) as journal:  # space freed: it works
        journal.append("a", ok("a.wav"))
    assert [key for key, _ in read_journal(disk / "j.jsonl")] == ["a"]


def test_a_full_disk_mid_line_cuts_the_partial_line_off(tmp_path: Path, mounts: Mounts) -> None:
    disk = mounts.tmpfs(tmp_path / "disk", "64k")
    path = disk / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        journal.append("a", ok("a.wav"))
        before = path.read_bytes()
        fill(disk, leave=4096)  # room for part of the next line only
        with pytest.raises(JournalWriteError, match="No space left on device"):
            journal.append("b", ok("b.wav", text="x" * 20_000))
        assert path.read_bytes() == before  # nothing half-written is left
        assert journal.done_keys() == {"a"}
    (disk / "filler").unlink()
    with Journal.open(path, header=HEADER, resume=True) as journal:
        assert journal.done_keys() == {"a"}
        journal.append("b", ok("b.wav", text="x" * 20_000))
    assert [key for key, _ in read_journal(path)] == ["a", "b"]


def test_a_journal_on_a_read_only_mount_cannot_be_opened(tmp_path: Path, mounts: Mounts) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    mounts.read_only(folder)
    with pytest.raises(JournalWriteError, match="Read-only file system") as info:
        Journal.open(folder / "j.jsonl", header=HEADER)
    assert info.value.errno == errno.EROFS


@pytest.mark.skipif(os.name != "posix", reason="undecodable file names exist on POSIX only")
def test_non_utf8_sources_round_trip_through_the_journal(tmp_path: Path) -> None:
    raw = b"/data/r\xe9union \xff.wav"
    source = os.fsdecode(raw)
    path = tmp_path / "j.jsonl"
    with Journal.open(path, header=HEADER) as journal:
        journal.append("a", ok(source))
        journal.append(
            "b", TranscriptionResult(source=source, error=f"{source}: x", error_type="E")
        )
        assert journal.get("a") == ok(source)
    path.read_bytes().decode("ascii")  # plain ASCII JSON, \udcXX escapes
    (first, a), (_, b) = read_journal(path)
    assert first == "a"
    assert os.fsencode(a.source) == raw
    assert os.fsencode(b.source) == raw
