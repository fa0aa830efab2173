"""``bots.hl_streams`` against a real ``perpbox serve`` (simulated makers and takers, ``--dev-faults``):
books arrive and agree with the REST ``l2Book``; an IOC fill against the makers arrives on the stream
once, as the REST adapter reads it; after ``ws_drop`` the client reconnects, resubscribes, calls
``on_reconnect``, books flow again and a later fill arrives once although the snapshot repeats the
earlier one; under ``freeze`` ``book()`` is None while the venue is away (never the book from before)
and books come back after.

The streams run on an event loop in a thread of their own; the test polls them from its thread with
``wait_until`` (no timing asserts)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from decimal import ROUND_CEILING, Decimal
from typing import Any, TypeVar

import httpx
import pytest
from eth_account import Account

from perpbox.bots.hl_streams import HyperliquidStreams
from perpbox.bots.hyperliquid_venue import HyperliquidVenue
from perpbox.bots.venue import FILLED, Book, Fill, OrderRequest, OrderState

from .conftest import Server, wait_until

T = TypeVar("T")
COIN = "ETH"


class LoopThread:
    """An event loop running in a thread: the streams live there, the test thread polls them."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="streams-loop", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` evaluated on the loop's thread (a consistent view of the streams' state)."""

        async def go() -> T:
            return fn()

        return self.run(go())

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("hl_streams") / "a", "--seed", "9", "--dev-faults").start()
    yield s
    s.stop()


@pytest.fixture
def lp() -> Iterator[LoopThread]:
    t = LoopThread()
    yield t
    t.close()


class Trader:
    """A funded account: its REST venue and its streams, both on the loop thread."""

    def __init__(self, srv: Server, lp: LoopThread) -> None:
        self.srv, self.lp = srv, lp
        acct = Account.create()
        srv.fund(acct.address)
        self.reconciled: list[int] = []  # REST fills counted by each on_reconnect

        async def make() -> tuple[HyperliquidVenue, HyperliquidStreams]:
            venue = HyperliquidVenue(srv.url, acct.key.hex())

            async def reconcile() -> None:  # what a bot does after a reconnect: read the truth over REST
                self.reconciled.append(len(await venue.fills(0)))

            streams = HyperliquidStreams(srv.url, acct.address, ["BTC", COIN], on_reconnect=reconcile,
                                         ping_interval=1.0, dead_after=5.0)
            await streams.start()
            return venue, streams

        self.venue, self.streams = lp.run(make())

    def book(self) -> Book | None:
        return self.lp.call(lambda: self.streams.book(COIN))

    def stream_fills(self) -> list[Fill]:
        return self.lp.call(lambda: self.streams.fills_since(0))

    def rest_fills(self) -> list[Fill]:
        return sorted(self.lp.run(self.venue.fills(0)), key=lambda f: f.ts_ms)

    def take(self) -> OrderState:
        """Buy a little over $10 IOC at the makers' best ask (again if the book moved away)."""

        async def go() -> OrderState:
            lot = (await self.venue.markets())[COIN].lot
            st = OrderState("unknown")
            for _ in range(20):
                ask_px, ask_sz = (await self.venue.book(COIN)).asks[0]
                size = max(lot, (Decimal(12) / ask_px).quantize(lot, rounding=ROUND_CEILING))
                st = await self.venue.place(OrderRequest(COIN, True, min(size, ask_sz), ask_px, tif="ioc"))
                if st.status == FILLED:
                    return st
            raise AssertionError(f"the IOC never filled: {st}")

        return self.lp.run(go())

    def close(self) -> None:
        self.lp.run(self.streams.aclose())
        self.lp.run(self.venue.aclose())


@pytest.fixture
def trader(srv: Server, lp: LoopThread) -> Iterator[Trader]:
    t = Trader(srv, lp)
    yield t
    t.close()


def fault(srv: Server, **body: Any) -> dict[str, Any]:
    r = httpx.post(srv.url + "/dev/fault", json=body, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def fills_of(fills: list[Fill], order_id: str | None) -> list[Fill]:
    return [f for f in fills if f.order_id == order_id]


def test_books_arrive_and_agree_with_the_rest_book(trader: Trader) -> None:
    assert trader.lp.run(trader.streams.wait_live(30))
    first = wait_until(trader.book)
    assert first.coin == COIN and first.bids and first.asks and first.bids[0][0] < first.asks[0][0]

    def agree() -> bool:
        # the stream's book, then REST's, then the stream's again: if the stream did not move meanwhile,
        # REST (read at the same venue time or later) shows the same levels once the book is still
        before = trader.book()
        rest = trader.lp.run(trader.venue.book(COIN))
        after = trader.book()
        return (before is not None and after is before and rest.ts_ms >= before.ts_ms
                and (rest.bids, rest.asks) == (before.bids, before.asks))

    wait_until(agree)
    # and the stream keeps up: it reaches the venue time of a REST read, or later
    rest = trader.lp.run(trader.venue.book(COIN))
    wait_until(lambda: (b := trader.book()) is not None and b.ts_ms >= rest.ts_ms)
    assert trader.lp.call(lambda: trader.streams.book("BTC")) is not None
    assert trader.lp.call(lambda: trader.streams.age_ms("l2Book", COIN)) is not None


def test_an_ioc_fill_arrives_on_the_stream_once(trader: Trader) -> None:
    assert trader.lp.run(trader.streams.wait_live(30))
    st = trader.take()
    got = trader.lp.run(trader.streams.wait_fill(lambda f: f.order_id == st.order_id, 30))
    assert got is not None and got.size > 0 and not got.maker
    wait_until(lambda: sum(f.size for f in fills_of(trader.stream_fills(), st.order_id)) == st.filled)
    stream, rest = trader.stream_fills(), trader.rest_fills()
    assert stream == rest  # the same fills, each once, parsed exactly as the REST adapter parses them
    assert len({f.fill_id for f in stream}) == len(stream)
    wait_until(lambda: (trader.lp.call(lambda: trader.streams.order(st.order_id or "")) or {}).get("status")
               == "filled")
    assert trader.lp.call(lambda: trader.streams.duplicate_fills) == 0


def test_after_ws_drop_it_reconnects_resubscribes_and_counts_fills_once(trader: Trader) -> None:
    s, lp = trader.streams, trader.lp
    assert lp.run(s.wait_live(30))
    first = trader.take()
    wait_until(lambda: fills_of(trader.stream_fills(), first.order_id))
    before = wait_until(trader.book)
    assert lp.call(lambda: s.reconnects) == 0 and trader.reconciled == []

    fault(trader.srv, kind="ws_drop")
    wait_until(lambda: lp.call(lambda: s.reconnects) >= 1 and lp.call(lambda: s.connected))
    wait_until(lambda: trader.reconciled)  # on_reconnect ran, and read the fill made before the drop
    assert trader.reconciled[0] >= len(fills_of(trader.rest_fills(), first.order_id))
    wait_until(lambda: (b := trader.book()) is not None and b.ts_ms > before.ts_ms)  # books flow again
    # the snapshot on resubscribe repeated the first fill: it was not counted again
    wait_until(lambda: lp.call(lambda: s.duplicate_fills) >= 1)

    second = trader.take()
    wait_until(lambda: sum(f.size for f in fills_of(trader.stream_fills(), second.order_id)) == second.filled)
    stream, rest = trader.stream_fills(), trader.rest_fills()
    assert stream == rest and len({f.fill_id for f in stream}) == len(stream)
    assert fills_of(stream, first.order_id) and fills_of(stream, second.order_id)


def test_under_freeze_no_book_is_handed_out_and_books_come_back(trader: Trader) -> None:
    s, lp = trader.streams, trader.lp
    assert lp.run(s.wait_live(30))
    wait_until(trader.book)
    samples: list[tuple[bool, Book | None]] = []
    stop = asyncio.Event()

    async def sample() -> None:  # on the streams' own loop: what a bot asking at any moment would get
        while not stop.is_set():
            samples.append((s.connected, s.book(COIN)))
            await asyncio.sleep(0.005)

    sampler = asyncio.run_coroutine_threadsafe(sample(), lp.loop)
    try:
        wait_until(lambda: samples)
        until = fault(trader.srv, kind="freeze", seconds=2)["fault"]["until"]
        wait_until(lambda: lp.call(lambda: s.book(COIN)) is None)
        back = wait_until(trader.book)
        assert back.ts_ms >= until  # built after the freeze, by the new connection
        wait_until(lambda: trader.reconciled)
    finally:
        lp.loop.call_soon_threadsafe(stop.set)
        sampler.result(10)
    down = next(i for i, (_, b) in enumerate(samples) if b is None)
    assert down > 0 and samples[0][1] is not None
    after = [b for _, b in samples[down:] if b is not None]
    assert after and all(b.ts_ms >= until for b in after)  # once down, never the book from before
    assert all(live for live, b in samples if b is not None)  # a book only from a live stream
    assert lp.call(lambda: s.reconnects) >= 1

