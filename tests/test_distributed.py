"""Batch jobs on a real local multi-node Ray cluster (a head and a worker node).

The same inputs through the local job and the Ray job give the same journal and files;
a worker node killed mid-job still leaves every input in the journal exactly once; a
bad file is a per-file error; resume skips what is done; no temp workspace survives.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from tenacity import Retrying, retry_if_result, stop_after_delay, wait_fixed

from speakeasy_core.cli import main
from speakeasy_core.distributed import (
    RESULT_COLUMNS,
    RayPool,
    TranscriberSpec,
    _record_rows,
    probe,
    result_of,
    run_ray_job,
    transcribe_dataset,
)
from speakeasy_core.errors import InvalidOptionError, ModelLoadError
from speakeasy_core.job import (
    JOURNAL_NAME,
    JobInput,
    JobRecorder,
    JobSummary,
    expand_inputs,
    run_job,
)
from speakeasy_core.journal import read_journal
from speakeasy_core.progress import Progress
from speakeasy_core.tempfiles import OWNER_FILE
from speakeasy_core.types import TranscriptionResult
from tests.extras import reason
from tests.fixtures.nemo_models import write_nemo_wav

pytest.importorskip("ray", reason=reason("ray"))
import ray
import ray.data
from ray.cluster_utils import Cluster

pytestmark = pytest.mark.ray

NODE: dict[str, Any] = {"num_cpus": 1, "object_store_memory": 100 * 1024**2}
# Notice a killed node within about a second, not the default 30 s.
FAST_NODE_DEATH = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 300,
    "health_check_timeout_ms": 300,
    "health_check_failure_threshold": 3,
}


def test_no_cluster_to_connect_to_is_a_fatal_error(tmp_path: Path) -> None:
    # First in this file: "auto" looks for any Ray cluster running on this machine, and
    # the module's own starts with the first test that needs it.
    args = ["transcribe", str(tmp_path), "--out-dir", str(tmp_path / "out")]
    args += ["--ray-address", "auto"]
    code = f"import sys; from speakeasy_core.cli import main; sys.exit(main({args!r}))"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert "cannot connect to the Ray cluster at auto" in done.stderr


@dataclass
class LocalCluster:
    """A head node (this process's) and one worker node, one CPU each: a pool of two
    one-CPU actors has one actor on each node."""

    cluster: Cluster
    worker: Any

    def replace_worker(self) -> None:
        """Kill the worker node at once, then start a fresh one where its actor can
        restart."""
        self.cluster.remove_node(self.worker, allow_graceful=False)
        self.worker = self.cluster.add_node(**NODE)


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        env.delenv("RAY_ADDRESS", raising=False)
        head = Cluster(
            initialize_head=True,
            head_node_args={**NODE, "include_dashboard": False, "_system_config": FAST_NODE_DEATH},
        )
        try:
            local = LocalCluster(head, head.add_node(**NODE))
            head.wait_for_nodes()
            ray.init(address=head.address, log_to_driver=False)
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            context.wait_for_min_actors_s = 120  # both actors ready before work is handed out
            yield local
        finally:
            ray.shutdown()
            head.shutdown()  # type: ignore[no-untyped-call]


@pytest.fixture(scope="module")
def workspaces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The root of every actor's temp workspaces."""
    return tmp_path_factory.mktemp("workspaces")


@pytest.fixture(scope="module")
def spec(tiny_ctc_nemo: Path, workspaces: Path) -> TranscriberSpec:
    return TranscriberSpec(
        "parakeet", str(tiny_ctc_nemo), device="cpu", batch_size=2, workspace_root=str(workspaces)
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[JobInput]:
    """13 clips (two at 22.05 kHz, converted in the workspace; two in a subfolder) and
    one broken file."""
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "day2").mkdir()
    for i in range(13):
        path = folder / ("day2" if i % 6 == 5 else "") / f"clip{i:02d}.wav"
        write_nemo_wav(path, 0.5 + 0.1 * (i % 5), seed=i)
        if i % 6 == 1:
            sf.write(path, sf.read(path)[0], 22050)
    (folder / "broken.wav").write_bytes(b"not audio at all")
    return list(expand_inputs([str(folder)]))


def journal_of(out: Path) -> dict[str, TranscriptionResult]:
    """The journal's results by key; fails if any key is in it more than once."""
    entries = list(read_journal(out / JOURNAL_NAME))
    repeated = [key for key, count in Counter(key for key, _ in entries).items() if count > 1]
    assert not repeated
    return dict(entries)


def outputs_of(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted(out.rglob("*.*"))
        if p.name != JOURNAL_NAME
    }


def leftover_workspaces(root: Path) -> list[Path]:
    return sorted(root.glob("speakeasy-*"))


def journal_of_ok(out: Path) -> dict[str, TranscriptionResult]:
    """The successful results by key; fails if any input succeeded more than once."""
    entries = [(key, r) for key, r in read_journal(out / JOURNAL_NAME) if r.ok]
    assert len({key for key, _ in entries}) == len(entries)
    return dict(entries)


def owners_mid_call(root: Path) -> set[int]:
    """The pids of the processes with a temp workspace under ``root`` right now."""
    pids = set()
    for workspace in leftover_workspaces(root):
        try:
            pids.add(int(json.loads((workspace / OWNER_FILE).read_text())["pid"]))
        except (OSError, ValueError):  # a workspace being made or removed as we look
            continue
    return pids


@pytest.fixture(scope="module")
def local_run(
    spec: TranscriberSpec, corpus: list[JobInput], tmp_path_factory: pytest.TempPathFactory
) -> tuple[JobSummary, Path]:
    out = tmp_path_factory.mktemp("local")
    return run_job_locally(spec, corpus, out), out


def run_job_locally(spec: TranscriberSpec, inputs: list[JobInput], out: Path) -> JobSummary:
    return run_job(spec.build(), inputs, out, formats=("txt", "json"))


@pytest.fixture(scope="module")
def ray_reports() -> list[Progress]:
    """What the driver's progress callback got during ``ray_run``."""
    return []


@pytest.fixture(scope="module")
def ray_run(
    cluster: LocalCluster,
    spec: TranscriberSpec,
    corpus: list[JobInput],
    tmp_path_factory: pytest.TempPathFactory,
    ray_reports: list[Progress],
) -> tuple[JobSummary, Path]:
    out = tmp_path_factory.mktemp("ray")
    pool = RayPool(actors=2, inputs_per_call=3)
    summary = run_ray_job(
        spec, corpus, out, formats=("txt", "json"), pool=pool, progress=ray_reports.append
    )
    return summary, out


@pytest.mark.nemo
def test_ray_job_equals_the_local_job(
    local_run: tuple[JobSummary, Path], ray_run: tuple[JobSummary, Path]
) -> None:
    (local, local_out), (remote, ray_out) = local_run, ray_run
    counts = (remote.total, remote.transcribed, remote.skipped, remote.failures)
    assert counts == (local.total, local.transcribed, local.skipped, local.failures)
    assert remote.audio_seconds == pytest.approx(local.audio_seconds)
    assert remote.transcribed == 13
    expected = journal_of(local_out)
    assert journal_of(ray_out) == expected
    assert len({result.text for result in expected.values()}) > 5  # the texts differ
    assert outputs_of(ray_out) == outputs_of(local_out)


@pytest.mark.nemo
def test_a_bad_file_is_a_per_file_error(ray_run: tuple[JobSummary, Path]) -> None:
    summary, out = ray_run
    assert [Path(source).name for source, _ in summary.failures] == ["broken.wav"]
    failed = [r for r in journal_of(out).values() if not r.ok]
    assert [(Path(r.source).name, r.error_type) for r in failed] == [
        ("broken.wav", "AudioDecodeError")
    ]
    assert not (out / "broken.txt").exists()


@pytest.mark.nemo
def test_progress_comes_back_with_the_results(
    ray_run: tuple[JobSummary, Path], ray_reports: list[Progress]
) -> None:
    summary, _ = ray_run
    for before, after in itertools.pairwise(ray_reports):
        assert after.seconds_done >= before.seconds_done
        assert after.inputs_done >= before.inputs_done
    moving = {r.inputs_done for r in ray_reports}
    assert len(moving) > 3  # call by call, not all at the end
    last = ray_reports[-1]
    assert last.final
    assert last.seconds_done == pytest.approx(summary.audio_seconds)
    assert last.seconds_total == pytest.approx(last.seconds_done)
    assert (last.inputs_done, last.inputs_total, last.failed) == (14, 14, 1)


@pytest.mark.nemo
def test_no_temp_workspace_is_left(ray_run: tuple[JobSummary, Path], workspaces: Path) -> None:
    assert leftover_workspaces(workspaces) == []


@pytest.mark.nemo
def test_resume_skips_what_a_local_run_did(
    cluster: LocalCluster,
    spec: TranscriberSpec,
    corpus: list[JobInput],
    local_run: tuple[JobSummary, Path],
    tmp_path: Path,
) -> None:
    done_here = [item for item in corpus if item.stem != "broken"][:5]
    run_job_locally(spec, done_here, tmp_path)

    summary = run_ray_job(spec, corpus, tmp_path, formats=("txt", "json"), resume=True)

    assert (summary.total, summary.skipped, summary.transcribed, summary.failed) == (14, 5, 8, 1)
    reference = journal_of(local_run[1])
    assert journal_of_ok(tmp_path) == {key: r for key, r in reference.items() if r.ok}


@pytest.mark.nemo
def test_a_node_lost_mid_job_leaves_every_input_done_exactly_once(
    cluster: LocalCluster, spec: TranscriberSpec, workspaces: Path, tmp_path: Path
) -> None:
    # 40 inputs, one per actor call: plenty of calls left when the first result is in
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(40):
        write_nemo_wav(folder / f"clip{i:02d}.wav", 1.0 + 0.05 * (i % 7), seed=i % 9)
    inputs = list(expand_inputs([str(folder)]))
    lost_at: list[int] = []

    def lose_the_worker_node(done: int, total: int | None) -> None:
        if lost_at:
            return
        # Wait until both actors (one per node) are inside a call, then kill the node.
        both_busy = Retrying(
            retry=retry_if_result(lambda pids: len(pids) < 2),
            wait=wait_fixed(0.01),
            stop=stop_after_delay(60),
        )
        both_busy(owners_mid_call, workspaces)
        cluster.replace_worker()
        lost_at.append(done)

    out = tmp_path / "out"
    pool = RayPool(actors=2, inputs_per_call=1)
    summary = run_ray_job(
        spec, inputs, out, formats=("txt", "json"), pool=pool, progress=lose_the_worker_node
    )

    assert lost_at == [1]
    assert (summary.total, summary.transcribed, summary.failed) == (40, 40, 0)
    results = journal_of(out)  # each input once...
    assert sorted(Path(r.source).name for r in results.values()) == [p.path.name for p in inputs]
    run_job_locally(spec, inputs, tmp_path / "local")
    assert results == journal_of(tmp_path / "local")  # ...with what one process gives
    assert outputs_of(out) == outputs_of(tmp_path / "local")
    assert leftover_workspaces(workspaces) == []


@pytest.mark.nemo
def test_transcribe_dataset_from_a_manifest(
    cluster: LocalCluster, spec: TranscriberSpec, corpus: list[JobInput], tmp_path: Path
) -> None:
    manifest = tmp_path / "manifest.json"
    lines = [
        {"audio_filepath": str(p.path), "text": f"reference {n}"} for n, p in enumerate(corpus)
    ]
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")

    dataset = transcribe_dataset(
        ray.data.read_json(str(manifest)), spec, path_column="audio_filepath"
    )
    rows = sorted(dataset.take_all(), key=lambda row: int(row["text"].split()[1]))

    expected = spec.build().transcribe_batch([p.path for p in corpus])
    assert [row["text"] for row in rows] == [line["text"] for line in lines]  # kept
    assert [row["transcript"] for row in rows] == [r.text for r in expected]
    assert [row["error"] is None for row in rows] == [r.ok for r in expected]
    assert [result_of(row) for row in rows] == expected
    assert set(RESULT_COLUMNS) <= set(rows[0])


@pytest.mark.nemo
def test_cli_runs_the_job_on_the_cluster(
    cluster: LocalCluster,
    tiny_ctc_nemo: Path,
    corpus: list[JobInput],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = str(corpus[0].path.parent)
    common = ["transcribe", folder, "--backend", "parakeet", "--model", str(tiny_ctc_nemo)]
    common += ["--device", "cpu", "--format", "srt", "--format", "txt", "--no-progress"]

    assert main([*common, "--out-dir", str(tmp_path / "local")]) == 1

    # A driver of its own, as a user runs it; it never imports torch or NeMo.
    args = [*common, "--out-dir", str(tmp_path / "ray"), "--ray-address", cluster.cluster.address]
    code = (
        "import sys; from speakeasy_core.cli import main\n"
        f"status = main({[*args, '--ray-actors', '2']!r})\n"
        "sys.exit(status if 'torch' not in sys.modules and 'nemo' not in sys.modules else 99)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    assert "broken.wav: AudioDecodeError" in done.stderr
    assert "13 transcribed, 0 already done, 1 failed, of 14 inputs" in done.stderr
    assert journal_of(tmp_path / "ray") == journal_of(tmp_path / "local")
    assert outputs_of(tmp_path / "ray") == outputs_of(tmp_path / "local")

    capsys.readouterr()
    assert main([*args, "--resume"]) == 1  # in this process, already connected
    assert "0 transcribed, 13 already done, 1 failed, of 14 inputs" in capsys.readouterr().err
    assert ray.is_initialized()  # the CLI left the connection it found alone


@pytest.mark.nemo
def test_a_bad_model_fails_before_the_journal_is_touched(
    cluster: LocalCluster, corpus: list[JobInput], tmp_path: Path
) -> None:
    spec = TranscriberSpec("parakeet", str(tmp_path / "missing.nemo"), device="cpu")
    with pytest.raises(ModelLoadError, match=r"missing\.nemo"):
        run_ray_job(spec, corpus, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.nemo
def test_probe_reports_the_model_capabilities(cluster: LocalCluster, spec: TranscriberSpec) -> None:
    with spec.build() as local:
        assert probe(spec, RayPool(num_gpus=0)) == local.capabilities


def test_repeated_rows_are_dropped_and_missing_ones_recorded_as_failures(
    tmp_path: Path,
) -> None:
    items = [JobInput(tmp_path / f"{name}.wav", name) for name in ("a", "b", "c", "d")]
    todo = [(f"key-{item.stem}", item) for item in items]

    def row(index: int, text: str) -> dict[str, Any]:
        result = TranscriptionResult(str(items[index].path), text, duration=1.0)
        return {"index": np.int64(index), "result": json.dumps(result.to_dict())}

    reports: list[Progress] = []
    rows = [row(1, "first"), row(0, "zero"), row(1, "rerun")]
    with JobRecorder.open({"job": "test"}, tmp_path / "out") as job:
        _record_rows(job, todo, rows, reports.append)

    results = journal_of(tmp_path / "out")
    assert [(key, r.text, r.error_type) for key, r in results.items()] == [
        ("key-b", "first", None),
        ("key-a", "zero", None),
        ("key-c", "", "TranscriptionError"),
        ("key-d", "", "TranscriptionError"),
    ]
    assert "c.wav: no result came back" in (results["key-c"].error or "")
    assert (job.summary.transcribed, job.summary.failed) == (2, 2)
    # Seconds as results come back; the total reckoned from them until all are in.
    seen = [(r.inputs_done, r.seconds_done, r.seconds_total, r.failed) for r in reports]
    assert seen == [
        (0, 0.0, None, 0),
        (0, 0.0, 4.0, 0),
        (1, 1.0, 4.0, 0),
        (1, 1.0, 4.0, 0),
        (2, 2.0, 4.0, 0),
        (3, 2.0, 3.0, 1),
        (4, 2.0, 2.0, 2),
        (4, 2.0, 2.0, 2),
    ]
    assert [r.estimated for r in reports] == [False] + [True] * 5 + [False] * 2
    assert reports[-1].final


@pytest.mark.parametrize(
    ("field", "value"),
    [("actors", 0), ("num_gpus", -1.0), ("num_cpus", 0.0), ("inputs_per_call", 0)],
)
def test_pool_settings_are_checked(field: str, value: float) -> None:
    settings: dict[str, Any] = {field: value}
    with pytest.raises(InvalidOptionError, match=field):
        RayPool(**settings)


def test_cli_ray_needs_out_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transcribe", str(tmp_path), "--ray"]) == 2
    assert "--ray needs --out-dir" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["transcribe", str(tmp_path), "--out-dir", "x", "--ray-gpus-per-actor", "-1"])


def test_importing_the_cli_does_not_import_ray() -> None:
    code = "import sys, speakeasy_core.cli; sys.exit('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_without_the_ray_extra_the_cli_says_what_to_install(tmp_path: Path) -> None:
    args = ["transcribe", str(tmp_path), "--out-dir", str(tmp_path / "out"), "--ray"]
    code = (
        "import sys; sys.modules['ray'] = None  # as if Ray were not installed\n"
        f"from speakeasy_core.cli import main; sys.exit(main({args!r}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 3, done.stderr
    assert "pip install 'speakeasy_core[ray]'" in done.stderr
