"""Random sequences of temp-file operations against a model, under Windows locking rules.

Files live on the real filesystem behind :class:`WindowsLockSimulator`; time is a
:class:`SimulatedClock`. Invariants: what is read back is what was written; after a
workspace exits, every file nobody holds is gone; held files are reported, deferred and
removed once released (never lost silently, never raised); permanent errors are never
retried; no single operation waits longer than the policy's bound. The machine runs
under both delete semantics of real Windows: delete-pending names (before 10 1903) and
POSIX semantics (NTFS on 10 1903+).
"""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)

from speakeasy_core.errors import TempFileError
from speakeasy_core.tempfiles import (
    OWNER_FILE,
    DeleteOutcome,
    ProcessIdentity,
    RetryPolicy,
    TempWorkspace,
    atomic_write_bytes,
    deferred_cleanups,
    retry_deferred,
    safe_delete,
    sweep_stale,
)
from speakeasy_core.testing import (
    DeleteSemantics,
    SimulatedClock,
    SimulatedHandle,
    SimulatedProcesses,
    WindowsLockSimulator,
)

MAX_WAIT = 1.0
ACCESS_DENIED_WAIT = 0.1
# With these delays (<= 0.02, 0.03, 0.05, ... + jitter) at least 8 retries and 0.9 s
# of waiting fit in MAX_WAIT, so the transient locks below always clear within one
# operation's budget.
TRANSIENT_ATTEMPTS = st.integers(1, 3)
TRANSIENT_SECONDS = st.floats(0.0, 0.5)


@dataclass
class FileModel:
    workspace: Path
    content: bytes
    lock: str | None = None  # "transient" | "persistent"
    blocking: int = 0  # open handles without share-delete
    sharing: int = 0  # open handles with share-delete
    pending: bool = False  # deleted while a share-delete handle is open
    gone: bool = False

    @property
    def live(self) -> bool:
        return not self.gone and not self.pending

    @property
    def blocked(self) -> bool:
        """Deleting it fails for the whole budget."""
        return self.lock == "persistent" or self.blocking > 0

    @property
    def replace_blocked(self) -> bool:
        """Replacing it fails for the whole budget: any open handle refuses (winerror 5)."""
        return self.blocked or self.sharing > 0


@dataclass
class WorkspaceModel:
    workspace: TempWorkspace
    owner: ProcessIdentity
    state: str = "open"  # "open" | "exited" (maybe deferred) | "crashed" | "removed"
    deferred: bool = False


class TempFilesMachine(RuleBasedStateMachine):
    semantics: DeleteSemantics = "pending"
    workspaces = Bundle("workspaces")
    files = Bundle("files")
    handles = Bundle("handles")

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="tempfiles-machine-"))
        self.clock = SimulatedClock()
        self.sim = WindowsLockSimulator(self.clock, delete_semantics=self.semantics)
        self.policy = RetryPolicy(
            max_wait=MAX_WAIT,
            access_denied_wait=ACCESS_DENIED_WAIT,
            initial_delay=0.01,
            max_delay=0.2,
            jitter=0.01,
            sleep=self.clock.sleep,
        )
        self.processes = SimulatedProcesses()
        self.model: dict[Path, FileModel] = {}
        self.spaces: dict[Path, WorkspaceModel] = {}
        self.handle_files: dict[SimulatedHandle, Path] = {}

    # ------------------------------------------------------------------ helpers

    def live_files(self, *, in_open_workspace: bool = False, unheld: bool = False) -> list[Path]:
        return [  # in creation order: the names are random, their order is not stable
            path
            for path, file in self.model.items()
            if file.live
            and (not in_open_workspace or self.spaces[file.workspace].state == "open")
            and (not unheld or (not file.blocked and file.lock is None))
        ]

    def files_of(self, space: Path) -> list[tuple[Path, FileModel]]:
        return [
            (path, file)
            for path, file in self.model.items()
            if file.workspace == space and not file.gone
        ]

    def check_wait(self, before: float, operations: int = 1) -> None:
        assert self.clock.now - before <= MAX_WAIT * operations + 1e-9

    def settle_removal(self, space: Path) -> tuple[set[Path], set[Path]]:
        """Apply a whole-workspace removal to the model: the files (gone, left behind)."""
        gone, left = set(), set()
        for path, file in self.files_of(space):
            if file.lock == "transient" and not file.pending:
                file.lock = None  # each removal attempt outlasts a transient lock
            if file.pending or file.blocked or (file.sharing and self.semantics == "pending"):
                file.pending = file.pending or not file.blocked
                left.add(path)
            else:
                file.gone = True
                gone.add(path)
        for path in left:
            assert path.exists()
        if left:
            assert (space / OWNER_FILE).exists()  # so that a later sweep knows the owner
        else:
            assert not space.exists()
            self.spaces[space].state = "removed"
            self.spaces[space].deferred = False
        return gone, left

    def apply_delete(self, path: Path, outcome: DeleteOutcome, error: OSError | None) -> None:
        file = self.model[path]
        if file.gone:
            assert outcome is DeleteOutcome.ABSENT
        elif file.pending:
            assert outcome is DeleteOutcome.LOCKED
            assert getattr(error, "winerror", None) == 5
        elif file.blocked:
            assert outcome is DeleteOutcome.LOCKED
            assert getattr(error, "winerror", None) == 32
            file.lock = "persistent" if file.lock == "persistent" else None
        else:
            assert outcome is DeleteOutcome.DELETED
            file.lock = None
            if file.sharing and self.semantics == "pending":
                file.pending = True
            else:
                file.gone = True  # POSIX semantics: the name goes even while shared

    # -------------------------------------------------------------------- rules

    @initialize(target=workspaces)
    def first_workspace(self) -> Path:
        return self.new_workspace()

    @rule(target=workspaces)
    def open_workspace(self) -> Path:
        return self.new_workspace()

    def new_workspace(self) -> Path:
        owner = self.processes.spawn()
        workspace = TempWorkspace(self.root, policy=self.policy, ops=self.sim, owner=owner)
        self.spaces[workspace.path] = WorkspaceModel(workspace, owner)
        return workspace.path

    @rule(target=files, space=workspaces, data=st.binary(max_size=64))
    def create_file(self, space: Path, data: bytes) -> Path:
        state = self.spaces[space]
        with state.workspace.new_file(".bin") as (path, handle):
            handle.write(data)
        self.model[path] = FileModel(space, data)
        return path

    @rule(target=files, space=workspaces, texts=st.lists(st.text(max_size=8), max_size=3))
    def write_manifest(self, space: Path, texts: list[str]) -> Path:
        state = self.spaces[space]
        entries = [{"audio_filepath": f"/audio/{n}.wav", "text": t} for n, t in enumerate(texts)]
        path = state.workspace.write_manifest(entries)
        content = path.read_bytes()
        absolute = [  # "/audio/0.wav" is only rooted on Windows: it gets the drive of cwd
            {**entry, "audio_filepath": str(Path(entry["audio_filepath"]).absolute())}
            for entry in entries
        ]
        assert [json.loads(line) for line in content.decode("utf-8").split("\n")[:-1]] == absolute
        self.model[path] = FileModel(space, content)
        return path

    @precondition(lambda self: self.live_files(in_open_workspace=True))
    @rule(pick=st.data(), data=st.binary(max_size=64))
    def rewrite(self, pick: st.DataObject, data: bytes) -> None:
        path = pick.draw(st.sampled_from(self.live_files(in_open_workspace=True)))
        file = self.model[path]
        before = self.clock.now
        if file.replace_blocked:
            with pytest.raises(TempFileError) as caught:
                atomic_write_bytes(path, data, policy=self.policy, ops=self.sim)
            expected = 32 if file.lock == "persistent" else 5  # a lock refuses first
            assert getattr(caught.value.__cause__, "winerror", None) == expected
            file.lock = "persistent" if file.lock == "persistent" else None
        else:
            atomic_write_bytes(path, data, policy=self.policy, ops=self.sim)
            file.content = data
            file.lock = None
        self.check_wait(before)

    @precondition(lambda self: self.live_files())
    @rule(target=handles, pick=st.data(), share_delete=st.booleans())
    def open_handle(self, pick: st.DataObject, share_delete: bool) -> SimulatedHandle:
        path = pick.draw(st.sampled_from(self.live_files()))
        file = self.model[path]
        handle = self.sim.open_handle(path, share_delete=share_delete)
        if share_delete:
            file.sharing += 1
        else:
            file.blocking += 1
        self.handle_files[handle] = path
        return handle

    @rule(handle=consumes(handles))
    def close_handle(self, handle: SimulatedHandle) -> None:
        handle.close()
        file = self.model[self.handle_files[handle]]
        if handle.share_delete:
            file.sharing -= 1
        else:
            file.blocking -= 1
        if file.pending and not file.sharing:
            file.pending = False
            file.gone = True

    @precondition(lambda self: self.live_files())
    @rule(pick=st.data(), attempts=st.none() | TRANSIENT_ATTEMPTS, seconds=TRANSIENT_SECONDS)
    def transient_lock(self, pick: st.DataObject, attempts: int | None, seconds: float) -> None:
        path = pick.draw(st.sampled_from(self.live_files()))
        if attempts is None:
            self.sim.lock(path, seconds=seconds)
        else:
            self.sim.lock(path, attempts=attempts)
        self.model[path].lock = "transient"  # replaces any earlier lock

    @precondition(lambda self: self.live_files())
    @rule(pick=st.data())
    def persistent_lock(self, pick: st.DataObject) -> None:
        path = pick.draw(st.sampled_from(self.live_files()))
        self.sim.lock(path)
        self.model[path].lock = "persistent"

    @rule(path=files)
    def unlock(self, path: Path) -> None:
        self.sim.unlock(path)
        self.model[path].lock = None

    @rule(path=files)
    def delete(self, path: Path) -> None:
        state = self.spaces[self.model[path].workspace]
        before = self.clock.now
        if state.state == "open":
            result = state.workspace.delete(path)
        else:
            result = safe_delete(path, policy=self.policy, ops=self.sim)
        limit = ACCESS_DENIED_WAIT if self.model[path].pending else MAX_WAIT
        assert result.waited <= limit
        self.check_wait(before)
        self.apply_delete(path, result.outcome, result.error)

    @precondition(lambda self: self.live_files(unheld=True))
    @rule(pick=st.data())
    def delete_with_permanent_error(self, pick: st.DataObject) -> None:
        path = pick.draw(st.sampled_from(self.live_files(unheld=True)))
        denied = PermissionError(errno.EACCES, "Permission denied", str(path))
        self.sim.fail(path, denied)
        attempts, before = self.sim.attempts("unlink", path), self.clock.now
        try:
            with pytest.raises(TempFileError) as caught:
                safe_delete(path, policy=self.policy, ops=self.sim)
        finally:
            self.sim.unlock(path)
        assert caught.value.__cause__ is denied
        assert self.sim.attempts("unlink", path) == attempts + 1
        assert self.clock.now == before

    @rule(space=consumes(workspaces))
    def exit_workspace(self, space: Path) -> None:
        state = self.spaces[space]
        before = self.clock.now
        report = state.workspace.cleanup()
        self.check_wait(before, len(self.files_of(space)) + 2)
        state.state, state.deferred = "exited", True
        gone, left = self.settle_removal(space)
        assert set(report.locked) == left
        assert gone <= set(report.deleted)
        assert report.failed == ()

    @rule(space=consumes(workspaces))
    def crash(self, space: Path) -> None:
        state = self.spaces[space]
        self.processes.kill(state.owner)  # the workspace is abandoned as it is
        state.state = "crashed"

    @rule()
    def sweep(self) -> None:
        crashed = [space for space, state in self.spaces.items() if state.state == "crashed"]
        files = sum(len(self.files_of(space)) for space in crashed)
        before = self.clock.now
        removed = sweep_stale(
            self.root, policy=self.policy, ops=self.sim, is_alive=self.processes.is_alive
        )
        self.check_wait(before, files + 2 * len(crashed) + 1)
        assert set(removed) <= set(crashed)
        for space in crashed:
            _gone, left = self.settle_removal(space)
            assert (space in removed) == (not left)

    @rule()
    def retry_deferred_cleanups(self) -> None:
        deferred = [space for space, state in self.spaces.items() if state.deferred]
        files = sum(len(self.files_of(space)) for space in deferred)
        before = self.clock.now
        report = retry_deferred()
        self.check_wait(before, files + 2 * len(deferred) + 1)
        for space in deferred:
            _gone, left = self.settle_removal(space)
            assert {path for path in report.locked if path.parent == space} == left
        assert report.failed == ()

    # --------------------------------------------------------------- invariants

    @invariant()
    def read_back_is_what_was_written(self) -> None:
        for path, file in self.model.items():
            if file.live:
                assert path.read_bytes() == file.content
            elif file.gone:
                assert not path.exists()
            else:
                assert path.exists()  # delete-pending: the name is still taken

    @invariant()
    def only_expected_handles_are_open(self) -> None:
        expected = {
            path
            for path, file in self.model.items()
            if (file.blocking or file.sharing) and not file.gone
        }
        assert self.sim.held_paths() == expected

    @invariant()
    def deferred_list_is_exactly_the_leftovers(self) -> None:
        expected = {space for space, state in self.spaces.items() if state.deferred}
        assert set(deferred_cleanups()) == expected

    def teardown(self) -> None:
        try:
            # Everyone lets go: then nothing may be left anywhere.
            self.sim.release_all()
            assert retry_deferred().clean
            assert deferred_cleanups() == ()
            for state in self.spaces.values():
                if state.state == "open":
                    assert state.workspace.cleanup().clean
                if state.state == "crashed":
                    self.processes.kill(state.owner)
            sweep_stale(
                self.root, policy=self.policy, ops=self.sim, is_alive=self.processes.is_alive
            )
            assert list(self.root.iterdir()) == []
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PosixSemanticsMachine(TempFilesMachine):
    semantics: DeleteSemantics = "posix"


TestTempFilesMachine = TempFilesMachine.TestCase
TestPosixSemanticsMachine = PosixSemanticsMachine.TestCase
