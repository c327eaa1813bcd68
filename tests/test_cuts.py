"""lhotse in and out, with real lhotse objects over real files written here.

A recording backend (speakeasy_core.testing.MockBackend) keeps the 16 kHz samples it
was given per key, so each test checks that exactly a cut's span, channels or mix
reached the model, and reads what we write back with lhotse's own loader.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from speakeasy_core import CutSetWriter, Transcriber, TranscriptionResult, to_cutset
from speakeasy_core.audio import to_mono_16k
from speakeasy_core.backends.base import BackendOutput, Capabilities, PreparedAudio
from speakeasy_core.cuts import CutAudio, as_inputs, is_lhotse, load_manifest, supervision_key
from speakeasy_core.errors import (
    AudioDecodeError,
    InputError,
    InputNotFoundError,
    InvalidOptionError,
    TempFileError,
)
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import Segment, TranscribeOptions, Word
from tests.extras import reason
from tests.fixtures.nemo_models import write_nemo_wav

lhotse = pytest.importorskip("lhotse", reason=reason("lhotse"))
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment  # noqa: E402
from lhotse.cut import MixedCut, MultiCut  # noqa: E402
from lhotse.lazy import LazyMapper  # noqa: E402
from lhotse.utils import fastcopy  # noqa: E402

SR = 16000
PCM16 = 2.0 / 32768  # what a round trip through a 16-bit wav may change a sample by
REPO = Path(__file__).resolve().parents[1]


def ramp(seconds: float, rate: int = SR, *, scale: float = 0.9) -> npt.NDArray[np.float32]:
    """A rising ramp: every sample differs, so an off-by-offset span cannot match."""
    n = round(seconds * rate)
    return (scale * (np.arange(n) / n * 2 - 1)).astype(np.float32)


class Recorder:
    """A MockBackend that keeps the samples of every item it transcribes, by key."""

    def __init__(self, capabilities: Capabilities | None = None) -> None:
        self.received: dict[str, npt.NDArray[np.float32]] = {}
        self.backend = MockBackend(self.handle, capabilities=capabilities or Capabilities())

    def handle(self, item: PreparedAudio, options: TranscribeOptions) -> str | BackendOutput:
        samples = getattr(item, "samples", None)
        if samples is None:
            samples, rate = sf.read(item.path, dtype="float32")
            assert rate == SR
        self.received[item.key] = np.asarray(samples, dtype=np.float32)
        return f"text of {item.key}"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def write(path: Path, samples: npt.NDArray[np.float32], rate: int = SR) -> Recording:
    sf.write(path, samples, rate, subtype="PCM_24" if path.suffix == ".flac" else "FLOAT")
    return Recording.from_file(path)


# ----------------------------------------------------------------------------- in


def test_a_recording_set_of_several_files_gives_one_result_per_recording(
    tmp_path: Path, recorder: Recorder
) -> None:
    sources = {
        "a": (ramp(1.0), SR),
        "b": (np.stack([ramp(2.0, 44100), -ramp(2.0, 44100)], axis=1) * 0.5, 44100),
        "c": (ramp(0.5, 8000, scale=0.3), 8000),
    }
    recordings = RecordingSet.from_recordings(
        write(tmp_path / f"{name}.{'flac' if name == 'b' else 'wav'}", data, rate)
        for name, (data, rate) in sources.items()
    )
    results = Transcriber(recorder.backend).transcribe_batch(recordings)
    assert [r.source for r in results] == ["a", "b", "c"]
    assert [r.text for r in results] == ["text of a", "text of b", "text of c"]
    assert [r.duration for r in results] == pytest.approx([1.0, 2.0, 0.5])
    for name, (data, rate) in sources.items():
        expected = to_mono_16k(data, rate)
        np.testing.assert_allclose(recorder.received[name], expected, atol=PCM16)


def test_a_cut_at_an_offset_transcribes_only_its_span(tmp_path: Path, recorder: Recorder) -> None:
    signal = ramp(3.0)
    recording = write(tmp_path / "long.wav", signal)
    cut = recording.to_cut().truncate(offset=1.25, duration=0.5)
    cut = fastcopy(cut, id="middle")
    (result,) = Transcriber(recorder.backend).transcribe_batch(CutSet.from_cuts([cut]))
    assert result.source == "middle"
    assert result.duration == pytest.approx(0.5)
    received = recorder.received["middle"]
    assert received.shape == (8000,)
    np.testing.assert_allclose(received, signal[20000:28000], atol=PCM16)


def test_a_chosen_channel_of_a_multichannel_recording(tmp_path: Path, recorder: Recorder) -> None:
    channels = np.stack([ramp(1.0), -ramp(1.0), ramp(1.0, scale=0.2)], axis=1)
    recording = write(tmp_path / "three.wav", channels)
    whole = recording.to_cut()
    assert isinstance(whole, MultiCut)
    second = fastcopy(whole.with_channels(1), id="second")
    outer = fastcopy(whole.with_channels([0, 2]), id="outer")
    Transcriber(recorder.backend).transcribe_batch(CutSet.from_cuts([second, outer]))
    np.testing.assert_allclose(recorder.received["second"], channels[:, 1], atol=PCM16)
    downmix = channels[:, [0, 2]].mean(axis=1)
    np.testing.assert_allclose(recorder.received["outer"], downmix, atol=PCM16)


def test_a_mixed_cut_is_mixed_by_lhotse(tmp_path: Path, recorder: Recorder) -> None:
    signal = ramp(3.0, scale=0.4)
    cut = write(tmp_path / "source.wav", signal).to_cut()
    mix = cut.truncate(duration=1.0).mix(
        cut.truncate(offset=2.0, duration=1.0), offset_other_by=0.5
    )
    assert isinstance(mix, MixedCut)
    (result,) = Transcriber(recorder.backend).transcribe_batch(CutSet.from_cuts([mix]))
    assert result.ok
    assert result.source == mix.id
    expected = np.zeros(24000, dtype=np.float32)
    expected[:16000] += signal[:16000]
    expected[8000:] += signal[32000:48000]
    np.testing.assert_allclose(recorder.received[mix.id], expected, atol=PCM16)


def test_bad_cuts_are_per_cut_errors_naming_cut_and_file(
    tmp_path: Path, recorder: Recorder
) -> None:
    good = fastcopy(write(tmp_path / "good.wav", ramp(1.0)).to_cut(), id="good")
    gone_path = tmp_path / "gone.wav"
    gone = fastcopy(write(gone_path, ramp(1.0)).to_cut(), id="gone")
    gone_path.unlink()
    junk_path = tmp_path / "junk.wav"
    junk = fastcopy(write(junk_path, ramp(1.0)).to_cut(), id="junk")
    junk_path.write_bytes(b"not audio at all" * 64)
    transcriber = Transcriber(recorder.backend)

    results = transcriber.transcribe_batch(CutSet.from_cuts([gone, good, junk]))

    by_id = {r.source: r for r in results}
    assert by_id["good"].ok
    assert by_id["gone"].error_type == "InputNotFoundError"
    assert "gone" in str(by_id["gone"].error)
    assert str(gone_path) in str(by_id["gone"].error)
    assert by_id["junk"].error_type == "AudioDecodeError"
    assert "junk" in str(by_id["junk"].error)
    assert str(junk_path) in str(by_id["junk"].error)
    assert set(recorder.received) == {"good"}
    with pytest.raises(FileNotFoundError) as raised:
        transcriber.transcribe(gone)
    assert isinstance(raised.value, InputNotFoundError)
    assert raised.value.filename == str(gone_path)
    with pytest.raises(AudioDecodeError, match="junk"):
        transcriber.transcribe(junk)


def test_audio_is_loaded_when_the_engine_prepares_a_cut(tmp_path: Path) -> None:
    path = tmp_path / "late.wav"
    cut = fastcopy(write(path, ramp(1.0)).to_cut(), id="late")
    (item,) = list(as_inputs(CutSet.from_cuts([cut])))
    assert isinstance(item, CutAudio)
    assert item.name == "late"
    assert item.sample_rate == SR
    assert item.samples.shape == (SR, 1)
    path.unlink()  # the input exists; its audio is read only when asked for
    with pytest.raises(InputNotFoundError, match="late"):
        _ = item.samples


_pulled: list[str] = []


def _count_pull(cut: object) -> object:
    _pulled.append(getattr(cut, "id", ""))
    return cut


def test_a_lazy_cutset_is_streamed_not_read_up_front(tmp_path: Path, recorder: Recorder) -> None:
    recording = write(tmp_path / "ten.wav", ramp(10.0))
    cuts = [
        fastcopy(recording.to_cut().truncate(offset=i, duration=1.0), id=f"c{i}") for i in range(10)
    ]
    lazy = CutSet(LazyMapper(cuts, fn=_count_pull))
    assert lazy.is_lazy
    _pulled.clear()
    transcriber = Transcriber(recorder.backend, batch_size=1, window=1)
    stream = transcriber.iter_completed(lazy)
    index, first = next(stream)
    assert (index, first.source) == (0, "c0")
    assert len(_pulled) < 10
    assert [r.source for _, r in stream] == [f"c{i}" for i in range(1, 10)]
    for i in range(10):
        expected = ramp(10.0)[i * SR : (i + 1) * SR]
        np.testing.assert_allclose(recorder.received[f"c{i}"], expected, atol=PCM16)


def test_single_cuts_and_recordings_mix_with_other_inputs(
    tmp_path: Path, recorder: Recorder
) -> None:
    file = tmp_path / "plain.wav"
    recording = write(file, ramp(1.0))
    cut = fastcopy(recording.to_cut().truncate(duration=0.5), id="half")
    results = Transcriber(recorder.backend).transcribe_batch([file, cut, recording])
    assert [r.source for r in results] == [str(file.absolute()), "half", "plain"]
    assert [r.duration for r in results] == pytest.approx([1.0, 0.5, 1.0])


def test_progress_counts_the_cuts_of_an_eager_cutset(tmp_path: Path, recorder: Recorder) -> None:
    cut = write(tmp_path / "p.wav", ramp(2.0)).to_cut()
    cuts = CutSet.from_cuts(
        fastcopy(cut.truncate(offset=i * 0.5, duration=0.5), id=f"p{i}") for i in range(4)
    )
    calls: list[tuple[int, int | None]] = []
    Transcriber(recorder.backend, progress=lambda d, t: calls.append((d, t))).transcribe_batch(cuts)
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_a_whole_set_as_one_input_is_a_typed_error(tmp_path: Path, recorder: Recorder) -> None:
    cuts = CutSet.from_cuts([write(tmp_path / "s.wav", ramp(0.5)).to_cut()])
    with pytest.raises(InvalidOptionError, match="transcribe_batch"):
        Transcriber(recorder.backend).transcribe(cuts)


def test_identity_describes_the_span_without_loading(tmp_path: Path) -> None:
    path = tmp_path / "id.wav"
    cut = fastcopy(write(path, np.stack([ramp(2.0), ramp(2.0)], axis=1)).to_cut(), id="x")
    path.unlink()  # identity needs no audio
    variants = [
        cut,
        cut.truncate(offset=0.5, preserve_id=True),
        cut.truncate(duration=1.0, preserve_id=True),
        cut.with_channels(1),
    ]
    identities = [next(iter(as_inputs([c]))).identity for c in variants]
    assert identities[0] == next(iter(as_inputs([cut]))).identity  # deterministic
    encoded = [json.dumps(i, sort_keys=True) for i in identities]
    assert len(set(encoded)) == len(variants)
    assert [i["key"] for i in identities] == [c.id for c in variants]


def test_cut_inputs_survive_pickling(tmp_path: Path) -> None:
    import pickle

    cut = fastcopy(write(tmp_path / "p.wav", ramp(1.0)).to_cut().truncate(offset=0.5), id="p")
    (item,) = as_inputs([cut])
    copy = pickle.loads(pickle.dumps(item))
    assert (copy.name, copy.sample_rate) == ("p", SR)
    np.testing.assert_array_equal(copy.samples, item.samples)


# ------------------------------------------------------------------ per supervision


def _supervised(tmp_path: Path) -> tuple[object, npt.NDArray[np.float32]]:
    """A 3 s cut, starting 0.5 s into its recording, with three supervisions."""
    signal = ramp(3.5)
    recording = write(tmp_path / "talk.wav", signal)
    cut = fastcopy(recording.to_cut().truncate(offset=0.5), id="talk")
    supervisions = [
        SupervisionSegment("s1", "talk", start=0.25, duration=0.5, channel=0, text="old one"),
        SupervisionSegment("s2", "talk", start=1.5, duration=1.0, channel=0, text="old two"),
        SupervisionSegment("s3", "talk", start=2.75, duration=1.0, channel=0),  # past the end
    ]
    return fastcopy(cut, supervisions=supervisions), signal


def test_per_supervision_transcribes_each_supervision_span(
    tmp_path: Path, recorder: Recorder
) -> None:
    cut, signal = _supervised(tmp_path)
    results = Transcriber(recorder.backend).transcribe_batch(
        as_inputs(CutSet.from_cuts([cut]), per_supervision=True)
    )
    assert [r.source for r in results] == ["talk/s1", "talk/s2", "talk/s3"]
    assert all(r.ok for r in results)
    assert [r.duration for r in results] == pytest.approx([0.5, 1.0, 0.25])  # s3 clipped
    np.testing.assert_allclose(recorder.received["talk/s1"], signal[12000:20000], atol=PCM16)
    np.testing.assert_allclose(recorder.received["talk/s2"], signal[32000:48000], atol=PCM16)
    np.testing.assert_allclose(recorder.received["talk/s3"], signal[52000:56000], atol=PCM16)

    (labelled,) = to_cutset([cut], results, per_supervision=True)
    assert [s.id for s in labelled.supervisions] == ["s1", "s2", "s3"]
    assert [s.text for s in labelled.supervisions] == [
        "text of talk/s1",
        "text of talk/s2",
        "text of talk/s3",
    ]
    assert labelled.supervisions[0].custom["original_text"] == "old one"
    assert "original_text" not in labelled.supervisions[2].custom
    assert labelled.supervisions[1].custom["backend"] == "mock"
    assert [(s.start, s.duration) for s in labelled.supervisions] == [
        (s.start, s.duration) for s in cut.supervisions
    ]


def test_per_supervision_on_a_channel_of_a_multichannel_cut(
    tmp_path: Path, recorder: Recorder
) -> None:
    channels = np.stack([ramp(2.0), -ramp(2.0)], axis=1)
    cut = write(tmp_path / "two.wav", channels).to_cut()
    cut = fastcopy(
        cut,
        id="duo",
        supervisions=[
            SupervisionSegment("left", "two", start=0.0, duration=1.0, channel=0),
            SupervisionSegment("right", "two", start=1.0, duration=1.0, channel=1),
        ],
    )
    Transcriber(recorder.backend).transcribe_batch(as_inputs([cut], per_supervision=True))
    np.testing.assert_allclose(recorder.received["duo/left"], channels[:16000, 0], atol=PCM16)
    np.testing.assert_allclose(recorder.received["duo/right"], channels[16000:, 1], atol=PCM16)


def test_per_supervision_errors_stay_with_their_supervision(
    tmp_path: Path, recorder: Recorder
) -> None:
    cut, _ = _supervised(tmp_path)
    outside = SupervisionSegment("later", "talk", start=5.0, duration=1.0, channel=0)
    cut = fastcopy(cut, supervisions=[*cut.supervisions, outside])
    source = write(tmp_path / "m.wav", ramp(2.0)).to_cut()
    mix = fastcopy(source.truncate(duration=1.0).mix(source.truncate(offset=1.0)), id="mix")
    results = Transcriber(recorder.backend).transcribe_batch(
        as_inputs(CutSet.from_cuts([cut, mix]), per_supervision=True)
    )
    by_key = {r.source: r for r in results}
    assert by_key["talk/later"].error_type == "AudioDecodeError"
    assert "outside the cut" in str(by_key["talk/later"].error)
    assert by_key["mix"].error_type == "AudioDecodeError"
    assert "MixedCut" in str(by_key["mix"].error)
    assert all(by_key[f"talk/s{i}"].ok for i in (1, 2, 3))
    assert len(to_cutset(CutSet.from_cuts([cut, mix]), results, per_supervision=True)) == 0


def test_supervision_key() -> None:
    assert supervision_key("cut-1", "sup-2") == "cut-1/sup-2"


# ---------------------------------------------------------------------------- out


def _timed(item: PreparedAudio, options: TranscribeOptions) -> BackendOutput:
    words = (Word("hello", 0.1, 0.3), Word("there", 0.35, 0.45))
    return BackendOutput("hello there", words=words, segments=(Segment("hello there", 0.1, 0.45),))


def test_to_cutset_adds_a_supervision_with_word_alignment(tmp_path: Path) -> None:
    recording = write(tmp_path / "long.wav", ramp(3.0))
    cut = fastcopy(recording.to_cut().truncate(offset=1.0, duration=0.5), id="at-one")
    backend = MockBackend(_timed, capabilities=Capabilities(timestamps=True))
    results = Transcriber(backend, timestamps=True).transcribe_batch(CutSet.from_cuts([cut]))

    (labelled,) = to_cutset(CutSet.from_cuts([cut]), results)

    (supervision,) = labelled.supervisions
    assert supervision.id == "at-one-speakeasy"
    assert (supervision.start, supervision.duration) == (0.0, 0.5)
    assert supervision.recording_id == recording.id
    assert supervision.channel == 0
    assert supervision.text == "hello there"
    assert supervision.custom == {"backend": "mock", "model": "mock-model", "task": "transcribe"}
    # lhotse's AlignmentItem times are on the recording's time line: the cut starts at 1.0 s
    word = supervision.alignment["word"]
    assert [(w.symbol, w.start, w.duration) for w in word] == [
        ("hello", pytest.approx(1.1), pytest.approx(0.2)),
        ("there", pytest.approx(1.35), pytest.approx(0.1)),
    ]
    (segment,) = supervision.alignment["segment"]
    assert (segment.symbol, segment.start) == ("hello there", pytest.approx(1.1))


def test_to_cutset_leaves_out_failed_cuts_and_keeps_existing_supervisions(
    tmp_path: Path, recorder: Recorder
) -> None:
    recording = write(tmp_path / "r.wav", ramp(2.0))
    keep = SupervisionSegment("speaker-a", recording.id, start=0.0, duration=1.0, speaker="A")
    done = fastcopy(recording.to_cut(), id="done", supervisions=[keep])
    (tmp_path / "lost.wav").write_bytes((tmp_path / "r.wav").read_bytes())
    lost = fastcopy(Recording.from_file(tmp_path / "lost.wav").to_cut(), id="lost")
    (tmp_path / "lost.wav").unlink()
    results = Transcriber(recorder.backend).transcribe_batch(CutSet.from_cuts([done, lost]))
    assert not results[1].ok

    labelled = to_cutset(CutSet.from_cuts([done, lost]), results)

    assert list(labelled.ids) == ["done"]
    assert [s.id for s in labelled[0].supervisions] == ["speaker-a", "done-speakeasy"]
    relabelled = to_cutset(labelled, {"done": results[0]})  # idempotent: no duplicate
    assert [s.id for s in relabelled[0].supervisions] == ["speaker-a", "done-speakeasy"]


def test_a_mixed_cut_gets_its_supervision_in_a_track(tmp_path: Path, recorder: Recorder) -> None:
    source = write(tmp_path / "m.wav", ramp(3.0)).to_cut()
    mix = source.truncate(duration=1.0).mix(
        source.truncate(offset=2.0, duration=1.0), offset_other_by=0.5
    )
    results = Transcriber(recorder.backend).transcribe_batch([mix])
    path = tmp_path / "mixed.jsonl.gz"
    with CutSetWriter(path, CutSet.from_cuts([mix])) as writer:
        writer.record(results[0])
    (back,) = CutSet.from_file(path)
    assert isinstance(back, MixedCut)
    assert back.id == mix.id
    assert back.duration == pytest.approx(1.5)
    (supervision,) = back.supervisions
    assert (supervision.start, supervision.duration) == (0.0, pytest.approx(1.5))
    assert supervision.text == f"text of {mix.id}"


# ------------------------------------------------------------------------- manifests


@pytest.fixture
def corpus(tmp_path: Path) -> CutSet:
    """Cuts at offsets and on channels of two recordings, one with a supervision."""
    mono = write(tmp_path / "mono.wav", ramp(4.0))
    stereo = write(tmp_path / "stereo.flac", np.stack([ramp(2.0), -ramp(2.0)], axis=1))
    sup = SupervisionSegment("ref", "mono", start=0.0, duration=1.0, channel=0, text="reference")
    return CutSet.from_cuts(
        [
            fastcopy(
                mono.to_cut().truncate(offset=0.5, duration=1.5), id="mono-a", supervisions=[sup]
            ),
            fastcopy(mono.to_cut().truncate(offset=2.25, duration=1.0), id="mono-b"),
            fastcopy(stereo.to_cut().with_channels(1), id="stereo-right"),
        ]
    )


def test_round_trip_through_a_manifest_lhotse_reads_back(
    tmp_path: Path, recorder: Recorder, corpus: CutSet
) -> None:
    results = Transcriber(recorder.backend).transcribe_batch(corpus)
    path = tmp_path / "out" / "transcripts.jsonl.gz"
    path.parent.mkdir()
    with CutSetWriter(path, corpus) as writer:
        for result in results:
            writer.record(result)
    assert writer.report is not None
    assert (writer.report.written, writer.report.left_out) == (3, ())
    assert gzip.decompress(path.read_bytes())  # really gzip

    back = CutSet.from_file(path).to_eager()

    assert list(back.ids) == list(corpus.ids)
    for original, loaded in zip(corpus, back, strict=True):
        assert (loaded.start, loaded.duration, loaded.channel) == (
            original.start,
            original.duration,
            original.channel,
        )
        assert loaded.recording.sources == original.recording.sources
        ours = loaded.supervisions[-1]
        assert ours.id == f"{original.id}-speakeasy"
        assert ours.text == f"text of {original.id}"
        assert ours.custom["model"] == "mock-model"
        assert (ours.start, ours.duration) == (0.0, original.duration)
    assert back["mono-a"].supervisions[0].text == "reference"
    assert os.listdir(path.parent) == ["transcripts.jsonl.gz"]  # no temp file left
    first = path.read_bytes()
    assert first[4:8] == bytes(4)  # no time stamp in the gzip header: equal jobs, equal files
    writer.close()
    assert path.read_bytes() == first


def _record_then_stop(writer: CutSetWriter, result: TranscriptionResult) -> None:
    with writer:
        writer.record(result)
        raise KeyboardInterrupt  # the job stops: what is done is written


def test_writer_resumes_from_earlier_results(
    tmp_path: Path, recorder: Recorder, corpus: CutSet
) -> None:
    path = tmp_path / "cuts.jsonl"
    transcriber = Transcriber(recorder.backend)
    first_run = transcriber.transcribe_batch(corpus.subset(first=1))
    writer = CutSetWriter(path, corpus)
    with pytest.raises(KeyboardInterrupt):
        _record_then_stop(writer, first_run[0])
    assert list(CutSet.from_file(path).ids) == ["mono-a"]
    assert writer.report is not None
    assert writer.report.left_out == ("mono-b", "stereo-right")

    rest = transcriber.transcribe_batch(corpus.filter(lambda c: c.id != "mono-a"))
    with CutSetWriter(path, corpus) as writer:
        for result in [*first_run, *rest]:  # a job feeds its journal's earlier results first
            writer.record(result)

    assert list(CutSet.from_file(path).ids) == list(corpus.ids)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["id"] for line in lines] == list(corpus.ids)


def test_a_failure_never_replaces_a_success(tmp_path: Path, corpus: CutSet) -> None:
    good = TranscriptionResult("mono-b", "fine", backend="b", model="m")
    bad = TranscriptionResult("mono-b", error="boom", error_type="TranscriptionError")
    with CutSetWriter(tmp_path / "x.jsonl", corpus) as writer:
        writer.record(good)
        writer.record(bad)
    assert list(CutSet.from_file(tmp_path / "x.jsonl").ids) == ["mono-b"]
    assert [c.id for c in to_cutset(corpus, [good, bad])] == ["mono-b"]


def test_writer_rejects_other_suffixes(tmp_path: Path, corpus: CutSet) -> None:
    with pytest.raises(InvalidOptionError, match="jsonl"):
        CutSetWriter(tmp_path / "cuts.json", corpus)


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory bind-mounted read-only over itself (needs root and mount)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "cuts.jsonl.gz").write_bytes(b"old manifest")
    if shutil.which("mount") is None:
        pytest.skip("no mount(8) here")
    mounted = subprocess.run(["mount", "--bind", folder, folder], check=False, capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", folder, folder], check=True)
        yield folder
    finally:
        subprocess.run(["umount", folder], check=True)


def test_a_manifest_that_cannot_be_written_is_a_typed_error_and_the_old_one_stays(
    read_only_dir: Path, corpus: CutSet
) -> None:
    writer = CutSetWriter(read_only_dir / "cuts.jsonl.gz", corpus)
    writer.record(TranscriptionResult("mono-b", "fine"))
    with pytest.raises(TempFileError) as raised:
        writer.close()
    assert isinstance(raised.value, OSError)
    assert (read_only_dir / "cuts.jsonl.gz").read_bytes() == b"old manifest"
    assert os.listdir(read_only_dir) == ["cuts.jsonl.gz"]


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
@pytest.mark.parametrize("kind", ["cuts", "recordings"])
def test_manifest_paths_are_opened_lazily_and_transcribed(
    tmp_path: Path, recorder: Recorder, corpus: CutSet, suffix: str, kind: str
) -> None:
    manifest = tmp_path / f"in{suffix}"
    if kind == "cuts":
        corpus.to_file(manifest)
        expected = {c.id: c.duration for c in corpus}
    else:
        recordings = RecordingSet.from_recordings(c.recording for c in corpus.subset(last=2))
        recordings.to_file(manifest)
        expected = {r.id: r.duration for r in recordings}

    cuts = load_manifest(manifest)

    assert cuts.is_lazy
    results = Transcriber(recorder.backend).transcribe_batch(cuts)
    assert {r.source: r.duration for r in results} == pytest.approx(expected)
    assert all(r.ok for r in results)


def test_bad_manifest_paths_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match="no such lhotse manifest"):
        load_manifest(tmp_path / "missing.jsonl.gz")
    text = tmp_path / "notes.jsonl"
    text.write_text("this is not json\n", encoding="utf-8")
    with pytest.raises(InputError, match="not a lhotse manifest"):
        load_manifest(text)
    sups = tmp_path / "sups.jsonl"
    lhotse.SupervisionSet.from_segments([SupervisionSegment("s", "r", 0, 1)]).to_file(sups)
    with pytest.raises(InputError, match="expected a CutSet or RecordingSet"):
        load_manifest(sups)


def test_a_manifest_broken_mid_file_is_an_input_error(
    tmp_path: Path, recorder: Recorder, corpus: CutSet
) -> None:
    manifest = tmp_path / "broken.jsonl"
    corpus.to_file(manifest)
    lines = manifest.read_text(encoding="utf-8").splitlines()
    manifest.write_text(f"{lines[0]}\n{lines[1][:40]}\n", encoding="utf-8")
    stream = Transcriber(recorder.backend, window=1).iter_transcribe(load_manifest(manifest))
    first = next(stream)
    with pytest.raises(InputError, match="cannot read the next cut"):
        next(stream)
    assert first.source == "mono-a"  # what came before is not lost


# ---------------------------------------------------------------- lhotse not installed


def test_lhotse_is_not_imported_unless_used(tmp_path: Path) -> None:
    wav = tmp_path / "t.wav"
    sf.write(wav, ramp(0.5), SR)
    code = (
        "import sys\n"
        "from speakeasy_core import Transcriber\n"
        "from speakeasy_core.testing import MockBackend\n"
        f"print(Transcriber(MockBackend()).transcribe_batch([{str(wav)!r}])[0].ok)\n"
        "print('lhotse' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert out.stdout.split() == ["True", "False"]


@pytest.mark.skipif(sys.platform == "win32", reason="builds the bare site-packages of symlinks")
def test_without_lhotse_installed(tmp_path: Path) -> None:
    """A real environment without lhotse: the site-packages minus lhotse, no site."""
    import numpy  # any installed package shows where site-packages is

    site = Path(numpy.__file__).parents[1]
    bare = tmp_path / "site-packages"
    bare.mkdir()
    for entry in site.iterdir():
        if not entry.name.lower().startswith("lhotse"):
            (bare / entry.name).symlink_to(entry)
    code = (
        "import sys\n"
        "from speakeasy_core.cuts import as_inputs, is_lhotse, load_manifest\n"
        "from speakeasy_core.errors import BackendUnavailableError\n"
        "items = ['a.wav']\n"
        "assert as_inputs(items) is items and not is_lhotse(items)\n"
        "try:\n"
        "    load_manifest('cuts.jsonl.gz')\n"
        "except BackendUnavailableError as exc:\n"
        "    assert isinstance(exc, ImportError)\n"
        "    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{bare}", "PYTHONNOUSERSITE": "1"}
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "lhotse is not installed" in out.stdout
    assert "pip install" in out.stdout


def test_is_lhotse(corpus: CutSet) -> None:
    assert is_lhotse(corpus)
    assert is_lhotse(corpus[0])
    assert is_lhotse(corpus[0].recording)
    assert not is_lhotse([corpus[0]])
    assert not is_lhotse("cuts.jsonl")


# ---------------------------------------------------------------- a real tiny NeMo model


@pytest.mark.nemo
def test_tiny_nemo_transcribes_each_cut_as_its_own_file_and_round_trips(
    tmp_path: Path, tiny_tdt_nemo: Path
) -> None:
    parts = []
    for seed in range(3):
        write_nemo_wav(tmp_path / f"part{seed}.wav", 1.0, seed=seed)
        parts.append(sf.read(tmp_path / f"part{seed}.wav", dtype="int16")[0])
    sf.write(tmp_path / "joined.wav", np.concatenate(parts), SR, subtype="PCM_16")
    joined = Recording.from_file(tmp_path / "joined.wav")
    cuts = CutSet.from_cuts(
        fastcopy(joined.to_cut().truncate(offset=float(i), duration=1.0), id=f"part{i}")
        for i in range(3)
    )
    path = tmp_path / "labelled.jsonl.gz"
    with Transcriber("parakeet", tiny_tdt_nemo, device="cpu", timestamps=True) as transcriber:
        results = transcriber.transcribe_batch(cuts)
        alone = transcriber.transcribe_batch([tmp_path / f"part{i}.wav" for i in range(3)])
        with CutSetWriter(path, cuts) as writer:
            for result in results:
                writer.record(result)

    texts = [r.text for r in results]
    assert texts == [r.text for r in alone]  # a cut is heard exactly as its own file
    assert len(set(texts)) == 3  # and the three spans sound different to the model
    back = CutSet.from_file(path).to_eager()
    assert [(c.id, c.start, c.duration) for c in back] == [
        (f"part{i}", float(i), 1.0) for i in range(3)
    ]
    for cut, result in zip(back, results, strict=True):
        (supervision,) = cut.supervisions
        assert supervision.text == result.text
        assert supervision.custom["backend"] == "parakeet"
        assert supervision.custom["model"] == result.model
        words = supervision.alignment["word"]
        assert [w.symbol for w in words] == [w.text for w in result.words]
        assert all(cut.start <= w.start <= cut.end for w in words)  # on the recording's time line
