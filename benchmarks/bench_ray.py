"""Ray scale-out on this machine: 1 actor vs 2, and what a cluster costs to start.

    python benchmarks/bench_ray.py                  # about two minutes
    python benchmarks/bench_ray.py --files 960      # a longer steady state

On a tiny real NeMo CTC model (``speakeasy_core.testing.tiny_nemo``; pass ``--model`` for
your own ``.nemo``), over ``--files`` wavs of ``--seconds`` each, it reports:

1. the fixed cost of a local two-node cluster (``ray.cluster_utils.Cluster``: a head and
   one worker node, one CPU each, as the tests use): start, and stop;
2. the same job (``run_ray_job``: txt outputs and journal) with 1 actor and with 2 (one
   per node): wall time; the start-up until the first result (probe, each actor's NeMo
   import and model load); the steady throughput after it (files/s and seconds of audio
   per second) and the 2-vs-1 throughput ratio;
3. ``run_job`` in this process on one torch thread, for reference.

Each actor reserves one CPU, and Ray runs its torch on one thread, as here.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

RATE = 16000

Progress = Callable[[int, int | None], None]


@dataclass
class Timing:
    """One job: wall seconds, seconds to the first result, files after it per second."""

    wall: float
    first: float
    steady: float


def make_files(folder: Path, count: int, seconds: float) -> list[Path]:
    """Noise-plus-tone wavs, 16 kHz mono (used in place, no conversion)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = int(seconds * RATE)
    paths = []
    for i in range(count):
        signal = 0.1 * rng.standard_normal(n) + 0.3 * np.sin(np.arange(n) * (0.05 + i % 7 / 50))
        path = folder / f"f{i:05d}.wav"
        sf.write(path, signal.astype(np.float32), RATE)
        paths.append(path)
    return paths


def timed_job(run: Callable[[Progress], None]) -> Timing:
    """Time ``run(progress)``; the progress callback marks when results arrive."""
    marks: list[float] = []
    start = time.perf_counter()
    run(lambda done, total: marks.append(time.perf_counter()))
    wall = time.perf_counter() - start
    steady = (len(marks) - 1) / (marks[-1] - marks[0])
    return Timing(wall, marks[0] - start, steady)


def start_cluster() -> tuple[Cluster, float]:
    """A head and one worker node, one CPU each, connected; and the seconds it took."""
    import ray
    import ray.data
    from ray.cluster_utils import Cluster

    node: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 200 * 1024**2}
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    return cluster, time.perf_counter() - started


def stop_cluster(cluster: Cluster) -> float:
    """Disconnect and stop ``cluster``; the seconds it took."""
    import ray

    started = time.perf_counter()
    ray.shutdown()
    cluster.shutdown()  # type: ignore[no-untyped-call]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=480)
    parser.add_argument("--seconds", type=float, default=16.0)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", help="a .nemo file (default: a tiny CTC model built here)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import torch

    from speakeasy_core.distributed import RayPool, TranscriberSpec, run_ray_job
    from speakeasy_core.job import expand_inputs, run_job
    from speakeasy_core.testing.tiny_nemo import build_tiny

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = args.model or str(build_tiny("ctc", root / "model").path)
        make_files(root / "audio", args.files, args.seconds)
        inputs = list(expand_inputs([str(root / "audio")]))
        spec = TranscriberSpec("parakeet", model, device="cpu", batch_size=args.batch_size)

        with spec.build() as transcriber:

            def local_job(progress: Progress) -> None:
                transcriber.progress = progress
                run_job(transcriber, inputs, root / "out-local")

            timings = {"local run_job, 1 thread": timed_job(local_job)}

        cluster, cluster_start = start_cluster()
        try:
            for actors in (1, 2):
                pool = RayPool(actors=actors, inputs_per_call=args.batch_size)
                out = root / f"out-{actors}"

                def ray_job(progress: Progress, pool: RayPool = pool, out: Path = out) -> None:
                    run_ray_job(spec, inputs, out, pool=pool, progress=progress)

                timings[f"Ray, {actors} actor(s)"] = timed_job(ray_job)
        finally:
            cluster_stop = stop_cluster(cluster)

    print(f"{args.files} files x {args.seconds:g} s = {args.files * args.seconds / 3600:.2f} h")
    print(f"cluster (head + 1 worker node): start {cluster_start:.1f} s, stop {cluster_stop:.1f} s")
    print(f"{'run':<24}{'wall s':>8}{'to 1st result s':>17}{'files/s':>9}{'audio s/s':>11}")
    for name, timing in timings.items():
        print(
            f"{name:<24}{timing.wall:>8.1f}{timing.first:>17.1f}{timing.steady:>9.1f}"
            f"{timing.steady * args.seconds:>11.0f}"
        )
    one, two = timings["Ray, 1 actor(s)"], timings["Ray, 2 actor(s)"]
    print(f"2 actors vs 1: steady throughput {two.steady / one.steady:.2f}x, ", end="")
    print(f"wall time {one.wall / two.wall:.2f}x")


if __name__ == "__main__":
    main()
