"""Hyperliquid's WebSocket streams for the bots: books, trades, the user's fills and order updates,
from the real venue (``wss://api.hyperliquid.xyz/ws``) or any compatible server (``perpbox serve``'s
``ws://HOST:PORT/ws``), over one connection that reconnects by itself.

What the streams promise, and what they do not:

* **Books are fresh or absent.**  ``book(coin)`` hands out the latest ``l2Book`` push for ``coin``
  *received on the current connection*, and only while that connection is live: every subscription
  acknowledged, no disconnect seen, and some message (a push or a ``pong``) within ``dead_after``
  seconds.  Books are discarded the moment a connection is lost, so a book from a dead stream is
  never handed out as current; after a reconnect, ``book`` is None until the new connection has
  delivered its own snapshot.  A live book can still be old when the market is quiet (the venue
  pushes a book when it changes); ``max_age_ms`` bounds that too.
* **Fills are counted once.**  ``userFills`` sends a snapshot of recent fills on every (re)subscribe,
  repeating fills already seen: fills are kept by ``tid`` and a repeat is ignored (counted in
  ``duplicate_fills``).  The snapshot also brings the fills made while the connection was down, as
  far back as the venue's snapshot reaches — which is why ``on_reconnect`` exists: the bot reconciles
  over REST after each reconnect rather than trusting the snapshot's depth.
* **Bounded.**  Frames over ``max_message_bytes`` close the connection (and are refused if fed
  directly); trades, fills, order updates and errors are capped buffers, oldest dropped first.
* **Exact.**  JSON is decoded with ``parse_float=Decimal`` and every price and size goes through
  ``Decimal(str)``: no float is ever made.

Reconnecting: exponential backoff with jitter (``Backoff``: ``initial`` doubling to ``cap``, each
delay drawn in ``[base/2, base]`` from an injectable RNG), reset once a connection has stayed live
for ``healthy_after`` seconds — a venue that accepts and closes at once (``perpbox serve`` while
frozen answers close code 1013) keeps backing off.  A heartbeat ``{"method":"ping"}`` goes out every
``ping_interval`` seconds; a connection silent for ``dead_after`` seconds is dropped and reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import connect as ws_connect

from perpbox.bots.hyperliquid_venue import _d
from perpbox.bots.venue import Book, Fill

log = logging.getLogger("perpbox.bots.hl_streams")

PING = '{"method":"ping"}'
MAX_MESSAGE_BYTES = 4 * 2**20  # a userFills snapshot on the real venue can hold ~2000 fills
MAX_TRADES = 2_000
MAX_FILLS = 10_000
MAX_ORDERS = 10_000
MAX_ERRORS = 100


# -- parsing (pure: the exact JSON shapes of the reference's §5.3) --------------------------------------
def _dec(x: Any) -> Decimal:
    """A finite Decimal from the venue's string (the REST adapter's conversion, NaN/Infinity refused)."""
    if isinstance(x, bool):
        raise ValueError(f"not a decimal: {x!r}")
    v = _d(x)
    if not v.is_finite():
        raise ValueError(f"not a finite decimal: {x!r}")
    return v


def _int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise ValueError(f"not an integer: {x!r}")
    return x


@dataclass(frozen=True, slots=True)
class Trade:
    coin: str
    px: Decimal
    sz: Decimal  # unsigned
    taker_is_buy: bool  # the venue's "side" is the aggressor's: "B" a buy took an ask
    ts_ms: int
    tid: int
    hash: str
    buyer: str | None
    seller: str | None


def parse_book(data: Any) -> Book:
    """An ``l2Book`` push's ``data`` (``{"coin","time","levels":[bids, asks]}``) as a ``Book``, parsed as
    ``HyperliquidVenue.book`` parses the REST answer."""
    bids, asks = data["levels"]
    sides = [tuple((_dec(lv["px"]), _dec(lv["sz"])) for lv in side) for side in (bids, asks)]
    return Book(coin=str(data["coin"]), bids=sides[0], asks=sides[1], ts_ms=_int(data["time"]))


def parse_fill(f: Any) -> Fill:
    """One WsFill (a ``userFills`` item) as a ``Fill``, mapped as ``HyperliquidVenue.fills`` maps a
    ``userFillsByTime`` item: id ``tid``, size signed by side, maker = not ``crossed``."""
    side = f["side"]
    if side not in ("A", "B"):
        raise ValueError(f"fill side: {side!r}")
    size = _dec(f["sz"]) * (1 if side == "B" else -1)
    return Fill(fill_id=str(_int(f["tid"])), order_id=str(_int(f["oid"])), coin=str(f["coin"]), size=size,
                px=_dec(f["px"]), fee=_dec(f.get("fee", "0")), ts_ms=_int(f["time"]),
                maker=not f.get("crossed", False))


def parse_trade(t: Any) -> Trade:
    side = t["side"]
    if side not in ("A", "B"):
        raise ValueError(f"trade side: {side!r}")
    users = t.get("users")
    buyer, seller = (str(users[0]), str(users[1])) if isinstance(users, list) and len(users) == 2 else (None, None)
    return Trade(coin=str(t["coin"]), px=_dec(t["px"]), sz=_dec(t["sz"]), taker_is_buy=side == "B",
                 ts_ms=_int(t["time"]), tid=_int(t["tid"]), hash=str(t.get("hash", "")), buyer=buyer, seller=seller)


def ws_url(url: str) -> str:
    """The WebSocket address of a venue: ``http(s)://host`` → ``ws(s)://host/ws``; ``ws(s)://…`` unchanged."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"not a venue address: {url!r}")
    path = parts.path if parts.scheme in ("ws", "wss") else parts.path.rstrip("/") + "/ws"
    return urlunsplit((scheme, parts.netloc, path or "/", parts.query, ""))


# -- backoff --------------------------------------------------------------------------------------------
class Backoff:
    """Delays between reconnect attempts: ``initial × 2**attempt`` capped at ``cap``, each drawn in
    ``[base/2, base]`` ("equal jitter": never a zero delay, so a crowd of clients still spreads out)."""

    def __init__(self, initial: float = 0.25, cap: float = 10.0, rng: random.Random | None = None) -> None:
        if not 0 < initial <= cap:
            raise ValueError("backoff: 0 < initial <= cap")
        self.initial, self.cap = initial, cap
        self.rng = rng if rng is not None else random.Random()
        self.attempt = 0

    def next(self) -> float:
        base: float = min(self.cap, self.initial * float(2 ** min(self.attempt, 62)))
        self.attempt += 1
        return base * (0.5 + 0.5 * self.rng.random())

    def reset(self) -> None:
        self.attempt = 0


# -- the client -----------------------------------------------------------------------------------------
class Socket(Protocol):
    """What the streams need of a connection (``websockets``' ``ClientConnection`` is one)."""

    async def send(self, message: str) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self) -> None: ...


Connector = Callable[[str], Awaitable[Socket]]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def _sub_key(sub: Any) -> tuple[str, str]:
    """A subscription's identity, as acks and errors echo it (the venue may add default fields)."""
    if not isinstance(sub, dict):
        return ("", "")
    return (str(sub.get("type", "")), str(sub.get("coin", sub.get("user", ""))).lower())


class HyperliquidStreams:
    """``l2Book`` and ``trades`` per coin, ``userFills`` and ``orderUpdates`` of ``user``, kept current
    over a reconnecting WebSocket (see the module docstring for freshness and counting).

    ``on_reconnect`` (async, no arguments) runs after each *re*connection has become live — never for
    the first one — as its own task, one at a time, so a slow REST reconcile never stalls the stream.
    "Live" is every subscription acknowledged; the venue sends each snapshot right after its ack, so
    by then the ``userFills`` snapshot is in (on ``perpbox serve``; the reference documents the order
    for ``l2Book`` only).  Not thread-safe: use it from the event loop it was started on.
    ``clock`` gives milliseconds (wall time by default) for ``last_message_ms``, ages and health;
    ``rng`` seeds the jitter, ``sleep`` is awaited between attempts, ``connect`` opens a ``Socket``:
    tests inject all four.
    """

    def __init__(self, url: str, user: str, coins: Iterable[str], *,
                 on_reconnect: Callable[[], Awaitable[None]] | None = None,
                 clock: Callable[[], int] = _wall_ms, rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, connect: Connector | None = None,
                 ping_interval: float = 15.0, dead_after: float = 40.0, backoff_initial: float = 0.25,
                 backoff_cap: float = 10.0, healthy_after: float = 10.0,
                 max_message_bytes: int = MAX_MESSAGE_BYTES, max_trades: int = MAX_TRADES,
                 max_fills: int = MAX_FILLS, max_orders: int = MAX_ORDERS) -> None:
        if not 0 < ping_interval < dead_after:
            raise ValueError("heartbeat: 0 < ping_interval < dead_after")
        self.url = ws_url(url)
        self.user = user.lower()
        self.coins = tuple(dict.fromkeys(coins))
        self.on_reconnect = on_reconnect
        self._clock = clock
        self._sleep = sleep
        self._connect = connect if connect is not None else self._open
        self.backoff = Backoff(backoff_initial, backoff_cap, rng)
        self.ping_interval, self.dead_after, self.healthy_after = ping_interval, dead_after, healthy_after
        self.max_message_bytes = max_message_bytes
        self._subs: list[dict[str, str]] = [
            *({"type": "l2Book", "coin": c} for c in self.coins),
            *({"type": "trades", "coin": c} for c in self.coins),
            {"type": "userFills", "user": self.user},
            {"type": "orderUpdates", "user": self.user},
        ]
        # state kept across connections
        self._trades: deque[Trade] = deque(maxlen=max_trades)
        self._trade_ids: set[tuple[str, int, int]] = set()
        self._fills: OrderedDict[str, Fill] = OrderedDict()
        self._max_fills = max_fills
        self._fill_floor: int | None = None  # the newest time evicted: fills at or before it are outside the window
        self._fill_signal = asyncio.Event()
        self._orders: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._max_orders = max_orders
        self.errors: deque[str] = deque(maxlen=MAX_ERRORS)  # the venue's error messages, newest last
        self.refused: set[tuple[str, str]] = set()  # subscriptions the venue refused (never retried)
        # per connection
        self._books: dict[str, Book] = {}
        self._pending: set[tuple[str, str]] = set()
        self._live_since: int | None = None
        self._seen: dict[str, int] = {}  # channel (and channel:coin) -> clock ms of the last one
        self.last_message_ms: int | None = None
        # counters
        self.reconnects = 0  # connections that became live after the first
        self.connects = 0  # handshakes that succeeded (live or not)
        self.connect_failures = 0
        self.silences = 0  # connections dropped for silence
        self.duplicate_fills = 0
        self.bad_frames = 0
        self._ever_live = False
        self._closing = False
        self._ws: Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Task[None]] = set()
        self._reconcile_lock = asyncio.Lock()
        self._live_event = asyncio.Event()

    # -- public reads ---------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """Live: every subscription acknowledged on the current connection and a message within
        ``dead_after`` (the receive loop would have dropped it otherwise)."""
        if self._live_since is None or self.last_message_ms is None:
            return False
        return self._clock() - self.last_message_ms <= self.dead_after * 1000

    def age_ms(self, kind: str = "any", coin: str | None = None) -> int | None:
        """Milliseconds since the last message of channel ``kind`` (``l2Book``, ``trades``, ``userFills``,
        ``orderUpdates``, ``pong``, …; ``any`` for any message), of ``coin`` if given; None if never."""
        at = self.last_message_ms if kind == "any" else self._seen.get(kind if coin is None else f"{kind}:{coin}")
        return None if at is None else max(0, self._clock() - at)

    def book(self, coin: str, max_age_ms: int | None = None) -> Book | None:
        """The current book of ``coin``, or None: none received on this connection yet, the stream is
        not live (down, reconnecting, silent), or — with ``max_age_ms`` — the last push of it arrived
        longer ago than that."""
        if not self.connected:
            return None
        b = self._books.get(coin)
        if b is None:
            return None
        if max_age_ms is not None:
            age = self.age_ms("l2Book", coin)
            if age is None or age > max_age_ms:
                return None
        return b

    def trades(self, coin: str | None = None) -> list[Trade]:
        """The recent trades (of ``coin``), oldest first; at most ``max_trades`` are kept."""
        return [t for t in self._trades if coin is None or t.coin == coin]

    def fills_since(self, ms: int) -> list[Fill]:
        """The user's fills with ``ts_ms >= ms`` seen on the stream, each once, in time order.  What the
        stream missed while down is here only if the reconnect snapshot reached back far enough:
        reconcile over REST in ``on_reconnect``."""
        return sorted((f for f in self._fills.values() if f.ts_ms >= ms), key=lambda f: f.ts_ms)

    def order(self, oid: int | str) -> dict[str, Any] | None:
        """The latest ``orderUpdates`` item of order ``oid`` (``{"order": {...}, "status",
        "statusTimestamp"}``, the venue's strings), or None if none was seen."""
        got = self._orders.get(str(oid))
        return None if got is None else dict(got)

    async def wait_fill(self, predicate: Callable[[Fill], bool], timeout: float) -> Fill | None:
        """The first fill (already seen, or arriving within ``timeout`` seconds) ``predicate`` accepts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            signal = self._fill_signal
            for f in self._fills.values():
                if predicate(f):
                    return f
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), remaining)

    async def wait_live(self, timeout: float) -> bool:
        """Wait until the stream is live (True) or ``timeout`` seconds pass (False)."""
        if self.connected:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._live_event.wait(), timeout)
        return self.connected

    # -- lifecycle ------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start connecting in the background (returns at once; ``wait_live`` waits)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name=f"hl-streams {self.url}")

    async def aclose(self) -> None:
        self._closing = True
        tasks = [t for t in (self._task, *self._callbacks) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._task = None
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
            self._ws = None
        self._end_connection()

    async def _open(self, url: str) -> Socket:
        # websockets' own keepalive is off: the venue's heartbeat is the application ping
        return await ws_connect(url, max_size=self.max_message_bytes, ping_interval=None, open_timeout=10,
                                close_timeout=2)

    async def _run(self) -> None:
        while not self._closing:
            try:
                ws = await self._connect(self.url)
            except Exception as e:  # refused, DNS, handshake, timeout: all mean try again later
                self.connect_failures += 1
                log.info("ws %s: connect failed: %s: %s", self.url, type(e).__name__, e)
            else:
                self.connects += 1
                self._ws = ws
                try:
                    healthy = await self._session(ws)
                finally:
                    self._ws = None
                    with contextlib.suppress(Exception):
                        await ws.close()
                if healthy:
                    self.backoff.reset()
            if self._closing:
                return
            await self._sleep(self.backoff.next())

    async def _session(self, ws: Socket) -> bool:
        """One connection: subscribe to everything, read until it dies; whether it was healthy."""
        loop = asyncio.get_running_loop()
        self._books.clear()
        self._pending = {_sub_key(s) for s in self._subs} - self.refused
        ready_by = loop.time() + self.dead_after
        pinger = asyncio.create_task(self._pinger(ws))
        healthy = False
        try:
            for sub in self._subs:
                if _sub_key(sub) not in self.refused:
                    await ws.send(json.dumps({"method": "subscribe", "subscription": sub}, separators=(",", ":")))
            while not self._closing:
                timeout = self.dead_after if self._live_since is not None else ready_by - loop.time()
                try:
                    frame = await asyncio.wait_for(ws.recv(), max(timeout, 0))
                except TimeoutError:
                    self.silences += 1
                    log.warning("ws %s: %s for %.1f s: reconnecting", self.url,
                                "silent" if self._live_since is not None else "not subscribed", self.dead_after)
                    break
                self.handle_frame(frame)
                if self._live_since is None and not self._pending:
                    self._go_live()
        except Exception as e:  # the connection closed or failed
            log.info("ws %s: connection lost: %s: %s", self.url, type(e).__name__, e)
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await pinger
            healthy = self._live_since is not None and self._clock() - self._live_since >= self.healthy_after * 1000
            self._end_connection()
        return healthy

    def _end_connection(self) -> None:
        """Forget everything that is only true of a live connection (books first of all)."""
        self._live_since = None
        self._books.clear()
        self._pending = set()
        self._live_event.clear()

    def _go_live(self) -> None:
        self._live_since = self._clock()
        self._live_event.set()
        if self._ever_live:
            self.reconnects += 1
            log.info("ws %s: reconnected (%d) and resubscribed", self.url, self.reconnects)
            if self.on_reconnect is not None:
                task = asyncio.create_task(self._reconcile(self.on_reconnect))
                self._callbacks.add(task)
                task.add_done_callback(self._callbacks.discard)
        self._ever_live = True

    async def _reconcile(self, callback: Callable[[], Awaitable[None]]) -> None:
        async with self._reconcile_lock:  # one at a time, in order
            try:
                await callback()
            except Exception:
                log.exception("ws %s: on_reconnect failed", self.url)

    async def _pinger(self, ws: Socket) -> None:
        with contextlib.suppress(Exception):  # a failed send: the reader sees the connection end
            while True:
                await asyncio.sleep(self.ping_interval)
                await ws.send(PING)

    # -- frames ---------------------------------------------------------------------------------------
    def handle_frame(self, frame: str | bytes) -> None:
        """Process one frame as received (the receive loop's only entry; tests and replays feed it).
        A frame that is not what the venue sends is counted in ``bad_frames`` and skipped."""
        now = self._clock()
        self.last_message_ms = now
        if isinstance(frame, bytes) or len(frame) > self.max_message_bytes:
            self.bad_frames += 1
            return
        try:
            msg = json.loads(frame, parse_float=Decimal, parse_constant=_no_constant)
        except (ValueError, RecursionError):  # e.g. the real venue's "Websocket connection established."
            self.bad_frames += 1
            return
        if not isinstance(msg, dict):
            self.bad_frames += 1
            return
        channel, data = msg.get("channel"), msg.get("data")
        try:
            self._dispatch(channel, data, now)
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            self.bad_frames += 1
            log.warning("ws %s: bad %s frame (%s: %s): %.200s", self.url, channel, type(e).__name__, e, frame)

    def _mark(self, key: str, now: int) -> None:
        self._seen[key] = now

    def _dispatch(self, channel: Any, data: Any, now: int) -> None:
        if channel == "l2Book":
            book = parse_book(data)
            if book.coin in self.coins:
                self._books[book.coin] = book
                self._mark("l2Book", now)
                self._mark(f"l2Book:{book.coin}", now)
        elif channel == "trades":
            for item in data:
                self._add_trade(parse_trade(item), now)
        elif channel == "userFills":
            if str(data["user"]).lower() == self.user:
                self._mark("userFills", now)
                self._add_fills(parse_fill(f) for f in data["fills"])
        elif channel == "user":  # userEvents (not subscribed here, but its fills count the same way)
            if isinstance(data, dict) and "fills" in data:
                self._add_fills(parse_fill(f) for f in data["fills"])
        elif channel == "orderUpdates":
            self._mark("orderUpdates", now)
            for item in data:
                self._add_order(item)
        elif channel == "subscriptionResponse":
            if data.get("method") == "subscribe":
                self._pending.discard(_sub_key(data.get("subscription")))
        elif channel == "error":
            self._on_error(str(data))
        elif channel == "pong":
            self._mark("pong", now)
        # anything else (post answers, channels not subscribed) is ignored

    def _on_error(self, text: str) -> None:
        self.errors.append(text)
        log.warning("ws %s: venue error: %.300s", self.url, text)
        for prefix in ("Invalid subscription: ", "Already subscribed: "):
            if text.startswith(prefix):
                with contextlib.suppress(ValueError):
                    key = _sub_key(json.loads(text[len(prefix):], parse_float=Decimal))
                    if key in self._pending:
                        self._pending.discard(key)
                        if prefix.startswith("Invalid"):  # refused: do not wait for it, ever
                            self.refused.add(key)

    def _add_trade(self, t: Trade, now: int) -> None:
        if t.coin not in self.coins:
            return
        self._mark("trades", now)
        self._mark(f"trades:{t.coin}", now)
        ident = (t.coin, t.tid, t.ts_ms)  # unique per the venue: (block time, coin, tid)
        if ident in self._trade_ids:
            return
        if self._trades.maxlen is not None and len(self._trades) == self._trades.maxlen:
            old = self._trades[0]
            self._trade_ids.discard((old.coin, old.tid, old.ts_ms))
        self._trades.append(t)
        self._trade_ids.add(ident)

    def _add_fills(self, fills: Iterable[Fill]) -> None:
        added = False
        for f in list(fills):  # parse all first: a bad item skips the frame, not half of it
            if f.fill_id in self._fills or (self._fill_floor is not None and f.ts_ms <= self._fill_floor):
                self.duplicate_fills += 1
                continue
            self._fills[f.fill_id] = f
            added = True
            while len(self._fills) > self._max_fills:
                _, old = self._fills.popitem(last=False)
                self._fill_floor = old.ts_ms if self._fill_floor is None else max(self._fill_floor, old.ts_ms)
        if added:
            self._fill_signal.set()
            self._fill_signal = asyncio.Event()

    def _add_order(self, item: Any) -> None:
        oid = str(_int(item["order"]["oid"]))
        ts = item.get("statusTimestamp")
        prev = self._orders.get(oid)
        if prev is not None and isinstance(ts, int) and isinstance(prev.get("statusTimestamp"), int) \
                and ts < prev["statusTimestamp"]:
            return  # an older status never overwrites a newer one
        self._orders[oid] = item
        self._orders.move_to_end(oid)
        while len(self._orders) > self._max_orders:
            self._orders.popitem(last=False)


def _no_constant(name: str) -> Any:
    raise ValueError(f"not JSON: {name}")
