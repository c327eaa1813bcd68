"""NeMo backends: ``parakeet`` (any ``ASRModel``) and ``canary`` (``EncDecMultiTaskModel``).

``model.transcribe()`` given paths (or a manifest) writes its own ``manifest.json`` into
a ``tempfile.TemporaryDirectory`` (nemo_toolkit 3.0:
``TranscriptionMixin.transcribe_generator`` and
``ASRTranscriptionMixin._transcribe_input_manifest_processing``), builds a lhotse
dataloader from a config for every call (~30 ms) and keeps reading the manifest lazily
while the model runs, so a failing forward pass leaves it open during cleanup; on
Windows that is ``[WinError 32]``, which also hides the real error. Instead we:

1. collate each batch ourselves from the 16 kHz mono arrays the Transcriber decoded
   (:mod:`._nemo_batch`): exactly the tensors the model's own loader would give for
   those samples, Canary's prompt tokens included; this may run in a worker thread
   while the model runs the previous batch (:meth:`NeMoBackend.collate`);
2. hand ``transcribe()`` a ``DataLoader`` over that one collated batch, so NeMo opens
   no file and writes no manifest of its own.

NeMo still enters an empty ``TemporaryDirectory`` per call (``transcribe_generator``
does so for every input type). Nothing is written into it and nothing holds it open;
an empty directory with no open handle cannot fail with a sharing violation.

NeMo, torch and lhotse are imported lazily; NeMo's log output (and the tqdm bars of
``transcribe()``) is kept out of the caller's logs while we call it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from .._options import check_int
from ..errors import (
    BackendUnavailableError,
    InvalidOptionError,
    ModelLoadError,
    TranscriptionError,
)
from ..types import Segment, TranscribeOptions, Word
from ._nemo_batch import (
    CanaryPrompts,
    FeaturesRefused,
    Featurized,
    Featurizer,
    canary_batch,
    parakeet_batch,
    precomputed,
)
from .base import BackendOutput, Capabilities, PreparedAudio, describe_batch, validate_options

if TYPE_CHECKING:
    from ..tempfiles import TempWorkspace

__all__ = ["CanaryBackend", "NeMoBackend", "ParakeetBackend", "quiet_nemo"]

logger = logging.getLogger(__name__)

_INSTALL_HINT = "install the NeMo extra: pip install speakeasy_core[nemo]"
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
# NeMo's own logger: transcribe() resets its level to WARNING mid-call, so we filter it.
_NEMO_LOGGER = "nemo_logger"
# Python loggers that print noise on NeMo import (telemetry banner) and on restoring
# checkpoints whose config targets a function (hydra logs "Error getting class").
_NOISY_LOGGERS = ("nv_one_logger", "hydra")
# Canary prompts name languages as special tokens such as <|en|>.
_LANGUAGE_TOKEN = re.compile(r"<\|([a-z]{2})\|>")


class _AtLeast(logging.Filter):
    """Pass only records at ``level`` or above (one instance per block: nesting is safe)."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self.level


@contextlib.contextmanager
def quiet_nemo() -> Iterator[None]:
    """Keep NeMo's log output below ERROR (and its dependencies' noise) out of the block.

    Levels and filters are restored afterwards. Raises BackendUnavailableError if NeMo
    is not installed.
    """
    nemo_logger = logging.getLogger(_NEMO_LOGGER)
    noisy = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [each.level for each in noisy]
    for each in noisy:
        each.setLevel(logging.CRITICAL)
    errors_only = _AtLeast(logging.ERROR)
    nemo_logger.addFilter(errors_only)
    try:
        try:
            import nemo.utils  # noqa: F401 - sets up NeMo's logger, prints the banners
        except ImportError as exc:
            raise BackendUnavailableError(
                f"NeMo is not available ({exc}); {_INSTALL_HINT}"
            ) from exc
        yield
    finally:
        nemo_logger.removeFilter(errors_only)
        for each, level in zip(noisy, levels, strict=True):
            each.setLevel(level)


@contextlib.contextmanager
def _torch_threads(count: int | None) -> Iterator[None]:
    """Use ``count`` torch intra-op threads for the block (``None``: leave as is)."""
    import torch

    if count is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _looks_like_path(model: str) -> bool:
    """True for what can only be a local path; ``org/name`` is a hub name."""
    return (
        model.endswith(".nemo")
        or model.startswith((".", "~"))
        or Path(model).is_absolute()
        or "\\" in model
        or model.count("/") > 1
    )


def _as_is(batch: Any) -> Any:
    """Collate function of the outer loader: its items are already collated batches."""
    return batch


def _pinned(collated: Any) -> Any:
    """``collated`` with its tensors in page-locked memory, for fast copies to a GPU."""
    import torch

    if isinstance(collated, torch.Tensor):
        return collated.pin_memory()
    if isinstance(collated, list):
        return [_pinned(item) for item in collated]
    for name, value in vars(collated).items():
        if isinstance(value, torch.Tensor):
            setattr(collated, name, value.pin_memory())
    return collated


def _clamp(value: float, duration: float) -> float:
    return min(max(float(value), 0.0), duration)


class NeMoBackend(ABC):
    """What the NeMo backends share: loading, devices, threads, our collate, the call.

    Subclasses say which models they accept, what they can do, which prompt fields
    the options become, and how ``transcribe()`` is called.
    """

    name: ClassVar[str]
    DEFAULT_MODEL: ClassVar[str]

    def __init__(
        self,
        *,
        model: str | None = None,
        device: str = "auto",
        num_threads: int | None = None,
        **options: Any,
    ) -> None:
        if options:
            option = sorted(options)[0]
            raise InvalidOptionError(
                option, options[option], f"unknown option for the {self.name} backend"
            )
        if not _DEVICE.fullmatch(device):
            raise InvalidOptionError("device", device, "use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        if num_threads is not None:
            check_int("num_threads", num_threads, 1)
        self.model_name = model if model is not None else self.DEFAULT_MODEL
        self.device = device
        self.num_threads = num_threads
        self._model: Any = None
        self._capabilities: Capabilities | None = None
        self._pin = False
        self._featurizer: Featurizer | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model_name!r}, device={self.device!r})"

    @property
    def model(self) -> Any:
        """The loaded NeMo model (``None`` before :meth:`load`), e.g. to add hooks."""
        return self._model

    # -- loading -------------------------------------------------------------------

    def load(self) -> None:
        """Restore a local ``.nemo`` (or extracted folder), else fetch a pretrained name."""
        if self._model is not None:
            return
        with quiet_nemo(), _torch_threads(self.num_threads):
            from nemo.collections.asr.models import ASRModel

            device = self._torch_device()
            model = self._restore(ASRModel, device)
            if not isinstance(model, ASRModel):
                raise ModelLoadError(
                    f"{self.model_name}: {type(model).__name__} is not a NeMo ASR model"
                )
            self._check_model(model)
            model.eval()
            self._capabilities = self._describe(model)
            self._pin = device.type == "cuda"
            # On a GPU the preprocessor is fast where the model is; on a CPU it is a
            # good part of the call, and prefetch workers can do it meanwhile.
            self._featurizer = self._twin_preprocessor(model) if device.type == "cpu" else None
            self._setup(model)
            self._model = model
        logger.info("loaded %s model %s on %s", self.name, self.model_name, device)

    def _twin_preprocessor(self, model: Any) -> Featurizer | None:
        """The featurizer for prefetch workers; None (features in the call) if the
        model's preprocessor cannot be rebuilt from its config."""
        try:
            return Featurizer(model)
        except Exception as exc:
            logger.info("%s: features are computed in the model call: %s", self.model_name, exc)
            return None

    def _restore(self, asr_model: Any, device: Any) -> Any:
        local = Path(self.model_name).expanduser()
        try:
            if local.exists():
                return asr_model.restore_from(str(local), map_location=device)
            if _looks_like_path(self.model_name):
                raise ModelLoadError(f"{self.model_name}: no such model file")
            return asr_model.from_pretrained(self.model_name, map_location=device)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"{self.model_name}: cannot load NeMo model: {type(exc).__name__}: {exc}"
            ) from exc

    def _torch_device(self) -> Any:
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda":
            index = device.index or 0
            if not torch.cuda.is_available() or index >= torch.cuda.device_count():
                raise ModelLoadError(f"{self.model_name}: device {self.device} is not available")
        return device

    def unload(self) -> None:
        """Drop the model and return its device memory."""
        if self._model is None:
            return
        on_cuda = next(self._model.parameters()).is_cuda
        self._model = None
        self._capabilities = None
        self._featurizer = None
        gc.collect()
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    @property
    def capabilities(self) -> Capabilities:
        """What the loaded model supports (loads it if needed)."""
        self.load()
        assert self._capabilities is not None
        return self._capabilities

    # -- transcription -------------------------------------------------------------

    def transcribe_batch(
        self,
        batch: Sequence[PreparedAudio],
        options: TranscribeOptions,
        workspace: TempWorkspace,
    ) -> list[BackendOutput]:
        """One ``transcribe()`` call for ``batch``; outputs in order (``workspace`` is unused).

        Raises InvalidOptionError for options this model cannot honour and
        TranscriptionError (chained from NeMo's exception) when the call fails.
        """
        return self.transcribe_collated(batch, self.collate(batch, options), options)

    def collate(self, batch: Sequence[PreparedAudio], options: TranscribeOptions) -> Any:
        """The batch as the tensors the model's own transcription loader would give.

        Thread-safe; the Transcriber calls it in its prefetch workers. Raises
        InvalidOptionError for options this model cannot honour.
        """
        caps = self.capabilities
        validate_options(options, caps)
        fields = self._prompt_fields(options, caps)
        if not batch:
            return None
        collated = self._collate_arrays(batch, fields)
        if self._pin:
            collated = _pinned(collated)
        return collated

    def featurize(self, collated: Any) -> Any:
        """``collated`` with its features computed, on a CPU model (else as it is).

        Thread-safe; the Transcriber calls it in an idle prefetch worker.
        """
        featurizer = self._featurizer
        if featurizer is None or collated is None or isinstance(collated, Featurized):
            return collated
        return featurizer(collated)

    def transcribe_collated(
        self, batch: Sequence[PreparedAudio], collated: Any, options: TranscribeOptions
    ) -> list[BackendOutput]:
        """Run the model on ``collated`` (from :meth:`collate` for ``batch`` and
        ``options``, or :meth:`featurize` of that)."""
        if not batch:
            return []
        try:
            hypotheses = self._call_model(batch, collated, options)
        except FeaturesRefused as exc:
            logger.warning("%s: %s; computing the features in the call", self.model_name, exc)
            hypotheses = self._call_model(batch, self.collate(batch, options), options)
        if len(hypotheses) != len(batch):
            raise TranscriptionError(
                f"{self.model_name}: NeMo returned {len(hypotheses)} results "
                f"for {len(batch)} inputs"
            )
        return [
            self._output(hypothesis, item, options)
            for hypothesis, item in zip(hypotheses, batch, strict=True)
        ]

    def _call_model(
        self, batch: Sequence[PreparedAudio], collated: Any, options: TranscribeOptions
    ) -> list[Any]:
        """``model.transcribe()`` on the one collated (or featurized) batch."""
        from torch.utils.data import DataLoader

        model = self._model
        with contextlib.ExitStack() as stack:
            if isinstance(collated, Featurized):
                collated = stack.enter_context(precomputed(model, collated))
            # A DataLoader over the one collated batch: NeMo opens no file and writes
            # no manifest. A list is a map-style dataset; torch's stubs only name Dataset.
            loader: DataLoader[Any] = DataLoader(
                [collated],  # type: ignore[arg-type]
                batch_size=None,
                collate_fn=_as_is,
            )
            stack.enter_context(quiet_nemo())
            stack.enter_context(_torch_threads(self.num_threads))
            stack.enter_context(self._inference())
            try:
                return self._transcribe(model, loader, len(batch), options)
            except FeaturesRefused:
                raise
            except Exception as exc:
                raise self._failure(batch, exc) from exc

    @staticmethod
    @contextlib.contextmanager
    def _inference() -> Iterator[None]:
        import torch

        with torch.inference_mode():
            yield

    def _failure(self, batch: Sequence[PreparedAudio], exc: Exception) -> TranscriptionError:
        return TranscriptionError(
            f"{self.model_name}: transcribing {describe_batch(batch)} failed: "
            f"{type(exc).__name__}: {exc}"
        )

    def _output(
        self, hypothesis: Any, item: PreparedAudio, options: TranscribeOptions
    ) -> BackendOutput:
        text = hypothesis if isinstance(hypothesis, str) else hypothesis.text
        words: tuple[Word, ...] = ()
        segments: tuple[Segment, ...] = ()
        stamps = getattr(hypothesis, "timestamp", None)
        if options.timestamps and isinstance(stamps, dict):
            # NeMo converts frame offsets to seconds in 'start'/'end' (process_timestamp_outputs).
            end = item.duration
            words = tuple(
                Word(w["word"], _clamp(w["start"], end), _clamp(w["end"], end))
                for w in stamps.get("word", ())
            )
            segments = tuple(
                Segment(s["segment"], _clamp(s["start"], end), _clamp(s["end"], end))
                for s in stamps.get("segment", ())
            )
        return BackendOutput(
            text=str(text).strip(),
            words=words,
            segments=segments,
            language=self._output_language(options),
        )

    # -- what subclasses define ----------------------------------------------------

    @abstractmethod
    def _check_model(self, model: Any) -> None:
        """Raise ModelLoadError if this backend cannot drive ``model``."""

    @abstractmethod
    def _describe(self, model: Any) -> Capabilities:
        """The capabilities of the loaded ``model``."""

    @abstractmethod
    def _prompt_fields(self, options: TranscribeOptions, caps: Capabilities) -> dict[str, str]:
        """The manifest fields ``options`` become (what a manifest line for NeMo would
        carry); ``options`` passed ``validate_options``; raises InvalidOptionError for
        what only this backend rules out."""

    @abstractmethod
    def _collate_arrays(self, batch: Sequence[PreparedAudio], fields: dict[str, str]) -> Any:
        """The model loader's batch for ``batch`` with prompt ``fields`` (thread-safe)."""

    def _setup(self, model: Any) -> None:  # noqa: B027 - optional hook
        """Prepare what :meth:`_collate_arrays` needs of the just loaded ``model``."""

    @abstractmethod
    def _transcribe(
        self, model: Any, loader: Any, size: int, options: TranscribeOptions
    ) -> list[Any]:
        """Call ``model.transcribe`` on ``loader`` (one batch of ``size``); hypotheses in order."""

    def _output_language(self, options: TranscribeOptions) -> str | None:
        return options.language


class ParakeetBackend(NeMoBackend):
    """Any NeMo ``ASRModel`` but Canary's: CTC, RNN-T, TDT, hybrid RNN-T/CTC (Parakeet).

    Transcription only, punctuation as the model was trained; ``timestamps=True`` gives
    word and segment times. ``language`` is not sent to the model (Parakeet models take
    none) and is only echoed in the output.
    """

    name = "parakeet"
    DEFAULT_MODEL = "nvidia/parakeet-tdt-0.6b-v2"
    # FastConformer attends over the whole input, so memory grows with its square;
    # 5 min (3750 encoder frames) fits a common 8-16 GB GPU or CPU RAM with room to
    # spare (NVIDIA quotes up to 24 min in one pass on an 80 GB A100).
    MAX_DURATION = 300.0

    def _check_model(self, model: Any) -> None:
        from nemo.collections.asr.models import EncDecMultiTaskModel

        if isinstance(model, EncDecMultiTaskModel):
            raise ModelLoadError(
                f"{self.model_name}: a Canary (multitask) model; use the 'canary' backend"
            )

    def _describe(self, model: Any) -> Capabilities:
        return Capabilities(timestamps=True, max_duration=self.MAX_DURATION)

    def _prompt_fields(self, options: TranscribeOptions, caps: Capabilities) -> dict[str, str]:
        return {}  # transcription only, punctuation as trained: Capabilities say so

    def _collate_arrays(self, batch: Sequence[PreparedAudio], fields: dict[str, str]) -> Any:
        return parakeet_batch([item.samples for item in batch])

    def _transcribe(
        self, model: Any, loader: Any, size: int, options: TranscribeOptions
    ) -> list[Any]:
        result = model.transcribe(
            loader,
            batch_size=size,
            # Hypotheses carry the timestamps; without them NeMo skips building them.
            return_hypotheses=options.timestamps,
            verbose=False,
            timestamps=options.timestamps,
        )
        # Hybrid models of older NeMo releases return (best, all) hypotheses.
        return list(result[0] if isinstance(result, tuple) else result)


class CanaryBackend(NeMoBackend):
    """NeMo's ``EncDecMultiTaskModel`` (Canary): transcription and speech translation.

    Options become each item's prompt fields (as in a NeMo manifest): ``language`` ->
    ``source_lang`` (default ``en``), ``target_language`` -> ``target_lang`` (the
    source language when transcribing), ``punctuation`` -> ``pnc`` ``yes``/``no``, the
    task -> ``taskname`` ``asr``/``ast`` (``canary`` prompt format; ``canary2`` infers
    it from the languages), ``timestamps`` -> ``timestamp`` (``canary2``).
    """

    name = "canary"
    DEFAULT_MODEL = "nvidia/canary-1b-flash"
    # Canary is trained on utterances of at most ~40 s; longer inputs are split by the
    # caller (NeMo's own long-audio chunking is off: it needs a single-file call).
    MAX_DURATION = 40.0
    DEFAULT_LANGUAGE = "en"

    def _check_model(self, model: Any) -> None:
        from nemo.collections.asr.models import EncDecMultiTaskModel

        if not isinstance(model, EncDecMultiTaskModel):
            raise ModelLoadError(
                f"{self.model_name}: {type(model).__name__} is not a Canary (multitask) model;"
                " use the 'parakeet' backend"
            )
        if model.prompt_format not in ("canary", "canary2"):
            raise ModelLoadError(
                f"{self.model_name}: prompt format {model.prompt_format!r} is not supported"
            )

    def _describe(self, model: Any) -> Capabilities:
        languages = frozenset(
            match.group(1)
            for token in model.tokenizer.vocab
            if (match := _LANGUAGE_TOKEN.fullmatch(token))
        )
        text_languages = getattr(model.tokenizer, "langs", None)
        if text_languages is not None:  # aggregate tokenizer: one text tokenizer per language
            languages &= {str(lang).split("-")[0] for lang in text_languages}
        return Capabilities(
            languages=languages,
            translation=len(languages) > 1,
            target_languages=languages,
            timestamps=model.prompt_format == "canary2" or model.timestamps_asr_model is not None,
            punctuation_control=True,
            max_duration=self.MAX_DURATION,
        )

    def _setup(self, model: Any) -> None:
        self._prompts = CanaryPrompts(model)

    def _collate_arrays(self, batch: Sequence[PreparedAudio], fields: dict[str, str]) -> Any:
        samples = [item.samples for item in batch]
        return canary_batch(samples, [item.key for item in batch], fields, self._prompts)

    def _source_language(self, options: TranscribeOptions) -> str:
        return options.language or self.DEFAULT_LANGUAGE

    def _output_language(self, options: TranscribeOptions) -> str | None:
        return self._source_language(options)

    def _prompt_fields(self, options: TranscribeOptions, caps: Capabilities) -> dict[str, str]:
        allowed = caps.languages or frozenset()
        supported = f"supported: {', '.join(sorted(allowed))}"
        source = self._source_language(options)
        if source not in allowed:  # only the default can be: validate_options checked the rest
            raise InvalidOptionError("language", options.language, supported)
        target = source
        if options.task == "translate":
            if options.target_language is None:
                raise InvalidOptionError("target_language", None, f"required; {supported}")
            if options.target_language == source:
                raise InvalidOptionError(
                    "target_language",
                    source,
                    "translation needs a language other than the source",
                )
            target = options.target_language
        fields = {
            "source_lang": source,
            "target_lang": target,
            "pnc": "yes" if options.punctuation else "no",
        }
        if self._model.prompt_format == "canary":
            fields["taskname"] = "asr" if options.task == "transcribe" else "ast"
        else:
            # With an external aligner NeMo asks the model for no timestamp tokens itself.
            own = options.timestamps and self._model.timestamps_asr_model is None
            fields["timestamp"] = "yes" if own else "no"
        return fields

    def _transcribe(
        self, model: Any, loader: Any, size: int, options: TranscribeOptions
    ) -> list[Any]:
        from nemo.collections.asr.models.aed_multitask_models import MultiTaskTranscriptionConfig

        config = MultiTaskTranscriptionConfig(
            batch_size=size,
            return_hypotheses=options.timestamps,
            verbose=False,
            enable_chunking=False,
        )
        result = model.transcribe(
            loader, override_config=config, timestamps=options.timestamps or None
        )
        return list(result)
