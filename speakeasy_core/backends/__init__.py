"""Model backends: the protocol, the registry, and the built-in NeMo and whisper backends."""

from .base import Backend, BackendFactory, BackendOutput, Capabilities, PreparedAudio
from .registry import (
    ENTRY_POINT_GROUP,
    available_backends,
    create_backend,
    register_backend,
    unregister_backend,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Backend",
    "BackendFactory",
    "BackendOutput",
    "Capabilities",
    "PreparedAudio",
    "available_backends",
    "create_backend",
    "register_backend",
    "unregister_backend",
]
