"""Tiny random-weight NeMo models, built offline, for testing integrations end to end.

Every builder writes a real ``.nemo`` checkpoint (0.7-2 MB) from a Python config: a
sentencepiece BPE tokenizer trained on a few lines, a one-layer FastConformer-style
encoder (d_model 64) and the family's decoder. The models load with
``ASRModel.restore_from`` and run through NeMo's real ``transcribe()``; their weights
are random, so their text is gibberish, but deterministic for a given ``seed``::

    from speakeasy_core.testing.tiny_nemo import build_tiny_ctc

    tiny = build_tiny_ctc(tmp_path)
    backend = ParakeetBackend(model=str(tiny.path), device="cpu")

NeMo, torch and sentencepiece are imported inside the functions, so importing this
module is cheap.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ..backends.nemo import quiet_nemo

__all__ = [
    "TINY_BUILDERS",
    "TinyKind",
    "TinyModel",
    "build_tiny",
    "build_tiny_canary",
    "build_tiny_ctc",
    "build_tiny_hybrid",
    "build_tiny_rnnt",
    "build_tiny_tdt",
]

logger = logging.getLogger(__name__)

TinyKind = Literal["ctc", "rnnt", "tdt", "hybrid", "canary", "canary2"]

_TOKENIZER_TEXT = (
    "the quick brown fox jumps over the lazy dog\n"
    "pack my box with five dozen liquor jugs\n"
    "how vexingly quick daft zebras jump\n"
    "sphinx of black quartz judge my vow\n"
)
_VOCAB_SIZE = 48
_D_MODEL = 64
_N_MELS = 80
# Default inits make a random model emit one token whatever it hears; wider weights make
# its (still meaningless) text depend on the audio, so tests can tell outputs apart.
_WEIGHT_STD = 0.3
_DECODER_LENGTH = 48  # Canary: prompt plus at most ~40 generated tokens
_TDT_DURATIONS = [0, 1, 2, 3, 4]
_CANARY_LANGUAGES = ("en", "de", "es", "fr")
# Special tokens of the canary2 prompt (canary-1b-flash style) beyond the canary ones.
_CANARY2_TOKENS = (
    "<|startofcontext|>",
    "<|emo:undefined|>",
    "<|emo:neutral|>",
    "<|itn|>",
    "<|noitn|>",
    "<|timestamp|>",
    "<|notimestamp|>",
    "<|diarize|>",
    "<|nodiarize|>",
)


@dataclass(frozen=True)
class TinyModel:
    """A built checkpoint: its ``.nemo`` path, family, and (Canary) languages."""

    path: Path
    kind: TinyKind
    languages: tuple[str, ...] = ()


def _train_tokenizer(directory: Path) -> Path:
    """Train a tiny sentencepiece BPE tokenizer; NeMo wants ``vocab.txt`` beside the model."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    directory.mkdir(parents=True, exist_ok=True)
    text = directory / "text.txt"
    text.write_text(_TOKENIZER_TEXT, encoding="utf-8")
    with quiet_nemo():
        create_spt_model(
            str(text),
            vocab_size=_VOCAB_SIZE,
            sample_size=-1,
            do_lower_case=True,
            tokenizer_type="bpe",
            output_dir=str(directory),
        )
    return directory


def _preprocessor() -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": 16000,
        "normalize": "per_feature",
        "window_size": 0.025,
        "window_stride": 0.01,
        "features": _N_MELS,
        "n_fft": 512,
        "dither": 0.0,
        "pad_to": 0,
    }


def _encoder() -> dict[str, Any]:
    """A FastConformer layout (8x depthwise-striding subsampling), one layer deep."""
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": _N_MELS,
        "n_layers": 1,
        "d_model": _D_MODEL,
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "subsampling_conv_channels": 32,
        "ff_expansion_factor": 2,
        "self_attention_model": "rel_pos",
        "n_heads": 4,
        "conv_kernel_size": 9,
        "dropout": 0.0,
        "dropout_pre_encoder": 0.0,
        "dropout_emb": 0.0,
        "dropout_att": 0.0,
    }


def _transducer_parts(*, tdt: bool) -> dict[str, Any]:
    decoding: dict[str, Any] = {"strategy": "greedy_batch", "greedy": {"max_symbols": 5}}
    loss: dict[str, Any] = {"loss_name": "default"}
    joint: dict[str, Any] = {
        "_target_": "nemo.collections.asr.modules.RNNTJoint",
        "jointnet": {"joint_hidden": _D_MODEL, "activation": "relu", "dropout": 0.0},
    }
    if tdt:
        decoding.update(model_type="tdt", durations=_TDT_DURATIONS)
        loss = {"loss_name": "tdt", "tdt_kwargs": {"durations": _TDT_DURATIONS, "sigma": 0.02}}
        joint["num_extra_outputs"] = len(_TDT_DURATIONS)
    return {
        "model_defaults": {"enc_hidden": _D_MODEL, "pred_hidden": _D_MODEL},
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "prednet": {"pred_hidden": _D_MODEL, "pred_rnn_layers": 1, "dropout": 0.0},
        },
        "joint": joint,
        "decoding": decoding,
        "loss": loss,
    }


def _ctc_decoder() -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.ConvASRDecoder",
        "feat_in": _D_MODEL,
        "num_classes": -1,
        "vocabulary": [],
    }


def _save(model_cls: Any, config: Mapping[str, Any], path: Path, seed: int) -> Path:
    import torch
    from omegaconf import OmegaConf

    with quiet_nemo():
        torch.manual_seed(seed)
        model = model_cls(cfg=OmegaConf.create(dict(config)))
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.dim() > 1:
                    parameter.normal_(0.0, _WEIGHT_STD)
        model.eval()
        model.save_to(str(path))
    logger.debug("built %s (%d bytes)", path, path.stat().st_size)
    return path


def _validation_ds() -> dict[str, Any]:
    """Released checkpoints carry one; NeMo's transcribe dataloaders read options from it."""
    return {
        "manifest_filepath": None,
        "sample_rate": 16000,
        "batch_size": 1,
        "shuffle": False,
        "use_start_end_token": False,
    }


def _bpe_config(directory: Path, model: Mapping[str, Any]) -> dict[str, Any]:
    tokenizer = _train_tokenizer(directory / "tokenizer")
    return {
        "sample_rate": 16000,
        "preprocessor": _preprocessor(),
        "encoder": _encoder(),
        "tokenizer": {"dir": str(tokenizer), "type": "bpe"},
        "validation_ds": _validation_ds(),
        **model,
    }


def _prepare(directory: str | Path) -> Path:
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_tiny_ctc(directory: str | Path, *, seed: int = 0) -> TinyModel:
    """Build ``<directory>/tiny-ctc.nemo``: an ``EncDecCTCModelBPE``."""
    from nemo.collections.asr.models import EncDecCTCModelBPE

    root = _prepare(directory)
    config = _bpe_config(
        root, {"decoder": _ctc_decoder(), "decoding": {"strategy": "greedy_batch"}}
    )
    return TinyModel(_save(EncDecCTCModelBPE, config, root / "tiny-ctc.nemo", seed), "ctc")


def build_tiny_rnnt(directory: str | Path, *, seed: int = 0) -> TinyModel:
    """Build ``<directory>/tiny-rnnt.nemo``: an ``EncDecRNNTBPEModel`` (RNN-T)."""
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    root = _prepare(directory)
    config = _bpe_config(root, _transducer_parts(tdt=False))
    return TinyModel(_save(EncDecRNNTBPEModel, config, root / "tiny-rnnt.nemo", seed), "rnnt")


def build_tiny_tdt(directory: str | Path, *, seed: int = 0) -> TinyModel:
    """Build ``<directory>/tiny-tdt.nemo``: a TDT ``EncDecRNNTBPEModel`` (Parakeet-TDT layout)."""
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    root = _prepare(directory)
    config = _bpe_config(root, _transducer_parts(tdt=True))
    return TinyModel(_save(EncDecRNNTBPEModel, config, root / "tiny-tdt.nemo", seed), "tdt")


def build_tiny_hybrid(directory: str | Path, *, seed: int = 0) -> TinyModel:
    """Build ``<directory>/tiny-hybrid.nemo``: an ``EncDecHybridRNNTCTCBPEModel``."""
    from nemo.collections.asr.models import EncDecHybridRNNTCTCBPEModel

    root = _prepare(directory)
    parts = _transducer_parts(tdt=False)
    parts["aux_ctc"] = {
        "ctc_loss_weight": 0.3,
        "decoder": _ctc_decoder(),
        "decoding": {"strategy": "greedy_batch"},
    }
    config = _bpe_config(root, parts)
    path = _save(EncDecHybridRNNTCTCBPEModel, config, root / "tiny-hybrid.nemo", seed)
    return TinyModel(path, "hybrid")


def build_tiny_canary(
    directory: str | Path,
    *,
    prompt_format: Literal["canary", "canary2"] = "canary",
    languages: Sequence[str] = _CANARY_LANGUAGES,
    seed: int = 0,
) -> TinyModel:
    """Build ``<directory>/tiny-<prompt_format>.nemo``: an ``EncDecMultiTaskModel``.

    The tokenizer is Canary's aggregate one: a special-token tokenizer (task, language
    and prompt tokens, built with ``CanaryTokenizer.build_special_tokenizer``) plus one
    BPE tokenizer per language (the same tiny one for each).
    """
    from nemo.collections.asr.models import EncDecMultiTaskModel
    from nemo.collections.common.tokenizers.canary_tokenizer import CanaryTokenizer

    if prompt_format not in ("canary", "canary2"):
        raise ValueError(f"prompt_format must be 'canary' or 'canary2', not {prompt_format!r}")
    if not languages:
        raise ValueError("languages must name at least one language")
    root = _prepare(directory)
    text_tokenizer = _train_tokenizer(root / "tokenizer")
    special_tokens = ["transcribe", "translate", *languages]
    if prompt_format == "canary2":
        special_tokens += _CANARY2_TOKENS
    with quiet_nemo():
        CanaryTokenizer.build_special_tokenizer(special_tokens, root / "spl_tokens")
    langs = {"spl_tokens": {"dir": str(root / "spl_tokens"), "type": "bpe"}}
    langs.update({lang: {"dir": str(text_tokenizer), "type": "bpe"} for lang in languages})
    first = languages[0]
    user_slots: dict[str, str] = {"source_lang": first, "target_lang": first, "pnc": "yes"}
    if prompt_format == "canary":
        user_slots["task"] = "asr"
    else:
        user_slots.update(
            decodercontext="", emotion="<|emo:undefined|>", itn="no", timestamp="no", diarize="no"
        )
    config = {
        "sample_rate": 16000,
        "prompt_format": prompt_format,
        # No forced-alignment model inside; NeMo would also look for one in the file it
        # last restored (a global), which breaks building after any restore_from.
        "restore_timestamps_model": False,
        "prompt_defaults": [{"role": "user", "slots": user_slots}],
        "model_defaults": {
            "asr_enc_hidden": _D_MODEL,
            "lm_enc_hidden": _D_MODEL,
            "lm_dec_hidden": _D_MODEL,
        },
        "preprocessor": _preprocessor(),
        "encoder": _encoder(),
        "transf_decoder": {
            "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
            "model_name": None,
            "pretrained": False,
            "encoder": None,
            "pre_ln_final_layer_norm": True,
            "config_dict": {
                "max_sequence_length": _DECODER_LENGTH,
                "num_token_types": 0,
                "hidden_size": _D_MODEL,
                "inner_size": 2 * _D_MODEL,
                "num_layers": 1,
                "num_attention_heads": 2,
                "pre_ln": True,
                "vocab_size": None,
            },
        },
        "head": {
            "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            "num_layers": 1,
            "activation": "relu",
            "log_softmax": True,
            "hidden_size": _D_MODEL,
            "num_classes": None,
        },
        "tokenizer": {
            "dir": None,
            "type": "agg",
            "langs": langs,
            "custom_tokenizer": {
                "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer",
                "tokenizers": None,
            },
        },
        "decoding": _multitask_decoding(),
        "loss": {
            "_target_": "nemo.collections.common.losses.smoothed_cross_entropy."
            "SmoothedCrossEntropyLoss",
            "label_smoothing": 0.0,
        },
    }
    path = _save(EncDecMultiTaskModel, config, root / f"tiny-{prompt_format}.nemo", seed)
    return TinyModel(path, prompt_format, tuple(languages))


def _multitask_decoding() -> dict[str, Any]:
    """Greedy AED decoding, bounded by the decoder length alone (not by the padded batch).

    A random model rarely emits end-of-text; with the bound independent of the input
    length, an item decodes the same alone as in a batch.
    """
    from nemo.collections.asr.parts.submodules.multitask_decoding import MultiTaskDecodingConfig
    from omegaconf import OmegaConf

    config = OmegaConf.structured(MultiTaskDecodingConfig(strategy="greedy"))
    config.greedy.max_generation_delta = -1
    decoding: dict[str, Any] = OmegaConf.to_container(config)  # type: ignore[assignment]
    return decoding


def _build_canary2(directory: str | Path, *, seed: int = 0) -> TinyModel:
    return build_tiny_canary(directory, prompt_format="canary2", seed=seed)


TINY_BUILDERS: Mapping[TinyKind, Callable[..., TinyModel]] = {
    "ctc": build_tiny_ctc,
    "rnnt": build_tiny_rnnt,
    "tdt": build_tiny_tdt,
    "hybrid": build_tiny_hybrid,
    "canary": build_tiny_canary,
    "canary2": _build_canary2,
}


def build_tiny(kind: TinyKind, directory: str | Path, *, seed: int = 0) -> TinyModel:
    """Build a tiny model of ``kind`` in ``directory`` (see :data:`TINY_BUILDERS`)."""
    try:
        builder = TINY_BUILDERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown tiny model kind {kind!r}; known: {sorted(TINY_BUILDERS)}"
        ) from None
    return builder(directory, seed=seed)
