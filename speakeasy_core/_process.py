"""Who owns a temp workspace, and whether that process is still running.

A pid alone is not an identity: pids are reused. Where it is cheap the identity also
holds the process start time (``/proc/<pid>/stat`` on Linux, ``GetProcessTimes`` on
Windows), so a new process that got a dead owner's pid is told apart from it. Owners
on another host are always considered alive: their processes cannot be checked.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass

__all__ = ["ProcessIdentity", "current_process", "process_alive"]


@dataclass(frozen=True)
class ProcessIdentity:
    """A process: its pid, its host, and its start time where the OS tells it."""

    pid: int
    host: str
    started: int | None = None


if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _kernel32.OpenProcess.argtypes = (wintypes.DWORD, wintypes.BOOL, wintypes.DWORD)
    _kernel32.OpenProcess.restype = wintypes.HANDLE
    _kernel32.GetExitCodeProcess.argtypes = (wintypes.HANDLE, ctypes.POINTER(wintypes.DWORD))
    _filetime = ctypes.POINTER(wintypes.FILETIME)
    _kernel32.GetProcessTimes.argtypes = (
        wintypes.HANDLE,
        _filetime,
        _filetime,
        _filetime,
        _filetime,
    )
    _kernel32.CloseHandle.argtypes = (wintypes.HANDLE,)
    _QUERY_LIMITED_INFORMATION = 0x1000
    _STILL_ACTIVE = 259
    _ERROR_ACCESS_DENIED = 5

    def _pid_exists(pid: int) -> bool:
        handle = _kernel32.OpenProcess(_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            # Access denied means it exists but belongs to someone else.
            return bool(ctypes.get_last_error() == _ERROR_ACCESS_DENIED)
        try:
            code = wintypes.DWORD()
            if not _kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
                return True
            return bool(code.value == _STILL_ACTIVE)
        finally:
            _kernel32.CloseHandle(handle)

    def _start_time(pid: int) -> int | None:
        handle = _kernel32.OpenProcess(_QUERY_LIMITED_INFORMATION, False, pid)
        if not handle:
            return None
        try:
            created, exited, kernel, user = (wintypes.FILETIME() for _ in range(4))
            if not _kernel32.GetProcessTimes(
                handle,
                ctypes.byref(created),
                ctypes.byref(exited),
                ctypes.byref(kernel),
                ctypes.byref(user),
            ):
                return None
            return (int(created.dwHighDateTime) << 32) | int(created.dwLowDateTime)
        finally:
            _kernel32.CloseHandle(handle)

else:

    def _pid_exists(pid: int) -> bool:
        try:
            os.kill(pid, 0)  # signal 0: existence check only
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # exists, owned by another user
        return True

    def _start_time(pid: int) -> int | None:
        """Clock ticks after boot at which ``pid`` started (Linux); ``None`` elsewhere."""
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()
            return int(fields[19])  # field 22 of proc(5); fields[0] is field 3
        except (OSError, IndexError, ValueError):
            return None


def current_process() -> ProcessIdentity:
    """The identity of the running process."""
    pid = os.getpid()
    return ProcessIdentity(pid, platform.node(), _start_time(pid))


def process_alive(owner: ProcessIdentity) -> bool:
    """Whether ``owner`` may still be running (``True`` when it cannot be checked)."""
    if owner.host != platform.node():
        return True
    if owner.pid <= 0 or not _pid_exists(owner.pid):
        return False
    if owner.started is None:
        return True
    started = _start_time(owner.pid)
    return started is None or started == owner.started
