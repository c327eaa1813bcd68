"""The batch engine: stream inputs in windows, prepare batches ahead, isolate failures.

Data flow::

    plan      probe a window of inputs (in workers); sort those up to the backend's
              max_duration by duration and cut them into batches of at most
              batch_size items and batch_duration seconds padded; longer inputs
              become streams of pieces (errors here are per input)
    prepare   in prefetch workers, while the model runs: decode, downmix, resample
              and cut each batch's inputs (speakeasy_core.audio.iter_pieces), and
              let the backend collate them (CollatingBackend); its featurize step
              (FeaturizingBackend) runs in an idle worker, else in the model's thread
    run       one backend call per batch, in the calling thread; a failing call is
              split in halves until the failing piece is found
    merge     pieces back into one output per input, yielded as soon as the input is
              complete (completion order; each outcome carries its input index)

Memory is bounded: two windows of inputs' metadata, and the batches being prepared or
waiting (the prefetch bound). No audio is written to disk: backends get arrays.
"""

from ..progress import ProgressCallback
from ._engine import BatchEngine
from ._inputs import AudioArray, AudioInput, ItemOutcome, label_of
from ._plan import plan_batches
from ._prefetch import THREAD_PREFIX

__all__ = [
    "THREAD_PREFIX",
    "AudioArray",
    "AudioInput",
    "BatchEngine",
    "ItemOutcome",
    "ProgressCallback",
    "label_of",
    "plan_batches",
]
