"""The ``speakeasy-core`` command line.

    speakeasy-core transcribe clip.wav                       # prints the transcript
    speakeasy-core transcribe recordings/ --out-dir out --format srt --resume
    speakeasy-core transcribe /shared/audio --out-dir /shared/out --ray-address auto
    speakeasy-core backends                                  # lists backends

Exit status (docs/jobs.md): 0 when every input was transcribed, 1 when any input
failed, 2 for a usage error, 3 when the job could not run or had to stop (a model that
does not load, an out-dir that cannot be written or is in use, a full disk, an unsafe
temp dir; one line names the path and the cause, ``-v`` adds the traceback), and
128 + the signal number when interrupted: 130 for Ctrl-C (SIGINT), 143 for SIGTERM,
129 for SIGHUP. Finished results are kept in every case.
"""

from __future__ import annotations

import _thread
import argparse
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from types import FrameType

from .backends import available_backends
from .cuts import load_manifest
from .distributed import RayPool, TranscriberSpec, probe, ray_session, run_ray_job
from .errors import Interrupted, SpeakEasyError
from .formats import available_formats, render
from .job import (
    AUDIO_SUFFIXES,
    LHOTSE_FORMAT,
    LHOTSE_MANIFEST,
    JobInput,
    JobSummary,
    cut_inputs,
    expand_inputs,
    job_lock,
    options_for_formats,
    plan_outputs,
    prepare_out_dir,
    run_job,
)
from .progress import LOGGER_NAME, ShowProgress, write_line
from .tempfiles import TempWorkspace
from .transcriber import DEFAULT_BATCH_DURATION, Transcriber
from .types import TranscribeOptions

__all__ = ["main"]

logger = logging.getLogger(__name__)
_REDELIVER_SECONDS = 0.01

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_FATAL = 0, 1, 2, 3
EXIT_CTRL_C = 128 + signal.SIGINT
#: Signals that stop a job like Ctrl-C does (those this platform has).
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGBREAK") if hasattr(signal, name)
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
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
        description="Transcribe audio and video files, and directories searched for "
        f"them ({' '.join(sorted(suffix.lstrip('.') for suffix in AUDIO_SUFFIXES))}). "
        "Without --out-dir the transcripts are printed; with it, one file per input "
        "and format is written and a journal makes the job resumable (--resume).",
    )
    run.add_argument("paths", nargs="*", help="audio files or directories")
    run.add_argument(
        "--cuts",
        type=Path,
        metavar="MANIFEST",
        help="transcribe the cuts of a lhotse CutSet or RecordingSet manifest "
        "(.jsonl or .jsonl.gz) instead of files; each over its own span and channels",
    )
    run.add_argument(
        "--per-supervision",
        action="store_true",
        help="with --cuts: one transcript per supervision segment (re-labelling a corpus)",
    )
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
        choices=[*available_formats(), LHOTSE_FORMAT],
        help="output format; repeat for several (default: txt); lhotse writes one "
        f"manifest of the --cuts with their new supervisions ({LHOTSE_MANIFEST})",
    )
    run.add_argument("--batch-size", type=_positive_int, default=16, help="inputs per model call")
    run.add_argument(
        "--batch-duration",
        type=_positive_float,
        default=DEFAULT_BATCH_DURATION,
        metavar="SECONDS",
        help="most seconds of audio per model call, counted padded to its longest input "
        f"(default: {DEFAULT_BATCH_DURATION:g}); lower it if the model runs out of memory",
    )
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument(
        "--num-workers",
        type=_non_negative_int,
        help="threads preparing the next batches while the model runs (0: none; "
        "default: from the core count)",
    )
    run.add_argument(
        "--audio-stream",
        type=_non_negative_int,
        metavar="N",
        help="transcribe a container's audio stream N (default: 0, the first); "
        "a file without it fails on its own",
    )
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
        "--no-progress",
        action="store_true",
        help="no progress bar (shown on a terminal): a plain progress line every 10 s at "
        "most instead, as when stderr is not a terminal",
    )
    run.add_argument(
        "--temp-dir",
        help="root of the job's private temp workspace; audio is never written there (it is "
        "decoded in memory). Default: a private folder in the system temp dir; one that is "
        "not yours or is writable by others gets a private folder inside it",
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


def _show_progress(args: argparse.Namespace) -> ShowProgress:
    """A bar on a terminal; plain log lines with --no-progress or without one."""
    return "log" if args.no_progress else True


def _spec(args: argparse.Namespace) -> TranscriberSpec:
    options = TranscribeOptions(
        task=args.task,
        language=args.language,
        target_language=args.target_language,
        punctuation=not args.no_punctuation,
        timestamps=args.timestamps,
    )
    return TranscriberSpec(
        args.backend,
        args.model,
        device=args.device,
        batch_size=args.batch_size,
        batch_duration=args.batch_duration,
        workspace_root=args.temp_dir,
        num_workers=args.num_workers,
        audio_stream=args.audio_stream,
        options=options,
    )


def _transcriber(args: argparse.Namespace) -> Transcriber:
    return _spec(args).build(show_progress=_show_progress(args))


def _error(message: str) -> None:
    write_line(f"speakeasy-core: error: {message}", sys.stderr)


def _print_transcripts(transcriber: Transcriber, inputs: list[JobInput], fmt: str) -> int:
    failed = 0
    for result in transcriber.iter_transcribe([item.audio for item in inputs]):
        if result.ok:
            write_line(render(result, fmt).rstrip("\n"), sys.stdout)
        else:
            failed += 1
            _error(f"{result.source}: {result.error_type}: {result.error}")
        sys.stdout.flush()
    return failed


def _summarise(summary: JobSummary, out_dir: Path, seconds: float) -> None:
    for source, error in summary.failures:
        sys.stderr.write(f"failed: {source}: {error}\n")
    rewritten = f" ({summary.rewritten} with outputs rewritten)" if summary.rewritten else ""
    sys.stderr.write(
        f"{summary.transcribed} transcribed, {summary.skipped} already done{rewritten}, "
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
    with ray_session(args.ray_address, show_progress=False):  # ours instead of Ray Data's
        options = options_for_formats(spec.options, formats, probe(spec, pool))
        spec = replace(spec, options=options)
        started = time.monotonic()
        summary = run_ray_job(
            spec,
            inputs,
            args.out_dir,
            formats=formats,
            resume=args.resume,
            pool=pool,
            show_progress=_show_progress(args),
        )
    _summarise(summary, args.out_dir, time.monotonic() - started)
    return EXIT_FAILED if summary.failed else EXIT_OK


def _usage_problem(args: argparse.Namespace, formats: list[str], on_ray: bool) -> str | None:
    """What is wrong with the command line's combination of options, if anything."""
    problems = [
        (args.out_dir is None and len(formats) > 1, "several formats need --out-dir"),
        (args.out_dir is None and LHOTSE_FORMAT in formats, "--format lhotse needs --out-dir"),
        (on_ray and args.out_dir is None, "--ray needs --out-dir"),
        (not args.paths and args.cuts is None, "give audio files or directories, or --cuts"),
        (bool(args.paths) and args.cuts is not None, "give audio paths or --cuts, not both"),
        (on_ray and args.cuts is not None, "--ray does not take --cuts yet"),
        (args.per_supervision and args.cuts is None, "--per-supervision needs --cuts"),
        (LHOTSE_FORMAT in formats and args.cuts is None, "--format lhotse needs --cuts"),
    ]
    return next((message for wrong, message in problems if wrong), None)


def _transcribe(args: argparse.Namespace) -> int:
    formats = args.format or ["txt"]
    on_ray = args.ray or args.ray_address is not None
    problem = _usage_problem(args, formats, on_ray)
    if problem is not None:
        _error(problem)
        return EXIT_USAGE
    file_formats = [fmt for fmt in formats if fmt != LHOTSE_FORMAT]
    if args.cuts is None:
        inputs = plan_outputs(expand_inputs(args.paths), file_formats)
        job: object = inputs
    else:
        job = load_manifest(args.cuts)
        found = cut_inputs(job, origin=args.cuts, per_supervision=args.per_supervision)
        inputs = plan_outputs(found, file_formats)
    with ExitStack() as stack:
        # Everything about where results go is checked before the model loads.
        if args.out_dir is not None:
            stack.enter_context(job_lock(prepare_out_dir(args.out_dir)))
        if on_ray:
            return _run_on_ray(args, inputs, formats)
        TempWorkspace(args.temp_dir).cleanup()
        return _run_here(args, inputs, job, formats)


def _run_here(
    args: argparse.Namespace, inputs: list[JobInput], job: object, formats: list[str]
) -> int:
    """Run the job here: ``inputs`` are printed without --out-dir; ``job`` (the inputs,
    or the CutSet they came from) is run into --out-dir."""
    with _transcriber(args) as transcriber:
        transcriber.options = options_for_formats(
            transcriber.options, formats, transcriber.capabilities
        )
        if args.out_dir is None:
            failed = _print_transcripts(transcriber, inputs, formats[0])
            return EXIT_FAILED if failed else EXIT_OK
        started = time.monotonic()
        summary = run_job(
            transcriber,
            job,
            args.out_dir,
            formats=formats,
            resume=args.resume,
            per_supervision=args.per_supervision,
        )
        _summarise(summary, args.out_dir, time.monotonic() - started)
        return EXIT_FAILED if summary.failed else EXIT_OK


def _signal_main_thread(signum: int) -> None:
    """Deliver ``signum`` to the main thread: a real signal where there are thread
    signals (it interrupts a blocking call), else its handler's next chance (Windows)."""
    if hasattr(signal, "pthread_kill"):
        signal.pthread_kill(threading.main_thread().ident or 0, signum)
    else:
        _thread.interrupt_main(signal.Signals(signum))


@contextmanager
def _stop_signals_interrupt() -> Iterator[None]:
    """For the block, :data:`STOP_SIGNALS` raise :class:`Interrupted` as Ctrl-C raises
    KeyboardInterrupt (once: a repeat is ignored while the job cleans up). A signal
    already ignored (``nohup``) stays ignored; outside the main thread nothing changes.

    Python swallows an exception raised inside a ``__del__`` or a collected generator
    ("Exception ignored in ..."): a stop that lands there is delivered again moments
    later, so the job never goes on deaf to it (unless the block ends first).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise Interrupted(signum, signal.Signals(signum).name)

    hook = sys.unraisablehook
    pending: list[threading.Timer] = []

    def redeliver(unraisable: sys.UnraisableHookArgs) -> None:
        nonlocal stopping
        lost = unraisable.exc_value
        if not isinstance(lost, KeyboardInterrupt):
            hook(unraisable)
            return
        logger.debug("a stop landed in %r; delivering it again", unraisable.object)
        stopping = False
        # Not from here (what this hook raises is swallowed too): a moment later, in
        # whatever the main thread runs then, waking it from a blocking call.
        signum = lost.signum if isinstance(lost, Interrupted) else signal.SIGINT
        again = threading.Timer(_REDELIVER_SECONDS, _signal_main_thread, (signum,))
        again.daemon = True
        again.start()
        pending.append(again)

    previous = {}
    for number in STOP_SIGNALS:
        if signal.getsignal(number) is signal.SIG_DFL:
            previous[number] = signal.signal(number, interrupt)
    sys.unraisablehook = redeliver
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for timer in pending:
            timer.cancel()
        for number, handler in previous.items():
            signal.signal(number, handler)


def _fatal(exc: BaseException, verbose: int) -> None:
    """One line naming the path and the cause; the traceback too with ``-v``."""
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, OSError) and not isinstance(exc, SpeakEasyError) and exc.filename:
        _error(f"{os.fsdecode(exc.filename)}: {exc.strerror}")
    else:
        _error(str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    args = _parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(LOGGER_NAME).setLevel(min(level, logging.INFO))  # plain progress lines
    if args.command == "backends":
        sys.stdout.write("\n".join(available_backends()) + "\n")
        return EXIT_OK
    try:
        with _stop_signals_interrupt():
            return _transcribe(args)
    except (SpeakEasyError, OSError) as exc:
        _fatal(exc, args.verbose)
        return EXIT_FATAL
    except KeyboardInterrupt as exc:
        name = exc.name if isinstance(exc, Interrupted) else "Ctrl-C"
        _error(f"interrupted ({name}); finished results are kept (rerun with --resume)")
        return exc.exit_status if isinstance(exc, Interrupted) else EXIT_CTRL_C


if __name__ == "__main__":
    sys.exit(main())
