"""Shortening a failing command sequence into a reproduction (shared by the property tests)."""

from __future__ import annotations

import re
from collections.abc import Callable

from perpbox.exchange import commands as C

Replay = Callable[[list[C.Command]], tuple[str | None, str]]


def failure_key(message: str) -> str:
    """The kind of a failure: its first line with numbers and addresses blanked."""
    return re.sub(r"0x[0-9a-f]+|-?\d+", "#", message.splitlines()[0] if message else "")[:60]


def minimise(cmds: list[C.Command], key: str, replay: Replay, budget: int = 3_000) -> list[C.Command]:
    """Greedy delta debugging: drop chunks of commands (halving the chunk size) while ``replay``
    still fails with the same ``key``.  Only used to print a short reproduction for a failure."""
    chunk = max(1, len(cmds) // 2)
    while chunk >= 1 and budget > 0:
        i = 0
        while i < len(cmds) and budget > 0:
            trial = cmds[:i] + cmds[i + chunk:]
            budget -= 1
            if trial and replay(trial)[0] == key:
                cmds = trial
            else:
                i += chunk
        chunk //= 2
    return cmds
