"""WebSocket fan-out: N subscribers to ``l2Book`` and ``trades`` of BTC on a running ``perpbox serve``.

Starts its own server (no agents, no feed, rate limits off) unless ``--url`` is given, opens N
WebSocket connections that each subscribe to ``{"type": "l2Book", "coin": "BTC"}`` and
``{"type": "trades", "coin": "BTC"}``, then a driver trades BTC over HTTP (a maker rests asks, a
taker lifts them with IOC orders, ``--rate`` trades per second) for ``--seconds``.  Every message
the subscribers receive is counted; the delivery latency of a trade is the receive time minus the
trade's ``time`` (the sequencer's clock, ms).  Connections the server drops as slow consumers are
counted too.  Last line: ``subscribers=<int> delivered_msgs_per_s=<int> p50_ms=<float> p99_ms=<float>``.

    python bench/ws_fanout.py --subscribers 1000 --seconds 10 --rate 20
"""

from __future__ import annotations

import asyncio
import time

import httpx
import orjson
import websockets
from eth_account import Account

import local_server
from perpbox.api.signing import sign_l1_action

SUBS = [{"type": "l2Book", "coin": "BTC"}, {"type": "trades", "coin": "BTC"}]


class Stats:
    def __init__(self) -> None:
        self.messages = 0
        self.books = 0
        self.trade_lat_ms: list[float] = []
        self.dropped = 0
        self.measuring = False


async def subscriber(url: str, stats: Stats, ready: asyncio.Event, counter: list[int], n: int,
                     stop: asyncio.Event) -> None:
    try:
        async with websockets.connect(url, max_queue=None, ping_interval=None) as ws:
            for sub in SUBS:
                await ws.send(orjson.dumps({"method": "subscribe", "subscription": sub}).decode())
            acks = 0
            while acks < len(SUBS):
                msg = orjson.loads(await ws.recv())
                acks += msg.get("channel") == "subscriptionResponse"
            counter[0] += 1
            if counter[0] == n:
                ready.set()
            while not stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                if not stats.measuring:
                    continue
                now_ms = time.time() * 1000
                msg = orjson.loads(raw)
                stats.messages += 1
                if msg["channel"] == "trades":
                    stats.trade_lat_ms.extend(now_ms - t["time"] for t in msg["data"])
                elif msg["channel"] == "l2Book":
                    stats.books += 1
    except websockets.ConnectionClosed:
        stats.dropped += 1


def signed(key: str, action: dict, nonce: int) -> dict:
    return {"action": action, "nonce": nonce, "signature": sign_l1_action(key, action, None, nonce, None, False),
            "vaultAddress": None, "expiresAfter": None}


def order(px: int, is_buy: bool, tif: str) -> dict:
    return {"type": "order", "grouping": "na", "orders": [
        {"a": 0, "b": is_buy, "p": str(px), "s": "0.001", "r": False, "t": {"limit": {"tif": tif}}}]}


async def driver(url: str, rate: float, seconds: float, fund: callable) -> int:
    maker, taker = Account.create(), Account.create()
    fund(maker.address)
    fund(taker.address)
    nonce = int(time.time() * 1000)
    n = int(rate * seconds)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        asks = [signed(maker.key.hex(), order(60_000 + i % 50, False, "Gtc"), nonce + i) for i in range(n)]
        lifts = [signed(taker.key.hex(), order(61_000, True, "Ioc"), nonce + i) for i in range(n)]
        for body in asks:  # the maker's ladder first: every lift then prints exactly one trade
            (await http.post("/exchange", content=orjson.dumps(body))).raise_for_status()
        t0 = time.perf_counter()
        for i, body in enumerate(lifts):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            (await http.post("/exchange", content=orjson.dumps(body))).raise_for_status()
    return n


async def main(http_url: str, subscribers: int, seconds: float, rate: float, fund: callable) -> None:
    ws_url = http_url.replace("http", "ws", 1) + "/ws"
    stats, ready, stop = Stats(), asyncio.Event(), asyncio.Event()
    counter = [0]
    tasks = []
    for i in range(subscribers):  # connect in waves so the accept backlog never overflows
        tasks.append(asyncio.create_task(subscriber(ws_url, stats, ready, counter, subscribers, stop)))
        if i % 100 == 99:
            await asyncio.sleep(0.2)
    await asyncio.wait_for(ready.wait(), 120)
    print(f"subscribed: {counter[0]} connections x {len(SUBS)} channels")
    stats.measuring = True
    t0 = time.perf_counter()
    trades = await driver(http_url, rate, seconds, fund)
    await asyncio.sleep(1.5)  # let the last pushes arrive
    dt = time.perf_counter() - t0
    stats.measuring = False
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(stats.trade_lat_ms)
    expected = trades * subscribers
    print(f"trades={trades} trade_msgs_expected={expected} trade_msgs_received={len(lat)} "
          f"book_msgs={stats.books} dropped_connections={stats.dropped} seconds={dt:.2f}")
    p50 = lat[len(lat) // 2] if lat else float("nan")
    p99 = lat[int(len(lat) * 0.99)] if lat else float("nan")
    print(f"subscribers={subscribers} delivered_msgs_per_s={int(stats.messages / dt)} "
          f"p50_ms={p50:.1f} p99_ms={p99:.1f}")


if __name__ == "__main__":
    ap = local_server.argument_parser(__doc__)
    ap.add_argument("--subscribers", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=20.0, help="trades per second")
    args = ap.parse_args()
    with local_server.server(args.url) as (url, fund):
        asyncio.run(main(url, args.subscribers, args.seconds, args.rate, fund))
