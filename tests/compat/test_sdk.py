"""The unmodified hyperliquid-python-sdk against a perpbox server started by the test."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.types import Cloid
from websockets.sync.client import connect as ws_connect

from perpbox.api.server import deployer_key

from .conftest import wait_until

Server = Any  # the fixture type lives in conftest.py


@pytest.fixture
def maker(server: Server) -> Exchange:
    """A second account that rests liquidity on ETH: bids 3490/3480, asks 3510/3520."""
    w = Account.create()
    server.fund(w.address, "1000000")
    ex = Exchange(w, server.url)
    res = ex.bulk_orders([
        {"coin": "ETH", "is_buy": True, "sz": 2.0, "limit_px": 3490, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": False},
        {"coin": "ETH", "is_buy": True, "sz": 2.0, "limit_px": 3480, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": False},
        {"coin": "ETH", "is_buy": False, "sz": 2.0, "limit_px": 3510, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": False},
        {"coin": "ETH", "is_buy": False, "sz": 2.0, "limit_px": 3520, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": False},
    ])
    assert res["status"] == "ok"
    assert all("resting" in s for s in res["response"]["data"]["statuses"])
    yield ex
    ex.cancel_all = None
    for o in Info(server.url, skip_ws=True).open_orders(w.address):
        ex.cancel(o["coin"], o["oid"])


def test_info_meta_mids_and_book(server: Server) -> None:
    info = Info(server.url, skip_ws=True)
    meta = info.meta()
    btc = next(u for u in meta["universe"] if u["name"] == "BTC")
    assert btc["szDecimals"] == 5 and btc["maxLeverage"] == 40
    assert info.name_to_asset("ETH") == 1
    assert info.perp_dexs()[0] is None and info.perp_dexs()[1]["name"] == "xyz"
    mids = info.all_mids()
    assert set(mids) >= {"BTC", "ETH", "SOL", "HYPE"}
    book = info.l2_snapshot("BTC")
    assert book["coin"] == "BTC" and len(book["levels"]) == 2


def test_place_rest_query_and_cancel_a_gtc_order(server: Server, wallet: Account) -> None:
    ex = Exchange(wallet, server.url)
    info = Info(server.url, skip_ws=True)
    cloid = Cloid.from_str("0x0000000000000000000000000000abcd")
    res = ex.order("ETH", True, 0.5, 3000, {"limit": {"tif": "Gtc"}}, cloid=cloid)
    status = res["response"]["data"]["statuses"][0]
    oid = status["resting"]["oid"]
    assert status["resting"]["cloid"] == cloid.to_raw()
    [o] = info.open_orders(wallet.address)
    assert (o["coin"], o["side"], o["limitPx"], o["sz"], o["oid"]) == ("ETH", "B", "3000.0", "0.5", oid)
    [fo] = info.frontend_open_orders(wallet.address)
    assert fo["orderType"] == "Limit" and fo["tif"] == "Gtc" and fo["cloid"] == cloid.to_raw()
    assert info.query_order_by_oid(wallet.address, oid)["order"]["status"] == "open"
    assert info.query_order_by_cloid(wallet.address, cloid)["order"]["order"]["oid"] == oid
    assert ex.cancel("ETH", oid)["response"]["data"]["statuses"] == ["success"]
    assert info.query_order_by_oid(wallet.address, oid)["order"]["status"] == "canceled"
    assert ex.cancel("ETH", oid)["response"]["data"]["statuses"] == [
        {"error": "Order was never placed, already canceled, or filled. asset=1"}]  # ETH is asset 1
    assert info.query_order_by_oid(wallet.address, 10**12) == {"status": "unknownOid"}
    hist = info.historical_orders(wallet.address)
    assert hist[0]["order"]["oid"] == oid and hist[0]["status"] == "canceled"


def test_alo_that_would_cross_is_rejected_with_the_bbo(server: Server, wallet: Account, maker: Exchange) -> None:
    ex = Exchange(wallet, server.url)
    res = ex.order("ETH", True, 0.1, 3515, {"limit": {"tif": "Alo"}})
    assert res["response"]["data"]["statuses"] == [
        {"error": "Post only order would have immediately matched, bbo was 3490@3510. asset=1"}]


def test_ioc_without_liquidity_and_reduce_only_without_position(server: Server, wallet: Account) -> None:
    ex = Exchange(wallet, server.url)
    res = ex.order("SOL", True, 1, 100, {"limit": {"tif": "Ioc"}})
    assert res["response"]["data"]["statuses"][0]["error"].startswith(
        "Order could not immediately match against any resting orders.")
    res = ex.order("SOL", False, 1, 100, {"limit": {"tif": "Gtc"}}, reduce_only=True)
    assert res["response"]["data"]["statuses"][0]["error"] == "Reduce only order would increase position. asset=2"


def test_market_open_fills_then_market_close_flattens(server: Server, wallet: Account, maker: Exchange) -> None:
    ex = Exchange(wallet, server.url)
    info = Info(server.url, skip_ws=True)
    res = ex.market_open("ETH", True, 3.0, px=3500)  # sweeps 2 @ 3510 and 1 @ 3520
    filled = res["response"]["data"]["statuses"][0]["filled"]
    assert filled["totalSz"] == "3.0"
    assert float(filled["avgPx"]) == pytest.approx((2 * 3510 + 3520) / 3)
    state = info.user_state(wallet.address)
    [pos] = state["assetPositions"]
    assert pos["position"]["coin"] == "ETH" and pos["position"]["szi"] == "3.0"
    assert pos["position"]["leverage"] == {"type": "cross", "value": 20}
    fills = info.user_fills(wallet.address)
    assert [(f["px"], f["sz"], f["dir"], f["crossed"]) for f in fills] == [
        ("3520.0", "1.0", "Open Long", True), ("3510.0", "2.0", "Open Long", True)]
    # taker fee 0.045%: 2*3510*0.00045 = 3.159, 3520*0.00045 = 1.584
    assert [f["fee"] for f in fills] == ["1.584", "3.159"]
    res = ex.market_close("ETH")
    closed = res["response"]["data"]["statuses"][0]["filled"]
    assert closed["totalSz"] == "3.0"
    assert info.user_state(wallet.address)["assetPositions"] == []
    last = info.user_fills(wallet.address)[0]
    assert last["dir"] == "Close Long" and last["side"] == "A"


def test_bulk_orders_modify_and_cancel_by_cloid(server: Server, wallet: Account) -> None:
    ex = Exchange(wallet, server.url)
    info = Info(server.url, skip_ws=True)
    res = ex.bulk_orders([
        {"coin": "BTC", "is_buy": True, "sz": 0.001, "limit_px": 90000, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": False},
        {"coin": "BTC", "is_buy": True, "sz": 0.001, "limit_px": 90000.5, "order_type": {"limit": {"tif": "Gtc"}},
         "reduce_only": False},
    ])
    st = res["response"]["data"]["statuses"]
    oid = st[0]["resting"]["oid"]
    assert st[1] == {"error": "Price must be divisible by tick size. asset=0"}
    cloid = Cloid.from_str("0x00000000000000000000000000000077")
    res = ex.modify_order(oid, "BTC", True, 0.002, 91000, {"limit": {"tif": "Gtc"}}, cloid=cloid)
    new_oid = res["response"]["data"]["statuses"][0]["resting"]["oid"]
    [o] = info.open_orders(wallet.address)
    assert (o["oid"], o["limitPx"], o["sz"]) == (new_oid, "91000.0", "0.002")
    assert ex.cancel_by_cloid("BTC", cloid)["response"]["data"]["statuses"] == ["success"]
    assert info.open_orders(wallet.address) == []


def test_tpsl_grouped_with_the_position_waits_for_its_trigger(server: Server, wallet: Account,
                                                               maker: Exchange) -> None:
    ex = Exchange(wallet, server.url)
    info = Info(server.url, skip_ws=True)
    ex.market_open("ETH", True, 1.0, px=3500)
    res = ex.order("ETH", False, 1.0, 3000, {"trigger": {"triggerPx": 3100, "isMarket": True, "tpsl": "sl"}},
                   reduce_only=True)
    assert res["response"]["data"]["statuses"] == ["waitingForTrigger"]
    [o] = info.frontend_open_orders(wallet.address)
    assert o["isTrigger"] and o["orderType"] == "Stop Market" and o["triggerCondition"] == "Price below 3100.0"
    ex.market_close("ETH")


def test_leverage_and_isolated_margin(server: Server, wallet: Account, maker: Exchange) -> None:
    ex = Exchange(wallet, server.url)
    info = Info(server.url, skip_ws=True)
    assert ex.update_leverage(5, "ETH", is_cross=False)["status"] == "ok"
    ex.market_open("ETH", True, 1.0, px=3500)
    pos = info.user_state(wallet.address)["assetPositions"][0]["position"]
    assert pos["leverage"]["type"] == "isolated" and pos["leverage"]["value"] == 5
    before = float(pos["marginUsed"])
    assert ex.update_isolated_margin(100, "ETH")["status"] == "ok"
    after = float(info.user_state(wallet.address)["assetPositions"][0]["position"]["marginUsed"])
    assert after == pytest.approx(before + 100)
    assert ex.update_leverage(10, "ETH", is_cross=True) == {
        "status": "err", "response": "Cannot switch leverage type with open position."}
    ex.market_close("ETH")


def test_schedule_cancel_fires_and_cancels_open_orders(server: Server, wallet: Account) -> None:
    ex = Exchange(wallet, server.url)
    info = Info(server.url, skip_ws=True)
    oid = ex.order("BTC", True, 0.001, 80000, {"limit": {"tif": "Gtc"}})["response"]["data"]["statuses"][0][
        "resting"]["oid"]
    now = info.post("/info", {"type": "exchangeStatus"})["time"]
    assert ex.schedule_cancel(now + 5_500)["status"] == "ok"
    wait_until(lambda: info.query_order_by_oid(wallet.address, oid)["order"]["status"] == "scheduledCancel")
    assert info.open_orders(wallet.address) == []


def test_agent_wallet_trades_for_its_master(server: Server, wallet: Account) -> None:
    master = Exchange(wallet, server.url)
    res, agent_key = master.approve_agent("bot")
    assert res["status"] == "ok"
    agent = Account.from_key(agent_key)
    info = Info(server.url, skip_ws=True)
    assert info.query_user_to_multi_sig_signers is not None
    assert info.post("/info", {"type": "userRole", "user": agent.address}) == {
        "role": "agent", "data": {"user": wallet.address.lower()}}
    as_agent = Exchange(agent, server.url, account_address=wallet.address)
    res = as_agent.order("BTC", True, 0.001, 80000, {"limit": {"tif": "Gtc"}})
    oid = res["response"]["data"]["statuses"][0]["resting"]["oid"]
    assert [o["oid"] for o in info.open_orders(wallet.address)] == [oid]
    assert info.open_orders(agent.address) == []
    assert info.post("/info", {"type": "extraAgents", "user": wallet.address})[0]["address"] == agent.address.lower()


def test_websocket_subscriptions_receive_live_updates(server: Server, wallet: Account, maker: Exchange) -> None:
    info = Info(server.url)  # opens the WebSocket
    got: dict[str, list[Any]] = {"l2Book": [], "trades": [], "userFills": [], "orderUpdates": []}
    done = threading.Event()

    def cb(kind: str) -> Any:
        def f(msg: Any) -> None:
            got[kind].append(msg)
            if all(got.values()):
                done.set()
        return f

    info.subscribe({"type": "l2Book", "coin": "ETH"}, cb("l2Book"))
    info.subscribe({"type": "trades", "coin": "ETH"}, cb("trades"))
    info.subscribe({"type": "userFills", "user": wallet.address}, cb("userFills"))
    info.subscribe({"type": "orderUpdates", "user": wallet.address}, cb("orderUpdates"))
    time.sleep(0.5)
    ex = Exchange(wallet, server.url)
    ex.market_open("ETH", False, 0.5, px=3500)
    assert done.wait(20), {k: len(v) for k, v in got.items()}
    assert got["trades"][0]["data"][0]["coin"] == "ETH"
    fills = [m for m in got["userFills"] if not m["data"].get("isSnapshot")]
    assert fills[0]["data"]["fills"][0]["px"] == "3490.0"
    assert got["orderUpdates"][-1]["data"][-1]["status"] == "filled"
    info.disconnect_websocket()
    ex.market_close("ETH")


def test_webdata2_and_spot_state_views_follow_the_account(server: Server, wallet: Account, maker: Exchange) -> None:
    info = Info(server.url)  # opens the WebSocket
    views: list[Any] = []
    info.subscribe({"type": "webData2", "user": wallet.address}, views.append)
    first = wait_until(lambda: views and views[0])["data"]
    assert first["user"] == wallet.address.lower() and first["clearinghouseState"]["assetPositions"] == []
    assert first["cumLedger"] == "100000.0" and first["meta"]["universe"][0]["name"] == "BTC"
    assert len(first["assetCtxs"]) == len(first["meta"]["universe"]) and first["isVault"] is False
    ex = Exchange(wallet, server.url)
    ex.market_open("ETH", True, 0.2, px=3520)
    pushed = wait_until(lambda: [v for v in views if v["data"]["clearinghouseState"]["assetPositions"]])
    assert pushed[0]["data"]["clearinghouseState"]["assetPositions"][0]["position"]["szi"] == "0.2"
    info.disconnect_websocket()
    ex.market_close("ETH")
    # spotState (not routed by the SDK): the raw channel after a usdClassTransfer to spot
    with ws_connect(server.url.replace("http", "ws") + "/ws") as ws:
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "spotState", "user": wallet.address}}))
        assert json.loads(ws.recv())["channel"] == "subscriptionResponse"
        assert json.loads(ws.recv())["data"]["spotState"] == {"balances": []}
        assert ex.usd_class_transfer(25, False)["status"] == "ok"
        msg = json.loads(ws.recv(timeout=10))
        assert msg["channel"] == "spotState" and msg["data"]["user"] == wallet.address.lower()
        assert msg["data"]["spotState"]["balances"][0]["total"] == "25.0"


def test_hip3_deployer_sets_the_oracle_through_the_sdk(server: Server) -> None:
    deployer = Account.from_key(deployer_key(3, "xyz"))
    ex = Exchange(deployer, server.url, perp_dexs=["", "xyz"])
    res = ex.perp_deploy_set_oracle("xyz", {"xyz:SILVER": "33.5", "xyz:XYZ100": "21500"},
                                    [{"xyz:SILVER": "33.5"}], {"xyz:SILVER": "33.4", "xyz:XYZ100": "21490"})
    assert res == {"status": "ok", "response": {"type": "default"}}
    ctxs = Info(server.url, skip_ws=True, perp_dexs=["", "xyz"]).post("/info", {"type": "metaAndAssetCtxs",
                                                                                "dex": "xyz"})
    names = [u["name"] for u in ctxs[0]["universe"]]
    silver = ctxs[1][names.index("xyz:SILVER")]
    assert silver["oraclePx"] in ("33.5", "32.0")  # 32.0 while COMEX is closed: the pushed price waits
    stranger = Account.create()
    server.fund(stranger.address)
    res = Exchange(stranger, server.url).perp_deploy_set_oracle("xyz", {"xyz:SILVER": "40"}, [], {"xyz:SILVER": "40"})
    assert res["status"] == "err"


def test_builder_code_fee_is_charged_and_reported(server: Server, maker: Exchange) -> None:
    builder = Account.create()
    server.fund(builder.address, "100")
    w = Account.create()
    server.fund(w.address)
    ex = Exchange(w, server.url)
    code = {"b": builder.address.lower(), "f": 10}  # 1 bp
    res = ex.order("ETH", True, 1.0, 3515, {"limit": {"tif": "Ioc"}}, builder=code)
    assert res == {"status": "err", "response": "Builder fee has not been approved."}
    assert ex.approve_builder_fee(builder.address, "0.01%")["status"] == "ok"
    info = Info(server.url, skip_ws=True)
    assert info.post("/info", {"type": "maxBuilderFee", "user": w.address, "builder": builder.address}) == 10
    res = ex.order("ETH", True, 1.0, 3515, {"limit": {"tif": "Ioc"}}, builder=code)
    assert res["response"]["data"]["statuses"][0]["filled"]["avgPx"] == "3510.0"
    fill = info.user_fills(w.address)[0]
    assert fill["builderFee"] == "0.351"  # 1 bp of $3,510
    assert fill["fee"] == "1.9305"  # 4.5 bp exchange fee (1.5795) + the builder's
    state = info.user_state(builder.address)
    assert state["marginSummary"]["accountValue"] == "100.351"


def test_usd_class_transfer_moves_usdc_between_perp_and_spot(server: Server) -> None:
    w = Account.create()
    server.fund(w.address, "1000")
    ex = Exchange(w, server.url)
    info = Info(server.url, skip_ws=True)
    assert ex.usd_class_transfer(250.5, False) == {"status": "ok", "response": {"type": "default"}}
    assert info.spot_user_state(w.address) == {"balances": [
        {"coin": "USDC", "token": 0, "hold": "0.0", "total": "250.5", "entryNtl": "0.0"}]}
    assert info.user_state(w.address)["withdrawable"] == "749.5"
    assert ex.usd_class_transfer(50, True)["status"] == "ok"
    assert info.spot_user_state(w.address)["balances"][0]["total"] == "200.5"
    assert info.user_state(w.address)["withdrawable"] == "799.5"
    res = ex.usd_class_transfer(1000, True)  # more than the spot wallet holds
    assert res["status"] == "err"
