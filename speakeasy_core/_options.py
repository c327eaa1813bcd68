"""Checks of option values that several layers share; each raises InvalidOptionError
naming the option."""

from __future__ import annotations

from .errors import InvalidOptionError

__all__ = ["check_int"]


def check_int(option: str, value: object, minimum: int) -> None:
    """``value`` must be an ``int`` (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidOptionError(option, value, f"must be an integer >= {minimum}")
