"""Signed orders over HTTP on loopback: N concurrent clients against a running ``perpbox serve``.

Starts its own server (no agents, no feed, rate limits off, fsync on — the default durability)
unless ``--url`` is given.  Every order is signed in advance (so the figure is the server's: parse,
recover the EIP-712 signer, nonce check, group commit with fsync, match, answer).
Last line: ``signed_orders_per_s=<int> p50_ms=<float> p99_ms=<float>``.

    python bench/api_orders.py --clients 32 --orders 6000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
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


async def client(url: str, bodies: list[dict], lat: list[float]) -> None:
    """aiohttp rather than httpx: a lighter client leaves more of the shared CPU to the server."""
    async with aiohttp.ClientSession(base_url=url) as http:
        for body in bodies:
            t0 = time.perf_counter()
            async with http.post("/exchange", data=orjson.dumps(body),
                                 headers={"content-type": "application/json"}) as r:
                data = await r.json()
            lat.append(time.perf_counter() - t0)
            st = data["response"]["data"]["statuses"][0]
            assert "resting" in st, st


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
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running server with the dev faucet (default: start one)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--orders", type=int, default=6000)
    args = ap.parse_args()
    with local_server.server(args.url) as (url, fund):
        asyncio.run(main(url, args.clients, args.orders, fund))
