"""The native Hyperliquid client on real recorded payloads, offline.

/info: the official SDK's VCR cassettes (real 2023 mainnet responses) served through an httpx
MockTransport keyed on the request body. WebSocket: a local ``websockets`` server replaying frames
from the real hftbacktest BTC capture, with a forced disconnect, a book time going backwards and a
silent connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import json
from collections import Counter
from typing import Any

import httpx
import pytest
import yaml
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from perpbox.analytics.funding import normalise
from perpbox.venues.hyperliquid import (
    AsyncHyperliquidInfo,
    Gap,
    HyperliquidError,
    HyperliquidInfo,
    HyperliquidStream,
    WsMessage,
    parse_l2_book,
    parse_trades,
    subscriptions,
    ws_url,
)
from shared_data import SHARED_DATA

DATA = SHARED_DATA
CASSETTES = DATA / "hyperliquid-sdk-cassettes"
CAPTURE = DATA / "hftbacktest" / "hyperliquid_btcusd_20250126.gz"

pytestmark = pytest.mark.skipif(not CASSETTES.exists(), reason="../shared/data not present")


def _key(body: bytes | str) -> str:
    return json.dumps(json.loads(body), sort_keys=True)


def _recorded() -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(CASSETTES.glob("*.yaml")):
        for it in yaml.safe_load(path.read_text())["interactions"]:
            out[_key(it["request"]["body"])] = it["response"]["body"]["string"]
    return out


# Shapes from the reference (docs samples): the cassettes predate these requests.
CONSTRUCTED = {
    _key('{"type":"metaAndAssetCtxs"}'): json.dumps([
        {"universe": [{"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
                      {"name": "LOOM", "szDecimals": 1, "maxLeverage": 3, "isDelisted": True, "onlyIsolated": True}],
         "marginTables": [], "collateralToken": 0},
        [{"dayNtlVlm": "1169046.29406", "funding": "0.0000125", "impactPxs": ["14.3047", "14.3444"],
          "markPx": "14.3161", "midPx": "14.314", "openInterest": "688.11", "oraclePx": "14.32",
          "premium": "0.00031774", "prevDayPx": "15.322", "dayBaseVlm": "81234.1"},
         {"dayNtlVlm": "0.0", "funding": "0.0", "impactPxs": None, "markPx": "0.05", "midPx": None,
          "openInterest": "0.0", "oraclePx": "0.05", "premium": None, "prevDayPx": "0.05"}]]),
    _key('{"type":"predictedFundings"}'): json.dumps([
        ["AVAX", [["BinPerp", {"fundingRate": "0.0001", "nextFundingTime": 1733961600000, "fundingIntervalHours": 8}],
                  ["HlPerp", {"fundingRate": "0.0000125", "nextFundingTime": 1733958000000, "fundingIntervalHours": 1}],
                  ["BybitPerp", None]]]]),
}


def _transport() -> httpx.MockTransport:
    table = {**_recorded(), **CONSTRUCTED}

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/info" and request.method == "POST"
        body = table.get(_key(request.content))
        if body is None:
            return httpx.Response(422, text="Failed to deserialize the JSON body into the target type")
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    return httpx.MockTransport(handler)


@pytest.fixture
def info() -> HyperliquidInfo:
    return HyperliquidInfo("https://api.hyperliquid.xyz", transport=_transport())


def test_urls() -> None:
    assert ws_url("https://api.hyperliquid.xyz") == "wss://api.hyperliquid.xyz/ws"
    assert ws_url("http://127.0.0.1:8080/") == "ws://127.0.0.1:8080/ws"


def test_meta_mids_and_book_from_real_responses(info: HyperliquidInfo) -> None:
    meta = info.meta()
    assert len(meta) == 28 and (meta[0].name, meta[0].sz_decimals, meta[0].max_leverage) == ("BTC", 5, 50)
    mids = info.all_mids()
    assert mids["BTC"] == 30135.0 and mids["ETH"] == 1903.95 and mids["kPEPE"] == 0.001565
    book = info.l2_book("DYDX")
    assert book.coin == "DYDX" and book.time == 1689630203930
    assert len(book.bids) == 20 and len(book.asks) == 20
    assert (book.best_bid, book.best_ask, book.bids[0].sz, book.asks[0].n) == (2.111, 2.1124, 134.4, 2)
    assert book.spread_bps == pytest.approx(6.629729601741943)  # 0.0014 / 2.1117 × 1e4
    assert book.depth_usd("bid") == pytest.approx(6740.81729)
    assert book.depth_usd("ask") == pytest.approx(24676.70067)


def test_candles_from_real_response(info: HyperliquidInfo) -> None:
    candles = info.candles("kPEPE", "1h", 1684702007000, 1684784807000)
    assert len(candles) == 24
    c = candles[0]
    assert (c.coin, c.interval, c.open_time, c.close_time) == ("kPEPE", "1h", 1684699200000, 1684702799999)
    assert (c.open, c.high, c.low, c.close, c.volume, c.trades) == (0.001601, 0.001616, 0.001601, 0.001604,
                                                                    520665683.0, 709)


def test_funding_history_cadence_from_real_response(info: HyperliquidInfo) -> None:
    recs = info.funding_history("BTC", 1681923833000)
    assert len(recs) == 1038
    assert (recs[0].time, recs[0].rate, recs[0].premium) == (1683849600048, -0.00061334, -0.00091334)
    assert (recs[-1].time, recs[-1].rate) == (1689627600065, 0.0000125)
    spacing = Counter(round((b.time - a.time) / 3_600_000) for a, b in itertools.pairwise(recs))
    assert spacing == {1: 955, 8: 81, 2: 1}   # 8 h era, then hourly (one record missing)
    # Normalise each record by the interval it covered: the 8 h era paid 8× more per record.
    eight = [normalise("hyperliquid", b.rate, 8) for a, b in itertools.pairwise(recs)
             if round((b.time - a.time) / 3_600_000) == 8]
    assert len(eight) == 81
    assert eight[-1].per_hour == pytest.approx(eight[-1].rate / 8)
    assert len(info.funding_history("BTC", 1681923833000, 1684811870000)) == 34


def test_meta_and_asset_ctxs_and_predicted_fundings(info: HyperliquidInfo) -> None:
    btc, loom = info.meta_and_asset_ctxs()
    assert (btc.coin, btc.asset, btc.meta.max_leverage) == ("BTC", 0, 40)
    assert btc.ctx.funding == 0.0000125 and btc.ctx.open_interest == 688.11 and btc.ctx.oracle_px == 14.32
    assert (btc.ctx.impact_bid, btc.ctx.impact_ask, btc.ctx.day_base_vlm) == (14.3047, 14.3444, 81234.1)
    assert loom.meta.is_delisted and loom.ctx.mid_px is None and loom.ctx.impact_bid is None
    preds = info.predicted_fundings()
    assert [(p.venue, p.rate, p.interval_hours) for p in preds] == [("BinPerp", 0.0001, 8.0),
                                                                    ("HlPerp", 0.0000125, 1.0)]


def test_unknown_request_raises(info: HyperliquidInfo) -> None:
    with pytest.raises(HyperliquidError, match="422"):
        info.recent_trades("NOPE")


def test_async_client_same_results() -> None:
    async def run() -> tuple[Any, Any]:
        async with AsyncHyperliquidInfo("https://api.hyperliquid.xyz", transport=_transport()) as a:
            return await asyncio.gather(a.l2_book("DYDX"), a.all_mids())
    book, mids = asyncio.run(run())
    assert book.best_ask == 2.1124 and mids["BTC"] == 30135.0


# -- WebSocket -----------------------------------------------------------------------------------------

def _capture_frames() -> list[str]:
    with gzip.open(CAPTURE, "rt") as f:
        return [line.split(" ", 1)[1].strip() for line in f if line.strip()]


class ReplayServer:
    """Connection 1: acks, 10 frames, abrupt disconnect. Connection 2: waits for the client's ping,
    10 more frames, then an old book (time backwards), then silence. Connection 3: acks only."""

    def __init__(self, frames: list[str]) -> None:
        self.frames = frames
        self.subs: list[list[dict[str, Any]]] = []
        self.pings: Counter[int] = Counter()

    async def _subscribe(self, ws: Any, conn: int, n: int) -> None:
        subs: list[dict[str, Any]] = []
        self.subs.append(subs)
        while len(subs) < n:
            msg = json.loads(await ws.recv())
            if msg.get("method") == "ping":
                self.pings[conn] += 1
                continue
            subs.append(msg["subscription"])
        for sub in subs:
            await ws.send(json.dumps({"channel": "subscriptionResponse",
                                      "data": {"method": "subscribe", "subscription": sub}}))

    async def handler(self, ws: Any) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._handle(ws)

    async def _handle(self, ws: Any) -> None:
        conn = len(self.subs) + 1
        await self._subscribe(ws, conn, 2)
        if conn == 1:
            await ws.send("Websocket connection established.")  # plain text: ignored by clients
            for f in self.frames[:10]:
                await ws.send(f)
            ws.transport.abort()
            return
        if conn == 2:
            while self.pings[conn] == 0:
                if json.loads(await ws.recv()).get("method") == "ping":
                    self.pings[conn] += 1
            await ws.send('{"channel":"pong"}')
            for f in self.frames[10:20]:
                await ws.send(f)
            await ws.send(self.frames[0])   # a book older than the last one sent
        async for _ in ws:                  # silence (pings unanswered)
            pass


def test_stream_reconnects_resubscribes_pings_and_reports_gaps() -> None:
    frames = _capture_frames()
    assert len(frames) == 55
    replay = ReplayServer(frames)

    async def run() -> tuple[list[WsMessage | Gap], HyperliquidStream]:
        async with serve(replay.handler, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            stream = HyperliquidStream(f"http://127.0.0.1:{port}", subscriptions(["BTC"], ["l2Book", "trades"]),
                                       ping_interval=0.05, silence_timeout=1.0, backoff_initial=0.01, jitter=0.0)
            items: list[WsMessage | Gap] = []
            async for item in stream:
                items.append(item)
                if isinstance(item, Gap) and item.reason == "reconnect" and stream.stats.reconnects == 2:
                    break
            await stream.close()
            return items, stream

    items, stream = asyncio.run(asyncio.wait_for(run(), 60))
    kinds = [i.reason if isinstance(i, Gap) else i.channel for i in items]
    expected_frames = [json.loads(f)["channel"] for f in frames[:20]]
    assert kinds == [*expected_frames[:10], "reconnect", *expected_frames[10:20],
                     "time_backwards", "l2Book", "silence", "reconnect"]
    # every connection re-sent the same subscriptions
    assert replay.subs == [[{"type": "l2Book", "coin": "BTC"}, {"type": "trades", "coin": "BTC"}]] * 3
    assert replay.pings[2] >= 1
    assert (stream.stats.connects, stream.stats.reconnects, stream.stats.gaps) == (3, 2, 4)
    assert stream.stats.acks >= 4 and stream.stats.pongs == 1
    back = next(i for i in items if isinstance(i, Gap) and i.reason == "time_backwards")
    assert (back.channel, back.coin) == ("l2Book", "BTC") and "1737918843542" in back.detail
    msgs = [i for i in items if isinstance(i, WsMessage)]
    book = parse_l2_book(msgs[0].data)
    assert (book.best_bid, book.best_ask, book.time) == (105055.0, 105056.0, 1737918843542)
    trades = [t for m in msgs if m.channel == "trades" for t in parse_trades(m.data)]
    assert trades and all(t.coin == "BTC" and t.side in (1, -1) for t in trades)
    assert trades[0].px == 105056.0 and trades[0].sz == 0.00219 and trades[0].side == 1


def test_stream_gives_up_after_max_retries() -> None:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def run() -> None:
        stream = HyperliquidStream(f"http://127.0.0.1:{port}", [{"type": "allMids"}], ping_interval=1,
                                   silence_timeout=2, backoff_initial=0.001, max_retries=2)
        async for _ in stream:
            pass

    with pytest.raises(HyperliquidError, match="after 3 attempts"):
        asyncio.run(run())


def test_subscriptions_builder() -> None:
    subs = subscriptions(["BTC", "ETH"], ["l2Book", "candle", "allMids"], candle_interval="5m")
    assert subs == [{"type": "l2Book", "coin": "BTC"}, {"type": "l2Book", "coin": "ETH"},
                    {"type": "candle", "coin": "BTC", "interval": "5m"},
                    {"type": "candle", "coin": "ETH", "interval": "5m"}, {"type": "allMids"}]
    with pytest.raises(ValueError):
        subscriptions(["BTC"], ["l3Book"])
