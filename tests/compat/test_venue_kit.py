"""The venue data kit's live paths against perpbox's own server (no internet).

A maker rests a SOL book through the official SDK and a taker lifts part of the best ask, so the
server has a real book, a trade, open interest and volume; then the native client, the scanner,
the ccxt venue (ccxt's hyperliquid class pointed at the server), the ``funding``/``watch``/``scan``
commands and the recorder run against it and their numbers are checked.

SOL book (oracle 150): bids 149.9 × 10, 149.8 × 20; asks 150.1 × 10 → 6 after the 4 SOL lift, 150.2 × 5.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from typer.testing import CliRunner

from perpbox.analytics.scanner import filter_rows, scan, sort_rows
from perpbox.cli import app
from perpbox.venues import dataset
from perpbox.venues.ccxt_venues import CcxtVenue
from perpbox.venues.hyperliquid import HyperliquidInfo
from perpbox.venues.recorder import Recorder

from .conftest import wait_until

Server = Any
COIN = "SOL"


def _gtc(coin: str, is_buy: bool, sz: float, px: float) -> dict[str, Any]:
    return {"coin": coin, "is_buy": is_buy, "sz": sz, "limit_px": px, "order_type": {"limit": {"tif": "Gtc"}},
            "reduce_only": False}


def _account(server: Server) -> Exchange:
    w = Account.create()
    server.fund(w.address, "1000000")
    return Exchange(w, server.url)


@pytest.fixture(scope="module")
def sol_market(server: Server) -> Iterator[dict[str, Any]]:
    maker = _account(server)
    res = maker.bulk_orders([_gtc(COIN, True, 10, 149.9), _gtc(COIN, True, 20, 149.8),
                             _gtc(COIN, False, 10, 150.1), _gtc(COIN, False, 5, 150.2)])
    assert all("resting" in s for s in res["response"]["data"]["statuses"])
    taker = _account(server)
    filled = taker.order(COIN, True, 4, 150.1, {"limit": {"tif": "Ioc"}})["response"]["data"]["statuses"][0]
    assert filled["filled"]["totalSz"] == "4.0"
    yield {"maker": maker, "taker": taker}
    info = Info(server.url, skip_ws=True)
    for ex in (maker, taker):
        for o in info.open_orders(ex.wallet.address):
            ex.cancel(o["coin"], o["oid"])


def test_native_info_calls(server: Server, sol_market: dict[str, Any]) -> None:
    with HyperliquidInfo(server.url) as info:
        book = info.l2_book(COIN)
        assert [(x.px, x.sz) for x in book.bids] == [(149.9, 10.0), (149.8, 20.0)]
        assert [(x.px, x.sz) for x in book.asks] == [(150.1, 6.0), (150.2, 5.0)]
        assert book.mid == pytest.approx(150.0) and book.spread_bps == pytest.approx(0.2 / 150 * 1e4)
        assert info.all_mids()[COIN] == pytest.approx(150.0)
        sol = next(m for m in info.meta_and_asset_ctxs() if m.coin == COIN)
        assert (sol.asset, sol.meta.sz_decimals, sol.ctx.open_interest, sol.ctx.oracle_px) == (2, 2, 4.0, 150.0)
        trades = [t for t in info.recent_trades(COIN) if t.px == 150.1]
        assert trades and trades[0].sz == 4.0 and trades[0].side == 1
        [pred] = [p for p in info.predicted_fundings() if p.coin == COIN]
        assert (pred.venue, pred.interval_hours) == ("HlPerp", 1.0)
        assert info.perp_dexs()[:2] == ["", "xyz"]   # other tests may deploy more dexes
        hip3 = info.meta_and_asset_ctxs("xyz", 1)
        assert hip3[0].coin.startswith("xyz:") and hip3[0].asset == 110000
        now = int(time.time() * 1000)
        candles = info.candles(COIN, "1m", now - 3_600_000, now + 60_000)
        assert candles and candles[-1].coin == COIN and candles[-1].high >= 150.1


def test_scanner_numbers(server: Server, sol_market: dict[str, Any]) -> None:
    rows = scan(server.url, ["*"])
    assert {r.coin for r in rows} >= {"BTC", "ETH", COIN, "HYPE", "xyz:SILVER"}
    sol = next(r for r in rows if r.coin == COIN)
    assert sol.spread_bps == pytest.approx(13.3333333, rel=1e-6)
    assert sol.oi_usd == pytest.approx(600.0)                      # 4 SOL × oracle 150
    assert sol.volume_24h_usd == pytest.approx(600.4)              # 4 × 150.1
    assert sol.bid_depth_usd == pytest.approx(149.9 * 10 + 149.8 * 20)
    assert sol.ask_depth_usd == pytest.approx(150.1 * 6 + 150.2 * 5)
    assert sol.funding_8h == pytest.approx(sol.funding_1h * 8)
    assert sol.funding_apr == pytest.approx(sol.funding_1h * 8760)
    kept = filter_rows(rows, min_oi_usd=500, min_spread_bps=10)
    assert COIN in {r.coin for r in kept}
    assert all(r.oi_usd >= 500 and r.spread_bps >= 10 for r in kept)
    assert COIN not in {r.coin for r in filter_rows(rows, min_spread_bps=20)}
    assert sort_rows(rows, "oi")[0].oi_usd == max(r.oi_usd for r in rows)


def test_ccxt_hyperliquid_class_at_the_server(server: Server, sol_market: dict[str, Any]) -> None:
    v = CcxtVenue("hyperliquid", url=server.url)
    f = v.funding(COIN)
    assert (f.symbol, f.interval_hours, f.interval_source) == ("SOL/USDC:USDC", 1.0, "live")
    with HyperliquidInfo(server.url) as info:
        ctx = next(m for m in info.meta_and_asset_ctxs() if m.coin == COIN).ctx
    assert f.rate == pytest.approx(ctx.funding)
    ob = v.order_book(COIN)
    assert ob.bids[0] == (149.9, 10.0) and ob.asks[0] == (150.1, 6.0) and ob.mid == pytest.approx(150.0)
    assert v.taker_fee(COIN) == 0.00045
    oi = v.open_interest(COIN)
    assert oi.base == 4.0


def test_funding_and_watch_commands(server: Server, sol_market: dict[str, Any]) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["funding", "--coin", COIN, "--venues", "hyperliquid,ccxt:hyperliquid", "--url",
                              server.url, "--hold-hours", "100", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["errors"] == {}
    native, via_ccxt = out["venues"]
    assert (native["venue"], via_ccxt["venue"]) == ("hyperliquid", "ccxt:hyperliquid")
    assert native["interval_hours"] == via_ccxt["interval_hours"] == 1.0
    assert native["rate"] == pytest.approx(via_ccxt["rate"])
    assert native["apr"] == pytest.approx(native["rate"] * 8760)
    assert native["half_spread"] == pytest.approx(0.1 / 150)
    [pair] = out["pairs"]
    assert pair["carry_apr"] == pytest.approx(0.0, abs=1e-12) and pair["break_even_hours"] is None
    # taker 4.5 bp on both legs at entry and exit, plus half-spreads 6.667 bp × 2 legs × 2
    assert pair["round_trip_cost"] == pytest.approx(4 * 0.00045 + 4 * 0.1 / 150)

    res = runner.invoke(app, ["watch", "--coin", COIN, "--venues", "hyperliquid,ccxt:hyperliquid", "--url",
                              server.url, "--once", "--json", "--timeout", "30"])
    assert res.exit_code == 0, res.output
    state = json.loads(res.output)["venues"]
    for venue in ("hyperliquid", "ccxt:hyperliquid"):
        assert state[venue]["bid"] == 149.9 and state[venue]["ask"] == 150.1
        assert state[venue]["mid"] == pytest.approx(150.0) and state[venue]["dev_bps"] == pytest.approx(0.0)

    res = runner.invoke(app, ["scan", "--url", server.url, "--min-oi", "500", "--json"])
    assert res.exit_code == 0, res.output
    sol = next(json.loads(line) for line in res.output.splitlines() if json.loads(line)["coin"] == COIN)
    assert sol["oi_usd"] == pytest.approx(600.0)


def test_recorder_writes_rows_from_live_stream(server: Server, sol_market: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "ds"
    rec = Recorder(server.url, [COIN], ["l2Book", "trades", "bbo", "activeAssetCtx"], out, flush_rows=10_000,
                   flush_seconds=3600)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(rec.run(stop=stop))
        loop = asyncio.get_running_loop()
        # subscribed (l2Book answers with a snapshot), then a trade: 2 SOL more at 150.1
        await loop.run_in_executor(None, wait_until, lambda: rec.stats.messages["l2Book"] >= 1)
        taker = sol_market["taker"]
        st = await loop.run_in_executor(None, lambda: taker.order(COIN, True, 2, 150.1, {"limit": {"tif": "Ioc"}}))
        assert st["response"]["data"]["statuses"][0]["filled"]["totalSz"] == "2.0"
        await loop.run_in_executor(None, wait_until, lambda: rec.stats.messages["trades"] >= 1
                                   and any(r["ask_sz"] == 4.0 for r in rec.buffers["bbo"])
                                   and any(r["ask_sz"][0] == 4.0 for r in rec.buffers["book"])
                                   and rec.stats.messages["activeAssetCtx"] >= 1)
        stop.set()
        await task

    asyncio.run(run())
    trades = dataset.scan(out, "trades").collect()
    assert trades.select("venue", "coin", "px", "sz", "side").rows() == [("hyperliquid", COIN, 150.1, 2.0, 1)]
    books = dataset.scan(out, "book", coins=[COIN]).collect()
    assert books["bid_px"][0].to_list() == [149.9, 149.8]
    assert books["ask_sz"][0].to_list()[0] == 6.0 and books["ask_sz"][-1].to_list() == [4.0, 5.0]  # the 2 SOL lift
    assert (books["ts_ns"] > 0).all() and (books["local_ns"] > 0).all()
    bbo = dataset.scan(out, "bbo").collect()
    assert bbo.filter(pl.col("ask_sz") == 4.0).height >= 1 and (bbo["bid_px"] == 149.9).all()
    prices = dataset.scan(out, "prices").collect()
    assert (prices["oracle_px"] == 150.0).all()
    assert dataset.channels(out) == {c: [("hyperliquid", COIN)] for c in ("bbo", "book", "prices", "trades")}
    assert rec.stats.rows_written["trades"] == 1 and rec.stats.reconnects == 0


def test_record_command_is_bounded_and_resumes(server: Server, sol_market: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "rec"
    cmd = [sys.executable, "-m", "perpbox.cli", "record", "--url", server.url, "--coins", f"{COIN},ETH",
           "--channels", "l2Book,bbo", "--out", str(out), "--duration", "2", "--quiet"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr
    files_1 = set(dataset.files(out, "book"))
    assert files_1 and "wrote" in first.stdout
    books_1 = dataset.scan(out, "book", coins=[COIN]).collect()
    assert books_1.height >= 1 and books_1["bid_px"][0].to_list() == [149.9, 149.8]
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert second.returncode == 0, second.stderr
    files_2 = set(dataset.files(out, "book"))
    assert files_1 < files_2                                       # appended, nothing replaced
    assert dataset.scan(out, "book", coins=[COIN]).collect().height > books_1.height
