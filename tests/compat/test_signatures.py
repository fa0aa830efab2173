"""Forged, replayed, misdirected and wrong-chain signatures are refused and change nothing."""

from __future__ import annotations

import time
from typing import Any

import httpx
from eth_account import Account
from hyperliquid.utils.signing import get_timestamp_ms, sign_l1_action, sign_user_signed_action

from perpbox.api.signing import sign_l1_action as pb_sign_l1

Server = Any

ORDER = {"type": "order", "orders": [{"a": 0, "b": True, "p": "80000", "s": "0.001", "r": False,
                                      "t": {"limit": {"tif": "Gtc"}}}], "grouping": "na"}


def _post(server: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.url + "/exchange", json=body, timeout=10)


def _signed(wallet: Any, action: dict[str, Any], nonce: int, vault: str | None = None) -> dict[str, Any]:
    sig = sign_l1_action(wallet, action, vault, nonce, None, False)  # the SDK's testnet signing
    return {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": vault, "expiresAfter": None}


def _open_orders(server: Server, user: str) -> Any:
    return server.info({"type": "openOrders", "user": user})


def test_a_forged_signature_is_refused(server: Server, wallet: Any) -> None:
    body = _signed(wallet, ORDER, get_timestamp_ms())
    body["signature"] = {"r": "0x" + "11" * 32, "s": "0x" + "22" * 32, "v": 27}
    r = _post(server, body)
    assert r.status_code == 200
    resp = r.json()
    # r = 0x11…11 is not an x-coordinate on secp256k1: nothing can be recovered
    assert resp == {"status": "err", "response": "Unable to recover signer."}
    body["signature"] = {"r": "0x" + "33" * 32, "s": "0x" + "22" * 32, "v": 27}  # recovers a stranger
    resp = _post(server, body).json()
    assert resp["response"].startswith("User or API Wallet 0x") and resp["response"].endswith("does not exist.")
    assert _open_orders(server, wallet.address) == []


def test_a_tampered_action_recovers_a_stranger_and_is_refused(server: Server, wallet: Any) -> None:
    body = _signed(wallet, ORDER, get_timestamp_ms())
    body["action"] = {**ORDER, "orders": [{**ORDER["orders"][0], "s": "0.5"}]}  # bigger order, same signature
    assert _post(server, body).json()["response"].endswith("does not exist.")
    assert _open_orders(server, wallet.address) == []


def test_a_replayed_nonce_is_refused(server: Server, wallet: Any) -> None:
    nonce = get_timestamp_ms()
    body = _signed(wallet, ORDER, nonce)
    first = _post(server, body).json()
    assert "resting" in first["response"]["data"]["statuses"][0]
    again = _post(server, body).json()
    assert again == {"status": "err", "response": f"Invalid nonce: duplicate nonce {nonce}"}
    assert len(_open_orders(server, wallet.address)) == 1


def test_a_nonce_outside_the_window_is_refused(server: Server, wallet: Any) -> None:
    old = get_timestamp_ms() - 3 * 86_400_000
    resp = _post(server, _signed(wallet, ORDER, old)).json()
    assert resp["status"] == "err" and resp["response"].startswith(f"Invalid nonce: nonce {old}")
    assert _open_orders(server, wallet.address) == []


def test_a_signature_for_another_account_is_refused(server: Server, wallet: Any) -> None:
    victim = Account.create()
    server.fund(victim.address)
    body = _signed(wallet, ORDER, get_timestamp_ms(), vault=victim.address.lower())
    expected = {"status": "err", "response": f"Vault not registered: {victim.address.lower()}"}
    assert _post(server, body).json() == expected
    assert _open_orders(server, victim.address) == []
    assert _open_orders(server, wallet.address) == []


def test_a_signature_for_the_wrong_chain_is_refused(server: Server, wallet: Any) -> None:
    agent = Account.create()
    nonce = get_timestamp_ms()
    action = {"type": "approveAgent", "agentAddress": agent.address, "agentName": "", "nonce": nonce}
    types = [{"name": "hyperliquidChain", "type": "string"}, {"name": "agentAddress", "type": "address"},
             {"name": "agentName", "type": "string"}, {"name": "nonce", "type": "uint64"}]
    sig = sign_user_signed_action(wallet, action, types, "HyperliquidTransaction:ApproveAgent", False)
    action["signatureChainId"] = "0xa4b1"  # claims Arbitrum; it was signed for 0x66eee
    resp = _post(server, {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": None}).json()
    assert resp["status"] == "err" and resp["response"].startswith("Must deposit before performing actions. User: 0x")
    assert server.info({"type": "userRole", "user": agent.address}) == {"role": "missing"}


def test_an_expired_action_is_refused(server: Server, wallet: Any) -> None:
    nonce = get_timestamp_ms()
    sig = pb_sign_l1(wallet.key.hex(), ORDER, None, nonce, nonce - 1000, False)
    body = {"action": ORDER, "nonce": nonce, "signature": sig, "vaultAddress": None, "expiresAfter": nonce - 1000}
    assert _post(server, body).json() == {"status": "err", "response": "Action already expired"}


def test_malformed_bodies_are_422_never_500(server: Server, wallet: Any) -> None:
    for raw in (b"{", b"[]", b'{"action": 1}', b'{"action": {"type": "order"}, "nonce": "x", "signature": {}}'):
        r = httpx.post(server.url + "/exchange", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422 and r.text.startswith("Failed to deserialize the JSON body into the target type")
    r = httpx.post(server.url + "/info", json={"type": "noSuchThing"})
    assert r.status_code == 422
    body = _signed(wallet, {"type": "order", "orders": [{"a": 0}], "grouping": "na"}, int(time.time() * 1000))
    assert _post(server, body).status_code == 422


def test_a_cloid_must_be_16_bytes_of_hex(server: Server, wallet: Any) -> None:
    """Hyperliquid's cloid is a 128-bit hex string (``0x`` + 32 hex digits); anything else fails to
    deserialize (422) and places nothing.  A valid one comes back on the status, lower-cased."""
    order = ORDER["orders"][0]
    for bad in ("0x1234", "0x" + "g" * 32, "0x" + "ab" * 17, "ab" * 16, 7):
        body = _signed(wallet, {**ORDER, "orders": [{**order, "c": bad}]}, get_timestamp_ms())
        r = _post(server, body)
        assert r.status_code == 422, bad
        assert r.text.startswith("Failed to deserialize the JSON body into the target type")
    assert _open_orders(server, wallet.address) == []
    cloid = "0x" + "AB" * 16
    body = _signed(wallet, {**ORDER, "orders": [{**order, "c": cloid}]}, get_timestamp_ms())
    status = _post(server, body).json()["response"]["data"]["statuses"][0]
    assert status["resting"]["cloid"] == cloid.lower()
    (resting,) = _open_orders(server, wallet.address)
    assert resting["cloid"] == cloid.lower()
