"""Name -> backend factory, filled by built-ins, by ``register_backend`` and by entry points.

Built-in backends register as ``"module:attribute"`` strings so that importing
speakeasy_core never imports NeMo or faster-whisper; the module is imported the first
time the backend is created. Third-party packages add backends through the
``speakeasy_core.backends`` entry-point group::

    [project.entry-points."speakeasy_core.backends"]
    mybackend = "my_package.backend:MyBackend"
"""

from __future__ import annotations

import importlib
import logging
import threading
from importlib.metadata import entry_points
from typing import Any

from ..errors import BackendError, UnknownBackendError
from .base import Backend, BackendFactory, is_backend

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_backends",
    "create_backend",
    "register_backend",
    "unregister_backend",
]

ENTRY_POINT_GROUP = "speakeasy_core.backends"

logger = logging.getLogger(__name__)

_registry: dict[str, BackendFactory | str] = {
    "parakeet": "speakeasy_core.backends.nemo:ParakeetBackend",
    "canary": "speakeasy_core.backends.nemo:CanaryBackend",
    "whisper": "speakeasy_core.backends.whisper:WhisperBackend",
}
_lock = threading.Lock()
_entry_points_loaded = False


def register_backend(name: str, factory: BackendFactory | str, *, replace: bool = False) -> None:
    """Register ``factory`` (a callable, or ``"module:attribute"``) under ``name``.

    Raises ValueError if the name is taken, unless ``replace`` is true.
    """
    with _lock:
        if name in _registry and not replace:
            raise ValueError(f"backend {name!r} is already registered")
        _registry[name] = factory


def unregister_backend(name: str) -> None:
    """Remove a registered backend; unknown names raise UnknownBackendError."""
    with _lock:
        if _registry.pop(name, None) is None:
            raise UnknownBackendError(name, sorted(_registry))


def _load_entry_points() -> None:
    global _entry_points_loaded  # noqa: PLW0603 - loaded once per process
    with _lock:
        if _entry_points_loaded:
            return
        _entry_points_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in _registry:
                logger.warning("entry point %s ignored: backend %r exists", ep.value, ep.name)
                continue
            _registry[ep.name] = ep.value


def available_backends() -> list[str]:
    """Names of every registered backend, entry points included, sorted."""
    _load_entry_points()
    with _lock:
        return sorted(_registry)


def _resolve(name: str) -> BackendFactory:
    _load_entry_points()
    with _lock:
        target = _registry.get(name)
        known = sorted(_registry)
    if target is None:
        raise UnknownBackendError(name, known)
    if not isinstance(target, str):
        return target
    module_name, _, attribute = target.partition(":")
    try:
        factory: BackendFactory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise BackendError(f"backend {name!r}: cannot import {target}: {exc}") from exc
    return factory


def create_backend(name: str, *, model: str | None, device: str, **options: Any) -> Backend:
    """Build (but do not load) the backend registered as ``name``."""
    backend = _resolve(name)(model=model, device=device, **options)
    if not is_backend(backend):
        raise BackendError(f"backend {name!r} does not implement the Backend protocol")
    return backend
