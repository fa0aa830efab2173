"""``/ws`` under hostile clients: one client never stalls another.

Expected strings come from the reference (../shared/reference/hyperliquid-api.md §5.2): a request
that does not deserialise is answered ``Error parsing JSON into valid websocket request: <raw>``, a
well-typed subscription the venue refuses ``Invalid subscription: <json>`` (the subscription as
compact JSON), acks echo the normalised subscription; the queue rule (a subscriber whose 2,000-message
queue fills is disconnected) comes from the README's ``/ws`` paragraph, the close code 1008 "slow
consumer" from the module's documented behaviour.

Two kinds of test.  In-process ones run ``WsHub.serve`` of a real ``Service`` (no agents, no feed)
behind a real Starlette ``WebSocket`` on fake ASGI callables: the tests see exactly what the hub
sends, can stop "reading" (the hub's send then waits, as uvicorn's does while a socket is full)
and inject failing views.  End-to-end ones run against a ``perpbox serve`` subprocess with its
simulated agents trading (busy channels).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.utils.error import ClientError, ServerError
from starlette.websockets import WebSocket
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from perpbox.api.server import ServeOptions, Service
from perpbox.api.ws import WsHub
from perpbox.config import load_config
from perpbox.exchange import events as V

from .conftest import Server, wait_until

PARSE = "Error parsing JSON into valid websocket request: "
INVALID = "Invalid subscription: "
CONTROL = ("subscriptionResponse", "error", "pong", "post")
COINS = ["BTC", "ETH", "SOL", "HYPE", "xyz:XYZ100", "xyz:SILVER"]  # the default config's markets
ADDR_A = "0x" + "a1" * 20
ADDR_B = "0x" + "b2" * 20
PING = '{"method":"ping"}'
PONG = {"channel": "pong"}
QUEUE_LIMIT = 2_000  # the README: "a subscriber whose bounded queue (2,000 messages) fills is disconnected"
WAIT_S = 10.0  # a hang detector for the in-process waits, not a timing assertion


# -- in-process: a real Service's hub behind a Starlette WebSocket on fake ASGI callables ----------------
@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[asyncio.AbstractEventLoop, Service]]:
    loop = asyncio.new_event_loop()
    opts = ServeOptions(
        data_dir=tmp_path_factory.mktemp("inproc") / "data",
        config=load_config(None),
        agents=False,
        feed="none",
        rate_limits=False,
        fsync=False,
    )
    svc = Service(opts)
    loop.run_until_complete(svc.start())
    for task in svc.tasks:  # only the sequencer: no ticker or flusher pushing behind the tests' backs
        if task.get_name() != "sequencer":
            task.cancel()
    yield loop, svc
    loop.run_until_complete(svc.stop())
    loop.close()


class Peer:
    """One client of ``hub.serve``: frames in through ASGI ``receive``, everything the hub sends
    collected from ASGI ``send``.  With ``reading`` cleared the hub's sends wait (a client that does
    not read), except the close frame."""

    def __init__(self, loop: asyncio.AbstractEventLoop, hub: WsHub) -> None:
        self.loop = loop
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.got: list[dict[str, Any]] = []
        self.close: tuple[int, str] | None = None
        self.reading = asyncio.Event()
        self.reading.set()
        self.pings = 0
        self.seen = 0  # how much of ``got`` sync() has returned
        scope = {
            "type": "websocket",
            "path": "/ws",
            "raw_path": b"/ws",
            "root_path": "",
            "scheme": "ws",
            "query_string": b"",
            "headers": [],
            "client": ("127.0.0.9", 4242),
            "server": ("127.0.0.1", 8080),
            "subprotocols": [],
        }
        self.inbox.put_nowait({"type": "websocket.connect"})
        self.task = loop.create_task(hub.serve(WebSocket(scope, self.inbox.get, self._send)))

    async def _send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.send":
            await self.reading.wait()
            self.got.append(json.loads(message["text"]))
        elif message["type"] == "websocket.close":
            self.close = (message.get("code", 1000), message.get("reason") or "")

    def put(self, frame: str | bytes) -> None:
        key = "bytes" if isinstance(frame, bytes) else "text"
        self.inbox.put_nowait({"type": "websocket.receive", key: frame})
        self.pings += frame == PING

    def run_until(self, pred: Callable[[], bool]) -> None:
        async def wait() -> None:
            async with asyncio.timeout(WAIT_S):
                while not pred():
                    if self.task.done():
                        self.task.result()  # the connection's handler raised: show it
                        raise AssertionError("the hub ended the connection")
                    await asyncio.sleep(0.001)

        self.loop.run_until_complete(wait())

    def sync(self) -> list[dict[str, Any]]:
        """Everything the hub sent since the last call, up to the pong of a ping sent now (replies
        and pushes go out in order)."""
        self.put(PING)
        self.run_until(lambda: self.got.count(PONG) >= self.pings)
        out, self.seen = self.got[self.seen :], len(self.got)
        assert out[-1] == PONG
        return out[:-1]

    def say(self, frame: str | bytes) -> list[dict[str, Any]]:
        """Send ``frame``; what the hub answered (and pushed) before the next pong."""
        self.put(frame)
        return self.sync()

    def leave(self) -> None:
        if not self.task.done():
            self.inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})
            self.loop.run_until_complete(asyncio.wait_for(self.task, WAIT_S))


@pytest.fixture
def peers(live: tuple[asyncio.AbstractEventLoop, Service]) -> Iterator[Callable[[], Peer]]:
    """Make peers on the live hub; all of them leave after the test (so the next test's flushes
    reach only its own)."""
    made: list[Peer] = []

    def make() -> Peer:
        made.append(Peer(live[0], live[1].hub))
        return made[-1]

    yield make
    for peer in made:
        peer.leave()


def _sub(subscription: dict[str, Any], method: str = "subscribe") -> str:
    return json.dumps({"method": method, "subscription": subscription})


def _flush_everything(svc: Service) -> None:
    """One periodic flush as if every market and both test accounts had changed."""
    svc.hub.dirty_assets.update(svc.venue.ex.board.markets)
    svc.hub.dirty_users.update((ADDR_A, ADDR_B))
    svc.hub.flush_books()


# the wire's JSON types decide: 3.0 is not an integer, true is not one, a user is a 0x + 40 hex address
UNPARSABLE = [
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 3.0},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": True},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": "3"},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 5, "mantissa": 2.0},
    {"type": "l2Book", "coin": 0},
    {"type": "l2Book"},
    {"type": "trades", "coin": ["BTC"]},
    {"type": "candle", "coin": "BTC", "interval": "7m"},
    {"type": "candle", "coin": "BTC"},
    {"type": "allMids", "dex": 1},
    {"type": "webData2", "user": "0x" + "g" * 40},
    {"type": "webData2", "user": "0x" + "a" * 41},
    {"type": "userFills", "user": ADDR_A[:-1] + "\u0661"},  # an Arabic-Indic digit is not hex
    {"type": "clearinghouseState", "user": 12},
    {"type": "orderUpdates"},
    {"type": "noSuchChannel", "coin": "BTC"},
    {"type": None},
    {"coin": "BTC"},
]
INVALID_SUBS = [
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 1},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 6},
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 4, "mantissa": 2},  # mantissa only with nSigFigs 5
    {"type": "l2Book", "coin": "BTC", "nSigFigs": 5, "mantissa": 3},
    {"type": "l2Book", "coin": "BTC", "mantissa": 5},
    {"type": "l2Book", "coin": "NOPE"},
    {"type": "bbo", "coin": "btc"},
    {"type": "activeAssetCtx", "coin": ""},
    {"type": "candle", "coin": "@1", "interval": "1m"},
    {"type": "allMids", "dex": "nope"},
    {"type": "clearinghouseState", "user": ADDR_A, "dex": "nope"},
    {"type": "openOrders", "user": ADDR_A, "dex": "zzz"},
    {"type": "activeAssetData", "user": ADDR_A, "coin": "DOGE"},
]


@pytest.mark.parametrize("sub", UNPARSABLE, ids=lambda s: json.dumps(s)[:60])
def test_mistyped_subscriptions_are_refused_unregistered(
    live: tuple[Any, Service], peers: Callable[[], Peer], sub: dict[str, Any]
) -> None:
    peer = peers()
    raw = _sub(sub)
    assert peer.say(raw) == [{"channel": "error", "data": PARSE + raw}]
    _flush_everything(live[1])  # nothing was registered: no flush reaches it, and no flush fails
    assert peer.sync() == []
    assert peer.say(PING) == [PONG]  # the connection is kept


@pytest.mark.parametrize("sub", INVALID_SUBS, ids=lambda s: json.dumps(s)[:60])
def test_refused_subscriptions_answer_invalid_subscription(
    live: tuple[Any, Service], peers: Callable[[], Peer], sub: dict[str, Any]
) -> None:
    peer = peers()
    echoed = json.dumps(sub, separators=(",", ":"), ensure_ascii=False)
    assert peer.say(_sub(sub)) == [{"channel": "error", "data": INVALID + echoed}]
    _flush_everything(live[1])
    assert peer.sync() == []
    assert peer.say(_sub(sub, "unsubscribe"))[0]["channel"] == "error"  # never registered: nothing to undo


def test_valid_l2book_parameters_are_acknowledged_normalised(
    live: tuple[Any, Service], peers: Callable[[], Peer]
) -> None:
    peer = peers()
    params = [(None, None), (2, None), (3, None), (4, None), (5, None), (5, 1), (5, 2), (5, 5)]
    for sig, mantissa in params:
        sub = {"type": "l2Book", "coin": "ETH", "nSigFigs": sig, "mantissa": mantissa}
        ack, snap = peer.say(_sub(sub))
        assert ack == {"channel": "subscriptionResponse", "data": {"method": "subscribe", "subscription": sub}}
        assert snap["channel"] == "l2Book" and snap["data"]["coin"] == "ETH"
    _flush_everything(live[1])  # one book push per subscription, each flush
    assert [m["channel"] for m in peer.sync()] == ["l2Book"] * len(params)
    for sig, mantissa in params:
        sub = {"type": "l2Book", "coin": "ETH", "nSigFigs": sig, "mantissa": mantissa}
        ack = {"channel": "subscriptionResponse", "data": {"method": "unsubscribe", "subscription": sub}}
        assert peer.say(_sub(sub, "unsubscribe")) == [ack]


def test_malformed_frames_and_posts_are_answered(peers: Callable[[], Peer]) -> None:
    peer = peers()
    for raw in [
        "",
        "not json",
        "[1,2]",
        '{"method":"subscribe"}',
        '{"method":"SUBSCRIBE"}',
        '{"method":1}',
        "[" * 1500,
        '{"method":"post","id":"1","request":{"type":"info","payload":{"type":"meta"}}}',
        '{"method":"post","id":-1}',
        '{"method":"post","id":1.5}',
        '{"method":"post"}',
    ]:
        assert peer.say(raw) == [{"channel": "error", "data": PARSE + raw}], raw
    for frame in (b"\x00\xff", PING.encode(), b""):  # binary frames: an error, not a traceback
        (err,) = peer.say(frame)
        assert err["channel"] == "error" and err["data"].startswith(PARSE)
    long = '{"method":"' + "x" * 100_000 + '"}'
    (err,) = peer.say(long)
    assert err["data"].startswith(PARSE + long[:100]) and len(err["data"]) < 10_000  # the echo is bounded
    # a post with a usable id is answered on the post channel, errors mirroring HTTP 422 (reference §5.4)
    (bad,) = peer.say('{"method":"post","id":7,"request":{"type":"info","payload":{"type":"nope"}}}')
    assert bad["channel"] == "post" and bad["data"]["id"] == 7
    assert bad["data"]["response"]["type"] == "error"
    assert bad["data"]["response"]["payload"].startswith("422 Unprocessable Entity: ")
    (bad,) = peer.say('{"method":"post","id":8,"request":[]}')
    assert bad["data"]["id"] == 8 and bad["data"]["response"]["type"] == "error"
    (ok,) = peer.say('{"method":"post","id":9,"request":{"type":"info","payload":{"type":"meta"}}}')
    assert ok["data"]["id"] == 9 and ok["data"]["response"]["payload"]["type"] == "meta"


def test_a_failing_view_skips_only_its_own_subscribers(
    live: tuple[Any, Service],
    peers: Callable[[], Peer],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A view that cannot be serialised (a u64-overflowing agentValidUntil) or that raises, for one
    user, must not stop bbo/books/mids or another user's view, flush after flush."""
    _, svc = live
    attacker, victim = peers(), peers()
    for sub in ({"type": "webData2", "user": ADDR_A}, {"type": "spotState", "user": ADDR_A}):
        assert attacker.say(_sub(sub))[0]["channel"] == "subscriptionResponse"
    for sub in (
        {"type": "webData2", "user": ADDR_B},
        {"type": "webData2", "user": ADDR_A},
        {"type": "bbo", "coin": "BTC"},
        {"type": "l2Book", "coin": "BTC"},
        {"type": "allMids"},
    ):
        assert victim.say(_sub(sub))[0]["channel"] == "subscriptionResponse"
    real_web_data2, real_spot = svc.info.web_data2, svc.info.spot_clearinghouse_state

    def web_data2(body: dict[str, Any]) -> dict[str, Any]:
        view = real_web_data2(body)
        if body["user"] == ADDR_A:
            view["agentValidUntil"] = 10**20  # beyond what a JSON encoder of u64 can write
        return view

    def spot(body: dict[str, Any]) -> dict[str, Any]:
        if body["user"] == ADDR_A:
            raise RuntimeError("boom")
        return real_spot(body)

    monkeypatch.setattr(svc.info, "web_data2", web_data2)
    monkeypatch.setattr(svc.info, "spot_clearinghouse_state", spot)
    with caplog.at_level(logging.ERROR, logger="perpbox.ws"):
        for _ in range(3):  # every flush, not only the first, still reaches the others
            _flush_everything(svc)
            got = victim.sync()
            assert {m["channel"] for m in got} == {"bbo", "l2Book", "allMids", "webData2"}
            assert [m["data"]["user"] for m in got if m["channel"] == "webData2"] == [ADDR_B]
            assert attacker.sync() == []
    failures = [r for r in caplog.records if r.name == "perpbox.ws" and r.levelno >= logging.ERROR]
    assert len(failures) == 2 and all(r.exc_info for r in failures)  # each failing view logged once, with cause
    monkeypatch.undo()  # the views are fixed: their subscribers get them again
    _flush_everything(svc)
    assert {m["channel"] for m in attacker.sync()} == {"webData2", "spotState"}


def test_a_snapshot_that_cannot_be_built_is_refused(
    live: tuple[Any, Service], peers: Callable[[], Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, svc = live
    peer = peers()
    real = svc.info.web_data2
    monkeypatch.setattr(svc.info, "web_data2", lambda body: {**real(body), "agentValidUntil": 10**20})
    raw = _sub({"type": "webData2", "user": ADDR_A})
    (err,) = peer.say(raw)
    assert err["channel"] == "error" and ADDR_A in err["data"]
    monkeypatch.undo()
    ack, snap = peer.say(raw)  # it was not registered: subscribing again is not "Already subscribed"
    assert ack["channel"] == "subscriptionResponse" and snap["channel"] == "webData2"


def test_the_sequencer_listener_never_raises(
    live: tuple[Any, Service], peers: Callable[[], Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, svc = live
    peer = peers()
    for sub in ({"type": "trades", "coin": "BTC"}, {"type": "webData2", "user": ADDR_B}):
        assert peer.say(_sub(sub))[0]["channel"] == "subscriptionResponse"

    def broken(*args: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(svc.info, "trade_json", broken)
    fill = V.Fill(
        ts=1,
        tid=1,
        asset=0,
        px=1,
        sz=1,
        taker_is_buy=True,
        taker=ADDR_A,
        maker=ADDR_A,
        taker_oid=1,
        maker_oid=2,
        taker_fee=0,
        maker_fee=0,
    )
    svc.hub.on_events([fill, V.Deposited(ts=1, user=ADDR_B, usd=1)])  # must not raise into the sequencer
    svc.hub.flush_books()
    # the event after the failing one was still handled: ADDR_B's view is pushed
    assert [(m["channel"], m["data"]["user"]) for m in peer.sync()] == [("webData2", ADDR_B)]


def test_a_full_queue_drops_the_connection_and_forgets_it(live: tuple[Any, Service], peers: Callable[[], Peer]) -> None:
    """The queue rule, in-process: a subscriber that stops reading is cut as soon as 2,000 messages
    wait for it (one more may be in the writer's hands), without waiting for it to read or for a
    ping timeout; the queued messages are discarded; the other subscriber misses nothing."""
    loop, svc = live
    slow, other = peers(), peers()
    for peer in (slow, other):
        assert peer.say(_sub({"type": "allMids"}))[0]["channel"] == "subscriptionResponse"
    slow.reading.clear()  # from now on it never reads: the hub's sends to it wait

    async def publish(n: int) -> None:
        for i in range(n):
            svc.hub.publish(("allMids", ""), "allMids", {"mids": {"N": str(i)}})
            await asyncio.sleep(0)  # the connections' writers run between pushes

    loop.run_until_complete(publish(QUEUE_LIMIT))
    assert not slow.task.done() and slow.close is None  # 2,000 waiting messages are within the rule
    loop.run_until_complete(publish(2))  # now more than 2,000 wait, whatever the writer holds
    slow.run_until(lambda: slow.close is not None)
    assert slow.close == (1008, "slow consumer")
    loop.run_until_complete(asyncio.wait_for(slow.task, WAIT_S))  # the connection's handler is done
    delivered = len(slow.got)
    slow.reading.set()  # reading again now brings none of the discarded messages
    loop.run_until_complete(asyncio.sleep(0.01))
    assert len(slow.got) == delivered
    pushes = other.sync()
    assert [m["data"]["mids"]["N"] for m in pushes] == [str(i) for i in range(QUEUE_LIMIT)] + ["0", "1"]
    loop.run_until_complete(publish(1))  # the hub forgot the dropped one: pushes go to the other only
    assert [m["channel"] for m in other.sync()] == ["allMids"]


# -- end to end: perpbox serve with its agents trading ---------------------------------------------------
@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("busy") / "data", "--seed", "11", "--no-fsync").start()
    yield srv
    srv.stop()


def _log(srv: Server) -> str:
    return Path(srv.log.name).read_text(errors="replace")


class Client:
    """A reading client (a context manager): keeps control replies and pushes apart."""

    def __init__(self, srv: Server) -> None:
        self.url = srv.url.replace("http", "ws") + "/ws"
        self.pushes: list[dict[str, Any]] = []

    def __enter__(self) -> Client:
        self._cm = ws_connect(self.url, max_size=None)
        self.ws: ClientConnection = self._cm.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(None, None, None)

    def send(self, msg: Any) -> None:
        self.ws.send(msg if isinstance(msg, (str, bytes)) else json.dumps(msg))

    def control(self, timeout: float = 10) -> dict[str, Any]:
        while True:
            msg = json.loads(self.ws.recv(timeout=timeout))
            if msg["channel"] in CONTROL:
                return msg
            self.pushes.append(msg)

    def drain(self) -> list[dict[str, Any]]:
        """Read whatever has arrived (a short bounded wait); returns all pushes so far."""
        try:
            while True:
                msg = json.loads(self.ws.recv(timeout=0.05))
                (self.pushes if msg["channel"] not in CONTROL else []).append(msg)
        except TimeoutError:
            pass
        return self.pushes

    def subscribe(self, sub: dict[str, Any]) -> dict[str, Any]:
        self.send({"method": "subscribe", "subscription": sub})
        return self.control()


def _pushed(client: Client, channel: str, n: int, pred: Any = lambda m: True) -> list[dict[str, Any]]:
    """Wait (bounded) until ``client`` has ``n`` fresh pushes of ``channel``; returns them."""
    start = len(client.pushes)

    def fresh() -> list[dict[str, Any]]:
        got = [m for m in client.drain()[start:] if m["channel"] == channel and pred(m)]
        return got if len(got) >= n else []

    return wait_until(fresh, timeout=60)


def test_float_nsigfigs_does_not_stall_other_subscribers(busy: Server) -> None:
    """The issue's attack: ``"nSigFigs": 3.0`` used to register a float key that made every later
    book flush raise, so nobody got bbo, books or mids until the attacker left."""
    with Client(busy) as attacker, Client(busy) as victim:
        for sub in (
            {"type": "l2Book", "coin": "BTC", "nSigFigs": 3.0},
            {"type": "l2Book", "coin": "ETH", "nSigFigs": 5, "mantissa": 2.0},
            {"type": "l2Book", "coin": "SOL", "nSigFigs": 1e400},
        ):
            raw = json.dumps({"method": "subscribe", "subscription": sub}).replace("Infinity", "1e400")
            attacker.send(raw)
            assert attacker.control() == {"channel": "error", "data": PARSE + raw}
        for sub in ({"type": "bbo", "coin": "BTC"}, {"type": "l2Book", "coin": "BTC"}, {"type": "allMids"}):
            assert victim.subscribe(sub)["channel"] == "subscriptionResponse"
        for channel in ("bbo", "l2Book", "allMids"):
            _pushed(victim, channel, 3)  # snapshots and then live pushes, flush after flush
        attacker.send({"method": "ping"})
        assert attacker.control() == {"channel": "pong"}  # the attacker's connection was kept
    assert "Traceback" not in _log(busy)


def test_hostile_agent_name_does_not_stall_webdata2(busy: Server) -> None:
    """An agent named `` valid_until 100000000000000000000`` (whether the exchange accepts it or
    not) must not stop another user's webData2 pushes."""
    hostile, other = Account.create(), Account.create()
    busy.fund(hostile.address)
    busy.fund(other.address)
    with contextlib.suppress(ClientError, ServerError):  # refused (now) or accepted (before): both are fine
        Exchange(hostile, busy.url).approve_agent(" valid_until 100000000000000000000")
    with Client(busy) as attacker, Client(busy) as victim:
        reply = attacker.subscribe({"type": "webData2", "user": hostile.address})
        assert reply["channel"] in ("subscriptionResponse", "error")
        assert victim.subscribe({"type": "webData2", "user": other.address})["channel"] == "subscriptionResponse"
        assert victim.subscribe({"type": "allMids"})["channel"] == "subscriptionResponse"
        busy.fund(hostile.address, "1")  # both accounts change: both views are rebuilt
        busy.fund(other.address, "50000")
        view = _pushed(
            victim,
            "webData2",
            1,
            lambda m: m["data"]["clearinghouseState"]["marginSummary"]["accountValue"] == "150000.0",
        )
        assert view[0]["data"]["user"] == other.address.lower()
        _pushed(victim, "allMids", 2)
        attacker.send({"method": "ping"})
        assert attacker.control()["channel"] == "pong"


def test_binary_frames_are_answered_and_the_connection_kept(busy: Server) -> None:
    with Client(busy) as c:
        for frame in (b"\x00\xff\xfe", b'{"method":"ping"}', b""):
            c.send(frame)
            reply = c.control()
            assert reply["channel"] == "error" and reply["data"].startswith(PARSE)
        assert c.subscribe({"type": "bbo", "coin": "ETH"})["channel"] == "subscriptionResponse"
    assert "Traceback" not in _log(busy)


def _frame(text: str) -> bytes:
    """A masked client text frame (RFC 6455 §5.2)."""
    payload, mask = text.encode(), os.urandom(4)
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _server_frames(sock: socket.socket) -> Iterator[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked server frame (RFC 6455 §5.2) until the close frame or EOF."""
    buf = b""

    def take(n: int) -> bytes:
        nonlocal buf
        while len(buf) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise EOFError(f"connection ended {len(buf)} bytes into a frame")
            buf += chunk
        out, buf = buf[:n], buf[n:]
        return out

    while True:
        try:
            b0, b1 = take(2)
        except EOFError:
            return
        n = b1 & 0x7F
        if n >= 126:
            n = int.from_bytes(take(2 if n == 126 else 8), "big")
        opcode, payload = b0 & 0x0F, take(n)
        yield opcode, payload
        if opcode == 0x8:
            return


def _raw_client(srv: Server) -> socket.socket:
    """A WebSocket client on a bare socket with small buffers (a small receive buffer and MSS keep the
    kernel from absorbing megabytes on the client's behalf, so the server's queue fills sooner)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with contextlib.suppress(AttributeError, OSError):  # a smaller MSS is only an optimisation
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.settimeout(30)  # a hang detector for every read below
    sock.connect(("127.0.0.1", srv.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


QUEUE_LIMIT = 2_000  # the README: "a subscriber whose bounded queue (2,000 messages) fills is disconnected"


def test_a_client_that_never_reads_is_dropped_by_the_queue_rule(busy: Server) -> None:
    """A raw-socket client subscribes to 12 views of each of 70 accounts, then never reads or writes
    again.  The test changes those accounts (faucet deposits), so every book flush pushes their
    views: the client's socket buffers fill, the server's writer blocks, its queue of 2,000 messages
    fills, and the hub drops it there and then (it does not wait for the client to read, or for the
    ~40 s ping timeout).  The drop is visible in the server's log; when the client finally reads it
    gets what was already in flight, none of the 2,000 discarded messages, and a close frame 1008
    "slow consumer".  A reading client of the same accounts keeps getting pushes."""
    users = [f"0x5c{i:038x}" for i in range(70)]
    per_user = [{"type": "webData2"}, {"type": "spotState"}]
    per_user += [{"type": t, "dex": d} for t in ("clearinghouseState", "openOrders") for d in ("", "xyz")]
    per_user += [{"type": "activeAssetData", "coin": coin} for coin in COINS]
    subs = [{**s, "user": u} for u in users for s in per_user]
    # each subscribe is answered by at most an ack and a snapshot (reference §5.2): fewer than the
    # queue holds, so the rule can only apply later, while the client is silent
    assert 2 * len(subs) < QUEUE_LIMIT
    sock = _raw_client(busy)
    port = sock.getsockname()[1]
    with contextlib.closing(sock), Client(busy) as victim, httpx.Client(timeout=10) as http:
        assert victim.subscribe({"type": "webData2", "user": users[0]})["channel"] == "subscriptionResponse"
        sock.sendall(b"".join(_frame(json.dumps({"method": "subscribe", "subscription": s})) for s in subs))
        line = re.compile(rf"ws 127\.0\.0\.1:{port} dropped \(slow consumer\): outgoing queue full at 2000 messages")
        rounds = 0

        def dropped() -> bool:
            nonlocal rounds
            if line.search(_log(busy)):
                return True
            for user in users:  # one deposit per account: each of its views is pushed once more
                assert http.post(busy.url + "/dev/fund", json={"user": user, "usd": "1"}).status_code == 200
            rounds += 1
            victim.drain()
            return False

        wait_until(dropped, timeout=90)
        # the slow client is gone from the hub, the reader is still served: fund users[0] with a
        # distinctive amount and wait for its webData2 push
        busy.fund(users[0], "1000")
        _pushed(
            victim,
            "webData2",
            1,
            lambda m: m["data"]["clearinghouseState"]["marginSummary"]["accountValue"] == f"{1000 + rounds}.0",
        )
        # now the dropped client reads: whole frames, then the close frame
        frames = list(_server_frames(sock))
    texts = [json.loads(p) for op, p in frames if op == 0x1]
    assert frames and frames[-1][0] == 0x8, "no close frame"
    close = frames[-1][1]
    assert int.from_bytes(close[:2], "big") == 1008 and close[2:] == b"slow consumer"
    # at most 2 messages per subscribe and 12 pushes per round were ever queued for it; the 2,000 it
    # held when dropped were discarded, not sent
    assert len(texts) <= 2 * len(subs) + len(subs) * rounds - QUEUE_LIMIT
    assert all(isinstance(m, dict) and "channel" in m for m in texts)
    assert "Traceback" not in _log(busy)
    assert httpx.post(busy.url + "/info", json={"type": "allMids"}, timeout=10).status_code == 200
