"""Temp-root trust, for real: a symlinked per-user root, a 0777 root owned by another
user (chowned to nobody), planted workspaces; the sweep never runs in an unchecked
root and never follows a link."""

from __future__ import annotations

import json
import os
import platform
import stat
import tempfile
from pathlib import Path

import pytest

from speakeasy_core import Transcriber
from speakeasy_core.cli import main
from speakeasy_core.errors import TempFileError, TempRootError
from speakeasy_core.tempfiles import (
    OWNER_FILE,
    TempWorkspace,
    atomic_write_bytes,
    default_root,
    sweep_stale,
    trusted_root,
)
from speakeasy_core.testing import MockBackend

pytestmark = [
    pytest.mark.skipif(os.name != "posix", reason="POSIX owners, modes and symlinks"),
    pytest.mark.usefixtures("no_pending_cleanups"),
]

NOBODY = 65534


# evaluated at import, also where the module's tests are all skipped (Windows)
needs_root = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0, reason="chown to another user needs root"
)


def plant_stale_workspace(root: Path, name: str = "speakeasy-planted") -> Path:
    """A workspace whose owner record names a dead process: what the sweep removes."""
    workspace = root / name
    workspace.mkdir(parents=True)
    dead = {"pid": 2**22 + 7, "host": platform.node(), "started": None}
    (workspace / OWNER_FILE).write_text(json.dumps(dead), encoding="utf-8")
    (workspace / "precious.txt").write_text("not yours to delete", encoding="utf-8")
    return workspace


def test_a_symlinked_default_root_is_refused_and_its_target_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    target = tmp_path / "victim"
    planted = plant_stale_workspace(target)
    default_root().symlink_to(target, target_is_directory=True)

    with pytest.raises(TempRootError, match="symlink") as info:
        sweep_stale()
    assert info.value.filename == str(default_root())
    with pytest.raises(TempRootError, match="symlink"):
        TempWorkspace()
    backend = MockBackend()
    with pytest.raises(TempRootError):
        Transcriber(backend).load()  # the sweep runs first: refused before the model loads
    assert backend.loads == 0
    assert sorted(p.name for p in planted.iterdir()) == [OWNER_FILE, "precious.txt"]
    assert [p.name for p in target.iterdir()] == ["speakeasy-planted"]


def test_a_symlinked_temp_dir_is_refused_by_the_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "victim"
    target.mkdir(mode=0o700)
    link = tmp_path / "temp"
    link.symlink_to(target, target_is_directory=True)
    clip = tmp_path / "missing.wav"
    status = main(["transcribe", "--backend", "parakeet", str(clip), "--temp-dir", str(link)])
    assert status == 3
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"speakeasy-core: error: {link}: unsafe temp root: is a symlink" in err
    assert list(target.iterdir()) == []


@needs_root
def test_a_0777_root_of_another_user_is_used_only_through_a_private_subfolder(
    tmp_path: Path,
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    planted = plant_stale_workspace(shared)
    os.chown(planted, NOBODY, NOBODY)
    os.chown(shared, NOBODY, NOBODY)
    shared.chmod(0o777)

    assert sweep_stale(shared) == []  # the planted workspace is not ours to judge
    assert (planted / "precious.txt").exists()
    private = shared / f"speakeasy_core-{os.getuid()}"
    assert trusted_root(shared) == private
    with TempWorkspace(shared) as workspace:
        assert workspace.path.parent == private
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        assert stat.S_IMODE(workspace.path.stat().st_mode) == 0o700
    assert sweep_stale(shared) == []
    assert (planted / "precious.txt").exists()


@needs_root
@pytest.mark.parametrize("plant", ["symlink", "foreign dir", "open dir"])
def test_a_planted_private_subfolder_is_refused(tmp_path: Path, plant: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    private = shared / f"speakeasy_core-{os.getuid()}"
    victim = tmp_path / "victim"
    plant_stale_workspace(victim)
    if plant == "symlink":
        private.symlink_to(victim, target_is_directory=True)
        reason = "is a symlink"
    elif plant == "foreign dir":
        private.mkdir(mode=0o700)
        os.chown(private, NOBODY, NOBODY)
        reason = "belongs to another user"
    else:
        private.mkdir()
        private.chmod(0o777)
        reason = "writable by group or others"
    with pytest.raises(TempRootError, match=reason):
        sweep_stale(shared)
    with pytest.raises(TempRootError, match=reason):
        TempWorkspace(shared)
    assert (victim / "speakeasy-planted" / "precious.txt").exists()


def test_a_group_writable_root_of_ours_gets_a_private_subfolder(tmp_path: Path) -> None:
    team = tmp_path / "team"
    team.mkdir()
    team.chmod(0o775)
    with TempWorkspace(team) as workspace:
        assert workspace.path.parent == team / f"speakeasy_core-{os.getuid()}"


def test_a_private_root_is_used_as_is_and_swept(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir(mode=0o700)
    planted = plant_stale_workspace(root)
    with TempWorkspace(root) as workspace:
        assert workspace.path.parent == root
    assert sweep_stale(root) == [planted]


def test_a_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x", encoding="utf-8")
    with pytest.raises(TempRootError, match="not a directory"):
        TempWorkspace(file)
    with pytest.raises(TempRootError, match="not a directory"):
        sweep_stale(file)


def test_temp_names_are_bounded_in_bytes(tmp_path: Path) -> None:
    """The atomic-write temp name is cut by bytes: 84 CJK characters (252 bytes)."""
    target = tmp_path / ("語" * 82 + ".txt")  # 250 bytes: a legal name
    atomic_write_bytes(target, b"data")
    assert target.read_bytes() == b"data"
    with pytest.raises(TempFileError):  # a name too long for the filesystem still fails
        atomic_write_bytes(tmp_path / ("語" * 90 + ".txt"), b"data")
