"""Each extra installs and runs alone: optional packages are imported where they are used.

These run in every environment of CI's install matrix (.ci/matrix.toml): in the full one
they show that nothing imports an extra it does not use; in one without an extra they
show that the package, a folder job and the CLI work without it, and that asking for
it gives one line naming the extra to install (never a traceback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from speakeasy_core import BackendUnavailableError, Transcriber
from tests.extras import OPTIONAL_MODULES, missing
from tests.hostile import write_clip

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "audio" / "arctic_a0007.wav"


def python(code: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter of this environment, the repository importable."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# Appended to a child's code: prints the extras' modules it has imported.
LOADED_EXTRAS = f"""
import json, sys
extras = {sorted(OPTIONAL_MODULES)!r}
print(json.dumps(sorted({{name.split(".")[0] for name in sys.modules}} & set(extras))))
"""


def test_every_module_imports_without_importing_an_extra(tmp_path: Path) -> None:
    code = """
        import importlib, pkgutil
        import speakeasy_core
        for module in pkgutil.walk_packages(speakeasy_core.__path__, "speakeasy_core."):
            importlib.import_module(module.name)
    """
    done = python(textwrap.dedent(code) + LOADED_EXTRAS, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


def test_a_folder_job_with_subtitles_imports_no_extra(tmp_path: Path) -> None:
    """The CLI's folder job (--out-dir, srt and txt) with a backend of the caller's."""
    for name in ("a", "b"):
        write_clip(tmp_path / "in" / "sub" / f"{name}.wav", seconds=0.5)
    code = """
        import sys
        from speakeasy_core.backends import register_backend
        from speakeasy_core.cli import main
        from speakeasy_core.testing import MockBackend

        register_backend("mock", lambda **_: MockBackend(lambda item, options: "hello"))
        status = main(["transcribe", "--no-progress", "--backend", "mock", "in",
                       "--out-dir", "out", "--format", "srt", "--format", "txt"])
        assert status == 0, status
    """
    done = python(textwrap.dedent(code) + LOADED_EXTRAS, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
    for name in ("a", "b"):
        assert (tmp_path / "out" / "sub" / f"{name}.txt").read_text() == "hello\n"
        assert "hello" in (tmp_path / "out" / "sub" / f"{name}.srt").read_text()


# ------------------------------------------------------- what an install without it says


def without(extra: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        not missing(extra), reason=f"the [{extra}] extra is installed: runs where it is not"
    )


def cli(*args: str, cwd: Path) -> tuple[int, list[str]]:
    """Run ``speakeasy-core ARGS``; its exit status and stderr lines."""
    done = python(
        "import sys; from speakeasy_core.cli import main; sys.exit(main(sys.argv[1:]))",
        *args,
        cwd=cwd,
    )
    return done.returncode, done.stderr.splitlines()


def assert_names_the_extra(status: int, lines: list[str], extra: str) -> None:
    assert status == 3, lines
    assert len(lines) == 1, lines  # one line, no traceback
    assert lines[0].startswith("speakeasy-core: error: ")
    assert f"speakeasy_core[{extra}]" in lines[0]


@without("whisper")
@pytest.mark.parametrize("out_dir", [False, True], ids=["print", "out-dir"])
def test_the_default_backend_without_whisper_names_the_extra(tmp_path: Path, out_dir: bool) -> None:
    write_clip(tmp_path / "in" / "a.wav", seconds=0.5)
    args = ["transcribe", "--no-progress", "in", *(["--out-dir", "out"] if out_dir else [])]
    assert_names_the_extra(*cli(*args, cwd=tmp_path), "whisper")
    with pytest.raises(BackendUnavailableError, match=r"speakeasy_core\[whisper\]"):
        Transcriber().transcribe(EXAMPLE)


@without("nemo")
def test_a_nemo_backend_without_nemo_names_the_extra(tmp_path: Path) -> None:
    write_clip(tmp_path / "a.wav", seconds=0.5)
    (tmp_path / "model.nemo").write_bytes(b"not loaded")
    args = ["transcribe", "a.wav", "--backend", "parakeet", "--model", "model.nemo"]
    assert_names_the_extra(*cli(*args, cwd=tmp_path), "nemo")


@without("lhotse")
def test_cuts_without_lhotse_name_the_extra(tmp_path: Path) -> None:
    (tmp_path / "cuts.jsonl").write_text("{}\n")
    args = ["transcribe", "--cuts", "cuts.jsonl", "--out-dir", "out"]
    assert_names_the_extra(*cli(*args, cwd=tmp_path), "lhotse")


@without("ray")
def test_ray_without_ray_names_the_extra(tmp_path: Path) -> None:
    write_clip(tmp_path / "a.wav", seconds=0.5)
    args = ["transcribe", "a.wav", "--out-dir", "out", "--ray"]
    assert_names_the_extra(*cli(*args, cwd=tmp_path), "ray")
