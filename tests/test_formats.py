"""speakeasy_core.formats: every format parsed back by an independent parser."""

from __future__ import annotations

import html
import json
import os
import re
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import srt  # type: ignore[import-untyped]
import webvtt
from hypothesis import given
from hypothesis import strategies as st

from speakeasy_core import formats
from speakeasy_core.errors import InvalidOptionError
from speakeasy_core.types import Segment, TranscriptionResult, Word

Cue = tuple[int, int, str]  # start ms, end ms, text


def parse_srt(text: str) -> list[Cue]:
    return [
        (s.start // timedelta(milliseconds=1), s.end // timedelta(milliseconds=1), s.content)
        for s in srt.parse(text)
    ]


def parse_vtt(text: str) -> list[Cue]:
    assert text.startswith("WEBVTT\n\n")
    return [
        (c.start_time.in_milliseconds(), c.end_time.in_milliseconds(), html.unescape(c.raw_text))
        for c in webvtt.from_string(text, strict=True).captions
    ]


def result(
    *segments: tuple[str, float, float], text: str = "", duration: float = 0.0
) -> TranscriptionResult:
    return TranscriptionResult(
        source="in.wav",
        text=text or " ".join(s[0] for s in segments),
        duration=duration,
        segments=tuple(Segment(t, start, end) for t, start, end in segments),
    )


@pytest.fixture
def shout() -> Iterator[str]:
    """A third-party format registered for the test only."""
    formats.register_format("shout", lambda r: r.text.upper(), extension=".shout.txt")
    yield "shout"
    formats.unregister_format("shout")


# --- registry ---------------------------------------------------------------------------


def test_builtin_formats_are_registered() -> None:
    assert {"txt", "json", "srt", "vtt"} <= set(formats.available_formats())
    assert formats.get_format("srt").extension == ".srt"


def test_unknown_format_names_it_and_lists_the_known_ones() -> None:
    with pytest.raises(InvalidOptionError, match=r"'docx'.*available: json, srt, txt, vtt"):
        formats.render(result(("hi", 0, 1)), "docx")


def test_format_names_are_case_insensitive() -> None:
    r = result(("hi", 0, 1))
    assert formats.render(r, "SRT") == formats.render(r, "srt")


def test_registered_format_renders_and_writes(shout: str, tmp_path: Path) -> None:
    assert shout in formats.available_formats()
    r = result(("hello", 0, 1))
    assert formats.render(r, "Shout") == "HELLO"
    path = formats.write_result(r, tmp_path, shout, stem="a")
    assert path == tmp_path / "a.shout.txt"
    assert path.read_text(encoding="utf-8") == "HELLO"


def test_registering_a_taken_name_needs_replace(shout: str) -> None:
    with pytest.raises(InvalidOptionError, match="already registered"):
        formats.register_format("SHOUT", lambda r: "", extension=".x")
    formats.register_format(shout, lambda r: "quiet", extension=".x", replace=True)
    assert formats.render(result(("a", 0, 1)), shout) == "quiet"


@pytest.mark.parametrize(
    ("name", "extension"), [("", ".x"), ("a b", ".x"), ("ok", "x"), ("ok", ".a/b"), ("ok", ".")]
)
def test_malformed_registrations_are_rejected(name: str, extension: str) -> None:
    with pytest.raises(InvalidOptionError):
        formats.register_format(name, lambda r: "", extension=extension)
    assert "ok" not in formats.available_formats()


def test_unregistering_an_unknown_format_fails() -> None:
    with pytest.raises(InvalidOptionError, match="unknown output format"):
        formats.unregister_format("nope")


# --- txt and json ------------------------------------------------------------------------


def test_txt_is_the_text_with_a_final_newline() -> None:
    assert formats.render(result(text="héllo wörld"), "txt") == "héllo wörld\n"
    assert formats.render(result(), "txt") == ""


def test_json_round_trips_the_whole_result_unescaped() -> None:
    r = TranscriptionResult(
        source="日本.wav",
        text="こんにちは",
        duration=1.5,
        backend="parakeet",
        model="m",
        language="ja",
        words=(Word("こんにちは", 0.1, 0.9),),
        segments=(Segment("こんにちは", 0.1, 0.9),),
    )
    text = formats.render(r, "json")
    assert "こんにちは" in text
    assert TranscriptionResult.from_dict(json.loads(text)) == r


def test_json_keeps_the_error_of_a_failed_result() -> None:
    r = TranscriptionResult(source="x.wav", error="broken", error_type="AudioDecodeError")
    assert json.loads(formats.render(r, "json"))["error_type"] == "AudioDecodeError"


# --- subtitles ---------------------------------------------------------------------------


def test_srt_and_vtt_text_layout() -> None:
    r = result(("one", 0.0, 1.25), ("two", 3661.5, 3662.0))
    assert formats.render(r, "srt") == (
        "1\n00:00:00,000 --> 00:00:01,250\none\n\n2\n01:01:01,500 --> 01:01:02,000\ntwo\n\n"
    )
    assert formats.render(r, "vtt") == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\none\n\n01:01:01.500 --> 01:01:02.000\ntwo\n\n"
    )


def test_hours_past_99_do_not_wrap() -> None:
    r = result(("late", 100 * 3600 + 0.25, 123 * 3600 + 1.0))
    expected = [(360_000_250, 442_801_000, "late")]
    assert "100:00:00,250 --> 123:00:01,000" in formats.render(r, "srt")
    assert parse_srt(formats.render(r, "srt")) == expected
    assert parse_vtt(formats.render(r, "vtt")) == expected


@pytest.mark.parametrize(
    ("start", "end", "cue"),
    [
        (0.9996, 1.0004, (999, 1001)),  # start rounds down, end up
        (1.001, 1.002, (1001, 1002)),  # float noise does not cost a millisecond
        (5.0, 5.0, (5000, 5001)),  # zero length: end pushed 1 ms past start
        (2.0, 1.0, (2000, 2001)),  # end before start
        (-0.5, 0.25, (0, 250)),  # negative start clamped
    ],
)
def test_rounding_covers_the_segment_and_never_ends_a_cue_before_it_starts(
    start: float, end: float, cue: tuple[int, int]
) -> None:
    r = result(("x", start, end))
    assert parse_srt(formats.render(r, "srt")) == [(*cue, "x")]
    assert parse_vtt(formats.render(r, "vtt")) == [(*cue, "x")]


def test_non_finite_times_are_rejected() -> None:
    with pytest.raises(InvalidOptionError, match="segment end"):
        formats.render(result(("x", 0.0, float("nan"))), "srt")


def test_without_segments_one_cue_spans_the_whole_input() -> None:
    r = result(text="all of it", duration=12.345)
    assert parse_srt(formats.render(r, "srt")) == [(0, 12345, "all of it")]
    assert parse_vtt(formats.render(r, "vtt")) == [(0, 12345, "all of it")]


def test_empty_or_failed_result_has_no_cues() -> None:
    failed = TranscriptionResult(source="x.wav", error="boom", error_type="TranscriptionError")
    for r in (result(), result(("  \n ", 0, 1)), failed):
        assert formats.render(r, "srt") == ""
        assert formats.render(r, "vtt") == "WEBVTT\n\n"


def test_cues_are_sorted_by_start() -> None:
    r = result(("b", 5, 6), ("a", 1, 2), ("c", 5, 5.5))
    assert [c[2] for c in parse_srt(formats.render(r, "srt"))] == ["a", "c", "b"]
    assert [c[2] for c in parse_vtt(formats.render(r, "vtt"))] == ["a", "c", "b"]


HOSTILE = "first\n\n\n2\n00:00:05,000 --> 00:00:06,000\nfake cue\r\n  \nWEBVTT --->x <b>&amp;"


def test_hostile_text_stays_inside_its_cue_in_srt() -> None:
    text = formats.render(result((HOSTILE, 1, 2), ("next", 3, 4), ("a - > b -- > c", 5, 6)), "srt")
    assert parse_srt(text) == [
        (1000, 2000, "first 2 00:00:05,000 -> 00:00:06,000 fake cue WEBVTT ->x <b>&amp;"),
        (3000, 4000, "next"),
        (5000, 6000, "a -> b -> c"),
    ]


def test_number_line_before_a_timestamp_cannot_start_a_cue_in_srt() -> None:
    """srt's parser starts a cue at any "index, newline, timestamp": cues are one line."""
    text = formats.render(result(("7\n00:00:09,000 in the morning", 1, 2)), "srt")
    assert parse_srt(text) == [(1000, 2000, "7 00:00:09,000 in the morning")]


def test_hostile_text_stays_inside_its_cue_in_vtt() -> None:
    rendered = formats.render(result((HOSTILE, 1, 2), ("next", 3, 4)), "vtt")
    assert "-->x" not in rendered
    assert parse_vtt(rendered) == [
        (1000, 2000, "first 2 00:00:05,000 --> 00:00:06,000 fake cue WEBVTT --->x <b>&amp;"),
        (3000, 4000, "next"),
    ]


# --- property-based round trips ---------------------------------------------------------


# 1 ms, plus the nanoseconds by which times are rounded before floor/ceil
MS_TOLERANCE = 1 + 1e-6


def one_line(text: str) -> str:
    """The documented sanitising: whitespace runs collapse to one space."""
    return " ".join(text.split())


@st.composite
def monotone_results(draw: st.DrawFn) -> TranscriptionResult:
    texts = draw(st.lists(st.text(max_size=40), max_size=8))
    gaps = draw(st.lists(st.floats(0, 5000), min_size=2 * len(texts), max_size=2 * len(texts)))
    times = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    segments = tuple(Segment(text, times[2 * i], times[2 * i + 1]) for i, text in enumerate(texts))
    return TranscriptionResult(source="x", text=" ".join(texts), segments=segments)


def assert_cues_match(parsed: list[Cue], r: TranscriptionResult, arrow: str) -> None:
    """``parsed`` holds a cue for each non-blank segment, same text, times within 1 ms."""
    expected = [s for s in r.segments if one_line(s.text)]
    assert len(parsed) == len(expected)
    for (start_ms, end_ms, text), segment in zip(parsed, expected, strict=True):
        assert text == re.sub(arrow, "->", one_line(segment.text))
        assert abs(start_ms - segment.start * 1000) <= MS_TOLERANCE
        assert abs(end_ms - segment.end * 1000) <= MS_TOLERANCE
        assert end_ms > start_ms


@given(monotone_results())
def test_srt_round_trips_through_an_independent_parser(r: TranscriptionResult) -> None:
    assert_cues_match(parse_srt(formats.render(r, "srt")), r, arrow="-[ -]+>")


@given(monotone_results())
def test_vtt_round_trips_through_an_independent_parser(r: TranscriptionResult) -> None:
    assert_cues_match(parse_vtt(formats.render(r, "vtt")), r, arrow="(?!)")


@given(st.text(), st.floats(0, 1e6))
def test_single_cue_round_trips(text: str, duration: float) -> None:
    r = TranscriptionResult(source="x", text=text, duration=duration)
    parsed = parse_vtt(formats.render(r, "vtt"))
    if not one_line(text):
        assert parsed == []
        return
    [(start_ms, end_ms, cue_text)] = parsed
    assert (start_ms, cue_text) == (0, one_line(text))
    assert end_ms >= 1
    assert abs(end_ms - duration * 1000) <= MS_TOLERANCE


# --- write_result ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["txt", "json", "srt", "vtt"])
def test_write_result_writes_the_rendering_as_utf8(tmp_path: Path, fmt: str) -> None:
    r = result(("ünïcødé ☃", 0, 1))
    out = tmp_path / "new" / "folder"
    path = formats.write_result(r, out, fmt, stem="talk.part1")
    assert path == out / f"talk.part1.{fmt}"
    assert path.read_bytes().decode("utf-8") == formats.render(r, fmt)
    assert sorted(out.iterdir()) == [path]  # no temporary files left behind


def test_write_result_replaces_an_existing_output(tmp_path: Path) -> None:
    formats.write_result(result(("old", 0, 1)), tmp_path, "txt", stem="a")
    path = formats.write_result(result(("new", 0, 1)), tmp_path, "txt", stem="a")
    assert path.read_text(encoding="utf-8") == "new\n"


@pytest.mark.parametrize("stem", ["", ".", "..", "a/b", "a\\b", "../up", "nul\0"])
def test_write_result_rejects_stems_with_folders(tmp_path: Path, stem: str) -> None:
    with pytest.raises(InvalidOptionError, match="stem"):
        formats.write_result(result(("x", 0, 1)), tmp_path, "txt", stem=stem)
    assert list(tmp_path.iterdir()) == []


def test_write_result_with_unknown_format_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="docx"):
        formats.write_result(result(("x", 0, 1)), tmp_path, "docx", stem="a")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["txt", "srt", "vtt", "json"])
def test_write_result_of_text_with_a_lone_surrogate_is_valid_utf8(tmp_path: Path, fmt: str) -> None:
    """A backend may echo an undecodable file name (``os.fsdecode``) into its text."""
    source = b"/in/r\xe9union.wav".decode("utf-8", "surrogateescape")  # as os.fsdecode on POSIX
    result = TranscriptionResult(source=source, text=f"about {source}", duration=1.0)
    path = formats.write_result(result, tmp_path, fmt, stem="x")
    text = path.read_bytes().decode("utf-8")
    if fmt == "json":
        assert TranscriptionResult.from_dict(json.loads(text)) == result  # \udcXX round trip
    else:
        assert "about /in/r?union.wav" in text


@pytest.mark.skipif(os.name != "posix", reason="POSIX umask")
def test_write_result_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        path = formats.write_result(
            TranscriptionResult(source="a.wav", text="hi"), tmp_path, "txt", stem="a"
        )
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
