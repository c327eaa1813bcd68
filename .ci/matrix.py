"""Runs the install matrix of .ci/matrix.toml: fresh venvs, their tests, CLI smoke jobs,
the wheel and the API reference. Prints the time of every part.

    python3 .ci/matrix.py                 # every row, then wheel and docs
    python3 .ci/matrix.py whisper-3.13 wheel
    python3 .ci/matrix.py --github        # the rows as JSON, for the GitHub workflow

Venvs are made with uv (installed into .matrix/tools with pip), which shares one cache
across them. uv does not read pip's configuration, so the find-links pip is configured
with (where this machine keeps its torch CPU wheel) are passed on explicitly; the
project's constraints.txt pins torch as for every install.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = Path(os.environ.get("SPEAKEASY_MATRIX_DIR", REPO / ".matrix"))
EXAMPLE = REPO / "examples" / "audio" / "arctic_a0007.wav"
EXAMPLE_WORDS = "superlative degree"
BIN = "Scripts" if os.name == "nt" else "bin"
EXE = ".exe" if os.name == "nt" else ""

timings: list[tuple[str, float, str]] = []


class Failed(Exception):
    """A part of the matrix failed; the message says which and why."""


def step(name: str, action: Callable[[], str | None]) -> None:
    """Run ``action``, record its time and outcome; raise Failed after recording."""
    print(f"matrix: {name} ...", flush=True)
    started = time.monotonic()
    try:
        note = action() or "ok"
    except Failed as exc:
        timings.append((name, time.monotonic() - started, f"FAILED: {exc}"))
        print(f"matrix: {name} FAILED: {exc}", flush=True)
        raise
    seconds = time.monotonic() - started
    timings.append((name, seconds, note))
    print(f"matrix: {name}: {note} ({seconds:.0f} s)", flush=True)


def run(args: Sequence[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    """Run a command, echoing it; its output goes to the log."""
    print("  $", " ".join(str(arg) for arg in args), flush=True)
    return subprocess.run([str(arg) for arg in args], text=True, check=False, **kwargs)  # type: ignore[call-overload]


def must(args: Sequence[str | Path], what: str, **kwargs: object) -> None:
    done = run(args, **kwargs)
    if done.returncode != 0:
        raise Failed(f"{what} (exit {done.returncode})")


# ------------------------------------------------------------------------- tools


def find_python(version: str) -> str:
    """An interpreter of ``version`` (X.Y): pyenv's, else pythonX.Y on PATH."""
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    found = sorted(
        glob.glob(str(root / "versions" / f"{version}.*" / "bin" / f"python{version}")),
        key=lambda path: [int(part) for part in re.findall(r"\d+", Path(path).parts[-3])],
    )
    candidates = [*reversed(found), shutil.which(f"python{version}"), shutil.which("python")]
    for candidate in filter(None, candidates):
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    raise Failed(f"no Python {version} (pyenv or python{version} on PATH)")


def pip_find_links() -> list[str]:
    """The find-links of pip's configuration (files and environment), for uv."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    links: list[str] = []
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(".find-links"):
            links += [link for link in value.strip().strip("'\"").split() if link not in links]
    return links


def uv() -> Path:
    tools = WORK / "tools"
    exe = tools / BIN / f"uv{EXE}"
    if not exe.exists():
        must([sys.executable, "-m", "venv", tools], "making the tools venv")
        must(
            [tools / BIN / f"python{EXE}", "-m", "pip", "install", "-qq", "uv>=0.9", "twine>=6.1"],
            "installing uv and twine",
        )
    return exe


def uv_env() -> dict[str, str]:
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_NO_PROGRESS": "1"}
    links = pip_find_links()
    if links and "UV_FIND_LINKS" not in env:
        env["UV_FIND_LINKS"] = " ".join(links)
    return env


def make_venv(name: str, python: str, requirements: Sequence[str], *, editable: bool) -> Path:
    """A fresh venv at .matrix/NAME with ``requirements`` (the repo itself: "." + extras)."""
    venv = WORK / name
    shutil.rmtree(venv, ignore_errors=True)
    env = uv_env()
    must([uv(), "venv", "-q", "--python", find_python(python), venv], f"uv venv {name}", env=env)
    install = [uv(), "pip", "install", "-q", "--python", venv / BIN / f"python{EXE}"]
    install += ["-c", REPO / "constraints.txt"]
    for requirement in requirements:
        install += (
            ["-e", requirement] if editable and requirement.startswith(".") else [requirement]
        )
    must(install, f"installing {' '.join(requirements)}", cwd=REPO, env=env)
    return venv


def spec(extras: Sequence[str]) -> str:
    return f".[{','.join(extras)}]" if extras else "."


# ---------------------------------------------------------------------------- rows


def pytest_summary(output: str) -> str:
    lines = [line for line in output.splitlines() if re.search(r" in [\d.]+s( \(|$)", line)]
    return lines[-1].strip("= ") if lines else "no pytest summary"


def run_pytest(venv: Path, extras: Sequence[str], args: Sequence[str]) -> str:
    env = {**os.environ, "SPEAKEASY_TEST_EXTRAS": ",".join(extras)}
    env.pop("PYTHONPATH", None)
    command = [
        venv / BIN / f"python{EXE}",
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rs",
        *args,
    ]
    print("  $", " ".join(str(part) for part in command), flush=True)
    with subprocess.Popen(
        [str(part) for part in command],
        cwd=REPO,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as child:
        assert child.stdout is not None
        output = []
        for line in child.stdout:
            sys.stdout.write(line)
            output.append(line)
    summary = pytest_summary("".join(output))
    if child.returncode == 5:
        raise Failed(f"pytest collected no tests ({' '.join(args)})")
    if child.returncode != 0:
        raise Failed(f"pytest exit {child.returncode}: {summary}")
    return summary


def recordings(folder: Path) -> Path:
    """A folder job's input: the example twice, one in a subfolder."""
    (folder / "rec" / "sub").mkdir(parents=True)
    shutil.copyfile(EXAMPLE, folder / "rec" / "arctic.wav")
    shutil.copyfile(EXAMPLE, folder / "rec" / "sub" / "again.wav")
    return folder / "rec"


def cli_smoke(venv: Path, kind: str) -> str:
    """The ``speakeasy-core`` console script on a folder, as a user runs it."""
    cli = venv / BIN / f"speakeasy-core{EXE}"
    with tempfile.TemporaryDirectory(prefix="matrix-cli-") as name:
        here = Path(name)
        rec = recordings(here)
        job = [
            cli,
            "transcribe",
            rec,
            "--out-dir",
            here / "out",
            "--format",
            "srt",
            "--format",
            "txt",
            "--no-progress",
        ]
        if kind == "no-backend":
            done = run(job, cwd=here, capture_output=True)
            lines = done.stderr.splitlines()
            if done.returncode != 3 or len(lines) != 1 or "speakeasy_core[whisper]" not in lines[0]:
                raise Failed(f"no backend: exit {done.returncode}, stderr {done.stderr!r}")
            return f"exit 3, one line: {lines[0]}"
        if kind == "nemo":
            python = venv / BIN / f"python{EXE}"
            build = (
                "from speakeasy_core.testing.tiny_nemo import build_tiny_ctc; build_tiny_ctc('m')"
            )
            must([python, "-c", build], "building a tiny NeMo model", cwd=here)
            job += ["--backend", "parakeet", "--model", here / "m" / "tiny-ctc.nemo"]
        must(job, f"the {kind} folder job", cwd=here)
        outputs = sorted(
            path.relative_to(here / "out").as_posix()
            for path in (here / "out").rglob("*.*")
            if path.suffix in {".srt", ".txt"}
        )
        expected = ["arctic.srt", "arctic.txt", "sub/again.srt", "sub/again.txt"]
        if outputs != expected:
            raise Failed(f"outputs {outputs}, expected {expected}")
        text = (here / "out" / "arctic.txt").read_text(encoding="utf-8")
        if kind == "whisper" and EXAMPLE_WORDS not in text.lower():
            raise Failed(f"whisper transcribed {text!r}")
        return f"{len(outputs)} outputs: {text.strip()[:60]!r}"


def run_row(row: dict[str, object]) -> None:
    name, python = str(row["name"]), str(row["python"])
    extras = [str(extra) for extra in row["extras"]]  # type: ignore[attr-defined]
    holder: dict[str, Path] = {}

    def install() -> str:
        holder["venv"] = make_venv(name, python, [spec([*extras, "test"])], editable=True)
        return f"Python {python}, {spec(extras)}"

    step(f"{name}: install", install)
    step(f"{name}: pytest", lambda: run_pytest(holder["venv"], extras, row["pytest"]))  # type: ignore[arg-type]
    step(f"{name}: cli {row['cli']}", lambda: cli_smoke(holder["venv"], str(row["cli"])))


def check_dist(dist: Path) -> str:
    """Both files there, twine --strict happy, and the wheel holds what it must."""
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        raise Failed(f"expected one wheel and one sdist, got {[p.name for p in dist.iterdir()]}")
    must(
        [WORK / "tools" / BIN / f"twine{EXE}", "check", "--strict", wheels[0], sdists[0]],
        "twine check",
    )
    init = (REPO / "speakeasy_core" / "__init__.py").read_text(encoding="utf-8")
    version = re.search(r'^__version__ = "(.+)"', init, re.M)
    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode()
    needed = {
        "speakeasy_core/py.typed": any(n == "speakeasy_core/py.typed" for n in names),
        "licenses/LICENSE": any(n.endswith(".dist-info/licenses/LICENSE") for n in names),
        "License-Expression: Apache-2.0": "License-Expression: Apache-2.0" in text,
        f"Version: {version and version[1]}": f"Version: {version and version[1]}\n" in text,
        "no tests in the wheel": not any(n.startswith("tests/") for n in names),
    }
    missing = [what for what, ok in needed.items() if not ok]
    if missing:
        raise Failed(f"{wheels[0].name} lacks {missing}")
    return f"{wheels[0].name}, {sdists[0].name}: twine --strict ok, {', '.join(needed)}"


def run_wheel(config: dict[str, object]) -> None:
    dist = WORK / "dist"
    python = str(config["python"])
    extras = [str(extra) for extra in config["extras"]]  # type: ignore[attr-defined]

    def build() -> str:
        shutil.rmtree(dist, ignore_errors=True)
        must(
            [uv(), "build", "-q", "--python", find_python(python), "--out-dir", dist, REPO],
            "uv build (sdist, then the wheel from it)",
            env=uv_env(),
        )
        return ", ".join(sorted(path.name for path in dist.glob("speakeasy_core-*")))

    step("wheel: build", build)
    step("wheel: check", lambda: check_dist(dist))
    holder: dict[str, Path] = {}

    def install() -> str:
        wheel = next(dist.glob("*.whl"))
        holder["venv"] = make_venv(
            "wheel",
            python,
            [f"speakeasy_core[{','.join(extras)}] @ {wheel.as_uri()}"],
            editable=False,
        )
        return f"{wheel.name}[{','.join(extras)}], not editable"

    step("wheel: install", install)

    def smoke() -> str:
        python_exe = holder["venv"] / BIN / f"python{EXE}"
        with tempfile.TemporaryDirectory(prefix="matrix-wheel-") as here:
            code = (
                "import importlib.metadata as m, pathlib, speakeasy_core as s; "
                "assert pathlib.Path(s.__file__).parent.joinpath('py.typed').exists(); "
                "assert m.version('speakeasy_core') == s.__version__; "
                "assert 'site-packages' in s.__file__, s.__file__; "
                "print(s.__version__, s.__file__)"
            )
            must(
                [python_exe, "-I", "-c", code], "import smoke from outside the repository", cwd=here
            )
            must(
                [holder["venv"] / BIN / f"speakeasy-core{EXE}", "backends"],
                "speakeasy-core backends",
                cwd=here,
            )
        return cli_smoke(holder["venv"], "whisper" if "whisper" in extras else "no-backend")

    step("wheel: import and cli", smoke)


def run_docs(config: dict[str, object]) -> None:
    holder: dict[str, Path] = {}
    extras = [str(extra) for extra in config["extras"]]  # type: ignore[attr-defined]

    def install() -> str:
        holder["venv"] = make_venv("docs", str(config["python"]), [spec(extras)], editable=True)
        return spec(extras)

    step("docs: install", install)

    def build() -> str:
        out = WORK / "docs-html"
        shutil.rmtree(out, ignore_errors=True)
        sphinx = holder["venv"] / BIN / f"sphinx-build{EXE}"
        must(
            [sphinx, "-W", "--keep-going", "-q", "-b", "html", REPO / "docs", out],
            "sphinx-build -W (warnings are errors)",
        )
        return f"{sum(1 for _ in out.rglob('*.html'))} pages in {out}"

    step("docs: API reference", build)


# ---------------------------------------------------------------------------- main


def main(argv: Sequence[str]) -> int:
    config = tomllib.loads((REPO / ".ci" / "matrix.toml").read_text(encoding="utf-8"))
    rows = {str(row["name"]): row for row in config["rows"]}
    if list(argv) == ["--github"]:
        print(json.dumps([{"name": name, "python": row["python"]} for name, row in rows.items()]))
        return 0
    wanted = list(argv) or [*rows, "wheel", "docs"]
    unknown = [name for name in wanted if name not in rows and name not in ("wheel", "docs")]
    if unknown:
        print(f"matrix: unknown rows {unknown}; rows: {[*rows, 'wheel', 'docs']}", file=sys.stderr)
        return 2
    WORK.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    failed = []
    for name in wanted:
        try:
            if name == "wheel":
                run_wheel(config["wheel"])
            elif name == "docs":
                run_docs(config["docs"])
            else:
                run_row(rows[name])
        except Failed:
            failed.append(name)  # the other rows still run: one report names every failure
    print("\nmatrix: time by part")
    for part, seconds, note in timings:
        print(f"  {seconds:6.0f} s  {part}: {note}")
    print(f"  {time.monotonic() - started:6.0f} s  matrix in all")
    if failed:
        print(f"matrix FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
