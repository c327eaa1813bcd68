"""The library against raw NeMo on a tiny real model, side by side in one run.

    python benchmarks/bench_nemo.py               # speed ratios (about a minute)
    python benchmarks/bench_nemo.py --memory      # + peak RSS, 500 vs 5,000 inputs

Reports, each as a ratio of timings taken in this one run (median of ``--repeat``):

2. the per-file pattern (temp wav + one-item manifest + one ``transcribe()`` per
   file) vs the library on 200 short files (target: the library at least 5x faster);
4. with ``--memory``: peak RSS of a whole job (journal and txt outputs included) over
   500 and 5,000 inputs, each in a fresh process (target: within 50 MB).

The library against raw ``model.transcribe(paths)`` (short files, stereo FLAC, mixed
lengths, a full-size model, CUDA) is ``bench_pipeline.py``.

Torch runs on one thread for stable figures on small shared machines.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16000


def make_files(folder: Path, durations: Sequence[float], seed: int = 0) -> list[str]:
    """Noise-plus-tone wavs of the given durations."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i, seconds in enumerate(durations):
        n = int(seconds * RATE)
        signal = 0.1 * rng.standard_normal(n) + 0.3 * np.sin(np.arange(n) * (0.05 + i % 7 / 50))
        path = folder / f"f{i:05d}.wav"
        sf.write(path, signal.astype(np.float32), RATE)
        paths.append(str(path))
    return paths


def _round_times(runs: Sequence[Callable[[], object]], repeat: int) -> list[list[float]]:
    """Wall times of each of ``runs``: one warm-up each, then ``repeat`` rounds that run
    them one after another, so drift in the machine's load hits all alike."""
    for run in runs:
        run()
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(repeat):
        for run, sink in zip(runs, times, strict=True):
            start = time.perf_counter()
            run()
            sink.append(time.perf_counter() - start)
    return times


def timed(run: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``repeat`` runs, after one warm-up."""
    return statistics.median(_round_times([run], repeat)[0])


def timed_pair(
    first: Callable[[], object], second: Callable[[], object], repeat: int
) -> tuple[float, float, float]:
    """``first`` and ``second`` side by side: their median times, and the median of the
    per-round ratios first/second."""
    ones, twos = _round_times([first, second], repeat)
    ratios = [a / b for a, b in zip(ones, twos, strict=True)]
    return statistics.median(ones), statistics.median(twos), statistics.median(ratios)


def peak_mb() -> float:
    """This process's peak RSS in MB. Linux's ru_maxrss keeps the parent's peak across
    exec, so the high-water mark of this address space (VmHWM) is read where there is one."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def texts(hypotheses: Sequence[object]) -> list[str]:
    return [h if isinstance(h, str) else str(getattr(h, "text", h)) for h in hypotheses]


def per_file(model: object, paths: Sequence[str], workdir: Path) -> None:
    """The pattern this library replaces: one temp wav, manifest and call per file."""
    for path in paths:
        data, rate = sf.read(path, dtype="float32")
        wav = workdir / "one.wav"
        sf.write(wav, data, rate)
        manifest = workdir / "one.json"
        manifest.write_text(
            json.dumps({"audio_filepath": str(wav), "duration": len(data) / rate, "text": ""})
        )
        model.transcribe(str(manifest), batch_size=1, verbose=False)  # type: ignore[attr-defined]
        manifest.unlink()
        wav.unlink()


def speed(repeat: int, files: int) -> list[str]:
    import torch
    from nemo.collections.asr.models import ASRModel

    from speakeasy_core import Transcriber
    from speakeasy_core.backends.nemo import quiet_nemo
    from speakeasy_core.testing.tiny_nemo import build_tiny_ctc

    torch.set_num_threads(1)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with quiet_nemo():
            tiny = build_tiny_ctc(root / "model")
            raw = ASRModel.restore_from(str(tiny.path), map_location="cpu").eval()
        rng = np.random.default_rng(1)
        short = make_files(root / "short", rng.uniform(1.0, 3.0, files).tolist())
        with Transcriber("parakeet", str(tiny.path), device="cpu", batch_size=16) as lib:
            t_lib = timed(lambda: lib.transcribe_batch(short), repeat)
        workdir = root / "per-file"
        workdir.mkdir()
        with quiet_nemo(), torch.inference_mode():
            t_each = timed(lambda: per_file(raw, short, workdir), 1)
        lines.append(
            f"2. per-file pattern {t_each:.2f}s vs library {t_lib:.2f}s"
            f" -> library is {t_each / t_lib:.1f}x faster (target >= 5x)"
        )
    return lines


def job_peak_rss(count: int) -> float:
    """Run a whole job over ``count`` inputs in a fresh process; its peak RSS in MB."""
    out = subprocess.run(
        [sys.executable, __file__, "--job", str(count)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def job(count: int) -> None:
    """Child process of ``--memory``: prints its peak RSS (MB) on the last line."""
    import torch

    from speakeasy_core import Transcriber
    from speakeasy_core.backends.nemo import quiet_nemo
    from speakeasy_core.cli import expand_inputs
    from speakeasy_core.job import run_job
    from speakeasy_core.testing.tiny_nemo import build_tiny_ctc

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with quiet_nemo():
            tiny = build_tiny_ctc(root / "model")
        make_files(root / "in", [0.5] * count)
        with Transcriber("parakeet", str(tiny.path), device="cpu", batch_size=32) as lib:
            summary = run_job(lib, expand_inputs([str(root / "in")]), root / "out")
        assert summary.transcribed == count, summary
    sys.stdout.write(f"{peak_mb():.1f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--memory", action="store_true", help="also measure peak RSS")
    parser.add_argument("--job", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:
        job(args.job)
        return
    lines = speed(args.repeat, args.files)
    if args.memory:
        small, large = job_peak_rss(500), job_peak_rss(5000)
        lines.append(
            f"4. peak RSS of a whole job: 500 inputs {small:.0f} MB, 5,000 inputs {large:.0f} MB"
            f" -> +{large - small:.0f} MB (target: within 50 MB)"
        )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
