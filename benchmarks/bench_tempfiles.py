"""How much does ``safe_delete`` cost over ``os.unlink`` when nothing holds the file?

Run: ``python benchmarks/bench_tempfiles.py [--files 10000] [--rounds 5]``.

Each round creates ``--files`` real files and deletes them with ``os.unlink``, then
creates them again and deletes them with ``safe_delete`` (the order alternates from
round to round). The report gives the median time of each and their ratio; the
target is at most 1.5x. ``--max-ratio`` makes the exit status fail above a ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from speakeasy_core.tempfiles import DeleteOutcome, safe_delete

TARGET_RATIO = 1.5


def _create(paths: list[Path]) -> None:
    for path in paths:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _unlink(paths: list[Path]) -> None:
    for path in paths:
        os.unlink(path)


def _safe_delete(paths: list[Path]) -> None:
    for path in paths:
        if safe_delete(path).outcome is not DeleteOutcome.DELETED:
            raise RuntimeError(f"{path} was not deleted")


def _timed(delete: Callable[[list[Path]], None], paths: list[Path]) -> float:
    _create(paths)
    start = time.perf_counter()
    delete(paths)
    return time.perf_counter() - start


def measure(files: int, rounds: int) -> dict[str, list[float]]:
    """Seconds per round for each way of deleting ``files`` unlocked files."""
    methods = {"os.unlink": _unlink, "safe_delete": _safe_delete}
    timings: dict[str, list[float]] = {name: [] for name in methods}
    with tempfile.TemporaryDirectory(prefix="bench-tempfiles-") as directory:
        paths = [Path(directory) / f"f{index:06d}.tmp" for index in range(files)]
        for round_number in range(rounds):
            order = list(methods) if round_number % 2 == 0 else list(reversed(methods))
            for name in order:
                timings[name].append(_timed(methods[name], paths))
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000, help="files per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per method")
    parser.add_argument("--max-ratio", type=float, default=None, help="fail above this")
    args = parser.parse_args(argv)
    if args.files < 1 or args.rounds < 1:
        parser.error("--files and --rounds must be >= 1")

    timings = measure(args.files, args.rounds)
    medians = {name: statistics.median(times) for name, times in timings.items()}
    ratio = medians["safe_delete"] / medians["os.unlink"]
    lines = [f"{args.files} unlocked files, median of {args.rounds} interleaved rounds"]
    for name, median in medians.items():
        per_file = median / args.files * 1e6
        lines.append(f"  {name:<12} {median * 1e3:9.1f} ms  ({per_file:.2f} us/file)")
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    lines.append(f"  ratio        {ratio:9.2f}x (target <= {TARGET_RATIO}x: {verdict})")
    sys.stdout.write("\n".join(lines) + "\n")
    return 1 if args.max_ratio is not None and ratio > args.max_ratio else 0


if __name__ == "__main__":
    sys.exit(main())
