"""Test helpers for code that uses speakeasy_core (importable, light: no NeMo at import)."""

from .backend import MockBackend
from .locks import (
    DeleteSemantics,
    ExternalHandle,
    HoldMode,
    SimulatedClock,
    SimulatedHandle,
    SimulatedProcesses,
    WindowsLockSimulator,
    windows_error,
)
from .tiny_nemo import (
    TINY_BUILDERS,
    TinyKind,
    TinyModel,
    build_tiny,
    build_tiny_canary,
    build_tiny_ctc,
    build_tiny_hybrid,
    build_tiny_rnnt,
    build_tiny_tdt,
)

__all__ = [
    "TINY_BUILDERS",
    "DeleteSemantics",
    "ExternalHandle",
    "HoldMode",
    "MockBackend",
    "SimulatedClock",
    "SimulatedHandle",
    "SimulatedProcesses",
    "TinyKind",
    "TinyModel",
    "WindowsLockSimulator",
    "build_tiny",
    "build_tiny_canary",
    "build_tiny_ctc",
    "build_tiny_hybrid",
    "build_tiny_rnnt",
    "build_tiny_tdt",
    "windows_error",
]
