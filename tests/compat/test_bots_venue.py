"""The bots' ``Venue`` interface over Hyperliquid's API, against a ``perpbox serve`` the tests start:
markets with their tick, lot and minimum; a post-only maker resting, read back and cancelled with its
final state; an IOC hedge filling against it; fills with ids, sides and fees; the account's
position; refusals as states, never exceptions."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from eth_account import Account
from hyperliquid.exchange import Exchange

from perpbox.bots.hyperliquid_venue import HyperliquidVenue, tick_at, wire
from perpbox.bots.venue import CANCELED, FILLED, OPEN, REJECTED, OrderRequest

from .conftest import Server

D = Decimal


def test_tick_follows_the_five_significant_figures_rule() -> None:
    # the reference's examples: 1234.5 ok (tick 0.1), 0.001234 ok (tick 1e-6) at szDecimals 0,
    # integers always allowed (123456: tick 1)
    assert tick_at(D("1234.5"), 0) == D("0.1") and tick_at(D("0.001234"), 0) == D("0.000001")
    assert tick_at(D("123456"), 0) == 1 and tick_at(D("100000"), 5) == 1
    assert tick_at(D("3500"), 4) == D("0.1") and tick_at(D("32.1"), 2) == D("0.001")
    assert tick_at(D("0.5"), 2) == D("0.0001")  # capped by 6 - szDecimals decimals
    assert wire(D("32.100")) == "32.1" and wire(D("100000")) == "100000" and wire(D("0.00010")) == "0.0001"


def test_a_maker_rests_is_read_back_and_cancelled_then_a_hedge_fills(server: Server) -> None:
    maker_w, taker_w = Account.create(), Account.create()
    for w in (maker_w, taker_w):
        server.fund(w.address, "100000")

    async def run() -> None:
        maker = HyperliquidVenue(server.url, maker_w.key.hex())
        taker = HyperliquidVenue(server.url, taker_w.key.hex())
        try:
            markets = await maker.markets()
            eth = markets["ETH"]
            assert (eth.lot, eth.min_notional, eth.sz_decimals, eth.funding_interval_h) == (D("0.0001"), 10, 4, 1)
            book = await maker.book("ETH")
            assert book.coin == "ETH" and book.ts_ms > 0
            # post-only well below the book: rests
            alo = OrderRequest("ETH", True, D("0.5"), D("3000"), tif="alo", client_id="0x" + "ab" * 16)
            st = await maker.place(alo)
            assert st.status == OPEN and st.order_id and st.client_id == alo.client_id
            read = await maker.order_status("ETH", st.order_id)
            assert (read.status, read.filled) == (OPEN, 0)
            assert (await maker.order_status("ETH", alo.client_id)).order_id == st.order_id  # by client id too
            gone = await maker.cancel("ETH", st.order_id)
            assert gone.status == CANCELED and gone.final and gone.filled == 0
            # a maker ask, then an IOC hedge buys 0.3 of it
            ask = await maker.place(OrderRequest("ETH", False, D("0.5"), D("4000"), tif="alo"))
            assert ask.status == OPEN
            hedge = await taker.place(OrderRequest("ETH", True, D("0.3"), D("4000"), tif="ioc"))
            assert (hedge.status, hedge.filled, hedge.avg_px) == (FILLED, D("0.3"), D("4000"))
            partial = await maker.order_status("ETH", ask.order_id)
            assert (partial.status, partial.filled) == (OPEN, D("0.3"))
            (mf,) = await maker.fills(0)
            (tf,) = await taker.fills(0)
            assert (mf.size, mf.px, mf.maker, mf.order_id) == (D("-0.3"), D("4000"), True, ask.order_id)
            assert (tf.size, tf.maker) == (D("0.3"), False) and tf.fill_id == mf.fill_id  # one trade, one id
            acct = await taker.account()
            assert acct.positions["ETH"].size == D("0.3") and acct.positions["ETH"].entry_px == D("4000")
            # refusals are states: an IOC with nothing to take, a price off the tick, an unknown order
            none = await taker.place(OrderRequest("ETH", True, D("0.1"), D("3000"), tif="ioc"))
            assert none.status == REJECTED and none.error
            off = await taker.place(OrderRequest("ETH", True, D("0.1"), D("3000.05"), tif="gtc"))
            assert off.status == REJECTED and "tick" in off.error
            assert (await taker.order_status("ETH", "999999999")).status == "unknown"
        finally:
            await maker.aclose()
            await taker.aclose()

    asyncio.run(run())


def test_an_api_wallet_trades_for_its_account(server: Server) -> None:
    owner = Account.create()
    server.fund(owner.address, "50000")

    async def run() -> None:
        ex = Exchange(owner, server.url)
        res, agent_key = ex.approve_agent("bot")
        assert res["status"] == "ok"
        venue = HyperliquidVenue(server.url, agent_key, account=owner.address)
        try:
            st = await venue.place(OrderRequest("BTC", True, D("0.001"), D("50000"), tif="alo"))
            assert st.status == OPEN
            assert (await venue.order_status("BTC", st.order_id or "")).status == OPEN  # on the owner's book
            assert (await venue.account()).equity == D("50000")
        finally:
            await venue.aclose()

    asyncio.run(run())
