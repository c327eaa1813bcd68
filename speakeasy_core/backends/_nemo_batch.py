"""Batches for NeMo models collated from arrays, equal to what the model's loader builds.

``model.transcribe(paths)`` builds a lhotse dataloader from a config for every call
(``_setup_transcribe_dataloader``, ~30 ms) and reads the audio from files. We collate
the batch ourselves from 16 kHz mono float32 arrays into exactly the tensors that
loader yields for 16 kHz mono files (nemo_toolkit 3.0; the tests compare both, tensor
for tensor, for every model family):

- CTC, RNN-T, TDT, hybrid (``LhotseSpeechToTextBpeDataset``): a list ``[audio (B, T)
  float32 zero-padded on the right, lengths int32, tokens (B, 0) float32, token lengths
  int64]``;
- Canary (``PromptedAudioToTextLhotseDataset`` after ``pad_min_duration=1.0``,
  ``pad_direction="both"``): a ``PromptedAudioToTextMiniBatch`` whose items shorter
  than 1 s are centred in 1 s of silence (the extra sample on the left) and counted as
  1 s long, and whose prompt tokens come from the model's own prompt formatter,
  applied to a cut carrying the same fields a manifest line would.

On a CPU model the features too are computed ahead (:class:`Featurizer`): by a twin
of the model's preprocessor, set as ``transcribe()`` sets the model's own (no dither,
no ``pad_to``), and handed to the model's call in place of running its preprocessor
again (:func:`precomputed`).

Everything here is pure CPU work on new tensors, safe to run in worker threads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import TARGET_SAMPLE_RATE

__all__ = [
    "CanaryPrompts",
    "FeaturesRefused",
    "Featurized",
    "Featurizer",
    "canary_batch",
    "parakeet_batch",
    "precomputed",
]

# PromptedAudioToTextLhotseDataset pads every cut to this many seconds (centred).
_CANARY_MIN_SECONDS = 1.0
# Featurizer: rows of at most this many padded samples go through the preprocessor at once.
_FEATURIZE_SAMPLES = 60 * TARGET_SAMPLE_RATE


def _padded(samples: Sequence[npt.NDArray[np.float32]], offsets: Sequence[int], width: int) -> Any:
    """A zero ``(len(samples), width)`` float32 tensor with each row's samples at its offset."""
    import torch

    audio = torch.zeros((len(samples), width), dtype=torch.float32)
    for row, (item, offset) in enumerate(zip(samples, offsets, strict=True)):
        audio[row, offset : offset + len(item)] = torch.from_numpy(item)
    return audio


def parakeet_batch(samples: Sequence[npt.NDArray[np.float32]]) -> list[Any]:
    """``[audio, audio_lens, tokens, token_lens]`` as ``LhotseSpeechToTextBpeDataset`` gives."""
    import torch

    lengths = [len(item) for item in samples]
    size = len(samples)
    return [
        _padded(samples, [0] * size, max(lengths, default=0)),
        torch.tensor(lengths, dtype=torch.int32),
        torch.zeros((size, 0), dtype=torch.float32),
        torch.zeros(size, dtype=torch.int64),
    ]


class CanaryPrompts:
    """The model's prompt tokens for a set of manifest fields, computed once per set.

    Thread-safe: prefetch workers share one instance per loaded model.
    """

    def __init__(self, model: Any) -> None:
        self._formatter = model.prompt
        self._pad_id = int(model.tokenizer.pad_id)
        self._cache: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
        self._lock = threading.Lock()

    @property
    def pad_id(self) -> int:
        return self._pad_id

    def tokens(self, fields: Mapping[str, str]) -> dict[str, Any]:
        """``input_ids``, ``context_ids`` and ``answer_ids`` for an item with ``fields``."""
        key = tuple(sorted(fields.items()))
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._format(dict(fields))
            return self._cache[key]

    def _format(self, fields: dict[str, str]) -> dict[str, Any]:
        from lhotse import MonoCut, SupervisionSegment
        from nemo.collections.common.data import apply_prompt_format_fn

        # The cut NeMo's manifest reader (LazyNeMoIterator) makes of a line without text,
        # with text_field "answer" and lang_field "target_lang"; no audio is needed.
        cut = MonoCut(id="prompt", start=0.0, duration=_CANARY_MIN_SECONDS, channel=0)
        cut.supervisions.append(
            SupervisionSegment(
                id="prompt",
                recording_id="prompt",
                start=0.0,
                duration=_CANARY_MIN_SECONDS,
                channel=0,
                text=None,
                language=fields.get("target_lang"),
            )
        )
        cut.custom = fields
        formatted = apply_prompt_format_fn(cut, self._formatter)
        return {name: formatted[name] for name in ("input_ids", "context_ids", "answer_ids")}


def _tokens(rows: Sequence[Any], pad_id: int) -> tuple[Any, Any]:
    import torch
    from lhotse.dataset.collation import collate_vectors

    tensors = [torch.as_tensor(row) for row in rows]
    lengths = torch.tensor([t.size(0) for t in tensors], dtype=torch.long)
    return collate_vectors(tensors, padding_value=pad_id), lengths


def canary_batch(
    samples: Sequence[npt.NDArray[np.float32]],
    keys: Sequence[str],
    fields: Mapping[str, str],
    prompts: CanaryPrompts,
) -> Any:
    """A ``PromptedAudioToTextMiniBatch`` as Canary's transcription loader gives.

    ``cuts`` holds one audio-less cut per item, named by ``keys`` (NeMo reads only their
    ids, for timestamps).
    """
    import torch
    from lhotse import CutSet, MonoCut
    from nemo.collections.asr.data.audio_to_text_lhotse_prompted import (
        PromptedAudioToTextMiniBatch,
    )

    minimum = round(_CANARY_MIN_SECONDS * TARGET_SAMPLE_RATE)
    lengths = [max(len(item), minimum) for item in samples]
    # lhotse's pad(direction="both") puts the odd sample of padding on the left.
    offsets = [(length - len(item) + 1) // 2 for item, length in zip(samples, lengths, strict=True)]
    tokens = prompts.tokens(fields)
    size = len(samples)
    transcript, transcript_lens = _tokens([tokens["answer_ids"]] * size, prompts.pad_id)
    prompt, prompt_lens = _tokens([tokens["context_ids"]] * size, prompts.pad_id)
    full, full_lens = _tokens([tokens["input_ids"]] * size, prompts.pad_id)
    cuts = CutSet(
        [
            MonoCut(id=key, start=0.0, duration=length / TARGET_SAMPLE_RATE, channel=0)
            for key, length in zip(keys, lengths, strict=True)
        ]
    )
    return PromptedAudioToTextMiniBatch(
        audio=_padded(samples, offsets, max(lengths, default=0)),
        audio_lens=torch.tensor(lengths, dtype=torch.int32),
        transcript=transcript,
        transcript_lens=transcript_lens,
        prompt=prompt,
        prompt_lens=prompt_lens,
        prompted_transcript=full,
        prompted_transcript_lens=full_lens,
        cuts=cuts,
    )


def _audio_of(batch: Any) -> tuple[Any, Any]:
    """The audio tensor and lengths of a batch from :func:`parakeet_batch` or
    :func:`canary_batch`."""
    if isinstance(batch, list):
        return batch[0], batch[1]
    return batch.audio, batch.audio_lens


def _without_audio(batch: Any) -> Any:
    """``batch`` with its audio replaced by zeros of the same shape that take no memory
    (one element, expanded): once features exist, the model reads only its shape."""
    audio, _ = _audio_of(batch)
    placeholder = audio.new_zeros(()).expand(audio.shape)
    if isinstance(batch, list):
        return [placeholder, *batch[1:]]
    return dataclasses.replace(batch, audio=placeholder)


@dataclass(frozen=True, eq=False)
class Featurized:
    """A collated ``batch`` with its features, as the model's preprocessor gives them;
    the batch's audio is a placeholder (see :func:`precomputed`)."""

    batch: Any
    features: Any
    lengths: Any


class Featurizer:
    """Computes a batch's features with a twin of ``model``'s preprocessor: built anew
    from the model's config, with its state, set as ``transcribe()`` sets the model's
    own (``dither`` 0, ``pad_to`` 0); thread-safe.

    A twin, because ``transcribe()`` changes and restores the model's own settings
    while it runs, and workers featurize meanwhile. Not a deep copy: NeMo's filterbank
    keeps a wrapper of its own bound ``forward`` on the instance, which a copy would
    share with the original.
    """

    def __init__(self, model: Any) -> None:
        preprocessor = model.from_config_dict(model.cfg.preprocessor)
        preprocessor.load_state_dict(model.preprocessor.state_dict())
        preprocessor.eval()
        featurizer = getattr(preprocessor, "featurizer", None)
        for name, value in (("dither", 0.0), ("pad_to", 0)):
            if hasattr(featurizer, name):
                setattr(featurizer, name, value)
        self._preprocessor = preprocessor

    def __call__(self, batch: Any) -> Featurized:
        """The batch's features, computed a few rows at a time: every row is computed on
        its own (the same values), and the spectrogram's intermediates, several times
        the audio's size, stay bounded while the model runs meanwhile."""
        import torch

        audio, lengths = _audio_of(batch)
        rows = max(1, _FEATURIZE_SAMPLES // max(1, audio.shape[-1]))
        parts = []
        with torch.inference_mode():
            for start in range(0, audio.shape[0], rows):
                part = slice(start, start + rows)
                parts.append(self._preprocessor(input_signal=audio[part], length=lengths[part]))
        features, feature_lengths = (
            torch.cat(column) if len(parts) > 1 else column[0]
            for column in zip(*parts, strict=True)
        )
        return Featurized(_without_audio(batch), features, feature_lengths)


class FeaturesRefused(RuntimeError):
    """The model did not take the features computed ahead (see :func:`precomputed`)."""


@contextlib.contextmanager
def precomputed(model: Any, featurized: Featurized) -> Iterator[Any]:
    """While it lasts, ``model``'s preprocessor answers the batch's (placeholder) audio
    with its features instead of computing them. Yields the batch to call the model on.

    Any other input raises :class:`FeaturesRefused`, never computed from the
    placeholder; the backend then runs the batch again, collated anew.
    """
    preprocessor = model.preprocessor
    audio, _ = _audio_of(featurized.batch)

    def forward(*, input_signal: Any, length: Any) -> Any:
        if input_signal is not audio:
            raise FeaturesRefused("the model's preprocessor got other audio than the batch's")
        return featurized.features, featurized.lengths

    preprocessor.forward = forward
    try:
        yield featurized.batch
    finally:
        del preprocessor.forward
