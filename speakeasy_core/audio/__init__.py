"""Audio in: probe and decode files, validate arrays, convert to 16 kHz mono, write wavs.

libsndfile (through ``soundfile``) decodes WAV, FLAC, OGG/Vorbis, Opus, MP3 and the
other formats it lists; PyAV (its bundled ffmpeg) decodes what libsndfile cannot:
m4a/mp4/aac, webm/mkv, mov, wma, amr, 3gp and the audio tracks of video files.
Resampling uses soxr (``quality="HQ"``).

:func:`iter_pieces` streams an input: it decodes, downmixes and resamples in blocks
and cuts long audio at quiet points on the fly, so a recording of hours never sits in
memory whole. Every file is opened by Python and handed to the decoder as a file
object, so the handle is closed deterministically and missing files, directories and
permission problems get typed errors; a file that changed after it was probed gets
:class:`~speakeasy_core.errors.InputChangedError`.
"""

from ._base import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    TARGET_SAMPLE_RATE,
    AudioInfo,
)
from ._convert import is_model_ready, to_mono_16k, validate_array, write_wav
from ._cut import QuietCutter
from ._stream import BLOCK_FRAMES, AudioPiece, iter_pieces, load_audio, probe

__all__ = [
    "BLOCK_FRAMES",
    "MAX_CHANNELS",
    "MAX_SAMPLE_RATE",
    "MIN_SAMPLE_RATE",
    "TARGET_SAMPLE_RATE",
    "AudioInfo",
    "AudioPiece",
    "QuietCutter",
    "is_model_ready",
    "iter_pieces",
    "load_audio",
    "probe",
    "to_mono_16k",
    "validate_array",
    "write_wav",
]
