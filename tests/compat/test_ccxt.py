"""ccxt's hyperliquid class (REST and ccxt.pro WebSocket) pointed at a perpbox server."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import ccxt.pro
import pytest
from eth_account import Account

Server = Any


def _urls(server: Server) -> dict[str, Any]:
    return {"public": server.url, "private": server.url, "ws": {"public": server.url.replace("http", "ws") + "/ws"}}


def _funded_client(server: Server, usd: str) -> ccxt.hyperliquid:
    """ccxt's hyperliquid class for a new wallet funded with ``usd``, pointed at the server."""
    w = Account.create()
    server.fund(w.address, usd)
    ex = ccxt.hyperliquid({"walletAddress": w.address, "privateKey": w.key.hex()})
    ex.urls["api"] = _urls(server)
    ex.load_markets()
    return ex


@pytest.fixture
def client(server: Server) -> ccxt.hyperliquid:
    return _funded_client(server, "200000")


@pytest.fixture
def liquidity(server: Server) -> ccxt.hyperliquid:
    ex = _funded_client(server, "1000000")
    for side, px in (("buy", 29), ("buy", 28), ("sell", 31), ("sell", 32)):
        ex.create_order("HYPE/USDC:USDC", "limit", side, 100, px)
    return ex


def test_markets_tickers_books_and_funding(client: ccxt.hyperliquid) -> None:
    m = client.market("BTC/USDC:USDC")
    assert m["id"] == "0" and m["precision"]["amount"] == 0.00001 and m["swap"]
    assert "XYZ-SILVER/USDC:USDC" in client.markets
    book = client.fetch_order_book("BTC/USDC:USDC")
    assert book["symbol"] == "BTC/USDC:USDC"
    ticker = client.fetch_ticker("ETH/USDC:USDC")
    assert ticker["symbol"] == "ETH/USDC:USDC" and ticker["info"]["markPx"]
    rates = client.fetch_funding_rates(["BTC/USDC:USDC"])
    assert rates["BTC/USDC:USDC"]["fundingRate"] == pytest.approx(0.0000125)
    assert isinstance(client.fetch_funding_rate_history("BTC/USDC:USDC", since=0), list)
    assert isinstance(client.fetch_ohlcv("BTC/USDC:USDC", "1m"), list)


def test_orders_positions_and_trades(client: ccxt.hyperliquid, liquidity: ccxt.hyperliquid) -> None:
    sym = "HYPE/USDC:USDC"
    bal = client.fetch_balance()
    assert bal["USDC"]["total"] == pytest.approx(200_000)
    o = client.create_order(sym, "limit", "buy", 10, 25)
    assert o["id"] and client.fetch_open_orders(sym)[0]["id"] == o["id"]
    edited = client.edit_order(o["id"], sym, "limit", "buy", 12, 26)
    assert [x["price"] for x in client.fetch_open_orders(sym)] == [26] and edited["id"]
    client.cancel_order(edited["id"], sym)
    assert client.fetch_open_orders(sym) == []
    with pytest.raises(ccxt.InvalidOrder):
        client.create_order(sym, "limit", "buy", 10, 31.5, params={"postOnly": True})
    client.set_leverage(5, sym)
    client.set_margin_mode("isolated", sym, params={"leverage": 5})
    client.create_order(sym, "market", "buy", 50, 31)
    [pos] = client.fetch_positions([sym])
    assert pos["contracts"] == 50 and pos["side"] == "long" and pos["marginMode"] == "isolated"
    client.create_order(sym, "market", "sell", 50, 30, params={"reduceOnly": True})
    assert client.fetch_positions([sym]) == []
    trades = client.fetch_my_trades(sym)
    assert [t["side"] for t in trades][-2:] == ["buy", "sell"]


def test_ccxt_pro_watch_order_book_and_trades(server: Server, liquidity: ccxt.hyperliquid) -> None:
    async def run() -> tuple[Any, Any]:
        w = Account.create()
        server.fund(w.address)
        pro = ccxt.pro.hyperliquid({"walletAddress": w.address, "privateKey": w.key.hex()})
        pro.urls["api"] = _urls(server)
        try:
            await pro.load_markets()
            book = await pro.watch_order_book("HYPE/USDC:USDC")

            async def trade_later() -> None:
                await asyncio.sleep(1.0)
                await pro.create_order("HYPE/USDC:USDC", "market", "buy", 5, 31)

            task = asyncio.create_task(trade_later())
            trades = await asyncio.wait_for(pro.watch_trades("HYPE/USDC:USDC"), 20)
            await task
            return book, trades
        finally:
            await pro.close()

    book, trades = asyncio.run(run())
    assert book["bids"][0][0] == 29 and book["asks"][0][0] == 31
    assert trades[0]["symbol"] == "HYPE/USDC:USDC" and trades[0]["price"] == 31
