"""Videos and phone recordings through the Transcriber and the CLI: found in folders,
decoded by PyAV, one audio stream chosen for all (files made with PyAV's encoders)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from speakeasy_core import Transcriber
from speakeasy_core.audio import TARGET_SAMPLE_RATE
from speakeasy_core.backends import PreparedAudio, register_backend, unregister_backend
from speakeasy_core.cli import main
from speakeasy_core.distributed import TranscriberSpec
from speakeasy_core.errors import AudioDecodeError, InvalidOptionError
from speakeasy_core.job import AUDIO_SUFFIXES
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions
from tests.fixtures.containers import CONTAINER_KINDS
from tests.test_audio import dominant_frequency


def pitch(item: PreparedAudio, options: TranscribeOptions) -> str:
    """What the mock model hears: the tone's frequency and the length."""
    seconds = len(item.samples) / TARGET_SAMPLE_RATE
    return f"{dominant_frequency(item.samples, TARGET_SAMPLE_RATE):.0f} Hz {seconds:.1f} s"


@pytest.fixture(autouse=True)
def pitch_backend() -> Iterator[None]:
    register_backend("pitch", lambda **_: MockBackend(pitch))
    yield
    unregister_backend("pitch")


@pytest.fixture
def folder(containers: dict[str, Path], tmp_path: Path) -> Path:
    """Every container kind under one folder, in sub-folders by kind."""
    root = tmp_path / "in"
    for kind, path in containers.items():
        target = root / kind.replace(".", "-") / kind.upper()  # suffixes in any case
        target.parent.mkdir(parents=True)
        shutil.copyfile(path, target)
    return root


def cli(*args: str) -> int:
    return main(["transcribe", "--backend", "pitch", "--no-progress", *args])


def test_every_kind_of_container_is_searched_for_in_folders() -> None:
    assert {Path(kind).suffix for kind in CONTAINER_KINDS} <= AUDIO_SUFFIXES


def test_a_folder_of_videos_and_phone_recordings_is_one_job(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli(str(folder), "--out-dir", str(out)) == 1  # one input failed
    decodable = [kind for kind in CONTAINER_KINDS if kind != "video-only.mp4"]
    for kind in decodable:
        output = out / kind.replace(".", "-") / f"{Path(kind).stem.upper()}.txt"
        text = output.read_text(encoding="utf-8").strip()
        assert text == "440 Hz 2.0 s", kind
    err = capsys.readouterr().err
    assert f"{len(decodable)} transcribed, 0 already done, 1 failed" in err
    assert "VIDEO-ONLY.MP4: no audio stream (the file holds video)" in err


def texts(results: list[Any]) -> list[str]:
    return [r.text if r.ok else f"{r.error_type}: {r.error}" for r in results]


def test_audio_stream_picks_the_track_and_a_file_without_it_fails_alone(
    containers: dict[str, Path], tmp_path: Path
) -> None:
    two, single = containers["two-streams.mkv"], containers["windows.wma"]

    def run(**kwargs: Any) -> list[str]:
        transcriber = Transcriber("pitch", workspace_root=tmp_path, **kwargs)
        return texts(transcriber.transcribe_batch([two, single]))

    assert run() == run(audio_stream=0) == ["440 Hz 2.0 s", "440 Hz 2.0 s"]
    first, second = run(audio_stream=1)
    assert first == "1000 Hz 2.0 s"  # the Opus track, not the AAC one
    assert second.startswith("AudioDecodeError: ")
    assert "windows.wma: audio stream 1 was asked for; the file has 1 (from 0)" in second
    # Ray's actors build their Transcriber from a spec: it carries the choice.
    spec = TranscriberSpec("pitch", audio_stream=1, workspace_root=str(tmp_path))
    assert spec.build().transcribe(two).text == "1000 Hz 2.0 s"


@pytest.mark.parametrize("bad", [-1, True, 1.0, "1"])
def test_a_bad_audio_stream_is_an_option_error(bad: object) -> None:
    with pytest.raises(InvalidOptionError, match="audio_stream"):
        Transcriber("pitch", audio_stream=bad)  # type: ignore[arg-type]


def test_the_cli_chooses_the_stream_and_a_resume_must_choose_the_same(
    containers: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two, out = str(containers["two-streams.mkv"]), str(tmp_path / "out")
    assert cli(two, "--audio-stream", "1", "--out-dir", out) == 0
    assert (tmp_path / "out" / "two-streams.txt").read_text(encoding="utf-8").strip() == (
        "1000 Hz 2.0 s"
    )
    assert cli(two, "--audio-stream", "1", "--out-dir", out, "--resume") == 0
    assert "0 transcribed, 1 already done" in capsys.readouterr().err
    # Another stream is another job: resuming into this one is refused, naming why.
    assert cli(two, "--out-dir", out, "--resume") == 3
    assert "differs in audio_stream: journal 1, this run None" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli(two, "--audio-stream", "-1")
    assert usage.value.code == 2


def test_stream_zero_keeps_the_journal_of_a_job_that_chose_none(
    containers: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    two, out = str(containers["two-streams.mkv"]), str(tmp_path / "out")
    assert cli(two, "--out-dir", out) == 0
    assert cli(two, "--audio-stream", "0", "--out-dir", out, "--resume") == 0
    assert "0 transcribed, 1 already done" in capsys.readouterr().err


def test_transcribing_from_a_chosen_stream_raises_its_typed_error(
    containers: dict[str, Path], tmp_path: Path
) -> None:
    transcriber = Transcriber("pitch", audio_stream=2, workspace_root=tmp_path)
    with pytest.raises(AudioDecodeError, match=r"audio stream 2 was asked for; the file has 2"):
        transcriber.transcribe(containers["two-streams.mkv"])
