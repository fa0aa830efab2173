"""Signed orders over HTTP on loopback: N concurrent clients against a running ``perpbox serve``.

Starts its own server (no agents, no feed, rate limits off, fsync on — the default durability)
unless ``--url`` is given.  Every order is signed in advance (so the figure is the server's: parse,
recover the EIP-712 signer, nonce check, group commit with fsync, match, answer).
Last line: ``signed_orders_per_s=<int> p50_ms=<float> p99_ms=<float>``.

    python bench/api_orders.py --clients 32 --orders 6000
"""

from __future__ import annotations

import asyncio
import statistics
import time

import httptools
import orjson
from eth_account import Account

import local_server
from perpbox.api.signing import sign_l1_action


def signed_orders(key: str, n: int, base_nonce: int) -> list[dict]:
    out = []
    for i in range(n):
        px = str(50_000 + (i * 7) % 20_000)
        action = {"type": "order", "orders": [{"a": 0, "b": True, "p": px, "s": "0.001", "r": False,
                                               "t": {"limit": {"tif": "Gtc"}}}], "grouping": "na"}
        nonce = base_nonce + i
        sig = sign_l1_action(key, action, None, nonce, None, False)
        out.append({"action": action, "nonce": nonce, "signature": sig,
                    "vaultAddress": None, "expiresAfter": None})
    return out


class Connection:
    """One keep-alive HTTP/1.1 connection sending pre-encoded POSTs, responses parsed by httptools.

    The clients share the machine's two cores with the server; a general-purpose client (aiohttp
    costs ~230 µs of CPU per request here, httpx more) would take a large part of the CPU the figure
    is meant to measure, so the requests are rendered before the clock starts and the responses are
    parsed by the same C parser uvicorn uses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host
        self.body = bytearray()
        self.done = False
        self.parser = httptools.HttpResponseParser(self)

    @classmethod
    async def open(cls, url: str) -> Connection:
        u = httptools.parse_url(url.encode())
        reader, writer = await asyncio.open_connection(u.host.decode(), u.port or 80)
        return cls(reader, writer, f"{u.host.decode()}:{u.port or 80}")

    def render(self, path: str, body: bytes) -> bytes:
        return (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    # httptools callbacks
    def on_body(self, chunk: bytes) -> None:
        self.body += chunk

    def on_message_complete(self) -> None:
        self.done = True

    async def post(self, request: bytes) -> tuple[int, bytes]:
        self.body.clear()
        self.done = False
        self.writer.write(request)
        while not self.done:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("server closed the connection")
            self.parser.feed_data(data)
        return self.parser.get_status_code(), bytes(self.body)

    def close(self) -> None:
        self.writer.close()


async def client(url: str, bodies: list[dict], lat: list[float]) -> None:
    conn = await Connection.open(url)
    requests = [conn.render("/exchange", orjson.dumps(b)) for b in bodies]
    try:
        for req in requests:
            t0 = time.perf_counter()
            status, payload = await conn.post(req)
            lat.append(time.perf_counter() - t0)
            assert status == 200, payload
            st = orjson.loads(payload)["response"]["data"]["statuses"][0]
            assert "resting" in st, st
    finally:
        conn.close()


async def main(url: str, clients: int, orders: int, fund: callable) -> None:
    wallets = [Account.create() for _ in range(clients)]
    for w in wallets:
        fund(w.address)
    per = orders // clients
    base = int(time.time() * 1000)
    batches = [signed_orders(w.key.hex(), per, base) for w in wallets]
    await asyncio.gather(*(client(url, b[:5], []) for b in batches))  # warm-up
    batches = [b[5:] for b in batches]
    lat: list[float] = []
    t0 = time.perf_counter()
    await asyncio.gather(*(client(url, b, lat) for b in batches))
    dt = time.perf_counter() - t0
    lat.sort()
    print(f"clients={clients} orders={len(lat)} seconds={dt:.2f}")
    print(f"signed_orders_per_s={int(len(lat) / dt)} p50_ms={statistics.median(lat) * 1000:.2f} "
          f"p99_ms={lat[int(len(lat) * 0.99)] * 1000:.2f}")


if __name__ == "__main__":
    ap = local_server.argument_parser(__doc__)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--orders", type=int, default=6000)
    args = ap.parse_args()
    with local_server.server(args.url) as (url, fund):
        asyncio.run(main(url, args.clients, args.orders, fund))
