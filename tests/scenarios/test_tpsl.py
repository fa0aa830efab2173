"""Take-profit / stop-loss orders (hyperliquid-api.md §3.3 trigger orders and grouping, §6.5 TP/SL):
triggered by the mark price (a Tick), sell TP on "price above", sell SL on "price below" (buys
mirror), market TP/SL with 10% slippage tolerance, limit TP/SL resting at their limit once
triggered, normalTpsl parent/children (OCO) and positionTpsl (size 0 = the whole position).

BTC: sizes in lots of 0.00001 BTC, prices in 0.1 USD, fees taker 0.045% / maker 0.015%.
"""

from __future__ import annotations

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, DAVE, P, Sim, btc_spec, usd

from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.results import (
    CANCELED,
    WAITING_FOR_FILL,
    WAITING_FOR_TRIGGER,
    Error,
    Filled,
    OrderError,
    Resting,
    Statuses,
)


def _alice_long_0_1(sim: Sim):
    """Alice ($10,000) buys 0.1 BTC at $100,000 from Bob's ask (oids 1, 2); mark $100,000."""
    btc = sim.list_market(btc_spec(), 100_000)
    sim.deposit(ALICE, 10_000)
    sim.deposit(BOB, 100_000)
    sim.deposit(CAROL, 100_000)
    sim.deposit(DAVE, 100_000)
    assert sim.order(BOB, BTC_ID, False, 100_000, "0.1") == Resting(1)
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.1"), Filled)
    return btc


def _trigger(sim: Sim, is_buy: bool, tpsl: str, trigger: int | str, sz: str = "0.1", px: int | str | None = None,
             market: bool = True, reduce_only: bool = True):
    return sim.req(BTC_ID, is_buy, trigger if px is None else px, sz, reduce_only=reduce_only, tpsl=tpsl,
                   trigger_px=trigger, is_market=market)


def test_market_stop_loss_fires_when_mark_falls_to_trigger(sim: Sim) -> None:
    btc = _alice_long_0_1(sim)
    assert sim.batch(ALICE, [_trigger(sim, False, "sl", 95_000)]) == Statuses((WAITING_FOR_TRIGGER,))
    (placed,) = sim.of(V.OrderPlaced)
    assert (placed.oid, placed.status, placed.trigger_px) == (3, "waitingForTrigger", P(btc, 95_000))
    assert sim.order(CAROL, BTC_ID, True, 94_000, "0.1") == Resting(4)

    sim.tick(BTC_ID, 96_000)  # above the stop: nothing
    assert not sim.of(V.OrderTriggered) and not sim.of(V.Fill)
    sim.tick(BTC_ID, 95_000)  # mark <= trigger: fires as a market order, 10% slippage: 95,000 − 9,500
    (trig,) = sim.of(V.OrderTriggered)
    assert (trig.oid, trig.mark_px, trig.px) == (3, P(btc, 95_000), P(btc, 85_500))
    (fill,) = sim.of(V.Fill)
    assert (fill.taker_oid, fill.maker_oid, fill.px, fill.sz) == (3, 4, P(btc, 94_000), 10_000)
    assert sim.szi(ALICE, BTC_ID) == 0
    # realised 0.1 × (94,000 − 100,000) = −600; fees 4.5 (open) + 4.23 (0.045% × 9,400)
    assert sim.pos(ALICE, BTC_ID).realized_pnl == -usd(600)
    assert sim.cash(ALICE) == usd(10_000) - usd(600) - usd("4.5") - usd("4.23")
    assert sim.ex.triggers.armed[BTC_ID] == {} and 3 not in sim.ex.orders.orders
    sim.audit()


def test_limit_take_profit_fires_when_mark_rises_and_rests_at_its_limit(sim: Sim) -> None:
    btc = _alice_long_0_1(sim)
    tp = _trigger(sim, False, "tp", 110_000, px=110_500, market=False)
    assert sim.batch(ALICE, [tp]) == Statuses((WAITING_FOR_TRIGGER,))
    sim.tick(BTC_ID, 109_999)
    assert not sim.of(V.OrderTriggered)
    sim.tick(BTC_ID, 110_000)  # sell TP: mark >= trigger
    (trig,) = sim.of(V.OrderTriggered)
    assert (trig.oid, trig.px) == (3, P(btc, 110_500))
    assert sim.ex.orders.orders[3].status == "open" and sim.ex.orders.orders[3].triggered
    assert sim.resting_oids(BTC_ID, False) == [3]
    # Carol lifts it: Alice is the maker, realised 0.1 × 10,500 = 1,050, maker fee 0.015% × 11,050 = 1.6575
    assert sim.order(CAROL, BTC_ID, True, 110_500, "0.1") == Filled(oid=4, total_sz=10_000,
                                                                       ntl=usd(11_050))
    (fill,) = sim.of(V.Fill)
    assert (fill.maker_oid, fill.maker_fee) == (3, usd("1.6575"))
    assert sim.szi(ALICE, BTC_ID) == 0
    assert sim.pos(ALICE, BTC_ID).realized_pnl == usd(1_050)
    sim.audit()


def test_wrong_side_trigger_is_rejected(sim: Sim) -> None:
    _alice_long_0_1(sim)  # mark 100,000; Alice long 0.1, Bob short 0.1
    bad = Statuses((OrderError("Invalid TP/SL price. asset=0"),))
    # a sell SL above the mark, a sell TP below it, and their buy mirrors, would fire at once
    assert sim.batch(ALICE, [_trigger(sim, False, "sl", 101_000)]) == bad
    assert sim.of(V.OrderRejected)[0].status == "badTriggerPxRejected"
    assert sim.batch(ALICE, [_trigger(sim, False, "tp", 99_000)]) == bad
    assert sim.batch(BOB, [_trigger(sim, True, "sl", 99_000)]) == bad
    assert sim.batch(BOB, [_trigger(sim, True, "tp", 101_000)]) == bad
    # a trigger exactly at the mark is already hit
    assert sim.batch(ALICE, [_trigger(sim, False, "sl", 100_000)]) == bad
    # the right sides are accepted
    assert sim.batch(ALICE, [_trigger(sim, False, "sl", 99_000), _trigger(sim, False, "tp", 101_000)]) == Statuses((
        WAITING_FOR_TRIGGER, WAITING_FOR_TRIGGER,))
    assert sim.batch(BOB, [_trigger(sim, True, "sl", 101_000), _trigger(sim, True, "tp", 99_000)]) == Statuses((
        WAITING_FOR_TRIGGER, WAITING_FOR_TRIGGER,))
    sim.audit()


def test_buy_stop_loss_on_a_short_fires_when_mark_rises_and_cancels_the_other_trigger(sim: Sim) -> None:
    btc = _alice_long_0_1(sim)  # Bob is short 0.1 at 100,000
    resp = sim.batch(BOB, [_trigger(sim, True, "tp", 90_000), _trigger(sim, True, "sl", 105_000)])
    assert resp == Statuses((WAITING_FOR_TRIGGER, WAITING_FOR_TRIGGER))  # oids 3 (TP), 4 (SL)
    assert sim.order(DAVE, BTC_ID, False, 105_500, "0.1") == Resting(5)
    sim.tick(BTC_ID, 104_999)
    assert not sim.of(V.OrderTriggered)
    sim.tick(BTC_ID, 105_000)  # buy SL: mark >= trigger; market cap 105,000 + 10,500 = 115,500
    (trig,) = sim.of(V.OrderTriggered)
    assert (trig.oid, trig.px) == (4, P(btc, 115_500))
    (fill,) = sim.of(V.Fill)
    assert (fill.taker, fill.px, fill.sz) == (BOB, P(btc, 105_500), 10_000)
    assert sim.szi(BOB, BTC_ID) == 0
    # Bob is flat: his buy TP could now only open a position, so it goes
    assert sim.closed() == {3: "reduceOnlyCanceled"}
    assert sim.pos(BOB, BTC_ID).realized_pnl == -usd(550)
    sim.audit()


def test_normal_tpsl_children_wait_for_parent_fill_then_arm_and_one_fill_cancels_sibling(sim: Sim) -> None:
    btc = sim.list_market(btc_spec(), 100_000)
    for u in (ALICE, BOB, CAROL):
        sim.deposit(u, 100_000)
    parent = sim.req(BTC_ID, True, 100_000, "0.1")
    resp = sim.batch(ALICE, [parent, _trigger(sim, False, "tp", 110_000), _trigger(sim, False, "sl", 95_000)],
                     grouping="normalTpsl")
    assert resp == Statuses((Resting(1), WAITING_FOR_FILL, WAITING_FOR_FILL))
    assert [(e.oid, e.parent) for e in sim.of(V.OrderPlaced)] == [(1, 0), (2, 1), (3, 1)]
    assert sim.ex.orders.orders[2].status == sim.ex.orders.orders[3].status == "waitingForFill"
    assert sim.ex.orders.orders[1].children == (2, 3)
    # children do not fire before the parent has filled
    sim.tick(BTC_ID, 111_000)
    assert not sim.of(V.OrderTriggered)
    sim.tick(BTC_ID, 100_000)
    # Bob fills the parent: both children are armed (waitingForTrigger) with the parent's size
    assert isinstance(sim.order(BOB, BTC_ID, False, 100_000, "0.1", tif="Ioc"), Filled)
    assert [(e.oid, e.sz) for e in sim.of(V.OrderArmed)] == [(2, 10_000), (3, 10_000)]
    assert sim.ex.orders.orders[2].status == sim.ex.orders.orders[3].status == "waitingForTrigger"
    assert sorted(sim.ex.triggers.armed[BTC_ID]) == [2, 3]
    # the stop fires into Carol's bid; the take-profit is cancelled as its sibling filled
    sim.order(CAROL, BTC_ID, True, 94_500, "0.1")
    sim.tick(BTC_ID, 95_000)
    assert [e.oid for e in sim.of(V.OrderTriggered)] == [3]
    (fill,) = sim.of(V.Fill)
    assert (fill.taker_oid, fill.px) == (3, P(btc, 94_500))
    assert sim.closed() == {2: "siblingFilledCanceled"}
    assert sim.szi(ALICE, BTC_ID) == 0
    assert sim.ex.triggers.armed[BTC_ID] == {} and sim.acct(ALICE).orders == {}
    sim.audit()


def test_normal_tpsl_cancelling_unfilled_or_partly_filled_parent_cancels_children(sim: Sim) -> None:
    sim.list_market(btc_spec(), 100_000)
    for u in (ALICE, BOB):
        sim.deposit(u, 100_000)

    def group():
        return sim.batch(ALICE, [sim.req(BTC_ID, True, 100_000, "0.1"), _trigger(sim, False, "tp", 110_000),
                                 _trigger(sim, False, "sl", 95_000)], grouping="normalTpsl")

    assert group() == Statuses((Resting(1), WAITING_FOR_FILL, WAITING_FOR_FILL))
    assert sim.cancel(ALICE, BTC_ID, 1) == Statuses((CANCELED,))
    assert sim.closed() == {1: "canceled", 2: "canceled", 3: "canceled"}
    # partly filled parent (0.04 of 0.1), then cancelled: the children go with it
    assert group() == Statuses((Resting(4), WAITING_FOR_FILL, WAITING_FOR_FILL))
    sim.order(BOB, BTC_ID, False, 100_000, "0.04", tif="Ioc")
    assert not sim.of(V.OrderArmed)
    assert sim.ex.orders.orders[5].status == "waitingForFill"
    # a waiting child cannot be modified
    assert sim.do(C.Modify, user=ALICE, oid=5, order=_trigger(sim, False, "tp", 120_000)) == Error(
        "Cannot modify canceled or filled order")
    assert sim.cancel(ALICE, BTC_ID, 4) == Statuses((CANCELED,))
    assert sim.closed() == {4: "canceled", 5: "canceled", 6: "canceled"}
    assert sim.szi(ALICE, BTC_ID) == 4_000
    assert sim.acct(ALICE).orders == {}
    sim.audit()


def test_normal_tpsl_parent_filled_on_placement_arms_children_at_once(sim: Sim) -> None:
    _alice_long_0_1(sim)
    sim.order(BOB, BTC_ID, False, 100_000, "0.1")  # oid 3
    resp = sim.batch(ALICE, [sim.req(BTC_ID, True, 100_000, "0.1", tif="Ioc"), _trigger(sim, False, "tp", 110_000),
                             _trigger(sim, False, "sl", 95_000)], grouping="normalTpsl")
    assert resp == Statuses((Filled(oid=4, total_sz=10_000, ntl=usd(10_000)), WAITING_FOR_TRIGGER,
                    WAITING_FOR_TRIGGER,))
    assert sorted(sim.ex.triggers.armed[BTC_ID]) == [5, 6]
    # a group whose children are not reduce-only is refused whole
    bad = sim.batch(ALICE, [sim.req(BTC_ID, True, 100_000, "0.1"),
                            _trigger(sim, False, "tp", 110_000, reduce_only=False)], grouping="normalTpsl")
    assert bad == Error("Trigger order is not reduce only.")
    sim.audit()


def test_position_tpsl_size_zero_closes_whole_position_when_it_fires(sim: Sim) -> None:
    btc = _alice_long_0_1(sim)
    sl = _trigger(sim, False, "sl", 95_000, sz="0")
    assert sim.batch(ALICE, [sl], grouping="positionTpsl") == Statuses((WAITING_FOR_TRIGGER,))  # oid 3
    assert sim.ex.orders.orders[3].position_tpsl and sim.ex.orders.orders[3].sz == 0
    # the position grows after the TP/SL was placed: 0.1 → 0.15
    sim.order(BOB, BTC_ID, False, 100_000, "0.05")
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.05"), Filled)
    assert sim.szi(ALICE, BTC_ID) == 15_000
    sim.order(CAROL, BTC_ID, True, 94_500, "0.2")
    sim.tick(BTC_ID, 95_000)
    assert [e.oid for e in sim.of(V.OrderTriggered)] == [3]
    assert [(e.oid, e.sz) for e in sim.of(V.OrderResized)] == [(3, 15_000)]
    (fill,) = sim.of(V.Fill)
    assert (fill.taker_oid, fill.sz, fill.px) == (3, 15_000, P(btc, 94_500))
    assert sim.szi(ALICE, BTC_ID) == 0
    assert sim.ex.board.books[BTC_ID].depth(True) == [(P(btc, 94_500), 5_000, 1)]
    # positionTpsl orders must be reduce-only triggers
    assert sim.batch(ALICE, [_trigger(sim, False, "sl", 90_000, reduce_only=False)], grouping="positionTpsl") == Error(
        "Trigger order is not reduce only.")
    sim.audit()


def test_trigger_orders_can_be_cancelled_by_oid(sim: Sim) -> None:
    """[T1]: ``cancel`` of a waiting SL → ``["success"]``."""
    _alice_long_0_1(sim)
    assert sim.batch(ALICE, [_trigger(sim, False, "sl", 95_000)]) == Statuses((WAITING_FOR_TRIGGER,))
    assert sim.cancel(ALICE, BTC_ID, 3) == Statuses((CANCELED,))
    assert sim.ex.triggers.armed[BTC_ID] == {}
    sim.tick(BTC_ID, 90_000)
    assert not sim.of(V.OrderTriggered)
    assert sim.szi(ALICE, BTC_ID) == 10_000
    sim.audit()
