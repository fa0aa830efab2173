"""Signing and sending a deployer's ``perpDeploy`` actions (the relay's ``setOracle``, the
monitor's levers): L1 actions signed as the SDK signs them, nonces strictly increasing, and every
outcome — the venue's answer, a refusal, a dropped connection — returned as data for the record,
never raised."""

from __future__ import annotations

from typing import Any, Protocol

from eth_account import Account

from perpbox.api import signing

MAINNET_URL = "https://api.hyperliquid.xyz"


class VenueClient(Protocol):
    async def info(self, body: dict[str, Any]) -> Any: ...

    async def exchange(self, payload: dict[str, Any]) -> Any: ...


def accepted(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("status") == "ok"


class ActionSender:
    def __init__(self, venue: VenueClient, key_hex: str, *, is_mainnet: bool = False, dry_run: bool = False) -> None:
        self.venue = venue
        self.key_hex = key_hex
        self.address = Account.from_key(key_hex).address.lower()
        self.is_mainnet = is_mainnet
        self.dry_run = dry_run
        self.last_nonce = 0

    def nonce(self, now_ms: int) -> int:
        self.last_nonce = max(now_ms, self.last_nonce + 1)
        return self.last_nonce

    async def send(self, action: dict[str, Any], now_ms: int) -> dict[str, Any]:
        """Sign ``action`` and send it (not in a dry run); what was sent and what came back."""
        nonce = self.nonce(now_ms)
        sig = signing.sign_l1_action(self.key_hex, action, None, nonce, None, self.is_mainnet)
        sent: dict[str, Any] = {"action": action, "nonce": nonce, "signature": sig}
        if self.dry_run:
            return sent | {"answer": {"dryRun": True}}
        try:
            answer = await self.venue.exchange({"action": action, "nonce": nonce, "signature": sig,
                                                "vaultAddress": None, "expiresAfter": None})
        except Exception as e:  # a timeout or a dropped connection: recorded, the caller goes on
            answer = {"status": "err", "response": f"{type(e).__name__}: {e}"[:300]}
        return sent | {"answer": answer}
