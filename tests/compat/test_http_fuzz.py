"""Hostile input over every HTTP endpoint of ``perpbox serve``, with rate limits off and on.

For every body hypothesis makes — wrong types, huge and deep values, ``inf``/``nan``/``1e400`` in
strings and as JSON numbers, big integers, unicode and lone surrogates, raw binary — POSTed to
``/info`` (every request type), ``/exchange`` (every action type, unsigned and signed by a funded
wallet) and ``/dev/fund``: the answer is below HTTP 500, comes within ``REPLY_S`` seconds (the
client's timeout), and the server process is still running; after each test the server still
answers.  A second part pins the cases the hardening issue saw (each with its status and text)
and the faucet's exact decimal amounts.  One server per setting (limits off / on) for the module;
the WebSocket is fuzzed elsewhere.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from perpbox.api.info import InfoAPI
from perpbox.api.signing import sign_l1_action, sign_user_signed_action
from perpbox.exchange import Exchange
from perpbox.store.readmodels import ReadModels
from property.profiles import COMMON, PROFILE

from .conftest import Server

REPLY_S = 5.0
EXAMPLES = 60 if PROFILE == "ci" else 8
FUZZ = settings(max_examples=EXAMPLES, **COMMON)
DESERIALIZE = "Failed to deserialize the JSON body into the target type"
WALLET = Account.from_key("0x" + "5a" * 32)
USER = WALLET.address.lower()
INFO_TYPES = sorted(InfoAPI(Exchange(), ReadModels(), lambda: 0).handlers)
ACTION_TYPES = ["order", "cancel", "cancelByCloid", "modify", "batchModify", "scheduleCancel", "updateLeverage",
                "updateIsolatedMargin", "approveAgent", "approveBuilderFee", "setReferrer", "noop", "usdSend",
                "withdraw3", "usdClassTransfer", "createSubAccount", "subAccountTransfer", "perpDeploy",
                "vaultTransfer", "twapOrder", "spotSend", "__class__", ""]
FIELDS = ["type", "user", "coin", "oid", "oids", "dex", "startTime", "endTime", "nSigFigs", "mantissa", "req",
          "interval", "builder", "id", "aggregateByTime", "action", "nonce", "signature", "vaultAddress",
          "expiresAfter", "usd",
          "orders", "cancels", "modifies", "grouping", "a", "b", "p", "s", "r", "t", "c", "o", "limit", "tif",
          "trigger", "isMarket", "triggerPx", "tpsl", "asset", "isBuy", "leverage", "isCross", "ntli", "time",
          "destination", "amount", "agentAddress", "agentName", "maxFeeRate", "registerAsset2", "setOracle",
          "hyperliquidChain", "signatureChainId", "subAccountUser", "name", "toPerp", "code", "f"]
ADDRESSES = [USER, USER.upper().replace("0X", "0x"), "0x" + "0" * 40, "0x" + "g" * 40, "0x" + "\u0660" * 40,
             "0x" + "_" * 40, "0x0x" + "1" * 38, "0x-" + "1" * 39, "0x " + "1" * 39, "0x" + "1" * 41, "0x", ""]
STRINGS = ["BTC", "ETH", "xyz:XYZ100", "xyz", "1m", "1M", "Gtc", "Ioc", "Alo", "tp", "sl", "na", "normalTpsl",
           "inf", "-inf", "nan", "NaN", "1e400", "-1", "0", "0.1", "1" * 100, "0x" + "ab" * 16, "Mainnet", "Testnet",
           "\u0000", "\ud7ff\ue000", "\u202e", "💥", "x" * 2000]
NUMBERS = ["1e400", "-1e400", "1e-400", "1" * 400, "-0", "0.0", "1.5e308", "18446744073709551616",
           "18446744073709551615", "9223372036854775808", "-9223372036854775809", "1E2", "-1", "0"]
BAD_TOKENS = ["NaN", "Infinity", "-Infinity", "0x10", "01", "1.", ".5", "+1", '"\\ud800"', "'a'", "undefined"]


# -- raw JSON text (so that numbers like 1e400 reach the server as written) ----------------------------------------
def _text(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


leaf = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(NUMBERS),
    st.sampled_from(ADDRESSES + STRINGS).map(_text),
    st.text(max_size=20).map(_text),
)
key = st.one_of(st.sampled_from(FIELDS), st.text(max_size=8))
json_text = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ",".join(xs) + "]"),
        st.lists(st.tuples(key, inner), max_size=4).map(
            lambda kvs: "{" + ",".join(f"{_text(k)}:{v}" for k, v in kvs) + "}"),
    ),
    max_leaves=12,
)
# a value nested deeper than the venue's limit of 128, for any field of an envelope: about 1,000 is
# past Python's recursion limit (a repr or a recursive walk fails) but within orjson's 1,024
deep_text = st.builds(lambda depth, opener: opener * depth + "1" + ("]" if opener == "[" else "}") * depth,
                      st.one_of(st.sampled_from([1_000, 1_020, 129, 1_500]), st.integers(100, 1_500)),
                      st.sampled_from(["[", '{"a":']))
hostile = st.one_of(json_text, deep_text)


def _object(fields: list[tuple[str, str]]) -> bytes:
    return ("{" + ",".join(f"{_text(k)}:{v}" for k, v in fields) + "}").encode("utf-8", "surrogatepass")


plausible = st.sampled_from([_text(USER), '"BTC"', '"xyz:XYZ100"', '"xyz"', "0", "1", "2", "5", '"1m"', "1700000000000",
                             "18446744073709551615", "-1", '"0x' + "ab" * 16 + '"',
                             '{"coin": "BTC", "interval": "1m", "startTime": 0}'])
info_body = st.builds(
    lambda kind, user, fields: _object([("type", kind), ("user", user), *fields]),
    st.tuples(st.integers(0, 5), st.sampled_from(INFO_TYPES).map(_text), json_text,
              st.sampled_from(["[]", "[1, 2, 3]", "{}", '{"type": "meta"}', "null", "true", "0", "1e400", '""'])).map(
        lambda t: t[2] if t[0] == 5 else t[3] if t[0] == 4 else t[1]),  # a real type four times in six
    st.tuples(st.integers(0, 2), st.sampled_from(ADDRESSES).map(_text), json_text).map(
        lambda t: _text(USER) if t[0] == 0 else t[t[0]]),
    st.lists(st.tuples(st.one_of(st.sampled_from(FIELDS[1:]), st.text(max_size=8)),
                       st.one_of(plausible, hostile, st.sampled_from(ADDRESSES).map(_text))), max_size=5),
)
fund_body = st.builds(
    lambda user, usd, extra: _object([("user", user), ("usd", usd), *extra]),
    st.one_of(st.just(_text(USER)), st.sampled_from(ADDRESSES).map(_text), json_text),
    st.one_of(st.sampled_from(["inf", "-inf", "nan", "Infinity", "1e400", "1e-400"]).map(_text),
              st.sampled_from(["1000", "0.000001", "0.0000001", "-5", "10000001", " 7 ", "1_000", "٣"]).map(_text),
              st.sampled_from(NUMBERS), json_text),
    st.lists(st.tuples(key, hostile), max_size=2),
)
SIGNATURE = '{"r": "0x' + "1" * 64 + '", "s": "0x' + "2" * 64 + '", "v": 27}'
action_key = st.one_of(st.sampled_from(FIELDS[1:]), st.text(max_size=8).filter(lambda k: k != "type"))
action_text = st.builds(lambda kind, fields: _object([("type", kind), *fields]).decode(),
                        st.sampled_from(ACTION_TYPES).map(_text), st.lists(st.tuples(action_key, hostile), max_size=4))
# a plausible envelope (an action object, an integer nonce, a signature object) with one field made
# hostile or left out, so that the checks after the first ones are reached too
unsigned_exchange_body = st.builds(
    lambda action, fields, bad: _object([(k, v) for k, v in {"action": action, **fields, **bad}.items()
                                         if v is not None]),
    st.tuples(st.integers(0, 3), action_text, json_text).map(lambda t: t[2] if t[0] == 3 else t[1]),
    st.fixed_dictionaries({
        "nonce": st.sampled_from(["1", "1700000000000", "18446744073709551615", "-1"]),
        "signature": st.sampled_from([SIGNATURE, "{}", '{"r": "0x1", "s": "0x2", "v": 99}']),
        "vaultAddress": st.sampled_from(["null", _text(USER), _text("0x" + "0" * 40), '"0x"', '""']),
        "expiresAfter": st.sampled_from(["null", "1", "18446744073709551615"])}),
    st.dictionaries(st.sampled_from(["action", "nonce", "signature", "vaultAddress", "expiresAfter"]),
                    st.one_of(hostile, st.none()), max_size=1),
)
deep_body = st.builds(lambda depth, opener: (opener * depth + b"1" + (b"]" if opener == b"[" else b"}") * depth),
                      st.integers(min_value=1, max_value=3_000), st.sampled_from([b"[", b'{"a":']))
raw_body = st.one_of(st.binary(max_size=64), st.sampled_from(BAD_TOKENS).map(str.encode),
                     json_text.map(lambda t: t.encode("utf-8", "surrogatepass")), deep_body)

# -- Python values for signed actions (the server then checks everything after the signature) --------------------
value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**64), max_value=2**64),
              st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(ADDRESSES + STRINGS),
              st.text(max_size=10)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(key, inner, max_size=3)),
    max_leaves=10,
)
plausible_order = st.fixed_dictionaries({
    "a": st.one_of(st.sampled_from([0, 1, 110000, 999, -1, 2**63]), value),
    "b": st.one_of(st.booleans(), value), "p": st.one_of(st.sampled_from(["95000", "0", "1e5", "-1", "inf"]), value),
    "s": st.one_of(st.sampled_from(["0.001", "0", "1e-3", "nan", "1" * 90]), value),
    "r": st.one_of(st.booleans(), value),
    "t": st.one_of(st.just({"limit": {"tif": "Gtc"}}), st.just({"trigger": {"triggerPx": "1", "isMarket": True,
                                                                            "tpsl": "tp"}}), value),
}, optional={"c": st.one_of(st.just("0x" + "ab" * 16), value)})
signed_action = st.builds(
    lambda kind, fields, orders: {"type": kind, **fields, **({"orders": orders} if kind == "order" else {})},
    st.sampled_from(ACTION_TYPES),
    st.dictionaries(st.sampled_from(FIELDS[1:]), value, max_size=4),
    st.lists(plausible_order, max_size=3),
)
_nonces = itertools.count()


def _signed(action: dict[str, Any], vault: Any) -> bytes:
    nonce = int(time.time() * 1000) + next(_nonces)
    try:
        if action["type"] in ("usdSend", "withdraw3", "approveAgent", "approveBuilderFee", "usdClassTransfer"):
            action.setdefault("nonce", nonce)
            action.setdefault("time", nonce)
            sig = sign_user_signed_action(WALLET.key.hex(), action, False)
        else:
            sig = sign_l1_action(WALLET.key.hex(), action, vault if isinstance(vault, str) else None, nonce, None,
                                 False)
    except Exception:  # a value the signer cannot encode: sent with a made-up signature
        sig = {"r": "0x" + "1" * 64, "s": "0x" + "2" * 64, "v": 27}
    return json.dumps({"action": action, "nonce": nonce, "signature": sig, "vaultAddress": vault,
                       "expiresAfter": None}).encode()


# -- servers ------------------------------------------------------------------------------------------------------
@dataclass
class Target:
    server: Server
    client: httpx.Client
    limits: bool  # IP and address rate limits on


@pytest.fixture(scope="module", params=["limits-off", "limits-on"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Tests run in file order for each setting: the exact cases first, while the limited server's
    IP budget (1,200 weight a minute) is unspent, then the fuzz."""
    limits = request.param == "limits-on"
    server = Server(tmp_path_factory.mktemp("fuzz") / "data", "--no-agents", "--feed", "none", "--seed", "7",
                    *(("--rate-limits",) if limits else ())).start()
    server.fund(USER, "1000000")
    with httpx.Client(base_url=server.url, timeout=REPLY_S) as client:
        # something for the order and fill views to show: a resting bid with a cloid, a TP/SL group
        bid = {"a": 0, "b": True, "p": "90000", "s": "0.001", "r": False, "t": {"limit": {"tif": "Gtc"}}}
        tp = {**bid, "b": False, "p": "120000", "r": True,
              "t": {"trigger": {"triggerPx": "120000", "isMarket": True, "tpsl": "tp"}}}
        for action in ({"type": "order", "orders": [{**bid, "c": "0x" + "ab" * 16}], "grouping": "na"},
                       {"type": "order", "orders": [bid, tp], "grouping": "normalTpsl"}):
            r = client.post("/exchange", content=_signed(action, None))
            assert r.json()["status"] == "ok" and "error" not in r.text, r.text
        yield Target(server, client, limits)
    server.stop()


def post(srv: Target, path: str, body: bytes) -> httpx.Response:
    r = srv.client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, (path, body[:300], r.status_code, r.text[:300])
    assert srv.server.proc is not None and srv.server.proc.poll() is None, "the server exited"
    return r


def still_answers(srv: Target) -> None:
    r = srv.client.post("/info", json={"type": "exchangeStatus"})
    assert r.status_code == 200 or (srv.limits and r.status_code == 429), r.text


# -- the cases the issue saw, and the faucet's exact amounts -----------------------------------------------------
DEEP = b"[" * 1_000 + b"]" * 1_000


@pytest.mark.parametrize(("path", "body", "text"), [
    ("/dev/fund", json.dumps({"user": USER, "usd": "inf"}).encode(), "usd: expected a decimal string"),
    ("/dev/fund", json.dumps({"user": USER, "usd": "1e400"}).encode(), "usd: expected a decimal string"),
    ("/dev/fund", b'{"user": "%s", "usd": 1e400}' % USER.encode(), "number is infinity"),
    ("/dev/fund", json.dumps({"user": USER, "usd": 1000.5}).encode(), "usd: expected a decimal string"),
    ("/dev/fund", json.dumps({"user": [USER], "usd": "1"}).encode(), "user: invalid address"),
    ("/dev/fund", DEEP, "recursion limit exceeded"),
    ("/info", b'{"type": [1, 2, 3]}', "missing field `type`"),
    ("/info", DEEP, "recursion limit exceeded"),
    ("/info", b'{"type": "meta", "x": ' + DEEP + b"}", "recursion limit exceeded"),
    ("/exchange", b'{"action": {"type": "order", "orders": []}, "nonce": 1, "signature": {}, "vaultAddress": '
     + DEEP + b"}", "recursion limit exceeded"),
    ("/info", b'{"type": "candleSnapshot", "req": {"coin": "BTC", "interval": [1], "startTime": 0}}',
     "interval: unknown variant"),
    ("/info", b'{"type": "l2Book", "coin": "BTC", "nSigFigs": 5.0}', "invalid nSigFigs/mantissa"),
    ("/info", b'{"type": "l2Book", "coin": "BTC", "nSigFigs": 5, "mantissa": true}', "invalid nSigFigs/mantissa"),
    ("/info", b'{"type": "clearinghouseState", "user": "0x' + "\u0660".encode() * 40 + b'"}', "user: invalid address"),
    ("/info", b'{"type": "clearinghouseState", "user": "0x0x' + b"1" * 38 + b'"}', "user: invalid address"),
    ("/info", b'{"type": "clearinghouseState", "user": "0x' + b"_1" * 20 + b'"}', "user: invalid address"),
    ("/info", b'{"type": "meta", "dex": ["xyz"]}', "dex: unknown perp dex"),
    ("/info", b'{"type": "meta", "dex": 0}', "dex: unknown perp dex"),
    ("/info", b'{"type": "userFillsByTime", "user": "%s", "startTime": 99999999999999999999999}' % USER.encode(),
     "startTime: expected an integer"),
    ("/info", b'{"type": "' + b"z" * 100_000 + b'"}', "unknown variant"),
])
def test_seen_cases_are_clear_422s(srv: Target, path: str, body: bytes, text: str) -> None:
    r = post(srv, path, body)
    assert r.status_code == 422, (r.status_code, r.text)
    assert r.text.startswith(DESERIALIZE) and text in r.text, r.text
    assert len(r.text) < 500  # a client's value is not echoed back whole


def test_a_body_over_the_limit_is_413(srv: Target) -> None:
    for path in ("/info", "/exchange", "/dev/fund"):
        r = post(srv, path, b'{"type": "meta", "pad": "' + b"x" * (1 << 20) + b'"}')
        assert r.status_code == 413, (path, r.status_code)
    still_answers(srv)


def test_other_methods_and_paths_are_4xx(srv: Target) -> None:
    c = srv.client
    for method, path in (("GET", "/info"), ("PUT", "/exchange"), ("GET", "/dev/fund"), ("POST", "/"),
                         ("POST", "/nope"), ("GET", "/static/nope.js"), ("DELETE", "/info")):
        r = c.request(method, path, content=b"{}")
        assert 400 <= r.status_code < 500, (method, path, r.status_code)
    assert c.get("/static/plotly.min.js").status_code == 200


@pytest.mark.parametrize(("usd", "micro"), [("0.000001", 1), ("1000", 1_000_000_000), (" 2.5 ", 2_500_000),
                                            (7, 7_000_000), ("10000000", 10_000_000_000_000)])
def test_faucet_amounts_are_exact(srv: Target, usd: Any, micro: int) -> None:
    user = Account.create().address
    r = post(srv, "/dev/fund", json.dumps({"user": user, "usd": usd}).encode())
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    state = srv.server.info({"type": "clearinghouseState", "user": user})
    whole, frac = divmod(micro, 1_000_000)
    assert state["withdrawable"] == f"{whole}.{str(frac).rjust(6, '0').rstrip('0') or '0'}"  # type: ignore[index]


@pytest.mark.parametrize("usd", ["0.0000001", "10000000.000001", "0", "-1", "1e3", "1_000", "0x10", "\u0663", True,
                                 None, 1.0, [1], {"usd": 1}, 10**30])
def test_faucet_refuses_inexact_and_out_of_range_amounts(srv: Target, usd: Any) -> None:
    r = post(srv, "/dev/fund", json.dumps({"user": USER, "usd": usd}).encode())
    assert r.status_code == 422 and "usd: expected a decimal string" in r.text, r.text


# -- fuzz ---------------------------------------------------------------------------------------------------------
@FUZZ
@given(body=info_body)
def test_info_never_fails_on_hostile_bodies(srv: Target, body: bytes) -> None:
    r = post(srv, "/info", body)
    if r.status_code == 422:
        assert r.text.startswith(DESERIALIZE), r.text


@FUZZ
@given(body=unsigned_exchange_body)
def test_exchange_never_fails_on_hostile_envelopes(srv: Target, body: bytes) -> None:
    post(srv, "/exchange", body)


@FUZZ
@given(action=signed_action, vault=st.one_of(st.none(), st.sampled_from(ADDRESSES), value))
def test_exchange_never_fails_on_hostile_signed_actions(srv: Target, action: dict[str, Any], vault: Any) -> None:
    post(srv, "/exchange", _signed(action, vault))


@FUZZ
@given(body=fund_body)
def test_faucet_never_fails_on_hostile_bodies(srv: Target, body: bytes) -> None:
    r = post(srv, "/dev/fund", body)
    assert r.status_code in (200, 413, 422), r.text


@FUZZ
@given(path=st.sampled_from(["/info", "/exchange", "/dev/fund"]), body=raw_body)
def test_raw_bytes_and_deep_nesting_are_refused_cleanly(srv: Target, path: str, body: bytes) -> None:
    r = post(srv, path, body)
    assert r.status_code in (200, 422, 429), r.text


def test_the_server_still_answers_after_the_fuzz(srv: Target) -> None:
    still_answers(srv)
    assert srv.client.get("/").status_code == 200
