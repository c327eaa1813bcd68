"""The ``speakeasy-core`` command line.

    speakeasy-core transcribe clip.wav                       # prints the transcript
    speakeasy-core transcribe recordings/ --out-dir out --format srt --resume
    speakeasy-core transcribe /shared/audio --out-dir /shared/out --ray-address auto
    speakeasy-core backends                                  # lists backends

Exit status: 0 when every input was transcribed, 1 when any input failed, 2 for a
usage error, 3 when the job could not run at all (e.g. the model failed to load).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from .backends import available_backends
from .distributed import RayPool, TranscriberSpec, probe, ray_session, run_ray_job
from .errors import SpeakEasyError
from .formats import available_formats, render
from .job import JobInput, JobSummary, expand_inputs, options_for_formats, run_job
from .transcriber import Transcriber
from .types import TranscribeOptions

__all__ = ["main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FATAL = 0, 1, 2, 3


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="speakeasy-core",
        description="Offline speech-to-text with NeMo Parakeet/Canary or the embedded "
        "Whisper default.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backends", help="list the installed backends")

    run = commands.add_parser(
        "transcribe",
        help="transcribe files or directories",
        description="Transcribe audio files (wav, flac, ogg, opus, mp3) and directories of "
        "them. Without --out-dir the transcripts are printed; with it, one file per input "
        "and format is written and a journal makes the job resumable (--resume).",
    )
    run.add_argument("paths", nargs="+", help="audio files or directories")
    run.add_argument(
        "--backend",
        help=f"one of: {', '.join(available_backends())} (default: whisper, "
        "or parakeet when --model is given)",
    )
    run.add_argument("--model", help="a .nemo file, a model directory, or a pretrained name")
    run.add_argument("--out-dir", type=Path, help="write transcripts here instead of stdout")
    run.add_argument(
        "--format",
        action="append",
        choices=available_formats(),
        help="output format; repeat for several (default: txt)",
    )
    run.add_argument("--batch-size", type=_positive_int, default=16, help="inputs per model call")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument("--language", help="spoken language code, e.g. en")
    run.add_argument("--target-language", help="output language for --task translate")
    run.add_argument("--task", choices=["transcribe", "translate"], default="transcribe")
    run.add_argument("--timestamps", action="store_true", help="word and segment times")
    run.add_argument(
        "--no-punctuation", action="store_true", help="ask for text without punctuation"
    )
    run.add_argument(
        "--resume", action="store_true", help="skip inputs already done in --out-dir's journal"
    )
    run.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar (shown on a terminal)"
    )
    ray = run.add_argument_group(
        "Ray cluster",
        "run the --out-dir job on a Ray cluster (the ray extra); see docs/scale-out.md",
    )
    ray.add_argument(
        "--ray",
        action="store_true",
        help="run on Ray: the cluster in RAY_ADDRESS or the last one `ray start` made on "
        "this machine, else a new local one",
    )
    ray.add_argument("--ray-address", help="run on the cluster at this address (auto, host:6379)")
    ray.add_argument(
        "--ray-actors",
        type=_positive_int,
        default=1,
        help="transcribing actors, each with its own copy of the model (default: 1)",
    )
    ray.add_argument(
        "--ray-gpus-per-actor",
        type=_non_negative_float,
        help="default: 1 if the cluster has GPUs, else 0",
    )
    ray.add_argument(
        "--ray-cpus-per-actor",
        type=_positive_float,
        default=1.0,
        help="also torch's thread count on a CPU-only actor (default: 1)",
    )
    return parser


def _show_progress(args: argparse.Namespace) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _spec(args: argparse.Namespace) -> TranscriberSpec:
    options = TranscribeOptions(
        task=args.task,
        language=args.language,
        target_language=args.target_language,
        punctuation=not args.no_punctuation,
        timestamps=args.timestamps,
    )
    return TranscriberSpec(
        args.backend, args.model, device=args.device, batch_size=args.batch_size, options=options
    )


def _transcriber(args: argparse.Namespace) -> Transcriber:
    return _spec(args).build(show_progress=_show_progress(args))


def _error(message: str) -> None:
    sys.stderr.write(f"speakeasy-core: error: {message}\n")


def _print_transcripts(transcriber: Transcriber, inputs: list[JobInput], fmt: str) -> int:
    failed = 0
    for result in transcriber.iter_transcribe([item.path for item in inputs]):
        if result.ok:
            sys.stdout.write(render(result, fmt).rstrip("\n") + "\n")
        else:
            failed += 1
            _error(f"{result.source}: {result.error_type}: {result.error}")
        sys.stdout.flush()
    return failed


def _summarise(summary: JobSummary, out_dir: Path, seconds: float) -> None:
    for source, error in summary.failures:
        sys.stderr.write(f"failed: {source}: {error}\n")
    sys.stderr.write(
        f"{summary.transcribed} transcribed, {summary.skipped} already done, "
        f"{summary.failed} failed, of {summary.total} inputs "
        f"({summary.audio_seconds:.1f} s of audio in {seconds:.1f} s) -> {out_dir}\n"
    )


def _run_on_ray(args: argparse.Namespace, inputs: list[JobInput], formats: list[str]) -> int:
    spec = _spec(args)
    pool = RayPool(
        actors=args.ray_actors,
        num_gpus=args.ray_gpus_per_actor,
        num_cpus=args.ray_cpus_per_actor,
    )
    with ray_session(args.ray_address, show_progress=_show_progress(args)):
        options = options_for_formats(spec.options, formats, probe(spec, pool))
        spec = replace(spec, options=options)
        started = time.monotonic()
        summary = run_ray_job(
            spec, inputs, args.out_dir, formats=formats, resume=args.resume, pool=pool
        )
    _summarise(summary, args.out_dir, time.monotonic() - started)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _transcribe(args: argparse.Namespace) -> int:
    formats = args.format or ["txt"]
    if args.out_dir is None and len(formats) > 1:
        _error("several formats need --out-dir")
        return EXIT_USAGE
    on_ray = args.ray or args.ray_address is not None
    if on_ray and args.out_dir is None:
        _error("--ray needs --out-dir")
        return EXIT_USAGE
    inputs = list(expand_inputs(args.paths))
    if on_ray:
        return _run_on_ray(args, inputs, formats)
    with _transcriber(args) as transcriber:
        transcriber.options = options_for_formats(
            transcriber.options, formats, transcriber.capabilities
        )
        if args.out_dir is None:
            failed = _print_transcripts(transcriber, inputs, formats[0])
            return EXIT_FAILED if failed else EXIT_OK
        started = time.monotonic()
        summary = run_job(transcriber, inputs, args.out_dir, formats=formats, resume=args.resume)
        _summarise(summary, args.out_dir, time.monotonic() - started)
        return EXIT_FAILED if summary.failed else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "backends":
        sys.stdout.write("\n".join(available_backends()) + "\n")
        return EXIT_OK
    try:
        return _transcribe(args)
    except SpeakEasyError as exc:
        _error(str(exc))
        return EXIT_FATAL
    except KeyboardInterrupt:
        _error("interrupted; finished results are kept (rerun with --resume)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
