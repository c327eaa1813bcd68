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
    "build_xl_tdt",
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


def _train_tokenizer(
    directory: Path, *, text: str = _TOKENIZER_TEXT, vocab_size: int = _VOCAB_SIZE
) -> Path:
    """Train a sentencepiece BPE tokenizer; NeMo wants ``vocab.txt`` beside the model."""
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    directory.mkdir(parents=True, exist_ok=True)
    corpus = directory / "text.txt"
    corpus.write_text(text, encoding="utf-8")
    with quiet_nemo():
        create_spt_model(
            str(corpus),
            vocab_size=vocab_size,
            sample_size=-1,
            do_lower_case=True,
            tokenizer_type="bpe",
            output_dir=str(directory),
        )
    return directory


def _preprocessor(features: int = _N_MELS) -> dict[str, Any]:
    return {
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": 16000,
        "normalize": "per_feature",
        "window_size": 0.025,
        "window_stride": 0.01,
        "features": features,
        "n_fft": 512,
        "dither": 0.0,
        "pad_to": 0,
    }


def _encoder(
    *,
    features: int = _N_MELS,
    layers: int = 1,
    d_model: int = _D_MODEL,
    conv_channels: int = 32,
    ff_expansion: int = 2,
    heads: int = 4,
) -> dict[str, Any]:
    """A FastConformer layout (8x depthwise-striding subsampling), one layer deep by default."""
    return {
        "_target_": "nemo.collections.asr.modules.ConformerEncoder",
        "feat_in": features,
        "n_layers": layers,
        "d_model": d_model,
        "subsampling": "dw_striding",
        "subsampling_factor": 8,
        "subsampling_conv_channels": conv_channels,
        "ff_expansion_factor": ff_expansion,
        "self_attention_model": "rel_pos",
        "n_heads": heads,
        "conv_kernel_size": 9,
        "dropout": 0.0,
        "dropout_pre_encoder": 0.0,
        "dropout_emb": 0.0,
        "dropout_att": 0.0,
    }


def _transducer_parts(
    *, tdt: bool, encoder: int = _D_MODEL, hidden: int = _D_MODEL, rnn_layers: int = 1
) -> dict[str, Any]:
    decoding: dict[str, Any] = {"strategy": "greedy_batch", "greedy": {"max_symbols": 5}}
    loss: dict[str, Any] = {"loss_name": "default"}
    joint: dict[str, Any] = {
        "_target_": "nemo.collections.asr.modules.RNNTJoint",
        "jointnet": {"joint_hidden": hidden, "activation": "relu", "dropout": 0.0},
    }
    if tdt:
        decoding.update(model_type="tdt", durations=_TDT_DURATIONS)
        loss = {"loss_name": "tdt", "tdt_kwargs": {"durations": _TDT_DURATIONS, "sigma": 0.02}}
        joint["num_extra_outputs"] = len(_TDT_DURATIONS)
    return {
        "model_defaults": {"enc_hidden": encoder, "pred_hidden": hidden},
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "prednet": {"pred_hidden": hidden, "pred_rnn_layers": rnn_layers, "dropout": 0.0},
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


def _save(
    model_cls: Any, config: Mapping[str, Any], path: Path, seed: int, *, widen: bool = True
) -> Path:
    import torch
    from omegaconf import OmegaConf

    with quiet_nemo():
        torch.manual_seed(seed)
        model = model_cls(cfg=OmegaConf.create(dict(config)))
        with torch.no_grad():
            for parameter in model.parameters():
                if widen and parameter.dim() > 1:
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


def _bpe_config(
    directory: Path,
    model: Mapping[str, Any],
    *,
    tokenizer: Path | None = None,
    preprocessor: Mapping[str, Any] | None = None,
    encoder: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "sample_rate": 16000,
        "preprocessor": preprocessor or _preprocessor(),
        "encoder": encoder or _encoder(),
        "tokenizer": {
            "dir": str(tokenizer or _train_tokenizer(directory / "tokenizer")),
            "type": "bpe",
        },
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


# parakeet-tdt-0.6b-v2 (FastConformer XL + TDT): 128 mels, 24 layers of d_model 1024 with 8
# heads and 4x feed-forward, 256 subsampling channels, a 2-layer 640 LSTM prediction
# network, a 640 joint and 1024 BPE pieces.
_XL = {"features": 128, "layers": 24, "d_model": 1024, "conv_channels": 256, "heads": 8}
_XL_VOCAB = 1024
_XL_PRED = 640


def _xl_tokenizer_text(seed: int) -> str:
    """Pseudo-words enough for a 1024-piece BPE vocabulary (deterministic)."""
    import random

    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    words = ["".join(rng.choices(letters, k=rng.randint(2, 9))) for _ in range(6000)]
    return "\n".join(" ".join(words[i : i + 12]) for i in range(0, len(words), 12)) + "\n"


def build_xl_tdt(directory: str | Path, *, seed: int = 0) -> TinyModel:
    """Build ``<directory>/xl-tdt.nemo``: parakeet-tdt-0.6b-v2's architecture, random weights.

    About 600 M parameters (a 2.4 GB file, as much memory to build and again to load):
    for measuring the library against raw NeMo at a realistic compute cost. The
    weights keep NeMo's default initialisation, so the text is meaningless.
    """
    from nemo.collections.asr.models import EncDecRNNTBPEModel

    root = _prepare(directory)
    tokenizer = _train_tokenizer(
        root / "tokenizer", text=_xl_tokenizer_text(seed), vocab_size=_XL_VOCAB
    )
    parts = _transducer_parts(tdt=True, encoder=1024, hidden=_XL_PRED, rnn_layers=2)
    config = _bpe_config(
        root,
        parts,
        tokenizer=tokenizer,
        preprocessor=_preprocessor(features=128),
        encoder=_encoder(ff_expansion=4, **_XL),
    )
    path = _save(EncDecRNNTBPEModel, config, root / "xl-tdt.nemo", seed, widen=False)
    return TinyModel(path, "tdt")


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
