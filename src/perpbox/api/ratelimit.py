"""Hyperliquid's IP rate limit: 1,200 weight per minute per IP (a token bucket refilled
continuously).  Weights: exchange actions ``1 + floor(batch length / 40)``; info requests 2 for
``l2Book, allMids, clearinghouseState, orderStatus, spotClearinghouseState, exchangeStatus``, 60 for
``userRole``, 20 for the rest.  Over the limit the request is refused with HTTP 429."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

CAPACITY = 1_200
LIGHT = frozenset({"l2Book", "allMids", "clearinghouseState", "orderStatus", "spotClearinghouseState",
                   "exchangeStatus"})


class RateLimiter:
    def __init__(self, enabled: bool = True, capacity: float = CAPACITY) -> None:
        self.enabled = enabled
        self.capacity = capacity
        self._buckets: dict[str, tuple[float, float]] = {}  # ip -> (tokens, monotonic time of last refill)

    @staticmethod
    def info_weight(body: Any) -> int:
        kind = body.get("type") if isinstance(body, dict) else None
        if not isinstance(kind, str):  # a list or object here is a bad request, weighed as the default
            return 20
        return 2 if kind in LIGHT else 60 if kind == "userRole" else 20

    @staticmethod
    def action_weight(body: Any) -> int:
        action = body.get("action") if isinstance(body, dict) else None
        n = 1
        if isinstance(action, dict):
            for key in ("orders", "cancels", "modifies"):
                items = action.get(key)
                if isinstance(items, list):
                    n = len(items)
        return 1 + n // 40

    def allow(self, ip: str, weight: int, now: float | None = None) -> bool:
        if not self.enabled:
            return True
        t = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(ip, (self.capacity, t))
        tokens = min(self.capacity, tokens + (t - last) * self.capacity / 60)
        if tokens < weight:
            self._buckets[ip] = (tokens, t)
            return False
        self._buckets[ip] = (tokens - weight, t)
        return True


ADDRESS_BUFFER = 10_000
OVER_LIMIT_INTERVAL_S = 10.0
CANCEL_HEADROOM = 100_000
TOO_MANY_REQUESTS = ("Too many cumulative requests sent ({used} > {cap}) for cumulative volume traded ${vlm}. "
                     "Place taker orders to free up 1 request per USDC traded.")
CANCEL_ACTIONS = frozenset({"cancel", "cancelByCloid", "scheduleCancel"})


class AddressLimiter:
    """Hyperliquid's address-based limit on actions: an address may have sent ``buffer`` (10,000)
    requests plus one per USDC it has traded; an action with n orders/cancels/modifies counts n.
    Over the cap the address gets one request every 10 s; cancels may go on up to
    ``min(cap + 100,000, 2 × cap)``.  Counts live in the server process (not in the exchange state:
    a restart forgives them, as a fresh node's view would)."""

    def __init__(self, volume: Callable[[str], int], buffer: int = ADDRESS_BUFFER,
                 exempt: frozenset[str] | set[str] = frozenset()) -> None:
        self.volume = volume  # address -> cumulative traded notional, micro-USDC
        self.buffer = buffer
        self.exempt = exempt  # the server's own built-in deployers (they push the oracle every 3 s)
        self.used: dict[str, int] = {}
        self._last_over: dict[str, float] = {}

    def cap(self, user: str) -> int:
        return self.buffer + self.volume(user) // 1_000_000

    @staticmethod
    def count(action: dict[str, Any]) -> int:
        for key in ("orders", "cancels", "modifies"):
            items = action.get(key)
            if isinstance(items, list):
                return max(1, len(items))
        return 1

    def check(self, user: str, action: dict[str, Any], now: float | None = None) -> str | None:
        """Count the action against ``user``; the venue's error text if it is refused (then it is
        not counted)."""
        if user in self.exempt:
            return None
        n = self.count(action)
        used, cap = self.used.get(user, 0), self.cap(user)
        limit = min(cap + CANCEL_HEADROOM, 2 * cap) if action.get("type") in CANCEL_ACTIONS else cap
        if used + n > limit:
            t = time.monotonic() if now is None else now
            last = self._last_over.get(user)
            if last is not None and t - last < OVER_LIMIT_INTERVAL_S:
                cents = self.volume(user) // 10_000
                return TOO_MANY_REQUESTS.format(used=used + n, cap=cap, vlm=f"{cents // 100}.{cents % 100:02d}")
            self._last_over[user] = t
        self.used[user] = used + n
        return None
