"""Hypothesis over ``/ws``: hostile frames never crash ``perpbox serve`` or go unanswered.

Frames are near-valid requests (subscribe/unsubscribe/post/ping with each field drawn from valid
values, wrong JSON types, huge and deeply nested values, ``1e400``/``NaN``/``Infinity`` tokens,
unicode), arbitrary JSON values, arbitrary text and binary frames.  For each one, on a fresh
connection, a reply arrives within a few seconds and the connection still answers a ping; what
the reply must be comes from an oracle written from the reference (§5.2-§5.6) and the default
config, not from the server's code:

* a frame that is not a JSON object as a serde server reads it (binary, invalid JSON, NaN,
  Infinity, a number beyond a double, a lone surrogate, nesting over 128, not an object, an
  unknown method) → ``error``: ``Error parsing JSON into valid websocket request: …``;
* a subscription every field of which is valid (type, market coin, 0x+40-hex user, interval,
  ``nSigFigs`` 2..5 or null, ``mantissa`` with ``nSigFigs`` 5, known dex, booleans) → its ack,
  echoing it normalised; one with a field the venue cannot accept → an ``error``, never an ack;
  an ``unsubscribe`` on a fresh connection → an ``error``;
* a ``post`` with a usable id → a ``post`` answer with that id.

After each test the server is alive, its log holds no traceback, and ``/info`` and a new
connection still answer.  Each test runs against a server with rate limits off and one with them on.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect as ws_connect

from .conftest import Server

try:
    from profiles import COMMON, PROFILE
except ModuleNotFoundError:  # tests/property is not on sys.path when only tests/compat is collected
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "property"))
    from profiles import COMMON, PROFILE

PARSE = "Error parsing JSON into valid websocket request: "
CONTROL = ("subscriptionResponse", "error", "pong", "post")
REPLY_S = 5.0  # "a reply within a few seconds"
EXAMPLES = {"ci": 60, "dev": 15}[PROFILE]  # per test and server; the file runs in well under a minute

# the wire vocabulary, from the reference (§2, §3, §5.3) and the README
SUB_TYPES = [
    "allMids",
    "l2Book",
    "trades",
    "bbo",
    "candle",
    "activeAssetCtx",
    "orderUpdates",
    "userEvents",
    "userFills",
    "userFundings",
    "userNonFundingLedgerUpdates",
    "notification",
    "activeAssetData",
    "clearinghouseState",
    "openOrders",
    "spotState",
    "webData2",
]
INFO_TYPES = [
    "meta",
    "metaAndAssetCtxs",
    "allPerpMetas",
    "spotMeta",
    "spotMetaAndAssetCtxs",
    "perpDexs",
    "allMids",
    "l2Book",
    "candleSnapshot",
    "clearinghouseState",
    "spotClearinghouseState",
    "openOrders",
    "frontendOpenOrders",
    "orderStatus",
    "historicalOrders",
    "userFills",
    "userFillsByTime",
    "userFunding",
    "userNonFundingLedgerUpdates",
    "fundingHistory",
    "predictedFundings",
    "userFees",
    "userRateLimit",
    "userRole",
    "exchangeStatus",
    "userAbstraction",
    "extraAgents",
    "maxBuilderFee",
    "recentTrades",
    "activeAssetData",
    "subAccounts",
    "perpsAtOpenInterestCap",
    "perpDexLimits",
    "referral",
    "portfolio",
    "webData2",
    "liquidations",
    "perpboxState",
]
ACTION_TYPES = [
    "order",
    "cancel",
    "cancelByCloid",
    "modify",
    "batchModify",
    "scheduleCancel",
    "updateLeverage",
    "updateIsolatedMargin",
    "approveAgent",
    "approveBuilderFee",
    "setReferrer",
    "noop",
    "usdSend",
    "withdraw3",
    "usdClassTransfer",
    "createSubAccount",
    "subAccountTransfer",
    "perpDeploy",
]
VALID_COINS = ["BTC", "ETH", "SOL", "HYPE", "xyz:XYZ100", "xyz:SILVER"]  # the default config's perps
COINS = [*VALID_COINS, "btc", "@1", "PURR/USDC", "xyz:", ":", "", "BTC "]
INTERVALS = ["1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M", "7m", "1d\n", ""]
USERS = [
    "0x" + "ab" * 20,
    "0x" + "AB" * 20,
    "0x" + "a" * 39,
    "0x" + "a" * 41,
    "0X" + "a" * 40,
    "ab" * 21,
    "0x" + "g" * 40,
    "0x" + "0" * 40,
    "0x" + "\u0661" * 40,
]


class Raw(str):
    """A JSON token written as is (``1e400``, ``NaN``, deep nesting, invalid JSON)."""


def encode(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + encode(v) for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)  # float nan/inf become NaN/Infinity: not JSON either


text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)  # a text frame is UTF-8: no surrogates
tokens = st.sampled_from(
    [
        Raw(t)
        for t in (
            "1e400",
            "-1e400",
            "1e-400",
            "NaN",
            "Infinity",
            "-Infinity",
            "-0",
            "3.0",
            "2.5",
            "1" + "0" * 30,
            "18446744073709551616",
            "18446744073709551615",
            "-9223372036854775809",
            '"\\u00e9\\u4e2d\\ud83d\\ude00"',
            '"\\ud800"',
            "[" * 254 + "]" * 254,
            "[" * 300 + "]" * 300,
            "[" * 1100 + "]" * 1100,
            '{"a":' * 600 + "1" + "}" * 600,
            json.dumps("x" * 200_000),
            "[" + ",".join(["1"] * 20_000) + "]",
            "tru",
            "{",
            "'BTC'",
        )
    ]
)
leaves = st.none() | st.booleans() | st.integers() | st.floats() | text | tokens
hostile = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=10
)


def either(values: list[Any]) -> st.SearchStrategy[Any]:
    """Mostly one of ``values`` (valid ones and near misses), sometimes anything at all."""
    return st.one_of(*[st.sampled_from(values)] * 3, hostile)


small_ints = [None, 0, 1, 2, 3, 4, 5, 6, -1, 3.0, 5.0, True, False, "3", 2**64, 2**63]
subscription = st.fixed_dictionaries(
    {"type": st.sampled_from([*SUB_TYPES, "noSuch"])},
    optional={
        "coin": either(COINS),
        "user": either(USERS),
        "nSigFigs": either(small_ints),
        "mantissa": either(small_ints),
        "interval": either(INTERVALS),
        "dex": either(["", "xyz", "nope", None]),
        "fast": hostile,
        "aggregateByTime": hostile,
        "isPortfolioMargin": hostile,
    },
)
info_payload = st.fixed_dictionaries(
    {"type": st.sampled_from([*INFO_TYPES, "nope"])},
    optional={
        "user": either(USERS),
        "coin": either(COINS),
        "dex": either(["", "xyz", "nope"]),
        "oid": hostile,
        "nSigFigs": either(small_ints),
        "mantissa": either(small_ints),
        "startTime": hostile,
        "endTime": hostile,
        "aggregateByTime": hostile,
        "req": st.fixed_dictionaries(
            {},
            optional={"coin": either(COINS), "interval": either(INTERVALS), "startTime": hostile, "endTime": hostile},
        ),
    },
)
action_payload = st.fixed_dictionaries(
    {
        "action": st.fixed_dictionaries(
            {"type": st.sampled_from(ACTION_TYPES)},
            optional={
                "orders": hostile,
                "cancels": hostile,
                "grouping": hostile,
                "agentAddress": either(USERS),
                "agentName": either(["", " valid_until 100000000000000000000", "x" * 300]),
                "nonce": hostile,
            },
        )
        | hostile,
        "nonce": either([0, 1, 2**63, 2**64]),
        "signature": st.fixed_dictionaries({"r": hostile, "s": hostile, "v": hostile}) | hostile,
    },
    optional={"vaultAddress": either(USERS), "expiresAfter": hostile},
)
request = st.fixed_dictionaries({"type": st.just("info"), "payload": info_payload}) | st.fixed_dictionaries(
    {"type": st.just("action"), "payload": action_payload}
)
subscribes = st.fixed_dictionaries(
    {"method": st.sampled_from(["subscribe", "unsubscribe"]), "subscription": subscription}
).map(encode)
posts = st.fixed_dictionaries(
    {"method": st.just("post"), "id": st.sampled_from([0, 1, 7, 2**64 - 1]), "request": request}
).map(encode)
others = st.one_of(  # everything else: wrong shapes at the top, any JSON, any text, binary frames
    st.fixed_dictionaries(
        {"method": either(["ping", "post", "subscribe", "unsubscribe", "Subscribe", "", "pong"])},
        optional={"subscription": hostile, "id": either([1, 2**64, -1, 1.5, "1"]), "request": hostile},
    ).map(encode),
    hostile.map(encode),
    text,
    tokens.map(str),
    st.binary(max_size=64),
    st.sampled_from([b"", b"\xff" * 70_000]),
)


valid_subscription = st.one_of(
    st.fixed_dictionaries({"type": st.just("allMids")}, optional={"dex": st.sampled_from(["", "xyz", None])}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["trades", "bbo", "activeAssetCtx"]), "coin": st.sampled_from(VALID_COINS)}
    ),
    st.fixed_dictionaries(
        {"type": st.just("candle"), "coin": st.sampled_from(VALID_COINS), "interval": st.sampled_from(INTERVALS[:14])}
    ),
    st.fixed_dictionaries(
        {"type": st.just("l2Book"), "coin": st.sampled_from(VALID_COINS)},
        optional={"fast": st.booleans()},
    ).flatmap(
        lambda d: st.sampled_from([(None, None), (2, None), (3, None), (4, None), (5, None), (5, 2), (5, 5)]).map(
            lambda sm: {**d, "nSigFigs": sm[0], "mantissa": sm[1]}
        )
    ),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    t
                    for t in SUB_TYPES
                    if t not in ("allMids", "l2Book", "trades", "bbo", "candle", "activeAssetCtx", "activeAssetData")
                ]
            ),
            "user": st.sampled_from(USERS[:2] + USERS[7:8]),
        },
        optional={"dex": st.sampled_from(["", "xyz"])},
    ).filter(lambda d: "dex" not in d or d["type"] in ("clearinghouseState", "openOrders")),
    st.fixed_dictionaries(
        {"type": st.just("activeAssetData"), "user": st.sampled_from(USERS[:2]), "coin": st.sampled_from(VALID_COINS)}
    ),
)
valid_subscribes = valid_subscription.map(lambda sub: encode({"method": "subscribe", "subscription": sub}))


@pytest.fixture(scope="module", params=["rate-limits-off", "rate-limits-on"])
def srv(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    args = ["--no-agents", "--feed", "none", "--seed", "4", "--no-fsync"]
    if request.param == "rate-limits-on":
        args.append("--rate-limits")  # after Server's own --no-rate-limits: the last one given wins
    server = Server(tmp_path_factory.mktemp("fuzz") / "data", *args).start()
    server.limits = request.param == "rate-limits-on"  # type: ignore[attr-defined]
    yield server
    server.stop()


# -- the oracle -------------------------------------------------------------------------------------------
NOT_JSON = object()
MARKETS = {"BTC", "ETH", "SOL", "HYPE", "xyz:XYZ100", "xyz:SILVER"}  # the default config's perps
SPOT = {"@1", "PURR/USDC"}  # spot names: whether a channel takes them is not pinned here
VALID_INTERVALS = {"1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "8h", "12h", "1d", "3d", "1w", "1M"}
DEXES = {"", "xyz"}
ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
MARKET_SUBS = {"l2Book", "trades", "bbo", "candle", "activeAssetCtx"}
MAX_DEPTH = 128  # serde_json's recursion limit


def _reject(_: str) -> Any:
    raise ValueError("not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("beyond a double")
    return value


def _walk(value: Any) -> Iterator[tuple[Any, int]]:
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        yield v, depth
        if isinstance(v, dict):
            stack.extend((x, depth + 1) for x in [*v.keys(), *v.values()])
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)


def strict_json(frame: str | bytes) -> Any:
    """The frame's value as a serde_json server reads a text frame, or ``NOT_JSON``."""
    if isinstance(frame, bytes):
        return NOT_JSON
    try:
        value = json.loads(frame, parse_constant=_reject, parse_float=_finite)
    except (ValueError, RecursionError):
        return NOT_JSON
    for v, depth in _walk(value):
        if isinstance(v, (dict, list)) and depth > MAX_DEPTH:
            return NOT_JSON
        if isinstance(v, str) and any("\ud800" <= c <= "\udfff" for c in v):  # from a lone escape
            return NOT_JSON
    return value


VALID, REFUSED, EITHER = "valid", "refused", "either"


def _field(sub: dict[str, Any], name: str, ok: Callable[[Any], str], required: bool = False) -> str:
    if sub.get(name) is None:
        return REFUSED if required else VALID
    return ok(sub[name])


def _is_int(v: Any) -> bool:
    return type(v) is int


def subscription_verdict(sub: Any) -> str:
    """Whether the venue must accept ``sub``, must refuse it, or either (not pinned by the reference)."""
    if not isinstance(sub, dict) or sub.get("type") not in SUB_TYPES:
        return REFUSED
    kind = sub["type"]

    def coin(v: Any) -> str:
        if not isinstance(v, str):
            return REFUSED
        return VALID if v in MARKETS else EITHER if v in SPOT and kind != "activeAssetData" else REFUSED

    def user(v: Any) -> str:
        if isinstance(v, str) and ADDRESS.fullmatch(v):
            return VALID
        return EITHER if isinstance(v, str) and re.fullmatch(r"0X[0-9a-fA-F]{40}", v) else REFUSED

    def dex(v: Any) -> str:
        return VALID if isinstance(v, str) and v in DEXES else REFUSED

    def boolean(v: Any) -> str:
        return VALID if isinstance(v, bool) else REFUSED

    verdicts = []
    if kind == "allMids":
        verdicts.append(_field(sub, "dex", dex))
    elif kind in MARKET_SUBS:
        verdicts.append(_field(sub, "coin", coin, required=True))
        if kind == "candle":
            verdicts.append(
                _field(
                    sub, "interval", lambda v: VALID if isinstance(v, str) and v in VALID_INTERVALS else REFUSED, True
                )
            )
        if kind == "l2Book":
            sig, mantissa = sub.get("nSigFigs"), sub.get("mantissa")
            if (sig is not None and not (_is_int(sig) and sig in (2, 3, 4, 5))) or (
                mantissa is not None and not (_is_int(mantissa) and sig == 5 and mantissa in (1, 2, 5))
            ):
                verdicts.append(REFUSED)
            elif mantissa == 1:
                verdicts.append(EITHER)  # the docs allow 1, order_book_server only 2 and 5 (§5.6)
            verdicts.append(_field(sub, "fast", boolean))
    else:
        verdicts.append(_field(sub, "user", user, required=True))
        if kind == "activeAssetData":
            verdicts.append(_field(sub, "coin", coin, required=True))
        elif kind in ("clearinghouseState", "openOrders"):
            verdicts.append(_field(sub, "dex", dex))
        elif kind == "userFills":
            verdicts.append(_field(sub, "aggregateByTime", boolean))
        elif kind == "spotState":
            verdicts.append(_field(sub, "isPortfolioMargin", boolean))
    return REFUSED if REFUSED in verdicts else EITHER if EITHER in verdicts else VALID


ERROR_PREFIXES = (PARSE, "Invalid subscription: ", "Unable to grab snapshot for subscription: ")


def _control(ws: Any) -> dict[str, Any]:
    """The next control message (pushes for a valid subscription are skipped), within ``REPLY_S``."""
    while True:
        msg = json.loads(ws.recv(timeout=REPLY_S))
        assert isinstance(msg, dict) and isinstance(msg.get("channel"), str), msg
        if msg["channel"] in CONTROL:
            return msg


def _expect(value: Any, reply: dict[str, Any]) -> None:
    """``reply`` to a frame whose strict JSON value is ``value``, against the oracle."""
    method = value.get("method") if isinstance(value, dict) else None
    if method not in ("subscribe", "unsubscribe", "post", "ping"):
        assert reply["channel"] == "error" and reply["data"].startswith(PARSE), reply
        return
    if method == "ping":
        assert reply == {"channel": "pong"}
        return
    if method == "post":
        pid = value.get("id")
        if not (_is_int(pid) and 0 <= pid < 2**64):
            assert reply["channel"] == "error" and reply["data"].startswith(PARSE), reply
            return
        assert reply["channel"] == "post" and reply["data"]["id"] == pid, reply
        response = reply["data"]["response"]
        req = value.get("request")
        kinds = {"error"} | (
            {req["type"]} if isinstance(req, dict) and req.get("type") in ("info", "action") else set()
        )
        assert response["type"] in kinds, reply
        if response["type"] == "error":
            assert isinstance(response["payload"], str)
        return
    sub = value.get("subscription")
    verdict = subscription_verdict(sub)
    if reply["channel"] == "error":
        assert reply["data"].startswith(ERROR_PREFIXES) or reply["data"].startswith("Already unsubscribed: "), reply
        assert method == "unsubscribe" or verdict != VALID, (sub, reply)
        return
    assert reply["channel"] == "subscriptionResponse", reply
    assert method == "subscribe" and verdict != REFUSED, (sub, reply)  # a fresh connection has nothing to undo
    assert reply["data"]["method"] == "subscribe"
    echo = reply["data"]["subscription"]
    assert echo["type"] == sub["type"]
    for name in ("coin", "interval"):
        if name in echo:
            assert echo[name] == sub[name]
    if "user" in echo:
        assert echo["user"] == sub["user"].lower()
    if sub["type"] == "l2Book":
        assert (echo["nSigFigs"], echo["mantissa"]) == (sub.get("nSigFigs"), sub.get("mantissa"))


def _check(srv: Server, frame: str | bytes) -> None:
    with ws_connect(srv.url.replace("http", "ws") + "/ws", max_size=None, open_timeout=10) as ws:
        ws.send(frame)
        _expect(strict_json(frame), _control(ws))
        ws.send('{"method":"ping"}')
        assert _control(ws) == {"channel": "pong"}  # the connection was kept and still answers
    assert srv.proc is not None and srv.proc.poll() is None


def _still_serves(srv: Server) -> None:
    """Alive, no traceback logged, ``/info`` answers (or the IP limit does, with limits on), a new
    connection subscribes."""
    assert srv.proc is not None and srv.proc.poll() is None
    log = Path(srv.log.name).read_text(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
    status = httpx.post(srv.url + "/info", json={"type": "meta"}, timeout=10).status_code
    assert status == 200 or (srv.limits and status == 429), status  # type: ignore[attr-defined]
    with ws_connect(srv.url.replace("http", "ws") + "/ws") as ws:
        ws.send(json.dumps({"method": "subscribe", "subscription": {"type": "l2Book", "coin": "BTC"}}))
        assert _control(ws)["channel"] == "subscriptionResponse"


def _fuzz(srv: Server, frames: st.SearchStrategy[Any], examples: int) -> None:
    @settings(max_examples=examples, **COMMON)
    @given(frame=frames)
    def run(frame: str | bytes) -> None:
        _check(srv, frame)

    run()
    _still_serves(srv)


def test_subscribe_frames_are_answered(srv: Server) -> None:
    _fuzz(srv, subscribes, EXAMPLES)


def test_valid_subscriptions_are_acknowledged(srv: Server) -> None:
    """The oracle's other half on frames built valid: every one is acked (none refused)."""
    _fuzz(srv, valid_subscribes, EXAMPLES // 2)


def test_post_frames_are_answered(srv: Server) -> None:
    _fuzz(srv, posts, EXAMPLES)


def test_other_frames_are_answered(srv: Server) -> None:
    _fuzz(srv, others, EXAMPLES // 2)


def test_the_rate_limit_setting_is_in_force(srv: Server) -> None:
    """The two servers really differ: with limits on, the IP limit (1,200 weight a minute, ``meta``
    weighing 20) answers 429 within 80 requests; with them off, never."""
    codes: list[int] = []
    with httpx.Client(timeout=10) as http:
        for _ in range(80):
            codes.append(http.post(srv.url + "/info", json={"type": "meta"}).status_code)
            if codes[-1] != 200:
                break
    if srv.limits:  # type: ignore[attr-defined]
        assert codes[-1] == 429 and set(codes[:-1]) <= {200}
    else:
        assert set(codes) == {200}
