"""Batch jobs on a Ray cluster, with the guarantees of the local job::

    spec = TranscriberSpec("parakeet", "/shared/parakeet-tdt-0.6b-v2.nemo", batch_size=16)
    with ray_session("auto"):
        summary = run_ray_job(spec, expand_inputs(["/shared/audio"]), "/shared/out",
                              pool=RayPool(actors=8))

How a job runs. First one Ray task loads the model (:func:`probe`): a bad model or
option fails there with its typed error, and the task returns the job's journal
header, so the driver (this process) never loads the model. The driver opens the
journal and drops the inputs it already holds (resume), exactly as
:func:`~speakeasy_core.job.run_job` does, and turns the rest into a Ray Dataset of
``(index, path)`` rows. ``map_batches`` hands
batches of rows to a pool of actors; each actor holds one loaded
:class:`~speakeasy_core.Transcriber` built from the picklable :class:`TranscriberSpec`
(one GPU per actor where the cluster has GPUs) and runs each batch through the same
batch engine as the local path, so a bad file becomes a per-file error in its row and
never fails the batch. The driver streams the rows back as they finish, drops repeats
(Ray reruns the tasks of an actor that died, which can redo finished inputs) and writes
each result through the local job's :class:`~speakeasy_core.job.JobRecorder`: the same
output files, journal and summary. An input whose row never comes back is recorded as
failed, so every input is in the journal exactly once, and a resumed run retries it.

Temp files. Every actor call works in its own
:class:`~speakeasy_core.tempfiles.TempWorkspace`, removed when the call returns. An actor
killed mid-call (a lost node, say) leaves its workspace behind; :func:`sweep_stale`
removes it: the driver sweeps its own machine when the job ends, and every
:meth:`Transcriber.load <speakeasy_core.Transcriber.load>` sweeps the node it runs on.

Ray is imported only inside the functions; it comes with the ``ray`` extra.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .backends.base import Capabilities
from .errors import BackendError, BackendUnavailableError, InvalidOptionError, TranscriptionError
from .job import JobInput, JobRecorder, JobSummary, job_header
from .progress import (
    LegacyProgressCallback,
    ProgressCallback,
    ProgressTracker,
    ShowProgress,
    open_reporter,
    warn_if_legacy,
)
from .tempfiles import sweep_stale
from .transcriber import DEFAULT_BATCH_DURATION, Transcriber
from .types import TranscribeOptions, TranscriptionResult, failed

if TYPE_CHECKING:
    import pyarrow as pa
    from ray.data import Dataset

__all__ = [
    "RESULT_COLUMNS",
    "RayPool",
    "TranscriberSpec",
    "probe",
    "ray_session",
    "result_of",
    "run_ray_job",
    "transcribe_dataset",
]

logger = logging.getLogger(__name__)

RESULT_COLUMNS = ("transcript", "error", "result")
"""Columns :func:`transcribe_dataset` adds: the text, the error message (null when the
input succeeded) and the whole :class:`TranscriptionResult` as JSON (see :func:`result_of`)."""

_INSTALL_HINT = "Ray is not installed; pip install 'speakeasy_core[ray]'"


@dataclass(frozen=True)
class TranscriberSpec:
    """Picklable settings of a :class:`~speakeasy_core.Transcriber`, for each actor to
    build its own from; the arguments mean what they mean there."""

    backend: str | None = None
    model: str | None = None
    device: str = "auto"
    batch_size: int = 16
    batch_duration: float | None = DEFAULT_BATCH_DURATION
    chunk_duration: float | None = None
    backend_options: Mapping[str, Any] = field(default_factory=dict)
    workspace_root: str | None = None
    num_workers: int | None = None
    audio_stream: int | None = None
    options: TranscribeOptions = field(default_factory=TranscribeOptions)

    def build(self, *, show_progress: ShowProgress = False) -> Transcriber:
        """A new Transcriber with these settings."""
        return Transcriber(
            self.backend,
            self.model,
            device=self.device,
            batch_size=self.batch_size,
            batch_duration=self.batch_duration,
            chunk_duration=self.chunk_duration,
            backend_options=self.backend_options,
            workspace_root=self.workspace_root,
            num_workers=self.num_workers,
            audio_stream=self.audio_stream,
            show_progress=show_progress,
            **self.options.to_dict(),
        )


@dataclass(frozen=True)
class RayPool:
    """The actors that transcribe a job, and what each one reserves on the cluster.

    ``num_gpus`` per actor: None means one where the cluster has GPUs, else none (a
    fraction lets actors share a GPU). ``num_cpus`` per actor: Ray runs an actor's torch
    with that many threads. ``inputs_per_call``: rows per actor call; the actor sorts
    them by duration into model batches. None: four model batches' worth (a smaller
    job is split evenly over the actors).
    """

    actors: int = 1
    num_gpus: float | None = None
    num_cpus: float = 1.0
    inputs_per_call: int | None = None

    def __post_init__(self) -> None:
        if self.actors < 1:
            raise InvalidOptionError("actors", self.actors, "must be at least 1")
        if self.num_gpus is not None and self.num_gpus < 0:
            raise InvalidOptionError("num_gpus", self.num_gpus, "must not be negative")
        if not self.num_cpus > 0:
            raise InvalidOptionError("num_cpus", self.num_cpus, "must be positive")
        if self.inputs_per_call is not None and self.inputs_per_call < 1:
            raise InvalidOptionError("inputs_per_call", self.inputs_per_call, "must be at least 1")

    def call_size(self, spec: TranscriberSpec) -> int:
        """Rows per actor call for ``spec`` (resolves ``inputs_per_call=None``)."""
        return self.inputs_per_call or 4 * spec.batch_size

    def gpus(self) -> float:
        """GPUs per actor on the connected cluster (resolves ``num_gpus=None``)."""
        import ray

        if self.num_gpus is not None:
            return self.num_gpus
        resources: dict[str, float] = ray.cluster_resources()  # type: ignore[no-untyped-call]
        return 1.0 if resources.get("GPU", 0) > 0 else 0.0


def _require_ray() -> None:
    try:
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailableError(_INSTALL_HINT) from exc


@contextmanager
def ray_session(address: str | None = None, *, show_progress: bool = True) -> Iterator[None]:
    """Connect this process to a Ray cluster for the block, unless it already is.

    ``address``: ``"auto"`` or ``"host:6379"`` for a cluster started with ``ray start``;
    None: the one in ``RAY_ADDRESS``, else the last one started on this machine, else a
    new local one (stopped at the end). ``show_progress``: Ray Data's progress bars.
    """
    _require_ray()
    import ray
    import ray.data

    ray.data.DataContext.get_current().enable_progress_bars = show_progress
    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=address)
    except ConnectionError as exc:
        raise BackendError(f"cannot connect to the Ray cluster at {address}: {exc}") from exc
    try:
        yield
    finally:
        ray.shutdown()


def _describe(spec: TranscriberSpec) -> tuple[dict[str, object], Capabilities]:
    with spec.build() as transcriber:
        return job_header(transcriber), transcriber.capabilities


def _describe_on_cluster(
    spec: TranscriberSpec, pool: RayPool
) -> tuple[dict[str, object], Capabilities]:
    """The job header and capabilities of ``spec``, from a task with an actor's
    resources; raises the task's own error (ModelLoadError...) if it fails."""
    import ray

    task = ray.remote(_describe).options(num_cpus=pool.num_cpus, num_gpus=pool.gpus())
    try:
        described: tuple[dict[str, object], Capabilities] = ray.get(task.remote(spec))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from None
        raise
    return described


def probe(spec: TranscriberSpec, pool: RayPool | None = None) -> Capabilities:
    """Load the model once on the cluster, with an actor's resources, and return what
    it can do; a bad model or option raises the same typed error as locally."""
    _require_ray()
    return _describe_on_cluster(spec, pool or RayPool())[1]


class _TranscriberActor:
    """One actor of the pool: a loaded Transcriber; each call transcribes a batch of rows."""

    def __init__(self, spec: TranscriberSpec, path_column: str) -> None:
        self._transcriber = spec.build().load()
        self._path_column = path_column

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        paths = batch.column(self._path_column).to_pylist()
        results = self._transcriber.transcribe_batch(paths)
        columns = {
            "transcript": [result.text for result in results],
            "error": [result.error for result in results],
            "result": [json.dumps(result.to_dict()) for result in results],
        }
        batch = batch.drop_columns([name for name in columns if name in batch.column_names])
        for name, values in columns.items():
            batch = batch.append_column(name, pa.array(values, pa.string()))
        return batch


def transcribe_dataset(
    dataset: Dataset,
    spec: TranscriberSpec,
    *,
    path_column: str = "path",
    pool: RayPool | None = None,
) -> Dataset:
    """``dataset`` with :data:`RESULT_COLUMNS` added: each row's audio file transcribed.

    Lazy, like every Dataset transform; rows come out in completion order, so sort
    or join on a column of your own if order matters. ``path_column`` holds the audio
    paths, which every node must be able to read: a NeMo manifest read with
    ``ray.data.read_json`` works with ``path_column="audio_filepath"``. Actors share
    the work block by block, so give the dataset at least as many blocks as actors
    (``override_num_blocks=`` when reading, or ``repartition``). A failed input gets
    its error in its row; the dataset itself fails only if the model cannot load.
    """
    _require_ray()
    import ray.data

    pool = pool or RayPool()
    return dataset.map_batches(
        _TranscriberActor,
        fn_constructor_kwargs={"spec": spec, "path_column": path_column},
        batch_size=pool.call_size(spec),
        batch_format="pyarrow",
        compute=ray.data.ActorPoolStrategy(size=pool.actors),
        udf_modifying_row_count=False,
        # a dead actor is restarted and its tasks rerun, however often that happens
        max_restarts=-1,
        max_task_retries=-1,
        num_cpus=pool.num_cpus,
        num_gpus=pool.gpus(),
    )


def result_of(row: Mapping[str, Any]) -> TranscriptionResult:
    """The :class:`TranscriptionResult` in a row of :func:`transcribe_dataset`'s output."""
    return TranscriptionResult.from_dict(json.loads(row["result"]))


def _record_rows(
    job: JobRecorder,
    todo: Sequence[tuple[str, JobInput]],
    rows: Iterable[Mapping[str, Any]],
    progress: ProgressCallback | None,
) -> None:
    """Record the result in each row for its input (by ``index`` in ``todo``), the first
    one only; then a failure for every input that got no row. ``progress`` counts each
    result's audio as it comes back (the total is reckoned from those so far)."""
    waiting = dict(enumerate(todo))
    tracker = ProgressTracker(progress, len(todo))

    def record(index: int, key: str, item: JobInput, result: TranscriptionResult) -> None:
        job.record(key, item, result)
        if result.ok:
            tracker.probed(index, result.duration)
        tracker.finished(index, ok=result.ok)

    try:
        for row in rows:
            index = int(row["index"])
            entry = waiting.pop(index, None)
            if entry is None:
                logger.info("dropping a repeated result for input %d (a rerun Ray task)", index)
                continue
            record(index, *entry, result_of(row))
        for index in sorted(waiting):
            key, item = waiting.pop(index)
            error = TranscriptionError(f"{item.path}: no result came back from the Ray cluster")
            record(index, key, item, failed(os.fspath(item.path), error))
    finally:
        tracker.close()


def run_ray_job(
    spec: TranscriberSpec,
    inputs: Iterable[JobInput],
    out_dir: str | os.PathLike[str],
    *,
    formats: Sequence[str] = ("txt",),
    resume: bool = False,
    journal_path: str | os.PathLike[str] | None = None,
    pool: RayPool | None = None,
    progress: ProgressCallback | LegacyProgressCallback | None = None,
    show_progress: ShowProgress = False,
) -> JobSummary:
    """:func:`~speakeasy_core.job.run_job` on a Ray cluster; see the module docstring.

    The outputs, journal and summary are those of the local job (one can resume the
    other). The model is first loaded once on the cluster (as :func:`probe` does), so a
    bad model or option fails before the journal is touched; this process never loads
    it, and needs no GPU or model files. ``progress`` gets a
    :class:`~speakeasy_core.Progress` on this process after each recorded result, and
    ``show_progress`` shows it as the Transcriber's does. Input paths must be readable
    at the same path on every node (shared storage); outputs and journal are written here.
    Uses the cluster this process is connected to (see :func:`ray_session`); if there is
    none, Ray connects or starts one as ``ray.init()`` does.
    """
    _require_ray()
    import ray.data

    warn_if_legacy(progress, stacklevel=2)
    pool = pool or RayPool()
    header, _ = _describe_on_cluster(spec, pool)
    with (
        JobRecorder.open(
            header, out_dir, formats=formats, resume=resume, journal_path=journal_path
        ) as job,
        ExitStack() as stack,
    ):
        todo = list(job.pending(inputs))
        if todo:
            rows = [{"index": i, "path": os.fspath(item.path)} for i, (_, item) in enumerate(todo)]
            # A block per actor call, so results stream back call by call and a lost actor
            # has only its calls in flight to redo; a small job is spread over every actor.
            per_call = min(pool.call_size(spec), math.ceil(len(rows) / pool.actors))
            blocks = math.ceil(len(rows) / per_call)
            dataset = ray.data.from_items(rows, override_num_blocks=blocks)
            results = transcribe_dataset(
                dataset, spec, pool=replace(pool, inputs_per_call=per_call)
            )
            reporter = open_reporter(stack, show_progress, progress)
            _record_rows(job, todo, results.iter_rows(), reporter)
    for stale in sweep_stale(spec.workspace_root):
        logger.info("removed the temp workspace of a dead actor: %s", stale)
    return job.summary
