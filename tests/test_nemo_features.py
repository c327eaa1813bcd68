"""Features computed ahead, off the model's thread: equal to the model's own, same texts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from speakeasy_core import Transcriber
from speakeasy_core.backends.base import BackendOutput, PreparedAudio, is_featurizing
from speakeasy_core.backends.nemo import NeMoBackend
from speakeasy_core.batch import THREAD_PREFIX
from speakeasy_core.types import TranscribeOptions

from .fixtures.nemo_models import CANARY_KINDS, PARAKEET_KINDS, MakeNemoWav

pytestmark = pytest.mark.nemo

OPTIONS = {
    **{kind: TranscribeOptions(timestamps=kind != "ctc") for kind in PARAKEET_KINDS},
    "canary": TranscribeOptions(language="en"),
    "canary2": TranscribeOptions(language="de", timestamps=True),
}


@pytest.fixture
def clips(nemo_wav: MakeNemoWav) -> list[PreparedAudio]:
    lengths = [1.0, 2.5, 0.5, 3.0, 0.3]
    return [nemo_wav(f"clip{i}.wav", seconds, seed=i) for i, seconds in enumerate(lengths)]


@contextmanager
def featurizer_calls(backend: NeMoBackend) -> Iterator[list[Any]]:
    """The features the model's own preprocessor computes meanwhile (its filterbank's
    outputs; a forward hook on the preprocessor would fire even when it computes nothing)."""
    seen: list[Any] = []

    def hook(module: Any, args: Any, output: Any) -> None:
        seen.append(output[0])  # (features, lengths)

    handle = backend.model.preprocessor.featurizer.register_forward_hook(hook)
    try:
        yield seen
    finally:
        handle.remove()


def outputs_of(outputs: list[BackendOutput]) -> list[tuple[str, Any, Any]]:
    return [(o.text, o.words, o.segments) for o in outputs]


@pytest.mark.parametrize("kind", PARAKEET_KINDS + CANARY_KINDS)
def test_features_ahead_equal_the_models_own_and_the_outputs_too(
    kind: str, backend_for: Callable[[str], NeMoBackend], clips: list[PreparedAudio]
) -> None:
    import torch

    backend = backend_for(kind)
    assert is_featurizing(backend)
    options = OPTIONS[kind]
    collated = backend.collate(clips, options)
    with featurizer_calls(backend) as computed:
        plain = backend.transcribe_collated(clips, collated, options)
    assert len(computed) == 1
    featurized = backend.featurize(backend.collate(clips, options))
    assert featurized is not collated
    assert torch.equal(featurized.features, computed[0])
    with featurizer_calls(backend) as computed:
        ahead = backend.transcribe_collated(clips, featurized, options)
    assert computed == []  # the model's preprocessor did not compute them again
    assert outputs_of(ahead) == outputs_of(plain)
    assert backend.featurize(featurized) is featurized


@pytest.mark.parametrize("kind", ["ctc", "hybrid", "canary2"])
def test_features_computed_a_few_rows_at_a_time_equal_the_whole_batchs(
    kind: str, backend_for: Callable[[str], NeMoBackend], nemo_wav: MakeNemoWav
) -> None:
    """Long rows go through the preprocessor a few at a time (here 2 of 25 s): the
    features are those of the whole batch at once, bit for bit."""
    import torch

    backend = backend_for(kind)
    clips = [nemo_wav(f"{i}.wav", s, seed=i) for i, s in enumerate([25.0, 3.0, 24.0, 12.5, 21.0])]
    options = OPTIONS[kind]
    collated = backend.collate(clips, options)
    with featurizer_calls(backend) as computed:
        plain = backend.transcribe_collated(clips, collated, options)
    with featurizer_calls(backend) as parts:
        featurized = backend.featurize(collated)
    assert parts == []  # the twin, not the model's own preprocessor
    assert torch.equal(featurized.features, computed[0])
    assert outputs_of(backend.transcribe_collated(clips, featurized, options)) == outputs_of(plain)


@pytest.mark.parametrize("kind", ["ctc", "canary2"])
def test_features_use_transcribes_settings_whatever_the_models_are(
    kind: str, backend_for: Callable[[str], NeMoBackend], clips: list[PreparedAudio]
) -> None:
    """Real checkpoints train with dither and some with pad_to 16; transcribe() turns
    both off while it runs, and so must features computed outside it."""
    import torch

    from speakeasy_core.backends._nemo_batch import Featurizer

    backend = backend_for(kind)
    own = backend.model.preprocessor.featurizer
    saved = own.dither, own.pad_to
    own.dither, own.pad_to = 1e-3, 16
    try:
        featurizer = Featurizer(backend.model)
        options = OPTIONS[kind]
        collated = backend.collate(clips, options)
        with featurizer_calls(backend) as computed:
            backend.transcribe_collated(clips, collated, options)
        assert (own.dither, own.pad_to) == (1e-3, 16)  # restored by transcribe()
        assert torch.equal(featurizer(collated).features, computed[0])
        assert computed[0].shape[-1] % 16 != 0  # no pad_to in transcribe()
    finally:
        own.dither, own.pad_to = saved


def test_featurizing_while_the_model_runs_gives_the_same_features(
    backend_for: Callable[[str], NeMoBackend], clips: list[PreparedAudio]
) -> None:
    """Workers featurize while transcribe() has changed the model's own settings."""
    import torch

    backend = backend_for("tdt")
    options = OPTIONS["tdt"]
    reference = backend.featurize(backend.collate(clips, options)).features
    own = backend.model.preprocessor.featurizer
    saved = own.pad_to
    own.pad_to = 16
    stop = threading.Event()

    def run_model() -> None:
        while not stop.is_set():
            backend.transcribe_batch(clips, options, None)  # type: ignore[arg-type]

    try:
        with ThreadPoolExecutor(3) as pool:
            runner = pool.submit(run_model)
            results = list(
                pool.map(lambda _: backend.featurize(backend.collate(clips, options)), range(20))
            )
            stop.set()
            runner.result()
    finally:
        own.pad_to = saved
    assert all(torch.equal(r.features, reference) for r in results)


def test_the_transcriber_gives_the_same_texts_with_features_ahead_or_not(
    tiny_tdt_nemo: Path, tmp_path: Path, nemo_wav: MakeNemoWav
) -> None:
    """A CPU model with prefetch workers featurizes ahead; with none the model's thread
    does it in the call. Either way the results are the same."""
    clips = [nemo_wav(f"{i}.wav", 0.4 + 0.7 * i, seed=i) for i in range(9)]
    paths = [item.key for item in clips]
    results = []
    threads: list[list[str]] = []
    for workers in (0, 2):
        with Transcriber(
            "parakeet",
            str(tiny_tdt_nemo),
            device="cpu",
            batch_size=2,
            num_workers=workers,
            timestamps=True,
            workspace_root=tmp_path,
        ) as transcriber:
            backend = transcriber.backend
            assert isinstance(backend, NeMoBackend)
            names: list[str] = []
            featurize = backend.featurize

            def recording(collated: Any, featurize: Any = featurize, names: Any = names) -> Any:
                names.append(threading.current_thread().name)
                return featurize(collated)

            backend.featurize = recording  # type: ignore[method-assign]
            results.append([(r.text, r.words) for r in transcriber.transcribe_batch(paths)])
            threads.append(names)
    assert results[0] == results[1]
    # Five batches, each featurized once: by the model's thread without workers, and
    # with workers mostly by them (idle while the model runs).
    assert threads[0] == [threading.current_thread().name] * 5
    assert len(threads[1]) == 5
    assert any(name.startswith(THREAD_PREFIX) for name in threads[1])


@pytest.mark.parametrize("kind", ["tdt", "canary"])
def test_a_model_that_copies_its_input_gets_the_features_computed_in_the_call(
    kind: str,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The featurized batch's audio is a placeholder; a model that does not hand that
    very tensor to its preprocessor (as a copy to another device would) must not get
    features of zeros: the call is run again, collated anew."""
    import torch
    from nemo.collections.asr.parts.mixins import transcription

    backend = backend_for(kind)
    options = OPTIONS[kind]
    plain = backend.transcribe_collated(clips, backend.collate(clips, options), options)
    featurized = backend.featurize(backend.collate(clips, options))
    audio = featurized.batch[0] if isinstance(featurized.batch, list) else featurized.batch.audio
    assert audio.stride() == (0, 0)  # the placeholder holds no samples

    move = transcription.move_data_to_device

    def copying(data: Any, device: Any, *args: Any, **kwargs: Any) -> Any:
        moved = move(data, device, *args, **kwargs)
        if isinstance(moved, list):
            return [t.clone() if isinstance(t, torch.Tensor) else t for t in moved]
        moved.audio = moved.audio.clone()
        return moved

    monkeypatch.setattr(transcription, "move_data_to_device", copying)
    with featurizer_calls(backend) as computed:
        again = backend.transcribe_collated(clips, featurized, options)
    assert len(computed) == 1  # computed in the call, from the real audio
    assert outputs_of(again) == outputs_of(plain)
    assert "computing the features in the call" in caplog.text
