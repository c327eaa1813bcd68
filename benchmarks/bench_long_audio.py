"""Long recordings in bounded memory: peak RSS of 1-minute, 1-hour and 3-hour inputs.

    python benchmarks/bench_long_audio.py                 # audio layer and end to end
    python benchmarks/bench_long_audio.py --layer audio   # audio layer only (faster)
    python benchmarks/bench_long_audio.py --minutes 1 60  # skip the 3-hour file

Writes 44.1 kHz stereo 16-bit FLACs of speech-like tone bursts and pauses to a temp
dir (deleted afterwards), then measures each file in a fresh process:

- ``stream``: iterating :func:`speakeasy_core.audio.iter_pieces` (``--max-duration``
  second pieces), the audio layer the engine consumes;
- ``today``: the whole-file path this replaces (libsndfile reads everything, then
  ``to_mono_16k`` and ``split_spans``), for files up to ``--today-limit`` minutes;
- ``e2e``: ``Transcriber.transcribe`` on a tiny CTC model from
  :mod:`speakeasy_core.testing.tiny_nemo` (one torch thread, batch 16, pieces of
  ``chunk_duration=--max-duration``, at most ``--batch-duration`` seconds of audio per
  model call: the library's default unless given). The model's activations grow with
  the seconds per call, and its attention with the square of the piece length:
  ``--max-duration 300`` (Parakeet's own limit) shows what that costs.

Target: the 1-hour file within 300 MB peak RSS of the 1-minute one; the 3-hour file
finishes. Prints peak RSS, wall time and the speed of the streamed decode against
today's path.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_nemo import peak_mb

from speakeasy_core.transcriber import DEFAULT_BATCH_DURATION

SOURCE_RATE = 44100
_PATTERN_SECONDS = 60


def speechlike_minute(seed: int = 0) -> np.ndarray[Any, np.dtype[np.int16]]:
    """One minute of stereo tone bursts (0.3-2 s, 150-1500 Hz) and pauses (0.1-0.6 s)."""
    rng = np.random.default_rng(seed)
    total = _PATTERN_SECONDS * SOURCE_RATE
    out = np.zeros(total, np.float32)
    position = 0
    while position < total:
        length = min(int(rng.uniform(0.3, 2.0) * SOURCE_RATE), total - position)
        t = np.arange(length) / SOURCE_RATE
        envelope = np.sin(np.pi * t / t[-1]) if length > 1 else np.ones(1)
        out[position : position + length] = (
            0.4 * envelope * np.sin(2 * np.pi * rng.uniform(150, 1500) * t)
        )
        position += length + int(rng.uniform(0.1, 0.6) * SOURCE_RATE)
    out += 0.001 * rng.standard_normal(total).astype(np.float32)
    stereo = np.stack([out, 0.5 * out], axis=1)
    return (np.clip(stereo, -1, 1) * 32767).astype(np.int16)


def write_flac(path: Path, minutes: int) -> Path:
    """``minutes`` of audio, written a minute at a time (the pattern repeats)."""
    minute = speechlike_minute()
    with sf.SoundFile(path, "w", SOURCE_RATE, 2, subtype="PCM_16", format="FLAC") as out:
        for _ in range(minutes):
            out.write(minute)
    return path


def child(
    mode: str, path: str, max_duration: float, batch_duration: float, model: str | None
) -> dict[str, Any]:
    """Run one measurement in this (fresh) process."""
    from speakeasy_core.audio import iter_pieces, to_mono_16k
    from speakeasy_core.chunking import split_spans

    start = time.perf_counter()
    if mode == "stream":
        digest, count, samples = hashlib.sha256(), 0, 0
        for piece in iter_pieces(path, max_duration, label=path):
            digest.update(piece.samples.tobytes())
            count += 1
            samples += len(piece.samples)
        result: dict[str, Any] = {"pieces": count, "samples": samples}
    elif mode == "today":
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        mono = to_mono_16k(data, rate)
        del data
        digest = hashlib.sha256()
        spans = split_spans(mono, 16000, max_duration)
        for lo, hi in spans:
            digest.update(mono[lo:hi].tobytes())
        result = {"pieces": len(spans), "samples": len(mono)}
    else:
        import torch

        from speakeasy_core import Transcriber
        from speakeasy_core.backends.nemo import quiet_nemo

        torch.set_num_threads(1)
        with (
            quiet_nemo(),
            Transcriber(
                "parakeet",
                model,
                device="cpu",
                batch_size=16,
                batch_duration=batch_duration,
                chunk_duration=max_duration,
            ) as lib,
        ):
            lib.transcribe(str(Path(path).with_name("warm-up.wav")))  # loads the model
            loaded, start = peak_mb(), time.perf_counter()
            text = lib.transcribe(path).text
        result = {"chars": len(text), "model_loaded_mb": round(loaded, 1)}
        digest = hashlib.sha256(text.encode())
    result.update(
        seconds=round(time.perf_counter() - start, 2),
        peak_mb=round(peak_mb(), 1),
        sha256=digest.hexdigest()[:16],
    )
    return result


def measure(
    mode: str, path: Path, max_duration: float, batch_duration: float, model: Path | None
) -> dict[str, Any]:
    """``child`` in a fresh interpreter; its JSON result."""
    command = [sys.executable, __file__, "--child", mode, str(path), str(max_duration)]
    command.append(str(batch_duration))
    if model is not None:
        command.append(str(model))
    out = subprocess.run(command, check=True, capture_output=True, text=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, nargs="+", default=[1, 60, 180])
    parser.add_argument("--layer", choices=["audio", "e2e", "both"], default="both")
    parser.add_argument("--max-duration", type=float, default=20.0)
    parser.add_argument("--batch-duration", type=float, default=DEFAULT_BATCH_DURATION)
    parser.add_argument("--today-limit", type=int, default=60, help="minutes")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, path, max_duration, batch_duration, *model = args.child
        result = child(
            mode, path, float(max_duration), float(batch_duration), model[0] if model else None
        )
        sys.stdout.write(json.dumps(result) + "\n")
        return

    rows: list[tuple[str, int, dict[str, Any]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = None
        if args.layer != "audio":
            from speakeasy_core.backends.nemo import quiet_nemo
            from speakeasy_core.testing.tiny_nemo import build_tiny_ctc

            with quiet_nemo():
                model = build_tiny_ctc(root / "model").path
            sf.write(root / "warm-up.wav", np.zeros(16000, np.int16), 16000)
        for minutes in sorted(args.minutes):
            start = time.perf_counter()
            path = write_flac(root / f"{minutes}min.flac", minutes)
            size = path.stat().st_size / 2**20
            took = time.perf_counter() - start
            sys.stderr.write(f"wrote {minutes} min FLAC ({size:.0f} MiB) in {took:.0f} s\n")
            modes = []
            if args.layer != "e2e":
                modes.append("stream")
                if minutes <= args.today_limit:
                    modes.append("today")
            if args.layer != "audio":
                modes.append("e2e")
            for mode in modes:
                result = measure(mode, path, args.max_duration, args.batch_duration, model)
                sys.stderr.write(f"  {mode}: {result}\n")
                rows.append((mode, minutes, result))
            path.unlink()
    report(rows, args.max_duration, args.batch_duration)


def report(
    rows: list[tuple[str, int, dict[str, Any]]], max_duration: float, batch_duration: float
) -> None:
    """Print one line per measurement, then the ratios against the 1-minute file."""
    by = {(mode, minutes): result for mode, minutes, result in rows}
    lines = [
        f"e) peak RSS, 44.1 kHz stereo FLAC, {max_duration:g} s pieces, e2e at most "
        f"{batch_duration:g} s of audio per call, fresh process each:"
    ]
    for mode, minutes, result in rows:
        lines.append(
            f"   {mode:>6} {minutes:>4} min: peak {result['peak_mb']:8.1f} MB, "
            f"{result['seconds']:8.2f} s"
            + (f", {result['pieces']} pieces" if "pieces" in result else "")
        )
    for mode in ("stream", "e2e", "today"):
        base = by.get((mode, 1))
        for minutes in (60, 180):
            long = by.get((mode, minutes))
            if base and long:
                delta = long["peak_mb"] - base["peak_mb"]
                target = " (target <= 300 MB)" if mode != "today" and minutes == 60 else ""
                lines.append(f"   {mode}: {minutes} min peaks {delta:+.0f} MB above 1 min{target}")
    for minutes in (1, 60):
        stream, today = by.get(("stream", minutes)), by.get(("today", minutes))
        if stream and today:
            same = "identical" if stream["sha256"] == today["sha256"] else "DIFFERENT"
            speedup = today["seconds"] / stream["seconds"]
            lines.append(
                f"   decode speed, {minutes} min: streamed {stream['seconds']:.2f} s vs today's "
                f"whole-file {today['seconds']:.2f} s -> {speedup:.2f}x as fast"
                f"; pieces {same} ({stream['pieces']} pieces, {stream['samples']} samples)"
            )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
