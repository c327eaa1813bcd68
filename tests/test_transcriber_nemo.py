"""The Transcriber end to end on tiny real NeMo models (no mocks of NeMo)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speakeasy_core import AudioArray, AudioInput, Transcriber
from speakeasy_core.backends.nemo import NeMoBackend
from speakeasy_core.job import JOURNAL_NAME, JobInput, run_job
from speakeasy_core.journal import read_journal
from tests.fixtures.nemo_models import nemo_wav_file

pytestmark = pytest.mark.nemo


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "workspaces"
    path.mkdir()
    return path


@contextmanager
def raising_in_model(
    transcriber: Transcriber, exc: BaseException, *, samples: int | None = None
) -> Iterator[None]:
    """Make the real model raise ``exc`` in its forward pass: always, or only for a
    batch holding an input of exactly ``samples`` samples (a "poisoned" file)."""
    backend = transcriber.backend
    assert isinstance(backend, NeMoBackend)

    def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        lengths = kwargs["length"].tolist()
        if samples is None or samples in lengths:
            raise exc

    handle = backend.model.preprocessor.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def test_mixed_batch_in_order_with_a_real_model_failure_isolated(
    tiny_tdt_nemo: Path, tmp_path: Path, root: Path
) -> None:
    clips = [nemo_wav_file(tmp_path / f"clip{i}.wav", 1.0 + i / 2, seed=i) for i in range(5)]
    poisoned = nemo_wav_file(tmp_path / "poisoned.wav", 2.7, seed=9)
    speech, _ = sf.read(clips[3], dtype="float32")
    stereo_48k = tmp_path / "stereo48k.flac"
    sf.write(stereo_48k, np.stack([np.repeat(speech, 3)] * 2, axis=1), 48000)
    inputs: list[AudioInput] = [
        clips[0],
        poisoned,
        AudioArray(sf.read(clips[1], dtype="float32")[0], 16000, "array"),
        tmp_path / "missing.wav",
        clips[2],
        stereo_48k,
        clips[4],
    ]
    with Transcriber(
        "parakeet", tiny_tdt_nemo, device="cpu", batch_size=4, workspace_root=root
    ) as t:
        with raising_in_model(t, RuntimeError("poisoned input"), samples=int(2.7 * 16000)):
            results = t.transcribe_batch(inputs)
        singles = {str(p): t.transcribe(p).text for p in (clips[0], clips[2], clips[4])}

    assert [r.source for r in results] == [
        str(clips[0]),
        str(poisoned),
        "array",
        str(tmp_path / "missing.wav"),
        str(clips[2]),
        str(stereo_48k),
        str(clips[4]),
    ]
    assert [r.ok for r in results] == [True, False, True, False, True, True, True]
    assert results[1].error_type == "TranscriptionError"
    assert "poisoned input" in (results[1].error or "")
    assert results[3].error_type == "InputNotFoundError"
    # batched (and split to isolate the culprit) gives what one-at-a-time gives
    for result in (results[0], results[4], results[6]):
        assert result.text == singles[result.source]
    assert all(r.backend == "parakeet" for r in results)
    assert results[5].duration == pytest.approx(len(speech) * 3 / 48000, abs=1e-3)
    assert list(root.iterdir()) == []


def test_canary_translation_options_reach_the_result(
    tiny_canary_nemo: Path, tmp_path: Path, root: Path
) -> None:
    clip = nemo_wav_file(tmp_path / "de.wav", 2.0, seed=3)
    with Transcriber(
        "canary", tiny_canary_nemo, device="cpu", workspace_root=root, language="de"
    ) as t:
        assert t.capabilities.translation
        plain = t.transcribe(clip)
        translated = t.transcribe(clip, task="translate", target_language="en")
    assert (plain.task, plain.language) == ("transcribe", "de")
    assert (translated.task, translated.language) == ("translate", "de")
    assert plain.model == str(tiny_canary_nemo)


def test_long_audio_is_cut_and_merged_with_times_inside(
    tiny_tdt_nemo: Path, tmp_path: Path, root: Path
) -> None:
    long = nemo_wav_file(tmp_path / "long.wav", 95.0, seed=1)
    with Transcriber(
        "parakeet",
        tiny_tdt_nemo,
        device="cpu",
        workspace_root=root,
        timestamps=True,
        chunk_duration=30.0,
    ) as t:
        result = t.transcribe(long)
    assert result.duration == pytest.approx(95.0)
    times = [(w.start, w.end) for w in result.words] + [(s.start, s.end) for s in result.segments]
    assert all(0.0 <= start <= end <= 95.0 for start, end in times)
    starts = [w.start for w in result.words]
    assert starts == sorted(starts)
    # four pieces merged: words come from the last piece too, shifted past 60 s
    assert max(starts) > 60.0
    assert list(root.iterdir()) == []


@pytest.mark.parametrize("exc", [RuntimeError("encoder exploded"), KeyboardInterrupt()])
def test_failures_in_the_forward_pass_leave_no_temp_files(
    tiny_ctc_nemo: Path, tmp_path: Path, root: Path, exc: BaseException
) -> None:
    resampled = tmp_path / "8k.wav"
    sf.write(resampled, np.random.default_rng(0).standard_normal(8000).astype(np.float32) / 4, 8000)
    inputs = [resampled, nemo_wav_file(tmp_path / "a.wav", 1.0)]
    with Transcriber("parakeet", tiny_ctc_nemo, device="cpu", workspace_root=root) as t:
        with raising_in_model(t, exc):
            if isinstance(exc, KeyboardInterrupt):
                with pytest.raises(KeyboardInterrupt):
                    t.transcribe_batch(inputs)
            else:
                results = t.transcribe_batch(inputs)
                assert [r.error_type for r in results] == ["TranscriptionError"] * 2
                assert all("encoder exploded" in (r.error or "") for r in results)
        assert list(root.iterdir()) == []
        # the model still works afterwards
        assert all(r.ok for r in t.transcribe_batch(inputs))
    assert list(root.iterdir()) == []


@settings(max_examples=6, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kill_after_batches=st.integers(0, 3))
def test_job_killed_mid_run_and_resumed_equals_one_run(
    tiny_ctc_nemo: Path,
    tmp_path_factory: pytest.TempPathFactory,
    kill_after_batches: int,
) -> None:
    folder = tmp_path_factory.mktemp("inputs")
    inputs = [
        JobInput(nemo_wav_file(folder / f"c{i}.wav", 0.5 + i / 4, seed=i), f"c{i}")
        for i in range(8)
    ]
    with Transcriber("parakeet", tiny_ctc_nemo, device="cpu", batch_size=2) as t:
        reference = tmp_path_factory.mktemp("reference")
        run_job(t, inputs, reference)
        out = tmp_path_factory.mktemp("killed")
        batches = 0

        def hook(module: Any, args: Any, kwargs: dict[str, Any]) -> None:
            nonlocal batches
            batches += 1
            if batches > kill_after_batches:
                raise KeyboardInterrupt

        assert isinstance(t.backend, NeMoBackend)
        handle = t.backend.model.preprocessor.register_forward_pre_hook(hook, with_kwargs=True)
        with pytest.raises(KeyboardInterrupt):
            run_job(t, inputs, out)
        handle.remove()
        done_before = {r.source for _, r in read_journal(out / JOURNAL_NAME) if r.ok}
        assert len(done_before) == 2 * kill_after_batches
        summary = run_job(t, inputs, out, resume=True)

    assert (summary.skipped, summary.transcribed) == (len(done_before), 8 - len(done_before))
    sources = [r.source for _, r in read_journal(out / JOURNAL_NAME) if r.ok]
    assert sorted(sources) == sorted(str(i.path) for i in inputs)
    texts = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.txt")}
    assert texts == {p.name: p.read_text(encoding="utf-8") for p in reference.glob("*.txt")}
