"""The engine's typed results (``exchange.results``) and their wire form (``api.responses``).

Expected JSON is typed from shared/reference/hyperliquid-api.md (the section is named at each test),
not read from the code under test; so are the order status strings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from eth_account import Account

from perpbox.api import signing
from perpbox.api.actions import ExchangeAPI
from perpbox.api.responses import batch, default_or_error, wire_status
from perpbox.core import errors as E
from perpbox.core.numbers import USD
from perpbox.exchange import commands as C
from perpbox.exchange.engine import Exchange
from perpbox.exchange.results import (
    CANCELED,
    OK,
    WAITING_FOR_FILL,
    WAITING_FOR_TRIGGER,
    Canceled,
    Error,
    Filled,
    Ok,
    OrderError,
    OrderStatus,
    Outcome,
    Response,
    Resting,
    Statuses,
    Waiting,
)
from perpbox.market import MarginTable, MarketSpec

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "hyperliquid-api.md"
ETH = MarketSpec(name="ETH", asset=1, sz_decimals=4, margin_table=MarginTable.single(25))  # prices in 0.01
CLOID = "0x1234567890abcdef1234567890abcdef"


def _json(value: Any) -> bytes:
    return orjson.dumps(value)


# ---- each outcome's wire form (reference §3.2 "Response envelopes", order status items) ---------------
def test_resting_is_its_oid_and_the_cloid_only_when_the_order_had_one() -> None:
    # §3.2: {"resting":{"oid":77738308}} (+ "cloid":"0x…" when the order had one)
    assert _json(wire_status(Resting(77738308), ETH)) == b'{"resting":{"oid":77738308}}'
    assert _json(wire_status(Resting(77738308, CLOID), ETH)) == (
        b'{"resting":{"oid":77738308,"cloid":"0x1234567890abcdef1234567890abcdef"}}')


def test_filled_reports_the_size_and_the_average_price_as_decimal_strings() -> None:
    # §3.2: {"filled":{"totalSz":"0.02","avgPx":"1891.4","oid":77747314}} (+cloid); ETH has szDecimals 4, so
    # 0.02 ETH is 200 lots and $1891.40 is 189,140 price units: the notional is 189,140 × 200 micro-USDC
    filled = Filled(oid=77747314, total_sz=200, ntl=189_140 * 200)
    assert _json(wire_status(filled, ETH)) == b'{"filled":{"totalSz":"0.02","avgPx":"1891.4","oid":77747314}}'
    with_cloid = Filled(oid=77747314, total_sz=200, ntl=189_140 * 200, cloid=CLOID)
    assert _json(wire_status(with_cloid, ETH)) == (
        b'{"filled":{"totalSz":"0.02","avgPx":"1891.4","oid":77747314,"cloid":"0x1234567890abcdef1234567890abcdef"}}')


def test_waiting_cancel_success_and_per_order_errors() -> None:
    # §3.2: "waitingForFill", "waitingForTrigger", "success" (cancel) are bare strings; {"error":"<message>"}
    assert _json(wire_status(WAITING_FOR_FILL, ETH)) == b'"waitingForFill"'
    assert _json(wire_status(WAITING_FOR_TRIGGER, ETH)) == b'"waitingForTrigger"'
    assert _json(wire_status(CANCELED, None)) == b'"success"'
    # §3.4: a cancel's miss; live with the asset suffix (core.errors.MISSING_ORDER's sources)
    miss = OrderError(E.order_error(E.MISSING_ORDER, 0))
    assert _json(wire_status(miss, None)) == b'{"error":"Order was never placed, already canceled, or filled. asset=0"}'


def test_action_envelopes() -> None:
    # §3.2: success with no data, a whole-action failure, and a batch
    assert _json(default_or_error(OK)) == b'{"status":"ok","response":{"type":"default"}}'
    assert _json(default_or_error(Error("Cannot modify canceled or filled order"))) == (
        b'{"status":"err","response":"Cannot modify canceled or filled order"}')
    # §3.4: {"status":"ok","response":{"type":"cancel","data":{"statuses":["success"]}}}
    assert _json(batch("cancel", [wire_status(CANCELED, None)])) == (
        b'{"status":"ok","response":{"type":"cancel","data":{"statuses":["success"]}}}')


# ---- the order statuses (reference §2.2 orderStatus; §3.2 for the two waiting answers) ----------------
# typed from §2.2's list [DOCS], the statuses perpbox uses of it
VENUE_STATUSES = {
    "open", "filled", "canceled", "triggered", "rejected", "marginCanceled", "openInterestCapCanceled",
    "selfTradeCanceled", "reduceOnlyCanceled", "siblingFilledCanceled", "liquidatedCanceled", "scheduledCancel",
    "tickRejected", "minTradeNtlRejected", "perpMarginRejected", "reduceOnlyRejected", "badAloPxRejected",
    "iocCancelRejected", "badTriggerPxRejected", "marketOrderNoLiquidityRejected", "perpMaxPositionRejected",
}
PER_ORDER_ANSWERS = {"waitingForFill", "waitingForTrigger"}  # §3.2, order status items
PERPBOX_ONLY = {"pending", "done"}  # never on the wire


def test_every_order_status_is_the_venues_string() -> None:
    assert {s.value for s in OrderStatus} == VENUE_STATUSES | PER_ORDER_ANSWERS | PERPBOX_ONLY
    assert OrderStatus.MARKET_ORDER_NO_LIQUIDITY_REJECTED == "marketOrderNoLiquidityRejected"  # a str as it is
    assert OrderStatus("scheduledCancel") is OrderStatus.SCHEDULED_CANCEL


@pytest.mark.skipif(not REFERENCE.exists(), reason=f"shared reference absent: {REFERENCE}")
def test_the_venue_statuses_are_in_the_reference_list() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    start = text.index("Order status values")
    listed = text[start:text.index("[DOCS]", start)]
    words = {w.strip(" `,\n") for w in listed.split(":", 1)[1].replace("\n", " ").split(",")}
    assert words >= VENUE_STATUSES
    assert all(f'"{w}"' in text for w in PER_ORDER_ANSWERS)


# ---- values: frozen, compared by value, hashable --------------------------------------------------------
def test_results_compare_by_value_and_are_frozen() -> None:
    assert Resting(1) == Resting(1, None) != Resting(1, CLOID)
    assert Filled(oid=3, total_sz=2, ntl=5) == Filled(3, 2, 5)
    assert Canceled() == CANCELED and Ok() == OK and Waiting(OrderStatus.WAITING_FOR_FILL) == WAITING_FOR_FILL
    assert Error("x") != OrderError("x")  # a whole-action refusal is not an item's
    assert Statuses((Resting(1), CANCELED)) == Statuses((Resting(1), Canceled()))
    assert len({Statuses((Resting(1),)), Statuses((Resting(1),))}) == 1
    with pytest.raises(AttributeError):
        Resting(1).oid = 2  # type: ignore[misc]
    st = Statuses((Resting(1), WAITING_FOR_TRIGGER))
    assert len(st) == 2 and st[1] == WAITING_FOR_TRIGGER and list(st) == [Resting(1), WAITING_FOR_TRIGGER]


def test_the_encoding_names_the_type() -> None:
    # replays are compared by their encoded answers (tests/scenarios/test_fee_tiers.py): types must not collide
    assert msgspec.json.encode(Error("x")) != msgspec.json.encode(OrderError("x"))
    assert msgspec.json.encode(OK) != msgspec.json.encode(CANCELED)


# ---- the engine answers typed -------------------------------------------------------------------------
USER = "0x" + "a1" * 20
MAKER = "0x" + "b0" * 20
T0 = 1_700_000_000_000
BTC = MarketSpec(name="BTC", asset=0, sz_decimals=5, margin_table=MarginTable.single(40))  # prices in $0.1


def _exchange() -> Exchange:
    ex = Exchange()
    assert ex.execute(C.AddMarket(ts=T0, spec=BTC, mark_px=1_000_000)).response == OK
    for user in (USER, MAKER):
        assert ex.execute(C.Deposit(ts=T0, user=user, usd=1_000_000 * USD)).response == OK
    return ex


def test_execute_returns_the_events_apply_would_and_the_typed_response() -> None:
    ex, twin = _exchange(), _exchange()
    cmd = C.place(T0 + 1, MAKER, 0, False, 1_000_000, 1_000, cloid=CLOID)
    outcome = ex.execute(cmd)
    assert isinstance(outcome, Outcome)
    assert outcome.events == twin.apply(cmd) and outcome.events
    assert outcome.response == Statuses((Resting(1, CLOID),))
    taken = ex.execute(C.place(T0 + 2, USER, 0, True, 1_000_000, 400, tif="Ioc"))
    assert taken.response == Statuses((Filled(oid=2, total_sz=400, ntl=1_000_000 * 400),))
    assert ex.execute(C.Cancel(ts=T0 + 3, user=MAKER, asset=0, oid=1)).response == Statuses((CANCELED,))
    assert not hasattr(ex, "last_response")


def test_refusals_are_typed() -> None:
    ex = _exchange()
    # 5 significant figures at most: $100,000.5 breaks the tick rule (core.errors TICK's sources)
    tick = ex.execute(C.place(T0 + 1, USER, 0, True, 1_000_005, 1_000)).response
    assert tick == Statuses((OrderError(E.order_error(E.TICK, 0)),))
    assert ex.execute(C.PlaceOrders(ts=T0 + 2, user=USER, orders=[])).response == Error(E.ORDERS_EMPTY)
    leverage = C.UpdateLeverage(ts=T0 + 3, user=USER, asset=0, is_cross=True, leverage=41)
    assert ex.execute(leverage).response == Error(E.INVALID_LEVERAGE)
    assert ex.execute(C.Cancel(ts=T0 + 4, user=USER, asset=0, oid=99)).response == Statuses((
        OrderError(E.order_error(E.MISSING_ORDER, 0)),))
    sl = C.OrderRequest(asset=0, is_buy=False, px=900_000, sz=1_000, tpsl="sl", trigger_px=900_000,
                        is_market=True, reduce_only=True)
    assert ex.execute(C.PlaceOrders(ts=T0 + 5, user=USER, orders=[sl], grouping="positionTpsl")).response == (
        Statuses((OrderError(E.order_error(E.REDUCE_ONLY, 0)),)))  # no position to reduce


def test_components_answer_typed() -> None:
    ex = _exchange()
    early = C.ScheduleCancel(ts=T0 + 1, user=USER, time=T0 + 2)
    assert ex.execute(early).response == Error("Scheduled cancel time too early, must be at least 5 seconds from now.")
    assert ex.execute(C.Noop(ts=T0 + 2, user=USER)).response == OK


# ---- the wire, end to end through POST /exchange (byte-identical to the venue's shapes) ------------------
KEY = "0x" + "22" * 32
SIGNER = Account.from_key(KEY).address.lower()


class Venue:
    def __init__(self) -> None:
        self.ex = _exchange()
        self.ex.execute(C.Deposit(ts=T0, user=SIGNER, usd=1_000_000 * USD))
        self.nonce = T0 + 10
        self.api = ExchangeAPI(self.ex, self.submit, lambda: self.nonce, network="testnet")

    async def submit(self, commands: list[C.Command], signer: str | None,
                     nonce: int | None) -> tuple[list[Response], str | None]:
        return [self.ex.execute(msgspec.structs.replace(c, ts=self.nonce)).response for c in commands], None

    def post(self, action: dict[str, Any]) -> bytes:
        self.nonce += 1
        sig = signing.sign_l1_action(KEY, action, None, self.nonce, None, False)
        return _json(asyncio.run(self.api.handle({"action": action, "nonce": self.nonce, "signature": sig})))


def _order(px: str, sz: str, tif: str = "Gtc", cloid: str | None = None, is_buy: bool = True) -> dict[str, Any]:
    wire: dict[str, Any] = {"a": 0, "b": is_buy, "p": px, "s": sz, "r": False, "t": {"limit": {"tif": tif}}}
    if cloid is not None:
        wire["c"] = cloid
    return wire


def test_order_cancel_and_modify_answers_on_the_wire() -> None:
    v = Venue()
    rest = v.post({"type": "order", "orders": [_order("99000", "0.01", cloid=CLOID)], "grouping": "na"})
    assert rest == (b'{"status":"ok","response":{"type":"order","data":{"statuses":'
                    b'[{"resting":{"oid":1,"cloid":"0x1234567890abcdef1234567890abcdef"}}]}}}')
    v.ex.execute(C.place(T0 + 5, MAKER, 0, False, 1_000_000, 2_000))  # oid 2: an ask at $100,000
    take = v.post({"type": "order", "orders": [_order("100000", "0.005", "Ioc"), _order("100000.5", "0.001")],
                   "grouping": "na"})
    assert take == (b'{"status":"ok","response":{"type":"order","data":{"statuses":['
                    b'{"filled":{"totalSz":"0.005","avgPx":"100000.0","oid":3}},'
                    b'{"error":"Price must be divisible by tick size. asset=0"}]}}}')
    assert v.post({"type": "cancel", "cancels": [{"a": 0, "o": 1}, {"a": 0, "o": 1}]}) == (
        b'{"status":"ok","response":{"type":"cancel","data":{"statuses":["success",'
        b'{"error":"Order was never placed, already canceled, or filled. asset=0"}]}}}')
    assert v.post({"type": "modify", "oid": 1, "order": _order("98000", "0.01")}) == (
        b'{"status":"err","response":"Cannot modify canceled or filled order"}')
    empty = v.post({"type": "order", "orders": [], "grouping": "na"})
    assert empty == b'{"status":"err","response":"Orders are empty"}'


# ---- the engine's own status words are the enum's --------------------------------------------------
ENGINE = Path(__file__).resolve().parents[2] / "src" / "perpbox" / "exchange"
# where an order status appears in the engine: as the status argument of a close, the status of a
# placed / rejected / closed order, or compared with an order's status
STATUS_CALLS = {"close": 2, "close_orders_of": 2, "close_market_orders": 2, "_reject": 3, "_add_order": 1}


ORDER_EVENTS = {"OrderPlaced", "OrderRejected", "OrderClosed"}
MARKET_STATUS_HOLDERS = {"cfg", "cmd", "config"}  # a market's status (active, postOnly, …), not an order's


def _is_order_status(node: Any) -> bool:
    import ast

    return (isinstance(node, ast.Attribute) and node.attr == "status"
            and not (isinstance(node.value, ast.Name) and node.value.id in MARKET_STATUS_HOLDERS)
            and not (isinstance(node.value, ast.Subscript)))  # self.config[asset].status


def _status_literals() -> list[tuple[str, int, str]]:
    """Every string literal the engine uses as an order status (by position in the calls above,
    compared with / assigned to an order's ``status``, or the status of a refusal ``(status,
    message)``), with its file and line."""
    import ast

    found: list[tuple[str, int, str]] = []
    for path in sorted(ENGINE.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            values: list[ast.expr] = []
            if isinstance(node, ast.Call):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if name in STATUS_CALLS and len(node.args) > STATUS_CALLS[name]:
                    values.append(node.args[STATUS_CALLS[name]])
                if name in ORDER_EVENTS:
                    values += [k.value for k in node.keywords if k.arg == "status"]
            elif isinstance(node, ast.Compare) and _is_order_status(node.left):
                values += node.comparators
            elif isinstance(node, ast.Assign) and any(
                    _is_order_status(t) or (isinstance(t, ast.Name) and t.id == "LIQUIDATED") for t in node.targets):
                values.append(node.value)
            elif (isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple) and len(node.value.elts) == 2
                  and isinstance(node.value.elts[0], ast.Constant)):
                values.append(node.value.elts[0])  # a refusal: (status, message)
            for v in values:
                for c in ast.walk(v):
                    if isinstance(c, ast.Constant) and isinstance(c.value, str):
                        found.append((path.name, c.lineno, c.value))
    return found


def test_every_status_the_engine_writes_is_an_order_status() -> None:
    """The engine's statuses are plain strings on the order path (cheaper in the compiled build than
    enum members), so this keeps each of them one of ``OrderStatus``'s, with its source."""
    literals = _status_literals()
    assert len({v for _, _, v in literals}) >= 23, literals  # the scan sees the engine's statuses
    values = {s.value for s in OrderStatus}
    assert [x for x in literals if x[2] not in values] == []
