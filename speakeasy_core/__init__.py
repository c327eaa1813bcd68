"""speakeasy_core: offline speech-to-text on NVIDIA NeMo, safe for batch jobs on any OS.

>>> from speakeasy_core import Transcriber
>>> with Transcriber("parakeet", "my_model.nemo") as t:  # doctest: +SKIP
...     print(t.transcribe("meeting.wav").text)
"""

from .backends import (
    Backend,
    BackendOutput,
    Capabilities,
    PreparedAudio,
    available_backends,
    register_backend,
)
from .batch import AudioArray, AudioInput
from .cuts import CutAudio, CutSetWriter, to_cutset
from .errors import (
    AudioDecodeError,
    BackendError,
    BackendUnavailableError,
    EmptyAudioError,
    InputChangedError,
    InputError,
    InputNotFoundError,
    Interrupted,
    InvalidOptionError,
    JobLockedError,
    JournalError,
    JournalWriteError,
    ModelLoadError,
    OutputError,
    SpeakEasyError,
    TempFileError,
    TempRootError,
    TranscriptionError,
    UnknownBackendError,
)
from .manifest import ManifestEntry, read_manifest
from .progress import Progress
from .transcriber import Transcriber
from .types import Segment, TranscribeOptions, TranscriptionResult, Word

__version__ = "0.1.0"

__all__ = [
    "AudioArray",
    "AudioDecodeError",
    "AudioInput",
    "Backend",
    "BackendError",
    "BackendOutput",
    "BackendUnavailableError",
    "Capabilities",
    "CutAudio",
    "CutSetWriter",
    "EmptyAudioError",
    "InputChangedError",
    "InputError",
    "InputNotFoundError",
    "Interrupted",
    "InvalidOptionError",
    "JobLockedError",
    "JournalError",
    "JournalWriteError",
    "ManifestEntry",
    "ModelLoadError",
    "OutputError",
    "PreparedAudio",
    "Progress",
    "Segment",
    "SpeakEasyError",
    "TempFileError",
    "TempRootError",
    "TranscribeOptions",
    "Transcriber",
    "TranscriptionError",
    "TranscriptionResult",
    "UnknownBackendError",
    "Word",
    "available_backends",
    "read_manifest",
    "register_backend",
    "to_cutset",
]
