"""Transcribe a folder on a Ray cluster: the local job's outputs, journal and resume.

    pip install 'speakeasy_core[ray,whisper]'
    python examples/ray_job.py examples/audio /tmp/ray-out        # a local Ray, 2 actors
    python examples/ray_job.py /shared/audio /shared/out --address auto \\
        --backend parakeet --model /shared/parakeet-tdt-0.6b-v2.nemo --actors 8

Run it again and the journal in ``out_dir`` makes it skip what is done. Afterwards the
same files go through ``transcribe_dataset``, the Ray Dataset form, for pipelines that
stay in Ray. On a cluster the audio must be readable at the same path on every node.
"""

from __future__ import annotations

import argparse
import logging

import ray.data

from speakeasy_core.distributed import (
    RayPool,
    TranscriberSpec,
    ray_session,
    run_ray_job,
    transcribe_dataset,
)
from speakeasy_core.job import expand_inputs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("out_dir")
    parser.add_argument("--address", help="a running cluster (auto, host:6379)")
    parser.add_argument("--backend")
    parser.add_argument("--model")
    parser.add_argument("--actors", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    spec = TranscriberSpec(args.backend, args.model, batch_size=8)
    pool = RayPool(actors=args.actors)
    inputs = list(expand_inputs([args.folder]))
    with ray_session(args.address, show_progress=False):
        summary = run_ray_job(
            spec,
            inputs,
            args.out_dir,
            formats=("srt", "txt"),
            resume=True,
            pool=pool,
            show_progress=True,  # ours (audio seconds, ETA) rather than Ray Data's bars
        )
        print(
            f"{summary.transcribed} transcribed, {summary.skipped} skipped, {summary.failed} failed"
        )

        paths = ray.data.from_items([{"path": str(item.path)} for item in inputs])
        for row in transcribe_dataset(paths, spec, pool=pool).take(3):
            print(row["path"], "->", row["transcript"] if row["error"] is None else row["error"])
    return 1 if summary.failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
