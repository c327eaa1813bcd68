"""Test configuration: hypothesis profiles and the shared fixture modules."""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, settings

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip `windows` tests off Windows; the Windows lane fails if any is skipped there."""
    if sys.platform == "win32":
        return
    skip = pytest.mark.skip(reason="needs Win32: runs on Windows and in .ci/windows/lane.sh")
    for item in items:
        if item.get_closest_marker("windows") is not None:
            item.add_marker(skip)
