"""Checks on an ``Exchange``'s whole object graph that its own API does not expose."""

from __future__ import annotations

import gc
import types
from typing import Any

# Not state: code, and the classes and modules objects point at.
_CODE = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.ModuleType, type, types.CodeType)
# Derived caches allowed to hold floats, with the reason.  ``position_index`` is the liquidation
# pre-filter (risk/sweep.py): float64 arrays proven never to miss an account the exact integer check
# flags, rebuilt from the ledger, never hashed or replayed.
DERIVED_FLOAT_CACHES = ("liquidations.position_index",)


def floats_in_state(ex: Any) -> list[str]:
    """Paths to every float reachable from ``ex`` (its attributes, their containers and objects,
    down to the leaves) other than through ``DERIVED_FLOAT_CACHES``.  Walks the garbage
    collector's referents, so compiled (mypyc) classes are covered as well as plain ones."""
    skip = {id(_resolve(ex, name)) for name in DERIVED_FLOAT_CACHES}
    seen: set[int] = set()
    found: list[str] = []
    stack: list[tuple[object, str]] = [(ex, type(ex).__name__)]
    while stack:
        obj, path = stack.pop()
        if id(obj) in seen or id(obj) in skip:
            continue
        seen.add(id(obj))
        if isinstance(obj, float):
            found.append(path)
        elif not isinstance(obj, _CODE):
            stack.extend((r, f"{path} > {type(r).__name__}") for r in gc.get_referents(obj))
    return found


def _resolve(obj: Any, dotted: str) -> Any:
    for name in dotted.split("."):
        obj = getattr(obj, name, None)
    return obj
