"""The tiny-model builder: every family builds, saves, restores and runs in NeMo itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from speakeasy_core.backends.nemo import quiet_nemo
from speakeasy_core.testing.tiny_nemo import TINY_BUILDERS, build_tiny, build_tiny_canary

from .fixtures.nemo_models import MakeNemoWav

pytestmark = pytest.mark.nemo

EXPECTED_CLASS = {
    "ctc": "EncDecCTCModelBPE",
    "rnnt": "EncDecRNNTBPEModel",
    "tdt": "EncDecRNNTBPEModel",
    "hybrid": "EncDecHybridRNNTCTCBPEModel",
    "canary": "EncDecMultiTaskModel",
    "canary2": "EncDecMultiTaskModel",
}


def _restore(path: Path) -> Any:
    from nemo.collections.asr.models import ASRModel

    with quiet_nemo():
        return ASRModel.restore_from(str(path), map_location="cpu")


def test_every_kind_has_a_builder() -> None:
    assert set(TINY_BUILDERS) == set(EXPECTED_CLASS)


@pytest.mark.parametrize("kind", sorted(EXPECTED_CLASS))
def test_tiny_model_saves_small_and_restores_as_its_family(
    kind: str, tiny_nemo_models: dict[str, Path]
) -> None:
    path = tiny_nemo_models[kind]
    assert path.suffix == ".nemo"
    assert 100_000 < path.stat().st_size < 3_000_000
    model = _restore(path)
    assert type(model).__name__ == EXPECTED_CLASS[kind]
    assert model.encoder.d_model == 64
    assert model.encoder.subsampling_factor == 8


def test_tdt_model_is_a_tdt_transducer(tiny_tdt_nemo: Path) -> None:
    model = _restore(tiny_tdt_nemo)
    assert model.cfg.decoding.model_type == "tdt"
    assert list(model.cfg.decoding.durations) == [0, 1, 2, 3, 4]
    assert model.joint.num_extra_outputs == 5


@pytest.mark.parametrize(("kind", "task_token"), [("canary", True), ("canary2", False)])
def test_canary_models_carry_their_prompt_format_and_language_tokens(
    kind: str, task_token: bool, tiny_nemo_models: dict[str, Path]
) -> None:
    model = _restore(tiny_nemo_models[kind])
    assert model.prompt_format == kind
    specials = set(model.tokenizer.special_tokens)
    assert {"<|en|>", "<|de|>", "<|es|>", "<|fr|>", "<|translate|>", "<|nopnc|>"} <= specials
    assert ("<|startofcontext|>" in specials) is not task_token


def test_canary_builder_takes_the_languages(tmp_path: Path) -> None:
    tiny = build_tiny_canary(tmp_path, languages=("en", "it"))
    assert tiny.languages == ("en", "it")
    model = _restore(tiny.path)
    assert model.tokenizer.langs == ["spl_tokens", "en", "it"]
    assert "<|it|>" in model.tokenizer.special_tokens


def test_builds_are_deterministic_per_seed(tmp_path: Path) -> None:
    import torch

    first = _restore(build_tiny("ctc", tmp_path / "a").path).state_dict()
    again = _restore(build_tiny("ctc", tmp_path / "b").path).state_dict()
    other = _restore(build_tiny("ctc", tmp_path / "c", seed=1).path).state_dict()
    assert first.keys() == again.keys() == other.keys()
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


def test_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown tiny model kind 'whisper'"):
        build_tiny("whisper", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prompt_format"):
        build_tiny_canary(tmp_path, prompt_format="canary3")  # type: ignore[arg-type]


@pytest.mark.filterwarnings("ignore:.*pin_memory:UserWarning")
@pytest.mark.parametrize("kind", sorted(EXPECTED_CLASS))
def test_tiny_models_run_in_nemo_transcribe(
    kind: str, tiny_nemo_models: dict[str, Path], nemo_wav: MakeNemoWav
) -> None:
    model = _restore(tiny_nemo_models[kind])
    audio = [nemo_wav(f"{i}.wav", 1.0 + i / 2, seed=i).key for i in range(2)]
    with quiet_nemo():
        first = model.transcribe(audio, batch_size=2, verbose=False)
        second = model.transcribe(audio, batch_size=2, verbose=False)
    texts = [getattr(each, "text", each) for each in first]
    assert len(texts) == 2
    assert all(isinstance(text, str) and text for text in texts)
    assert texts == [getattr(each, "text", each) for each in second]
