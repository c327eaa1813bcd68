"""lhotse out: results as SupervisionSegments on the cuts they came from."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..types import TranscriptionResult
from ._common import as_cutset, is_lhotse, iter_cuts, require_lhotse, supervision_key

if TYPE_CHECKING:
    from lhotse import CutSet, SupervisionSegment

__all__ = ["keep", "label", "to_cutset"]

logger = logging.getLogger(__name__)

_SUPERVISION_SUFFIX = "-speakeasy"


def _times(items: Iterable[Any], base: float) -> list[Any]:
    """Words or segments as lhotse AlignmentItems, ``base`` seconds later."""
    from lhotse.supervision import AlignmentItem

    return [
        AlignmentItem(
            symbol=item.text,
            start=round(base + item.start, 8),
            duration=round(max(0.0, item.end - item.start), 8),
        )
        for item in items
    ]


def _labelled(
    supervision: SupervisionSegment, result: TranscriptionResult, base: float
) -> SupervisionSegment:
    """``supervision`` with ``result``'s text, language, origin and times.

    ``base`` is where the result's time 0 lies on the recording's time line, which is
    what lhotse's AlignmentItem times refer to. The old text is kept in
    ``custom["original_text"]``; stale word/segment alignments are dropped.
    """
    from lhotse.utils import fastcopy

    custom = dict(supervision.custom or {})
    if supervision.text:
        custom.setdefault("original_text", supervision.text)
    custom.update(backend=result.backend, model=result.model, task=result.task)
    alignment = {
        kind: items
        for kind, items in (supervision.alignment or {}).items()
        if kind not in ("word", "segment")
    }
    if result.words:
        alignment["word"] = _times(result.words, base)
    if result.segments:
        alignment["segment"] = _times(result.segments, base)
    return fastcopy(
        supervision,
        text=result.text,
        language=result.language or supervision.language,
        custom=custom,
        alignment=alignment or None,
    )


Lookup = Callable[[str], TranscriptionResult | None]


def _succeeded(key: str, lookup: Lookup) -> TranscriptionResult | None:
    result = lookup(key)
    return result if result is not None and result.ok else None


def _label_whole(cut: Any, lookup: Lookup) -> Any | None:
    """``cut`` with a new supervision over all of it; None without a successful result."""
    from lhotse import SupervisionSegment
    from lhotse.cut import MixedCut
    from lhotse.utils import fastcopy

    result = _succeeded(cut.id, lookup)
    if result is None:
        return None
    if isinstance(cut, MixedCut):  # a MixedCut's supervisions live in its tracks
        found = next(((i, t) for i, t in enumerate(cut.tracks) if t.cut.has_recording), None)
        if found is None:
            return None
        index, track = found
        holder, shift = track.cut, track.offset
    else:
        holder, shift = cut, 0.0
    new = SupervisionSegment(
        id=f"{cut.id}{_SUPERVISION_SUFFIX}",
        recording_id=holder.recording_id,
        start=0.0 - shift,
        duration=cut.duration,
        channel=holder.channel,
    )
    labelled = [s for s in holder.supervisions if s.id != new.id]
    labelled.append(_labelled(new, result, holder.start - shift))
    holder = fastcopy(holder, supervisions=labelled)
    if isinstance(cut, MixedCut):
        tracks = list(cut.tracks)
        tracks[index] = fastcopy(track, cut=holder)
        return fastcopy(cut, tracks=tracks)
    return holder


def _label_supervisions(cut: Any, lookup: Lookup) -> Any | None:
    """``cut`` with every supervision relabelled; None unless all of them succeeded."""
    from lhotse.cut import MixedCut
    from lhotse.utils import fastcopy

    if isinstance(cut, MixedCut):
        return None  # its input was a per-cut error

    labelled = []
    for supervision in cut.supervisions:
        result = _succeeded(supervision_key(cut.id, supervision.id), lookup)
        if result is None:
            return None
        base = cut.start + max(0.0, supervision.start)
        labelled.append(_labelled(supervision, result, base))
    return fastcopy(cut, supervisions=labelled)


def label(cut: Any, lookup: Lookup, per_supervision: bool) -> Any | None:
    from lhotse import Recording

    if isinstance(cut, Recording):
        cut = cut.to_cut()
    return _label_supervisions(cut, lookup) if per_supervision else _label_whole(cut, lookup)


def keep(found: dict[str, TranscriptionResult], result: TranscriptionResult) -> None:
    """File ``result`` under its key; a success is never replaced by a failure."""
    known = found.get(result.source)
    if result.ok or known is None or not known.ok:
        found[result.source] = result


def to_cutset(
    cuts: Iterable[Any],
    results: Iterable[TranscriptionResult] | Mapping[str, TranscriptionResult],
    *,
    per_supervision: bool = False,
) -> CutSet:
    """``cuts`` labelled with ``results`` (matched by ``result.source``), as a CutSet.

    Each cut gets a new supervision ``"<cut id>-speakeasy"`` over the whole cut (kept
    beside its existing ones; in a MixedCut it is stored in the first track), or with
    ``per_supervision`` each of its supervisions gets the new text. A supervision
    carries ``text``, ``language``, ``custom`` = ``{backend, model, task}`` (and the
    text it replaced as ``original_text``) and, when the result has timestamps,
    ``alignment["word"]`` / ``alignment["segment"]`` as AlignmentItems on the
    recording's time line (lhotse's convention). Cuts without a successful result for
    every key are left out (and logged); the results hold their errors.
    """
    require_lhotse()
    found: dict[str, TranscriptionResult] = {}
    for result in results.values() if isinstance(results, Mapping) else results:
        keep(found, result)
    labelled = []
    for cut in iter_cuts(as_cutset(cuts) if is_lhotse(cuts) else cuts):
        new = label(cut, found.get, per_supervision)
        if new is None:
            logger.warning("cut %s left out: not every part of it was transcribed", cut.id)
        else:
            labelled.append(new)
    from lhotse import CutSet

    return CutSet.from_cuts(labelled)
