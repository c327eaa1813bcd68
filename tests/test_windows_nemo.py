"""The seed's bug on Windows, and the CLI end to end there (marker ``windows``).

Raw NeMo ``transcribe()`` whose forward pass raises dies with ``PermissionError:
[WinError 32]`` on its own ``TemporaryDirectory``'s ``manifest.json``, hiding the real
error and leaving the directory behind; that it does so here proves the lane runs real
Win32 file semantics. :class:`~speakeasy_core.Transcriber` on the same model and inputs
returns per-file errors and leaves nothing.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from speakeasy_core import Transcriber
from speakeasy_core.backends.nemo import NeMoBackend
from tests.fixtures.nemo_models import nemo_wav_file, write_nemo_wav

pytestmark = pytest.mark.windows

REPO = Path(__file__).resolve().parent.parent
logger = logging.getLogger(__name__)


class ForwardFailed(RuntimeError):
    """The real error of a failing model (an out-of-memory, a bad kernel)."""


def fail_forward(model: Any) -> Any:
    def hook(module: Any, args: Any) -> None:
        raise ForwardFailed("encoder exploded")

    return model.encoder.register_forward_pre_hook(hook)


@pytest.fixture
def system_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh directory as the process's temp dir (where NeMo's TemporaryDirectory goes)."""
    path = tmp_path / "system-temp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    return path


@pytest.fixture
def clips(tmp_path: Path) -> list[Path]:
    return [nemo_wav_file(tmp_path / f"clip{i}.wav", 1.0, seed=i) for i in range(2)]


@pytest.mark.nemo
def test_raw_nemo_reproduces_winerror_32_and_leaks_its_temp_dir(
    tiny_ctc_nemo: Path, clips: list[Path], system_temp: Path
) -> None:
    from nemo.collections.asr.models import ASRModel

    model = ASRModel.restore_from(str(tiny_ctc_nemo), map_location="cpu")
    fail_forward(model)
    with pytest.raises(PermissionError) as caught:
        model.transcribe([str(clip) for clip in clips], batch_size=2)
    error = caught.value
    logger.info("raw NeMo raised %s: %s", type(error).__name__, error)
    assert getattr(error, "winerror", None) == 32
    assert Path(error.filename).name == "manifest.json"
    chain: list[BaseException] = [error]
    while chain[-1].__context__ is not None:
        chain.append(chain[-1].__context__)
    assert any(isinstance(e, ForwardFailed) for e in chain)  # the real error, hidden
    leftovers = list(system_temp.rglob("manifest.json"))
    assert [p.parent.parent for p in leftovers] == [system_temp]


@pytest.mark.nemo
def test_transcriber_on_the_same_failure_gives_per_file_errors_and_leaves_nothing(
    tiny_ctc_nemo: Path, clips: list[Path], system_temp: Path, tmp_path: Path
) -> None:
    root = tmp_path / "workspaces"
    with Transcriber("parakeet", tiny_ctc_nemo, device="cpu", workspace_root=root) as t:
        backend = t.backend
        assert isinstance(backend, NeMoBackend)
        backend.load()
        hook = fail_forward(backend.model)
        results = t.transcribe_batch(clips)
        hook.remove()
        recovered = t.transcribe(clips[0])
    assert [r.source for r in results] == [str(clip) for clip in clips]
    assert all(not r.ok for r in results)
    assert all("encoder exploded" in (r.error or "") for r in results)
    assert recovered.ok
    assert list(system_temp.iterdir()) == []
    assert not root.exists() or list(root.iterdir()) == []


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``speakeasy-core ARGS`` as a separate Windows process (the entry point's module)."""
    return subprocess.run(
        [sys.executable, "-m", "speakeasy_core.cli", *args],
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.nemo
def test_cli_folder_job_on_a_tiny_nemo_model(tiny_ctc_nemo: Path, tmp_path: Path) -> None:
    folder = tmp_path / "recordings"
    (folder / "day1").mkdir(parents=True)
    for i, name in enumerate(("day1/intro", "day1/outro", "summary")):
        write_nemo_wav(folder / f"{name}.wav", 1.0 + i / 2, seed=i)
    (folder / "broken.wav").write_bytes(b"not audio")
    out = tmp_path / "out"
    done = cli(
        "transcribe",
        "--no-progress",
        str(folder),
        "--backend",
        "parakeet",
        "--model",
        str(tiny_ctc_nemo),
        "--device",
        "cpu",
        "--out-dir",
        str(out),
        "--format",
        "txt",
        "--format",
        "json",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr  # one input failed, the rest done
    assert "3 transcribed, 0 already done, 1 failed, of 4 inputs" in done.stderr
    assert "Traceback" not in done.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.*"))
    assert written == [
        "day1/intro.json",
        "day1/intro.txt",
        "day1/outro.json",
        "day1/outro.txt",
        "speakeasy-journal.jsonl",
        "summary.json",
        "summary.txt",
    ]


@pytest.mark.whisper
def test_readme_main_command_on_the_embedded_whisper(tmp_path: Path) -> None:
    example = REPO / "examples" / "audio" / "arctic_a0007.wav"
    done = cli("transcribe", "--no-progress", str(example), cwd=REPO)
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip().lower().rstrip(".")
    assert text == "and you always want to see it in the superlative degree"
