"""``POST /exchange`` authentication: who sent a request and for which account, before any action is read.

Steps 1-3 of the flow in ``api.actions`` (reference §3, §4.4): the envelope is checked (``action``
object with a ``type``, integer ``nonce``, ``signature``; a body that does not fit is HTTP 422,
like the venue's deserialiser); the signer is recovered (user-signed actions from their EIP-712
typed data, L1 actions from the phantom agent); and the acting account is resolved: the signer,
its master if the signer is an API wallet, or the ``vaultAddress`` sub-account if the signer's
account controls it.  Whether the nonce is fresh is the sequencer's check (``store.nonces``), made
as it commits; here only a user-signed action's own nonce is matched against the envelope's.

The server cannot know which phantom source ("a" mainnet, "b" testnet) a client used — the SDK
signs as testnet for any non-mainnet URL, ccxt as mainnet — so both are recovered and the one that
is a known account or API wallet is taken (``network`` narrows this to one).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perpbox.api import signing
from perpbox.api.info import BadRequest
from perpbox.core import errors as E
from perpbox.exchange import Exchange

CHAINS = {"mainnet": ("Mainnet",), "testnet": ("Testnet",), "both": ("Mainnet", "Testnet")}

Envelope = tuple[dict[str, Any], int, dict[str, Any], str | None, int | None]  # action, nonce, sig, vault, expires


class ActionError(Exception):
    """A whole-action failure: ``{"status":"err","response":<message>}``."""


def parse_envelope(body: Any) -> Envelope:
    """The request body's parts; ``BadRequest`` (HTTP 422) when it does not deserialise."""
    if not isinstance(body, dict):
        raise BadRequest("expected an object")
    action, nonce, sig = body.get("action"), body.get("nonce"), body.get("signature")
    if not isinstance(action, dict) or not isinstance(action.get("type"), str):
        raise BadRequest("missing field `action`")
    if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 0:
        raise BadRequest("missing field `nonce`")
    if not isinstance(sig, dict):
        raise BadRequest("missing field `signature`")
    expires = body.get("expiresAfter")
    if expires is not None and (not isinstance(expires, int) or isinstance(expires, bool)):
        raise BadRequest("expiresAfter: expected an integer")
    raw_vault = body.get("vaultAddress")
    try:
        vault = signing.normalise_address(raw_vault) if raw_vault else None
    except ValueError:
        raise BadRequest("vaultAddress: invalid address") from None
    return action, nonce, sig, vault, expires


class Authenticator:
    """Recovers a request's signer and resolves the account it acts for, against the engine's
    accounts and API wallets."""

    def __init__(self, ex: Exchange, now: Callable[[], int], network: str = "both") -> None:
        self.ex = ex
        self.now = now
        self.sources = {"mainnet": ("a",), "testnet": ("b",)}.get(network, ("b", "a"))
        self.chains = CHAINS.get(network, CHAINS["both"])  # user-signed actions' hyperliquidChain

    def authenticate(self, action: dict[str, Any], nonce: int, sig: dict[str, Any], vault: str | None,
                     expires: int | None) -> tuple[str, str]:
        """(signer, acting account).  Raises ActionError with the venue's message."""
        ts = self.now()
        if expires is not None and expires < ts:
            raise ActionError(E.EXPIRED)
        try:
            if signing.is_user_signed(action):
                chain = action.get("hyperliquidChain")
                if not isinstance(chain, str) or chain not in ("Mainnet", "Testnet"):
                    raise BadRequest("hyperliquidChain: unknown variant")  # the venue's enum refuses it (422)
                if chain not in self.chains:
                    raise ActionError(E.WRONG_CHAIN.format(chains=" or ".join(self.chains)))
                if vault is not None and action["type"] not in ("usdClassTransfer", "sendAsset"):
                    raise ActionError(E.USER_SIGNED_WITH_VAULT)
                signer = signing.recover_user_signed(action, sig)
                if not self.ex.reads.has_account(signer) and action["type"] != "approveAgent" and \
                        action["type"] not in ("usdSend", "withdraw3"):
                    raise ActionError(E.MUST_DEPOSIT.format(user=signer))
                inner = action.get("nonce", action.get("time"))
                if inner != nonce:
                    raise ActionError(E.NONCE_MISMATCH)
                return signer, signer
            signer = master = None
            first = ""
            for source in self.sources:  # one recovery when the first source is the client's
                addr = signing.recover_l1(action, vault, nonce, expires, sig, source)
                first = first or addr
                master = self.ex.reads.agent_master(addr, ts)
                if master is not None or self.ex.reads.has_account(addr):
                    signer = addr
                    break
        except signing.SignatureError as e:
            if str(e) == signing.FAILED_TO_DESERIALIZE:
                raise BadRequest() from None
            raise ActionError(str(e)) from None
        if signer is None:
            raise ActionError(E.UNKNOWN_SIGNER.format(addr=first))
        user = master or signer
        if vault is not None:
            sub = self.ex.reads.account(vault)
            if sub is None or sub.master != user:
                raise ActionError(E.VAULT_NOT_REGISTERED.format(vault=vault))
            user = vault
        return signer, user
