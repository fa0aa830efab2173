"""``HedgeRunner`` (``bots.hedge``) against two in-memory venues, on a fake clock: the hedge of every maker
fill (whole or partial), the run's ``--ledger`` rows with the mid each order was decided on, the
farmers' wear worked by hand, funding payments, a venue that cannot report funding, a rollback that
loses a maker fill, and the reconcile after a stream reconnect.

The clock is a number of milliseconds that only ``asyncio.sleep`` moves (patched: it advances the
clock by the delay asked for and yields to the loop once), so every run is deterministic and takes
milliseconds of real time.  The expected numbers are worked by hand in the comments."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from perpbox.bots.hedge import INCIDENT, OK, HedgeConfig, HedgeRunner, Summary
from perpbox.bots.venue import (
    CANCELED,
    FILLED,
    OPEN,
    REJECTED,
    UNKNOWN,
    Account,
    Book,
    Fill,
    FundingPayment,
    FundingRate,
    MarketInfo,
    OrderRequest,
    OrderState,
    Position,
    Recorded,
)

D = Decimal
T0 = 1_700_000_000_000  # the fake clock's start (ms)
MAKER_FEE = D("-0.0001")  # a 1 bp rebate on the notional
TAKER_FEE = D("0.00035")  # 3.5 bp paid
ZERO, LOT, TICK = D(0), D("0.001"), D("0.01")


class Clock:
    """Milliseconds that only the patched ``asyncio.sleep`` moves."""

    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    c = Clock()
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float, result: object = None) -> object:
        c.ms += round(delay * 1000)
        await real_sleep(0)
        return result

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    yield c


@dataclass
class Order:
    oid: str
    req: OrderRequest
    index: int  # the venue's n-th order (from 0)
    status: str = OPEN
    filled: Decimal = ZERO
    error: str = ""

    @property
    def remaining(self) -> Decimal:
        left: Decimal = self.req.size - self.filled
        return left

    def state(self) -> OrderState:
        return OrderState(self.status, self.oid, self.req.client_id, self.filled, error=self.error)


class FakeVenue:
    """A ``Venue`` in memory: one coin, a book the test sets (stamped with the clock's time), post-only
    orders that rest until the test fills them (``fill``), IOC orders filled at once against the book
    up to their limit, the venue's record of fills, positions from that record plus ``offset``, and the
    funding payments in ``payments``.  ``on_status`` / ``on_place`` are the test's hooks; ``calls`` and
    ``events`` what the runner asked."""

    def __init__(self, name: str, clock: Clock, coin: str = "BTC", *, maker_fee: Decimal = MAKER_FEE,
                 taker_fee: Decimal = TAKER_FEE, lot: Decimal = LOT, tick: Decimal = TICK,
                 spares: str | None = None) -> None:
        self.name = name
        self.spares = spares  # None: no minimum order value; else what it spares (MarketInfo.min_notional_spares)
        self.clock, self.coin = clock, coin
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.market = MarketInfo(coin, tick, lot, D(10), 1, 20, min_notional_spares=spares or "none")
        self.bids: tuple[tuple[Decimal, Decimal], ...] = ()
        self.asks: tuple[tuple[Decimal, Decimal], ...] = ()
        self.orders: dict[str, Order] = {}
        self.by_cid: dict[str, str] = {}
        self.placed: list[Order] = []
        self.record: list[Fill] = []  # the venue's own record of fills
        self.offset = D(0)  # added to the position the record gives
        self.payments: list[FundingPayment] = []
        self.funding_error: Callable[[int], Exception | None] | None = None  # n-th call -> what it raises
        self.on_status: Callable[[Order], None] | None = None
        self.on_place: Callable[[Order], None] | None = None
        self.calls: Counter[str] = Counter()
        self.events: list[str] = []
        self.at: dict[str, list[int]] = {}  # call -> the clock's times it was made
        self.closed = False
        self._fill_seq = 0

    def _call(self, what: str) -> None:
        self.calls[what] += 1
        self.events.append(what)
        self.at.setdefault(what, []).append(self.clock())

    # -- the test's controls ---------------------------------------------------------------------------
    def set_book(self, bid: str, ask: str, size: str = "100") -> None:
        self.bids, self.asks = ((D(bid), D(size)),), ((D(ask), D(size)),)

    def _new_fill(self, order: Order, size: Decimal, px: Decimal, maker: bool) -> Fill:
        self._fill_seq += 1
        signed = size if order.req.is_buy else -size
        fee = size * px * (self.maker_fee if maker else self.taker_fee)
        f = Fill(f"{self.name}-f{self._fill_seq}", order.oid, self.coin, signed, px, fee, self.clock(), maker)
        order.filled += size
        if order.filled == order.req.size:
            order.status = FILLED
        self.record.append(f)
        return f

    def fill(self, order: Order, size: Decimal | None = None) -> Fill:
        """A resting order fills (all that is left, or ``size`` of it) at its limit price, as a maker."""
        assert order.status == OPEN
        return self._new_fill(order, order.remaining if size is None else size, order.req.px, maker=True)

    @property
    def position(self) -> Decimal:
        return sum((f.size for f in self.record), D(0)) + self.offset

    # -- the Venue -------------------------------------------------------------------------------------
    async def markets(self) -> dict[str, MarketInfo]:
        self._call("markets")
        return {self.coin: self.market}

    async def book(self, coin: str) -> Book:
        self._call("book")
        assert coin == self.coin
        return Book(coin, self.bids, self.asks, self.clock())

    async def place(self, order: OrderRequest) -> OrderState:
        self._call("place")
        assert order.coin == self.coin and order.size > 0
        if order.client_id is not None and order.client_id in self.by_cid:  # a retried send
            return self.orders[self.by_cid[order.client_id]].state()
        o = Order(f"{self.name}-o{len(self.placed) + 1}", order, len(self.placed))
        self.orders[o.oid] = o
        self.placed.append(o)
        if order.client_id is not None:
            self.by_cid[order.client_id] = o.oid
        signed = order.size if order.is_buy else -order.size
        spared = order.reduce_only and (self.spares == "reduce_only" or (
            self.spares == "close" and self.position != 0 and self.position + signed == 0))
        if self.spares is not None and order.size * order.px < self.market.min_notional and not spared:
            o.status, o.error = REJECTED, "Order must have minimum value of $10."
        elif order.reduce_only and (self.position == 0 or (self.position > 0) == order.is_buy
                                    or order.size > abs(self.position)):
            o.status, o.error = REJECTED, "Reduce only order would increase position."
        elif order.tif == "alo":
            crosses = (self.asks and order.px >= self.asks[0][0]) if order.is_buy else \
                (self.bids and order.px <= self.bids[0][0])
            if crosses:
                o.status = REJECTED
        elif order.tif == "ioc":
            levels = self.asks if order.is_buy else self.bids
            for px, sz in levels:
                if o.remaining == 0 or (px > order.px if order.is_buy else px < order.px):
                    break
                self._new_fill(o, min(sz, o.remaining), px, maker=False)
            if o.status == OPEN:
                o.status = CANCELED  # the rest of an IOC
        if self.on_place is not None:
            self.on_place(o)
        return o.state()

    async def cancel(self, coin: str, order_id: str) -> OrderState:
        self._call("cancel")
        o = self.orders.get(order_id)
        if o is None:
            return OrderState(REJECTED, order_id, error="no such order")
        if o.status == OPEN:
            o.status = CANCELED
        return o.state()

    async def order_status(self, coin: str, order_id: str) -> OrderState:
        self._call("order_status")
        o = self.orders.get(self.by_cid.get(order_id, order_id))
        if o is None:
            return OrderState(UNKNOWN, error="no such order")
        if self.on_status is not None:
            self.on_status(o)
        return o.state()

    async def modify(self, coin: str, order_id: str, order: OrderRequest) -> OrderState:
        self._call("modify")
        o = self.orders.get(order_id)
        if o is None or o.status != OPEN:
            return OrderState(REJECTED, order_id, error="not open")
        o.req = order
        return o.state()

    def _fills(self) -> list[Fill]:
        return list(self.record)

    async def fills(self, since_ms: int) -> list[Fill]:
        self._call("fills")
        return [f for f in self._fills() if f.ts_ms >= since_ms]

    async def account(self) -> Account:
        self._call("account")
        pos = self.position
        positions = {self.coin: Position(self.coin, pos, D(100), D(0), D(0), None)} if pos else {}
        return Account(D(100_000), positions, self.clock())

    async def funding(self, coin: str) -> FundingRate:
        self._call("funding")
        return FundingRate(coin, D("0.0000125"), 1, None, self.clock())

    async def funding_payments(self, since_ms: int) -> list[FundingPayment]:
        self._call("funding_payments")
        if self.funding_error is not None:
            err = self.funding_error(self.calls["funding_payments"])
            if err is not None:
                raise err
        return list(self.payments)

    async def aclose(self) -> None:
        self.closed = True


class RecordedFakeVenue(FakeVenue):
    """A venue whose ``fills`` come partly from a stream (``venue.Recorded``): ``lose`` takes a fill out
    of the venue's record (``history``, and so the position) while the stream still reports it."""

    def __init__(self, name: str, clock: Clock, coin: str = "BTC") -> None:
        super().__init__(name, clock, coin)
        self.stream_only: list[Fill] = []
        self._reconnects = 0

    @property
    def reconnects(self) -> int:
        return self._reconnects

    def reconnect(self) -> None:
        self._reconnects += 1

    def lose(self, fill_id: str) -> Fill:
        (f,) = [f for f in self.record if f.fill_id == fill_id]
        self.record.remove(f)
        self.stream_only.append(f)
        return f

    def _fills(self) -> list[Fill]:
        return sorted([*self.record, *self.stream_only], key=lambda f: (f.ts_ms, f.fill_id))

    async def history(self, since_ms: int) -> list[Fill]:
        self._call("history")
        return [f for f in self.record if f.ts_ms >= since_ms]


class Unsupported(RuntimeError):
    """Like ``ccxt_venue.VenueUnsupported``: the venue has no such read."""


def _run(runner: HedgeRunner, stop: asyncio.Event | None = None) -> Summary:
    async def go() -> Summary:
        return await asyncio.wait_for(runner.run(stop), timeout=20)  # real seconds: a hung loop fails

    return asyncio.run(go())


def _cfg(**kw: Any) -> HedgeConfig:
    base: dict[str, Any] = {"coin": "BTC", "size": D(1), "iterations": 2, "poll_ms": 10,
                               "reconcile_ms": 1_000_000, "incident_timeout_ms": 10_000}
    base.update(kw)
    return HedgeConfig(**base)


def _fills_of(runner: HedgeRunner, leg: str) -> list[dict[str, object]]:
    return [r for r in runner.rows if r["kind"] == "fill" and r["leg"] == leg]


# -- two whole maker fills, hedged, and their wear -------------------------------------------------------
MAKER_BOOKS = [("100", "101"), ("110", "111"), ("120", "121")]  # before post 1, before post 2, after
TAKER_BOOKS = [("200", "202"), ("210", "212")]  # before hedge 1, before hedge 2


def _two_whole_fills(maker: FakeVenue, taker: FakeVenue) -> None:
    """Each maker order fills wholly when its status is first asked; then the books move: the taker's
    to the book its hedge is banded on, the maker's to the book of the next post."""
    maker.set_book(*MAKER_BOOKS[0])
    taker.set_book("190", "192")  # never traded on: the taker's book moves before each hedge

    def on_status(o: Order) -> None:
        if o.status == OPEN:
            maker.fill(o)
            taker.set_book(*TAKER_BOOKS[o.index])
            maker.set_book(*MAKER_BOOKS[o.index + 1])

    maker.on_status = on_status


# By hand (max_position 2: both maker orders buy at the bid, both hedges sell IOC at the taker's bid):
#   maker: +1 @ 100 (fee 1·100·−0.0001 = −0.01), +1 @ 110 (fee −0.011); cash −210; volume 210
#   taker: −1 @ 200 (fee 1·200·0.00035 = 0.07), −1 @ 210 (fee 0.0735); cash +410
#   open at the end mids (maker 130, taker 230): +2·130 = 260 and −2·230 = −460
#   pnl = (−210 + 260 + 0.021) + (410 − 460 − 0.1435) = 50.021 − 50.1435 = −0.1225; loss 0.1225
#   farmers' wear = 0.1225 / 210 · 1e4 = 1225 / 210 = 5.8333… bps
END_MIDS = {"m": D(130), "t": D(230)}
LOSS = D("0.1225")


def test_two_whole_fills_are_hedged_and_their_rows_and_wear_are_exact(clock: Clock) -> None:
    maker, taker = FakeVenue("m", clock), FakeVenue("t", clock)
    _two_whole_fills(maker, taker)
    runner = HedgeRunner(maker, taker, _cfg(max_position=D(2)), clock=clock)
    s = _run(runner)
    assert (s.code, s.iterations, s.reason, s.incidents, s.overshoots, s.unhedged) == (OK, 2, "", [], 0, ZERO)
    # both legs hedged, on the venues and in the run's books
    assert (maker.position, taker.position) == (D(2), D(-2))
    assert (s.maker.position, s.taker.position, s.maker.fills, s.taker.fills) == (D(2), D(-2), 2, 2)
    assert [(o.req.is_buy, o.req.tif, o.req.px, o.req.size) for o in maker.placed] == [
        (True, "alo", D(100), D(1)), (True, "alo", D(110), D(1))]
    # the hedges: IOC sells at most 50 bps through the bid: 200 − 1 = 199 and 210 − 1.05 = 208.95
    assert [(o.req.is_buy, o.req.tif, o.req.px, o.req.size) for o in taker.placed] == [
        (False, "ioc", D(199), D(1)), (False, "ioc", D("208.95"), D(1))]
    assert not any(o.status == OPEN for o in maker.placed)
    # one fill row per fill, each with the mid its order was decided on (not the mid at the fill)
    rows = [r for r in runner.rows if r["kind"] == "fill"]
    assert len(rows) == 4 and all(r["run_id"] == runner.run_id for r in runner.rows)
    got = {(r["leg"], r["venue"], r["fill_id"]): (r["size"], r["px"], r["fee"], r["maker"], r["decision_mid"])
           for r in rows}
    assert got == {
        ("maker", "m", "m-f1"): ("1", "100", "-0.0100", True, "100.5"),
        ("maker", "m", "m-f2"): ("1", "110", "-0.0110", True, "110.5"),
        ("taker", "t", "t-f1"): ("-1", "200", "0.07000", False, "201"),
        ("taker", "t", "t-f2"): ("-1", "210", "0.07350", False, "211"),
    }
    assert [r["fill_id"] for r in rows] == ["m-f1", "t-f1", "m-f2", "t-f2"]  # in time order
    assert {(r["fill_id"], r["time"]) for r in rows} == {(f.fill_id, f.ts_ms) for f in maker.record + taker.record}
    # the farmers' wear by its definition, worked above
    w = runner.wear(END_MIDS)
    assert w.total.loss_usd == LOSS
    assert w.maker_volume_usd == D(210)
    assert w.farmers_wear_bps is not None and abs(w.farmers_wear_bps - D(1225) / D(210)) < D("1e-20")
    legs = {x.leg: x for x in w.legs}
    assert (legs["maker"].pnl_usd, legs["taker"].pnl_usd) == (D("50.021"), D("-50.1435"))
    assert (legs["maker"].positions, legs["taker"].positions) == ((("BTC", D(2)),), (("BTC", D(-2)),))
    # without end mids, the last books read mark what is open: maker 110/111 (the book moved to 120/121
    # after the last fill, but nothing read it), taker 210/212
    # — the pnl is then (−210 + 2·110.5 + 0.021) + (410 − 2·211 − 0.1435) = 11.021 − 12.1435: a loss of 1.1225
    assert runner.mids == {"m": D("110.5"), "t": D(211)}
    assert runner.wear().total.loss_usd == D("1.1225")


def test_walking_up_and_back_down_leaves_both_legs_flat(clock: Clock) -> None:
    # the default max_position (= size): buy 1 at 100, then sell 1 at the next book's ask (111); the
    # hedges sell 1 at 200 and buy 1 at 212: cash maker −100 + 111 = 11, taker 200 − 212 = −12; fees
    # −0.01 − 0.0111 + 0.07 + 0.0742 = 0.1231; flat, so no end mid is needed: loss 1 + 0.1231 = 1.1231
    maker, taker = FakeVenue("m", clock), FakeVenue("t", clock)
    _two_whole_fills(maker, taker)
    runner = HedgeRunner(maker, taker, _cfg(), clock=clock)
    s = _run(runner)
    assert (s.code, s.iterations, s.maker.position, s.taker.position) == (OK, 2, D(0), D(0))
    assert (maker.position, taker.position) == (D(0), D(0))
    assert [(o.req.is_buy, o.req.px) for o in maker.placed] == [(True, D(100)), (False, D(111))]
    assert [(o.req.is_buy, o.req.size) for o in taker.placed] == [(False, D(1)), (True, D(1))]
    assert [r["decision_mid"] for r in _fills_of(runner, "maker")] == ["100.5", "110.5"]
    assert [r["decision_mid"] for r in _fills_of(runner, "taker")] == ["201", "211"]
    w = runner.wear({})
    assert (w.total.loss_usd, w.maker_volume_usd) == (D("1.1231"), D(211))
    assert w.farmers_wear_bps is not None and abs(w.farmers_wear_bps - D(11231) / D(211)) < D("1e-20")


# -- a partial fill -------------------------------------------------------------------------------------
def test_a_partial_maker_fill_is_hedged_at_once_for_the_filled_part_only(clock: Clock) -> None:
    maker, taker = FakeVenue("m", clock), FakeVenue("t", clock)
    maker.set_book("100", "101")
    taker.set_book("200", "202")
    maker_at_hedge: list[OrderState] = []

    def on_status(o: Order) -> None:
        # 0.4 fills at once; the other 0.6 only once a hedge has been sent
        if o.status == OPEN and o.filled == 0:
            maker.fill(o, D("0.4"))
        elif o.status == OPEN and taker.placed:
            maker.fill(o)

    def on_place(o: Order) -> None:
        maker_at_hedge.append(maker.placed[0].state())

    maker.on_status, taker.on_place = on_status, on_place
    runner = HedgeRunner(maker, taker, _cfg(iterations=1), clock=clock)
    s = _run(runner)
    assert (s.code, s.iterations, s.unhedged) == (OK, 1, ZERO)
    # the first hedge is the 0.4 that had filled, sent while the maker order still rested
    assert [(o.req.is_buy, o.req.tif, o.req.size) for o in taker.placed] == [
        (False, "ioc", D("0.4")), (False, "ioc", D("0.6"))]
    assert maker_at_hedge[0].status == OPEN and maker_at_hedge[0].filled == D("0.4")
    assert (maker.position, taker.position, s.maker.position, s.taker.position) == (D(1), D(-1), D(1), D(-1))
    assert [r["size"] for r in _fills_of(runner, "taker")] == ["-0.4", "-0.6"]


# -- funding ----------------------------------------------------------------------------------------------
def _pay(coin: str, usd: str, ts: int) -> FundingPayment:
    return FundingPayment(coin, D(usd), D(2), D("0.0001"), ts)


def test_funding_payments_become_rows_and_change_the_wear_by_their_usd(clock: Clock) -> None:
    maker, taker = FakeVenue("m", clock), FakeVenue("t", clock, coin="BTC-PERP")
    _two_whole_fills(maker, taker)
    maker.payments = [_pay("BTC", "0.5", T0 + 15),
                      _pay("ETH", "9", T0 + 15),  # another coin
                      _pay("BTC", "0.5", T0 + 15),  # the same payment again
                      _pay("BTC", "100", T0 - 1)]  # before the run
    taker.payments = [_pay("BTC-PERP", "-0.25", T0 + 25),
                      _pay("BTC", "7", T0 + 25)]  # the maker's name for the coin, not the taker's
    cfg = _cfg(max_position=D(2), taker_coin="BTC-PERP", reconcile_ms=20)  # read at every reconcile
    runner = HedgeRunner(maker, taker, cfg, clock=clock)
    s = _run(runner)
    assert s.code == OK
    assert maker.calls["funding_payments"] >= 2 and taker.calls["funding_payments"] >= 2  # read again and again
    funding = [(r["leg"], r["venue"], r["coin"], r["usd"], r["size"], r["rate"], r["time"], r["run_id"])
               for r in runner.rows if r["kind"] == "funding"]
    assert sorted(funding) == [("maker", "m", "BTC", "0.5", "2", "0.0001", T0 + 15, runner.run_id),
                               ("taker", "t", "BTC-PERP", "-0.25", "2", "0.0001", T0 + 25, runner.run_id)]
    assert len(_fills_of(runner, "maker")) == len(_fills_of(runner, "taker")) == 2
    # +0.5 received on the maker, 0.25 paid on the taker: the loss falls by 0.25 from the 0.1225 of the
    # same trades without funding, to −0.1275; the wear −0.1275 / 210 · 1e4 = −1275 / 210 bps
    w = runner.wear(END_MIDS)
    legs = {x.leg: x for x in w.legs}
    assert (legs["maker"].funding_usd, legs["taker"].funding_usd) == (D("-0.5"), D("0.25"))
    assert w.total.loss_usd == LOSS - D("0.25") == D("-0.1275")
    assert w.farmers_wear_bps is not None and abs(w.farmers_wear_bps - D(-1275) / D(210)) < D("1e-20")


@pytest.mark.parametrize("fails", ["always", "once"])
def test_a_venue_that_cannot_report_funding_does_not_stop_the_run(clock: Clock, fails: str) -> None:
    maker, taker = FakeVenue("m", clock), FakeVenue("t", clock)
    _two_whole_fills(maker, taker)
    maker.payments = [_pay("BTC", "0.5", T0 + 15)]
    taker.payments = [_pay("BTC", "-0.25", T0 + 25)]

    def error(n: int) -> Exception | None:
        return Unsupported("m: no funding history") if fails == "always" or n == 1 else None

    maker.funding_error = error
    runner = HedgeRunner(maker, taker, _cfg(max_position=D(2), reconcile_ms=20), clock=clock)
    s = _run(runner)
    assert (s.code, s.iterations, s.incidents) == (OK, 2, [])
    assert (s.maker.position, s.taker.position) == (D(2), D(-2))
    assert len(_fills_of(runner, "maker")) == len(_fills_of(runner, "taker")) == 2
    funding = sorted((r["leg"], r["usd"]) for r in runner.rows if r["kind"] == "funding")
    # always failing: the maker's funding is left out of the wear; failing once: it is read the next time
    assert funding == ([("taker", "-0.25")] if fails == "always" else [("maker", "0.5"), ("taker", "-0.25")])
    loss = runner.wear(END_MIDS).total.loss_usd
    assert loss == (LOSS + D("0.25") if fails == "always" else LOSS - D("0.25"))


# -- a rollback -----------------------------------------------------------------------------------------
def test_a_rollback_voids_the_lost_fill_hedges_the_net_and_stops(clock: Clock) -> None:
    maker, taker = RecordedFakeVenue("m", clock), FakeVenue("t", clock)
    _two_whole_fills(maker, taker)
    fill_hook = maker.on_status
    assert fill_hook is not None

    def on_status(o: Order) -> None:
        if o.index < 2:  # the first two maker orders fill; any later one rests
            fill_hook(o)

    lost: list[Fill] = []

    def on_place(o: Order) -> None:
        if o.index == 1:  # once the second maker fill is hedged, the maker venue rolls it back
            lost.append(maker.lose("m-f2"))

    maker.on_status, taker.on_place = on_status, on_place
    cfg = _cfg(iterations=3, max_position=D(2), reconcile_ms=30, incident_timeout_ms=5_000)
    runner = HedgeRunner(maker, taker, cfg, clock=clock)
    s = _run(runner)
    assert s.code == INCIDENT and s.reason.startswith("rollback:"), s
    assert any("lost 1 fills" in i for i in s.incidents), s.incidents
    # the venue settled on a maker position of 1 (its history: m-f1) while the stream still has m-f2
    assert [f.fill_id for f in maker.record] == ["m-f1"] and maker.position == D(1)
    assert "m-f2" in {f.fill_id for f in asyncio.run(maker.fills(T0))}
    assert [f.fill_id for f in lost] == ["m-f2"]
    # the legs as the venues hold them: maker 1 (history), taker −2 hedges + the repair
    assert s.maker.position == sum((f.size for f in maker.record), D(0)) == D(1)
    # the net exposure 1 − 2 = −1 was hedged on the taker: a buy of 1 after the two sells
    assert [(o.req.is_buy, o.req.tif, o.req.size) for o in taker.placed] == [
        (False, "ioc", D(1)), (False, "ioc", D(1)), (True, "ioc", D(1))]
    # two reads of the venue's record showing the same loss, reconcile_ms apart, before the repair
    reads, repair = maker.at["history"], taker.at["place"][2]
    assert len(reads) >= 2 and reads[-1] - reads[-2] >= 30 and reads[-2] < reads[-1] <= repair
    assert s.taker.position == taker.position == D(-1)
    assert maker.position + taker.position == 0 and s.unhedged == 0
    # no new maker order after the loss was seen, and nothing of ours left resting
    assert all(o.status != OPEN for o in maker.placed)
    # the lost fill is not in the rows, and never counted again though the stream still returns it
    assert "m-f2" not in {r["fill_id"] for r in runner.rows}
    assert [r["fill_id"] for r in _fills_of(runner, "maker")] == ["m-f1"]
    assert [r["fill_id"] for r in _fills_of(runner, "taker")] == ["t-f1", "t-f2", "t-f3"]
    # the wear of what the venues now hold (end mids 130 / 230): maker +1 @ 100 (fee −0.01): −100 + 130
    # + 0.01 = 30.01; taker −1 @ 200, −1 @ 210, +1 @ 212 (the repair at the ask of the book 210/212;
    # fees 0.07 + 0.0735 + 0.0742 = 0.2177): 200 + 210 − 212 − 230 − 0.2177 = −32.2177; loss 2.2077
    assert [r["decision_mid"] for r in _fills_of(runner, "taker")] == ["201", "211", "211"]
    w = runner.wear(END_MIDS)
    assert (w.total.loss_usd, w.maker_volume_usd) == (D("2.2077"), D(100))
    asyncio.run(runner._sync())
    assert runner.maker_stats.position == D(1) and runner.ledger.unhedged("BTC") == 0
    assert "m-f2" not in {r["fill_id"] for r in runner.rows}


# -- a reconnect --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["nobody", "maker", "taker"])
def test_a_reconnect_reconciles_at_once(clock: Clock, who: str) -> None:
    maker, taker = RecordedFakeVenue("m", clock), RecordedFakeVenue("t", clock)
    assert isinstance(maker, Recorded) and isinstance(taker, Recorded)
    assert not isinstance(FakeVenue("x", clock), Recorded)
    maker.set_book("100", "101")
    taker.set_book("200", "202")
    reconnects = 0 if who == "nobody" else 1
    statuses = 0

    def on_status(o: Order) -> None:
        nonlocal statuses
        statuses += 1
        if statuses == 2 and reconnects:
            (maker if who == "maker" else taker).reconnect()
            maker.events.append("*reconnect*")
        if statuses == 5 and o.status == OPEN:
            maker.fill(o)

    maker.on_status = on_status
    # reconcile_ms a day: only the first loop reconciles on time (the clock starts far from 0)
    runner = HedgeRunner(maker, taker, _cfg(iterations=1, reconcile_ms=86_400_000), clock=clock)
    s = _run(runner)
    assert (s.code, s.iterations, s.incidents) == (OK, 1, [])
    # account reads: one at the start, one at the first reconcile, and one more for the reconnect
    assert maker.calls["account"] == taker.calls["account"] == 2 + reconnects
    if reconnects:
        after = maker.events[maker.events.index("*reconnect*") + 1:]
        assert "account" in after[:after.index("order_status")]  # before the next status read
        assert maker.calls["funding_payments"] == 2


# -- the taker's minimum order value ----------------------------------------------------------------------
def _small_first_fill(clock: Clock, spares: str, **cfg: Any) -> tuple[FakeVenue, FakeVenue, HedgeRunner, Summary]:
    """One iteration on two venues with a $10 minimum (sparing ``spares``), books 100/101: 0.05 of the
    first maker buy fills and the rest never does; every later maker order fills wholly."""
    maker, taker = FakeVenue("m", clock, spares=spares), FakeVenue("t", clock, spares=spares)
    maker.set_book("100", "101")
    taker.set_book("100", "101")

    def on_status(o: Order) -> None:
        if o.status == OPEN and o.index == 0 and o.filled == 0:
            maker.fill(o, D("0.05"))
        elif o.status == OPEN and o.index > 0 and o.req.tif == "alo":
            maker.fill(o)

    maker.on_status = on_status
    runner = HedgeRunner(maker, taker, _cfg(iterations=1, **cfg), clock=clock)
    return maker, taker, runner, _run(runner)


def test_a_partial_fill_under_the_takers_minimum_is_taken_back_on_the_maker_never_hedged_bigger(
        clock: Clock) -> None:
    """Walking up: 0.05 of the first maker buy fills ($5, under the taker's $10 minimum) and the rest
    never does.  No hedge is sent for it: once the maker order is requoted (cancelled) the bot sells
    the 0.05 back on the maker venue, reduce-only IOC; the next maker order fills wholly and is hedged."""
    maker, taker, runner, s = _small_first_fill(clock, "close")
    assert (s.code, s.iterations, s.unhedged, s.overshoots) == (OK, 1, ZERO, 0)
    # the unwind: sell 0.05 IOC reduce-only, 50 bps through the bid of 100 (99.5)
    assert [(o.req.tif, o.req.is_buy, o.req.size, o.req.reduce_only, o.status) for o in maker.placed] == [
        ("alo", True, D(1), False, CANCELED), ("ioc", False, D("0.05"), True, FILLED), ("alo", True, D(1), False,
                                                                                         FILLED)]
    assert maker.placed[1].req.px == D("99.5")
    # the taker saw one hedge, for the whole second maker order, never one for 0.05
    assert [(o.req.is_buy, o.req.size, o.status) for o in taker.placed] == [(False, D(1), FILLED)]
    assert (maker.position, taker.position, s.maker.position, s.taker.position) == (D(1), D(-1), D(1), D(-1))
    assert [r["size"] for r in _fills_of(runner, "maker")] == ["0.05", "-0.05", "1"]


def test_a_small_hedge_that_closes_the_takers_whole_position_is_sent_at_once_reduce_only(clock: Clock) -> None:
    """The taker account already holds 0.05 long.  0.05 of the maker buy fills ($5): selling 0.05 on
    the taker closes its whole position, which the venue spares the minimum, so the hedge goes at
    once, reduce-only, while the maker order still rests; the other 0.95 is hedged as usual."""
    maker = FakeVenue("m", clock, spares="close")
    taker = FakeVenue("t", clock, spares="close")
    taker.offset = D("0.05")
    maker.set_book("100", "101")
    taker.set_book("100", "101")
    resting_at_hedge: list[str] = []

    def on_status(o: Order) -> None:
        if o.status == OPEN and o.filled == 0:
            maker.fill(o, D("0.05"))
        elif o.status == OPEN and taker.placed:
            maker.fill(o)

    def on_place(o: Order) -> None:
        resting_at_hedge.append(maker.placed[0].status)

    maker.on_status, taker.on_place = on_status, on_place
    runner = HedgeRunner(maker, taker, _cfg(iterations=1), clock=clock)
    s = _run(runner)
    assert (s.code, s.iterations, s.unhedged) == (OK, 1, ZERO)
    assert [(o.req.is_buy, o.req.size, o.req.reduce_only, o.status) for o in taker.placed] == [
        (False, D("0.05"), True, FILLED), (False, D("0.95"), False, FILLED)]
    assert resting_at_hedge[0] == OPEN
    assert [o.req.tif for o in maker.placed] == ["alo"]  # nothing done on the maker venue
    assert (maker.position, taker.position) == (D(1), D("-0.95"))


def test_a_small_debt_that_is_not_the_whole_maker_position_is_topped_up_and_hedged(clock: Clock) -> None:
    """max_position 2: the first buy fills and is hedged; 0.05 of the second fills ($5) and no more.
    Closing 0.05 of a 1.05 position is held to the minimum like any order, so the bot buys more on
    the maker instead, past the taker's minimum with 5% spare: 10 / 100.5 (the taker's mid) − 0.05 =
    0.0495, but the maker's own minimum needs 10 / 100.5 = 0.0995; × 1.05 = 0.104477…, up to the lot:
    0.105.  The debt, 0.155, is then hedged whole."""
    maker = FakeVenue("m", clock, spares="close")
    taker = FakeVenue("t", clock, spares="close")
    maker.set_book("100", "101")
    taker.set_book("100", "101")

    def on_status(o: Order) -> None:
        if o.status != OPEN or o.req.tif != "alo":
            return
        if o.index == 1:
            if o.filled == 0:
                maker.fill(o, D("0.05"))
        else:
            maker.fill(o)

    maker.on_status = on_status
    runner = HedgeRunner(maker, taker, _cfg(iterations=2, max_position=D(2)), clock=clock)
    s = _run(runner)
    assert (s.code, s.iterations, s.unhedged, s.overshoots) == (OK, 2, ZERO, 0)
    assert [(o.req.tif, o.req.is_buy, o.req.size, o.req.reduce_only, o.status) for o in maker.placed] == [
        ("alo", True, D(1), False, FILLED), ("alo", True, D(1), False, CANCELED),
        ("ioc", True, D("0.105"), False, FILLED), ("alo", False, D(1), False, FILLED)]
    assert [(o.req.is_buy, o.req.size, o.req.reduce_only, o.status) for o in taker.placed] == [
        (False, D(1), False, FILLED), (False, D("0.155"), False, FILLED), (True, D(1), True, FILLED)]
    assert (maker.position, taker.position) == (D("0.155"), D("-0.155"))


def test_on_venues_whose_minimum_spares_nothing_a_small_first_fill_is_topped_up_not_closed(clock: Clock) -> None:
    """As the walk-up case above, but neither venue spares any order its $10 minimum: closing the
    0.05 would be refused too, so the bot buys 0.105 more on the maker (see the top-up case) and
    hedges the 0.155."""
    maker, taker, _, s = _small_first_fill(clock, "none", max_position=D(2))
    assert (s.code, s.iterations, s.unhedged) == (OK, 1, ZERO)
    assert [(o.req.tif, o.req.is_buy, o.req.size, o.status) for o in maker.placed][:2] == [
        ("alo", True, D(1), CANCELED), ("ioc", True, D("0.105"), FILLED)]
    first_hedge = taker.placed[0]
    assert (first_hedge.req.is_buy, first_hedge.req.size, first_hedge.status) == (False, D("0.155"), FILLED)
    assert maker.position == -taker.position
    assert not any(o.status == REJECTED for o in maker.placed + taker.placed)
