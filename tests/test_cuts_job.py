"""lhotse cuts as a job: run_job and the CLI on a CutSet, resume by cut id, the manifest.

The backend is speakeasy_core.testing.MockBackend answering with each item's key and
sample count, so a test sees which span reached the model; what we write is read back
with lhotse's own loader.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from speakeasy_core import Transcriber
from speakeasy_core.backends import PreparedAudio, register_backend, unregister_backend
from speakeasy_core.cli import main
from speakeasy_core.errors import InvalidOptionError
from speakeasy_core.job import JOURNAL_NAME, LHOTSE_MANIFEST, cut_inputs, plan_outputs, run_job
from speakeasy_core.journal import read_journal
from speakeasy_core.testing import MockBackend
from speakeasy_core.types import TranscribeOptions
from tests.extras import reason

lhotse = pytest.importorskip("lhotse", reason=reason("lhotse"))
from lhotse import CutSet, Recording, SupervisionSegment  # noqa: E402

SR = 16000
CALLS: list[str] = []


def answer(item: PreparedAudio, options: TranscribeOptions) -> str:
    CALLS.append(item.key)
    samples = getattr(item, "samples", None)
    frames = len(samples) if samples is not None else sf.info(item.path).frames
    return f"{item.key} heard {frames}"


def factory(*, model: str | None, device: str, **options: Any) -> MockBackend:
    return MockBackend(answer)


@pytest.fixture(autouse=True)
def cutmock() -> Iterator[None]:
    register_backend("cutmock", factory)
    CALLS.clear()
    yield
    unregister_backend("cutmock")


@pytest.fixture
def corpus(tmp_path: Path) -> CutSet:
    """Two 1 s cuts at offsets of one 3 s recording, one with two supervisions, and a
    cut whose file is gone."""
    audio = tmp_path / "long.wav"
    sf.write(audio, np.linspace(-0.5, 0.5, 3 * SR, dtype=np.float32), SR)
    gone = tmp_path / "gone.wav"
    sf.write(gone, np.zeros(SR, dtype=np.float32), SR)
    long, missing = Recording.from_file(audio), Recording.from_file(gone)
    gone.unlink()
    first = long.to_cut().truncate(offset=0.5, duration=1.0).with_id("first")
    second = long.to_cut().truncate(offset=2.0, duration=1.0).with_id("second")
    second.supervisions = [
        SupervisionSegment("s1", long.id, start=0.0, duration=0.25),
        SupervisionSegment("s2", long.id, start=0.5, duration=0.5),
    ]
    return CutSet.from_cuts([first, second, missing.to_cut().with_id("lost")])


def test_a_cutset_job_writes_outputs_by_cut_id_and_a_manifest_lhotse_reads(
    tmp_path: Path, corpus: CutSet
) -> None:
    out = tmp_path / "out"
    transcriber = Transcriber("cutmock")
    summary = run_job(transcriber, corpus, out, formats=["txt", "lhotse"])

    assert (summary.total, summary.transcribed, summary.failed) == (3, 2, 1)
    assert summary.failures[0][0] == "lost"
    assert (out / "first.txt").read_text(encoding="utf-8").strip() == "first heard 16000"
    assert (out / "second.txt").read_text(encoding="utf-8").strip() == "second heard 16000"
    back = CutSet.from_file(out / LHOTSE_MANIFEST).to_eager()
    assert [cut.id for cut in back] == ["first", "second"]  # "lost" has no transcript
    first = back["first"]
    assert (first.start, first.duration) == (0.5, 1.0)
    assert [s.text for s in first.supervisions] == ["first heard 16000"]
    second = back["second"]
    assert {s.id: s.text for s in second.supervisions}["second-speakeasy"] == ("second heard 16000")
    assert {"s1", "s2"} <= {s.id for s in second.supervisions}  # existing ones kept


def test_resume_skips_cuts_by_id_and_rewrites_the_manifest_complete(
    tmp_path: Path, corpus: CutSet
) -> None:
    out = tmp_path / "out"
    run_job(Transcriber("cutmock"), corpus.subset(cut_ids=["first"]), out, formats=["txt"])
    CALLS.clear()

    summary = run_job(Transcriber("cutmock"), corpus, out, formats=["txt", "lhotse"], resume=True)

    assert CALLS == ["second"]
    assert (summary.skipped, summary.transcribed) == (1, 1)
    back = CutSet.from_file(out / LHOTSE_MANIFEST).to_eager()
    assert [cut.id for cut in back] == ["first", "second"]  # the earlier run's cut too
    keys = [key for key, _ in read_journal(out / JOURNAL_NAME)]
    assert all(key.startswith("cut-") for key in keys)


def test_per_supervision_jobs_name_outputs_cut_slash_supervision(
    tmp_path: Path, corpus: CutSet
) -> None:
    out = tmp_path / "out"
    only = corpus.subset(cut_ids=["second"])
    summary = run_job(
        Transcriber("cutmock"), only, out, formats=["txt", "lhotse"], per_supervision=True
    )

    assert summary.transcribed == 2
    assert (out / "second" / "s1.txt").read_text(encoding="utf-8").strip() == "second/s1 heard 4000"
    assert (out / "second" / "s2.txt").read_text(encoding="utf-8").strip() == "second/s2 heard 8000"
    (cut,) = CutSet.from_file(out / LHOTSE_MANIFEST).to_eager()
    assert {s.id: s.text for s in cut.supervisions} == {
        "s1": "second/s1 heard 4000",
        "s2": "second/s2 heard 8000",
    }


def test_cut_ids_that_look_like_paths_stay_inside_the_out_dir(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(SR, dtype=np.float32), SR)
    cut = Recording.from_file(audio).to_cut()
    cuts = CutSet.from_cuts(
        [cut.with_id("../escape"), cut.with_id("/abs/olute"), cut.with_id("."), cut.with_id("")]
    )

    planned = plan_outputs(cut_inputs(cuts), ["txt"])

    out = tmp_path / "out"
    for item in planned:
        target = item.output(out, "txt").resolve()
        assert out.resolve() in target.parents, item.stem
    assert len({item.stem for item in planned}) == 4


def test_the_lhotse_format_needs_cuts(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="lhotse"):
        run_job(Transcriber("cutmock"), [], tmp_path / "out", formats=["lhotse"])
    assert not (tmp_path / "out").exists()  # refused before anything is made


def test_the_cli_runs_a_manifest_with_resume(
    tmp_path: Path, corpus: CutSet, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "cuts.jsonl.gz"
    corpus.to_file(manifest)
    out = tmp_path / "out"
    args = ["transcribe", "--backend", "cutmock", "--cuts", str(manifest), "--out-dir", str(out)]

    assert main([*args, "--format", "txt", "--format", "lhotse"]) == 1  # "lost" failed
    assert "failed: lost" in capsys.readouterr().err
    assert [cut.id for cut in CutSet.from_file(out / LHOTSE_MANIFEST)] == ["first", "second"]
    CALLS.clear()

    assert main([*args, "--format", "txt", "--format", "lhotse", "--resume"]) == 1
    assert CALLS == []  # only the lost cut was retried, and it fails before the model
    assert "2 already done" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "lhotse", "--out-dir", "OUT", "a.wav"], "--format lhotse needs --cuts"),
        (["--format", "lhotse", "--cuts", "M"], "--format lhotse needs --out-dir"),
        (["--cuts", "M", "a.wav"], "not both"),
        (["--per-supervision", "a.wav"], "--per-supervision needs --cuts"),
        ([], "give audio files or directories, or --cuts"),
    ],
)
def test_cli_usage_errors_for_cuts(
    extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["transcribe", "--backend", "cutmock", *extra]) == 2
    assert message in capsys.readouterr().err
