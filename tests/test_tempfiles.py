"""speakeasy_core.tempfiles: properties of each function, on the simulator and for real."""

from __future__ import annotations

import errno
import functools
import itertools
import json
import operator
import os
import platform
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from speakeasy_core._retry import retry_transient
from speakeasy_core.errors import InputError, InvalidOptionError, TempFileError
from speakeasy_core.job._inputs import _DEVICES
from speakeasy_core.tempfiles import (
    OWNER_FILE,
    CleanupReport,
    DeleteOutcome,
    OsFileOps,
    ProcessIdentity,
    RetryPolicy,
    TempWorkspace,
    atomic_write_bytes,
    atomic_write_text,
    default_root,
    deferred_cleanups,
    process_alive,
    retry_deferred,
    safe_delete,
    safe_write_manifest,
    sweep_stale,
)
from speakeasy_core.testing import (
    DeleteSemantics,
    SimulatedClock,
    SimulatedProcesses,
    WindowsLockSimulator,
    windows_error,
)

REPO = Path(__file__).resolve().parent.parent
POSIX = os.name == "posix"


@pytest.fixture(autouse=True)
def _no_deferred_cleanups_leak() -> Iterator[None]:
    yield
    assert deferred_cleanups() == (), "a test left a workspace cleanup pending"


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per hypothesis example (function fixtures are shared)."""
    with tempfile.TemporaryDirectory() as name:
        yield Path(name)


def file_in(directory: Path, data: bytes = b"x") -> Path:
    path = directory / "file.bin"
    path.write_bytes(data)
    return path


def winerror(exc: BaseException | None) -> int | None:
    return getattr(exc, "winerror", None)


# ------------------------------------------------------------------- retry schedule
# The documented schedule: retry n sleeps min(initial_delay * 2**(n-1), max_delay)
# (+ up to `jitter`); retrying stops before the summed sleep would exceed the limit.


def schedule(policy: RetryPolicy, *, extra: float = 0.0) -> Iterator[float]:
    for n in itertools.count():
        try:
            nominal = min(policy.initial_delay * 2**n, policy.max_delay)
        except OverflowError:  # 2**n beyond a float: long since capped
            nominal = policy.max_delay
        yield nominal + extra


def sleeps(policy: RetryPolicy, count: int) -> list[float]:
    return list(itertools.islice(schedule(policy), count))


def added(pauses: list[float]) -> float:
    """The pauses added one at a time, as a clock adds them (Python 3.12's ``sum`` of
    floats compensates rounding, so it can differ from that in the last bit)."""
    return functools.reduce(operator.add, pauses, 0.0)


def retries_within(policy: RetryPolicy, limit: float, *, extra: float = 0.0) -> list[float]:
    """The sleeps of every retry that fits in ``limit`` (summed like tenacity)."""
    waited, taken = 0.0, []
    for pause in schedule(policy, extra=extra):
        if waited + pause > limit:
            break
        waited += pause
        taken.append(pause)
    return taken


@st.composite
def policies(draw: st.DrawFn, *, jitter: bool = False) -> RetryPolicy:
    initial = draw(st.floats(0.001, 0.3))
    return RetryPolicy(
        max_wait=draw(st.floats(0.0, 3.0)),
        access_denied_wait=draw(st.floats(0.0, 1.0)),
        initial_delay=initial,
        max_delay=initial * draw(st.floats(1.0, 40.0)),
        jitter=draw(st.floats(0.0, 0.05)) if jitter else 0.0,
    )


def with_clock(policy: RetryPolicy) -> tuple[RetryPolicy, SimulatedClock, WindowsLockSimulator]:
    clock = SimulatedClock()
    return (
        RetryPolicy(
            max_wait=policy.max_wait,
            access_denied_wait=policy.access_denied_wait,
            initial_delay=policy.initial_delay,
            max_delay=policy.max_delay,
            jitter=policy.jitter,
            sleep=clock.sleep,
        ),
        clock,
        WindowsLockSimulator(clock),
    )


# ----------------------------------------------------------------------- safe_delete


@given(base=policies(), k=st.integers(1, 12), code=st.sampled_from([32, 33]))
def test_lock_clearing_after_k_attempts_is_deleted_iff_k_retries_fit(
    base: RetryPolicy, k: int, code: int
) -> None:
    policy, clock, sim = with_clock(base)
    fitting = retries_within(policy, policy.max_wait)
    with scratch() as directory:
        path = file_in(directory)
        sim.lock(path, attempts=k, winerror=code)
        result = safe_delete(path, policy=policy, ops=sim)
        if k <= len(fitting):
            assert result.outcome is DeleteOutcome.DELETED
            assert result.attempts == k + 1
            assert result.waited == added(fitting[:k]) == clock.now
            assert not path.exists()
        else:
            assert result.outcome is DeleteOutcome.LOCKED
            assert result.attempts == len(fitting) + 1
            assert winerror(result.error) == code
            assert path.exists()
    assert result.waited == clock.now == added(clock.sleeps) <= policy.max_wait


@given(base=policies(jitter=True), k=st.integers(1, 10))
def test_with_jitter_the_outcome_is_bracketed_by_the_schedule(base: RetryPolicy, k: int) -> None:
    policy, clock, sim = with_clock(base)
    surely_fits = len(retries_within(policy, policy.max_wait, extra=policy.jitter))
    maybe_fits = len(retries_within(policy, policy.max_wait))
    with scratch() as directory:
        path = file_in(directory)
        sim.lock(path, attempts=k)
        result = safe_delete(path, policy=policy, ops=sim)
    if k <= surely_fits:
        assert result.outcome is DeleteOutcome.DELETED
    if k > maybe_fits:
        assert result.outcome is DeleteOutcome.LOCKED
    if result.outcome is DeleteOutcome.DELETED:
        assert result.attempts == k + 1
    else:
        assert result.attempts <= k
    for pause, nominal in zip(clock.sleeps, sleeps(policy, len(clock.sleeps)), strict=True):
        assert nominal <= pause <= nominal + policy.jitter
    assert result.waited == clock.now <= policy.max_wait


@given(base=policies(), seconds=st.floats(0.0, 4.0))
def test_lock_clearing_after_t_seconds_is_deleted_iff_reached_in_budget(
    base: RetryPolicy, seconds: float
) -> None:
    policy, clock, sim = with_clock(base)
    reachable = sum(retries_within(policy, policy.max_wait))
    with scratch() as directory:
        path = file_in(directory)
        sim.lock(path, seconds=seconds)
        result = safe_delete(path, policy=policy, ops=sim)
    expected = DeleteOutcome.DELETED if seconds <= reachable else DeleteOutcome.LOCKED
    assert result.outcome is expected
    assert result.waited == clock.now <= policy.max_wait


@given(base=policies(jitter=True), via_handle=st.booleans())
def test_persistent_lock_is_locked_within_the_bound(base: RetryPolicy, via_handle: bool) -> None:
    policy, clock, sim = with_clock(base)
    with scratch() as directory:
        path = file_in(directory)
        if via_handle:
            sim.open_handle(path)
        else:
            sim.lock(path)
        result = safe_delete(path, policy=policy, ops=sim)
        assert path.read_bytes() == b"x"
    assert result.outcome is DeleteOutcome.LOCKED
    assert winerror(result.error) == 32
    assert result.attempts == sim.attempts("unlink", path) == len(clock.sleeps) + 1
    assert result.waited == clock.now == added(clock.sleeps) <= policy.max_wait


@given(base=policies(jitter=True), k=st.integers(1, 40))
def test_access_denied_is_retried_only_within_its_own_smaller_bound(
    base: RetryPolicy, k: int
) -> None:
    policy, clock, sim = with_clock(base)
    limit = min(policy.access_denied_wait, policy.max_wait)
    with scratch() as directory:
        path = file_in(directory)
        sim.lock(path, attempts=k, winerror=5)
        result = safe_delete(path, policy=policy, ops=sim)
    assert result.waited == clock.now <= limit
    if result.outcome is DeleteOutcome.LOCKED:
        assert winerror(result.error) == 5
    else:
        assert result.outcome is DeleteOutcome.DELETED
        assert result.attempts == k + 1


def test_delete_pending_file_is_locked_briefly_then_gone_once_closed(tmp_path: Path) -> None:
    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock)
    policy = RetryPolicy(max_wait=2.0, access_denied_wait=0.2, sleep=clock.sleep)
    path = file_in(tmp_path)
    handle = sim.open_handle(path, share_delete=True)
    assert safe_delete(path, policy=policy, ops=sim).outcome is DeleteOutcome.DELETED
    again = safe_delete(path, policy=policy, ops=sim)  # the name is delete-pending
    assert again.outcome is DeleteOutcome.LOCKED
    assert winerror(again.error) == 5
    assert again.waited <= 0.2
    handle.close()
    assert safe_delete(path, policy=policy, ops=sim).outcome is DeleteOutcome.ABSENT


def test_with_posix_delete_semantics_a_shared_file_is_gone_at_once(tmp_path: Path) -> None:
    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock, delete_semantics="posix")
    policy = RetryPolicy(max_wait=2.0, access_denied_wait=0.2, sleep=clock.sleep)
    path = file_in(tmp_path)
    handle = sim.open_handle(path, share_delete=True)
    assert safe_delete(path, policy=policy, ops=sim).outcome is DeleteOutcome.DELETED
    assert not path.exists()
    assert safe_delete(path, policy=policy, ops=sim).outcome is DeleteOutcome.ABSENT
    handle.close()
    assert clock.sleeps == []


@pytest.mark.parametrize("semantics", ["pending", "posix"])
def test_workspace_with_a_shared_file_under_both_delete_semantics(
    semantics: DeleteSemantics, tmp_path: Path
) -> None:
    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock, delete_semantics=semantics)
    policy = RetryPolicy(max_wait=1.0, access_denied_wait=0.1, sleep=clock.sleep)
    workspace = TempWorkspace(tmp_path, policy=policy, ops=sim)
    with workspace.new_file(".wav") as (shared, out):
        out.write(b"RIFF")
    handle = sim.open_handle(shared, share_delete=True)  # a reader that allows deletes
    report = workspace.cleanup()
    if semantics == "posix":  # the name goes at once, so does the directory
        assert report.clean
        assert not workspace.path.exists()
    else:  # the delete-pending name keeps the directory until the reader closes
        assert report.locked == (shared,)
        assert (workspace.path / OWNER_FILE).exists()
        assert deferred_cleanups() == (workspace.path,)
        handle.close()
        assert retry_deferred().clean
        assert not workspace.path.exists()
    assert clock.now <= 2 * policy.max_wait


@given(base=policies(), k=st.integers(1, 40))
def test_access_denied_on_a_replace_gets_the_full_budget(base: RetryPolicy, k: int) -> None:
    """os.replace onto a file another process has open is winerror 5 on Windows."""
    policy, clock, _sim = with_clock(base)
    denied = windows_error(5, "transcript.txt")
    assert policy.wait_limit(denied, replacing=True) == policy.max_wait
    assert policy.wait_limit(denied) == min(policy.access_denied_wait, policy.max_wait)
    calls = []

    def replace() -> None:
        calls.append(clock.now)
        if len(calls) < k:
            raise denied

    retried = retry_transient(denied, replace, policy, replacing=True)
    assert clock.now <= policy.max_wait
    if k <= len(retries_within(policy, policy.max_wait)):
        assert retried.error is None
        assert len(calls) == k == retried.attempts - 1
    else:
        assert retried.error is denied


# Built fresh per example: a re-raised exception instance would grow its traceback.
PERMANENT_ERRORS = st.sampled_from(
    [
        (PermissionError, errno.EACCES, "Permission denied"),  # POSIX: no winerror
        (PermissionError, errno.EPERM, "Operation not permitted"),
        (IsADirectoryError, errno.EISDIR, "Is a directory"),
        (OSError, errno.EROFS, "Read-only file system"),
        (OSError, errno.EIO, "Input/output error"),
        (OSError, None, "no errno at all"),
    ]
).map(lambda spec: spec[0](spec[1], spec[2]) if spec[1] is not None else spec[0](spec[2]))


@given(base=policies(), error=PERMANENT_ERRORS, locked_first=st.integers(0, 3))
def test_permanent_errors_are_raised_and_never_retried(
    base: RetryPolicy, error: OSError, locked_first: int
) -> None:
    policy, clock, sim = with_clock(base)
    assume(locked_first <= len(retries_within(policy, policy.max_wait)))
    with scratch() as directory:
        path = file_in(directory)
        if locked_first:
            sim.lock(path, attempts=locked_first)
        sim.fail(path, error)
        with pytest.raises(TempFileError) as caught:
            safe_delete(path, policy=policy, ops=sim)
        assert path.exists()
    assert caught.value.__cause__ is error
    assert isinstance(caught.value, OSError)
    assert caught.value.errno == error.errno
    # Named as the filename (repr'd in the message, so "\\" on Windows) or in the text.
    assert str(path) in (caught.value.filename or str(caught.value))
    # One attempt for the permanent error itself, after the transient ones.
    assert sim.attempts("unlink", path) == locked_first + 1
    assert len(clock.sleeps) == locked_first


@given(name=st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1))
def test_missing_file_is_absent(name: str) -> None:
    # On Windows a device name (COM1, nul, ...) is no file at all: deleting it is
    # ERROR_INVALID_PARAMETER, rightly a TempFileError, and we never create one.
    assume(sys.platform != "win32" or name.upper() not in _DEVICES)
    policy, clock, sim = with_clock(RetryPolicy())
    with scratch() as directory:
        for ops in (sim, None):
            result = safe_delete(directory / name, policy=policy, ops=ops)
            assert result.outcome is DeleteOutcome.ABSENT
            assert result.attempts == 1
    assert clock.sleeps == []


@pytest.mark.parametrize("injected", [KeyboardInterrupt, SystemExit])
def test_interrupts_are_never_swallowed(tmp_path: Path, injected: type[BaseException]) -> None:
    sim = WindowsLockSimulator()
    path = file_in(tmp_path)
    sim.fail(path, injected())
    with pytest.raises(injected):
        safe_delete(path, ops=sim)


def test_ctrl_c_during_backoff_propagates(tmp_path: Path) -> None:
    def interrupted_sleep(seconds: float) -> None:
        raise KeyboardInterrupt

    sim = WindowsLockSimulator()
    path = file_in(tmp_path)
    sim.lock(path)
    with pytest.raises(KeyboardInterrupt):
        safe_delete(path, policy=RetryPolicy(sleep=interrupted_sleep), ops=sim)


def test_deleting_a_directory_is_a_permanent_error_also_as_on_windows(tmp_path: Path) -> None:
    clock = SimulatedClock()
    policy = RetryPolicy(sleep=clock.sleep)
    sim = WindowsLockSimulator(clock)
    with pytest.raises(TempFileError) as on_windows:
        safe_delete(tmp_path, policy=policy, ops=sim)  # winerror 5, as DeleteFile reports
    assert on_windows.value.errno == errno.EISDIR
    assert winerror(on_windows.value.__cause__) == 5
    with pytest.raises(TempFileError) as for_real:
        safe_delete(tmp_path, policy=policy)
    assert isinstance(for_real.value.__cause__, OSError)
    assert clock.sleeps == []
    assert tmp_path.is_dir()


def _chmod_blocks_writes(directory: Path) -> bool:
    probe = directory / "probe"
    directory.chmod(0o500)
    try:
        probe.touch()
    except PermissionError:
        return True
    finally:
        directory.chmod(0o700)
    probe.unlink()
    return False


@pytest.mark.skipif(not POSIX, reason="POSIX directory permissions")
def test_real_permission_error_is_permanent(tmp_path: Path) -> None:
    if not _chmod_blocks_writes(tmp_path):
        pytest.skip("running with privileges that ignore directory permissions (root)")
    clock = SimulatedClock()
    path = file_in(tmp_path)
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(TempFileError) as caught:
            safe_delete(path, policy=RetryPolicy(sleep=clock.sleep))
    finally:
        tmp_path.chmod(0o700)
    assert caught.value.errno == errno.EACCES
    assert isinstance(caught.value.__cause__, PermissionError)
    assert clock.sleeps == []


def test_real_file_is_deleted_in_one_attempt(tmp_path: Path) -> None:
    path = file_in(tmp_path)
    result = safe_delete(str(path))
    assert (result.path, result.outcome, result.attempts, result.waited) == (
        path,
        DeleteOutcome.DELETED,
        1,
        0.0,
    )
    assert not path.exists()


@pytest.mark.parametrize(
    ("option", "kwargs"),
    [
        ("max_wait", {"max_wait": -1.0}),
        ("max_wait", {"max_wait": float("nan")}),
        ("access_denied_wait", {"access_denied_wait": float("inf")}),
        ("initial_delay", {"initial_delay": 0.0}),
        ("jitter", {"jitter": -0.1}),
        ("max_delay", {"initial_delay": 1.0, "max_delay": 0.5}),
    ],
)
def test_retry_policy_rejects_bad_values(option: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidOptionError) as caught:
        RetryPolicy(**kwargs)
    assert caught.value.option == option


# ------------------------------------------------------------------ atomic writes


@given(first=st.binary(), second=st.binary())
def test_atomic_write_bytes_round_trip(first: bytes, second: bytes) -> None:
    with scratch() as directory:
        target = directory / "state.bin"
        atomic_write_bytes(target, first)
        assert target.read_bytes() == first
        atomic_write_bytes(target, second)
        assert target.read_bytes() == second
        assert os.listdir(directory) == ["state.bin"]


@given(text=st.text(), encoding=st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_atomic_write_text_round_trip_of_any_unicode(text: str, encoding: str) -> None:
    sim = WindowsLockSimulator()
    with scratch() as directory:
        target = directory / "transcript.txt"
        atomic_write_text(target, text, encoding=encoding, ops=sim)
        assert target.read_bytes().decode(encoding) == text  # newlines untranslated
        assert sim.held_paths() == set()
        assert os.listdir(directory) == ["transcript.txt"]


@given(base=policies(), k=st.integers(1, 10), code=st.sampled_from([5, 32]))
def test_atomic_replace_retries_a_held_target(base: RetryPolicy, k: int, code: int) -> None:
    policy, clock, sim = with_clock(base)
    limit = policy.max_wait  # a replace onto a held file is "access denied" on Windows
    fits = k <= len(retries_within(policy, limit))
    with scratch() as directory:
        target = directory / "state.json"
        target.write_text("old")
        sim.lock(target, attempts=k, winerror=code)
        if fits:
            atomic_write_text(target, "new", policy=policy, ops=sim)
        else:
            with pytest.raises(TempFileError) as caught:
                atomic_write_text(target, "new", policy=policy, ops=sim)
            assert winerror(caught.value.__cause__) == code
        assert target.read_text() == ("new" if fits else "old")
        assert os.listdir(directory) == ["state.json"]  # the temp file never stays
    assert clock.now <= limit


def test_atomic_write_permanent_error_keeps_the_target(tmp_path: Path) -> None:
    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock)
    target = tmp_path / "state.json"
    target.write_text("old")
    sim.fail(target, PermissionError(errno.EACCES, "Permission denied"))
    with pytest.raises(TempFileError):
        atomic_write_bytes(target, b"new", policy=RetryPolicy(sleep=clock.sleep), ops=sim)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["state.json"]
    assert clock.sleeps == []


def test_atomic_write_text_rejects_an_unknown_encoding(tmp_path: Path) -> None:
    with pytest.raises(InvalidOptionError, match="encoding"):
        atomic_write_text(tmp_path / "x", "text", encoding="no-such-codec")
    assert os.listdir(tmp_path) == []


def test_atomic_write_into_a_missing_directory_is_a_temp_file_error(tmp_path: Path) -> None:
    with pytest.raises(TempFileError) as caught:
        atomic_write_bytes(tmp_path / "missing" / "x", b"")
    assert caught.value.errno == errno.ENOENT


# ---------------------------------------------------------------------- manifests

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
AUDIO_PATHS = st.text(
    st.characters(exclude_characters="\0/", exclude_categories=["Cs"]), min_size=1
)
ENTRIES = st.lists(
    st.fixed_dictionaries(
        {"audio_filepath": AUDIO_PATHS | AUDIO_PATHS.map(lambda name: Path("/data") / name)},
        optional={"duration": st.floats(0, 1e5), "text": st.text(), "extra": JSON_VALUES},
    ),
    max_size=8,
)


@given(entries=ENTRIES)
def test_manifest_round_trip(entries: list[dict[str, Any]]) -> None:
    sim = WindowsLockSimulator()
    with scratch() as directory:
        path = safe_write_manifest(entries, directory, ops=sim)
        assert sim.held_paths() == set()  # closed before the path was returned
        assert sim.was_synced(path)
        raw = path.read_bytes()
        # What NeMo does: iterate the lines of the UTF-8 text, json.loads each one.
        with path.open(encoding="utf-8") as handle:
            lines = [json.loads(line) for line in handle]
        assert safe_delete(path, ops=sim).attempts == 1
    expected = [
        {**entry, "audio_filepath": str(Path(entry["audio_filepath"]).absolute())}
        for entry in entries
    ]
    assert lines == expected
    assert raw.count(b"\n") == len(entries)
    assert path.name.startswith("manifest-")
    assert path.suffix == ".json"


def test_manifest_keeps_non_ascii_as_utf8(tmp_path: Path) -> None:
    path = safe_write_manifest(
        [{"audio_filepath": "/a/ü.wav", "text": "grüße 東京"}], tmp_path, prefix="job-"
    )
    assert "grüße 東京".encode() in path.read_bytes()
    assert path.name.startswith("job-")
    if POSIX:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


@given(good=st.integers(0, 5), bad=st.sampled_from(["missing", "object", "nan", "bytes"]))
def test_bad_manifest_entry_names_it_and_leaves_no_file(good: int, bad: str) -> None:
    entry: Any = {
        "missing": {"duration": 1.0},
        "object": {"audio_filepath": "a.wav", "x": object()},
        "nan": {"audio_filepath": "a.wav", "duration": float("nan")},
        "bytes": {"audio_filepath": b"a.wav"},
    }[bad]
    entries = [{"audio_filepath": f"{n}.wav"} for n in range(good)] + [entry]
    with scratch() as directory:
        with pytest.raises(InputError) as caught:
            safe_write_manifest(entries, directory)
        assert os.listdir(directory) == []
    assert caught.value.input == f"manifest entry {good}"


def test_failing_entries_iterable_leaves_no_file(tmp_path: Path) -> None:
    def entries() -> Iterator[dict[str, str]]:
        yield {"audio_filepath": "a.wav"}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        safe_write_manifest(entries(), tmp_path)
    assert os.listdir(tmp_path) == []


class _DiskFull(OsFileOps):
    def fsync(self, handle: BinaryIO) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_manifest_write_error_is_a_temp_file_error_and_removes_the_file(tmp_path: Path) -> None:
    with pytest.raises(TempFileError) as caught:
        safe_write_manifest([{"audio_filepath": "a.wav"}], tmp_path, ops=_DiskFull())
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("prefix", ["a/b", "x\0y"])
def test_manifest_prefix_must_be_a_name_part(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(InvalidOptionError, match="prefix"):
        safe_write_manifest([], tmp_path, prefix=prefix)


# --------------------------------------------------------------------- workspaces


@given(payloads=st.lists(st.binary(), max_size=4), entries=ENTRIES)
def test_workspace_round_trip_and_removal(
    payloads: list[bytes], entries: list[dict[str, Any]]
) -> None:
    sim = WindowsLockSimulator()
    with scratch() as root:
        with TempWorkspace(root, ops=sim) as workspace:
            written = {}
            for payload in payloads:
                with workspace.new_file(".bin") as (path, handle):
                    handle.write(payload)
                written[path] = payload
            manifest = workspace.write_manifest(entries)
            assert sim.held_paths() == set()
            assert {path: path.read_bytes() for path in written} == written
            assert manifest.read_bytes().count(b"\n") == len(entries)
            assert set(workspace.files) == {*written, manifest}
        assert os.listdir(root) == []


def test_workspace_layout_and_owner_record(tmp_path: Path) -> None:
    with TempWorkspace(tmp_path, prefix="job-") as workspace:
        assert workspace.path.parent == tmp_path
        assert workspace.path.name.startswith("job-")
        owner = json.loads((workspace.path / OWNER_FILE).read_text())
        assert owner["pid"] == os.getpid()
        assert owner["host"] == platform.node()
        with workspace.new_file(".wav") as (path, _handle):
            assert path.parent == workspace.path
            assert path.suffix == ".wav"
        if POSIX:
            assert stat.S_IMODE(workspace.path.stat().st_mode) == 0o700
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            assert stat.S_IMODE((workspace.path / OWNER_FILE).stat().st_mode) == 0o600
    assert not workspace.path.exists()


@pytest.mark.parametrize("raised", [ValueError, KeyboardInterrupt])
def test_workspace_cleans_up_when_the_block_raises(
    tmp_path: Path, raised: type[BaseException]
) -> None:
    def job() -> None:
        with TempWorkspace(tmp_path) as workspace:
            with workspace.new_file() as (_path, handle):
                handle.write(b"partial result")
            raise raised

    with pytest.raises(raised):
        job()
    assert os.listdir(tmp_path) == []


def test_new_file_is_removed_when_its_block_raises(tmp_path: Path) -> None:
    sim = WindowsLockSimulator()
    made = []

    def decode_into(workspace: TempWorkspace) -> None:
        with workspace.new_file() as (path, handle):
            made.append(path)
            handle.write(b"half")
            raise RuntimeError("decoder exploded")

    with TempWorkspace(tmp_path, ops=sim) as workspace:
        with pytest.raises(RuntimeError, match="decoder exploded"):
            decode_into(workspace)
        assert not made[0].exists()
        assert sim.held_paths() == set()
        assert workspace.files == ()


def test_new_file_tolerates_a_handle_closed_in_the_block(tmp_path: Path) -> None:
    with TempWorkspace(tmp_path) as workspace, workspace.new_file() as (path, handle):
        handle.write(b"done")
        handle.close()
    assert os.listdir(tmp_path) == []
    assert not path.exists()


def test_locked_file_is_reported_deferred_and_removed_once_unlocked(tmp_path: Path) -> None:
    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock)
    policy = RetryPolicy(max_wait=0.5, sleep=clock.sleep)
    workspace = TempWorkspace(tmp_path, policy=policy, ops=sim)
    with workspace.new_file() as (held, _handle):
        pass
    with workspace.new_file() as (free, _handle):
        pass
    reader = sim.open_handle(held)  # e.g. a data loader that has not closed it yet
    report = workspace.cleanup()
    assert report.locked == (held,)
    assert free in report.deleted
    assert not report.clean
    assert held.exists()
    assert (workspace.path / OWNER_FILE).exists()  # so a later sweep knows the owner
    assert deferred_cleanups() == (workspace.path,)
    assert workspace.cleanup() == CleanupReport()  # a second call does nothing
    assert retry_deferred().locked == (held,)
    reader.close()
    assert workspace.path in retry_deferred().deleted
    assert not workspace.path.exists()


def test_ctrl_c_during_cleanup_leaves_it_for_exit(tmp_path: Path) -> None:
    presses = []

    def sleep(seconds: float) -> None:
        presses.append(seconds)
        raise KeyboardInterrupt

    sim = WindowsLockSimulator()
    workspace = TempWorkspace(tmp_path, policy=RetryPolicy(sleep=sleep), ops=sim)
    with workspace.new_file() as (path, _handle):
        pass
    sim.lock(path)
    with pytest.raises(KeyboardInterrupt):
        workspace.cleanup()
    assert presses
    assert deferred_cleanups() == (workspace.path,)
    sim.unlock(path)
    assert retry_deferred().clean
    assert not workspace.path.exists()


def test_cleanup_removes_untracked_content_without_following_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    with TempWorkspace(tmp_path / "root") as workspace:
        nested = workspace.path / "nemo_output" / "deeper"
        nested.mkdir(parents=True)
        (nested / "out.json").write_text("{}")
        (workspace.path / "loose.txt").write_text("x")
        (workspace.path / "link").symlink_to(outside, target_is_directory=True)
    assert os.listdir(tmp_path / "root") == []
    assert (outside / "precious.txt").read_text() == "keep me"


def test_workspace_delete(tmp_path: Path) -> None:
    with TempWorkspace(tmp_path) as workspace:
        manifest = workspace.write_manifest([{"audio_filepath": "a.wav"}])
        assert workspace.delete(manifest).outcome is DeleteOutcome.DELETED
        assert workspace.files == ()
        assert workspace.delete(manifest).outcome is DeleteOutcome.ABSENT
        for outside in (tmp_path / "elsewhere.json", workspace.path / OWNER_FILE):
            with pytest.raises(InvalidOptionError, match="not a file of workspace"):
                workspace.delete(outside)
    with pytest.raises(TempFileError, match="already cleaned up"):
        workspace.write_manifest([])
    with pytest.raises(TempFileError, match="already cleaned up"), workspace.new_file():
        pass


@pytest.mark.parametrize("prefix", ["", "a/b"])
def test_workspace_prefix_must_be_a_name_part(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(InvalidOptionError, match="prefix"):
        TempWorkspace(tmp_path, prefix=prefix)


def test_workspace_creation_failure_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TempFileError):
        TempWorkspace(tmp_path, ops=_DiskFull())
    assert os.listdir(tmp_path) == []


def test_default_root_is_a_private_dir_in_the_temp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    per_user = f"speakeasy_core-{os.getuid()}" if POSIX else "speakeasy_core"
    assert default_root() == tmp_path / per_user
    with TempWorkspace() as workspace:
        assert workspace.path.parent == default_root()
        if POSIX:
            assert stat.S_IMODE(default_root().stat().st_mode) == 0o700
    assert os.listdir(default_root()) == []


@pytest.mark.skipif(not POSIX, reason="symlinks and uids as on POSIX")
def test_default_root_must_be_our_own_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    default_root().symlink_to(elsewhere)
    with pytest.raises(TempFileError, match="not a directory"):
        TempWorkspace()
    default_root().unlink()

    class ForeignOwner(OsFileOps):
        def lstat(self, path: Path) -> os.stat_result:
            real = list(os.lstat(path))
            real[stat.ST_UID] += 1
            return os.stat_result(real)

    with pytest.raises(TempFileError, match="another user"):
        TempWorkspace(ops=ForeignOwner())
    assert os.listdir(elsewhere) == []


# -------------------------------------------------------------------------- sweep


def make_workspace(root: Path, owner: ProcessIdentity, sim: WindowsLockSimulator) -> Path:
    """A workspace abandoned by ``owner`` (its process never cleans it up)."""
    workspace = TempWorkspace(root, ops=sim, owner=owner)
    with workspace.new_file(".wav") as (_path, handle):
        handle.write(b"audio")
    workspace.write_manifest([{"audio_filepath": "a.wav"}])
    return workspace.path


def test_sweep_removes_only_dead_owners_workspaces(tmp_path: Path) -> None:
    sim = WindowsLockSimulator()
    processes = SimulatedProcesses()
    alive, dead = processes.spawn(), processes.spawn()
    kept = make_workspace(tmp_path, alive, sim)
    stale = make_workspace(tmp_path, dead, sim)
    processes.kill(dead)
    other = tmp_path / "unrelated-dir"
    other.mkdir()
    (other / OWNER_FILE).write_text(json.dumps({"pid": dead.pid, "host": dead.host}))
    unowned = tmp_path / "speakeasy-being-created"
    unowned.mkdir()

    removed = sweep_stale(tmp_path, ops=sim, is_alive=processes.is_alive)
    assert removed == [stale]
    assert not stale.exists()
    assert len(os.listdir(kept)) == 3
    assert other.exists()
    assert unowned.exists()
    assert sweep_stale(tmp_path, ops=sim, is_alive=processes.is_alive) == []


@pytest.mark.skipif(not POSIX, reason="creating symlinks needs privileges on Windows")
def test_sweep_never_follows_symlinks(tmp_path: Path) -> None:
    sim = WindowsLockSimulator()
    processes = SimulatedProcesses()
    dead = processes.spawn()
    target = make_workspace(tmp_path / "elsewhere", dead, sim)
    root = tmp_path / "root"
    root.mkdir()
    (root / "speakeasy-link").symlink_to(target, target_is_directory=True)
    # A real workspace whose owner record is a symlink to a dead owner's record.
    fake = root / "speakeasy-fake"
    fake.mkdir()
    (fake / OWNER_FILE).symlink_to(target / OWNER_FILE)
    processes.kill(dead)
    assert sweep_stale(root, ops=sim, is_alive=processes.is_alive) == []
    assert len(os.listdir(target)) == 3
    assert fake.exists()
    assert (root / "speakeasy-link").is_symlink()


def test_sweep_leaves_locked_workspace_for_later(tmp_path: Path) -> None:
    clock = SimulatedClock()
    sim = WindowsLockSimulator(clock)
    policy = RetryPolicy(max_wait=0.3, sleep=clock.sleep)
    processes = SimulatedProcesses()
    dead = processes.spawn()
    stale = make_workspace(tmp_path, dead, sim)
    processes.kill(dead)
    held = next(stale.glob("*.wav"))
    sim.lock(held)
    assert sweep_stale(tmp_path, policy=policy, ops=sim, is_alive=processes.is_alive) == []
    assert held.exists()
    assert clock.now <= 0.3  # one budget for the locked file, no wait for the rest
    sim.unlock(held)
    assert sweep_stale(tmp_path, policy=policy, ops=sim, is_alive=processes.is_alive) == [stale]


def test_sweep_of_a_missing_root_is_empty(tmp_path: Path) -> None:
    assert sweep_stale(tmp_path / "missing") == []


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(child.stdout)


def test_real_liveness_check(tmp_path: Path) -> None:
    with TempWorkspace(tmp_path) as workspace:
        me = workspace.owner
    assert process_alive(me)
    assert not process_alive(ProcessIdentity(_dead_pid(), me.host, None))
    assert not process_alive(ProcessIdentity(0, me.host, None))
    assert process_alive(ProcessIdentity(_dead_pid(), "another-machine", None))
    if me.started is not None:  # pid reuse: same pid, another start time
        assert not process_alive(ProcessIdentity(me.pid, me.host, me.started + 1))


def test_sweep_with_the_real_liveness_check(tmp_path: Path) -> None:
    live = TempWorkspace(tmp_path)
    dead = TempWorkspace(tmp_path, owner=ProcessIdentity(_dead_pid(), platform.node(), None))
    assert sweep_stale(tmp_path) == [dead.path]
    assert live.path.exists()
    assert live.cleanup().clean


# ------------------------------------------------------------------------ example


def test_example_script_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "examples" / "safe_tempfiles.py")],
        cwd=tmp_path,
        env={**os.environ, "TMPDIR": str(tmp_path), "TEMP": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
