"""lhotse in and out: transcribe a CutSet cut by cut, write the text back as supervisions.

In: :func:`as_inputs` turns a lhotse ``CutSet`` or ``RecordingSet`` (or single cuts and
recordings) into :class:`CutAudio` inputs for the :class:`~speakeasy_core.Transcriber`,
which calls it on whatever it is given, so ``transcriber.transcribe_batch(cuts)`` works.
Each cut is read over its own offset, duration and channel(s) by lhotse's own
``cut.load_audio()`` (MixedCuts are mixed by lhotse), lazily: a cut's audio is loaded
when the engine prepares it, one cut at a time, and results are keyed by cut id
(``result.source == cut.id``). With ``per_supervision=True`` every supervision of a cut
is transcribed on its own, keyed ``"<cut id>/<supervision id>"``. A cut whose audio
cannot be loaded is a per-cut error (InputNotFoundError or AudioDecodeError naming the
cut and its file), never a crash. :func:`load_manifest` opens a manifest file lazily.

Out: :func:`to_cutset` returns the cuts with new supervisions (text, language; backend,
model and task in ``custom``; word and segment times as lhotse ``AlignmentItem`` s);
:class:`CutSetWriter` writes a job's manifest atomically, resumable from a journal.

lhotse is imported only when it is already loaded or a manifest path is opened, so
this module costs nothing without the ``nemo`` extra.
"""

from ._common import MANIFEST_SUFFIXES, as_cutset, is_lhotse, is_set, supervision_key
from ._inputs import CutAudio, as_inputs, load_manifest
from ._labels import to_cutset
from ._writer import CutSetReport, CutSetWriter

__all__ = [
    "MANIFEST_SUFFIXES",
    "CutAudio",
    "CutSetReport",
    "CutSetWriter",
    "as_cutset",
    "as_inputs",
    "is_lhotse",
    "is_set",
    "load_manifest",
    "supervision_key",
    "to_cutset",
]
