"""The command line: exit statuses, summary, outputs, resume (on the MockBackend)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from speakeasy_core.backends import PreparedAudio, register_backend, unregister_backend
from speakeasy_core.batch import THREAD_PREFIX
from speakeasy_core.cli import main
from speakeasy_core.job import expand_inputs
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions


def greet(item: PreparedAudio, options: TranscribeOptions) -> str:
    return f"hello {Path(item.key).stem}"


def mock_factory(*, model: str | None, device: str, **options: Any) -> MockBackend:
    return MockBackend(greet)


@pytest.fixture(autouse=True)
def mock_backend() -> Iterator[None]:
    register_backend("clitest", mock_factory)
    yield
    unregister_backend("clitest")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    (root / "day1").mkdir(parents=True)
    (root / "day2").mkdir()
    for name in ("day1/intro.wav", "day2/intro.flac", "day2/outro.wav"):
        sf.write(root / name, np.full(8000, 0.1, dtype=np.float32), 16000)
    (root / "notes.txt").write_text("not audio", encoding="utf-8")
    return root


def run(*args: str) -> int:
    return main(["transcribe", "--backend", "clitest", "--no-progress", *args])


def test_prints_transcripts_without_out_dir(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(str(folder / "day1" / "intro.wav")) == 0
    assert capsys.readouterr().out == "hello intro\n"


def test_directory_job_writes_outputs_and_a_summary(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert run(str(folder), "--out-dir", str(out), "--format", "txt", "--format", "srt") == 0
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*"))
    if ".speakeasy-job.lock" in written:  # filelock removes it on Windows, keeps it on POSIX
        written.remove(".speakeasy-job.lock")
    assert written == [
        "day1/intro.srt",
        "day1/intro.txt",
        "day2/intro.srt",
        "day2/intro.txt",
        "day2/outro.srt",
        "day2/outro.txt",
        "speakeasy-journal.jsonl",
    ]
    assert (out / "day2" / "outro.txt").read_text(encoding="utf-8").strip() == "hello outro"
    assert "3 transcribed, 0 already done, 0 failed, of 3 inputs" in capsys.readouterr().err

    assert run(str(folder), "--out-dir", str(out), "--resume") == 0
    assert "0 transcribed, 3 already done, 0 failed" in capsys.readouterr().err


def test_a_failed_input_gives_exit_status_1_and_is_named(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.wav"
    status = run(str(folder / "day2"), str(missing), "--out-dir", str(tmp_path / "out"))
    assert status == 1
    err = capsys.readouterr().err
    assert f"failed: {missing}: InputNotFoundError" in err
    assert "2 transcribed, 0 already done, 1 failed, of 3 inputs" in err


def test_usage_errors(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        run(str(folder), "--batch-size", "0")
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        run(str(folder), "--format", "docx")
    assert info.value.code == 2
    assert run(str(folder), "--format", "txt", "--format", "srt") == 2
    assert "need --out-dir" in capsys.readouterr().err


def test_unknown_backend_and_unsupported_option_are_fatal(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["transcribe", "--backend", "nope", str(folder)]) == 3
    assert "unknown backend 'nope'" in capsys.readouterr().err
    assert run(str(folder), "--task", "translate") == 3
    assert "cannot translate" in capsys.readouterr().err


def test_help_and_backends_listing(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["transcribe", "--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--backend", "--model", "--out-dir", "--format", "--resume", "--task"):
        assert flag in help_text
    assert main(["backends"]) == 0
    assert {"canary", "clitest", "parakeet", "whisper"} <= set(capsys.readouterr().out.split())


def test_expand_inputs_keeps_relative_names(folder: Path) -> None:
    items = list(expand_inputs([str(folder), str(folder / "day1" / "intro.wav")]))
    assert [item.stem for item in items] == ["day1/intro", "day2/intro", "day2/outro", "intro"]


@pytest.mark.whisper
def test_default_backend_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's main job: the embedded model, a real recording, exit status, summary."""
    example = Path(__file__).resolve().parent.parent / "examples" / "audio" / "arctic_a0007.wav"
    assert main(["transcribe", "--no-progress", str(example)]) == 0
    text = capsys.readouterr().out.strip().lower().rstrip(".")
    assert text == "and you always want to see it in the superlative degree"

    out = tmp_path / "out"
    missing = tmp_path / "missing.wav"
    status = main(
        [
            "transcribe",
            "--no-progress",
            str(example),
            str(missing),
            "--out-dir",
            str(out),
            "--format",
            "vtt",
        ]
    )
    assert status == 1
    err = capsys.readouterr().err
    assert "1 transcribed, 0 already done, 1 failed, of 2 inputs" in err
    vtt = (out / "arctic_a0007.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT")
    assert "superlative degree" in vtt
    assert "-->" in vtt


@pytest.mark.parametrize(("workers", "threads"), [("0", 0), ("2", 2)])
def test_num_workers_sets_the_prefetch_threads(folder: Path, workers: str, threads: int) -> None:
    seen: list[int] = []

    def count_workers(item: PreparedAudio, options: TranscribeOptions) -> str:
        alive = [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
        seen.append(len(alive))
        return "ok"

    register_backend("workers", lambda **_: MockBackend(count_workers))
    try:
        assert (
            main(["transcribe", "--backend", "workers", str(folder), "--num-workers", workers]) == 0
        )
    finally:
        unregister_backend("workers")
    assert seen
    assert max(seen) == threads


def test_num_workers_must_not_be_negative(folder: Path) -> None:
    with pytest.raises(SystemExit) as info:
        run(str(folder), "--num-workers", "-1")
    assert info.value.code == 2


def test_batch_duration_bounds_the_seconds_per_model_call(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(5):
        sf.write(folder / f"{i}.wav", np.full(16000 * 2, 0.1, dtype=np.float32), 16000)
    backend = MockBackend(greet)
    register_backend("bounded", lambda **_: backend)
    try:
        args = ["transcribe", "--backend", "bounded", "--no-progress", str(folder)]
        assert main([*args, "--batch-duration", "4.5"]) == 0
    finally:
        unregister_backend("bounded")
    assert sorted(len(batch) for batch in backend.batches) == [1, 2, 2]
    with pytest.raises(SystemExit) as info:
        run(str(folder), "--batch-duration", "0")
    assert info.value.code == 2
