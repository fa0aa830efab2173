"""Hyperliquid request signing: action hashing, EIP-712 digests, signer recovery and signing.

Implements reference §4 (hyperliquid-api.md) exactly as the venue and its clients do it:

* **L1 actions** (orders, cancels, leverage, most admin) are signed through a "phantom agent":
  ``connectionId = keccak(msgpack(action) ‖ nonce(8B) ‖ vault flag[+20B] ‖ [0x00 ‖ expiresAfter(8B)])`` and the
  EIP-712 message ``Agent(string source, bytes32 connectionId)`` in the fixed domain
  ``{name "Exchange", version "1", chainId 1337, verifyingContract 0x0}``; ``source`` is ``"a"`` (mainnet) or
  ``"b"`` (testnet).
* **User-signed actions** (transfers, agent/builder approvals, …, see :data:`USER_SIGNED_TYPES`) are signed as
  EIP-712 ``HyperliquidTransaction:*`` messages in the domain ``{name "HyperliquidSignTransaction", version "1",
  chainId int(action["signatureChainId"], 16), verifyingContract 0x0}``; the message is the action itself.

The EIP-712 digests are computed here directly (domain separators and type hashes precomputed at import) and the
public key is recovered with libsecp256k1 through ``coincurve`` when it is installed (``eth_keys`` otherwise).  The
tests check every digest and every recovery against ``eth_account.messages.encode_typed_data`` +
``Account.recover_message`` and against the hyperliquid SDK and ccxt signers.

Error convention: a signature that cannot be parsed or recovered raises ``SignatureError(UNABLE_TO_RECOVER)``
(``"Unable to recover signer."``, the venue's string).  A malformed *action/envelope* value (unpackable action, a
nonce that is not a u64, a bad ``vaultAddress``, a user-signed field of the wrong type, a bad ``signatureChainId``)
raises ``SignatureError(FAILED_TO_DESERIALIZE)``: the venue rejects those before looking at the signature, with the
HTTP 422 text ``"Failed to deserialize the JSON body into the target type"``.  No other exception type escapes the
recovery functions.

Recovered addresses are always ``"0x"`` + 40 lower-case hex digits.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

import msgpack  # type: ignore[import-untyped]
from eth_utils.crypto import keccak as _eth_keccak

__all__ = [
    "FAILED_TO_DESERIALIZE",
    "SECP256K1_N",
    "UNABLE_TO_RECOVER",
    "USER_SIGNED_CHAIN_ID",
    "USER_SIGNED_TYPES",
    "SignatureError",
    "action_hash",
    "is_user_signed",
    "l1_digest",
    "normalise_address",
    "recover_digest",
    "recover_l1",
    "recover_l1_candidates",
    "recover_user_signed",
    "sign_l1_action",
    "sign_user_signed_action",
    "user_signed_digest",
]

UNABLE_TO_RECOVER = "Unable to recover signer."
FAILED_TO_DESERIALIZE = "Failed to deserialize the JSON body into the target type"

SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
USER_SIGNED_CHAIN_ID = "0x66eee"  # 421614 (Arbitrum Sepolia), what the SDK and ccxt put in signatureChainId

_U64 = 1 << 64
_U256 = 1 << 256


class SignatureError(ValueError):
    """A request whose signer cannot be established; ``str(exc)`` is the message the venue would answer."""


# --------------------------------------------------------------------------------------------------------------------
# keccak-256
#
# ``eth_utils.keccak`` costs ~7-10 µs per call (pycryptodome's object wrapper plus eth_hash dispatch); a recovery needs
# four of them.  When pycryptodome runs on its cffi backend we drive its raw keccak state directly (one reusable state
# per thread: cffi releases the GIL during the calls), which costs ~3 µs.  The fast path is self-tested against
# eth_utils at import and we fall back to eth_utils on any doubt.


def _make_fast_keccak() -> Callable[[bytes], bytes] | None:
    try:
        from Crypto.Hash.keccak import _raw_keccak_lib as lib  # type: ignore[attr-defined]
        from Crypto.Util._raw_api import (  # type: ignore[attr-defined]
            SmartPointer,
            VoidPointer,
            backend,
            c_size_t,
            c_ubyte,
            create_string_buffer,
        )
        from Crypto.Util._raw_api import ffi as raw_ffi
    except Exception:  # pragma: no cover - pycryptodome layout changed or missing
        return None
    if backend != "cffi":  # pragma: no cover - ctypes backend: keep the public path
        return None

    tls = threading.local()
    reset, absorb, digest_fn, to_buffer = lib.keccak_reset, lib.keccak_absorb, lib.keccak_digest, raw_ffi.buffer

    def new_state() -> tuple[Any, Any, Any]:
        vp = VoidPointer()
        if lib.keccak_init(vp.address_of(), c_size_t(64), c_ubyte(24)):
            raise RuntimeError("keccak_init failed")
        owner = SmartPointer(vp.get(), lib.keccak_destroy)  # frees the C state with the thread-local
        state = (owner.get(), create_string_buffer(32), owner)  # type: ignore[call-arg]
        tls.state = state
        return state

    def keccak256(data: bytes) -> bytes:
        try:
            st, out, _ = tls.state
        except AttributeError:
            st, out, _ = new_state()
        reset(st)
        absorb(st, data, len(data))
        digest_fn(st, out, 32, 1)
        return to_buffer(out)[:]  # type: ignore[no-any-return]  # cffi buffer slices are bytes

    try:
        for probe in (b"", b"abc", bytes(range(256)) * 3):
            if keccak256(probe) != _eth_keccak(probe):
                return None  # pragma: no cover
    except Exception:  # pragma: no cover
        return None
    return keccak256


def _slow_keccak(data: bytes) -> bytes:
    return bytes(_eth_keccak(data))


keccak256: Callable[[bytes], bytes] = _make_fast_keccak() or _slow_keccak


# --------------------------------------------------------------------------------------------------------------------
# secp256k1 (coincurve = libsecp256k1 when available, eth_keys otherwise)

try:
    from coincurve import PrivateKey as _CCPrivateKey
    from coincurve import PublicKey as _CCPublicKey

    def _recover_pubkey(digest: bytes, rs: bytes, recid: int) -> bytes:
        """64-byte uncompressed public key (X‖Y) from a 32-byte digest and r‖s‖recid."""
        return _CCPublicKey.from_signature_and_message(rs + _RECID_BYTE[recid], digest, hasher=None).format(
            compressed=False
        )[1:]

    def _sign_digest(secret: bytes, digest: bytes) -> tuple[int, int, int]:
        sig = _private_key(secret).sign_recoverable(digest, hasher=None)
        return int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]

    def _make_private_key(secret: bytes) -> Any:
        return _CCPrivateKey(secret)

    RECOVERY_BACKEND = "coincurve"
except ImportError:  # coincurve arrives only with ccxt; tests load this branch with coincurve hidden
    from eth_keys.main import KeyAPI as _KeyAPI

    _keys = _KeyAPI()

    def _recover_pubkey(digest: bytes, rs: bytes, recid: int) -> bytes:
        sig = _keys.Signature(vrs=(recid, int.from_bytes(rs[:32], "big"), int.from_bytes(rs[32:], "big")))
        return bytes(sig.recover_public_key_from_msg_hash(digest).to_bytes())

    def _sign_digest(secret: bytes, digest: bytes) -> tuple[int, int, int]:
        sig = _private_key(secret).sign_msg_hash(digest)
        return sig.r, sig.s, sig.v

    def _make_private_key(secret: bytes) -> Any:
        return _keys.PrivateKey(secret)

    RECOVERY_BACKEND = "eth_keys"

_RECID_BYTE = (b"\x00", b"\x01")
_PRIVATE_KEYS: dict[bytes, Any] = {}
_ADDRESS_CACHE: dict[bytes, str] = {}  # public key -> address; signers are few, so this saves a keccak per request
_ADDRESS_CACHE_MAX = 1 << 16


def _private_key(secret: bytes) -> Any:
    key = _PRIVATE_KEYS.get(secret)
    if key is None:
        if len(_PRIVATE_KEYS) > 1024:
            _PRIVATE_KEYS.clear()
        key = _PRIVATE_KEYS[secret] = _make_private_key(secret)
    return key


def _address_of(pubkey: bytes) -> str:
    addr = _ADDRESS_CACHE.get(pubkey)
    if addr is None:
        if len(_ADDRESS_CACHE) >= _ADDRESS_CACHE_MAX:
            _ADDRESS_CACHE.clear()
        addr = _ADDRESS_CACHE[pubkey] = "0x" + keccak256(pubkey)[12:].hex()
    return addr


def _parse_private_key(private_key: str | bytes) -> bytes:
    if isinstance(private_key, bytes | bytearray):
        secret = bytes(private_key)
    elif isinstance(private_key, str):
        h = private_key[2:] if private_key[:2] in ("0x", "0X") else private_key
        if not _HEX64.fullmatch(h):
            raise ValueError("private key must be 32 bytes of hex")
        secret = bytes.fromhex(h)
    else:
        raise ValueError("private key must be a hex string or bytes")
    if len(secret) != 32 or not 0 < int.from_bytes(secret, "big") < SECP256K1_N:
        raise ValueError("private key out of range")
    return secret


# --------------------------------------------------------------------------------------------------------------------
# parsing helpers

_HEX_1_64 = re.compile(r"[0-9a-fA-F]{1,64}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX40 = re.compile(r"[0-9a-fA-F]{40}")


def normalise_address(addr: str | None) -> str | None:
    """``"0x"`` + 40 lower-case hex digits; accepts the prefix or not (ccxt strips it from ``vaultAddress``) and any
    case; ``None``/``""`` mean "no address".  Raises a plain ``ValueError`` on anything else."""
    if addr is None or addr == "":
        return None
    if not isinstance(addr, str):
        raise ValueError(f"invalid address: {addr!r}")
    h = addr[2:] if addr[:2] in ("0x", "0X") else addr
    if not _HEX40.fullmatch(h):
        raise ValueError(f"invalid address: {addr!r}")
    return "0x" + h.lower()


def _address_bytes(value: Any) -> bytes:
    """20 address bytes of a required address field (with or without 0x, any case)."""
    if not isinstance(value, str):
        raise SignatureError(FAILED_TO_DESERIALIZE)
    h = value[2:] if value[:2] in ("0x", "0X") else value
    if not _HEX40.fullmatch(h):
        raise SignatureError(FAILED_TO_DESERIALIZE)
    return bytes.fromhex(h)


def _u64(value: Any) -> int:
    if type(value) is not int or not 0 <= value < _U64:  # bool is not an int here
        raise SignatureError(FAILED_TO_DESERIALIZE)
    return value


def _parse_signature(signature: Any) -> tuple[bytes, int]:
    """(r‖s as 64 bytes, recovery id 0/1).  r/s: hex strings, ``0x`` optional, leading zeros optional; v: 27/28 or
    0/1 as a JSON integer.  Anything else -> ``SignatureError("Unable to recover signer.")``."""
    try:
        r_hex = signature["r"]
        s_hex = signature["s"]
        v = signature["v"]
    except Exception:
        raise SignatureError(UNABLE_TO_RECOVER) from None
    if type(v) is not int or type(r_hex) is not str or type(s_hex) is not str:
        raise SignatureError(UNABLE_TO_RECOVER)
    if v == 27 or v == 28:
        recid = v - 27
    elif v == 0 or v == 1:
        recid = v
    else:
        raise SignatureError(UNABLE_TO_RECOVER)
    if r_hex[:2] in ("0x", "0X"):
        r_hex = r_hex[2:]
    if s_hex[:2] in ("0x", "0X"):
        s_hex = s_hex[2:]
    if not (_HEX_1_64.fullmatch(r_hex) and _HEX_1_64.fullmatch(s_hex)):
        raise SignatureError(UNABLE_TO_RECOVER)
    r = int(r_hex, 16)
    s = int(s_hex, 16)
    # high-s is accepted, as eth_account and libsecp256k1 recovery do
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise SignatureError(UNABLE_TO_RECOVER)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big"), recid


def recover_digest(digest: bytes, signature: Mapping[str, Any]) -> str:
    """Address (lower-case) that signed the 32-byte EIP-712 ``digest`` with the wire ``signature`` dict."""
    rs, recid = _parse_signature(signature)
    try:
        pubkey = _recover_pubkey(digest, rs, recid)
    except Exception:
        raise SignatureError(UNABLE_TO_RECOVER) from None
    return _address_of(pubkey)


def _wire_signature(r: int, s: int, recid: int) -> dict[str, Any]:
    # like the SDK's ``to_hex(int)``: lower-case, leading zeros dropped
    return {"r": hex(r), "s": hex(s), "v": 27 + recid}


# --------------------------------------------------------------------------------------------------------------------
# EIP-712 building blocks

_EIP712_DOMAIN_TYPEHASH = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_ZERO32 = bytes(32)


def _domain_separator(name: str, chain_id: int) -> bytes:
    return keccak256(
        _EIP712_DOMAIN_TYPEHASH
        + keccak256(name.encode())
        + keccak256(b"1")
        + chain_id.to_bytes(32, "big")
        + _ZERO32  # verifyingContract 0x000…0
    )


_L1_DOMAIN_PREFIX = b"\x19\x01" + _domain_separator("Exchange", 1337)
_AGENT_TYPEHASH = keccak256(b"Agent(string source,bytes32 connectionId)")
_SOURCE_HASH = {"a": keccak256(b"a"), "b": keccak256(b"b")}


def l1_digest(connection_id: bytes, source: str) -> bytes:
    """EIP-712 digest of the phantom agent ``Agent{source, connectionId}`` in the L1 ``Exchange`` domain."""
    source_hash = _SOURCE_HASH.get(source) if type(source) is str else None
    if source_hash is None:
        if not isinstance(source, str):
            raise SignatureError(FAILED_TO_DESERIALIZE)
        source_hash = keccak256(source.encode())
    return keccak256(_L1_DOMAIN_PREFIX + keccak256(_AGENT_TYPEHASH + source_hash + connection_id))


# action type -> (primaryType, [(field, solidity type), ...]) — reference §4.3 table, SDK 0.24.0 / ccxt 4.5.90 types
USER_SIGNED_TYPES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "usdSend": (
        "HyperliquidTransaction:UsdSend",
        [("hyperliquidChain", "string"), ("destination", "string"), ("amount", "string"), ("time", "uint64")],
    ),
    "spotSend": (
        "HyperliquidTransaction:SpotSend",
        [
            ("hyperliquidChain", "string"),
            ("destination", "string"),
            ("token", "string"),
            ("amount", "string"),
            ("time", "uint64"),
        ],
    ),
    "withdraw3": (
        "HyperliquidTransaction:Withdraw",
        [("hyperliquidChain", "string"), ("destination", "string"), ("amount", "string"), ("time", "uint64")],
    ),
    "usdClassTransfer": (
        "HyperliquidTransaction:UsdClassTransfer",
        [("hyperliquidChain", "string"), ("amount", "string"), ("toPerp", "bool"), ("nonce", "uint64")],
    ),
    "sendAsset": (
        "HyperliquidTransaction:SendAsset",
        [
            ("hyperliquidChain", "string"),
            ("destination", "string"),
            ("sourceDex", "string"),
            ("destinationDex", "string"),
            ("token", "string"),
            ("amount", "string"),
            ("fromSubAccount", "string"),
            ("nonce", "uint64"),
        ],
    ),
    "approveAgent": (
        "HyperliquidTransaction:ApproveAgent",
        [("hyperliquidChain", "string"), ("agentAddress", "address"), ("agentName", "string"), ("nonce", "uint64")],
    ),
    "approveBuilderFee": (
        "HyperliquidTransaction:ApproveBuilderFee",
        [("hyperliquidChain", "string"), ("maxFeeRate", "string"), ("builder", "address"), ("nonce", "uint64")],
    ),
    "tokenDelegate": (
        "HyperliquidTransaction:TokenDelegate",
        [
            ("hyperliquidChain", "string"),
            ("validator", "address"),
            ("wei", "uint64"),
            ("isUndelegate", "bool"),
            ("nonce", "uint64"),
        ],
    ),
    "convertToMultiSigUser": (
        "HyperliquidTransaction:ConvertToMultiSigUser",
        [("hyperliquidChain", "string"), ("signers", "string"), ("nonce", "uint64")],
    ),
    "userDexAbstraction": (
        "HyperliquidTransaction:UserDexAbstraction",
        [("hyperliquidChain", "string"), ("user", "address"), ("enabled", "bool"), ("nonce", "uint64")],
    ),
    "userSetAbstraction": (
        "HyperliquidTransaction:UserSetAbstraction",
        [("hyperliquidChain", "string"), ("user", "address"), ("abstraction", "string"), ("nonce", "uint64")],
    ),
}

# defaults applied when a field is absent (or null): the SDK signs approveAgent with agentName "" and then deletes
# the key from the posted action (§4.3 quirk)
_FIELD_DEFAULTS: dict[str, dict[str, Any]] = {"approveAgent": {"agentName": ""}}

_USER_SIGNED_TYPEHASH: dict[str, bytes] = {
    kind: keccak256(f"{primary}({','.join(f'{t} {n}' for n, t in fields)})".encode())
    for kind, (primary, fields) in USER_SIGNED_TYPES.items()
}
_USER_DOMAIN_PREFIX: dict[int, bytes] = {}
_TRUE32 = (1).to_bytes(32, "big")


def _user_domain_prefix(chain_id: int) -> bytes:
    prefix = _USER_DOMAIN_PREFIX.get(chain_id)
    if prefix is None:
        if len(_USER_DOMAIN_PREFIX) > 256:
            _USER_DOMAIN_PREFIX.clear()
        prefix = _USER_DOMAIN_PREFIX[chain_id] = b"\x19\x01" + _domain_separator("HyperliquidSignTransaction", chain_id)
    return prefix


def _parse_chain_id(value: Any) -> int:
    if type(value) is not str:
        raise SignatureError(FAILED_TO_DESERIALIZE)
    h = value[2:] if value[:2] in ("0x", "0X") else value
    if not _HEX_1_64.fullmatch(h):
        raise SignatureError(FAILED_TO_DESERIALIZE)
    return int(h, 16)


def _encode_field(kind: str, value: Any) -> bytes:
    if kind == "string":
        if type(value) is not str:
            raise SignatureError(FAILED_TO_DESERIALIZE)
        try:
            return keccak256(value.encode("utf-8"))
        except UnicodeEncodeError:  # lone surrogate from a lenient JSON parser
            raise SignatureError(FAILED_TO_DESERIALIZE) from None
    if kind == "uint64":
        return _u64(value).to_bytes(32, "big")
    if kind == "address":
        return b"\x00" * 12 + _address_bytes(value)
    if kind == "bool":
        if type(value) is not bool:
            raise SignatureError(FAILED_TO_DESERIALIZE)
        return _TRUE32 if value else _ZERO32
    raise AssertionError(kind)  # pragma: no cover - table only holds the kinds above


def user_signed_digest(action: Mapping[str, Any]) -> bytes:
    """EIP-712 digest of a user-signed action: domain chainId from ``action["signatureChainId"]``, message fields per
    :data:`USER_SIGNED_TYPES` (extra keys ignored; a missing ``agentName`` is ``""``)."""
    kind = action.get("type") if isinstance(action, Mapping) else None
    spec = USER_SIGNED_TYPES.get(kind) if type(kind) is str else None
    if spec is None:
        raise SignatureError(FAILED_TO_DESERIALIZE)
    assert isinstance(kind, str)
    prefix = _user_domain_prefix(_parse_chain_id(action.get("signatureChainId")))
    defaults = _FIELD_DEFAULTS.get(kind, {})
    parts = [_USER_SIGNED_TYPEHASH[kind]]
    for name, sol_type in spec[1]:
        value = action.get(name)
        if value is None:
            if name not in defaults:
                raise SignatureError(FAILED_TO_DESERIALIZE)
            value = defaults[name]
        parts.append(_encode_field(sol_type, value))
    return keccak256(prefix + keccak256(b"".join(parts)))


# --------------------------------------------------------------------------------------------------------------------
# L1 actions


def action_hash(action: dict[str, Any], vault_address: str | None, nonce: int, expires_after: int | None) -> bytes:
    """``connectionId`` (§4.1): keccak of msgpack(action as given, key order kept) ‖ nonce ‖ vault ‖ expiresAfter."""
    try:
        data = msgpack.packb(action)
    except Exception:
        raise SignatureError(FAILED_TO_DESERIALIZE) from None
    data += _u64(nonce).to_bytes(8, "big")
    if vault_address is None or vault_address == "":
        data += b"\x00"
    else:
        data += b"\x01" + _address_bytes(vault_address)
    if expires_after is not None:
        data += b"\x00" + _u64(expires_after).to_bytes(8, "big")
    return keccak256(data)


def recover_l1(
    action: dict[str, Any],
    vault_address: str | None,
    nonce: int,
    expires_after: int | None,
    signature: Mapping[str, Any],
    source: str,
) -> str:
    """Signer (user or agent) of an L1 action signed for ``source`` ``"a"`` (mainnet) or ``"b"`` (testnet)."""
    rs, recid = _parse_signature(signature)  # cheap checks first
    digest = l1_digest(action_hash(action, vault_address, nonce, expires_after), source)
    try:
        pubkey = _recover_pubkey(digest, rs, recid)
    except Exception:
        raise SignatureError(UNABLE_TO_RECOVER) from None
    return _address_of(pubkey)


def recover_l1_candidates(
    action: dict[str, Any],
    vault_address: str | None,
    nonce: int,
    expires_after: int | None,
    signature: Mapping[str, Any],
) -> dict[str, str]:
    """``{"a": signer if mainnet-signed, "b": signer if testnet-signed}``; the action is hashed once.  Exactly one of
    the two is the real signer: a wrong source recovers an unrelated address.  Costs two recoveries; a server that
    knows its network should call :func:`recover_l1` instead."""
    rs, recid = _parse_signature(signature)
    connection_id = action_hash(action, vault_address, nonce, expires_after)
    out: dict[str, str] = {}
    for source in ("a", "b"):
        try:
            pubkey = _recover_pubkey(l1_digest(connection_id, source), rs, recid)
        except Exception:
            raise SignatureError(UNABLE_TO_RECOVER) from None
        out[source] = _address_of(pubkey)
    return out


def is_user_signed(action: Any) -> bool:
    """True for the action types signed as ``HyperliquidTransaction:*`` EIP-712 messages (not via the phantom agent)."""
    if not isinstance(action, Mapping):
        return False
    kind = action.get("type")
    return type(kind) is str and kind in USER_SIGNED_TYPES


def recover_user_signed(action: dict[str, Any], signature: Mapping[str, Any]) -> str:
    """Signer of a user-signed action (this is the acting user: agents cannot sign these)."""
    rs, recid = _parse_signature(signature)
    digest = user_signed_digest(action)
    try:
        pubkey = _recover_pubkey(digest, rs, recid)
    except Exception:
        raise SignatureError(UNABLE_TO_RECOVER) from None
    return _address_of(pubkey)


# --------------------------------------------------------------------------------------------------------------------
# signing (perpbox's own clients and tests)


def read_key_file(text: str) -> str:
    """The hex private key in a key file (``0x…``, as a wallet exports it), checked; the error
    never repeats the file's content."""
    key = text.strip()
    try:
        _parse_private_key(key)
    except (ValueError, TypeError):
        raise ValueError("the key file must hold one hex private key (0x…)") from None
    return key


def sign_l1_action(
    private_key: str | bytes,
    action: dict[str, Any],
    vault_address: str | None,
    nonce: int,
    expires_after: int | None,
    is_mainnet: bool,
) -> dict[str, Any]:
    """``{"r", "s", "v"}`` for an L1 action, byte-identical to the SDK's ``sign_l1_action`` (RFC 6979, low-s)."""
    digest = l1_digest(action_hash(action, vault_address, nonce, expires_after), "a" if is_mainnet else "b")
    return _wire_signature(*_sign_digest(_parse_private_key(private_key), digest))


def sign_user_signed_action(private_key: str | bytes, action: dict[str, Any], is_mainnet: bool) -> dict[str, Any]:
    """Sign a user-signed action like the SDK: sets ``signatureChainId = "0x66eee"`` and ``hyperliquidChain`` in the
    action *in place*, then signs the ``HyperliquidTransaction:*`` message for ``action["type"]``."""
    action["signatureChainId"] = USER_SIGNED_CHAIN_ID
    action["hyperliquidChain"] = "Mainnet" if is_mainnet else "Testnet"
    digest = user_signed_digest(action)
    return _wire_signature(*_sign_digest(_parse_private_key(private_key), digest))
