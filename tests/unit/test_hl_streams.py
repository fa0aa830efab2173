"""``bots.hl_streams`` without a network: frames in the exact shapes of the reference's WebSocket
section parse into the bots' dataclasses exactly as the REST adapter parses the same items; the
``userFills`` snapshot a reconnect replays is counted once; a book never outlives its connection;
the backoff schedule (seeded, the sleep injected: nothing sleeps); the heartbeat; every buffer
bounded.  A scripted venue (``FakeVenue``) plays the server: acks, snapshots, drops, refusals."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account

from perpbox.bots.hl_streams import Backoff, HyperliquidStreams, Trade, parse_book, parse_fill, parse_trade, ws_url
from perpbox.bots.hyperliquid_venue import HyperliquidVenue
from perpbox.bots.venue import Book, Fill

D = Decimal
USER = "0x" + "ab" * 20
BUYER, SELLER = "0x" + "cc" * 20, "0x" + "c6" * 20
T0 = 1_751_430_933_565


def book_data(coin: str = "BTC", time: int = T0, bid: str = "106295.0", ask: str = "106296.0") -> dict[str, Any]:
    return {"coin": coin, "time": time, "levels": [
        [{"px": bid, "sz": "1.2345", "n": 2}, {"px": "106290.0", "sz": "0.00017", "n": 1}],
        [{"px": ask, "sz": "0.5", "n": 1}, {"px": "106301.5", "sz": "3.0", "n": 4}]]}


def wsfill(tid: int, *, oid: int = 77, side: str = "B", sz: str = "0.5", px: str = "106296.0", time: int = T0,
           crossed: bool = True, fee: str = "0.024158") -> dict[str, Any]:
    """A WsFill as the reference lists it (a userFills item)."""
    return {"coin": "BTC", "px": px, "sz": sz, "side": side, "time": time, "startPosition": "0.0",
            "dir": "Open Long" if side == "B" else "Open Short", "closedPnl": "0.0", "hash": "0x" + "de" * 32,
            "oid": oid, "crossed": crossed, "fee": fee, "tid": tid, "feeToken": "USDC"}


def frame(channel: str, data: Any) -> str:
    return json.dumps({"channel": channel, "data": data})


# -- a scripted venue ---------------------------------------------------------------------------------
class FakeSocket:
    def __init__(self, venue: FakeVenue) -> None:
        self.venue = venue
        self.inbox: asyncio.Queue[str | bytes | BaseException] = asyncio.Queue()
        self.sent: list[str] = []
        self.closed = False

    async def send(self, message: str) -> None:
        if self.closed:
            raise ConnectionError("closed")
        self.sent.append(message)
        self.venue.on_request(self, json.loads(message))

    async def recv(self) -> str | bytes:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def close(self) -> None:
        self.closed = True

    def push(self, channel: str, data: Any) -> None:
        self.inbox.put_nowait(frame(channel, data))


class FakeVenue:
    """Acks every subscription (echoed with the venue's added defaults), sends the l2Book and userFills
    snapshots after the ack, answers pings; ``refuse`` connection attempts fail first."""

    def __init__(self) -> None:
        self.books: dict[str, dict[str, Any]] = {"BTC": book_data()}
        self.fills: list[dict[str, Any]] = []
        self.sockets: list[FakeSocket] = []
        self.refuse = 0
        self.answer_pings = True
        self.snapshot_books = True
        self.invalid_coins: set[str] = set()

    async def connect(self, url: str) -> FakeSocket:
        if self.refuse:
            self.refuse -= 1
            raise OSError("connection refused")
        s = FakeSocket(self)
        self.sockets.append(s)
        return s

    @property
    def ws(self) -> FakeSocket:
        return self.sockets[-1]

    def on_request(self, s: FakeSocket, msg: dict[str, Any]) -> None:
        if msg["method"] == "ping":
            if self.answer_pings:
                s.inbox.put_nowait('{"channel":"pong"}')
            return
        sub = msg["subscription"]
        if sub.get("coin") in self.invalid_coins:
            s.push("error", "Invalid subscription: " + json.dumps(sub))
            return
        echo = {**sub, "nSigFigs": None, "mantissa": None} if sub["type"] == "l2Book" else sub
        s.push("subscriptionResponse", {"method": "subscribe", "subscription": echo})
        if sub["type"] == "l2Book" and self.snapshot_books and sub["coin"] in self.books:
            s.push("l2Book", self.books[sub["coin"]])
        if sub["type"] == "userFills":
            s.push("userFills", {"isSnapshot": True, "user": sub["user"], "fills": list(self.fills)})

    def drop(self) -> None:
        self.ws.inbox.put_nowait(ConnectionError("dropped by the venue"))

    def fill(self, f: dict[str, Any]) -> None:
        self.fills.append(f)
        self.ws.push("userFills", {"user": USER, "fills": [f]})


class Clock:
    def __init__(self, ms: int = 1_000_000) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


async def until(pred: Callable[[], Any], timeout: float = 5.0) -> Any:
    """Yield to the loop until ``pred()`` is truthy (no fixed waits)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        value = pred()
        if value:
            return value
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


def streams_on(venue: FakeVenue, **kw: Any) -> HyperliquidStreams:
    opts: dict[str, Any] = {"connect": venue.connect, "clock": Clock(), "rng": random.Random(1),
                            "backoff_initial": 0.001, "backoff_cap": 0.01, **kw}
    return HyperliquidStreams("ws://venue.test/ws", USER, ["BTC"], **opts)


def run(coro: Coroutine[Any, Any, None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 30))


# -- parsing ------------------------------------------------------------------------------------------
def rest_venue(answer: Any, monkeypatch: pytest.MonkeyPatch) -> HyperliquidVenue:
    venue = HyperliquidVenue("http://venue.test", Account.create().key.hex(), account=USER)

    async def info(body: dict[str, Any]) -> Any:
        return answer

    monkeypatch.setattr(venue, "_info", info)
    return venue


def test_an_l2book_push_parses_exactly_as_the_rest_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    data = book_data()
    book = parse_book(json.loads(frame("l2Book", data))["data"])
    assert book == Book("BTC", ((D("106295.0"), D("1.2345")), (D("106290.0"), D("0.00017"))),
                        ((D("106296.0"), D("0.5")), (D("106301.5"), D("3.0"))), T0)
    assert str(book.bids[1][1]) == "0.00017" and book.mid() == D("106295.5")  # exact, no binary float
    venue = rest_venue(data, monkeypatch)
    assert asyncio.run(venue.book("BTC")) == book
    for bad in ({**data, "levels": [data["levels"][0]]}, {**data, "time": "x"},
                {**data, "levels": [[{"px": "NaN", "sz": "1"}], []]}):
        with pytest.raises((ValueError, KeyError)):
            parse_book(bad)


def test_a_wsfill_parses_exactly_as_the_rest_adapter_parses_userfillsbytime(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [wsfill(293353986402527), wsfill(5, oid=78, side="A", sz="0.25", crossed=False, fee="-0.001")]
    fills = [parse_fill(f) for f in items]
    assert fills[0] == Fill("293353986402527", "77", "BTC", D("0.5"), D("106296.0"), D("0.024158"), T0, False)
    assert (fills[1].size, fills[1].maker, fills[1].fee) == (D("-0.25"), True, D("-0.001"))
    venue = rest_venue(items, monkeypatch)
    assert asyncio.run(venue.fills(0)) == fills


def test_a_trades_push_parses_from_the_reference_frame() -> None:
    raw = ('{"channel":"trades","data":[{"coin":"BTC","side":"A","px":"106296.0","sz":"0.00017",'
           f'"time":1751430933565,"hash":"0xde93","tid":293353986402527,"users":["{BUYER}","{SELLER}"]}}]}}')
    (t,) = [parse_trade(x) for x in json.loads(raw)["data"]]
    assert t == Trade("BTC", D("106296.0"), D("0.00017"), False, T0, 293353986402527, "0xde93", BUYER, SELLER)


def test_numbers_never_become_floats_and_bad_frames_are_skipped() -> None:
    s = streams_on(FakeVenue())
    # a venue that sent a JSON number: decoded as Decimal, never a float
    item = json.dumps(wsfill(1)).replace('"0.5"', "0.1")
    s.handle_frame('{"channel":"userFills","data":{"user":"' + USER + '","fills":[' + item + "]}}")
    (f,) = s.fills_since(0)
    assert f.size == D("0.1") and type(f.size) is Decimal
    for bad in ("Websocket connection established.", b"\x00binary", "[1, 2]", '{"channel":"l2Book","data":{}}',
                frame("l2Book", {**book_data(), "levels": [[{"px": "Infinity", "sz": "1"}], []]}),
                '{"channel":"trades","data":[{"px": NaN}]}', "x" * (s.max_message_bytes + 1)):
        s.handle_frame(bad)
    assert s.bad_frames == 7 and len(s.fills_since(0)) == 1


def test_ws_url() -> None:
    assert ws_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/ws"
    assert ws_url("https://api.hyperliquid.xyz/") == "wss://api.hyperliquid.xyz/ws"
    assert ws_url("wss://api.hyperliquid.xyz/ws") == "wss://api.hyperliquid.xyz/ws"
    with pytest.raises(ValueError):
        ws_url("ftp://x")


# -- streams over a scripted venue ----------------------------------------------------------------------
def test_the_snapshot_a_reconnect_replays_is_counted_once() -> None:
    venue = FakeVenue()
    venue.fills.append(wsfill(1, time=T0))
    called: list[int] = []

    async def main() -> None:
        s = streams_on(venue)

        async def reconcile() -> None:
            called.append(s.reconnects)

        s.on_reconnect = reconcile
        await s.start()
        assert await s.wait_live(5)
        subs = [json.loads(m)["subscription"] for m in venue.ws.sent]
        assert subs == [{"type": "l2Book", "coin": "BTC"}, {"type": "trades", "coin": "BTC"},
                        {"type": "userFills", "user": USER}, {"type": "orderUpdates", "user": USER}]
        venue.fill(wsfill(2, time=T0 + 1))
        await until(lambda: len(s.fills_since(0)) == 2)
        assert called == [] and s.reconnects == 0  # the first connection is not a reconnect
        venue.drop()
        await until(lambda: len(venue.sockets) == 2 and s.connected)
        assert [json.loads(m)["subscription"] for m in venue.ws.sent] == subs  # everything resubscribed
        await until(lambda: called == [1])
        venue.fill(wsfill(3, time=T0 + 2))
        got = await s.wait_fill(lambda f: f.fill_id == "3", 5)
        assert got is not None and got.ts_ms == T0 + 2
        assert [f.fill_id for f in s.fills_since(0)] == ["1", "2", "3"]
        assert [f.fill_id for f in s.fills_since(T0 + 1)] == ["2", "3"]
        assert s.duplicate_fills == 2  # the reconnect's snapshot repeated fills 1 and 2
        assert await s.wait_fill(lambda f: f.fill_id == "9", 0.01) is None
        await s.aclose()

    run(main())


def test_a_book_never_outlives_its_connection() -> None:
    venue = FakeVenue()

    async def main() -> None:
        s = streams_on(venue)
        await s.start()
        await until(lambda: s.book("BTC"))
        b1 = s.book("BTC")
        assert b1 is not None and b1.ts_ms == T0 and s.book("ETH") is None
        venue.refuse = 10**9  # the venue is down until told otherwise
        venue.snapshot_books = False  # and when it is back, its book comes later
        venue.drop()
        await until(lambda: not s.connected)
        assert s.book("BTC") is None
        await until(lambda: s.connect_failures >= 3)
        assert s.book("BTC") is None
        venue.refuse = 0
        await until(lambda: s.connected)
        assert s.book("BTC") is None  # live, but this connection has not sent a book: the old one is gone
        venue.ws.push("l2Book", book_data(time=T0 + 5000, bid="106300.0", ask="106301.0"))
        b2 = await until(lambda: s.book("BTC"))
        assert b2.ts_ms == T0 + 5000 and b2.bids[0][0] == D("106300.0")
        # max_age: the clock moves on without a new book
        clock = s._clock
        assert isinstance(clock, Clock)
        assert s.book("BTC", max_age_ms=1000) == b2 and s.age_ms("l2Book", "BTC") == 0
        clock.ms += 1500
        assert s.book("BTC", max_age_ms=1000) is None and s.book("BTC") == b2 and s.age_ms("l2Book", "BTC") == 1500
        # a stream silent for longer than dead_after is not live, whatever the receive loop has seen
        clock.ms += int(s.dead_after * 1000)
        assert not s.connected and s.book("BTC") is None
        await s.aclose()
        assert s.book("BTC") is None

    run(main())


def test_trades_and_order_updates_are_kept_bounded_and_newest_wins() -> None:
    venue = FakeVenue()

    async def main() -> None:
        s = streams_on(venue, max_trades=3, max_orders=2, max_fills=3)
        await s.start()
        assert await s.wait_live(5)
        trades = [{"coin": "BTC", "side": "B", "px": "1.5", "sz": "2", "time": T0 + i, "hash": "0x1", "tid": i,
                   "users": [BUYER, SELLER]} for i in range(5)]
        venue.ws.push("trades", trades[:3])
        venue.ws.push("trades", trades[1:5])  # overlapping: repeats are not kept twice
        venue.ws.push("trades", [{**trades[0], "coin": "ETH"}])  # not subscribed
        await until(lambda: [t.tid for t in s.trades()] == [2, 3, 4])
        assert s.trades("ETH") == [] and s.trades("BTC")[0].taker_is_buy

        def upd(oid: int, status: str, ts: int) -> dict[str, Any]:
            return {"order": {"coin": "BTC", "side": "B", "limitPx": "106000.0", "sz": "0.0", "oid": oid,
                              "timestamp": T0, "origSz": "0.5"}, "status": status, "statusTimestamp": ts}

        venue.ws.push("orderUpdates", [upd(1, "open", T0), upd(1, "filled", T0 + 2)])
        venue.ws.push("orderUpdates", [upd(1, "open", T0 + 1)])  # older than what is known: ignored
        await until(lambda: s.age_ms("orderUpdates") is not None)
        await until(lambda: (s.order(1) or {}).get("status") == "filled")
        assert s.order("1") == upd(1, "filled", T0 + 2) and s.order(2) is None
        venue.ws.push("orderUpdates", [upd(2, "open", T0), upd(3, "open", T0)])
        await until(lambda: s.order(3) is not None)
        assert s.order(1) is None  # capped at 2: the oldest went
        # fills capped at 3: once one is evicted, a replay of it does not come back as new
        venue.ws.push("userFills", {"user": USER, "fills": [wsfill(i, time=T0 + i) for i in range(1, 5)]})
        await until(lambda: len(s.fills_since(0)) == 3)
        venue.ws.push("userFills", {"isSnapshot": True, "user": USER,
                                    "fills": [wsfill(i, time=T0 + i) for i in range(1, 6)]})
        await until(lambda: "5" in {f.fill_id for f in s.fills_since(0)})
        assert [f.fill_id for f in s.fills_since(0)] == ["3", "4", "5"]
        venue.ws.push("userFills", {"user": "0x" + "00" * 20, "fills": [wsfill(99, time=T0 + 99)]})  # not ours
        venue.ws.push("userFills", {"user": USER, "fills": [wsfill(100, time=T0 + 100)]})
        await until(lambda: "100" in {f.fill_id for f in s.fills_since(0)})
        assert "99" not in {f.fill_id for f in s.fills_since(0)}
        await s.aclose()

    run(main())


def test_a_refused_subscription_does_not_hold_the_stream_down() -> None:
    venue = FakeVenue()
    venue.invalid_coins.add("NOPE")

    async def main() -> None:
        s = HyperliquidStreams("ws://venue.test/ws", USER, ["BTC", "NOPE"], connect=venue.connect, clock=Clock())
        await s.start()
        assert await s.wait_live(5)
        assert s.refused == {("l2Book", "nope"), ("trades", "nope")} and s.errors[0].startswith("Invalid")
        assert s.book("BTC") is not None and s.book("NOPE") is None
        await s.aclose()

    run(main())


# -- backoff and heartbeat ------------------------------------------------------------------------------
def jittered(seed: int, bases: list[float]) -> list[float]:
    r = random.Random(seed)
    return [b * (0.5 + 0.5 * r.random()) for b in bases]


def test_the_backoff_schedule_is_seeded_doubling_capped_and_jittered() -> None:
    b = Backoff(0.25, 10.0, random.Random(42))
    got = [b.next() for _ in range(9)]
    assert got == jittered(42, [0.25, 0.5, 1, 2, 4, 8, 10, 10, 10])
    assert [round(x, 9) for x in got[:4]] == [0.20492835, 0.256252689, 0.637514659, 1.223210738]
    b.reset()
    assert 0.125 <= b.next() <= 0.25
    with pytest.raises(ValueError):
        Backoff(0, 1)


class RecordingSleep:
    """The injected sleep: records each delay and returns at once; from the ``block_at``-th on, blocks."""

    def __init__(self, block_at: int) -> None:
        self.delays: list[float] = []
        self.block_at = block_at

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        if len(self.delays) >= self.block_at:
            await asyncio.Event().wait()
        await asyncio.sleep(0)


def test_reconnect_attempts_follow_the_schedule_without_sleeping() -> None:
    venue = FakeVenue()
    venue.refuse = 10**9

    async def main() -> None:
        sleep = RecordingSleep(block_at=8)
        s = HyperliquidStreams("ws://venue.test/ws", USER, ["BTC"], connect=venue.connect, sleep=sleep,
                               rng=random.Random(42), clock=Clock())
        await s.start()
        await until(lambda: len(sleep.delays) == 8)
        assert sleep.delays == jittered(42, [0.25, 0.5, 1, 2, 4, 8, 10, 10])
        assert s.connect_failures == 8 and not s.connected and s.reconnects == 0
        await s.aclose()

    run(main())


@pytest.mark.parametrize("healthy", [True, False])
def test_the_backoff_resets_only_after_a_healthy_connection(healthy: bool) -> None:
    venue = FakeVenue()
    clock = Clock()

    async def main() -> None:
        sleep = RecordingSleep(block_at=5)
        s = HyperliquidStreams("ws://venue.test/ws", USER, ["BTC"], connect=venue.connect, sleep=sleep,
                               rng=random.Random(7), clock=clock, healthy_after=10.0)
        venue.refuse = 2
        await s.start()
        await until(lambda: s.connected)
        assert sleep.delays == jittered(7, [0.25, 0.5])
        venue.refuse = 10**9
        clock.ms += 10_000 if healthy else 9_999  # live this long, then dropped
        venue.drop()
        await until(lambda: len(sleep.delays) == 5)
        assert sleep.delays == jittered(7, [0.25, 0.5, 0.25, 0.5, 1] if healthy else [0.25, 0.5, 1, 2, 4])
        await s.aclose()

    run(main())


def test_the_heartbeat_pings_and_a_silent_connection_is_dropped() -> None:
    venue = FakeVenue()

    async def main() -> None:
        s = streams_on(venue, ping_interval=0.02, dead_after=1.0)
        await s.start()
        assert await s.wait_live(5)
        await until(lambda: sum(m == '{"method":"ping"}' for m in venue.ws.sent) >= 3)
        assert s.age_ms("pong") is not None and s.silences == 0 and len(venue.sockets) == 1  # pongs keep it up
        venue.answer_pings = False  # the venue goes silent without closing
        await until(lambda: s.silences == 1 and len(venue.sockets) == 2)
        await until(lambda: s.connected and s.reconnects == 1)
        await s.aclose()

    run(main())


def test_an_on_reconnect_that_fails_does_not_stop_the_stream() -> None:
    venue = FakeVenue()

    async def main() -> None:
        calls: list[int] = []

        async def reconcile() -> None:
            calls.append(1)
            raise RuntimeError("REST is down too")

        s = streams_on(venue, on_reconnect=reconcile)
        await s.start()
        assert await s.wait_live(5)
        for n in (1, 2):
            venue.drop()
            await until(lambda n=n: s.reconnects == n and s.connected and len(calls) == n)
        venue.ws.push("l2Book", book_data(time=T0 + 1))
        await until(lambda: (b := s.book("BTC")) is not None and b.ts_ms == T0 + 1)
        await s.aclose()

    run(main())
