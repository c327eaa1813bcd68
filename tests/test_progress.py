"""Progress in seconds of audio: the tracker's arithmetic, the callback a run gives,
the plain log lines, and the tqdm bar (text and notebook widget)."""

from __future__ import annotations

import html
import itertools
import logging
import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given
from hypothesis import strategies as st

from speakeasy_core import Progress, Transcriber
from speakeasy_core.backends import Capabilities, PreparedAudio
from speakeasy_core.errors import InvalidOptionError
from speakeasy_core.progress import (
    LOGGER_NAME,
    ProgressBar,
    ProgressLog,
    ProgressTracker,
    report_position,
)
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The temp workspace root."""
    path = tmp_path / "tmp-root"
    path.mkdir()
    return path


def noise(path: Path, seconds: float, rate: int = 16000) -> Path:
    samples = np.random.default_rng(len(path.name)).normal(0, 0.05, int(seconds * rate))
    sf.write(path, samples.astype(np.float32), rate)
    return path


def answer(item: PreparedAudio, options: TranscribeOptions) -> str:
    return f"hello {Path(item.key).stem}"


def cutting(max_duration: float) -> MockBackend:
    """A backend that takes pieces of at most ``max_duration`` seconds."""
    return MockBackend(answer, capabilities=Capabilities(max_duration=max_duration))


def assert_monotone(reports: list[Progress]) -> None:
    for before, after in itertools.pairwise(reports):
        assert after.seconds_done >= before.seconds_done
        assert after.inputs_done >= before.inputs_done
        assert after.elapsed >= before.elapsed
    for report in reports:
        if report.seconds_total is not None:
            assert report.seconds_done <= report.seconds_total + 1e-9


# -- the typed report ----------------------------------------------------------------------


def test_a_report_reads_as_audio_time_speed_and_eta() -> None:
    report = Progress(750.0, 3600.0, 0, 1, elapsed=4.0)
    assert str(report) == "12:30/1:00:00 audio (21%) [00:04<00:15, 188x real time] 0/1 files"
    assert report.speed == pytest.approx(187.5)
    assert report.eta == pytest.approx(2850 / 187.5)
    assert report.fraction == pytest.approx(750 / 3600)
    guess = Progress(30.0, 300.0, 2, 12, failed=1, elapsed=20.0, estimated=True)
    expected = "00:30/~05:00 audio (10%) [00:20<03:00, 1.5x real time] 2/12 files, 1 failed"
    assert str(guess) == expected
    unknown = Progress(0.0, None, 0, None)
    assert (unknown.fraction, unknown.speed, unknown.eta) == (None, None, None)
    assert str(unknown) == "00:00/? audio [00:00<?, ?x real time] 0/? files"


# -- the tracker ---------------------------------------------------------------------------


def test_pieces_move_the_seconds_and_a_finished_input_counts_whole() -> None:
    reports: list[Progress] = []
    clock = Clock()
    tracker = ProgressTracker(reports.append, 2, clock=clock)
    tracker.probed(0, 3600.0)
    tracker.probed(1, 10.0)
    assert (reports[-1].seconds_done, reports[-1].seconds_total) == (0.0, 3610.0)
    clock.now += 5
    tracker.advance(0, 300.0)
    tracker.advance(0, 600.0)
    tracker.advance(0, 400.0)  # never backwards
    assert reports[-1].seconds_done == 600.0
    assert reports[-1].elapsed == 5.0
    tracker.finished(1, ok=True)  # no piece reported: its probed length
    assert (reports[-1].seconds_done, reports[-1].inputs_done) == (610.0, 1)
    tracker.advance(0, 3600.0)
    tracker.finished(0, ok=True)
    tracker.close()
    assert reports[-1] == Progress(3610.0, 3610.0, 2, 2, elapsed=5.0, final=True)
    assert_monotone(reports)


def test_the_total_grows_as_decoding_learns_the_true_length() -> None:
    reports: list[Progress] = []
    tracker = ProgressTracker(reports.append, 1)
    tracker.probed(0, 100.0)  # a header's estimate (an MP3 without an index, say)
    tracker.advance(0, 60.0)
    tracker.advance(0, 104.5)
    assert reports[-1].seconds_total == 104.5
    tracker.finished(0, ok=True)
    assert (reports[-1].seconds_done, reports[-1].seconds_total) == (104.5, 104.5)


def test_a_failed_input_counts_for_what_was_transcribed_of_it() -> None:
    reports: list[Progress] = []
    tracker = ProgressTracker(reports.append, 3)
    tracker.probed(0, 600.0)
    tracker.probed(1, 10.0)
    tracker.finished(2, ok=False)  # failed before its duration was known
    tracker.advance(0, 120.0)
    tracker.finished(0, ok=False)
    tracker.finished(1, ok=True)
    last = reports[-1]
    assert (last.seconds_done, last.seconds_total) == (130.0, 130.0)
    assert (last.inputs_done, last.failed) == (3, 2)


def test_inputs_not_probed_yet_are_reckoned_at_the_mean() -> None:
    reports: list[Progress] = []
    tracker = ProgressTracker(reports.append, 10)
    tracker.probed(0, 10.0)
    tracker.probed(1, 30.0)
    assert reports[-1].seconds_total == pytest.approx(40.0 + 8 * 20.0)
    assert reports[-1].estimated
    no_durations = ProgressTracker(reports.append, 10)
    no_durations.finished(0, ok=False)
    assert reports[-1].seconds_total is None


def test_counting_learns_the_number_of_inputs_when_they_run_out() -> None:
    reports: list[Progress] = []
    tracker = ProgressTracker(reports.append)
    items = tracker.counting(iter("abc"))
    assert list(items) == ["a", "b", "c"]
    assert reports[-1].inputs_total == 3


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[tuple[float, list[float], bool]], list[int]]:
    """Inputs as (probed seconds, piece lengths, ok), and an interleaving of their pieces."""
    inputs = draw(
        st.lists(
            st.tuples(
                st.floats(0.5, 500),
                st.lists(st.floats(0.01, 120), min_size=1, max_size=6),
                st.booleans(),
            ),
            min_size=1,
            max_size=8,
        )
    )
    steps = [i for i, (_, pieces, _) in enumerate(inputs) for _ in pieces]
    return inputs, draw(st.permutations(steps))


@given(run=runs(), counted=st.booleans())
def test_reports_are_monotone_and_end_at_the_total(
    run: tuple[list[tuple[float, list[float], bool]], list[int]], counted: bool
) -> None:
    inputs, order = run
    reports: list[Progress] = []
    tracker = ProgressTracker(reports.append, len(inputs) if counted else None)
    for index in tracker.counting(range(len(inputs))):
        tracker.probed(index, inputs[index][0])
    left = {i: list(pieces) for i, (_, pieces, _) in enumerate(inputs)}
    position = dict.fromkeys(left, 0.0)
    for index in order:
        position[index] += left[index].pop(0)
        tracker.advance(index, position[index])
        if not left[index]:
            tracker.finished(index, ok=inputs[index][2])
    tracker.close()

    assert_monotone(reports)
    last = reports[-1]
    assert last.final
    assert last.seconds_done == pytest.approx(sum(sum(pieces) for _, pieces, _ in inputs))
    assert last.seconds_total == pytest.approx(last.seconds_done)
    assert (last.inputs_done, last.inputs_total) == (len(inputs), len(inputs))
    assert last.failed == sum(not ok for _, _, ok in inputs)


# -- a run's callback ----------------------------------------------------------------------


def test_a_long_recording_moves_piece_by_piece_to_its_total(tmp_path: Path, root: Path) -> None:
    recording = noise(tmp_path / "long.wav", 300.0)
    reports: list[Progress] = []
    transcriber = Transcriber(
        cutting(30.0), batch_size=2, workspace_root=root, progress=reports.append
    )
    assert transcriber.transcribe(recording).text
    assert_monotone(reports)
    probed = next(r for r in reports if r.seconds_total is not None)
    assert (probed.seconds_done, probed.seconds_total) == (0.0, pytest.approx(300.0))  # up front
    moving = {r.seconds_done for r in reports if 0 < r.seconds_done < 300.0}
    assert len(moving) >= 4  # 10 pieces, two per batch
    assert all(r.inputs_done == 0 for r in reports if r.seconds_done < 300.0)
    last = reports[-1]
    assert last.final
    assert (last.seconds_done, last.seconds_total) == (pytest.approx(300.0), last.seconds_done)
    assert (last.inputs_done, last.inputs_total, last.failed) == (1, 1, 0)


def test_a_folder_moves_input_by_input_to_its_total(tmp_path: Path, root: Path) -> None:
    lengths = [3.0, 1.0, 2.0, 4.0, 1.5, 2.5]
    paths = [noise(tmp_path / f"clip{i}.wav", s) for i, s in enumerate(lengths)]
    paths.insert(2, tmp_path / "missing.wav")
    reports: list[Progress] = []
    Transcriber(
        cutting(30.0), batch_size=1, window=2, workspace_root=root, progress=reports.append
    ).transcribe_batch(paths)
    assert_monotone(reports)
    assert any(r.estimated for r in reports)  # two at a time are probed: the rest reckoned
    done = [r.inputs_done for r in reports]
    assert sorted(set(done)) == list(range(len(paths) + 1))
    last = reports[-1]
    assert (last.seconds_done, last.seconds_total) == (pytest.approx(sum(lengths)),) * 2
    assert (last.inputs_done, last.inputs_total, last.failed, last.estimated) == (7, 7, 1, False)


def test_a_backend_reporting_positions_moves_one_long_item(root: Path) -> None:
    def halfway(item: PreparedAudio, options: TranscribeOptions) -> str:
        for seconds in (10.0, 20.0, 30.0, 99.0):  # past the end is clamped
            report_position(item, seconds)
        return "done"

    reports: list[Progress] = []
    samples = np.zeros(40 * 16000, dtype=np.float32)
    Transcriber(MockBackend(halfway), workspace_root=root, progress=reports.append).transcribe(
        samples, sample_rate=16000
    )
    moves = [r.seconds_done for r in reports if r.inputs_done == 0]
    assert moves == [0.0, 0.0, 10.0, 20.0, 30.0, 40.0]  # started, probed, reported, recorded
    report_position(object(), 5.0)  # outside a run: nothing happens


def test_the_old_callback_form_still_works_and_says_it_is_deprecated(
    tmp_path: Path, root: Path
) -> None:
    calls: list[tuple[int, int | None]] = []
    with pytest.deprecated_call(match="Progress"):
        transcriber = Transcriber(
            MockBackend(answer),
            workspace_root=root,
            progress=lambda done, total: calls.append((done, total)),
        )
    paths = [noise(tmp_path / f"{i}.wav", 0.5) for i in range(3)]
    transcriber.transcribe_batch(paths)
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_show_progress_is_checked() -> None:
    with pytest.raises(InvalidOptionError, match="show_progress"):
        Transcriber(MockBackend(answer), show_progress="fancy")  # type: ignore[arg-type]


# -- plain log lines -----------------------------------------------------------------------


def test_log_lines_come_at_most_every_interval_and_once_at_the_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, LOGGER_NAME)
    clock = Clock()
    tracker = ProgressTracker(ProgressLog(10.0), 20, clock=clock)
    for index in range(20):
        tracker.probed(index, 60.0)
    for index in range(20):
        clock.now += 1.5
        tracker.finished(index, ok=True)
    tracker.close()
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "transcribing: 07:00/20:00 audio (35%) [00:10<00:19, 40x real time] 7/20 files",
        "transcribing: 14:00/20:00 audio (70%) [00:21<00:09, 40x real time] 14/20 files",
        "transcribing: 20:00/20:00 audio (100%) [00:30<00:00, 40x real time] 20/20 files",
    ]


def test_a_short_run_logs_no_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, LOGGER_NAME)
    tracker = ProgressTracker(ProgressLog(10.0), 1, clock=Clock())
    tracker.probed(0, 5.0)
    tracker.finished(0, ok=True)
    tracker.close()
    assert caplog.records == []


# -- the bar -------------------------------------------------------------------------------


def frames(text: str) -> list[str]:
    """What a terminal showed, redraw by redraw: tqdm redraws a bar after a carriage
    return; a line feed keeps what was drawn."""
    shown: list[str] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        shown += [frame.rstrip() for frame in line.split("\r") if frame.strip()]
    return shown


@contextmanager
def console_logging() -> Iterator[None]:
    """A logging handler on stderr, as ``logging.basicConfig`` makes one."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


def clocked(clock: Clock, base: type[Any] | None = None) -> type[Any]:
    """A tqdm class (the text bar by default) on ``clock``, drawing every update."""
    from tqdm import tqdm

    class Clocked(base or tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, mininterval=0, **kwargs)
            self._time = clock
            self.start_t = self.last_print_t = clock()

    return Clocked


def test_the_bar_shows_audio_total_speed_eta_and_files(capsys: pytest.CaptureFixture[str]) -> None:
    clock = Clock()
    with ProgressBar(tqdm_class=clocked(clock)) as bar:
        tracker = ProgressTracker(bar, 1, clock=clock)
        tracker.probed(0, 3600.0)
        clock.now += 4
        tracker.advance(0, 750.0)
        clock.now += 4
        tracker.advance(0, 3600.0)
        tracker.finished(0, ok=True)
        tracker.close()
    shown = frames(capsys.readouterr().err)
    assert re.fullmatch(
        r"transcribing:   0%\| +\| 00:00/\? audio \[00:00<\?, \?x real time, 0/\? files\]",
        shown[0],
    )
    expected = [
        r"transcribing:   0%\| +\| 00:00/\? audio \[00:00<\?, \?x real time, 0/1 files\]",
        r"transcribing:   0%\| +\| 00:00/1:00:00 audio \[00:00<\?, \?x real time, 0/1 files\]",
        r"transcribing:  21%\|.+\| 12:30/1:00:00 audio \[00:04<00:15, 188x real time, 0/1 files\]",
        r"transcribing: 100%\|.+\| 1:00:00/1:00:00 audio "
        r"\[00:08<00:00, 450x real time, 1/1 files\]",
    ]
    for pattern in expected:
        assert [frame for frame in shown if re.fullmatch(pattern, frame)], (pattern, shown)
    assert re.fullmatch(expected[-1], shown[-1])


def test_log_records_go_above_the_bar(capsys: pytest.CaptureFixture[str]) -> None:
    with console_logging():
        with ProgressBar(tqdm_class=clocked(Clock())) as bar:
            tracker = ProgressTracker(bar, 2)
            tracker.probed(0, 10.0)
            tracker.finished(0, ok=True)
            logging.getLogger("speakeasy_core.test").warning("skipping broken.wav: not audio")
            tracker.finished(1, ok=False)
            tracker.close()
        logging.getLogger("speakeasy_core.test").warning("after the bar")
    shown = frames(capsys.readouterr().err)
    assert "WARNING speakeasy_core.test: skipping broken.wav: not audio" in shown
    assert shown[-1] == "WARNING speakeasy_core.test: after the bar"
    assert not [f for f in shown if "audio [" in f and "WARNING" in f]


def test_in_a_notebook_the_widget_follows_the_total() -> None:
    pytest.importorskip("ipywidgets", reason="needs the test extra")
    from tqdm.notebook import tqdm as notebook_tqdm

    clock = Clock()
    with ProgressBar(tqdm_class=clocked(clock, notebook_tqdm)) as bar:
        tracker = ProgressTracker(bar, None, clock=clock)
        left, widget, right = bar._bar.container.children
        assert widget.bar_style == "info"  # no total yet
        tracker.probed(0, 90.0)
        list(tracker.counting([0]))  # the count is known: a total
        clock.now += 3
        tracker.advance(0, 30.0)
        assert (widget.max, widget.value, widget.bar_style) == (90.0, 30.0, "")
        assert "transcribing" in left.value
        text = html.unescape(right.value).replace("\u2007", " ")
        assert text == " 00:30/01:30 audio [00:03<00:06, 10x real time, 0/1 files]"
        tracker.advance(0, 90.0)
        tracker.finished(0, ok=True)
        tracker.close()
    assert widget.value == 90.0


@pytest.mark.whisper
@pytest.mark.slow
def test_whisper_moves_the_progress_within_one_long_item(root: Path) -> None:
    pytest.importorskip("faster_whisper", reason="needs the whisper extra")
    example = Path(__file__).resolve().parents[1] / "examples" / "audio" / "arctic_a0007.wav"
    speech, rate = sf.read(example, dtype="float32")
    pause = np.zeros(rate, dtype=np.float32)
    looped = np.concatenate([np.concatenate([speech, pause])] * 8)  # ~40 s, one piece
    reports: list[Progress] = []
    # Temperature 0: the default fallback samples on this repetitive loop, and the text varies.
    deterministic = {"temperature": 0.0}
    with Transcriber(
        workspace_root=root, progress=reports.append, backend_options=deterministic
    ) as transcriber:
        assert transcriber.capabilities.max_duration is None  # Whisper takes it whole
        result = transcriber.transcribe(looped, sample_rate=rate)
    assert result.text.lower().count("superlative") >= 6
    seconds = len(looped) / rate
    assert_monotone(reports)
    inside = {r.seconds_done for r in reports if r.inputs_done == 0 and r.seconds_done > 0}
    assert len(inside) >= 3  # segment by segment, before the call returned
    assert max(inside) <= seconds
    assert reports[-1].seconds_done == pytest.approx(seconds)


@pytest.mark.parametrize("flags", [[], ["--no-progress"]], ids=["no-terminal", "no-progress"])
def test_without_a_bar_the_cli_logs_plain_progress_lines(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    flags: list[str],
) -> None:
    from speakeasy_core.backends import register_backend, unregister_backend
    from speakeasy_core.cli import main
    from speakeasy_core.progress import _display

    def slow(item: PreparedAudio, options: TranscribeOptions) -> str:
        time.sleep(0.1)
        return "hello"

    monkeypatch.setattr(_display, "LOG_INTERVAL", 0.25)
    register_backend("slowtest", lambda **_: MockBackend(slow))
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(8):
        noise(folder / f"clip{i}.wav", 2.0)
    try:
        args = [str(folder), "--batch-size", "1", "--out-dir", str(tmp_path / "out"), *flags]
        assert main(["transcribe", "--backend", "slowtest", *args]) == 0
    finally:
        unregister_backend("slowtest")
    lines = [r.getMessage() for r in caplog.records if r.name == LOGGER_NAME]
    assert len(lines) >= 2
    line = (
        r"transcribing: \d\d:\d\d/00:16 audio \(\d+%\) "
        r"\[\d\d:\d\d<\d\d:\d\d, [\d.]+x real time\] \d/8 files"
    )
    assert all(re.fullmatch(line, text) for text in lines), lines
    assert lines[-1].startswith("transcribing: 00:16/00:16 audio (100%)")
    assert "\r" not in capsys.readouterr().err  # no bar


def test_ipykernel_imported_outside_a_kernel_is_not_a_notebook() -> None:
    pytest.importorskip("ipykernel.zmqshell", reason="needs the test extra")
    from speakeasy_core.progress._display import _chosen

    assert not sys.stderr.isatty()  # pytest captures it
    assert _chosen(True) == "log"
    assert (_chosen(False), _chosen("bar"), _chosen("log")) == (None, "bar", "log")
