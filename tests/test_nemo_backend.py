"""Parakeet and Canary backends on tiny real NeMo models: loading, collate, options, files."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from speakeasy_core.backends import Backend, create_backend
from speakeasy_core.backends.base import BackendOutput, PreparedAudio
from speakeasy_core.backends.nemo import CanaryBackend, NeMoBackend, ParakeetBackend, quiet_nemo
from speakeasy_core.errors import InvalidOptionError, ModelLoadError, TranscriptionError
from speakeasy_core.tempfiles import OWNER_FILE, TempWorkspace
from speakeasy_core.types import TranscribeOptions

from .fixtures.nemo_models import CANARY_KINDS, PARAKEET_KINDS, MakeNemoWav

pytestmark = pytest.mark.nemo

CANARY2_START = ("<|startofcontext|>", "<|startoftranscript|>", "<|emo:undefined|>")
NODIA = "<|nodiarize|>"
TRANSLATE_EN_DE = TranscribeOptions(
    task="translate", language="en", target_language="de", punctuation=False
)


class RecordingWorkspace(TempWorkspace):
    """A real workspace that also keeps the lines of any manifest written through it."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.manifests: list[list[dict[str, Any]]] = []
        self.manifest_paths: list[Path] = []

    def write_manifest(self, entries: Iterable[Mapping[str, Any]]) -> Path:
        path = super().write_manifest(entries)
        self.manifest_paths.append(path)
        lines = path.read_text(encoding="utf-8").splitlines()
        self.manifests.append([json.loads(line) for line in lines])
        return path


def assert_empty(workspace: TempWorkspace) -> None:
    """Nothing of ours is left: no tracked file, only the owner record on disk."""
    assert workspace.files == ()
    assert sorted(p.name for p in workspace.path.iterdir()) == [OWNER_FILE]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[RecordingWorkspace]:
    with RecordingWorkspace(tmp_path / "work") as ws:
        yield ws


@pytest.fixture
def clips(nemo_wav: MakeNemoWav) -> list[PreparedAudio]:
    """Four different clips of different lengths."""
    return [nemo_wav(f"clip{i}.wav", seconds, seed=i) for i, seconds in enumerate([1, 2.5, 0.5, 3])]


def texts(outputs: list[BackendOutput]) -> list[str]:
    return [output.text for output in outputs]


@contextmanager
def raising_in_encoder(backend: NeMoBackend, exc: BaseException) -> Iterator[None]:
    """Make the real model's encoder raise ``exc`` in its forward pass."""

    def hook(*_: object) -> None:
        raise exc

    handle = backend.model.encoder.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


# -- loading -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", PARAKEET_KINDS + CANARY_KINDS)
def test_local_nemo_files_load_through_restore_from(
    kind: str, tiny_nemo_models: dict[str, Path]
) -> None:
    name = "canary" if kind in CANARY_KINDS else "parakeet"
    backend = create_backend(name, model=str(tiny_nemo_models[kind]), device="cpu")
    assert isinstance(backend, Backend)
    assert backend.model_name == str(tiny_nemo_models[kind])
    backend.load()
    backend.load()  # idempotent
    model = backend.model  # type: ignore[attr-defined]
    assert not model.training
    assert next(model.parameters()).device.type == "cpu"
    backend.unload()
    backend.unload()
    assert backend.model is None  # type: ignore[attr-defined]


def test_parakeet_capabilities(backend_for: Callable[[str], NeMoBackend]) -> None:
    caps = backend_for("tdt").capabilities
    assert caps.languages is None
    assert not caps.translation
    assert caps.timestamps
    assert not caps.punctuation_control
    assert caps.max_duration == 300.0


@pytest.mark.parametrize(("kind", "timestamps"), [("canary", False), ("canary2", True)])
def test_canary_capabilities_come_from_the_model(
    kind: str, timestamps: bool, backend_for: Callable[[str], NeMoBackend]
) -> None:
    caps = backend_for(kind).capabilities
    assert caps.languages == caps.target_languages == frozenset({"en", "de", "es", "fr"})
    assert caps.translation
    assert caps.punctuation_control
    assert caps.timestamps is timestamps
    assert caps.max_duration == 40.0


def test_default_models_are_public_checkpoints() -> None:
    assert ParakeetBackend(model=None).model_name == "nvidia/parakeet-tdt-0.6b-v2"
    assert CanaryBackend(model=None).model_name == "nvidia/canary-1b-flash"


@pytest.mark.parametrize(
    "model", ["missing.nemo", "./models/x", "~/x.nemo", "/no/such/model", "a/b/c", r"C:\m\x"]
)
def test_a_missing_path_fails_without_a_hub_lookup(model: str) -> None:
    backend = ParakeetBackend(model=model, device="cpu")
    with pytest.raises(ModelLoadError, match="no such model file") as info:
        backend.load()
    assert model in str(info.value)
    assert info.value.__cause__ is None


def test_an_unknown_pretrained_name_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    # No network in tests: offline mode makes huggingface_hub refuse at once.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    backend = CanaryBackend(model="nvidia/speakeasy-no-such-model", device="cpu")
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="nvidia/speakeasy-no-such-model") as info:
        backend.load()
    assert time.monotonic() - started < 30
    assert info.value.__cause__ is not None
    assert backend.model is None


def test_a_broken_nemo_file_is_a_model_load_error(tmp_path: Path) -> None:
    broken = tmp_path / "broken.nemo"
    broken.write_bytes(b"not a tar archive")
    with pytest.raises(ModelLoadError, match=r"broken\.nemo"):
        ParakeetBackend(model=str(broken), device="cpu").load()


def test_canary_refuses_a_non_multitask_model(tiny_ctc_nemo: Path) -> None:
    with pytest.raises(ModelLoadError, match="EncDecCTCModelBPE is not a Canary"):
        CanaryBackend(model=str(tiny_ctc_nemo), device="cpu").load()


def test_parakeet_refuses_a_canary_model(tiny_canary_nemo: Path) -> None:
    with pytest.raises(ModelLoadError, match="use the 'canary' backend"):
        ParakeetBackend(model=str(tiny_canary_nemo), device="cpu").load()


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "CPU", "", "cuda:0:1"])
def test_an_unknown_device_is_an_invalid_option(device: str) -> None:
    with pytest.raises(InvalidOptionError) as info:
        ParakeetBackend(model=None, device=device)
    assert info.value.option == "device"
    assert info.value.value == device


def test_an_absent_cuda_device_is_a_model_load_error(tiny_ctc_nemo: Path) -> None:
    with pytest.raises(ModelLoadError, match="device cuda:99 is not available"):
        ParakeetBackend(model=str(tiny_ctc_nemo), device="cuda:99").load()


def test_unknown_backend_options_are_refused() -> None:
    with pytest.raises(InvalidOptionError) as info:
        ParakeetBackend(model=None, device="cpu", beam_size=4)
    assert info.value.option == "beam_size"
    with pytest.raises(InvalidOptionError) as info:
        CanaryBackend(model=None, device="cpu", num_threads=0)
    assert info.value.option == "num_threads"


# -- transcription ------------------------------------------------------------------


@pytest.mark.parametrize("kind", PARAKEET_KINDS + CANARY_KINDS)
def test_one_output_per_item_in_input_order(
    kind: str,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    backend = backend_for(kind)
    options = TranscribeOptions()
    outputs = backend.transcribe_batch(clips, options, workspace)
    assert len(outputs) == len(clips)
    assert all(isinstance(o, BackendOutput) and isinstance(o.text, str) for o in outputs)
    assert len(set(texts(outputs))) > 1  # the clips are told apart
    assert texts(backend.transcribe_batch(clips, options, workspace)) == texts(outputs)
    singles = [backend.transcribe_batch([clip], options, workspace)[0].text for clip in clips]
    assert singles == texts(outputs)
    reverse = backend.transcribe_batch(clips[::-1], options, workspace)
    assert texts(reverse)[::-1] == texts(outputs)
    assert workspace.manifests == []  # the batch is collated from arrays
    assert_empty(workspace)


# -- our collate is the model's loader -------------------------------------------------

# Lengths (samples) around Canary's 1 s minimum and odd/even padding, plus longer ones.
EDGE_LENGTHS = (1, 2, 3, 7999, 8000, 12345, 15999, 16000, 16001, 40000)


def model_loader_batch(backend: NeMoBackend, paths: list[Path], fields: dict[str, Any]) -> Any:
    """The batch the model's own transcription dataloader makes of ``paths``."""
    manifest = paths[0].parent / "reference-manifest.json"
    lines = [
        {"audio_filepath": str(path), "duration": sf.info(path).duration, **fields}
        for path in paths
    ]
    manifest.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
    with quiet_nemo(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = backend.model._setup_transcribe_dataloader(
            {"manifest_filepath": str(manifest), "batch_size": len(paths), "num_workers": 0}
        )
        [batch] = list(loader)
    manifest.unlink()
    return batch


def batch_tensors(batch: Any) -> dict[str, Any]:
    """Every tensor of a collated batch, by position (Parakeet) or field (Canary)."""
    import torch

    if isinstance(batch, list):
        return {str(i): t for i, t in enumerate(batch)}
    return {k: v for k, v in vars(batch).items() if isinstance(v, torch.Tensor)}


def assert_same_batch(ours: Any, theirs: Any) -> None:
    import torch

    assert type(ours) is type(theirs)
    mine, reference = batch_tensors(ours), batch_tensors(theirs)
    assert mine.keys() == reference.keys()
    for name, tensor in reference.items():
        assert mine[name].dtype == tensor.dtype, name
        assert torch.equal(mine[name], tensor), name


def write_noise(path: Path, frames: int, seed: int) -> PreparedAudio:
    samples = 0.1 * np.random.default_rng(seed).standard_normal(frames)
    sf.write(path, samples.astype(np.float32), 16000, subtype="PCM_16")
    return PreparedAudio(str(path), sf.read(path, dtype="float32")[0])


@pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning")
@pytest.mark.parametrize(
    ("kind", "options"),
    [
        *((kind, TranscribeOptions()) for kind in PARAKEET_KINDS + CANARY_KINDS),
        ("canary", TRANSLATE_EN_DE),
        ("canary2", TranscribeOptions(language="fr", timestamps=True)),
    ],
)
def test_our_batch_equals_the_models_own_loader_and_so_do_the_texts(
    kind: str,
    options: TranscribeOptions,
    backend_for: Callable[[str], NeMoBackend],
    tmp_path: Path,
    workspace: RecordingWorkspace,
) -> None:
    backend = backend_for(kind)
    items = [write_noise(tmp_path / f"{n}.wav", n, seed=n) for n in EDGE_LENGTHS]
    paths = [Path(item.key) for item in items]
    fields = backend._prompt_fields(options, backend.capabilities)
    ours = backend.collate(items, options)
    assert_same_batch(ours, model_loader_batch(backend, paths, fields))
    # And the texts equal NeMo's own transcribe() on the files.
    if kind in CANARY_KINDS:
        manifest = tmp_path / "raw.json"
        lines = [
            {"audio_filepath": str(p), "duration": sf.info(p).duration, **fields} for p in paths
        ]
        manifest.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")
        with quiet_nemo():
            raw = backend.model.transcribe(str(manifest), batch_size=len(paths), verbose=False)
    else:
        with quiet_nemo():
            raw = backend.model.transcribe(
                [str(p) for p in paths], batch_size=len(paths), verbose=False
            )
    outputs = backend.transcribe_batch(items, options, workspace)
    assert texts(outputs) == [hypothesis.text.strip() for hypothesis in raw]


@settings(max_examples=12)
@given(frames=st.lists(st.integers(1, 24000), min_size=1, max_size=6))
def test_canary_padding_equals_the_models_loader_for_any_lengths(
    frames: list[int], backend_for: Callable[[str], NeMoBackend], tmp_path_factory: Any
) -> None:
    backend = backend_for("canary2")
    directory = tmp_path_factory.mktemp("lengths")
    items = [write_noise(directory / f"{i}.wav", n, seed=i) for i, n in enumerate(frames)]
    options = TranscribeOptions()
    fields = backend._prompt_fields(options, backend.capabilities)
    reference = model_loader_batch(backend, [Path(item.key) for item in items], fields)
    assert_same_batch(backend.collate(items, options), reference)


def test_the_same_file_twice_in_a_batch(
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    batch = [clips[0], clips[1], clips[0]]
    outputs = backend_for("tdt").transcribe_batch(batch, TranscribeOptions(), workspace)
    assert len(outputs) == 3
    assert outputs[0] == outputs[2] != outputs[1]


def test_an_empty_batch_writes_nothing(
    backend_for: Callable[[str], NeMoBackend], workspace: RecordingWorkspace
) -> None:
    assert backend_for("ctc").transcribe_batch([], TranscribeOptions(), workspace) == []
    assert workspace.manifests == []


@pytest.mark.parametrize("kind", PARAKEET_KINDS)
def test_timestamps_are_seconds_within_each_item(
    kind: str,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    backend = backend_for(kind)
    outputs = backend.transcribe_batch(clips, TranscribeOptions(timestamps=True), workspace)
    for clip, output in zip(clips, outputs, strict=True):
        assert output.words
        assert output.segments
        assert " ".join(word.text for word in output.words).split() == output.text.split()
        for span in output.words + output.segments:
            assert 0.0 <= span.start <= span.end <= clip.duration
        assert [w.start for w in output.words] == sorted(w.start for w in output.words)
    # Words end past the first encoder frame (0.08 s): times are seconds, not frames.
    assert max(output.words[-1].end for output in outputs) > 1.0
    plain = backend.transcribe_batch(clips, TranscribeOptions(), workspace)
    assert all(not (o.words or o.segments) for o in plain)
    assert texts(plain) == texts(outputs)


# -- options -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "option"),
    [
        (TranscribeOptions(task="translate", target_language="de"), "task"),
        (TranscribeOptions(punctuation=False), "punctuation"),
    ],
)
def test_parakeet_refuses_what_it_cannot_do(
    options: TranscribeOptions,
    option: str,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    with pytest.raises(InvalidOptionError) as info:
        backend_for("rnnt").transcribe_batch(clips, options, workspace)
    assert info.value.option == option
    assert workspace.manifests == []


@pytest.mark.parametrize(
    ("options", "option", "value"),
    [
        (TranscribeOptions(language="xx"), "language", "xx"),
        (TranscribeOptions(task="translate", target_language="it"), "target_language", "it"),
        (TranscribeOptions(task="translate"), "target_language", None),
        (TranscribeOptions(task="translate", target_language="en"), "target_language", "en"),
        (TranscribeOptions(task="summarize"), "task", "summarize"),  # type: ignore[arg-type]
    ],
)
def test_canary_refuses_options_its_model_cannot_honour(
    options: TranscribeOptions,
    option: str,
    value: object,
    *,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    with pytest.raises(InvalidOptionError) as info:
        backend_for("canary").transcribe_batch(clips, options, workspace)
    assert (info.value.option, info.value.value) == (option, value)
    if option.endswith("language") and value != "en":
        assert "supported: de, en, es, fr" in str(info.value)
    assert workspace.manifests == []


def test_canary1_refuses_timestamps(
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    with pytest.raises(InvalidOptionError) as info:
        backend_for("canary").transcribe_batch(clips, TranscribeOptions(timestamps=True), workspace)
    assert info.value.option == "timestamps"


@pytest.mark.parametrize(
    ("kind", "options", "fields", "prompt"),
    [
        (
            "canary",
            TranscribeOptions(),
            {"source_lang": "en", "target_lang": "en", "pnc": "yes", "taskname": "asr"},
            ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|en|>", "<|pnc|>"],
        ),
        (
            "canary",
            TRANSLATE_EN_DE,
            {"source_lang": "en", "target_lang": "de", "pnc": "no", "taskname": "ast"},
            ["<|startoftranscript|>", "<|en|>", "<|translate|>", "<|de|>", "<|nopnc|>"],
        ),
        (
            "canary2",
            TranscribeOptions(language="fr", timestamps=True),
            {"source_lang": "fr", "target_lang": "fr", "pnc": "yes", "timestamp": "yes"},
            [*CANARY2_START, "<|fr|>", "<|fr|>", "<|pnc|>", "<|noitn|>", "<|timestamp|>", NODIA],
        ),
        (
            "canary2",
            TRANSLATE_EN_DE,
            {"source_lang": "en", "target_lang": "de", "pnc": "no", "timestamp": "no"},
            [
                *CANARY2_START,
                "<|en|>",
                "<|de|>",
                "<|nopnc|>",
                "<|noitn|>",
                "<|notimestamp|>",
                NODIA,
            ],
        ),
    ],
)
def test_canary_options_become_the_prompt_fields_and_tokens(
    kind: str,
    options: TranscribeOptions,
    fields: dict[str, str],
    prompt: list[str],
    *,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    backend = backend_for(kind)
    model = backend.model
    seen: list[Any] = []
    embedding = model.transf_decoder.embedding.token_embedding
    handle = embedding.register_forward_pre_hook(lambda _, args: seen.append(args[0].clone()))
    try:
        outputs = backend.transcribe_batch(clips[:2], options, workspace)
    finally:
        handle.remove()
    made = backend._prompt_fields(options, backend.capabilities)
    assert {k: made[k] for k in fields} == fields
    assert ("taskname" in made) is (kind == "canary")
    # The first decoder step sees the whole prompt, one row per item.
    rows = [model.tokenizer.ids_to_tokens(row.tolist()) for row in seen[0]]
    assert rows == [prompt, prompt]
    assert {output.language for output in outputs} == {options.language or "en"}


def test_canary_options_change_the_output(
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    backend = backend_for("canary")
    plain = backend.transcribe_batch(clips, TranscribeOptions(), workspace)
    translated = backend.transcribe_batch(clips, TRANSLATE_EN_DE, workspace)
    assert texts(plain) != texts(translated)
    assert {o.language for o in plain} == {o.language for o in translated} == {"en"}


def test_canary2_timestamps_stay_within_each_item(
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    options = TranscribeOptions(timestamps=True)
    outputs = backend_for("canary2").transcribe_batch(clips, options, workspace)
    assert len(outputs) == len(clips)
    for clip, output in zip(clips, outputs, strict=True):
        for span in output.words + output.segments:
            assert 0.0 <= span.start <= span.end <= clip.duration


# -- logs and threads ---------------------------------------------------------------


def test_nemo_prints_nothing_and_its_logger_is_restored(
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from nemo.utils import logging as nemo_logging

    backend = backend_for("ctc")
    level = nemo_logging.get_verbosity()
    nemo_logger = logging.getLogger("nemo_logger")
    filters = list(nemo_logger.filters)
    hydra_level = logging.getLogger("hydra").level
    capfd.readouterr()
    backend.transcribe_batch(clips, TranscribeOptions(timestamps=True), workspace)
    out, err = capfd.readouterr()
    assert "NeMo" not in out + err
    assert "Transcribing" not in out + err  # no tqdm bar
    assert nemo_logging.get_verbosity() == level
    assert nemo_logger.filters == filters
    assert logging.getLogger("hydra").level == hydra_level


def test_num_threads_applies_only_during_our_calls(
    tiny_ctc_nemo: Path, clips: list[PreparedAudio], workspace: RecordingWorkspace
) -> None:
    import torch

    backend = ParakeetBackend(model=str(tiny_ctc_nemo), device="cpu", num_threads=1)
    backend.load()
    during: list[int] = []
    handle = backend.model.encoder.register_forward_hook(
        lambda *_: during.append(torch.get_num_threads())
    )
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        backend.transcribe_batch(clips, TranscribeOptions(), workspace)
        assert during == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
        handle.remove()


# -- temp files ----------------------------------------------------------------------


class FileAudit:
    """Records file creations (``open`` for writing, ``mkdtemp``) while active."""

    _WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT
    _installed = False
    _active: list[tuple[str, str]] | None = None

    @classmethod
    def _hook(cls, event: str, args: tuple[Any, ...]) -> None:
        if cls._active is None:
            return
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else False
            if writes or (isinstance(flags, int) and flags & cls._WRITE_FLAGS):
                cls._active.append(("write", os.fsdecode(args[0])))
        elif event == "tempfile.mkdtemp":
            cls._active.append(("mkdtemp", os.fsdecode(args[0])))

    @classmethod
    @contextmanager
    def recording(cls) -> Iterator[list[tuple[str, str]]]:
        if not cls._installed:
            sys.addaudithook(cls._hook)
            cls._installed = True
        events: list[tuple[str, str]] = []
        cls._active = events
        try:
            yield events
        finally:
            cls._active = None


@pytest.mark.parametrize("kind", ["tdt", "canary2"])
def test_nothing_is_written_during_our_calls(
    kind: str,
    *,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system_temp = tmp_path / "system-temp"
    system_temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_temp))
    with FileAudit.recording() as events:
        backend_for(kind).transcribe_batch(clips, TranscribeOptions(), workspace)
    assert [path for what, path in events if what == "write"] == []  # no manifest, no wav
    # transcribe() still enters one TemporaryDirectory per call: empty, and gone after.
    assert [Path(path).parent for what, path in events if what == "mkdtemp"] == [system_temp]
    assert list(system_temp.iterdir()) == []
    assert_empty(workspace)


def _open_files() -> list[str]:
    """Paths this process has open (Linux); NeMo's own path keeps manifest.json open here."""
    fds = Path("/proc/self/fd")
    found = []
    for fd in fds.iterdir() if fds.is_dir() else ():
        with suppress(OSError):  # the fd of the listing itself is gone by now
            found.append(os.readlink(fd))
    return found


@pytest.mark.parametrize("kind", ["ctc", "canary"])
def test_no_manifest_or_audio_is_open_or_left_while_the_model_runs(
    kind: str,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    backend = backend_for(kind)
    during: list[tuple[bool, list[str]]] = []

    def look(*_: object) -> None:
        during.append((bool(workspace.manifest_paths), _open_files()))

    handle = backend.model.encoder.register_forward_hook(look)
    try:
        backend.transcribe_batch(clips, TranscribeOptions(), workspace)
    finally:
        handle.remove()
    [(manifest_written, open_files)] = during  # one forward pass for the batch
    assert not manifest_written
    audio = {clip.key for clip in clips}
    assert not [f for f in open_files if f.endswith(".json") or f in audio]


def test_collating_off_the_model_thread_gives_the_same_texts(
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    backend = backend_for("canary2")
    options = TranscribeOptions(language="de")
    with ThreadPoolExecutor(2) as pool:
        collated = list(pool.map(lambda batch: backend.collate(batch, options), [clips, clips]))
    outputs = [backend.transcribe_collated(clips, each, options) for each in collated]
    assert (
        texts(outputs[0])
        == texts(outputs[1])
        == texts(backend.transcribe_batch(clips, options, workspace))
    )


@pytest.mark.parametrize("kind", ["hybrid", "canary"])
def test_a_model_error_mid_batch_is_chained_and_leaves_nothing(
    kind: str,
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    backend = backend_for(kind)
    boom = RuntimeError("encoder exploded")
    with raising_in_encoder(backend, boom), pytest.raises(TranscriptionError) as info:
        backend.transcribe_batch(clips, TranscribeOptions(), workspace)
    assert info.value.__cause__ is boom
    assert "RuntimeError: encoder exploded" in str(info.value)
    assert_empty(workspace)
    assert not backend.model.training  # NeMo restored the model's state
    assert len(backend.transcribe_batch(clips, TranscribeOptions(), workspace)) == len(clips)


def test_ctrl_c_in_the_forward_pass_propagates_and_leaves_nothing(
    backend_for: Callable[[str], NeMoBackend],
    clips: list[PreparedAudio],
    workspace: RecordingWorkspace,
) -> None:
    backend = backend_for("tdt")
    nemo_logger = logging.getLogger("nemo_logger")
    filters = list(nemo_logger.filters)
    with raising_in_encoder(backend, KeyboardInterrupt()), pytest.raises(KeyboardInterrupt):
        backend.transcribe_batch(clips, TranscribeOptions(), workspace)
    assert_empty(workspace)
    assert nemo_logger.filters == filters
    assert workspace.cleanup().clean
