"""The nesting limit of a client's JSON (HTTP bodies and WebSocket requests alike).

The venue's deserialiser is serde_json, which refuses input nested deeper than its recursion limit
of 128; perpbox refuses the same, before anything walks a hostile value recursively."""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 128  # nesting of arrays and objects: serde_json's recursion limit


def too_deep(raw: bytes | str, value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays/objects nest more than ``limit`` deep in ``value`` (decoded from ``raw``).
    Each level opens a bracket, so a text with few brackets is not walked at all; the walk is
    iterative (no recursion)."""
    opened = raw.count(b"[") + raw.count(b"{") if isinstance(raw, bytes) else raw.count("[") + raw.count("{")
    if opened <= limit:
        return False
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        items = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
        if items is None:
            continue
        if depth > limit:
            return True
        stack.extend((x, depth + 1) for x in items if isinstance(x, (dict, list)))
    return False
