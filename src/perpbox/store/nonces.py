"""Hyperliquid's nonce rule, per signer (an API wallet's nonces are its own, not its master's):
the 100 highest nonces are kept; a new nonce is accepted iff it is not among them, is larger than
the smallest of them once 100 are kept, and lies in ``(now − 2 days, now + 1 day)``.

The windows live in the store because they are durable state: the sequencer checks and uses them as
it commits a batch, and snapshots and recovery carry them with the engine."""

from __future__ import annotations

import heapq

KEPT = 100
PAST_MS = 2 * 86_400_000
FUTURE_MS = 86_400_000


class NonceWindows:
    def __init__(self) -> None:
        self._kept: dict[str, list[int]] = {}  # signer -> min-heap of its highest nonces
        self._sets: dict[str, set[int]] = {}

    def check(self, signer: str, nonce: int, now: int) -> str | None:
        """None if ``nonce`` may be used now, else the venue's error message."""
        if not now - PAST_MS < nonce < now + FUTURE_MS:
            # the "Invalid nonce: " prefix is the venue's (reference §3.10); the window's wording is perpbox's
            return f"Invalid nonce: nonce {nonce} is not within the window ({now - PAST_MS}, {now + FUTURE_MS})"
        seen = self._sets.get(signer)
        if seen is None:
            return None
        if nonce in seen:
            return f"Invalid nonce: duplicate nonce {nonce}"  # reference §3.10 (T2, T1)
        heap = self._kept[signer]
        if len(heap) >= KEPT and nonce < heap[0]:
            return f"Invalid nonce: nonce too low {nonce} < {heap[0]}"  # reference §3.10 (T2, T1)
        return None

    def use(self, signer: str, nonce: int) -> None:
        heap = self._kept.setdefault(signer, [])
        seen = self._sets.setdefault(signer, set())
        heapq.heappush(heap, nonce)
        seen.add(nonce)
        if len(heap) > KEPT:
            seen.discard(heapq.heappop(heap))
