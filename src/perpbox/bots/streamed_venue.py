"""A Hyperliquid venue whose books and fills come from its WebSocket streams while they are live —
what a bot on the real venue needs: polling ``userFillsByTime`` (weight 20) five times a second
would spend the whole 1200-per-minute REST budget on one account.

* ``book(coin)``: the stream's book when the stream is live and the book was pushed within
  ``book_max_age_ms``; otherwise one REST ``l2Book`` (``rest_book_reads`` counts them).
* ``fills(since)``: the stream's fills merged, by fill id, with the last REST read of the venue's
  record.  A REST read is due at the start, after every reconnection of the stream (the fills made
  while it was down are read from the record, however far back the reconnect snapshot reaches),
  and every ``rest_every_ms`` while the stream is down.
* ``history(since)``: the venue's own record (REST), never the stream: the stream keeps every fill
  it has seen, including fills the venue has since lost (a rollback), so only the record can show
  a loss.  ``reconnects`` counts the stream's reconnections; a bot reconciles after each one
  (``venue.Recorded``).

Everything else is the REST venue's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from perpbox.bots.hl_streams import HyperliquidStreams
from perpbox.bots.hyperliquid_venue import HyperliquidVenue
from perpbox.bots.venue import Account, Book, Fill, FundingPayment, FundingRate, MarketInfo, OrderRequest, OrderState


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


class StreamedVenue:
    def __init__(self, venue: HyperliquidVenue, coins: Iterable[str], *, book_max_age_ms: int = 2_000,
                 rest_every_ms: int = 1_000, streams: HyperliquidStreams | None = None,
                 clock: Callable[[], int] = _wall_ms) -> None:
        self.inner = venue
        self.name = venue.name
        self.streams = streams or HyperliquidStreams(venue.url, venue.user, coins)
        self.book_max_age_ms, self.rest_every_ms = book_max_age_ms, rest_every_ms
        self._clock = clock
        self._record: dict[str, Fill] = {}  # the last REST read, by fill id
        self._record_since: int | None = None
        self._record_at: int | None = None
        self._record_reconnects = -1  # the stream's reconnect count at that read (-1: none yet)
        self.rest_book_reads = 0
        self.rest_fill_reads = 0

    @property
    def reconnects(self) -> int:
        return self.streams.reconnects

    async def start(self, timeout: float = 10.0) -> bool:
        """Connect the streams; whether they went live within ``timeout`` seconds (the venue works
        over REST meanwhile)."""
        await self.streams.start()
        return await self.streams.wait_live(timeout)

    async def book(self, coin: str) -> Book:
        book = self.streams.book(coin, self.book_max_age_ms)
        if book is not None:
            return book
        self.rest_book_reads += 1
        return await self.inner.book(coin)

    def _record_due(self, since_ms: int) -> bool:
        if self._record_since is None or since_ms < self._record_since:
            return True
        if self.streams.reconnects != self._record_reconnects:
            return True
        live = self.streams.connected
        return not live and (self._record_at is None or self._clock() - self._record_at >= self.rest_every_ms)

    async def fills(self, since_ms: int) -> list[Fill]:
        if self._record_due(since_ms):
            reconnects = self.streams.reconnects  # read before the request: a reconnect during it reads again
            record = await self.inner.fills(since_ms)
            self.rest_fill_reads += 1
            self._record = {f.fill_id: f for f in record}
            self._record_since, self._record_at, self._record_reconnects = since_ms, self._clock(), reconnects
        merged = {f.fill_id: f for f in self._record.values() if f.ts_ms >= since_ms}
        prefix = f"{self.inner.dex}:" if self.inner.dex else ""
        for f in self.streams.fills_since(since_ms):
            if f.coin.startswith(prefix):
                merged.setdefault(f.fill_id, f)
        return sorted(merged.values(), key=lambda f: (f.ts_ms, f.fill_id))

    async def history(self, since_ms: int) -> list[Fill]:
        return await self.inner.fills(since_ms)

    async def markets(self) -> dict[str, MarketInfo]:
        return await self.inner.markets()

    async def place(self, order: OrderRequest) -> OrderState:
        return await self.inner.place(order)

    async def cancel(self, coin: str, order_id: str) -> OrderState:
        return await self.inner.cancel(coin, order_id)

    async def order_status(self, coin: str, order_id: str) -> OrderState:
        return await self.inner.order_status(coin, order_id)

    async def modify(self, coin: str, order_id: str, order: OrderRequest) -> OrderState:
        return await self.inner.modify(coin, order_id, order)

    async def account(self) -> Account:
        return await self.inner.account()

    async def funding(self, coin: str) -> FundingRate:
        return await self.inner.funding(coin)

    async def funding_payments(self, since_ms: int) -> list[FundingPayment]:
        return await self.inner.funding_payments(since_ms)

    async def aclose(self) -> None:
        await self.streams.aclose()
        await self.inner.aclose()
