"""Per-dex clearinghouses through the unmodified SDK: the faucet deposits on the first dex,
``Exchange.send_asset`` funds a HIP-3 dex (and the spot wallet, and a sub-account), and
``clearinghouseState`` with and without ``dex`` shows each dex's own balance and positions."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from perpbox.api.actions import USDC_SEND_TOKEN
from perpbox.core import errors as E

Server = Any  # the fixture type lives in conftest.py


def _value(server: Server, user: str, dex: str = "") -> str:
    body = {"type": "clearinghouseState", "user": user} | ({"dex": dex} if dex else {})
    return server.info(body)["marginSummary"]["accountValue"]  # type: ignore[no-any-return]


def _balances(server: Server, user: str) -> list[Any]:
    """What a refusal must not change (the state hash moves with every tick of a running server)."""
    return [server.info({"type": "clearinghouseState", "user": user, "dex": d}) | {"time": 0} for d in ("", "xyz")] + [
        server.info({"type": "spotClearinghouseState", "user": user}),
        server.info({"type": "userNonFundingLedgerUpdates", "user": user})]


def test_send_asset_funds_a_hip3_dex_and_clearinghouse_state_is_per_dex(server: Server) -> None:
    w = Account.create()
    server.fund(w.address, "10000")
    user = w.address.lower()
    ex = Exchange(w, server.url, perp_dexs=["", "xyz"])
    assert (_value(server, user), _value(server, user, "xyz")) == ("10000.0", "0.0")

    assert ex.send_asset(w.address, "", "xyz", USDC_SEND_TOKEN, 2500.25) == {"status": "ok",
                                                                            "response": {"type": "default"}}
    assert (_value(server, user), _value(server, user, "xyz")) == ("7499.75", "2500.25")
    assert ex.send_asset(w.address, "xyz", "spot", USDC_SEND_TOKEN, 0.25)["status"] == "ok"
    spot = server.info({"type": "spotClearinghouseState", "user": user})
    assert spot == {"balances": [{"coin": "USDC", "token": 0, "hold": "0.0", "total": "0.25", "entryNtl": "0.0"}]}
    assert _value(server, user, "xyz") == "2500.0"

    # an order on xyz is margined by xyz's balance and shows only in xyz's views
    ctxs = server.info({"type": "metaAndAssetCtxs", "dex": "xyz"})
    names = [u["name"] for u in ctxs[0]["universe"]]
    mark = float(ctxs[1][names.index("xyz:XYZ100")]["markPx"])
    px = float(f"{mark * 0.95:.5g}")
    res = ex.order("xyz:XYZ100", True, 0.1, px, {"limit": {"tif": "Gtc"}})
    assert "resting" in res["response"]["data"]["statuses"][0], res
    info = Info(server.url, skip_ws=True, perp_dexs=["", "xyz"])
    assert [o["coin"] for o in info.open_orders(user, "xyz")] == ["xyz:XYZ100"] and info.open_orders(user) == []

    # refusals are answered with nothing changed
    before = _balances(server, user)
    refused = [
        (ex.send_asset(w.address, "", "xyz", "USDC", 1.0), E.INVALID_TOKEN.format(token=USDC_SEND_TOKEN)),
        (ex.send_asset(w.address, "", "qqq", USDC_SEND_TOKEN, 1.0), E.UNKNOWN_DEX.format(dex="qqq")),
        (ex.send_asset(w.address, "xyz", "", USDC_SEND_TOKEN, 2600.0), E.INSUFFICIENT_TRANSFER),
        (ex.send_asset(w.address, "", "", USDC_SEND_TOKEN, 1.0), E.INVALID_SEND),
        (ex.send_asset(w.address, "", "xyz", USDC_SEND_TOKEN, 0.0000001), E.INVALID_AMOUNT),
    ]
    for res, error in refused:
        assert res == {"status": "err", "response": error}
    assert _balances(server, user) == before

    # a sub-account: the master funds it on the first dex, the sub sends to its own xyz account
    created = ex.create_sub_account("per-dex")
    sub = created["response"]["data"]
    assert ex.send_asset(sub, "", "", USDC_SEND_TOKEN, 100.0)["status"] == "ok"
    sub_ex = Exchange(w, server.url, vault_address=sub, perp_dexs=["", "xyz"])
    assert sub_ex.send_asset(sub, "", "xyz", USDC_SEND_TOKEN, 60.0)["status"] == "ok"
    assert (_value(server, sub), _value(server, sub, "xyz")) == ("40.0", "60.0")
    assert _value(server, user) == "7399.75"
    updates = server.info({"type": "userNonFundingLedgerUpdates", "user": user})
    sends = [u["delta"] for u in updates if u["delta"]["type"] == "send"]
    assert sends[0] == {"type": "send", "user": user, "destination": user, "sourceDex": "", "destinationDex": "xyz",
                        "token": "USDC", "amount": "2500.25", "usdcValue": "2500.25", "fee": "0.0",
                        "nativeTokenFee": "0.0", "nonce": None}
