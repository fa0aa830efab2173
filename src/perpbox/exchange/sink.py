"""Emit = apply, in one place.

Every state change is an event, and an event changes state only through its *applier*, a
deterministic function of (state, event) registered here by the component that owns what it
changes.  ``EventSink.emit`` runs the applier and records the event, so a decision later in the
same command sees it; ``EventSink.replay`` runs only the appliers, which is how a log rebuilds the
state.  Nothing else records an event.

The order path's three hottest events (an order placed, a fill, an order closed) are emitted by
``Exchange._emit_placed`` / ``_emit_fill`` / ``_emit_closed``: each calls the *same* function its
registered applier calls (on values it already holds, not read back from the event) and then
``record``.  That is the only specialisation, and it is measured (bench/engine.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from perpbox.exchange import events as V

Applier = Callable[[Any], None]


class EventSink:
    __slots__ = ("appliers", "out")

    def __init__(self) -> None:
        self.appliers: dict[type, Applier] = {}
        self.out: list[V.Event] = []

    def register(self, appliers: dict[type, Applier]) -> None:
        """Add a component's appliers; an event type has exactly one (its owner's)."""
        for kind, fn in appliers.items():
            if kind in self.appliers:
                raise ValueError(f"two appliers for {kind.__name__}")
            self.appliers[kind] = fn

    def begin(self) -> list[V.Event]:
        """Start a command: the list its events are recorded in."""
        out: list[V.Event] = []
        self.out = out
        return out

    def emit(self, ev: V.Event) -> None:
        self.appliers[type(ev)](ev)
        self.out.append(ev)

    def record(self, ev: V.Event) -> None:
        """Record an event its emitter has just applied through its applier's own function."""
        self.out.append(ev)

    def replay(self, events: Iterable[V.Event]) -> None:
        appliers = self.appliers
        for ev in events:
            appliers[type(ev)](ev)
