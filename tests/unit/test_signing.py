"""Hyperliquid signing (reference hyperliquid-api.md §3.1, §3.8, §4): action hashing, EIP-712 digests, recovery and
signing in ``perpbox.api.signing``, checked against the published test vectors, against ``eth_account``'s
``encode_typed_data`` + ``Account.recover_message`` path, and against what the unmodified hyperliquid SDK 0.24.0 and
ccxt 4.5.90 clients actually post (both driven offline, their HTTP layer replaced by a capture).
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any

import msgpack
import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from eth_utils import keccak
from hyperliquid.utils import signing as sdk
from hyperliquid.utils.constants import MAINNET_API_URL, TESTNET_API_URL
from hyperliquid.utils.types import Cloid
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from perpbox.api import signing
from perpbox.api.signing import (
    FAILED_TO_DESERIALIZE,
    SECP256K1_N,
    UNABLE_TO_RECOVER,
    USER_SIGNED_TYPES,
    SignatureError,
    action_hash,
    is_user_signed,
    l1_digest,
    normalise_address,
    recover_l1,
    recover_l1_candidates,
    recover_user_signed,
    sign_l1_action,
    sign_user_signed_action,
    user_signed_digest,
)

# §4.5: the SDK test key and its address
PK = "0x0123456789012345678901234567890123456789012345678901234567890123"
ADDR = "0x14791697260e4c9a71f18484c9f997b308e59325"
WALLET = Account.from_key(PK)
VAULT = "0x1719884eb866cb12b2287399b15f7db5e7d775ea"
DEST = "0x5e9ee1089755c3435139848e47e6635505d5a13a"
BUILDER = "0x6530512A6c89C7cfCEbC3BA7fcD9aDa5f30827a6"  # ccxt's builder, checksummed as ccxt sends it
OTHER_PK = "0x" + "11" * 32
OTHER_ADDR = Account.from_key(OTHER_PK).address.lower()
TS = 1_713_825_891_591  # a ms timestamp nonce


def order_action(asset: int = 1, cloid: str | None = None, trigger: bool = False) -> dict[str, Any]:
    t: dict[str, Any] = (
        {"trigger": {"isMarket": True, "triggerPx": "103", "tpsl": "sl"}} if trigger else {"limit": {"tif": "Gtc"}}
    )
    wire: dict[str, Any] = {"a": asset, "b": True, "p": "100", "s": "100", "r": False, "t": t}
    if cloid is not None:
        wire["c"] = cloid
    return {"type": "order", "orders": [wire], "grouping": "na"}


def eip712_digest(payload: dict[str, Any]) -> bytes:
    return bytes(_hash_eip191_message(encode_typed_data(full_message=payload)))


def sdk_types(kind: str) -> tuple[str, list[dict[str, str]]]:
    primary, fields = USER_SIGNED_TYPES[kind]
    return primary, [{"name": n, "type": t} for n, t in fields]


def eth_account_recover(payload: dict[str, Any], sig: dict[str, Any]) -> str:
    return Account.recover_message(encode_typed_data(full_message=payload), vrs=(sig["v"], sig["r"], sig["s"])).lower()


def wire(body: dict[str, Any]) -> dict[str, Any]:
    """What the server parses: a JSON round trip (dict insertion order preserved)."""
    return json.loads(json.dumps(body))


def server_recover(body: dict[str, Any], mainnet: bool) -> str:
    """§4.4 as a server would run it on a parsed /exchange body."""
    action = body["action"]
    if is_user_signed(action):
        assert action["hyperliquidChain"] == ("Mainnet" if mainnet else "Testnet")
        return recover_user_signed(action, body["signature"])
    return recover_l1(
        action,
        body.get("vaultAddress"),
        body["nonce"],
        body.get("expiresAfter"),
        body["signature"],
        "a" if mainnet else "b",
    )


# ---------------------------------------------------------------------------------------------------------------------
# §4.5 test vectors


def test_msgpack_and_connection_id_vector() -> None:
    action = order_action()
    assert msgpack.packb(action).hex() == (
        "83a474797065a56f72646572a66f72646572739186a16101a162c3a170a3313030a173a3313030a172c2a17481a56c696d697481a374"
        "6966a3477463a867726f7570696e67a26e61"
    )
    assert (
        action_hash(action, None, 0, None).hex() == "884f2c32bb6dbdd65f6033e32fb28c0cb6f5b345db0f6471fd3366d85c9252c1"
    )
    assert action_hash(action, None, 0, None) == sdk.action_hash(action, None, 0, None)


def test_phantom_agent_connection_id_vector() -> None:
    action = {
        "type": "order",
        "orders": [{"a": 4, "b": True, "p": "1670.1", "s": "0.0147", "r": False, "t": {"limit": {"tif": "Ioc"}}}],
        "grouping": "na",
    }
    cid = action_hash(action, None, 1677777606040, None)
    assert "0x" + cid.hex() == "0x0fcbeda5ae3c4950a548021552a4fea2226858c4453571bf3f24ba017eac2908"
    # the SDK builds the same wire from its float-typed request
    req: sdk.OrderRequest = {
        "coin": "ETH",
        "is_buy": True,
        "sz": 0.0147,
        "limit_px": 1670.1,
        "reduce_only": False,
        "order_type": {"limit": {"tif": "Ioc"}},
        "cloid": None,
    }
    assert sdk.order_wires_to_order_action([sdk.order_request_to_order_wire(req, 4)]) == action


DUMMY = {"type": "dummy", "num": 100_000_000_000}  # float_to_int_for_hashing(1000)

# (name, action, vault, source, r, s, v) — §4.5 and the SDK repository's tests/signing_test.py
L1_VECTORS = [
    (
        "order-mainnet",
        order_action(),
        None,
        "a",
        "0xd65369825a9df5d80099e513cce430311d7d26ddf477f5b3a33d2806b100d78e",
        "0x2b54116ff64054968aa237c20ca9ff68000f977c93289157748a3162b6ea940e",
        28,
    ),
    (
        "order-testnet",
        order_action(),
        None,
        "b",
        "0x82b2ba28e76b3d761093aaded1b1cdad4960b3af30212b343fb2e6cdfa4e3d54",
        "0x6b53878fc99d26047f4d7e8c90eb98955a109f44209163f52d8dc4278cbbd9f5",
        27,
    ),
    (
        "order-cloid-mainnet",
        order_action(cloid="0x00000000000000000000000000000001"),
        None,
        "a",
        "0x41ae18e8239a56cacbc5dad94d45d0b747e5da11ad564077fcac71277a946e3",  # 63 hex digits
        "0x3c61f667e747404fe7eea8f90ab0e76cc12ce60270438b2058324681a00116da",
        27,
    ),
    (
        "order-cloid-testnet",
        order_action(cloid="0x00000000000000000000000000000001"),
        None,
        "b",
        "0xeba0664bed2676fc4e5a743bf89e5c7501aa6d870bdb9446e122c9466c5cd16d",
        "0x7f3e74825c9114bc59086f1eebea2928c190fdfbfde144827cb02b85bbe90988",
        28,
    ),
    (
        "trigger-mainnet",
        order_action(trigger=True),
        None,
        "a",
        "0x98343f2b5ae8e26bb2587daad3863bc70d8792b09af1841b6fdd530a2065a3f9",
        "0x6b5bb6bb0633b710aa22b721dd9dee6d083646a5f8e581a20b545be6c1feb405",
        27,
    ),
    (
        "trigger-testnet",
        order_action(trigger=True),
        None,
        "b",
        "0x971c554d917c44e0e1b6cc45d8f9404f32172a9d3b3566262347d0302896a2e4",
        "0x206257b104788f80450f8e786c329daa589aa0b32ba96948201ae556d5637eac",
        28,
    ),
    (
        "dummy-mainnet",
        DUMMY,
        None,
        "a",
        "0x53749d5b30552aeb2fca34b530185976545bb22d0b3ce6f62e31be961a59298",
        "0x755c40ba9bf05223521753995abb2f73ab3229be8ec921f350cb447e384d8ed8",
        27,
    ),
    (
        "dummy-testnet",
        DUMMY,
        None,
        "b",
        "0x542af61ef1f429707e3c76c5293c80d01f74ef853e34b76efffcb57e574f9510",
        "0x17b8b32f086e8cdede991f1e2c529f5dd5297cbe8128500e00cbaf766204a613",
        28,
    ),
    (
        "dummy-vault-mainnet",
        DUMMY,
        VAULT,
        "a",
        "0x3c548db75e479f8012acf3000ca3a6b05606bc2ec0c29c50c515066a326239",  # 62 hex digits
        "0x4d402be7396ce74fbba3795769cda45aec00dc3125a984f2a9f23177b190da2c",
        28,
    ),
    (
        "dummy-vault-testnet",
        DUMMY,
        VAULT,
        "b",
        "0xe281d2fb5c6e25ca01601f878e4d69c965bb598b88fac58e475dd1f5e56c362b",
        "0x7ddad27e9a238d045c035bc606349d075d5c5cd00a6cd1da23ab5c39d4ef0f60",
        27,
    ),
    (
        "scheduleCancel-mainnet",
        {"type": "scheduleCancel"},
        None,
        "a",
        "0x6cdfb286702f5917e76cd9b3b8bf678fcc49aec194c02a73e6d4f16891195df9",
        "0x6557ac307fa05d25b8d61f21fb8a938e703b3d9bf575f6717ba21ec61261b2a0",
        27,
    ),
    (
        "scheduleCancel-testnet",
        {"type": "scheduleCancel"},
        None,
        "b",
        "0xc75bb195c3f6a4e06b7d395acc20bbb224f6d23ccff7c6a26d327304e6efaeed",
        "0x342f8ede109a29f2c0723bd5efb9e9100e3bbb493f8fb5164ee3d385908233df",
        28,
    ),
    (
        "scheduleCancel-time-mainnet",
        {"type": "scheduleCancel", "time": 123456789},
        None,
        "a",
        "0x609cb20c737945d070716dcc696ba030e9976fcf5edad87afa7d877493109d55",
        "0x16c685d63b5c7a04512d73f183b3d7a00da5406ff1f8aad33f8ae2163bab758b",
        28,
    ),
    (
        "createSubAccount-mainnet",
        {"type": "createSubAccount", "name": "example"},
        None,
        "a",
        "0x51096fe3239421d16b671e192f574ae24ae14329099b6db28e479b86cdd6caa7",
        "0xb71f7d293af92d3772572afb8b102d167a7cef7473388286bc01f52a5c5b423",  # 63 hex digits in s
        27,
    ),
    (
        "subAccountTransfer-testnet",
        {
            "type": "subAccountTransfer",
            "subAccountUser": "0x1d9470d4b963f552e6f671a81619d395877bf409",
            "isDeposit": True,
            "usd": 10,
        },
        None,
        "b",
        "0xe26574013395ad55ee2f4e0575310f003c5bb3351b5425482e2969fa51543927",
        "0xefb08999196366871f919fd0e138b3a7f30ee33e678df7cfaf203e25f0a4278",
        28,
    ),
]


@pytest.mark.parametrize(
    ("action", "vault", "source", "r", "s", "v"), [v[1:] for v in L1_VECTORS], ids=[v[0] for v in L1_VECTORS]
)
def test_l1_vectors_recover_and_sign(action: dict, vault: str | None, source: str, r: str, s: str, v: int) -> None:
    sig = {"r": r, "s": s, "v": v}
    assert recover_l1(action, vault, 0, None, sig, source) == ADDR
    assert recover_l1_candidates(action, vault, 0, None, sig)[source] == ADDR
    # our signer reproduces the published signature exactly (SDK formatting: leading zeros dropped)
    assert sign_l1_action(PK, action, vault, 0, None, source == "a") == sig
    # and the eth_account path agrees on the digest
    payload = sdk.l1_payload(sdk.construct_phantom_agent(action_hash(action, vault, 0, None), source == "a"))
    assert l1_digest(action_hash(action, vault, 0, None), source) == eip712_digest(payload)


def test_wrong_source_recovers_the_unrelated_address_from_the_reference() -> None:
    _, action, _, _, r, s, v = L1_VECTORS[0]
    sig = {"r": r, "s": s, "v": v}
    wrong = recover_l1(action, None, 0, None, sig, "b")
    assert wrong.startswith("0xce4b") and wrong != ADDR
    assert wrong == sdk.recover_agent_or_user_from_l1_action(action, sig, None, 0, None, False).lower()
    assert recover_l1_candidates(action, None, 0, None, sig) == {"a": ADDR, "b": wrong}


USER_VECTORS = [
    (
        "usdSend-testnet",
        {"type": "usdSend", "destination": DEST, "amount": "1", "time": 1687816341423},
        "0x637b37dd731507cdd24f46532ca8ba6eec616952c56218baeff04144e4a77073",
        "0x11a6a24900e6e314136d2592e2f8d502cd89b7c15b198e1bee043c9589f9fad7",
        27,
    ),
    (
        "withdraw3-testnet",
        {"type": "withdraw3", "destination": DEST, "amount": "1", "time": 1687816341423},
        "0x8363524c799e90ce9bc41022f7c39b4e9bdba786e5f9c72b20e43e1462c37cf9",
        "0x58b1411a775938b83e29182e8ef74975f9054c8e97ebf5ec2dc8d51bfc893881",
        28,
    ),
]


@pytest.mark.parametrize(("action", "r", "s", "v"), [v[1:] for v in USER_VECTORS], ids=[v[0] for v in USER_VECTORS])
def test_user_signed_vectors(action: dict, r: str, s: str, v: int) -> None:
    sig = {"r": r, "s": s, "v": v}
    ours = dict(action)
    assert sign_user_signed_action(PK, ours, False) == sig
    assert ours["signatureChainId"] == "0x66eee" and ours["hyperliquidChain"] == "Testnet"
    posted = wire(ours)
    assert recover_user_signed(posted, sig) == ADDR
    # the SDK signs the same dict the same way
    theirs = dict(action)
    primary, types = sdk_types(action["type"])
    assert sdk.sign_user_signed_action(WALLET, theirs, types, primary, False) == sig
    assert theirs == ours


# ---------------------------------------------------------------------------------------------------------------------
# digests and recovery equal the eth_account path


def test_user_signed_types_match_the_sdk_tables() -> None:
    expected = {
        "usdSend": ("HyperliquidTransaction:UsdSend", sdk.USD_SEND_SIGN_TYPES),
        "spotSend": ("HyperliquidTransaction:SpotSend", sdk.SPOT_TRANSFER_SIGN_TYPES),
        "withdraw3": ("HyperliquidTransaction:Withdraw", sdk.WITHDRAW_SIGN_TYPES),
        "usdClassTransfer": ("HyperliquidTransaction:UsdClassTransfer", sdk.USD_CLASS_TRANSFER_SIGN_TYPES),
        "sendAsset": ("HyperliquidTransaction:SendAsset", sdk.SEND_ASSET_SIGN_TYPES),
        "tokenDelegate": ("HyperliquidTransaction:TokenDelegate", sdk.TOKEN_DELEGATE_TYPES),
        "convertToMultiSigUser": (
            "HyperliquidTransaction:ConvertToMultiSigUser",
            sdk.CONVERT_TO_MULTI_SIG_USER_SIGN_TYPES,
        ),
        "userDexAbstraction": ("HyperliquidTransaction:UserDexAbstraction", sdk.USER_DEX_ABSTRACTION_SIGN_TYPES),
        "userSetAbstraction": ("HyperliquidTransaction:UserSetAbstraction", sdk.USER_SET_ABSTRACTION_SIGN_TYPES),
        "approveAgent": (
            "HyperliquidTransaction:ApproveAgent",
            [
                {"name": "hyperliquidChain", "type": "string"},
                {"name": "agentAddress", "type": "address"},
                {"name": "agentName", "type": "string"},
                {"name": "nonce", "type": "uint64"},
            ],
        ),
        "approveBuilderFee": (
            "HyperliquidTransaction:ApproveBuilderFee",
            [
                {"name": "hyperliquidChain", "type": "string"},
                {"name": "maxFeeRate", "type": "string"},
                {"name": "builder", "type": "address"},
                {"name": "nonce", "type": "uint64"},
            ],
        ),
    }
    assert set(USER_SIGNED_TYPES) == set(expected)
    for kind, (primary, types) in expected.items():
        assert sdk_types(kind) == (primary, types), kind


SAMPLE_USER_ACTIONS: dict[str, dict[str, Any]] = {
    "usdSend": {"type": "usdSend", "destination": DEST, "amount": "12.5", "time": TS},
    "spotSend": {
        "type": "spotSend",
        "destination": DEST,
        "token": "PURR:0xc4bf3f870c0e9465323c0b6ed28096c2",
        "amount": "0.1",
        "time": TS,
    },
    "withdraw3": {"type": "withdraw3", "destination": DEST, "amount": "2", "time": TS},
    "usdClassTransfer": {"type": "usdClassTransfer", "amount": "1 subaccount:" + VAULT, "toPerp": False, "nonce": TS},
    "sendAsset": {
        "type": "sendAsset",
        "destination": DEST,
        "sourceDex": "",
        "destinationDex": "spot",
        "token": "USDC:0x6d1e7cde53ba9467b783cb7c530ce054",
        "amount": "3",
        "fromSubAccount": "",
        "nonce": TS,
    },
    "approveAgent": {
        "type": "approveAgent",
        "agentAddress": Account.from_key(OTHER_PK).address,
        "agentName": "bot valid_until 1900000000000",
        "nonce": TS,
    },
    "approveBuilderFee": {"type": "approveBuilderFee", "maxFeeRate": "0.01%", "builder": BUILDER, "nonce": TS},
    "tokenDelegate": {"type": "tokenDelegate", "validator": DEST, "wei": 10**12, "isUndelegate": True, "nonce": TS},
    "convertToMultiSigUser": {
        "type": "convertToMultiSigUser",
        "signers": json.dumps({"authorizedUsers": [ADDR, DEST], "threshold": 1}),
        "nonce": TS,
    },
    "userDexAbstraction": {"type": "userDexAbstraction", "user": ADDR, "enabled": True, "nonce": TS},
    "userSetAbstraction": {"type": "userSetAbstraction", "user": ADDR, "abstraction": "unifiedAccount", "nonce": TS},
}


@pytest.mark.parametrize("kind", sorted(USER_SIGNED_TYPES))
@pytest.mark.parametrize("chain_id", ["0x66eee", "0xa4b1", "0x1", "0x2105"])
@pytest.mark.parametrize("network", ["Mainnet", "Testnet"])
def test_user_signed_digest_and_recovery_equal_eth_account(kind: str, chain_id: str, network: str) -> None:
    action = dict(SAMPLE_USER_ACTIONS[kind], signatureChainId=chain_id, hyperliquidChain=network)
    primary, types = sdk_types(kind)
    payload = sdk.user_signed_payload(primary, types, action)
    assert user_signed_digest(action) == eip712_digest(payload)
    # a signature made by eth_account over that payload (any chain id) is recovered by us
    sig = sdk.sign_inner(WALLET, payload)
    assert recover_user_signed(wire(action), sig) == ADDR == eth_account_recover(payload, sig)


@pytest.mark.parametrize("kind", sorted(USER_SIGNED_TYPES))
@pytest.mark.parametrize("mainnet", [True, False])
def test_sign_user_signed_action_equals_the_sdk(kind: str, mainnet: bool) -> None:
    ours, theirs = copy.deepcopy(SAMPLE_USER_ACTIONS[kind]), copy.deepcopy(SAMPLE_USER_ACTIONS[kind])
    primary, types = sdk_types(kind)
    sig = sign_user_signed_action(PK, ours, mainnet)
    assert sig == sdk.sign_user_signed_action(WALLET, theirs, types, primary, mainnet)
    assert ours == theirs  # same in-place mutation (signatureChainId, hyperliquidChain appended)
    assert list(ours)[-2:] == ["signatureChainId", "hyperliquidChain"]
    assert recover_user_signed(wire(ours), sig) == ADDR
    # the SDK's own recovery helper agrees
    assert sdk.recover_user_from_user_signed_action(theirs, sig, types, primary, mainnet).lower() == ADDR


def test_sdk_named_user_signing_helpers_recover() -> None:
    for helper, kind in [
        (sdk.sign_usd_transfer_action, "usdSend"),
        (sdk.sign_spot_transfer_action, "spotSend"),
        (sdk.sign_withdraw_from_bridge_action, "withdraw3"),
        (sdk.sign_usd_class_transfer_action, "usdClassTransfer"),
        (sdk.sign_send_asset_action, "sendAsset"),
        (sdk.sign_agent, "approveAgent"),
        (sdk.sign_approve_builder_fee, "approveBuilderFee"),
        (sdk.sign_token_delegate_action, "tokenDelegate"),
        (sdk.sign_convert_to_multi_sig_user_action, "convertToMultiSigUser"),
        (sdk.sign_user_dex_abstraction_action, "userDexAbstraction"),
        (sdk.sign_user_set_abstraction_action, "userSetAbstraction"),
    ]:
        for mainnet in (True, False):
            action = copy.deepcopy(SAMPLE_USER_ACTIONS[kind])
            sig = helper(WALLET, action, mainnet)
            assert recover_user_signed(wire(action), sig) == ADDR, (kind, mainnet)


@pytest.mark.parametrize(
    "cid", [bytes(32), b"\xff" * 32, bytes.fromhex("884f2c32bb6dbdd65f6033e32fb28c0cb6f5b345db0f6471fd3366d85c9252c1")]
)
@pytest.mark.parametrize("source", ["a", "b", "c", ""])
def test_l1_digest_equals_eth_account(cid: bytes, source: str) -> None:
    payload = sdk.l1_payload({"source": source, "connectionId": cid})
    assert l1_digest(cid, source) == eip712_digest(payload)


SDK_L1_ACTIONS: list[dict[str, Any]] = [
    order_action(),
    order_action(asset=3, cloid="0x1234567890abcdef1234567890abcdef"),
    order_action(trigger=True),
    dict(order_action(), builder={"b": BUILDER.lower(), "f": 10}),
    {"type": "cancel", "cancels": [{"a": 1, "o": 123456}, {"a": 0, "o": 7}]},
    {"type": "cancelByCloid", "cancels": [{"asset": 1, "cloid": "0x00000000000000000000000000000001"}]},
    {
        "type": "batchModify",
        "modifies": [
            {
                "oid": 42,
                "order": {"a": 1, "b": False, "p": "2500.5", "s": "0.25", "r": True, "t": {"limit": {"tif": "Alo"}}},
            },
            {
                "oid": "0x00000000000000000000000000000002",
                "order": {
                    "a": 0,
                    "b": True,
                    "p": "60000",
                    "s": "0.001",
                    "r": False,
                    "t": {"trigger": {"isMarket": False, "triggerPx": "59000", "tpsl": "tp"}},
                    "c": "0x00000000000000000000000000000002",
                },
            },
        ],
    },
    {"type": "updateLeverage", "asset": 1, "isCross": False, "leverage": 7},
    {"type": "updateIsolatedMargin", "asset": 1, "isBuy": True, "ntli": -1_500_000},
    {"type": "scheduleCancel", "time": TS + 10_000},
    {"type": "noop"},
    {"type": "twapOrder", "twap": {"a": 1, "b": True, "s": "1.5", "r": False, "m": 30, "t": True}},
    {"type": "vaultTransfer", "vaultAddress": VAULT, "isDeposit": True, "usd": 5_000_000},
    {"type": "setReferrer", "code": "CCXT1"},
    {"type": "dummy", "x": 1.5, "neg": -7, "big": 2**63, "nil": None, "list": [1, "a", [True]]},
]


@pytest.mark.parametrize("action", SDK_L1_ACTIONS, ids=lambda a: a["type"])
@pytest.mark.parametrize(("vault", "expires"), [(None, None), (VAULT, None), (None, TS + 60_000), (VAULT, TS + 1)])
@pytest.mark.parametrize("mainnet", [True, False])
def test_l1_cross_check_with_the_sdk(action: dict, vault: str | None, expires: int | None, mainnet: bool) -> None:
    assert action_hash(action, vault, TS, expires) == sdk.action_hash(action, vault, TS, expires)
    sdk_sig = sdk.sign_l1_action(WALLET, action, vault, TS, expires, mainnet)
    assert sign_l1_action(PK, action, vault, TS, expires, mainnet) == sdk_sig
    source = "a" if mainnet else "b"
    posted = wire({"action": action, "nonce": TS, "signature": sdk_sig, "vaultAddress": vault, "expiresAfter": expires})
    got = recover_l1(posted["action"], posted["vaultAddress"], TS, posted["expiresAfter"], posted["signature"], source)
    assert got == ADDR
    ref = sdk.recover_agent_or_user_from_l1_action(action, sdk_sig, vault, TS, expires, mainnet)
    assert got == ref.lower()
    # the other source gives some other address, again exactly as eth_account computes it
    other = recover_l1_candidates(action, vault, TS, expires, sdk_sig)["b" if mainnet else "a"]
    assert other != ADDR
    assert other == sdk.recover_agent_or_user_from_l1_action(action, sdk_sig, vault, TS, expires, not mainnet).lower()


def test_key_order_matters_for_l1_actions() -> None:
    action = order_action(cloid="0x00000000000000000000000000000001")
    sig = sign_l1_action(PK, action, None, TS, None, True)
    resorted = json.loads(json.dumps(action, sort_keys=True))
    assert resorted == action
    assert recover_l1(wire(action), None, TS, None, sig, "a") == ADDR
    assert recover_l1(resorted, None, TS, None, sig, "a") != ADDR


# ---------------------------------------------------------------------------------------------------------------------
# round trips


VAULT_FORMS = [VAULT, VAULT[2:], VAULT[2:].upper(), "0X" + VAULT[2:].upper(), "0x" + VAULT[2:].upper()]


@pytest.mark.parametrize("vault_form", [None, *VAULT_FORMS])
@pytest.mark.parametrize("expires", [None, 0, TS + 60_000, 2**64 - 1])
@pytest.mark.parametrize("mainnet", [True, False])
def test_l1_round_trip(vault_form: str | None, expires: int | None, mainnet: bool) -> None:
    canonical = None if vault_form is None else VAULT
    action = order_action(cloid="0x00000000000000000000000000000009")
    sig = sign_l1_action(PK, action, canonical, TS, expires, mainnet)
    source, wrong = ("a", "b") if mainnet else ("b", "a")
    # the server accepts the vault in any accepted spelling (ccxt strips the 0x)
    assert recover_l1(action, vault_form, TS, expires, sig, source) == ADDR
    assert recover_l1(action, vault_form, TS, expires, sig, wrong) != ADDR
    cands = recover_l1_candidates(action, vault_form, TS, expires, sig)
    assert cands[source] == ADDR and cands[wrong] != ADDR
    # signing with any spelling of the vault gives the same signature
    assert sign_l1_action(PK, action, vault_form, TS, expires, mainnet) == sig
    # any change to what was signed changes the signer
    assert recover_l1(action, vault_form, TS + 1, expires, sig, source) != ADDR
    assert recover_l1(action, None if vault_form else VAULT, TS, expires, sig, source) != ADDR
    assert recover_l1(action, vault_form, TS, None if expires is not None else TS, sig, source) != ADDR


def test_signature_formats_accepted() -> None:
    action = order_action()
    sig = sign_l1_action(PK, action, None, TS, None, True)
    r, s, v = int(sig["r"], 16), int(sig["s"], 16), sig["v"]
    variants = [
        sig,
        {"r": f"0x{r:064x}", "s": f"0x{s:064x}", "v": v},  # ccxt zero-pads
        {"r": f"{r:x}", "s": f"{s:x}", "v": v},  # no prefix
        {"r": f"0X{r:X}", "s": f"0x{s:X}", "v": v},  # upper case
        {"r": sig["r"], "s": sig["s"], "v": v - 27},  # 0/1
        {"v": v, "s": sig["s"], "r": sig["r"], "extra": 1},
        # high-s twin (r, n-s, flipped v) recovers the same key, as in eth_account and libsecp256k1
        {"r": sig["r"], "s": hex(SECP256K1_N - s), "v": 27 + (1 - (v - 27))},
    ]
    for variant in variants:
        assert recover_l1(action, None, TS, None, variant, "a") == ADDR, variant
    high_s = variants[-1]
    digest_payload = sdk.l1_payload(sdk.construct_phantom_agent(action_hash(action, None, TS, None), True))
    assert eth_account_recover(digest_payload, high_s) == ADDR


def test_other_keys_and_addresses_are_lower_case() -> None:
    action = {"type": "noop"}
    sig = sign_l1_action(OTHER_PK, action, None, TS, None, False)
    got = recover_l1(action, None, TS, None, sig, "b")
    assert got == OTHER_ADDR and got == got.lower() and len(got) == 42
    assert sign_l1_action(bytes.fromhex(OTHER_PK[2:]), action, None, TS, None, False) == sig
    assert sign_l1_action(OTHER_PK[2:], action, None, TS, None, False) == sig


# ---------------------------------------------------------------------------------------------------------------------
# approveAgent quirk (§4.3)


def test_approve_agent_without_name_needs_the_empty_default() -> None:
    agent = Account.from_key(OTHER_PK)
    action = {"type": "approveAgent", "agentAddress": agent.address, "agentName": "", "nonce": TS}
    sig = sdk.sign_agent(WALLET, action, False)  # signs with agentName "" ...
    del action["agentName"]  # ... and the SDK deletes it from the posted action
    posted = wire(action)
    assert "agentName" not in posted
    assert recover_user_signed(posted, sig) == ADDR
    # without the default, the eth_account path (missing string -> zero word) silently yields someone else
    primary, types = sdk_types("approveAgent")
    stranger = eth_account_recover(sdk.user_signed_payload(primary, types, posted), sig)
    assert stranger != ADDR
    assert eth_account_recover(sdk.user_signed_payload(primary, types, dict(posted, agentName="")), sig) == ADDR
    # an explicit null is treated like a missing name
    assert recover_user_signed(dict(posted, agentName=None), sig) == ADDR
    # a named agent keeps its name in the signature
    named = {"type": "approveAgent", "agentAddress": agent.address, "agentName": "bot", "nonce": TS}
    sig_named = sdk.sign_agent(WALLET, named, True)
    assert recover_user_signed(wire(named), sig_named) == ADDR
    assert recover_user_signed(dict(wire(named), agentName=""), sig_named) != ADDR
    # our signer does the same with the name missing (signs "")
    ours = {"type": "approveAgent", "agentAddress": agent.address.lower(), "nonce": TS}
    ours_sig = sign_user_signed_action(PK, ours, False)
    assert "agentName" not in ours
    assert recover_user_signed(wire(ours), ours_sig) == ADDR


# ---------------------------------------------------------------------------------------------------------------------
# the unmodified SDK client, offline


SDK_META = {
    "universe": [
        {"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
        {"name": "ETH", "szDecimals": 4, "maxLeverage": 25},
    ]
}
SDK_SPOT_META: dict[str, Any] = {
    "universe": [{"name": "PURR/USDC", "tokens": [1, 0], "index": 0, "isCanonical": True}],
    "tokens": [
        {
            "name": "USDC",
            "szDecimals": 8,
            "weiDecimals": 8,
            "index": 0,
            "tokenId": "0x6d1e7cde53ba9467b783cb7c530ce054",
        },
        {
            "name": "PURR",
            "szDecimals": 0,
            "weiDecimals": 5,
            "index": 1,
            "tokenId": "0xc4bf3f870c0e9465323c0b6ed28096c2",
        },
    ],
}


def sdk_exchange(base_url: str, vault: str | None = None) -> tuple[Any, list[dict[str, Any]]]:
    from hyperliquid.exchange import Exchange

    ex = Exchange(WALLET, base_url, meta=SDK_META, spot_meta=SDK_SPOT_META, vault_address=vault)
    posted: list[dict[str, Any]] = []

    def capture(url_path: str, payload: Any = None) -> Any:
        assert url_path == "/exchange"
        posted.append(wire(payload))
        return {"status": "ok", "response": {"type": "default"}}

    ex.post = capture
    return ex, posted


@pytest.mark.parametrize("mainnet", [True, False])
@pytest.mark.parametrize("vault", [None, VAULT])
@pytest.mark.parametrize("expires", [None, TS + 3_600_000])
def test_sdk_client_requests_recover(mainnet: bool, vault: str | None, expires: int | None) -> None:
    ex, posted = sdk_exchange(MAINNET_API_URL if mainnet else TESTNET_API_URL, vault)
    ex.set_expires_after(expires)
    gtc: Any = {"limit": {"tif": "Gtc"}}
    ex.order("ETH", True, 0.0147, 1670.1, gtc)
    ex.order("BTC", False, 0.001, 60000.0, gtc, reduce_only=True, cloid=Cloid.from_int(7))
    ex.order("ETH", False, 1.0, 1500.0, {"trigger": {"triggerPx": 1550.0, "isMarket": True, "tpsl": "sl"}}, True)
    ex.order("PURR/USDC", True, 10.0, 0.2, {"limit": {"tif": "Alo"}}, builder={"b": BUILDER, "f": 5})
    ex.modify_order(12345, "ETH", True, 0.02, 1600.0, gtc)
    ex.bulk_modify_orders_new(
        [
            {
                "oid": Cloid.from_int(7),
                "order": {
                    "coin": "BTC",
                    "is_buy": False,
                    "sz": 0.002,
                    "limit_px": 61000.0,
                    "order_type": gtc,
                    "reduce_only": False,
                    "cloid": Cloid.from_int(7),
                },
            },
        ]
    )
    ex.cancel("ETH", 12345)
    ex.cancel_by_cloid("BTC", Cloid.from_int(7))
    ex.schedule_cancel(None)
    ex.schedule_cancel(TS + 60_000)
    ex.update_leverage(10, "ETH", is_cross=False)
    ex.update_isolated_margin(12.5, "ETH")
    ex.set_referrer("PERPBOX")
    ex.create_sub_account("sub1")
    ex.sub_account_transfer(VAULT, True, 1_000_000)
    ex.vault_usd_transfer(VAULT, False, 2_000_000)
    ex.noop(TS)
    if expires is None:  # user-signed actions do not support expiresAfter
        ex.usd_transfer(1.5, DEST)
        ex.spot_transfer(2.0, DEST, "PURR:0xc4bf3f870c0e9465323c0b6ed28096c2")
        ex.withdraw_from_bridge(3.0, DEST)
        ex.usd_class_transfer(4.0, True)
        ex.send_asset(DEST, "", "spot", "USDC:0x6d1e7cde53ba9467b783cb7c530ce054", 5.0)
        ex.token_delegate(DEST, 10**10, False)
        ex.approve_agent()
        ex.approve_agent("named-agent")
        ex.approve_builder_fee(BUILDER, "0.001%")
        ex.convert_to_multi_sig_user([DEST, OTHER_ADDR], 1)
        ex.user_dex_abstraction(ADDR, True)
        ex.user_set_abstraction(ADDR, "unifiedAccount")
    assert len(posted) >= 17
    for body in posted:
        assert set(body) == {"action", "nonce", "signature", "vaultAddress", "expiresAfter"}
        kind = body["action"]["type"]
        if vault is not None and kind in SDK_SIGNS_WITHOUT_VAULT:
            # SDK bug: signed with vault None, posted with the Exchange's vaultAddress.  The venue hashes what is
            # posted, so it recovers a stranger (hyperliquid-python-sdk issue #181: "works when vaultAddress is None")
            assert body["vaultAddress"] == vault
            assert server_recover(body, mainnet) != ADDR, kind
            assert server_recover(dict(body, vaultAddress=None), mainnet) == ADDR, kind
        else:
            assert server_recover(body, mainnet) == ADDR, kind
    if expires is None:
        unnamed = next(b["action"] for b in posted if b["action"]["type"] == "approveAgent")
        assert "agentName" not in unnamed  # the quirk really happens
        assert unnamed["agentAddress"] != unnamed["agentAddress"].lower()  # and the SDK posts a checksummed address


# SDK 0.24.0 methods that sign with vault None but post ``vaultAddress = Exchange.vault_address``
SDK_SIGNS_WITHOUT_VAULT = {
    "setReferrer",
    "createSubAccount",
    "subAccountTransfer",
    "subAccountSpotTransfer",
    "vaultTransfer",
}


# ---------------------------------------------------------------------------------------------------------------------
# ccxt, offline


CCXT_META = [
    {
        "universe": [
            {"name": "BTC", "szDecimals": 5, "maxLeverage": 40},
            {"name": "ETH", "szDecimals": 4, "maxLeverage": 25},
        ]
    },
    [
        {
            "dayNtlVlm": "1",
            "funding": "0.0",
            "impactPxs": ["60000.0", "60001.0"],
            "markPx": "60000.0",
            "midPx": "60000.5",
            "openInterest": "1",
            "oraclePx": "60000.0",
            "premium": "0.0",
            "prevDayPx": "60000.0",
        },
        {
            "dayNtlVlm": "1",
            "funding": "0.0",
            "impactPxs": ["2000.0", "2000.1"],
            "markPx": "2000.0",
            "midPx": "2000.05",
            "openInterest": "1",
            "oraclePx": "2000.0",
            "premium": "0.0",
            "prevDayPx": "2000.0",
        },
    ],
]


def ccxt_exchange(sandbox: bool) -> tuple[Any, list[dict[str, Any]]]:
    ccxt = pytest.importorskip("ccxt")
    ex = ccxt.hyperliquid({"privateKey": PK, "walletAddress": ADDR, "options": {"fetchMarkets": {"types": ["swap"]}}})
    if sandbox:
        ex.set_sandbox_mode(True)
    posted: list[dict[str, Any]] = []

    def info(request: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if request.get("type") == "metaAndAssetCtxs":
            return CCXT_META
        if request.get("type") == "userAbstraction":
            return "disabled"
        return {}

    def exchange(request: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        posted.append(wire(request))
        return {"status": "ok", "response": {"type": "default", "data": {"statuses": [{"resting": {"oid": 1}}]}}}

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network access attempted")

    ex.publicPostInfo = info
    ex.privatePostExchange = exchange
    ex.fetch = no_network
    ex.load_markets()
    return ex, posted


@pytest.mark.parametrize("sandbox", [False, True])
def test_ccxt_client_requests_recover(sandbox: bool) -> None:
    ex, posted = ccxt_exchange(sandbox)
    ex.create_order(
        "ETH/USDC:USDC", "limit", "buy", 0.01, 2000, {"clientOrderId": "0x00000000000000000000000000000001"}
    )
    ex.create_order("ETH/USDC:USDC", "limit", "sell", 0.01, 2100, {"vaultAddress": VAULT})
    ex.create_order("BTC/USDC:USDC", "market", "buy", 0.001, 60000, {"reduceOnly": True})
    ex.cancel_order("123", "ETH/USDC:USDC")
    ex.set_leverage(5, "ETH/USDC:USDC", {"marginMode": "isolated"})
    ex.transfer("USDC", 1, "spot", "swap")
    kinds = [b["action"]["type"] for b in posted]
    for expected in ("approveBuilderFee", "setReferrer", "order", "cancel", "updateLeverage", "usdClassTransfer"):
        assert expected in kinds
    vaulted = [b for b in posted if b.get("vaultAddress")]
    assert vaulted and all(not b["vaultAddress"].startswith("0x") for b in vaulted)  # ccxt strips the prefix
    for body in posted:
        assert server_recover(body, not sandbox) == ADDR, body["action"]["type"]
        if not is_user_signed(body["action"]):
            cands = recover_l1_candidates(
                body["action"], body.get("vaultAddress"), body["nonce"], body.get("expiresAfter"), body["signature"]
            )
            assert cands["b" if sandbox else "a"] == ADDR and cands["a" if sandbox else "b"] != ADDR
    # orders carry the builder once approveBuilderFee "succeeded"
    assert any("builder" in b["action"] for b in posted if b["action"]["type"] == "order")


def test_ccxt_sign_l1_action_directly() -> None:
    ex, _ = ccxt_exchange(False)
    action = order_action(asset=1, cloid="0x00000000000000000000000000000003")
    sig = ex.sign_l1_action(action, TS, VAULT[2:])  # ccxt passes the vault without 0x
    assert len(sig["r"]) == 66 and len(sig["s"]) == 66  # zero-padded, unlike the SDK
    assert recover_l1(action, VAULT[2:], TS, None, sig, "a") == ADDR
    ours = sign_l1_action(PK, action, VAULT, TS, None, True)
    assert (int(sig["r"], 16), int(sig["s"], 16), sig["v"]) == (int(ours["r"], 16), int(ours["s"], 16), ours["v"])
    assert ex.action_hash(action, VAULT[2:], TS, TS + 5) == action_hash(action, VAULT, TS, TS + 5)
    assert ex.action_hash(action, None, TS, None) == action_hash(action, None, TS, None)


# ---------------------------------------------------------------------------------------------------------------------
# malformed input


def _invalid_x() -> int:
    """Smallest r that is not the x-coordinate of a curve point: recovery must fail."""
    p = 2**256 - 2**32 - 977
    x = 1
    while pow(x**3 + 7, (p - 1) // 2, p) == 1:
        x += 1
    return x


GOOD_SIG = sign_l1_action(PK, {"type": "noop"}, None, TS, None, True)
BAD_SIGNATURES: list[Any] = [
    None,
    [],
    "0xdeadbeef",
    42,
    {},
    {"r": GOOD_SIG["r"], "s": GOOD_SIG["s"]},
    {"r": GOOD_SIG["r"], "v": 27},
    {"s": GOOD_SIG["s"], "v": 27},
    dict(GOOD_SIG, v="27"),
    dict(GOOD_SIG, v="0x1b"),
    dict(GOOD_SIG, v=27.0),
    dict(GOOD_SIG, v=True),
    dict(GOOD_SIG, v=None),
    dict(GOOD_SIG, v=2),
    dict(GOOD_SIG, v=29),
    dict(GOOD_SIG, v=-1),
    dict(GOOD_SIG, v=37),  # EIP-155 v: eth_account takes it, the venue's 27/28 does not
    dict(GOOD_SIG, r=int(GOOD_SIG["r"], 16)),
    dict(GOOD_SIG, r=None),
    dict(GOOD_SIG, r=b"\x01" * 32),
    dict(GOOD_SIG, r=""),
    dict(GOOD_SIG, r="0x"),
    dict(GOOD_SIG, r="0xzz"),
    dict(GOOD_SIG, r=" " + GOOD_SIG["r"]),
    dict(GOOD_SIG, r=GOOD_SIG["r"] + "\n"),
    dict(GOOD_SIG, r="0x1_0"),
    dict(GOOD_SIG, r="-0x1"),
    dict(GOOD_SIG, r="0x" + "1" * 65),
    dict(GOOD_SIG, r="0x0"),
    dict(GOOD_SIG, s="0x" + "0" * 64),
    dict(GOOD_SIG, r=hex(SECP256K1_N)),
    dict(GOOD_SIG, s=hex(SECP256K1_N)),
    dict(GOOD_SIG, s="0x" + "f" * 64),
    dict(GOOD_SIG, r=hex(_invalid_x())),
]


@pytest.mark.parametrize("sig", BAD_SIGNATURES, ids=range(len(BAD_SIGNATURES)))
def test_malformed_signatures_raise_unable_to_recover(sig: Any) -> None:
    user_action = dict(SAMPLE_USER_ACTIONS["usdSend"], signatureChainId="0x66eee", hyperliquidChain="Mainnet")
    calls = [
        lambda: recover_l1({"type": "noop"}, None, TS, None, sig, "a"),
        lambda: recover_l1_candidates({"type": "noop"}, VAULT, TS, TS, sig),
        lambda: recover_user_signed(user_action, sig),
        lambda: signing.recover_digest(bytes(32), sig),
    ]
    for call in calls:
        with pytest.raises(SignatureError) as info:
            call()
        assert type(info.value) is SignatureError
        assert str(info.value) == UNABLE_TO_RECOVER == "Unable to recover signer."


class Unpackable:
    pass


@pytest.mark.parametrize(
    ("action", "vault", "nonce", "expires"),
    [
        ({"type": "x", "o": Unpackable()}, None, TS, None),
        ({"type": "x", "n": 2**64}, None, TS, None),
        ({"type": "x", "n": -(2**63) - 1}, None, TS, None),
        ({"type": "noop"}, None, -1, None),
        ({"type": "noop"}, None, 2**64, None),
        ({"type": "noop"}, None, "1713825891591", None),
        ({"type": "noop"}, None, float(TS), None),
        ({"type": "noop"}, None, True, None),
        ({"type": "noop"}, None, None, None),
        ({"type": "noop"}, "0x1234", TS, None),
        ({"type": "noop"}, "0x" + "g" * 40, TS, None),
        ({"type": "noop"}, 12345, TS, None),
        ({"type": "noop"}, VAULT + "00", TS, None),
        ({"type": "noop"}, None, TS, -5),
        ({"type": "noop"}, None, TS, "soon"),
        ({"type": "noop"}, None, TS, 2**64),
    ],
)
def test_malformed_l1_envelope_raises_signature_error(action: Any, vault: Any, nonce: Any, expires: Any) -> None:
    for call in (
        lambda: action_hash(action, vault, nonce, expires),
        lambda: recover_l1(action, vault, nonce, expires, GOOD_SIG, "a"),
        lambda: recover_l1_candidates(action, vault, nonce, expires, GOOD_SIG),
    ):
        with pytest.raises(SignatureError) as info:
            call()
        assert str(info.value) == FAILED_TO_DESERIALIZE


def _user(kind: str, **changes: Any) -> dict[str, Any]:
    action = dict(SAMPLE_USER_ACTIONS[kind], signatureChainId="0x66eee", hyperliquidChain="Mainnet")
    for key, value in changes.items():
        if value is KeyError:
            del action[key]
        else:
            action[key] = value
    return action


@pytest.mark.parametrize(
    "action",
    [
        _user("usdSend", signatureChainId=KeyError),
        _user("usdSend", signatureChainId=421614),
        _user("usdSend", signatureChainId=""),
        _user("usdSend", signatureChainId="0x"),
        _user("usdSend", signatureChainId="0xzz"),
        _user("usdSend", signatureChainId="0x" + "1" * 65),
        _user("usdSend", signatureChainId=None),
        _user("usdSend", hyperliquidChain=KeyError),
        _user("usdSend", hyperliquidChain=1),
        _user("usdSend", time="1713825891591"),
        _user("usdSend", time=-1),
        _user("usdSend", time=2**64),
        _user("usdSend", time=1.5),
        _user("usdSend", time=True),
        _user("usdSend", amount=1),
        _user("usdSend", destination=None),
        _user("usdSend", destination="\ud800"),
        _user("usdClassTransfer", toPerp="true"),
        _user("usdClassTransfer", toPerp=1),
        _user("approveAgent", agentAddress="0x1234"),
        _user("approveAgent", agentAddress=None),
        _user("approveAgent", agentName=5),
        _user("approveBuilderFee", builder="0x" + "z" * 40),
        _user("tokenDelegate", wei="100"),
        _user("userDexAbstraction", enabled=None),
        {"type": "order", "signatureChainId": "0x66eee"},
        {"type": "multiSig", "signatureChainId": "0x66eee"},
        {"signatureChainId": "0x66eee"},
        {"type": 5},
        "not a dict",
        None,
    ],
)
def test_malformed_user_signed_action_raises_signature_error(action: Any) -> None:
    with pytest.raises(SignatureError) as info:
        recover_user_signed(action, GOOD_SIG)
    assert str(info.value) == FAILED_TO_DESERIALIZE
    with pytest.raises(SignatureError):
        user_signed_digest(action)


def test_signature_chain_id_forms() -> None:
    action = _user("usdSend")
    sig = sign_user_signed_action(PK, action, True)
    for form in ("0x66eee", "0x66EEE", "0X66eee", "66eee", "0x00066eee"):
        assert recover_user_signed(dict(action, signatureChainId=form), sig) == ADDR
    assert recover_user_signed(dict(action, signatureChainId="0xa4b1"), sig) != ADDR
    assert recover_user_signed(dict(action, hyperliquidChain="Testnet"), sig) != ADDR


def test_is_user_signed() -> None:
    for kind in USER_SIGNED_TYPES:
        assert is_user_signed({"type": kind})
    for action in [order_action(), {"type": "noop"}, {"type": "multiSig"}, {}, {"type": None}, [], None, "usdSend"]:
        assert not is_user_signed(action)


def test_normalise_address() -> None:
    assert normalise_address(None) is None
    assert normalise_address("") is None
    for form in VAULT_FORMS:
        assert normalise_address(form) == VAULT
    assert normalise_address(BUILDER) == BUILDER.lower()
    for bad in ["0x", "0x123", VAULT + "0", "0x" + "g" * 40, " " + VAULT, 123, b"\x00" * 20, "0x" + "0" * 41]:
        with pytest.raises(ValueError) as info:
            normalise_address(bad)  # type: ignore[arg-type]
        assert type(info.value) is ValueError


def test_bad_private_keys() -> None:
    for bad in ["0x", "0x" + "00" * 32, hex(SECP256K1_N), "0x" + "zz" * 32, "0x" + "11" * 31, 5]:
        with pytest.raises(ValueError):
            sign_l1_action(bad, {"type": "noop"}, None, TS, None, True)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------------------
# properties


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
actions = st.dictionaries(st.text(max_size=8), json_values, max_size=5).map(lambda d: {"type": "x", **d})
u64 = st.integers(min_value=0, max_value=2**64 - 1)
addresses = st.binary(min_size=20, max_size=20)
private_keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: f"0x{k:064x}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    action=actions,
    nonce=u64,
    vault=st.none() | addresses,
    vault_style=st.sampled_from(["0x", "", "0X-upper"]),
    expires=st.none() | u64,
    mainnet=st.booleans(),
)
def test_property_l1_sign_recover_identity(
    action: dict, nonce: int, vault: bytes | None, vault_style: str, expires: int | None, mainnet: bool
) -> None:
    vault_hex = None if vault is None else "0x" + vault.hex()
    sig = sign_l1_action(PK, action, vault_hex, nonce, expires, mainnet)
    posted_vault = None
    if vault is not None:
        posted_vault = {"0x": vault_hex, "": vault.hex(), "0X-upper": "0X" + vault.hex().upper()}[vault_style]
    source = "a" if mainnet else "b"
    assert recover_l1(wire(action), posted_vault, nonce, expires, wire(sig), source) == ADDR
    assert action_hash(action, vault_hex, nonce, expires) == sdk.action_hash(action, vault_hex, nonce, expires)


@settings(max_examples=40, deadline=None)
@given(key=private_keys, action=actions, nonce=u64, mainnet=st.booleans())
def test_property_any_key_matches_the_sdk(key: str, action: dict, nonce: int, mainnet: bool) -> None:
    wallet = Account.from_key(key)
    sig = sign_l1_action(key, action, None, nonce, None, mainnet)
    assert sig == sdk.sign_l1_action(wallet, action, None, nonce, None, mainnet)
    assert recover_l1(action, None, nonce, None, sig, "a" if mainnet else "b") == wallet.address.lower()


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(sorted(USER_SIGNED_TYPES)),
    strings=st.text(max_size=20),
    number=u64,
    flag=st.booleans(),
    address=addresses,
    chain_id=st.integers(min_value=0, max_value=2**256 - 1),
)
def test_property_user_signed_digest_equals_eth_account(
    kind: str, strings: str, number: int, flag: bool, address: bytes, chain_id: int
) -> None:
    _, fields = USER_SIGNED_TYPES[kind]
    value = {"string": strings, "uint64": number, "bool": flag, "address": "0x" + address.hex()}
    action: dict[str, Any] = {"type": kind, "signatureChainId": hex(chain_id)}
    for name, sol_type in fields:
        action[name] = value[sol_type]
    payload = sdk.user_signed_payload(*sdk_types(kind), action)
    digest = user_signed_digest(action)
    assert digest == eip712_digest(payload)
    sig = sdk.sign_inner(Account.from_key(OTHER_PK), payload)
    assert recover_user_signed(action, sig) == OTHER_ADDR == eth_account_recover(payload, sig)


signature_junk = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "r": st.one_of(st.text(max_size=70), st.integers(), st.none(), u64.map(hex)),
            "s": st.one_of(st.text(max_size=70), st.integers(), st.none(), st.integers(0, 2**257).map(hex)),
            "v": st.one_of(st.integers(-3, 40), st.text(max_size=3), st.booleans(), st.none()),
        }
    ),
)


@settings(max_examples=300, deadline=None)
@given(sig=signature_junk)
def test_property_junk_signatures_only_ever_raise_signature_error(sig: Any) -> None:
    try:
        got = recover_l1({"type": "noop"}, None, TS, None, sig, "a")
    except SignatureError as exc:
        assert str(exc) == UNABLE_TO_RECOVER
    else:
        assert got.startswith("0x") and len(got) == 42 and got == got.lower()


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=400))
def test_property_keccak_matches_eth_utils(data: bytes) -> None:
    assert signing.keccak256(data) == keccak(data)


def test_recovery_is_thread_safe() -> None:
    cases = []
    for i in range(40):
        action = order_action(asset=i)
        cases.append((action, TS + i, sign_l1_action(PK if i % 2 else OTHER_PK, action, None, TS + i, None, True)))
    errors: list[str] = []

    def worker() -> None:
        for _ in range(10):
            for i, (action, nonce, sig) in enumerate(cases):
                want = ADDR if i % 2 else OTHER_ADDR
                if recover_l1(action, None, nonce, None, sig, "a") != want:
                    errors.append(f"case {i}")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_fallback_backends_without_coincurve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without coincurve (it only arrives with ccxt) the module falls back to eth_keys, and the keccak fallback is
    eth_utils; both give the same answers."""
    import importlib.util
    import sys

    monkeypatch.setitem(sys.modules, "coincurve", None)
    spec = importlib.util.spec_from_file_location("perpbox_signing_fallback", signing.__file__)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.RECOVERY_BACKEND == "eth_keys"
    mod.keccak256 = mod._slow_keccak
    _, action, vault, source, r, s, v = L1_VECTORS[8]  # the vault vector
    sig = {"r": r, "s": s, "v": v}
    assert mod.recover_l1(action, vault, 0, None, sig, source) == ADDR
    assert mod.sign_l1_action(PK, action, vault, 0, None, source == "a") == sig
    user = dict(SAMPLE_USER_ACTIONS["approveAgent"])
    user_sig = mod.sign_user_signed_action(PK, user, True)
    assert mod.recover_user_signed(wire(user), user_sig) == ADDR
    with pytest.raises(mod.SignatureError):
        mod.recover_l1(action, vault, 0, None, dict(sig, r=hex(_invalid_x())), source)
