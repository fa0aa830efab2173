"""The attacks of issue 17 §1 against a running server, signed as the official SDK signs: each is
refused with the venue's answer, and the exchange's whole state (``perpboxState``: log sequence and
state hash) is exactly what it was before.  The server runs with its clock stopped
(``--tick-interval 0``), so nothing else moves the state between the two reads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from hyperliquid.utils.signing import (
    USD_SEND_SIGN_TYPES,
    WITHDRAW_SIGN_TYPES,
    get_timestamp_ms,
    sign_agent,
    sign_inner,
    sign_l1_action,
    user_signed_payload,
)

from .conftest import Server

DESERIALIZE = "Failed to deserialize the JSON body into the target type"
AGENT_TYPES = [{"name": "hyperliquidChain", "type": "string"}, {"name": "agentAddress", "type": "address"},
               {"name": "agentName", "type": "string"}, {"name": "nonce", "type": "uint64"}]


@pytest.fixture(scope="module")
def quiet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("quiet") / "data", "--no-agents", "--feed", "none",
                 "--tick-interval", "0").start()
    yield srv
    srv.stop()


class Client:
    """One funded user of the quiet server, posting actions signed with the SDK's own functions."""

    def __init__(self, server: Server, usd: str = "100000") -> None:
        self.server = server
        self.wallet = Account.create()
        self.address = self.wallet.address.lower()
        if usd:
            server.fund(self.wallet.address, usd)
        self._nonce = get_timestamp_ms()

    def nonce(self) -> int:
        self._nonce += 1
        return self._nonce

    def post(self, action: dict[str, Any], signature: Any, nonce: int, vault: str | None = None) -> httpx.Response:
        body = {"action": action, "nonce": nonce, "signature": signature, "vaultAddress": vault, "expiresAfter": None}
        return httpx.post(self.server.url + "/exchange", json=body, timeout=10)

    def l1(self, action: dict[str, Any], wallet: Any = None, vault: str | None = None) -> httpx.Response:
        nonce = self.nonce()
        return self.post(action, sign_l1_action(wallet or self.wallet, action, vault, nonce, None, False), nonce,
                         vault)

    def user_signed(self, action: dict[str, Any], types: list[dict[str, str]], primary: str,
                    chain: str = "Testnet") -> httpx.Response:
        """Signed like the SDK's ``sign_user_signed_action`` but with any ``hyperliquidChain``."""
        action = {**action, "signatureChainId": "0x66eee", "hyperliquidChain": chain}
        sig = sign_inner(self.wallet, user_signed_payload(primary, types, action))
        return self.post(action, sig, action.get("nonce", action.get("time")))

    def approve_agent(self, agent: str, name: str = "") -> httpx.Response:
        nonce = self.nonce()
        action = {"type": "approveAgent", "agentAddress": agent, "agentName": name, "nonce": nonce}
        sig = sign_agent(self.wallet, action, False)  # adds hyperliquidChain and signatureChainId, as the SDK does
        return self.post(action, sig, nonce)

    def balance(self) -> str:
        return str(self.server.info({"type": "clearinghouseState", "user": self.address})["marginSummary"][
            "accountValue"])


def state(server: Server) -> tuple[int, str]:
    s = server.info({"type": "perpboxState"})
    return s["seq"], s["stateHash"]


def refused(server: Server, send: Any) -> httpx.Response:
    """``send()``'s answer, after checking that it changed neither the log nor the state."""
    before = state(server)
    r = send()
    assert r.status_code < 500, r.text
    assert state(server) == before, r.text
    return r


def order(asset: int = 0, is_buy: bool = True, px: str = "60000", sz: str = "0.01", tif: str = "Ioc") -> dict:
    return {"a": asset, "b": is_buy, "p": px, "s": sz, "r": False, "t": {"limit": {"tif": tif}}}


def test_a_negative_builder_fee_naming_a_bystander_is_refused(quiet: Server) -> None:
    attacker, bystander = Client(quiet), Client(quiet)
    worth = bystander.balance()
    action = {"type": "order", "orders": [order()], "grouping": "na",
              "builder": {"b": bystander.address, "f": -20_000_000}}
    r = refused(quiet, lambda: attacker.l1(action))
    assert (r.status_code, r.text.startswith(DESERIALIZE)) == (422, True)  # f is unsigned on the venue
    assert bystander.balance() == worth


def test_an_unapproved_or_over_the_cap_builder_fee_is_refused(quiet: Server) -> None:
    trader, builder = Client(quiet), Client(quiet)
    for f in (1, 10, 101, 2**40):
        action = {"type": "order", "orders": [order()], "grouping": "na", "builder": {"b": builder.address, "f": f}}
        r = refused(quiet, lambda a=action: trader.l1(a))
        assert r.json() == {"status": "err", "response": "Builder fee has not been approved."}


def test_another_users_api_wallet_cannot_be_approved(quiet: Server) -> None:
    alice, bob = Client(quiet), Client(quiet)
    bot = Account.create()
    assert alice.approve_agent(bot.address).json()["status"] == "ok"
    for name in ("", "bot"):
        r = refused(quiet, lambda n=name: bob.approve_agent(bot.address, n))
        assert r.json() == {"status": "err", "response": "Extra agent already used."}
    assert quiet.info({"type": "userRole", "user": bot.address}) == {"role": "agent", "data": {"user": alice.address}}
    # the bot still trades for Alice only
    rest = {"type": "order", "orders": [order(px="30000", tif="Gtc")], "grouping": "na"}
    assert "resting" in alice.l1(rest, wallet=bot).json()["response"]["data"]["statuses"][0]
    assert len(quiet.info({"type": "openOrders", "user": alice.address})) == 1
    assert quiet.info({"type": "openOrders", "user": bob.address}) == []


def test_a_user_cannot_be_made_someone_elses_agent(quiet: Server) -> None:
    alice, bob = Client(quiet), Client(quiet)
    r = refused(quiet, lambda: bob.approve_agent(alice.wallet.address))
    assert r.json()["status"] == "err"
    assert quiet.info({"type": "userRole", "user": alice.address}) == {"role": "user"}


def test_agent_names_and_expiries_are_bounded(quiet: Server) -> None:
    alice = Client(quiet)
    for name in (" valid_until 100000000000000000000", "x" * 17, "bot valid_until 1", "y" * 100_000):
        r = refused(quiet, lambda n=name: alice.approve_agent(Account.create().address, n))
        assert r.json()["status"] == "err", name
    assert quiet.info({"type": "extraAgents", "user": alice.address}) == []
    # and the views that show agents still answer
    assert quiet.info({"type": "webData2", "user": alice.address})["agentAddress"] is None


@pytest.mark.parametrize("chain", ["Bogus", "", "mainnet"])
def test_user_signed_actions_on_an_unknown_chain_are_refused(quiet: Server, chain: str) -> None:
    alice, bob = Client(quiet), Client(quiet)
    worth = alice.balance()
    sends = [
        ({"type": "usdSend", "destination": bob.address, "amount": "100", "time": alice.nonce()},
         USD_SEND_SIGN_TYPES, "HyperliquidTransaction:UsdSend"),
        ({"type": "withdraw3", "destination": alice.address, "amount": "100", "time": alice.nonce()},
         WITHDRAW_SIGN_TYPES, "HyperliquidTransaction:Withdraw"),
        ({"type": "approveAgent", "agentAddress": Account.create().address, "agentName": "", "nonce": alice.nonce()},
         AGENT_TYPES, "HyperliquidTransaction:ApproveAgent"),
    ]
    for action, types, primary in sends:
        r = refused(quiet, lambda a=action, t=types, p=primary: alice.user_signed(a, t, p, chain))
        assert r.status_code == 422 and r.text.startswith(DESERIALIZE), (action["type"], r.text)
    assert alice.balance() == worth


def test_a_testnet_exchange_refuses_mainnet_signed_transfers(tmp_path: Path) -> None:
    srv = Server(tmp_path / "data", "--no-agents", "--feed", "none", "--tick-interval", "0",
                 "--network", "testnet").start()
    try:
        alice, bob = Client(srv), Client(srv)
        action = {"type": "usdSend", "destination": bob.address, "amount": "100", "time": alice.nonce()}
        r = refused(srv, lambda: alice.user_signed(action, USD_SEND_SIGN_TYPES, "HyperliquidTransaction:UsdSend",
                                                   "Mainnet"))
        assert r.json()["status"] == "err"
        ok = {**action, "time": alice.nonce()}
        assert alice.user_signed(ok, USD_SEND_SIGN_TYPES, "HyperliquidTransaction:UsdSend").json()["status"] == "ok"
    finally:
        srv.stop()


def test_sub_account_names_and_batches_are_bounded(quiet: Server) -> None:
    alice = Client(quiet)
    for name in ("", "n" * 17, "m" * 1_000_000):
        r = refused(quiet, lambda n=name: alice.l1({"type": "createSubAccount", "name": n}))
        assert r.json()["status"] == "err" if r.status_code == 200 else r.status_code in (413, 422)
    assert quiet.info({"type": "subAccounts", "user": alice.address}) in (None, [])
    batch = {"type": "order", "orders": [order(px="30000", sz="0.001", tif="Gtc")] * 1001, "grouping": "na"}
    r = refused(quiet, lambda: alice.l1(batch))
    assert r.json()["status"] == "err"
    assert quiet.info({"type": "openOrders", "user": alice.address}) == []
