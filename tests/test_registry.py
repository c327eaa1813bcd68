from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from speakeasy_core.backends import (
    available_backends,
    create_backend,
    register_backend,
    registry,
    unregister_backend,
)
from speakeasy_core.errors import BackendError, UnknownBackendError
from speakeasy_core.testing import MockBackend


@pytest.fixture
def clean_registry() -> Iterator[None]:
    saved = dict(registry._registry)
    yield
    registry._registry.clear()
    registry._registry.update(saved)


def mock_factory(*, model: str | None, device: str, **options: Any) -> MockBackend:
    return MockBackend(model_name=model or "default", name=f"mock-{device}")


def test_builtins_are_listed_without_importing_them() -> None:
    names = available_backends()
    assert {"parakeet", "canary", "whisper"} <= set(names)
    assert names == sorted(names)


@pytest.mark.usefixtures("clean_registry")
def test_register_create_unregister() -> None:
    register_backend("mine", mock_factory)
    backend = create_backend("mine", model="m1", device="cpu")
    assert isinstance(backend, MockBackend)
    assert (backend.model_name, backend.name) == ("m1", "mock-cpu")
    with pytest.raises(ValueError, match="already registered"):
        register_backend("mine", mock_factory)
    register_backend("mine", "speakeasy_core.testing:MockBackend", replace=True)
    unregister_backend("mine")
    assert "mine" not in available_backends()


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(UnknownBackendError, match="parakeet") as info:
        create_backend("no-such-backend", model=None, device="cpu")
    assert info.value.name == "no-such-backend"
    with pytest.raises(UnknownBackendError):
        unregister_backend("no-such-backend")


@pytest.mark.usefixtures("clean_registry")
def test_broken_string_target_is_a_backend_error() -> None:
    register_backend("broken", "speakeasy_core.no_such_module:Thing")
    with pytest.raises(BackendError, match="cannot import"):
        create_backend("broken", model=None, device="cpu")


@pytest.mark.usefixtures("clean_registry")
def test_factory_returning_a_non_backend_is_rejected() -> None:
    register_backend("bad", lambda **_: object())  # type: ignore[arg-type]
    with pytest.raises(BackendError, match="Backend protocol"):
        create_backend("bad", model=None, device="cpu")


@pytest.mark.usefixtures("clean_registry")
def test_entry_points_are_discovered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party package's entry point shows up and is created lazily."""
    point = EntryPoint(
        name="thirdparty",
        value="tests.test_registry:mock_factory",
        group=registry.ENTRY_POINT_GROUP,
    )
    shadow = EntryPoint(
        name="whisper", value="tests.test_registry:mock_factory", group=registry.ENTRY_POINT_GROUP
    )

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        return [point, shadow] if group == registry.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    assert "thirdparty" in available_backends()
    assert isinstance(create_backend("thirdparty", model=None, device="cpu"), MockBackend)
    # a built-in is never shadowed by an entry point
    assert registry._registry["whisper"] == "speakeasy_core.backends.whisper:WhisperBackend"
