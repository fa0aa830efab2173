"""The trigger kinds test_tpsl.py leaves out: stop-limit and take-profit-market orders, and the
direction rules of buy-side triggers (hyperliquid-api.md §3.3 trigger orders, §6.5 TP/SL).

Hyperliquid: triggers fire on the mark price; a sell SL fires on "price below", a sell TP on "price
above", buys mirror; a market TP/SL executes with 10% slippage tolerance from the mark
(``triggers.TRIGGER_SLIPPAGE_BPS``) and never rests; a limit TP/SL rests at its own limit once
triggered.

BTC: sizes in lots of 0.00001 BTC (0.1 BTC = 10,000 lots), prices in units of 0.1 USD
($100,000 = 1,000,000 units), USDC in micro-USDC.  Fees: taker 0.045%, maker 0.015%, rounded up.
"""

from __future__ import annotations

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, DAVE, P, S, Sim, btc_spec, usd

from perpbox.exchange import events as V
from perpbox.exchange.results import WAITING_FOR_TRIGGER, Filled, Resting, Statuses


def _alice_long_bob_short_0_1(sim: Sim):
    """Alice ($10,000) buys 0.1 BTC at $100,000 from Bob's ask (oids 1, 2): Alice long 0.1, Bob
    short 0.1, both at entry $100,000.  Fees so far: Alice taker 0.045% × 10,000 = 4.5, Bob maker
    0.015% × 10,000 = 1.5.

    Cash (``raw_usd``) moves by ``px * sz`` at each trade, buyer to seller (account value = cash +
    size × mark), so an open long holds cash minus its notional and a short plus it."""
    btc = sim.list_market(btc_spec(), 100_000)
    sim.deposit(ALICE, 10_000)
    for u in (BOB, CAROL, DAVE):
        sim.deposit(u, 100_000)
    assert sim.order(BOB, BTC_ID, False, 100_000, "0.1") == Resting(1)
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.1") == Filled(oid=2, total_sz=10_000, ntl=usd(10_000))
    assert sim.cash(ALICE) == usd(10_000) - usd(10_000) - usd("4.5")
    assert sim.cash(BOB) == usd(100_000) + usd(10_000) - usd("1.5")
    return btc


def _trigger(sim: Sim, is_buy: bool, tpsl: str, trigger: int | str, px: int | str, sz: str, market: bool):
    return sim.req(BTC_ID, is_buy, px, sz, reduce_only=True, tpsl=tpsl, trigger_px=trigger, is_market=market)


def _types(evs: list[V.Event]) -> list[type]:
    """Event types of a tick, without the price update that opens it."""
    return [type(e) for e in evs if not isinstance(e, V.PricesUpdated)]


# ==================================================================================================
# 1. stop-limit (tpsl="sl", is_market=False)
# ==================================================================================================
def test_stop_limit_sell_fires_through_trigger_rests_at_its_limit_and_later_fills_there(sim: Sim) -> None:
    btc = _alice_long_bob_short_0_1(sim)
    # Alice's stop-limit: sell 0.1, trigger $95,000, limit $94,000 (oid 3)
    sl = _trigger(sim, False, "sl", 95_000, 94_000, "0.1", market=False)
    assert sim.batch(ALICE, [sl]) == Statuses((WAITING_FOR_TRIGGER,))
    (placed,) = sim.of(V.OrderPlaced)
    assert (placed.oid, placed.status, placed.px, placed.trigger_px, placed.is_market, placed.tpsl) == (
        3,
        "waitingForTrigger",
        P(btc, 94_000),
        P(btc, 95_000),
        False,
        "sl",
    )
    assert sim.ex.orders.orders[3].status == "waitingForTrigger" and sorted(sim.ex.triggers.armed[BTC_ID]) == [3]
    assert sim.resting_oids(BTC_ID, False) == []  # a waiting trigger is not in the book
    # Carol bids 0.1 at $93,000 (oid 4): below the stop's limit, but inside a 10% band from any mark
    # here (95,000 − 9,500 = 85,500), so it would be hit if the stop slipped like a market order
    assert sim.order(CAROL, BTC_ID, True, 93_000, "0.1") == Resting(4)

    # (a) mark above the trigger: a sell SL waits for "price below" 95,000
    for mark in (96_000, "95000.1"):
        sim.tick(BTC_ID, mark)
        assert sim.ex.pricing.mark(BTC_ID) == P(btc, mark)
        assert _types(sim.last) == []
        assert sim.ex.orders.orders[3].status == "waitingForTrigger"

    # (b) the mark gaps through the trigger to $94,800: it fires at that mark, at its own limit
    # 94,000 (not the mark, not 94,800 − 9,480 = 85,320), finds no bid >= 94,000 and rests
    sim.tick(BTC_ID, 94_800)
    assert _types(sim.last) == [V.OrderTriggered, V.OrderRested]
    (trig,) = sim.of(V.OrderTriggered)
    assert (trig.oid, trig.mark_px, trig.px) == (3, P(btc, 94_800), P(btc, 94_000))
    assert sim.of(V.OrderRested)[0].oid == 3
    assert not sim.of(V.Fill) and sim.closed() == {}
    order = sim.ex.orders.orders[3]
    assert (order.status, order.triggered, order.tif, order.px, order.sz, order.orig_sz) == (
        "open",
        True,
        "Gtc",
        P(btc, 94_000),
        10_000,
        10_000,
    )
    assert sim.ex.triggers.armed[BTC_ID] == {}
    book = sim.ex.board.books[BTC_ID]
    assert book.depth(False) == [(P(btc, 94_000), 10_000, 1)]  # the whole 0.1 rests at the limit
    assert book.depth(True) == [(P(btc, 93_000), 10_000, 1)]  # Carol's bid untouched
    assert sim.resting_oids(BTC_ID, False) == [3]
    assert sim.szi(ALICE, BTC_ID) == 10_000
    # the mark falling further changes nothing: it is an ordinary resting limit now
    sim.tick(BTC_ID, 93_500)
    assert _types(sim.last) == [] and sim.resting_oids(BTC_ID, False) == [3]

    # (c) Dave buys 0.1 up to $94,500: he meets Alice's ask at its price, 94,000
    cash_alice, fees_before = sim.cash(ALICE), sim.fees()
    assert sim.order(DAVE, BTC_ID, True, 94_500, "0.1") == Filled(oid=5, total_sz=10_000, ntl=usd(9_400))
    (fill,) = sim.of(V.Fill)
    # ntl = 940,000 units × 10,000 lots = 9,400,000,000 micro-USDC = $9,400
    # taker (Dave) 0.045% × 9,400 = 4.23; maker (Alice) 0.015% × 9,400 = 1.41
    assert (fill.taker, fill.maker, fill.taker_oid, fill.maker_oid, fill.px, fill.sz) == (
        DAVE,
        ALICE,
        5,
        3,
        P(btc, 94_000),
        10_000,
    )
    assert (fill.taker_fee, fill.maker_fee) == (usd("4.23"), usd("1.41"))
    assert sim.closed() == {}  # a fill finishes the order without a cancel
    assert 3 not in sim.ex.orders.orders and sim.ex.board.books[BTC_ID].best_ask() is None
    # Alice: flat; realised 0.1 × (94,000 − 100,000) = −600; cash gets the sale's 9,400 less 1.41
    assert sim.szi(ALICE, BTC_ID) == 0
    assert sim.pos(ALICE, BTC_ID).realized_pnl == -usd(600)
    assert sim.cash(ALICE) - cash_alice == usd(9_400) - usd("1.41")
    assert sim.cash(ALICE) == usd(10_000) - usd("4.5") - usd(600) - usd("1.41")  # = 9,394.09
    assert sim.fees() - fees_before == usd("4.23") + usd("1.41")  # = 5.64
    assert sim.fees() == usd("6") + usd("5.64")  # opening trade 4.5 + 1.5
    assert sim.szi(DAVE, BTC_ID) == 10_000 and sim.szi(BOB, BTC_ID) == -10_000
    assert sim.acct(ALICE).orders == {}
    sim.audit()


def test_stop_limit_fills_what_bids_reach_its_limit_and_rests_the_remainder_at_the_limit(sim: Sim) -> None:
    btc = _alice_long_bob_short_0_1(sim)
    sl = _trigger(sim, False, "sl", 95_000, 94_000, "0.1", market=False)
    assert sim.batch(ALICE, [sl]) == Statuses((WAITING_FOR_TRIGGER,))  # oid 3
    assert sim.order(CAROL, BTC_ID, True, 94_500, "0.04") == Resting(4)
    assert sim.order(DAVE, BTC_ID, True, 93_000, "0.1") == Resting(5)

    sim.tick(BTC_ID, 95_000)  # a sell SL fires at mark == trigger
    assert _types(sim.last) == [V.OrderTriggered, V.Fill, V.OrderRested]
    (trig,) = sim.of(V.OrderTriggered)
    assert (trig.oid, trig.mark_px, trig.px) == (3, P(btc, 95_000), P(btc, 94_000))
    # Carol's 0.04 at 94,500 is at/above the limit: taken at her price; Dave's 93,000 is not
    (fill,) = sim.of(V.Fill)
    assert (fill.taker_oid, fill.maker_oid, fill.px, fill.sz) == (3, 4, P(btc, 94_500), S(btc, "0.04"))
    # ntl 0.04 × 94,500 = 3,780; taker fee 0.045% × 3,780 = 1.701
    assert fill.taker_fee == usd("1.701")
    # the remaining 0.06 rests at 94,000, ahead of nothing, above Dave's bid
    assert sim.ex.orders.orders[3].sz == 6_000 and sim.ex.orders.orders[3].orig_sz == 10_000
    assert sim.ex.board.books[BTC_ID].depth(False) == [(P(btc, 94_000), 6_000, 1)]
    assert sim.ex.board.books[BTC_ID].depth(True) == [(P(btc, 93_000), 10_000, 1)]
    # Alice: long 0.06; realised 0.04 × (94,500 − 100,000) = −220; cash gets 3,780 less 1.701
    assert sim.szi(ALICE, BTC_ID) == 6_000
    assert sim.pos(ALICE, BTC_ID).realized_pnl == -usd(220)
    assert sim.cash(ALICE) == -usd("4.5") + usd(3_780) - usd("1.701")
    sim.audit()


# ==================================================================================================
# 2. take-profit market (tpsl="tp", is_market=True)
# ==================================================================================================
def test_take_profit_market_on_a_short_fires_on_falling_mark_and_fills_within_10pct_of_the_mark(sim: Sim) -> None:
    btc = _alice_long_bob_short_0_1(sim)
    # Bob (short 0.1 at 100,000): buy TP-market 0.1, trigger $90,000.  p is sent as trigger + 10%
    # (99,000); the execution bound is taken from the mark when it fires.
    tp = _trigger(sim, True, "tp", 90_000, 99_000, "0.1", market=True)
    assert sim.batch(BOB, [tp]) == Statuses((WAITING_FOR_TRIGGER,))  # oid 3
    # asks: Carol 0.03 at 89,000 (oid 4) and 0.02 at 96,800 (oid 5); Dave 0.05 at 97,000 (oid 6)
    assert sim.order(CAROL, BTC_ID, False, 89_000, "0.03") == Resting(4)
    assert sim.order(CAROL, BTC_ID, False, 96_800, "0.02") == Resting(5)
    assert sim.order(DAVE, BTC_ID, False, 97_000, "0.05") == Resting(6)

    # a buy TP fires on "price below" 90,000: not on a rise, not above the trigger
    for mark in (105_000, 95_000, "90000.1"):
        sim.tick(BTC_ID, mark)
        assert _types(sim.last) == []
        assert sim.ex.orders.orders[3].status == "waitingForTrigger"

    # the mark gaps to $88,000: bound = 88,000 × 1.10 = 96,800 (from the mark, not from the trigger,
    # which would give 99,000 and take Dave's 97,000)
    sim.tick(BTC_ID, 88_000)
    assert _types(sim.last) == [V.OrderTriggered, V.Fill, V.Fill, V.OrderClosed]
    (trig,) = sim.of(V.OrderTriggered)
    assert (trig.oid, trig.mark_px, trig.px) == (3, P(btc, 88_000), P(btc, 96_800))
    fills = sim.of(V.Fill)
    # at the makers' prices, best first; 96,800 is exactly on the bound and is taken
    assert [(f.taker, f.taker_oid, f.maker_oid, f.px, f.sz) for f in fills] == [
        (BOB, 3, 4, P(btc, 89_000), S(btc, "0.03")),
        (BOB, 3, 5, P(btc, 96_800), S(btc, "0.02")),
    ]
    # ntl 0.03 × 89,000 = 2,670 and 0.02 × 96,800 = 1,936
    # taker fees 0.045% × 2,670 = 1.2015 and 0.045% × 1,936 = 0.8712
    # maker fees 0.015% × 2,670 = 0.4005 and 0.015% × 1,936 = 0.2904
    assert [f.taker_fee for f in fills] == [usd("1.2015"), usd("0.8712")]
    assert [f.maker_fee for f in fills] == [usd("0.4005"), usd("0.2904")]
    # IOC: the unfilled 0.05 is cancelled, never rests; Dave's ask beyond the bound is untouched
    assert sim.closed() == {3: "canceled"}
    assert not sim.of(V.OrderRested)
    assert 3 not in sim.ex.orders.orders and sim.ex.triggers.armed[BTC_ID] == {}
    assert sim.resting_oids(BTC_ID, True) == []
    assert sim.resting_oids(BTC_ID, False) == [6]
    assert sim.ex.board.books[BTC_ID].depth(False) == [(P(btc, 97_000), 5_000, 1)]
    # Bob: short 0.1 → 0.05; realised 0.03 × (100,000 − 89,000) + 0.02 × (100,000 − 96,800) = 330 + 64
    assert sim.szi(BOB, BTC_ID) == -5_000
    assert sim.pos(BOB, BTC_ID).realized_pnl == usd(394)
    # cash pays 2,670 + 1,936 for the buys plus the taker fees
    assert sim.cash(BOB) == usd(110_000) - usd("1.5") - usd(4_606) - usd("1.2015") - usd("0.8712")
    assert sim.szi(CAROL, BTC_ID) == -5_000 and sim.szi(DAVE, BTC_ID) == 0
    assert sim.fees() == usd(6) + usd("2.0727") + usd("0.6909")
    sim.audit()


# ==================================================================================================
# 3. buy-side direction rules
# ==================================================================================================
def test_buy_stop_fires_on_rising_mark_and_buy_take_profit_on_falling_mark(sim: Sim) -> None:
    btc = _alice_long_bob_short_0_1(sim)
    # Bob (short 0.1): buy stop-market 0.05 at trigger 105,000 (oid 3), buy TP-market 0.05 at
    # trigger 95,000 (oid 4); each half of the position, so both stay valid after the other fills
    resp = sim.batch(
        BOB,
        [
            _trigger(sim, True, "sl", 105_000, 105_000, "0.05", market=True),
            _trigger(sim, True, "tp", 95_000, 95_000, "0.05", market=True),
        ],
    )
    assert resp == Statuses((WAITING_FOR_TRIGGER, WAITING_FOR_TRIGGER))
    assert sim.order(DAVE, BTC_ID, False, 105_500, "0.05") == Resting(5)

    # neither fires while the mark stays strictly between the triggers
    for mark in ("95000.1", "104999.9"):
        sim.tick(BTC_ID, mark)
        assert _types(sim.last) == []
    # the mark rises through 105,000 to 105,200: the buy stop ("price above") fires, the buy TP not
    # bound 105,200 × 1.10 = 115,720; fills Dave's 0.05 at 105,500
    sim.tick(BTC_ID, 105_200)
    assert _types(sim.last) == [V.OrderTriggered, V.Fill]
    (trig,) = sim.of(V.OrderTriggered)
    assert (trig.oid, trig.mark_px, trig.px) == (3, P(btc, 105_200), P(btc, 115_720))
    (fill,) = sim.of(V.Fill)
    assert (fill.taker, fill.taker_oid, fill.maker_oid, fill.px, fill.sz) == (BOB, 3, 5, P(btc, 105_500), 5_000)
    assert sim.szi(BOB, BTC_ID) == -5_000
    assert sorted(sim.ex.triggers.armed[BTC_ID]) == [4] and sim.ex.orders.orders[4].status == "waitingForTrigger"

    # the mark coming back down does not fire the TP until it falls to 95,000
    assert sim.order(DAVE, BTC_ID, False, 95_500, "0.05") == Resting(6)
    for mark in (100_000, "95000.1"):
        sim.tick(BTC_ID, mark)
        assert _types(sim.last) == []
    # mark == trigger: the buy TP ("price below") fires; bound 95,000 × 1.10 = 104,500
    sim.tick(BTC_ID, 95_000)
    assert _types(sim.last) == [V.OrderTriggered, V.Fill]
    (trig,) = sim.of(V.OrderTriggered)
    assert (trig.oid, trig.mark_px, trig.px) == (4, P(btc, 95_000), P(btc, 104_500))
    (fill,) = sim.of(V.Fill)
    assert (fill.taker, fill.taker_oid, fill.maker_oid, fill.px, fill.sz) == (BOB, 4, 6, P(btc, 95_500), 5_000)
    assert sim.szi(BOB, BTC_ID) == 0
    assert sim.ex.triggers.armed[BTC_ID] == {} and sim.acct(BOB).orders == {}
    # Bob: realised 0.05 × (100,000 − 105,500) + 0.05 × (100,000 − 95,500) = −275 + 225 = −50
    # taker fees 0.045% × 5,275 = 2.37375 and 0.045% × 4,775 = 2.14875
    assert sim.pos(BOB, BTC_ID).realized_pnl == -usd(50)
    assert sim.cash(BOB) == usd(100_000) - usd("1.5") - usd(50) - usd("2.37375") - usd("2.14875")
    assert sim.szi(DAVE, BTC_ID) == -10_000
    sim.audit()
