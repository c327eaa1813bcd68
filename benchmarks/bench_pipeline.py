"""The input pipeline against raw NeMo ``model.transcribe(paths)``, side by side in one run.

    python benchmarks/bench_pipeline.py                 # a)-c) on the tiny CTC model
    python benchmarks/bench_pipeline.py --cases d       # d) the XL TDT (builds 2.4 GB)
    python benchmarks/bench_pipeline.py --device cuda   # f) the same on a GPU

Each line gives the library's and raw NeMo's wall time, run alternately (median of
``--repeat`` rounds after a warm-up), the median of the per-round ratios, and for the
library the fraction of wall time the model (the thread that runs it) waited for input:

a) 200 short (1-3 s) 16 kHz wavs, batch 16 (target: library/raw <= 0.85);
b) 64 x 44.1 kHz stereo FLAC of 2-10 s, batch 16; raw NeMo with ``channel_selector=0``
   (its 'average' fails on NeMo 3.0's lhotse path) (target <= 0.8);
c) 64 mixed 1-20 s wavs, batch 16 (target: library >= 2x faster, identical texts);
d) parakeet-tdt-0.6b-v2's architecture with random weights
   (:func:`~speakeasy_core.testing.tiny_nemo.build_xl_tdt`) on ``--xl-files`` x 10 s;
m) peak RSS of case c in fresh processes with ``num_workers=0`` and the default, the
   memory the prefetch queue costs.

With ``--device cuda`` every line also gives RTFx (audio seconds per wall second).
Torch runs on one thread (``--threads``) for stable figures on small shared machines.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_nemo import make_files, peak_mb, texts, timed_pair

RATE = 16000


def make_stereo_flacs(folder: Path, durations: Sequence[float]) -> list[str]:
    """44.1 kHz stereo FLACs (a different tone per channel, plus noise)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    paths = []
    for i, seconds in enumerate(durations):
        t = np.arange(int(seconds * 44100)) / 44100
        left = 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t)
        right = 0.3 * np.sin(2 * np.pi * (330 + 10 * i) * t)
        noise = 0.05 * rng.standard_normal((t.size, 2))
        path = folder / f"s{i:03d}.flac"
        sf.write(path, (np.stack([left, right], axis=1) + noise).astype(np.float32), 44100)
        paths.append(str(path))
    return paths


def audio_seconds(paths: Sequence[str]) -> float:
    return sum(sf.info(path).duration for path in paths)


class ModelClock:
    """Wraps a loaded NeMo backend's model calls to measure the time the model is busy."""

    def __init__(self, backend: Any) -> None:
        self.busy = 0.0
        inner = backend.transcribe_collated

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.busy += time.perf_counter() - start

        backend.transcribe_collated = timed_call


def compare(
    label: str,
    *,
    lib: Any,
    clock: ModelClock,
    raw: Callable[[], list[str]],
    paths: Sequence[str],
    repeat: int,
    cuda: bool,
) -> str:
    """One case's report line."""

    def run_lib() -> list[str]:
        return [r.text for r in lib.transcribe_batch(paths)]

    t_lib, t_raw, ratio = timed_pair(run_lib, raw, repeat)
    clock.busy = 0.0
    start = time.perf_counter()
    run_lib()
    wall = time.perf_counter() - start
    waiting = max(0.0, 1.0 - clock.busy / wall)
    line = (
        f"{label}: library {t_lib:.2f}s, raw NeMo {t_raw:.2f}s -> library/raw = "
        f"{ratio:.3f} (raw/library {1 / ratio:.2f}x); model waited for input "
        f"{100 * waiting:.0f}% of the library's wall time"
    )
    if cuda:
        seconds = audio_seconds(paths)
        line += f"; RTFx library {seconds / t_lib:.0f}, raw {seconds / t_raw:.0f}"
    return line


def raw_transcribe(model: Any, paths: Sequence[str], **extra: Any) -> list[str]:
    """Raw NeMo: ``model.transcribe(paths)`` at batch 16, texts stripped."""
    import torch

    from speakeasy_core.backends.nemo import quiet_nemo

    with quiet_nemo(), torch.inference_mode():
        out = model.transcribe(list(paths), batch_size=16, verbose=False, **extra)
    return [t.strip() for t in texts(out)]


def run_cases(args: argparse.Namespace) -> list[str]:
    import torch
    from nemo.collections.asr.models import ASRModel

    from speakeasy_core import Transcriber
    from speakeasy_core.backends.nemo import quiet_nemo
    from speakeasy_core.testing.tiny_nemo import build_tiny_ctc, build_xl_tdt

    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    lines = [f"load: {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} cores, {args.device}"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rng = np.random.default_rng(1)
        models: list[tuple[str, Path]] = []
        if set(args.cases) & set("abc"):
            with quiet_nemo():
                models.append(("abc", build_tiny_ctc(root / "tiny").path))
        if "d" in args.cases:
            with quiet_nemo():
                models.append(("d", build_xl_tdt(root / "xl").path))
        inputs: dict[str, Callable[[], tuple[str, list[str], dict[str, Any], int, str]]] = {
            "a": lambda: (
                "a) 200 short wavs",
                make_files(root / "a", rng.uniform(1.0, 3.0, 200).tolist()),
                {},
                args.repeat,
                "(target <= 0.85)",
            ),
            "b": lambda: (
                "b) 64 x 44.1 kHz stereo FLAC",
                make_stereo_flacs(root / "b", rng.uniform(2.0, 10.0, 64).tolist()),
                {"channel_selector": 0},
                args.repeat,
                "(target <= 0.8)",
            ),
            "c": lambda: (
                "c) 64 mixed 1-20 s wavs",
                make_files(root / "c", rng.uniform(1.0, 20.0, 64).tolist(), 2),
                {},
                args.repeat,
                "(target: raw/library >= 2x)",
            ),
            "d": lambda: (
                f"d) XL TDT, {args.xl_files} x 10 s",
                make_files(root / "d", [10.0] * args.xl_files, 4),
                {},
                args.xl_repeat,
                "(no fixed target: the ratio at a realistic compute cost)",
            ),
        }
        for cases, model_path in models:
            with quiet_nemo():
                raw_model = ASRModel.restore_from(str(model_path), map_location=args.device)
            raw_model.eval()

            raw_run = partial(raw_transcribe, raw_model)

            with Transcriber(
                "parakeet",
                str(model_path),
                device=args.device,
                batch_size=16,
                num_workers=args.num_workers,
            ) as lib:
                clock = ModelClock(lib.backend)
                for case in cases:
                    if case not in args.cases:
                        continue
                    label, paths, extra, repeat, target = inputs[case]()
                    line = compare(
                        label,
                        lib=lib,
                        clock=clock,
                        raw=partial(raw_run, paths, **extra),
                        paths=paths,
                        repeat=repeat,
                        cuda=cuda,
                    )
                    if case == "c":
                        ours = [r.text for r in lib.transcribe_batch(paths)]
                        same = sum(a == b for a, b in zip(raw_run(paths), ours, strict=True))
                        target += f"; identical texts {same}/{len(paths)}"
                    lines.append(f"{line} {target}")
            del raw_model
    return lines


def child_rss(workers: int) -> None:
    """Child of case m: case c's library run; prints peak RSS (MB) on the last line."""
    import torch

    from speakeasy_core import Transcriber
    from speakeasy_core.backends.nemo import quiet_nemo
    from speakeasy_core.testing.tiny_nemo import build_tiny_ctc

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with quiet_nemo():
            tiny = build_tiny_ctc(root / "tiny")
        rng = np.random.default_rng(1)
        mixed = make_files(root / "c", rng.uniform(1.0, 20.0, 64).tolist(), 2)
        with Transcriber(
            "parakeet", str(tiny.path), device="cpu", batch_size=16, num_workers=workers
        ) as lib:
            lib.transcribe_batch(mixed)
    sys.stdout.write(f"{peak_mb():.1f}\n")


def rss_of(workers: int) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child-rss", str(workers)],
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    from speakeasy_core.transcriber import default_workers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="abcm", help="any of a, b, c, d, m")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--num-workers", type=int, default=default_workers())
    parser.add_argument("--xl-files", type=int, default=32)
    parser.add_argument("--xl-repeat", type=int, default=1)
    parser.add_argument("--child-rss", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_rss is not None:
        child_rss(args.child_rss)
        return
    lines = run_cases(args)
    if "m" in args.cases:
        serial, prefetched = rss_of(0), rss_of(args.num_workers)
        lines.append(
            f"m) peak RSS of case c: num_workers=0 {serial:.0f} MB, num_workers="
            f"{args.num_workers} {prefetched:.0f} MB -> prefetch costs "
            f"{prefetched - serial:+.0f} MB"
        )
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
