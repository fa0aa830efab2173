"""Hyperliquid's IP rate limit: 1,200 weight per minute per IP (a token bucket refilled
continuously).  Weights: exchange actions ``1 + floor(batch length / 40)``; info requests 2 for
``l2Book, allMids, clearinghouseState, orderStatus, spotClearinghouseState, exchangeStatus``, 60 for
``userRole``, 20 for the rest.  Over the limit the request is refused with HTTP 429."""

from __future__ import annotations

import time
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
        return 2 if kind in LIGHT else 60 if kind == "userRole" else 20

    @staticmethod
    def action_weight(body: Any) -> int:
        action = body.get("action") if isinstance(body, dict) else None
        n = 1
        if isinstance(action, dict):
            for key in ("orders", "cancels", "modifies"):
                if isinstance(action.get(key), list):
                    n = len(action[key])
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
