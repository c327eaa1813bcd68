"""A job's lhotse manifest, written atomically from the results recorded."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ..errors import InvalidOptionError, SpeakEasyError
from ..tempfiles import DEFAULT_POLICY, RetryPolicy, atomic_write_bytes
from ..types import TranscriptionResult
from ._common import MANIFEST_SUFFIXES, as_cutset, iter_cuts, require_lhotse
from ._labels import keep, label

__all__ = ["CutSetReport", "CutSetWriter"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CutSetReport:
    """What :class:`CutSetWriter` wrote: the file, how many cuts, and the ids left out."""

    path: Path
    written: int
    left_out: tuple[str, ...]


class CutSetWriter:
    """A job's lhotse manifest: results recorded as they finish, written whole at the end.

    ``path`` ends in ``.jsonl`` or ``.jsonl.gz``; ``cuts`` is the job's CutSet (lazy
    ones are read again at the end). :meth:`record` each result as it completes;
    :meth:`close` (the end of a ``with`` block, also on an exception) writes every cut
    with all its results, labelled as by :func:`to_cutset`, in the order of ``cuts``,
    atomically (readers see the old manifest or the new one). To resume a job, record
    the results of the earlier runs (e.g. from its journal) before closing: the
    manifest is rewritten complete. Results are held in memory until then.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        cuts: Any,
        *,
        per_supervision: bool = False,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.path = Path(path)
        if not self.path.name.endswith(MANIFEST_SUFFIXES):
            raise InvalidOptionError("path", os.fspath(path), "must end in .jsonl or .jsonl.gz")
        require_lhotse()
        self._cuts = as_cutset(cuts)
        self._per_supervision = per_supervision
        self._policy = policy
        self._results: dict[str, TranscriptionResult] = {}
        self.report: CutSetReport | None = None

    def record(self, result: TranscriptionResult) -> None:
        """Keep ``result`` for the manifest; a success is never replaced by a failure."""
        keep(self._results, result)

    def close(self) -> CutSetReport:
        """Write the manifest now (again, if called twice); returns what was written."""
        buffer = io.BytesIO()
        compress = self.path.name.endswith(".gz")
        written, left_out = 0, []
        with (
            gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) if compress else nullcontext(buffer)
        ) as stream:
            for cut in iter_cuts(self._cuts):
                new = label(cut, self._results.get, self._per_supervision)
                if new is None:
                    left_out.append(cut.id)
                    continue
                # The line format of lhotse's SequentialJsonlWriter.
                line = json.dumps(new.to_dict(), ensure_ascii=False) + "\n"
                stream.write(line.encode("utf-8"))
                written += 1
        atomic_write_bytes(self.path, buffer.getvalue(), policy=self._policy)
        if left_out:
            logger.warning("%s: left out %d cut(s) not fully transcribed", self.path, len(left_out))
        self.report = CutSetReport(self.path, written, tuple(left_out))
        return self.report

    def __enter__(self) -> CutSetWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except SpeakEasyError:
            if exc is None:
                raise
            logger.exception("could not write %s while stopping on an error", self.path)
