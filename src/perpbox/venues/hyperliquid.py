"""Native Hyperliquid market-data client: ``POST /info`` (sync and async) and a WebSocket stream.

Works against mainnet, testnet, or any Hyperliquid-compatible server (``perpbox serve``): the base
URL is the only setting, and the WebSocket URL is derived the way the official SDK does
(``http→ws``, ``https→wss``, ``+ "/ws"``).

Results are typed (msgspec Structs, floats: this is market data for analytics). The stream client
keeps the connection alive with Hyperliquid's application ping (``{"method":"ping"}``; the venue
closes a connection it has not *sent* to for 60 s), reconnects with exponential backoff,
resubscribes everything after a reconnect, and reports gaps to the caller in-band as
:class:`Gap` items: a reconnect, a silence longer than ``silence_timeout`` (treated as a dead
connection), or a book/bbo ``time`` going backwards.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import msgspec
import orjson
import websockets

MAINNET_URL = "https://api.hyperliquid.xyz"
TESTNET_URL = "https://api.hyperliquid-testnet.xyz"
LOCAL_URL = "http://127.0.0.1:8080"  # perpbox serve's default

T = TypeVar("T")


def ws_url(base_url: str) -> str:
    """``https://api.hyperliquid.xyz`` → ``wss://api.hyperliquid.xyz/ws`` (the SDK's rule)."""
    base = base_url.rstrip("/")
    if base.startswith(("ws://", "wss://")):
        return base if base.endswith("/ws") else base + "/ws"
    return "ws" + base[len("http"):] + "/ws"


def _f(x: Any) -> float | None:
    return None if x is None else float(x)


# -- typed results ----------------------------------------------------------------------------------

class Level(msgspec.Struct, frozen=True):
    px: float
    sz: float
    n: int = 0


class L2Book(msgspec.Struct, frozen=True):
    coin: str
    time: int                 # venue ms
    bids: list[Level]         # best first (descending)
    asks: list[Level]         # best first (ascending)

    @property
    def best_bid(self) -> float | None:
        return self.bids[0].px if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0].px if self.asks else None

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].px + self.asks[0].px) / 2.0

    @property
    def spread_bps(self) -> float | None:
        mid = self.mid
        if mid is None or mid <= 0:
            return None
        return (self.asks[0].px - self.bids[0].px) / mid * 1e4

    def depth_usd(self, side: str, levels: int = 5) -> float:
        """Σ px × sz over the best ``levels`` levels of ``side`` ('bid' or 'ask')."""
        lv = self.bids if side == "bid" else self.asks
        return sum(x.px * x.sz for x in lv[:levels])


class Bbo(msgspec.Struct, frozen=True):
    coin: str
    time: int
    bid: Level | None
    ask: Level | None


class AssetMeta(msgspec.Struct, frozen=True):
    name: str
    sz_decimals: int
    max_leverage: int
    only_isolated: bool = False
    is_delisted: bool = False
    margin_table_id: int | None = None


class AssetCtx(msgspec.Struct, frozen=True):
    funding: float            # hourly rate (fraction)
    open_interest: float      # base units
    oracle_px: float
    mark_px: float
    mid_px: float | None
    premium: float | None
    impact_bid: float | None
    impact_ask: float | None
    day_ntl_vlm: float
    prev_day_px: float | None
    day_base_vlm: float | None


class PerpMarket(msgspec.Struct, frozen=True):
    """One perp with its live context (``metaAndAssetCtxs`` row); ``asset`` is the order asset id."""

    dex: str
    asset: int
    meta: AssetMeta
    ctx: AssetCtx

    @property
    def coin(self) -> str:
        return self.meta.name


class Candle(msgspec.Struct, frozen=True):
    coin: str
    interval: str
    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    close: float
    volume: float             # base units
    trades: int


class FundingRecord(msgspec.Struct, frozen=True):
    coin: str
    time: int
    rate: float               # per interval paid (hourly on Hyperliquid since mid-2023)
    premium: float | None


class PredictedFunding(msgspec.Struct, frozen=True):
    coin: str
    venue: str                # "HlPerp", "BinPerp", "BybitPerp", …
    rate: float               # per that venue's interval
    next_time: int | None
    interval_hours: float | None


class Trade(msgspec.Struct, frozen=True):
    coin: str
    time: int
    px: float
    sz: float
    side: int                 # aggressor: +1 buy ("B"), -1 sell ("A")
    tid: int
    hash: str = ""


# -- parsers (pure; shared by the sync and async clients and the stream) ------------------------------

def parse_level(d: dict[str, Any] | None) -> Level | None:
    if not d:
        return None
    return Level(float(d["px"]), float(d["sz"]), int(d.get("n", 0)))


def parse_l2_book(d: dict[str, Any] | None) -> L2Book | None:
    if not d:
        return None
    bids, asks = d["levels"]
    return L2Book(d["coin"], int(d.get("time", 0)), [parse_level(x) for x in bids],  # type: ignore[misc]
                  [parse_level(x) for x in asks])  # type: ignore[misc]


def parse_bbo(d: dict[str, Any]) -> Bbo:
    bid, ask = d["bbo"]
    return Bbo(d["coin"], int(d["time"]), parse_level(bid), parse_level(ask))


def parse_asset_meta(u: dict[str, Any]) -> AssetMeta:
    return AssetMeta(u["name"], int(u["szDecimals"]), int(u.get("maxLeverage", 0)),
                     bool(u.get("onlyIsolated", False)), bool(u.get("isDelisted", False)),
                     u.get("marginTableId"))


def parse_asset_ctx(c: dict[str, Any]) -> AssetCtx:
    impact = c.get("impactPxs") or [None, None]
    return AssetCtx(
        funding=float(c.get("funding") or 0.0), open_interest=float(c.get("openInterest") or 0.0),
        oracle_px=float(c.get("oraclePx") or 0.0), mark_px=float(c.get("markPx") or 0.0),
        mid_px=_f(c.get("midPx")), premium=_f(c.get("premium")), impact_bid=_f(impact[0]),
        impact_ask=_f(impact[1]), day_ntl_vlm=float(c.get("dayNtlVlm") or 0.0),
        prev_day_px=_f(c.get("prevDayPx")), day_base_vlm=_f(c.get("dayBaseVlm")))


def asset_id(dex_index: int, index: int) -> int:
    """First dex: the universe index; HIP-3 dex ``i`` (1-based in perpDexs): 100000 + i·10000 + index."""
    return index if dex_index == 0 else 100_000 + dex_index * 10_000 + index


def parse_meta_and_ctxs(d: list[Any], dex: str = "", dex_index: int = 0) -> list[PerpMarket]:
    meta, ctxs = d
    return [PerpMarket(dex, asset_id(dex_index, i), parse_asset_meta(u), parse_asset_ctx(c))
            for i, (u, c) in enumerate(zip(meta["universe"], ctxs, strict=False))]


def parse_meta(d: dict[str, Any]) -> list[AssetMeta]:
    return [parse_asset_meta(u) for u in d["universe"]]


def parse_perp_dexs(d: list[Any]) -> list[str]:
    """Dex names in perpDexs order; the first dex (``null``) is ``""``."""
    return ["" if x is None else x["name"] for x in d]


def parse_all_mids(d: dict[str, str]) -> dict[str, float]:
    return {k: float(v) for k, v in d.items()}


def parse_candle(c: dict[str, Any]) -> Candle:
    return Candle(c["s"], c["i"], int(c["t"]), int(c["T"]), float(c["o"]), float(c["h"]), float(c["l"]),
                  float(c["c"]), float(c["v"]), int(c.get("n", 0)))


def parse_candles(d: list[dict[str, Any]]) -> list[Candle]:
    return [parse_candle(c) for c in d]


def parse_funding_history(d: list[dict[str, Any]]) -> list[FundingRecord]:
    return [FundingRecord(x["coin"], int(x["time"]), float(x["fundingRate"]), _f(x.get("premium"))) for x in d]


def parse_predicted_fundings(d: list[Any]) -> list[PredictedFunding]:
    out = []
    for coin, venues in d:
        for venue, v in venues:
            if not v:
                continue  # a venue without a prediction degrades that venue only
            out.append(PredictedFunding(coin, venue, float(v["fundingRate"]), v.get("nextFundingTime"),
                                        _f(v.get("fundingIntervalHours"))))
    return out


def parse_trade(t: dict[str, Any]) -> Trade:
    return Trade(t["coin"], int(t["time"]), float(t["px"]), float(t["sz"]), 1 if t["side"] == "B" else -1,
                 int(t.get("tid", 0)), t.get("hash", ""))


def parse_trades(d: list[dict[str, Any]]) -> list[Trade]:
    return [parse_trade(t) for t in d]


# -- /info clients -----------------------------------------------------------------------------------

class HyperliquidError(RuntimeError):
    pass


def _dex(body: dict[str, Any], dex: str) -> dict[str, Any]:
    if dex:
        body["dex"] = dex
    return body


class _InfoRequests:
    """Request bodies and parsers; the sync client returns results, the async one awaitables."""

    def _do(self, body: dict[str, Any], parse: Callable[[Any], Any]) -> Any:
        raise NotImplementedError

    def raw(self, body: dict[str, Any]) -> Any:
        """Any ``/info`` request, unparsed."""
        return self._do(body, lambda x: x)

    def meta(self, dex: str = "") -> Any:
        """-> list[AssetMeta]"""
        return self._do(_dex({"type": "meta"}, dex), parse_meta)

    def meta_and_asset_ctxs(self, dex: str = "", dex_index: int = 0) -> Any:
        """-> list[PerpMarket] (``dex_index`` = position in perpDexs, for the asset ids)."""
        return self._do(_dex({"type": "metaAndAssetCtxs"}, dex), lambda d: parse_meta_and_ctxs(d, dex, dex_index))

    def perp_dexs(self) -> Any:
        """-> list[str] (``""`` = the first dex)"""
        return self._do({"type": "perpDexs"}, parse_perp_dexs)

    def all_mids(self, dex: str = "") -> Any:
        """-> dict[str, float]"""
        return self._do(_dex({"type": "allMids"}, dex), parse_all_mids)

    def l2_book(self, coin: str, n_sig_figs: int | None = None, mantissa: int | None = None) -> Any:
        """-> L2Book | None (None for an unknown coin)"""
        body: dict[str, Any] = {"type": "l2Book", "coin": coin}
        if n_sig_figs is not None:
            body["nSigFigs"] = n_sig_figs
        if mantissa is not None:
            body["mantissa"] = mantissa
        return self._do(body, parse_l2_book)

    def candles(self, coin: str, interval: str, start_ms: int, end_ms: int) -> Any:
        """-> list[Candle]"""
        return self._do({"type": "candleSnapshot", "req": {"coin": coin, "interval": interval,
                                                          "startTime": start_ms, "endTime": end_ms}}, parse_candles)

    def funding_history(self, coin: str, start_ms: int, end_ms: int | None = None) -> Any:
        """-> list[FundingRecord] (the venue returns at most 500 per call: page with the last time)."""
        body: dict[str, Any] = {"type": "fundingHistory", "coin": coin, "startTime": start_ms}
        if end_ms is not None:
            body["endTime"] = end_ms
        return self._do(body, parse_funding_history)

    def predicted_fundings(self) -> Any:
        """-> list[PredictedFunding] (Hyperliquid's and, on mainnet, Binance's and Bybit's)"""
        return self._do({"type": "predictedFundings"}, parse_predicted_fundings)

    def recent_trades(self, coin: str) -> Any:
        """-> list[Trade]"""
        return self._do({"type": "recentTrades", "coin": coin}, parse_trades)


def _check(resp: httpx.Response) -> Any:
    if resp.status_code != 200:
        raise HyperliquidError(f"/info HTTP {resp.status_code}: {resp.text[:300]}")
    return orjson.loads(resp.content)


class HyperliquidInfo(_InfoRequests):
    """Blocking ``/info`` client. ``transport`` lets tests serve recorded responses."""

    def __init__(self, base_url: str = MAINNET_URL, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def _do(self, body: dict[str, Any], parse: Callable[[Any], T]) -> T:
        return parse(_check(self._client.post("/info", content=orjson.dumps(body),
                                              headers={"Content-Type": "application/json"})))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HyperliquidInfo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncHyperliquidInfo(_InfoRequests):
    """``asyncio`` ``/info`` client: every method returns an awaitable of the same typed result."""

    def __init__(self, base_url: str = MAINNET_URL, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    def _do(self, body: dict[str, Any], parse: Callable[[Any], T]) -> Any:
        async def run() -> T:
            resp = await self._client.post("/info", content=orjson.dumps(body),
                                           headers={"Content-Type": "application/json"})
            return parse(_check(resp))
        return run()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncHyperliquidInfo:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# -- WebSocket stream --------------------------------------------------------------------------------

STREAM_CHANNELS = ("l2Book", "trades", "bbo", "candle", "allMids", "activeAssetCtx")


def subscriptions(coins: Iterable[str], channels: Iterable[str], candle_interval: str = "1m") -> list[dict[str, Any]]:
    """Subscription objects for every (channel, coin); ``allMids`` once (no coin)."""
    out: list[dict[str, Any]] = []
    coins = list(coins)
    for ch in channels:
        if ch not in STREAM_CHANNELS:
            raise ValueError(f"unknown channel {ch!r}; known: {', '.join(STREAM_CHANNELS)}")
        if ch == "allMids":
            out.append({"type": "allMids"})
            continue
        for coin in coins:
            sub: dict[str, Any] = {"type": ch, "coin": coin}
            if ch == "candle":
                sub["interval"] = candle_interval
            out.append(sub)
    return out


@dataclass(frozen=True)
class WsMessage:
    channel: str
    data: Any                 # the frame's ``data`` as decoded JSON; parse with parse_l2_book/parse_trades/…
    local_ns: int             # local receive time


@dataclass(frozen=True)
class Gap:
    """Data may be missing between ``start_ns`` and ``end_ns`` (local clock) for the named stream
    (``channel``/``coin`` None = the whole connection)."""

    reason: str               # "reconnect" | "silence" | "time_backwards"
    start_ns: int
    end_ns: int
    channel: str | None = None
    coin: str | None = None
    detail: str = ""


@dataclass
class StreamStats:
    messages: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    reconnects: int = 0
    gaps: int = 0
    pongs: int = 0
    acks: int = 0
    errors: list[str] = field(default_factory=list)


def _coin_of(channel: str, data: Any) -> str | None:
    if isinstance(data, dict):
        return data.get("coin") or data.get("s")
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return data[0].get("coin")
    return None


class HyperliquidStream:
    """Subscribe and iterate: ``async for item in HyperliquidStream(url, subs): ...``.

    Items are :class:`WsMessage` (data channels and ``error``) and :class:`Gap`. Iteration ends
    only on :meth:`close` (or after ``max_retries`` consecutive failed connects, which raises)."""

    def __init__(self, base_url: str, subs: Sequence[dict[str, Any]], *, ping_interval: float = 50.0,
                 silence_timeout: float = 70.0, backoff_initial: float = 0.5, backoff_max: float = 30.0,
                 jitter: float = 0.2, max_retries: int | None = None, open_timeout: float = 10.0) -> None:
        if silence_timeout <= ping_interval:
            raise ValueError("silence_timeout must exceed ping_interval (pongs keep a quiet stream alive)")
        self.url = ws_url(base_url)
        self.subs = [dict(s) for s in subs]
        self.ping_interval = ping_interval
        self.silence_timeout = silence_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.jitter = jitter
        self.max_retries = max_retries
        self.open_timeout = open_timeout
        self.stats = StreamStats()
        self._closed = False
        self._ws: Any = None
        self._last_time: dict[tuple[str, str], int] = {}

    def backoff(self, attempt: int) -> float:
        """Delay before connect attempt ``attempt`` (1-based): initial·2^(attempt−1), capped, ± jitter."""
        base = min(self.backoff_max, self.backoff_initial * 2 ** max(0, attempt - 1))
        return base * (1.0 + self.jitter * (2 * random.random() - 1))

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()

    async def _pinger(self, ws: Any) -> None:
        try:
            while True:
                await asyncio.sleep(self.ping_interval)
                await ws.send('{"method":"ping"}')
        except (websockets.ConnectionClosed, asyncio.CancelledError):
            pass

    def _check_time(self, channel: str, data: Any, now: int) -> Gap | None:
        if channel not in ("l2Book", "bbo") or not isinstance(data, dict) or "time" not in data:
            return None
        key = (channel, str(data.get("coin")))
        t = int(data["time"])
        prev = self._last_time.get(key)
        self._last_time[key] = t if prev is None else max(prev, t)
        if prev is not None and t < prev:
            return Gap("time_backwards", now, now, channel, key[1], f"time {t} < previous {prev}")
        return None

    def __aiter__(self) -> AsyncIterator[WsMessage | Gap]:
        return self._run()

    async def _run(self) -> AsyncIterator[WsMessage | Gap]:
        failures = 0
        last_ns: int | None = None
        while not self._closed:
            try:
                ws = await websockets.connect(self.url, open_timeout=self.open_timeout, ping_interval=None,
                                              max_size=None, close_timeout=2)
            except (OSError, websockets.InvalidHandshake, websockets.InvalidURI, TimeoutError) as e:
                failures += 1
                if self.max_retries is not None and failures > self.max_retries:
                    raise HyperliquidError(f"cannot connect to {self.url} after {failures} attempts: {e}") from e
                await asyncio.sleep(self.backoff(failures))
                continue
            self._ws = ws
            now = time.time_ns()
            self.stats.connects += 1
            pinger = asyncio.create_task(self._pinger(ws))
            try:
                for sub in self.subs:
                    await ws.send(orjson.dumps({"method": "subscribe", "subscription": sub}).decode())
                if self.stats.connects > 1:
                    self.stats.reconnects += 1
                    self.stats.gaps += 1
                    yield Gap("reconnect", last_ns or now, now, detail=f"reconnect #{self.stats.reconnects}")
                while not self._closed:
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=self.silence_timeout)
                    except TimeoutError:
                        now = time.time_ns()
                        self.stats.gaps += 1
                        yield Gap("silence", last_ns or now, now,
                                  detail=f"nothing received for {self.silence_timeout}s")
                        break
                    now = time.time_ns()
                    last_ns = now
                    failures = 0
                    try:
                        msg = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        continue  # e.g. the plain-text "Websocket connection established."
                    if not isinstance(msg, dict):
                        continue
                    channel = msg.get("channel")
                    data = msg.get("data")
                    if channel == "pong":
                        self.stats.pongs += 1
                        continue
                    if channel == "subscriptionResponse":
                        self.stats.acks += 1
                        continue
                    if channel == "error":
                        self.stats.errors.append(str(data))
                    if not isinstance(channel, str):
                        continue
                    gap = self._check_time(channel, data, now)
                    if gap is not None:
                        self.stats.gaps += 1
                        yield gap
                    self.stats.messages[channel] += 1
                    yield WsMessage(channel, data, now)
            except websockets.ConnectionClosed:
                pass
            finally:
                pinger.cancel()
                self._ws = None
                await ws.close()
            if not self._closed:
                failures += 1
                await asyncio.sleep(self.backoff(failures))


def coin_of(msg: WsMessage) -> str | None:
    """The coin a data frame is about (None for allMids)."""
    return _coin_of(msg.channel, msg.data)
