"""Live carry inputs (``bots.carry_live``) read through two ``HyperliquidVenue``s from one
``perpbox serve`` (its simulated traders quoting BTC and ETH): the mids, the spread and the funding
must be what ``/info`` l2Book and metaAndAssetCtxs say, derived here by hand from the raw JSON."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account

from perpbox.bots.carry import funding_apr
from perpbox.bots.carry_live import LiveCarry, live_carry_inputs
from perpbox.bots.hyperliquid_venue import HyperliquidVenue

from .conftest import Server, wait_until


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("carry") / "a", "--seed", "9").start()
    yield srv
    srv.stop()


def _raw(server: Server) -> dict[str, Any]:
    """What the venue says, straight from /info: the top of each book and each coin's context."""
    meta, ctxs = server.info({"type": "metaAndAssetCtxs", "dex": ""})  # type: ignore[misc]
    out: dict[str, Any] = {}
    for coin in ("BTC", "ETH"):
        levels = server.info({"type": "l2Book", "coin": coin})["levels"]  # type: ignore[index]
        i = [u["name"] for u in meta["universe"]].index(coin)
        out[coin] = {"bid": levels[0][0]["px"] if levels[0] else None, "ask": levels[1][0]["px"] if levels[1] else None,
                     "funding": ctxs[i]["funding"], "markPx": ctxs[i]["markPx"]}
    return out


def test_the_live_inputs_are_what_info_says(server: Server, tmp_path: Path) -> None:
    wait_until(lambda: all(v["bid"] and v["ask"] for v in _raw(server).values()), timeout=60)
    long = HyperliquidVenue(server.url, Account.create().key.hex(), name="long")
    short = HyperliquidVenue(server.url, Account.create().key.hex(), name="short")

    async def read() -> LiveCarry:
        return await live_carry_inputs(long, "BTC", short, "ETH")

    loop = asyncio.new_event_loop()
    try:
        # the simulated traders keep quoting: compare only a reading the raw state did not move across
        for _ in range(100):
            before = _raw(server)
            live = loop.run_until_complete(read())
            if _raw(server) == before:
                break
        else:
            pytest.fail("the venue's state never held still across a reading")
    finally:
        loop.run_until_complete(long.aclose())
        loop.run_until_complete(short.aclose())
        loop.close()

    btc, eth = before["BTC"], before["ETH"]
    # mids: (best bid + best ask) / 2 of each raw book
    btc_mid = (Decimal(btc["bid"]) + Decimal(btc["ask"])) / 2
    eth_mid = (Decimal(eth["bid"]) + Decimal(eth["ask"])) / 2
    assert (live.long.bid, live.long.ask, live.long.mid) == (Decimal(btc["bid"]), Decimal(btc["ask"]), btc_mid)
    assert (live.short.bid, live.short.ask, live.short.mid) == (Decimal(eth["bid"]), Decimal(eth["ask"]), eth_mid)
    # spread: short (ETH) mid over long (BTC) mid − 1, exact
    assert live.spread == Fraction(eth_mid) / Fraction(btc_mid) - 1
    assert live.spread_pct == live.spread * 100
    # funding: the ctx's "funding" string as the hourly rate (Hyperliquid settles every hour), the venue's sign
    assert (live.long.rate, live.long.interval_h) == (Decimal(btc["funding"]), 1)
    assert (live.short.rate, live.short.interval_h) == (Decimal(eth["funding"]), 1)
    assert (live.long.mark_px, live.short.mark_px) == (Decimal(btc["markPx"]), Decimal(eth["markPx"]))
    # × 24 × 365 a year
    assert live.long_funding_apr == Fraction(Decimal(btc["funding"])) * 8760 == funding_apr(btc["funding"], 1)
    assert live.short_funding_apr == Fraction(Decimal(eth["funding"])) * 8760
    assert (live.long.venue, live.long.coin, live.short.venue, live.short.coin) == ("long", "BTC", "short", "ETH")
