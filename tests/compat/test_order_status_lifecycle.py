"""Order lifecycle statuses as Hyperliquid's ``/info`` reports them (hyperliquid-api.md §2.2
``orderStatus``, ``historicalOrders``, ``openOrders``, ``frontendOpenOrders``), driven by the
unmodified hyperliquid-python-sdk against the session's perpbox server.

The orders trade on a HIP-3 dex the module deploys for itself (one asset per test), so that the
trigger test can move the mark the way a deployer does — a signed ``perpDeploy setOracle`` — and
no other test's book or mark is touched.  Every price on these assets starts at 100.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid

from perpbox.api.actions import USDC_SEND_TOKEN

Server = Any  # the fixture type lives in conftest.py

DEX = "lcy"
WAIT, TRIG, SLMT, FILL, CNCL, STP = (f"{DEX}:{n}" for n in ("WAIT", "TRIG", "SLMT", "FILL", "CNCL", "STP"))
GTC = {"limit": {"tif": "Gtc"}}
IOC = {"limit": {"tif": "Ioc"}}

pytestmark = pytest.mark.usefixtures("deployer")  # every test trades on (or asks about) the module's dex


@pytest.fixture(scope="module")
def deployer(server: Server) -> Iterator[Exchange]:
    """A funded address that deploys dex ``lcy``: one asset per test, szDecimals 2, oracle 100, 10x."""
    w = Account.create()
    server.fund(w.address, "500000")
    ex = Exchange(w, server.url)
    schema = {"fullName": "Lifecycle", "collateralToken": 0, "oracleUpdater": None}
    for i, coin in enumerate((WAIT, TRIG, SLMT, FILL, CNCL, STP)):
        res = ex.perp_deploy_register_asset(
            dex=DEX,
            max_gas=None,
            coin=coin,
            sz_decimals=2,
            oracle_px="100",
            margin_table_id=10,
            only_isolated=False,
            schema=schema if i == 0 else None,
        )
        assert res == {"status": "ok", "response": {"type": "default"}}, res
    yield ex


def _account(server: Server, usd: str = "100000") -> tuple[str, Exchange]:
    """Funded on the module's dex: the faucet deposits on the first dex, ``sendAsset`` moves it."""
    w = Account.create()
    server.fund(w.address, usd)
    ex = Exchange(w, server.url, perp_dexs=["", DEX])
    assert ex.send_asset(w.address, "", DEX, USDC_SEND_TOKEN, float(usd))["status"] == "ok"
    return w.address, ex


def _info(server: Server) -> Info:
    return Info(server.url, skip_ws=True, perp_dexs=["", DEX])


def _status(res: Any) -> Any:
    assert res["status"] == "ok", res
    [st] = res["response"]["data"]["statuses"]
    return st


def _frontend(
    coin: str,
    side: str,
    limit_px: str,
    sz: str,
    oid: int,
    ts: int,
    orig_sz: str,
    *,
    order_type: str = "Limit",
    tif: str | None = "Gtc",
    reduce_only: bool = False,
    trigger_px: str = "0.0",
    trigger_condition: str = "N/A",
    cloid: str | None = None,
) -> dict[str, Any]:
    """One order in the venue's frontend shape (the ``order`` of orderStatus / historicalOrders)."""
    return {
        "coin": coin,
        "side": side,
        "limitPx": limit_px,
        "sz": sz,
        "oid": oid,
        "timestamp": ts,
        "triggerCondition": trigger_condition,
        "isTrigger": trigger_condition != "N/A",
        "triggerPx": trigger_px,
        "children": [],
        "isPositionTpsl": False,
        "reduceOnly": reduce_only,
        "orderType": order_type,
        "origSz": orig_sz,
        "tif": tif,
        "cloid": cloid,
    }


def _latest(hist: list[dict[str, Any]], oid: int) -> dict[str, Any]:
    """The newest historicalOrders entry for ``oid`` (a canceled order may also be listed as open)."""
    return next(h for h in hist if h["order"]["oid"] == oid)


def _assert_reported(got: Any, order: dict[str, Any], status: str) -> None:
    """``got`` (an orderStatus answer) reports ``order`` with ``status``, set no earlier than placement."""
    assert got["order"]["statusTimestamp"] >= order["timestamp"]
    assert got == {
        "status": "order",
        "order": {"order": order, "status": status, "statusTimestamp": got["order"]["statusTimestamp"]},
    }


def _long_with_quotes(server: Server, coin: str) -> tuple[str, str, Exchange, int]:
    """A trader long 1.0 of ``coin`` bought at 100 from a maker who then quotes 99 / 101 (so the
    book's local mark stays 100).  Returns (maker address, trader address, trader, maker's bid oid)."""
    maker_addr, maker = _account(server, "1000000")
    addr, ex = _account(server)
    assert "resting" in _status(maker.order(coin, False, 1.0, 100, GTC))
    assert _status(ex.order(coin, True, 1.0, 100, IOC))["filled"]["totalSz"] == "1.0"
    bid_oid = _status(maker.order(coin, True, 1.0, 99, GTC))["resting"]["oid"]
    assert "resting" in _status(maker.order(coin, False, 1.0, 101, GTC))
    return maker_addr, addr, ex, bid_oid


def _stop_market(ex: Exchange, coin: str, cloid: Cloid) -> None:
    """A reduce-only stop-market sell of the whole long, trigger 99.6 (p = triggerPx, as the SDK's
    TP/SL example sends it)."""
    sl = {"trigger": {"triggerPx": 99.6, "isMarket": True, "tpsl": "sl"}}
    assert _status(ex.order(coin, False, 1.0, 99.6, sl, reduce_only=True, cloid=cloid)) == "waitingForTrigger"


def test_waiting_trigger_orders_are_open_with_their_trigger_fields(server: Server) -> None:
    _, addr, ex, _ = _long_with_quotes(server, WAIT)
    info = _info(server)
    cloid = Cloid.from_str("0x000000000000000000000000000051a0")
    _stop_market(ex, WAIT, cloid)
    tp = {"trigger": {"triggerPx": 101.5, "isMarket": False, "tpsl": "tp"}}
    assert _status(ex.order(WAIT, False, 1.0, 101.4, tp, reduce_only=True)) == "waitingForTrigger"

    tp_fo, sl_fo = info.frontend_open_orders(addr, DEX)  # newest first
    sl_oid, sl_ts, tp_oid, tp_ts = sl_fo["oid"], sl_fo["timestamp"], tp_fo["oid"], tp_fo["timestamp"]
    sl_json = _frontend(
        WAIT,
        "A",
        "99.6",
        "1.0",
        sl_oid,
        sl_ts,
        "1.0",
        order_type="Stop Market",
        tif=None,
        reduce_only=True,
        trigger_px="99.6",
        trigger_condition="Price below 99.6",
        cloid=cloid.to_raw(),
    )
    tp_json = _frontend(
        WAIT,
        "A",
        "101.4",
        "1.0",
        tp_oid,
        tp_ts,
        "1.0",
        order_type="Take Profit Limit",
        tif=None,
        reduce_only=True,
        trigger_px="101.5",
        trigger_condition="Price above 101.5",
    )
    assert [tp_fo, sl_fo] == [tp_json, sl_json]
    basic = ("coin", "side", "limitPx", "sz", "oid", "timestamp", "origSz")
    assert info.open_orders(addr, DEX) == [
        {**{k: tp_json[k] for k in basic}, "reduceOnly": True},
        {**{k: sl_json[k] for k in basic}, "reduceOnly": True, "cloid": cloid.to_raw()},
    ]
    # orderStatus: "open" until the trigger fires (waitingForTrigger is only an order-action answer)
    sl_open = {"status": "order", "order": {"order": sl_json, "status": "open", "statusTimestamp": sl_ts}}
    assert info.query_order_by_oid(addr, sl_oid) == sl_open
    assert info.query_order_by_cloid(addr, cloid) == sl_open
    assert info.query_order_by_oid(addr, tp_oid) == {
        "status": "order",
        "order": {"order": tp_json, "status": "open", "statusTimestamp": tp_ts},
    }
    hist = info.historical_orders(addr)
    assert _latest(hist, sl_oid) == sl_open["order"]
    assert _latest(hist, tp_oid)["status"] == "open"


def test_a_crossed_stop_market_fills_and_reports_filled(
    server: Server, deployer: Exchange
) -> None:
    maker_addr, addr, ex, bid_oid = _long_with_quotes(server, TRIG)
    info = _info(server)
    cloid = Cloid.from_str("0x000000000000000000000000000051a1")
    _stop_market(ex, TRIG, cloid)
    [fo] = info.frontend_open_orders(addr, DEX)
    oid, ts = fo["oid"], fo["timestamp"]
    assert (fo["orderType"], fo["isTrigger"], fo["triggerCondition"]) == ("Stop Market", True, "Price below 99.6")

    # the deployer pushes 99: the mark moves its 1% at most (100 -> 99.0), through the 99.6 stop
    res = deployer.perp_deploy_set_oracle(DEX, {TRIG: "99"}, [{TRIG: "99"}, {TRIG: "99"}], {TRIG: "99"})
    assert res == {"status": "ok", "response": {"type": "default"}}
    ctx = info.post("/info", {"type": "metaAndAssetCtxs", "dex": DEX})
    names = [u["name"] for u in ctx[0]["universe"]]
    assert ctx[1][names.index(TRIG)]["markPx"] == "99.0"

    # a market sell went into the maker's 99 bid and closed the long
    close = info.user_fills(addr)[0]
    picked = {k: close[k] for k in ("coin", "px", "sz", "side", "startPosition", "dir", "closedPnl", "crossed")}
    assert picked == {
        "coin": TRIG,
        "px": "99.0",
        "sz": "1.0",
        "side": "A",
        "startPosition": "1.0",
        "dir": "Close Long",
        "closedPnl": "-1.0",
        "crossed": True,
    }
    assert info.query_order_by_oid(maker_addr, bid_oid)["order"]["status"] == "filled"
    assert info.user_state(addr, DEX)["assetPositions"] == []
    assert info.frontend_open_orders(addr, DEX) == []
    assert info.open_orders(addr, DEX) == []

    # perpbox fills a fired trigger under its own oid (Hyperliquid's docs do not say whether the venue
    # places it under a new one): the stop reads "filled", as the stop it was, in orderStatus (by oid
    # and by cloid) and in history
    assert close["oid"] == oid
    got = info.query_order_by_oid(addr, oid)
    assert got["status"] == "order"
    assert got["order"]["status"] == "filled", got
    assert got["order"]["statusTimestamp"] > ts
    stop = got["order"]["order"]
    keys = ("coin", "side", "limitPx", "sz", "origSz", "oid", "timestamp", "orderType", "isTrigger", "triggerPx",
            "triggerCondition", "reduceOnly")
    assert {k: stop[k] for k in keys} == {
        "coin": TRIG,
        "side": "A",
        "limitPx": "99.6",  # the order as placed; it executed with the 10% tolerance from the mark
        "sz": "0.0",
        "origSz": "1.0",
        "oid": oid,
        "timestamp": ts,
        "orderType": "Stop Market",
        "isTrigger": True,
        "triggerPx": "99.6",
        "triggerCondition": "Price below 99.6",
        "reduceOnly": True,
    }
    assert info.query_order_by_cloid(addr, cloid) == got
    assert _latest(info.historical_orders(addr), oid) == got["order"]


def test_a_fired_stop_limit_that_cannot_fill_rests_as_triggered(server: Server, deployer: Exchange) -> None:
    """Hyperliquid: "limit TP/SL rest at their limit once triggered (``triggered`` status)"."""
    _, addr, ex, _ = _long_with_quotes(server, SLMT)
    info = _info(server)
    sl = {"trigger": {"triggerPx": 99.6, "isMarket": False, "tpsl": "sl"}}
    assert _status(ex.order(SLMT, False, 1.0, 99.5, sl, reduce_only=True)) == "waitingForTrigger"
    [fo] = info.frontend_open_orders(addr, DEX)
    oid = fo["oid"]
    assert info.query_order_by_oid(addr, oid)["order"]["status"] == "open"

    # the mark moves 100 -> 99.0 through the 99.6 trigger; the best bid (99) is below the 99.5 limit
    res = deployer.perp_deploy_set_oracle(DEX, {SLMT: "99"}, [{SLMT: "99"}, {SLMT: "99"}], {SLMT: "99"})
    assert res == {"status": "ok", "response": {"type": "default"}}
    got = info.query_order_by_oid(addr, oid)["order"]
    assert (got["status"], got["order"]["limitPx"], got["order"]["sz"]) == ("triggered", "99.5", "1.0")
    assert got["statusTimestamp"] > fo["timestamp"]
    # still a live order: listed among the open orders, and the position is untouched
    assert [o["oid"] for o in info.open_orders(addr, DEX)] == [oid]
    [pos] = info.user_state(addr, DEX)["assetPositions"]
    assert pos["position"]["szi"] == "1.0"
    assert _latest(info.historical_orders(addr), oid)["status"] == "triggered"


def test_limit_orders_that_fill_report_filled(server: Server) -> None:
    maker_addr, maker = _account(server, "1000000")
    addr, ex = _account(server)
    info = _info(server)
    maker_oid = _status(maker.order(FILL, False, 2.0, 100.5, GTC))["resting"]["oid"]
    filled = _status(ex.order(FILL, True, 2.0, 100.5, IOC))["filled"]
    oid = filled["oid"]
    assert filled == {"totalSz": "2.0", "avgPx": "100.5", "oid": oid}

    # the taker: an IOC limit filled at once, so its status time is its placement time
    got = info.query_order_by_oid(addr, oid)
    ts = got["order"]["order"]["timestamp"]
    taker = _frontend(FILL, "B", "100.5", "0.0", oid, ts, "2.0", tif="Ioc")
    entry = {"order": taker, "status": "filled", "statusTimestamp": ts}
    assert got == {"status": "order", "order": entry}
    assert info.historical_orders(addr)[0] == entry

    # the maker: a resting GTC ask, filled later
    got = info.query_order_by_oid(maker_addr, maker_oid)
    mts = got["order"]["order"]["timestamp"]
    _assert_reported(got, _frontend(FILL, "A", "100.5", "0.0", maker_oid, mts, "2.0"), "filled")
    assert _latest(info.historical_orders(maker_addr), maker_oid)["status"] == "filled"
    assert info.open_orders(maker_addr, DEX) == []


def test_an_order_canceled_by_its_owner_reports_canceled(server: Server) -> None:
    addr, ex = _account(server)
    info = _info(server)
    cloid = Cloid.from_str("0x00000000000000000000000000000c1d")
    oid = _status(ex.order(CNCL, True, 1.5, 95, GTC, cloid=cloid))["resting"]["oid"]
    got = info.query_order_by_oid(addr, oid)
    ts = got["order"]["order"]["timestamp"]
    resting = _frontend(CNCL, "B", "95.0", "1.5", oid, ts, "1.5", cloid=cloid.to_raw())
    assert got == {"status": "order", "order": {"order": resting, "status": "open", "statusTimestamp": ts}}

    assert ex.cancel(CNCL, oid)["response"]["data"]["statuses"] == ["success"]
    got = info.query_order_by_oid(addr, oid)
    assert got["order"]["statusTimestamp"] >= ts
    canceled = {"order": resting, "status": "canceled", "statusTimestamp": got["order"]["statusTimestamp"]}
    assert got == {"status": "order", "order": canceled}
    assert info.query_order_by_cloid(addr, cloid) == {"status": "order", "order": canceled}
    assert _latest(info.historical_orders(addr), oid) == canceled
    assert info.open_orders(addr, DEX) == [] and info.frontend_open_orders(addr, DEX) == []


def test_a_resting_order_crossed_by_its_owner_is_selftradecanceled(server: Server) -> None:
    _, other = _account(server, "1000000")
    addr, ex = _account(server)
    info = _info(server)
    own_ask = _status(ex.order(STP, False, 1.0, 100.6, GTC))["resting"]["oid"]
    assert "resting" in _status(other.order(STP, False, 1.0, 100.7, GTC))
    # buying through its own 100.6 ask: that ask is cancelled, the buy fills against the 100.7 one
    filled = _status(ex.order(STP, True, 1.0, 100.7, IOC))["filled"]
    assert (filled["totalSz"], filled["avgPx"]) == ("1.0", "100.7")

    got = info.query_order_by_oid(addr, own_ask)
    ts = got["order"]["order"]["timestamp"]
    _assert_reported(got, _frontend(STP, "A", "100.6", "1.0", own_ask, ts, "1.0"), "selfTradeCanceled")
    assert _latest(info.historical_orders(addr), own_ask)["status"] == "selfTradeCanceled"
    # no trade with itself: its one fill is the 100.7 buy
    assert [(f["px"], f["sz"], f["side"]) for f in info.user_fills(addr)] == [("100.7", "1.0", "B")]
    assert info.open_orders(addr, DEX) == []


def test_an_unknown_oid_or_cloid_reports_unknownoid(server: Server) -> None:
    addr, _ = _account(server)
    info = _info(server)
    assert info.query_order_by_oid(addr, 10**12) == {"status": "unknownOid"}
    assert info.query_order_by_cloid(addr, Cloid.from_str("0x0000000000000000000000000000dead")) == {
        "status": "unknownOid"
    }
