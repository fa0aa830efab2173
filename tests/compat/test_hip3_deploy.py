"""Dev-mode HIP-3 deployment through the API: a funded address registers its own dex and assets,
inserts a margin table and moves an asset onto it, drives the oracle, and trades there."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action

from perpbox.api.actions import USDC_SEND_TOKEN

Server = Any


def _signed(ex: Exchange, action: dict[str, Any]) -> Any:
    """Post a perpDeploy variant the SDK has no method for, signed exactly as the SDK signs."""
    ts = get_timestamp_ms()
    sig = sign_l1_action(ex.wallet, action, None, ts, ex.expires_after, False)
    return ex._post_action(action, sig, ts)


def _meta(server: Server, dex: str) -> dict[str, Any]:
    return server.info({"type": "meta", "dex": dex})  # type: ignore[no-any-return]


def test_funded_address_deploys_a_dex_with_its_own_margin_table_and_trades_on_it(server: Server) -> None:
    deployer = Account.create()
    server.fund(deployer.address, "500000")
    ex = Exchange(deployer, server.url)
    res = ex.perp_deploy_register_asset(
        dex="dv", max_gas=None, coin="dv:GOLD", sz_decimals=2, oracle_px="2650.5", margin_table_id=10,
        only_isolated=False, schema={"fullName": "Dev metals", "collateralToken": 0, "oracleUpdater": None})
    assert res == {"status": "ok", "response": {"type": "default"}}

    dexes = Info(server.url, skip_ws=True).perp_dexs()
    dv = next(d for d in dexes[1:] if d["name"] == "dv")
    assert dv["fullName"] == "Dev metals" and dv["deployer"] == deployer.address.lower()
    meta = _meta(server, "dv")
    assert meta["universe"] == [{"szDecimals": 2, "name": "dv:GOLD", "maxLeverage": 10, "marginTableId": 10}]
    flat10 = {"description": "", "marginTiers": [{"lowerBound": "0.0", "maxLeverage": 10}]}
    assert meta["marginTables"] == [[10, flat10]]

    # registerAsset2 (the SDK has no method for it yet): isolated-only silver
    res = _signed(ex, {"type": "perpDeploy", "registerAsset2": {
        "maxGas": None, "assetRequest": {"coin": "SILV", "szDecimals": 1, "oraclePx": "31.25", "marginTableId": 5,
                                         "marginMode": "strictIsolated"}, "dex": "dv", "schema": None}})
    assert res == {"status": "ok", "response": {"type": "default"}}
    silv = _meta(server, "dv")["universe"][1]
    assert silv == {"szDecimals": 1, "name": "dv:SILV", "maxLeverage": 5, "marginTableId": 5,
                    "onlyIsolated": True, "marginMode": "strictIsolated"}

    # a tiered table: 20x up to $100k, 10x up to $1M, 5x above; then GOLD moves onto it
    table = {"description": "dev tiers", "marginTiers": [{"lowerBound": 0, "maxLeverage": 20},
                                                         {"lowerBound": 100000, "maxLeverage": 10},
                                                         {"lowerBound": 1000000, "maxLeverage": 5}]}
    res = _signed(ex, {"type": "perpDeploy", "insertMarginTable": {"dex": "dv", "marginTable": table}})
    assert res == {"status": "ok", "response": {"type": "default"}}
    tables = dict((i, t) for i, t in _meta(server, "dv")["marginTables"])
    new_id = max(tables)
    assert new_id > 50
    assert tables[new_id] == {"description": "dev tiers", "marginTiers": [
        {"lowerBound": "0.0", "maxLeverage": 20}, {"lowerBound": "100000.0", "maxLeverage": 10},
        {"lowerBound": "1000000.0", "maxLeverage": 5}]}
    assert server.info({"type": "marginTable", "id": new_id}) == tables[new_id]
    res = _signed(ex, {"type": "perpDeploy", "setMarginTableIds": [["dv:GOLD", new_id]]})
    assert res == {"status": "ok", "response": {"type": "default"}}
    gold = _meta(server, "dv")["universe"][0]
    assert gold["marginTableId"] == new_id and gold["maxLeverage"] == 20

    # the deployer drives the oracle; a trader buys GOLD at 20x and sees the new table's limit
    res = ex.perp_deploy_set_oracle("dv", {"dv:GOLD": "2651", "dv:SILV": "31.3"}, [],
                                    {"dv:GOLD": "2651", "dv:SILV": "31.3"})
    assert res == {"status": "ok", "response": {"type": "default"}}
    maker_w, taker_w = Account.create(), Account.create()
    server.fund(maker_w.address, "200000")
    server.fund(taker_w.address, "200000")
    maker = Exchange(maker_w, server.url, perp_dexs=["", "dv"])
    taker = Exchange(taker_w, server.url, perp_dexs=["", "dv"])
    for ex_, w in ((maker, maker_w), (taker, taker_w)):  # the faucet funds the first dex: send it on to dv
        assert ex_.send_asset(w.address, "", "dv", USDC_SEND_TOKEN, 200000.0)["status"] == "ok"
    assert taker.update_leverage(20, "dv:GOLD", is_cross=True)["status"] == "ok"
    assert taker.update_leverage(21, "dv:GOLD", is_cross=True)["status"] == "err"
    rest = maker.order("dv:GOLD", False, 2.0, 2652, {"limit": {"tif": "Gtc"}})
    assert "resting" in rest["response"]["data"]["statuses"][0]
    fill = taker.order("dv:GOLD", True, 2.0, 2660, {"limit": {"tif": "Ioc"}})
    filled = fill["response"]["data"]["statuses"][0]["filled"]
    assert (filled["totalSz"], filled["avgPx"]) == ("2.0", "2652.0")
    state = server.info({"type": "clearinghouseState", "user": taker_w.address, "dex": "dv"})
    pos = state["assetPositions"][0]["position"]
    assert pos["coin"] == "dv:GOLD" and pos["szi"] == "2.0" and pos["leverage"] == {"type": "cross", "value": 20}


def test_deploy_permissions_and_validation(server: Server) -> None:
    owner, stranger, broke = Account.create(), Account.create(), Account.create()
    server.fund(owner.address)
    server.fund(stranger.address)
    schema = {"fullName": "Owner dex", "collateralToken": 0, "oracleUpdater": None}
    own = Exchange(owner, server.url)

    def register(ex: Exchange, coin: str, table: int = 10, with_schema: bool = True, dex: str = "own") -> Any:
        return ex.perp_deploy_register_asset(dex=dex, max_gas=None, coin=coin, sz_decimals=2, oracle_px="10",
                                             margin_table_id=table, only_isolated=False,
                                             schema=schema if with_schema else None)

    assert register(own, "AAA", with_schema=False) == {
        "status": "err", "response": "Dex does not exist: the first registerAsset needs a schema."}
    assert register(own, "AAA", table=77)["response"] == "Invalid margin table id."
    assert register(own, "AAA", dex="TOOLONG")["response"] == "Invalid dex name: 2 to 4 lowercase letters."
    assert register(Exchange(broke, server.url), "AAA")["status"] == "err"  # never deposited
    assert register(own, "AAA") == {"status": "ok", "response": {"type": "default"}}
    assert register(own, "AAA")["response"] == "Asset already exists on this dex."
    assert register(Exchange(stranger, server.url), "BBB")["response"] == "Only the deployer of this dex may do that."
    assert register(own, "BBB", with_schema=False)["status"] == "ok"  # the dex exists: no schema needed

    bad = {"description": "x", "marginTiers": [{"lowerBound": 0, "maxLeverage": 10},
                                               {"lowerBound": 1000, "maxLeverage": 20}]}
    res = _signed(own, {"type": "perpDeploy", "insertMarginTable": {"dex": "own", "marginTable": bad}})
    assert res["status"] == "err" and res["response"].startswith("Invalid margin table")
    good = {"description": "y", "marginTiers": [{"lowerBound": 0, "maxLeverage": 10}]}
    res = _signed(Exchange(stranger, server.url), {"type": "perpDeploy", "insertMarginTable": {
        "dex": "own", "marginTable": good}})
    assert res == {"status": "err", "response": "Only the deployer of this dex may do that."}
    # another dex's table cannot be used here
    xyz_tables = [i for i, _ in _meta(server, "xyz")["marginTables"] if i > 50]
    if xyz_tables:
        res = _signed(own, {"type": "perpDeploy", "setMarginTableIds": [["own:AAA", xyz_tables[0]]]})
        assert res == {"status": "err", "response": "Invalid margin table id."}
    assert [u["name"] for u in _meta(server, "own")["universe"]] == ["own:AAA", "own:BBB"]
