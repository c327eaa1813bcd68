"""Test configuration: hypothesis profiles, the shared fixture modules, and skips that
name the extra a test needs (tests/extras.py)."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, settings

from tests.extras import EXTRAS, check_declared, missing, reason

# `ci` is the default; select `thorough` with `pytest --hypothesis-profile=thorough`.
settings.register_profile(
    "ci",
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=3000,
    stateful_step_count=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.audio",
    "tests.fixtures.containers",
    "tests.fixtures.nemo_models",
    "tests.hostile",
]


def pytest_configure(config: pytest.Config) -> None:
    check_declared()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip tests marked with an extra that is not installed, naming it; skip `windows`
    tests off Windows (the Windows lane fails if any is skipped there)."""
    absent = {extra: pytest.mark.skip(reason=reason(extra)) for extra in EXTRAS if missing(extra)}
    win32 = pytest.mark.skip(reason="needs Win32: runs on Windows and in .ci/windows/lane.sh")
    for item in items:
        for extra, skip in absent.items():
            if item.get_closest_marker(extra) is not None:
                item.add_marker(skip)
        if sys.platform != "win32" and item.get_closest_marker("windows") is not None:
            item.add_marker(win32)
