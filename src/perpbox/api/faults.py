"""Faults on demand (``perpbox serve --dev-faults``, ``POST /dev/fault``): the failures real venues
have had, so a bot's failure handling can be tested against a venue that misbehaves on cue.

``{"kind": …}`` with:

* ``ws_drop`` — every WebSocket connection is closed (clients must reconnect and resubscribe);
* ``freeze`` ``seconds`` — no HTTP answers until it ends (requests wait), WebSockets dropped and
  refused meanwhile;
* ``stale_positions`` ``seconds`` — ``clearinghouseState`` answers what it answered ``seconds`` ago;
* ``zero_positions`` ``seconds`` — ``clearinghouseState`` shows no positions (the reported-zero bug);
* ``delay_fills`` ``ms`` (and ``seconds`` it lasts, default 60) — ``userFills`` and
  ``userFillsByTime`` leave out fills younger than ``ms``;
* ``reject`` ``match``, ``message``, ``count`` — the next ``count`` ``/exchange`` requests whose body
  contains ``match`` are refused with ``message`` (each order's status an error, as the venue does
  for e.g. a minimum-notional refusal; other actions an ``err`` answer);
* ``rollback`` ``seconds`` — the venue's state goes back ``seconds``: every command sequenced
  since then is dropped from the log and the state rebuilt without it, so fills, orders and
  transfers in between vanish (the outage night's lost batches); WebSockets are dropped;
* ``halt`` ``coin`` (and ``seconds``: then it resumes) — the market is halted;
* ``clear`` — every fault ends (a rollback is not undone).
Every field is checked before anything is armed; a bad one is an HTTP 422 that arms nothing.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

KINDS = ("ws_drop", "freeze", "rollback", "stale_positions", "zero_positions", "delay_fills", "reject", "halt", "clear")
MAX_SECONDS = 3_600
MAX_DELAY_MS = 600_000
HISTORY_MS = 3_600_000  # how far back stale_positions can look
HISTORY_KEYS = 1_000  # accounts remembered (least recently asked dropped first)
HISTORY_PER_KEY = 600


class FaultError(ValueError):
    """A fault request that does not say what it must (answered 422; nothing armed)."""


@dataclass
class _Reject:
    match: str
    message: str
    left: int


@dataclass
class Faults:
    now: Callable[[], int]
    until: dict[str, int] = field(default_factory=dict)  # kind -> end (ms)
    params: dict[str, Any] = field(default_factory=dict)
    rejects: list[_Reject] = field(default_factory=list)
    history: OrderedDict[str, deque[tuple[int, Any]]] = field(default_factory=OrderedDict)

    def active(self, kind: str) -> bool:
        return self.until.get(kind, 0) > self.now()

    # -- arming -----------------------------------------------------------------------------------------
    @staticmethod
    def _seconds(body: dict[str, Any], default: float | None = None) -> float:
        s = body.get("seconds", default)
        if isinstance(s, bool) or not isinstance(s, int | float) or not 0 < s <= MAX_SECONDS:
            raise FaultError(f"seconds: a number in (0, {MAX_SECONDS}]")
        return float(s)

    def arm(self, body: Any) -> dict[str, Any]:
        """Validate and arm; what was armed (for the answer)."""
        if not isinstance(body, dict) or body.get("kind") not in KINDS:
            raise FaultError(f"kind: one of {', '.join(KINDS)}")
        kind = body["kind"]
        now = self.now()
        if kind == "clear":
            self.until.clear()
            self.params.clear()
            self.rejects.clear()
            return {"kind": "clear"}
        if kind == "ws_drop":
            return {"kind": kind}
        if kind == "rollback":
            return {"kind": kind, "to": now - round(self._seconds(body) * 1000)}
        if kind == "reject":
            match, message, count = body.get("match"), body.get("message"), body.get("count", 1)
            if not isinstance(match, str) or not 0 < len(match) <= 200:
                raise FaultError("match: a non-empty string of at most 200 characters")
            if not isinstance(message, str) or not 0 < len(message) <= 300:
                raise FaultError("message: a non-empty string of at most 300 characters")
            if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 1_000:
                raise FaultError("count: an integer from 1 to 1000")
            self.rejects.append(_Reject(match, message, count))
            return {"kind": kind, "match": match, "count": count}
        if kind == "delay_fills":
            ms = body.get("ms")
            if isinstance(ms, bool) or not isinstance(ms, int) or not 0 < ms <= MAX_DELAY_MS:
                raise FaultError(f"ms: an integer in (0, {MAX_DELAY_MS}]")
            seconds = self._seconds(body, 60)
            self.params["delay_ms"] = ms
        elif kind == "halt":
            coin = body.get("coin")
            if not isinstance(coin, str) or not 0 < len(coin) <= 40:
                raise FaultError("coin: a coin name")
            seconds = self._seconds(body, MAX_SECONDS)
            self.params["halt_coin"] = coin
        else:
            seconds = self._seconds(body)
            if kind == "stale_positions":
                self.params["stale_ms"] = round(seconds * 1000)
        self.until[kind] = now + round(seconds * 1000)
        return {"kind": kind, "until": self.until[kind]}

    # -- hooks ------------------------------------------------------------------------------------------
    async def gate(self) -> None:
        """Hold a request while the venue is frozen."""
        while self.active("freeze"):
            await asyncio.sleep(min(0.05, (self.until["freeze"] - self.now()) / 1000))

    def on_info(self, body: Any, answer: Any) -> Any:
        kind = body.get("type") if isinstance(body, dict) else None
        if kind == "clearinghouseState" and isinstance(answer, dict):
            return self._positions(body, answer)
        if kind in ("userFills", "userFillsByTime") and isinstance(answer, list) and self.active("delay_fills"):
            cut = self.now() - self.params["delay_ms"]
            return [f for f in answer if not (isinstance(f, dict) and f.get("time", 0) > cut)]
        return answer

    def _positions(self, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        now = self.now()
        key = f"{body.get('user')}|{body.get('dex', '')}"
        past = self.history.get(key)
        if past is None:
            past = self.history[key] = deque(maxlen=HISTORY_PER_KEY)
            while len(self.history) > HISTORY_KEYS:
                self.history.popitem(last=False)
        self.history.move_to_end(key)
        out = answer
        if self.active("stale_positions") and past:
            then = now - self.params["stale_ms"]
            older = [a for t, a in past if t <= then]
            out = older[-1] if older else past[0][1]
        elif self.active("zero_positions"):
            out = {**answer, "assetPositions": []}
        if not (self.active("stale_positions")):
            past.append((now, answer))
        while past and past[0][0] < now - HISTORY_MS:
            past.popleft()
        return out

    def on_exchange(self, body: Any) -> dict[str, Any] | None:
        """The refusal to answer instead, when an armed ``reject`` matches."""
        if not self.rejects:
            return None
        text = orjson.dumps(body).decode() if not isinstance(body, bytes) else body.decode(errors="replace")
        for r in self.rejects:
            if r.match in text:
                r.left -= 1
                if r.left <= 0:
                    self.rejects.remove(r)
                action = body.get("action") if isinstance(body, dict) else None
                if isinstance(action, dict) and action.get("type") == "order" and isinstance(action.get("orders"),
                                                                                             list):
                    return {"status": "ok", "response": {"type": "order", "data": {
                        "statuses": [{"error": r.message} for _ in action["orders"]]}}}
                return {"status": "err", "response": r.message}
        return None
