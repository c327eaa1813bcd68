"""File-name text: its size in bytes, cutting it to fit, and JSON that keeps odd bytes."""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["fit_bytes", "json_text", "name_bytes"]

_SURROGATE = re.compile("[\ud800-\udfff]")


def name_bytes(text: str) -> int:
    """Bytes ``text`` takes in a file name (an upper bound for surrogate-escaped bytes)."""
    return len(text.encode("utf-8", "surrogatepass"))


def fit_bytes(text: str, limit: int) -> str:
    """The longest prefix of ``text`` (whole characters) that fits in ``limit`` bytes."""
    used = 0
    for end, char in enumerate(text):
        used += name_bytes(char)
        if used > limit:
            return text[:end]
    return text


def json_text(value: object, **options: Any) -> str:
    """``json.dumps`` with non-ASCII kept as is, except lone surrogates (the undecodable
    bytes of a POSIX file name, as ``os.fsdecode`` gives them), written as ``\\udcXX``
    escapes: the text encodes as UTF-8, and ``json.loads`` gives the same str back."""
    text = json.dumps(value, ensure_ascii=False, **options)
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
