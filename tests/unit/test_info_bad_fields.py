"""Every ``/info`` request type, with every field it may read set to a value of every wrong kind, is
answered (something ``orjson`` can encode) or refused with ``BadRequest`` (the venue's HTTP 422
``Failed to deserialize the JSON body into the target type: …``) — never another exception, which
the server would turn into an opaque error.  Run in process against a state with something in it
(a user with resting orders, a TP/SL group, fills), so that the views walk real rows.

The wrong values are what a JSON body can hold (and a little more: integers beyond 64 bits, as a
WebSocket ``post`` or a future decoder might hand over): null, booleans, zero, negatives, huge
integers, floats, empty and odd strings (NUL, a right-to-left mark, an emoji, other scripts'
digits, near-miss addresses), lists and objects.  A second part pins, by hand from the reference
(``hyperliquid-api.md``: a body that does not deserialise is HTTP 422 with that text), the refusals
of the fields whose type the venue's deserialiser checks.
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
import pytest

from perpbox.api.info import BadRequest, InfoAPI
from perpbox.config import load_config
from perpbox.core.numbers import USD
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange.results import Resting
from perpbox.store.readmodels import ReadModels
from perpbox.store.sequencer import bootstrap_commands

USER = "0x" + "a1" * 20
TAKER = "0x" + "b2" * 20
CLOID = "0x" + "ab" * 16
PREFIX = "Failed to deserialize the JSON body into the target type"
WRONG: list[Any] = [
    None, True, False, 0, -1, 2**63, 2**64, 2**200, -(2**200), 1.5, 5.0, -0.0, 1e308, float("inf"), float("nan"),
    "", " ", "x", "BTC ", "\x00", "\u202e", "💥", "\u0660" * 3, "1e400", "inf", "1" * 5_000,
    "0x", "0x" + "g" * 40, "0x" + "1" * 41, "0x" + "\u0661" * 40, "0X" + "1" * 40, "0x0x" + "1" * 38,
    [], [1, 2, 3], ["BTC"], [USER], {}, {"a": 1}, {"coin": "BTC"}, [[[[[]]]]],
]


class State:
    """The default markets, two funded users; USER has resting bids (one with a cloid, one a normalTpsl
    parent with a TP and an SL), a resting ask partly hit by TAKER, and a cancelled order."""

    def __init__(self) -> None:
        self.ex, self.rm, self.ts = Exchange(), ReadModels(), 1_700_000_000_000
        config = load_config()
        for c in bootstrap_commands(config, {d.name: "0x" + "d0" * 20 for d in config.dexes}):
            self.do(c)
        for u in (USER, TAKER):
            self.do(C.Deposit(ts=0, user=u, usd=10**7 * USD))
        btc = config.markets[0]
        spec, mark = btc.spec, btc.price
        below, above = mark * 9 // 10, mark * 11 // 10  # 5 significant figures at the default BTC price
        sz = -(-(20 * USD) // below)
        bid = C.OrderRequest(asset=spec.asset, is_buy=True, px=below, sz=sz)
        tp = C.OrderRequest(asset=spec.asset, is_buy=False, px=above, sz=sz, tpsl="tp", trigger_px=above,
                            is_market=True, reduce_only=True)
        self.oid = self.do(C.PlaceOrders(ts=0, user=USER, orders=[msgspec.structs.replace(bid, cloid=CLOID)]))
        self.do(C.PlaceOrders(ts=0, user=USER, orders=[bid, tp], grouping="normalTpsl"))
        ask = self.do(C.PlaceOrders(ts=0, user=USER, orders=[C.OrderRequest(asset=spec.asset, is_buy=False,
                                                                             px=above, sz=10 * sz)]))
        self.do(C.PlaceOrders(ts=0, user=TAKER, orders=[C.OrderRequest(asset=spec.asset, is_buy=True, px=above,
                                                                        sz=sz, tif="Ioc")]))
        gone = self.do(C.PlaceOrders(ts=0, user=USER, orders=[bid]))[0].oid
        last = self.do(C.Cancel(ts=0, user=USER, asset=spec.asset, oid=gone))
        assert isinstance(ask[0], Resting) and self.rm.fills.get(USER), (ask, last)
        self.info = InfoAPI(self.ex, self.rm, lambda: self.ts)

    def do(self, cmd: C.Command) -> Any:
        self.ts += 1
        outcome = self.ex.execute(msgspec.structs.replace(cmd, ts=self.ts))
        self.rm.apply(outcome.events, self.ex.pricing.prices)
        return outcome.response


@pytest.fixture(scope="module")
def state() -> State:
    return State()


def good_body(st: State, kind: str) -> dict[str, Any]:
    """A request of ``kind`` with every field any type reads, each valid (extra fields are ignored)."""
    return {"type": kind, "user": USER, "coin": "BTC", "dex": "", "startTime": 0, "endTime": st.ts, "oid": CLOID,
            "builder": TAKER, "id": 1, "nSigFigs": 5, "mantissa": 2, "aggregateByTime": False,
            "req": {"coin": "BTC", "interval": "1m", "startTime": 0, "endTime": st.ts}}


def answer(st: State, body: Any) -> str:
    """"ok" (an answer orjson encodes, as the server does) or "bad" (BadRequest with the venue's text)."""
    try:
        out = st.info.handle(body)
    except BadRequest as e:
        assert str(e).startswith(PREFIX), e
        return "bad"
    orjson.dumps(out)
    return "ok"


TYPES = sorted(InfoAPI(Exchange(), ReadModels(), lambda: 0).handlers)


@pytest.mark.parametrize("kind", TYPES)
def test_every_field_of_every_type_takes_any_wrong_value(state: State, kind: str) -> None:
    base = good_body(state, kind)
    assert answer(state, base) == "ok", kind
    for key in [k for k in base if k != "type"]:
        assert answer(state, {k: v for k, v in base.items() if k != key}) in ("ok", "bad")  # missing
        for value in WRONG:
            assert answer(state, {**base, key: value}) in ("ok", "bad"), (kind, key, value)
    for key in base["req"]:
        for value in WRONG:
            assert answer(state, {**base, "req": {**base["req"], key: value}}) in ("ok", "bad"), (kind, key, value)


@pytest.mark.parametrize("value", WRONG)
def test_a_wrong_type_or_body_is_refused(state: State, value: Any) -> None:
    assert answer(state, {"type": value}) == "bad"  # no string here names a request type
    assert answer(state, value) == "bad"  # the body itself not an object (or an object without a type)


# -- the refusals, derived by hand ------------------------------------------------------------------------------
NOT_ADDRESSES = [None, 7, [USER], {"a": USER}, "", "0x", USER[:-1], USER + "0", "0x" + "g" * 40, "0X" + USER[2:],
                 "0x" + "\u0661" * 40, "0x" + "_1" * 20, "0x0x" + "1" * 38, "0x-" + "1" * 39, " " + USER]
NOT_INTEGERS = [None, "0", "1700000000000", 1.0, 1e15, True, [0], {"t": 0}]
USER_TYPES = ["clearinghouseState", "openOrders", "frontendOpenOrders", "historicalOrders", "userFills",
              "userFillsByTime", "userFunding", "userNonFundingLedgerUpdates", "userFees", "userRateLimit",
              "userRole", "webData2", "portfolio", "referral", "subAccounts", "spotClearinghouseState",
              "activeAssetData", "orderStatus", "maxBuilderFee", "extraAgents", "userAbstraction"]


@pytest.mark.parametrize("kind", USER_TYPES)
@pytest.mark.parametrize("user", NOT_ADDRESSES)
def test_a_user_that_is_no_address_is_refused(state: State, kind: str, user: Any) -> None:
    with pytest.raises(BadRequest, match=r"^Failed to deserialize the JSON body into the target type: user: "):
        state.info.handle({**good_body(state, kind), "user": user})


@pytest.mark.parametrize(("kind", "key"), [("userFillsByTime", "startTime"), ("userFillsByTime", "endTime"),
                                           ("userFunding", "startTime"), ("userFunding", "endTime"),
                                           ("userNonFundingLedgerUpdates", "startTime"),
                                           ("fundingHistory", "startTime"), ("fundingHistory", "endTime")])
@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_a_time_that_is_no_integer_is_refused(state: State, kind: str, key: str, value: Any) -> None:
    body = {**good_body(state, kind), key: value}
    optional = key == "endTime" or kind in ("userFunding", "userNonFundingLedgerUpdates")  # ccxt may omit them
    if value is None and optional:
        assert answer(state, body) == "ok"  # an optional time given as null is the default
        return
    with pytest.raises(BadRequest, match=f"^{PREFIX}: {key}: expected an integer$"):
        state.info.handle(body)


@pytest.mark.parametrize("value", NOT_INTEGERS)
def test_candle_times_that_are_no_integers_are_refused(state: State, value: Any) -> None:
    base = good_body(state, "candleSnapshot")
    for key in ("startTime", "endTime"):
        body = {**base, "req": {**base["req"], key: value}}
        if value is None and key == "endTime":
            assert answer(state, body) == "ok"
            continue
        with pytest.raises(BadRequest, match=f"^{PREFIX}: {key}: expected an integer$"):
            state.info.handle(body)


@pytest.mark.parametrize("interval", [None, 1, 60_000, "1s", "1H", "1m ", ["1m"], {"1m": 1}, True])
def test_an_unknown_candle_interval_is_refused(state: State, interval: Any) -> None:
    base = good_body(state, "candleSnapshot")
    with pytest.raises(BadRequest, match=f"^{PREFIX}: interval: unknown variant$"):
        state.info.handle({**base, "req": {**base["req"], "interval": interval}})


@pytest.mark.parametrize(("sig", "mantissa"), [(5.0, None), (True, None), ("5", None), ([5], None), (1, None),
                                               (6, None), (5, 2.0), (5, True), (5, "2"), (5, 3), (4, 2)])
def test_l2book_aggregation_outside_the_venues_lists_is_refused(state: State, sig: Any, mantissa: Any) -> None:
    body = {"type": "l2Book", "coin": "BTC", "nSigFigs": sig, "mantissa": mantissa}
    with pytest.raises(BadRequest, match=f"^{PREFIX}: invalid nSigFigs/mantissa$"):
        state.info.handle(body)


@pytest.mark.parametrize("dex", [0, 1, True, ["xyz"], {"xyz": 1}, "nope", "XYZ", " xyz"])
@pytest.mark.parametrize("kind", ["meta", "metaAndAssetCtxs", "allMids", "openOrders", "frontendOpenOrders",
                                  "perpDexLimits", "perpsAtOpenInterestCap"])
def test_an_unknown_dex_is_refused(state: State, kind: str, dex: Any) -> None:
    with pytest.raises(BadRequest, match=f"^{PREFIX}: dex: unknown perp dex$"):
        state.info.handle({**good_body(state, kind), "dex": dex})


@pytest.mark.parametrize("oid", [None, 1.0, True, [1], {"oid": 1}])
def test_an_order_reference_that_is_neither_oid_nor_cloid_is_refused(state: State, oid: Any) -> None:
    with pytest.raises(BadRequest, match=f"^{PREFIX}: oid: expected an integer or a cloid$"):
        state.info.handle({"type": "orderStatus", "user": USER, "oid": oid})


def test_an_unknown_type_is_echoed_short(state: State) -> None:
    with pytest.raises(BadRequest) as e:
        state.info.handle({"type": "z" * 10_000})
    assert str(e.value) == f"{PREFIX}: unknown variant `{'z' * 64}…`"
