"""``StreamedVenue``: books and fills from the streams while they are live, the venue's record (REST)
at the start, after each reconnect and (rate-limited) while the stream is down; ``history`` is
always the record."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, cast

from perpbox.bots.hl_streams import HyperliquidStreams
from perpbox.bots.hyperliquid_venue import HyperliquidVenue
from perpbox.bots.streamed_venue import StreamedVenue
from perpbox.bots.venue import Book, Fill, Recorded


def _fill(fid: str, ts: int, coin: str = "BTC") -> Fill:
    return Fill(fill_id=fid, order_id="7", coin=coin, size=Decimal("0.1"), px=Decimal("100"), fee=Decimal("0.01"),
                ts_ms=ts, maker=True)


class FakeRest:
    def __init__(self, dex: str = "") -> None:
        self.name, self.url, self.user, self.dex = "hyperliquid:test", "http://x", "0xabc", dex
        self.record: list[Fill] = []
        self.fill_reads = 0
        self.book_reads = 0

    async def fills(self, since_ms: int) -> list[Fill]:
        self.fill_reads += 1
        return [f for f in self.record if f.ts_ms >= since_ms]

    async def book(self, coin: str) -> Book:
        self.book_reads += 1
        return Book(coin=coin, bids=((Decimal(99), Decimal(1)),), asks=((Decimal(101), Decimal(1)),), ts_ms=1)


class FakeStreams:
    def __init__(self) -> None:
        self.connected = True
        self.reconnects = 0
        self.fills: list[Fill] = []
        self.books: dict[str, Book] = {}

    def book(self, coin: str, max_age_ms: int | None = None) -> Book | None:
        return self.books.get(coin) if self.connected else None

    def fills_since(self, ms: int) -> list[Fill]:
        return [f for f in self.fills if f.ts_ms >= ms]


def _venue(rest: FakeRest, streams: FakeStreams, clock: list[int]) -> StreamedVenue:
    return StreamedVenue(cast(HyperliquidVenue, rest), ["BTC"], streams=cast(HyperliquidStreams, streams),
                         rest_every_ms=1_000, clock=lambda: clock[0])


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_it_is_a_recorded_venue() -> None:
    assert isinstance(_venue(FakeRest(), FakeStreams(), [0]), Recorded)


def test_books_come_from_the_stream_while_it_has_one_else_from_rest() -> None:
    rest, streams = FakeRest(), FakeStreams()
    v = _venue(rest, streams, [0])
    pushed = Book(coin="BTC", bids=((Decimal(100), Decimal(2)),), asks=((Decimal("100.5"), Decimal(2)),), ts_ms=5)
    streams.books["BTC"] = pushed
    assert _run(v.book("BTC")) is pushed and rest.book_reads == 0
    streams.connected = False
    assert _run(v.book("BTC")).bids[0][0] == Decimal(99)
    assert rest.book_reads == 1 and v.rest_book_reads == 1


def test_fills_read_the_record_once_then_the_stream_merged_by_id() -> None:
    rest, streams = FakeRest(), FakeStreams()
    v = _venue(rest, streams, [0])
    rest.record = [_fill("1", 10), _fill("2", 20)]
    streams.fills = [_fill("2", 20), _fill("3", 30)]
    assert [f.fill_id for f in _run(v.fills(0))] == ["1", "2", "3"]
    streams.fills.append(_fill("4", 40))
    assert [f.fill_id for f in _run(v.fills(0))] == ["1", "2", "3", "4"]
    assert rest.fill_reads == 1  # live: the record is not polled
    assert [f.fill_id for f in _run(v.fills(25))] == ["3", "4"]  # a later since: no new read either
    assert rest.fill_reads == 1


def test_a_reconnect_reads_the_record_again_for_the_fills_made_while_down() -> None:
    rest, streams = FakeRest(), FakeStreams()
    v = _venue(rest, streams, [0])
    _run(v.fills(0))
    rest.record = [_fill("9", 50)]  # made while the stream was down; the snapshot did not reach it
    streams.reconnects = 1
    assert [f.fill_id for f in _run(v.fills(0))] == ["9"]
    _run(v.fills(0))
    assert rest.fill_reads == 2  # once per reconnect


def test_while_the_stream_is_down_the_record_is_read_at_most_every_rest_every_ms() -> None:
    rest, streams, clock = FakeRest(), FakeStreams(), [0]
    v = _venue(rest, streams, clock)
    streams.connected = False
    for t in (0, 300, 999):
        clock[0] = t
        _run(v.fills(0))
    assert rest.fill_reads == 1
    clock[0] = 1_000
    rest.record = [_fill("5", 900)]
    assert [f.fill_id for f in _run(v.fills(0))] == ["5"]
    assert rest.fill_reads == 2


def test_history_is_the_record_alone_so_a_lost_fill_shows() -> None:
    """A rollback: the stream saw fill 2, the venue's record no longer has it."""
    rest, streams = FakeRest(), FakeStreams()
    v = _venue(rest, streams, [0])
    rest.record = [_fill("1", 10)]
    streams.fills = [_fill("1", 10), _fill("2", 20)]
    assert [f.fill_id for f in _run(v.history(0))] == ["1"]
    assert [f.fill_id for f in _run(v.fills(0))] == ["1", "2"]


def test_a_dex_venue_takes_only_its_dex_fills_from_the_stream() -> None:
    rest, streams = FakeRest(dex="xyz"), FakeStreams()
    v = _venue(rest, streams, [0])
    streams.fills = [_fill("1", 10, "xyz:XYZ100"), _fill("2", 20, "BTC")]
    assert [f.fill_id for f in _run(v.fills(0))] == ["1"]
