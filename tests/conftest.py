"""Test configuration: hypothesis profiles and the shared fixture modules."""

from __future__ import annotations

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
]
