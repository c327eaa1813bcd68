"""One table of Windows lock scenarios, run on the simulator and on real Win32.

Each scenario: another process holds a file (or nothing does), our side performs file
operations, and the outcome is success or the ``errno`` + ``winerror`` of the first
failure. Every scenario runs against :class:`WindowsLockSimulator` on any OS; the
ones where Wine is faithful to Windows also run (marker ``windows``) against the real
OS with a real second process holding the file: in the Windows lane that is Wine,
on a Windows machine Windows itself. Delete-pending behaviour differs between
Windows versions, so those scenarios name the simulator's ``delete_semantics`` they
expect, and Wine (which matches neither) is not asked. docs/windows.md lists what
Wine does not model.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from speakeasy_core.tempfiles import FileOps, OsFileOps
from speakeasy_core.testing import (
    DeleteSemantics,
    ExternalHandle,
    HoldMode,
    WindowsLockSimulator,
)


@dataclass(frozen=True)
class Outcome:
    """Success (both None), or the errno and winerror of the first failure."""

    errno: int | None = None
    winerror: int | None = None

    def __str__(self) -> str:
        if self.errno is None:
            return "ok"
        return f"{errno.errorcode.get(self.errno, self.errno)}/{self.winerror}"


OK = Outcome()
SHARING_VIOLATION = Outcome(errno.EACCES, 32)
ACCESS_DENIED = Outcome(errno.EACCES, 5)
DIR_NOT_EMPTY = Outcome(errno.ENOTEMPTY, 145)
# Errors the simulator passes through from the host OS carry a winerror on Windows only.
NOT_FOUND = Outcome(errno.ENOENT, 2 if sys.platform == "win32" else None)

# An action gets the FileOps under test and the scenario's directory, which holds
# `target` (the held file), `new` (a second file) and `sub/inner` (a held child).
Action = Callable[[FileOps, Path], object]


def unlink(ops: FileOps, d: Path) -> None:
    ops.unlink(d / "target")


def replace_onto(ops: FileOps, d: Path) -> None:
    ops.replace(d / "new", d / "target")


def rename_away(ops: FileOps, d: Path) -> None:
    ops.replace(d / "target", d / "moved")


def read(ops: FileOps, d: Path) -> None:
    with ops.open_read(d / "target") as handle:
        assert handle.read() == b"old"


def unlink_then_stat(ops: FileOps, d: Path) -> None:
    ops.unlink(d / "target")
    ops.lstat(d / "target")


def unlink_then_create(ops: FileOps, d: Path) -> None:
    ops.unlink(d / "target")
    ops.open_exclusive(d / "target").close()


def unlink_then_replace_onto(ops: FileOps, d: Path) -> None:
    ops.unlink(d / "target")
    ops.replace(d / "new", d / "target")


def unlink_inner_then_rmdir(ops: FileOps, d: Path) -> None:
    ops.unlink(d / "sub" / "inner")
    ops.rmdir(d / "sub")


def rmdir_non_empty(ops: FileOps, d: Path) -> None:
    ops.rmdir(d / "sub")


def rename_dir_with_open_child(ops: FileOps, d: Path) -> None:
    ops.replace(d / "sub", d / "sub-moved")


def unlink_directory(ops: FileOps, d: Path) -> None:
    ops.unlink(d / "sub")


def create_existing(ops: FileOps, d: Path) -> None:
    ops.open_exclusive(d / "target").close()


@dataclass(frozen=True)
class Scenario:
    """``hold`` (None: nobody) is on ``held`` (``target`` or ``sub/inner``)."""

    name: str
    hold: HoldMode | None
    action: Action
    expected: Outcome
    wine: bool  # Wine's Win32 is faithful to Windows here: also run for real
    semantics: DeleteSemantics | None = None  # expected only under these semantics
    held: str = "target"

    def __str__(self) -> str:
        suffix = f"-{self.semantics}" if self.semantics else ""
        return f"{self.name}{suffix}"


SCENARIOS = [
    # -------------------------------------------- faithful on Wine: run both ways
    Scenario("unlink-unheld", None, unlink, OK, wine=True),
    Scenario("unlink-held-by-open", "open", unlink, SHARING_VIOLATION, wine=True),
    Scenario("unlink-held-no-share-delete", "no_share_delete", unlink, SHARING_VIOLATION, True),
    Scenario("replace-onto-unheld", None, replace_onto, OK, wine=True),
    # MoveFileExW onto a file open elsewhere: "access denied", not a sharing violation
    Scenario("replace-onto-held-by-open", "open", replace_onto, ACCESS_DENIED, wine=True),
    Scenario("replace-onto-no-share-delete", "no_share_delete", replace_onto, ACCESS_DENIED, True),
    Scenario("replace-onto-share-delete", "share_delete", replace_onto, ACCESS_DENIED, True),
    Scenario("rename-away-held-by-open", "open", rename_away, SHARING_VIOLATION, wine=True),
    Scenario("rename-away-share-delete", "share_delete", rename_away, OK, wine=True),
    Scenario("read-held-by-open", "open", read, OK, wine=True),
    Scenario("rmdir-non-empty", None, rmdir_non_empty, DIR_NOT_EMPTY, wine=True),
    Scenario("unlink-a-directory", None, unlink_directory, ACCESS_DENIED, wine=True),
    # os.open reports the CRT's errno only: no winerror on Windows either
    Scenario("create-existing", None, create_existing, Outcome(errno.EEXIST), wine=True),
    # ------------------------------------- delete-pending: the simulator only
    # Pre-1903 Windows (and FAT, network shares): the name stays until the handle closes.
    Scenario("unlink-share-delete", "share_delete", unlink, OK, False, "pending"),
    Scenario("unlink-then-stat", "share_delete", unlink_then_stat, ACCESS_DENIED, False, "pending"),
    Scenario(
        "unlink-then-create", "share_delete", unlink_then_create, ACCESS_DENIED, False, "pending"
    ),
    Scenario(
        "unlink-then-replace-onto",
        "share_delete",
        unlink_then_replace_onto,
        ACCESS_DENIED,
        False,
        "pending",
    ),
    Scenario(
        "unlink-child-then-rmdir",
        "share_delete",
        unlink_inner_then_rmdir,
        DIR_NOT_EMPTY,
        False,
        "pending",
        held="sub/inner",
    ),
    # POSIX-semantics NTFS (Windows 10 1903+): the name goes at once.
    Scenario("unlink-share-delete", "share_delete", unlink, OK, False, "posix"),
    Scenario(
        "unlink-then-stat",
        "share_delete",
        unlink_then_stat,
        NOT_FOUND,
        False,
        "posix",
    ),
    Scenario("unlink-then-create", "share_delete", unlink_then_create, OK, False, "posix"),
    Scenario(
        "unlink-then-replace-onto", "share_delete", unlink_then_replace_onto, OK, False, "posix"
    ),
    Scenario(
        "unlink-child-then-rmdir",
        "share_delete",
        unlink_inner_then_rmdir,
        OK,
        False,
        "posix",
        held="sub/inner",
    ),
    # -------------------------------- Wine renames a directory with open children
    Scenario(
        "rename-dir-with-open-child",
        "open",
        rename_dir_with_open_child,
        ACCESS_DENIED,
        wine=False,
        held="sub/inner",
    ),
]
WINE_FAITHFUL = [s for s in SCENARIOS if s.wine]
SIMULATOR_ONLY = [s for s in SCENARIOS if not s.wine]


def prepare(directory: Path) -> None:
    (directory / "target").write_bytes(b"old")
    (directory / "new").write_bytes(b"new")
    (directory / "sub").mkdir()
    (directory / "sub" / "inner").write_bytes(b"inner")


def outcome_of(action: Action, ops: FileOps, directory: Path) -> Outcome:
    try:
        action(ops, directory)
    except OSError as exc:
        return Outcome(exc.errno, getattr(exc, "winerror", None))
    return OK


def test_the_table_covers_both_sides() -> None:
    assert len({str(s) for s in SCENARIOS}) == len(SCENARIOS)
    assert len(WINE_FAITHFUL) == 13
    assert len(SIMULATOR_ONLY) == 11


@pytest.mark.parametrize("scenario", SCENARIOS, ids=str)
def test_simulator(scenario: Scenario, tmp_path: Path) -> None:
    prepare(tmp_path)
    sim = WindowsLockSimulator(delete_semantics=scenario.semantics or "pending")
    if scenario.hold is not None:
        sim.open_handle(tmp_path / scenario.held, share_delete=scenario.hold == "share_delete")
    assert outcome_of(scenario.action, sim, tmp_path) == scenario.expected
    sim.release_all()


@pytest.mark.windows
@pytest.mark.parametrize("scenario", WINE_FAITHFUL, ids=str)
def test_real_windows(scenario: Scenario, tmp_path: Path) -> None:
    prepare(tmp_path)
    if scenario.hold is None:
        outcome = outcome_of(scenario.action, OsFileOps(), tmp_path)
    else:
        with ExternalHandle(tmp_path / scenario.held, scenario.hold):
            outcome = outcome_of(scenario.action, OsFileOps(), tmp_path)
    assert outcome == scenario.expected


def running_on_wine() -> bool:
    if sys.platform != "win32":
        return False
    import ctypes

    return hasattr(ctypes.WinDLL("ntdll"), "wine_get_version")


@pytest.mark.windows
def test_delete_pending_on_real_win32(tmp_path: Path) -> None:
    """Windows matches one of the simulator's delete semantics; Wine matches neither.

    This is why the delete-pending rows are simulator-only.
    """
    pending = [s for s in SIMULATOR_ONLY if s.semantics == "pending"]
    posix = [s for s in SIMULATOR_ONLY if s.semantics == "posix"]
    assert [s.name for s in pending] == [s.name for s in posix]
    outcomes = []
    for number, scenario in enumerate(pending):
        directory = tmp_path / str(number)
        directory.mkdir()
        prepare(directory)
        with ExternalHandle(directory / scenario.held, "share_delete"):
            outcomes.append(outcome_of(scenario.action, OsFileOps(), directory))
    expected = {"pending": [s.expected for s in pending], "posix": [s.expected for s in posix]}
    if running_on_wine():
        assert outcomes not in expected.values(), outcomes
    else:
        assert outcomes in expected.values(), outcomes
