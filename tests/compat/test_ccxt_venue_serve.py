"""The bots' ccxt adapter end to end: ccxt's hyperliquid class, through ``CcxtVenue``, against a
``perpbox serve`` with its simulated market makers (so the book has liquidity) — opened from an
accounts file (``ccxt:hyperliquid@URL``, an ``env:`` key).  Markets, a book, a post-only maker resting,
read back by both ids and cancelled with its final state read, a crossing post-only refused, an IOC
that fills, a reduce-only close, fills with ids, sides and fees, the account, funding."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
from eth_account import Account

from perpbox.bots.accounts import open_venue, parse_accounts
from perpbox.bots.ccxt_venue import CcxtVenue
from perpbox.bots.venue import CANCELED, FILLED, OPEN, REJECTED, OrderRequest

from .conftest import Server, wait_until

D = Decimal
T = TypeVar("T")


@pytest.fixture(scope="module")
def mm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("ccxt-venue") / "a", "--seed", "9").start()
    yield srv
    srv.stop()


class Loop:
    """One event loop for the module's async venue (ccxt's session lives on it), driven from sync code
    so ``wait_until`` can poll."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)


def _on_tick(px: Decimal, tick: Decimal, up: bool) -> Decimal:
    return (px / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR) * tick


def _open(server: Server, tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch, usd: str) -> CcxtVenue:
    w = Account.create()
    server.fund(w.address, usd)
    monkeypatch.setenv(f"KEY_{name.upper()}", w.key.hex())
    specs = parse_accounts({name: {"venue": f"ccxt:hyperliquid@{server.url}",
                                   "credentials": {"walletAddress": w.address,
                                                   "privateKey": f"env:KEY_{name.upper()}"}}}, tmp_path)
    venue = open_venue(specs[name])
    assert isinstance(venue, CcxtVenue) and venue.exchange.urls["api"]["public"] == server.url
    assert w.key.hex() not in repr(venue)
    return venue


def test_ccxt_hyperliquid_through_the_venue_interface(mm_server: Server, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    run = Loop()
    maker = _open(mm_server, tmp_path, "maker", monkeypatch, "100000")
    taker = _open(mm_server, tmp_path, "taker", monkeypatch, "100000")
    try:
        markets = run(maker.markets())
        eth = markets["ETH"]
        assert {"BTC", "ETH", "SOL", "HYPE"} <= set(markets)
        assert (eth.coin, eth.lot, eth.sz_decimals, eth.min_notional, eth.funding_interval_h) == ("ETH", D("0.0001"),
                                                                                               4, 10, 1)
        assert eth.tick > 0 and eth.max_leverage >= 1
        book = wait_until(lambda: (b := run(maker.book("ETH"))).bids and b.asks and b)
        assert book.coin == "ETH" and book.ts_ms > 0 and book.bids[0][0] < book.asks[0][0]
        bid, ask = book.bids[0][0], book.asks[0][0]

        # a post-only bid well under the touch rests; read back by its id and by our client id
        cid = "0x" + "c1" * 16
        low = _on_tick(bid * D("0.95"), eth.tick, up=False)
        rest = run(maker.place(OrderRequest("ETH", True, D("0.01"), low, tif="alo", client_id=cid)))
        assert (rest.status, rest.client_id) == (OPEN, cid) and rest.order_id
        assert (run(maker.order_status("ETH", rest.order_id)).status, run(maker.order_status("ETH", cid)).order_id) \
            == (OPEN, rest.order_id)
        # modify (ccxt's native edit on Hyperliquid): still resting, at the new price
        moved = run(maker.modify("ETH", rest.order_id, OrderRequest("ETH", True, D("0.01"), low - eth.tick,
                                                                     tif="alo")))
        assert moved.status == OPEN and moved.order_id
        gone = run(maker.cancel("ETH", moved.order_id))  # the final state is read after the cancel
        assert (gone.status, gone.filled, gone.final) == (CANCELED, 0, True)

        # a post-only that would cross is refused, as a state
        cross = run(maker.place(OrderRequest("ETH", True, D("0.01"), _on_tick(ask * D("1.01"), eth.tick, up=True),
                                             tif="alo")))
        assert cross.status == REJECTED and cross.error

        # an IOC through the touch fills
        book = run(taker.book("ETH"))
        through = _on_tick(book.asks[0][0] * D("1.01"), eth.tick, up=True)
        hedge = run(taker.place(OrderRequest("ETH", True, D("0.01"), through, tif="ioc", client_id="0x" + "c2" * 16)))
        assert (hedge.status, hedge.filled) == (FILLED, D("0.01")) and hedge.order_id
        assert hedge.avg_px is not None and hedge.avg_px <= through
        nothing = run(taker.place(OrderRequest("ETH", True, D("0.01"), low, tif="ioc")))  # nothing to take
        assert nothing.status == REJECTED and nothing.error

        fills = wait_until(lambda: [f for f in run(taker.fills(0)) if f.order_id == hedge.order_id])
        assert sum(f.size for f in fills) == D("0.01") and all(f.coin == "ETH" and not f.maker for f in fills)
        assert all(f.fee.is_finite() and f.fee >= 0 and f.px <= through and f.fill_id for f in fills)
        acct = wait_until(lambda: (a := run(taker.account())).positions.get("ETH") and a)
        pos = acct.positions["ETH"]
        assert pos.size == D("0.01") and pos.entry_px > 0 and acct.equity > 0 and acct.notional > 0

        # a reduce-only IOC closes it
        book = run(taker.book("ETH"))
        below = _on_tick(book.bids[0][0] * D("0.99"), eth.tick, up=False)
        close = run(taker.place(OrderRequest("ETH", False, D("0.01"), below, tif="ioc", reduce_only=True)))
        assert (close.status, close.filled) == (FILLED, D("0.01"))
        wait_until(lambda: "ETH" not in run(taker.account()).positions)
        sides = [f.size > 0 for f in run(taker.fills(0))]
        assert sides[-1] is False and True in sides

        # a maker fill between two of our accounts: one trade, a maker side and a taker side.  Our ask goes
        # inside the spread; a simulated maker may requote in front of it, so a few tries
        for _ in range(5):
            book = run(maker.book("ETH"))
            ask_px = _on_tick(book.asks[0][0] - eth.tick, eth.tick, up=True)
            if ask_px <= book.bids[0][0]:
                continue
            maker_ask = run(maker.place(OrderRequest("ETH", False, D("0.01"), ask_px, tif="alo")))
            if maker_ask.status != OPEN or maker_ask.order_id is None:
                continue
            run(taker.place(OrderRequest("ETH", True, D("0.01"), ask_px, tif="ioc")))
            final = run(maker.cancel("ETH", maker_ask.order_id))  # filled, or cancelled for another try
            if final.status == FILLED:
                break
        else:
            pytest.fail("our ask was never the one taken")
        assert final.filled == D("0.01")
        (mf,) = wait_until(lambda: [f for f in run(maker.fills(0)) if f.order_id == maker_ask.order_id])
        (tf,) = [f for f in run(taker.fills(0)) if f.fill_id == mf.fill_id]
        assert (mf.size, mf.px, mf.maker, tf.size, tf.maker) == (D("-0.01"), ask_px, True, D("0.01"), False)

        fr = run(maker.funding("ETH"))
        assert (fr.coin, fr.interval_h) == ("ETH", 1) and fr.rate.is_finite() and fr.mark_px and fr.ts_ms > 0
        assert fr.hourly == fr.rate
        payments = run(taker.funding_payments(0))
        assert all(p.coin for p in payments)
    finally:
        run(maker.aclose())
        run(taker.aclose())
        run.loop.close()
