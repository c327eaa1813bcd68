from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from speakeasy_core.audio import QuietCutter
from speakeasy_core.backends.base import BackendOutput
from speakeasy_core.chunking import merge_outputs, split_spans
from speakeasy_core.errors import InvalidOptionError
from speakeasy_core.types import Segment, Word

RATE = 1000


@given(
    length=st.integers(1, 20 * RATE),
    max_duration=st.floats(0.2, 5.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_spans_cover_everything_and_respect_the_limit(
    length: int, max_duration: float, seed: int
) -> None:
    samples = np.random.default_rng(seed).standard_normal(length).astype(np.float32)
    spans = split_spans(samples, RATE, max_duration)
    assert spans[0][0] == 0
    assert spans[-1][1] == length
    limit = int(max_duration * RATE)
    for (_, stop), (start, _) in itertools.pairwise(spans):
        assert stop == start
    for start, stop in spans:
        assert 0 < stop - start <= max(limit, 1)


def test_cut_lands_in_the_silence() -> None:
    tone = np.sin(np.arange(10 * RATE) * 0.3).astype(np.float32)
    tone[int(8.5 * RATE) : int(8.7 * RATE)] = 0.0
    (first, _), (second, _) = split_spans(tone, RATE, max_duration=9.0, search=2.0)
    assert first == 0
    assert 8.5 * RATE <= second <= 8.7 * RATE


def test_bad_limit() -> None:
    with pytest.raises(ValueError, match="positive"):
        split_spans(np.zeros(10, dtype=np.float32), RATE, 0)
    with pytest.raises(InvalidOptionError, match="max_duration"):
        QuietCutter(RATE, -1.0)


def gappy(length: int, seed: int) -> np.ndarray:
    """Noise with a silent stretch of 20-300 ms every 0.2-2 s."""
    rng = np.random.default_rng(seed)
    samples = rng.standard_normal(length).astype(np.float32)
    position = 0
    while position < length:
        position += int(rng.uniform(0.2, 2.0) * RATE)
        samples[position : position + int(rng.uniform(0.02, 0.3) * RATE)] = 0.0
    return samples


@given(
    length=st.integers(1, 30 * RATE),
    max_duration=st.floats(0.05, 8.0),
    search=st.floats(0.0, 6.0),
    cuts=st.lists(st.integers(0, 30 * RATE), max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_stream_is_cut_where_the_whole_signal_is(
    length: int, max_duration: float, search: float, cuts: list[int], seed: int
) -> None:
    """Fed in blocks of any sizes, the cutter yields the pieces split_spans cuts."""
    samples = gappy(length, seed)
    bounds = sorted({0, length, *(c for c in cuts if c < length)})
    cutter = QuietCutter(RATE, max_duration, search=search)
    pieces = [
        piece for lo, hi in itertools.pairwise(bounds) for piece in cutter.push(samples[lo:hi])
    ]
    pieces += cutter.finish()
    spans = split_spans(samples, RATE, max_duration, search=search)
    assert [(start, start + len(piece)) for start, piece in pieces] == spans
    for (start, piece), (lo, hi) in zip(pieces, spans, strict=True):
        assert start == lo
        np.testing.assert_array_equal(piece, samples[lo:hi])


@given(
    length=st.integers(1, 30 * RATE),
    max_duration=st.floats(0.2, 8.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_cut_is_at_the_quietest_frame_of_its_window(
    length: int, max_duration: float, seed: int
) -> None:
    samples = gappy(length, seed)
    spans = split_spans(samples, RATE, max_duration, search=1.0)
    limit = int(max_duration * RATE)
    window = min(RATE, limit // 2)
    frame = int(0.02 * RATE)
    for start, cut in spans[:-1]:
        lo = start + limit - window
        energies = [
            float(np.square(samples[f : f + frame]).sum())
            for f in range(lo, lo + (window // frame) * frame, frame)
        ]
        if len(energies) < 2:
            assert cut == start + limit
            continue
        assert (cut - lo) % frame == 0
        assert float(np.square(samples[cut : cut + frame]).sum()) <= min(energies) + 1e-3


def test_no_limit_gives_one_piece_and_holds_nothing_back() -> None:
    cutter = QuietCutter(RATE, None)
    assert list(cutter.push(np.ones(5 * RATE, np.float32))) == []
    ((start, piece),) = cutter.finish()
    assert (start, len(piece)) == (0, 5 * RATE)
    assert list(QuietCutter(RATE, 1.0).finish()) == []


piece = st.tuples(
    st.floats(0.1, 30.0),
    st.lists(st.tuples(st.floats(-1, 40), st.floats(0, 5)), max_size=5),
)


@given(st.lists(piece, min_size=1, max_size=6))
def test_merged_times_are_monotonic_and_inside_the_input(
    pieces: list[tuple[float, list[tuple[float, float]]]],
) -> None:
    offset, parts = 0.0, []
    for length, raw in pieces:
        starts = sorted(start for start, _ in raw)
        words = tuple(
            Word(f"w{i}", start, start + span)
            for i, (start, (_, span)) in enumerate(zip(starts, raw, strict=True))
        )
        segment = Segment("s", 0.0, length)
        parts.append((offset, length, BackendOutput(" x ", words, (segment,))))
        offset += length
    merged = merge_outputs(parts)
    assert merged.text == " ".join("x" for _ in pieces)
    times = [(w.start, w.end) for w in merged.words]
    assert all(0 <= start <= end <= offset + 1e-9 for start, end in times)
    assert [t[0] for t in times] == sorted(t[0] for t in times)
    assert [s.start for s in merged.segments] == sorted(s.start for s in merged.segments)
