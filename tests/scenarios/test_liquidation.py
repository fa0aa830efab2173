"""Liquidation scenarios worked by hand: book liquidation, backstop takeover, ADL, partial slices,
isolated positions, the Binance-style insurance fund, and the liquidation-price formula
(shared/reference/hyperliquid-api.md §6.4, perp-mechanics.md §2.6–2.10).

The BTC market here has one margin tier at 20x: maintenance = notional / 40 (2.5%).  Fees are the
base tier (taker 0.045%, maker 0.015%).  Money in micro-USDC; ``usd("1.5")`` = 1,500,000.
"""

from __future__ import annotations

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, DAVE, ETH_ID, P, S, Sim, btc_spec, eth_spec, usd

from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.liquidation import MAIN_BACKSTOP, MAIN_INSURANCE
from perpbox.exchange.results import OK
from perpbox.market.liquidation import LiquidationParams, LiquidationStyle
from perpbox.market.margin import MarginTable

ERIN = "0x" + "e7" * 20


def _btc20(sim: Sim, **kw: object):
    return sim.list_market(btc_spec(margin_table=MarginTable.single(20), **kw), 100_000)


def _value(sim: Sim, user: str) -> int:
    return sim.ex.margin.account_value(sim.acct(user))


def _methods(sim: Sim, user: str) -> list[str]:
    return [e.method for e in sim.of(V.Liquidated) if e.user == user]


def test_31pct_crash_on_a_thin_book_ends_in_adl_book_liquidations_and_a_backstop_takeover(sim: Sim) -> None:
    _btc20(sim)
    for user, amount in ((CAROL, 100_000), (ALICE, 11_000), (DAVE, 32_000), (BOB, 1_000_000),
                         (MAIN_BACKSTOP, 5_000)):
        sim.deposit(user, amount)
    # Carol sells 2 BTC at $100,000: 1 to Alice (~9x), 1 to Dave (~3x)
    sim.order(CAROL, BTC_ID, False, 100_000, "2")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    sim.order(DAVE, BTC_ID, True, 100_000, "1")
    # a thin book: Bob bids 0.2 at $69,000 and 0.3 at $68,000
    sim.order(BOB, BTC_ID, True, 69_000, "0.2")
    sim.order(BOB, BTC_ID, True, 68_000, "0.3")

    sim.tick(BTC_ID, 69_000)  # a 31% crash in one tick
    spec = sim.specs[0]

    # Alice: cash 11,000 − 100,000 − 45 fee = −89,045; value −89,045 + 69,000 = −20,045 (MM 1,725).
    # Most underwater first.  She is bankrupt, so nothing goes to the book (that would crystallise
    # the deficit); the vault ($5,000) cannot carry −$20,045, so ADL: Carol (the only short) buys
    # Alice's 1 BTC at the mark and pays her deficit — Alice ends at exactly zero.
    liq = sim.of(V.Liquidated)
    assert [(e.user, e.method) for e in liq] == [(ALICE, "adl"), (DAVE, "market")]
    assert (liq[0].account_value, liq[0].maintenance_margin) == (-usd(20_045), usd(1_725))
    (adl,) = sim.of(V.PositionTransferred)
    assert (adl.src, adl.dst, adl.sz, adl.px, adl.usd) == (ALICE, CAROL, S(spec, "1"), P(spec, 69_000), -usd(20_045))
    assert _value(sim, ALICE) == 0 and sim.szi(ALICE, BTC_ID) == 0

    # Dave: cash 32,000 − 100,045 = −68,045; value 955 < MM 1,725.  His order may not sell below his
    # bankruptcy price net of the taker fee, (69,000 − 955) / (1 − 0.045%) = 68,075.7: it sells 0.2
    # to Bob at 69,000 (fee 6.21) and no lower.  948.79 is still ≥ 2/3 of the MM of 0.8 (920): wait.
    (fill,) = sim.of(V.Fill)
    assert (fill.taker, fill.px, fill.sz, fill.taker_fee) == (DAVE, P(spec, 69_000), S(spec, "0.2"), usd("6.21"))
    assert _value(sim, DAVE) == usd("948.79") and sim.szi(DAVE, BTC_ID) == S(spec, "0.8")

    sim.tick(BTC_ID, 68_500)
    # Dave: 948.79 − 0.8 × 500 = 548.79 < MM 1,370.  The book takes 0.3 at Bob's 68,000 (−150 against
    # the mark, −9.18 fee): 389.61, under 2/3 of the MM of 0.5 (856.25 → 570.83), so the backstop vault
    # takes the 0.5 left at the mark with his remaining $389.61.
    liq = sim.of(V.Liquidated)
    assert [(e.user, e.method) for e in liq] == [(DAVE, "market"), (DAVE, "backstop")]
    assert liq[1].account_value == usd("389.61")
    (backstop,) = sim.of(V.PositionTransferred)
    assert (backstop.src, backstop.dst, backstop.sz, backstop.px, backstop.usd) == (
        DAVE, MAIN_BACKSTOP, S(spec, "0.5"), P(spec, 68_500), usd("389.61"))
    assert _value(sim, DAVE) == 0 and sim.szi(DAVE, BTC_ID) == 0

    # Exact equities afterwards.  Carol: cash 100,000 + 200,000 − 30 maker fees − 69,000 − 20,045 =
    # 210,925; short 1 at 68,500 → 142,425 (she bore Alice's loss).
    assert sim.cash(CAROL) == usd(210_925) and _value(sim, CAROL) == usd(142_425)
    # The vault: 5,000 + 389.61, long 0.5 at the mark.
    assert _value(sim, MAIN_BACKSTOP) == usd("5389.61") and sim.szi(MAIN_BACKSTOP, BTC_ID) == S(spec, "0.5")
    # Bob bought 0.2 at 69,000 and 0.3 at 68,000 (maker fees 2.07 + 3.06): long 0.5 at 68,500.
    assert _value(sim, BOB) == usd("1000044.87")
    sim.audit()


def test_book_liquidation_that_restores_margin_leaves_the_trader_the_rest(sim: Sim) -> None:
    _btc20(sim)
    for user, amount in ((CAROL, 100_000), (DAVE, 32_500), (BOB, 1_000_000)):
        sim.deposit(user, amount)
    sim.order(CAROL, BTC_ID, False, 100_000, "1")
    sim.order(DAVE, BTC_ID, True, 100_000, "1")
    sim.order(BOB, BTC_ID, True, 68_000, "0.3")

    sim.tick(BTC_ID, 69_000)
    # Dave: value 32,500 − 100,045 + 69,000 = 1,455 < MM 1,725 but ≥ 2/3 of it (1,150).  His limit
    # is 69,000 − 1,455 = 67,545, so he sells 0.3 to Bob at 68,000: −300 against the mark, −9.18 fee.
    assert _methods(sim, DAVE) == ["market"]
    assert sim.szi(DAVE, BTC_ID) == S(sim.specs[0], "0.7")
    assert _value(sim, DAVE) == usd("1145.82")
    # Still under MM (0.7 × 69,000 / 40 = 1,207.5) but above 2/3 of it: no backstop yet; the next tick
    # sends the rest to the (now empty) book and, still nothing, waits again.
    sim.tick(BTC_ID, 69_000)
    assert _methods(sim, DAVE) == ["market"] and sim.szi(DAVE, BTC_ID) == S(sim.specs[0], "0.7")
    # A bid appears at the mark; the next tick closes him and he keeps what is left
    sim.order(BOB, BTC_ID, True, 69_000, "1")
    sim.tick(BTC_ID, 69_000)
    assert sim.szi(DAVE, BTC_ID) == 0
    # 1,145.82 − 0.7 × 69,000 × 0.045% (21.735 → 21.735 micro-exact)
    assert _value(sim, DAVE) == usd("1145.82") - usd("21.735")
    sim.audit()


def test_liquidation_price_formula_from_the_docs_is_the_exact_trigger(sim: Sim) -> None:
    """liq_price = price − side · margin_available / size / (1 − l · side), l = 1/maintenance
    leverage (40 here), margin_available = account value − maintenance margin."""
    btc = _btc20(sim)
    sim.deposit(CAROL, 100_000)
    sim.deposit(ALICE, 10_000)
    sim.order(CAROL, BTC_ID, False, 100_000, "1")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    # at 100,000: value 10,000 − 45 = 9,955; MM 2,500; margin available 7,455
    # liq = 100,000 − 7,455 / 1 / (1 − 1/40) = 100,000 − 7,646.15… = 92,353.84…
    # at 92,353.9 value = 2,308.9 ≥ MM 2,308.8475; at 92,353.8 value 2,308.8 < MM 2,308.845
    sim.tick(BTC_ID, "92353.9")
    assert not _methods(sim, ALICE)
    sim.tick(BTC_ID, "92353.8")
    assert _methods(sim, ALICE) == ["market"]
    assert btc.liquidation.partial_above_ntl == usd(100_000)
    sim.audit()


def test_positions_above_100k_are_liquidated_in_20pct_slices_then_whole_within_the_cooldown(sim: Sim) -> None:
    _btc20(sim)
    for user, amount in ((CAROL, 1_000_000), (ALICE, 52_000), (BOB, 10_000_000)):
        sim.deposit(user, amount)
    sim.order(CAROL, BTC_ID, False, 100_000, "5")
    sim.order(ALICE, BTC_ID, True, 100_000, "5")  # $500k notional
    sim.order(BOB, BTC_ID, True, 90_500, "10")  # deep bids just under the mark
    sim.tick(BTC_ID, 90_600)
    # value 52,000 − 500,225 + 453,000 = 4,775 < MM 11,325 but ≥ 2/3 of it? no: 4,775 < 7,550.
    # ntl 453,000 > 100,000: a 20% slice (1 BTC) goes to the book first
    assert _methods(sim, ALICE)[:2] == ["market", "partial"]
    sold = [f.sz for f in sim.of(V.Fill) if f.taker == ALICE]
    assert sold == [S(sim.specs[0], "1")]
    # within 30 s the next liquidation is for the whole position
    sim.ts += 10_000
    sim.tick(BTC_ID, 90_600)
    sold = [f.sz for f in sim.of(V.Fill) if f.taker == ALICE]
    assert sold == [S(sim.specs[0], "4")] and sim.szi(ALICE, BTC_ID) == 0
    sim.audit()


def test_isolated_position_is_liquidated_alone_and_the_cross_account_is_untouched(sim: Sim) -> None:
    _btc20(sim)
    sim.list_market(eth_spec(margin_table=MarginTable.single(20)), 2_000)
    for user, amount in ((CAROL, 1_000_000), (ALICE, 20_000), (BOB, 1_000_000)):
        sim.deposit(user, amount)
    assert sim.leverage(ALICE, BTC_ID, 10, cross=False) == OK
    sim.order(CAROL, BTC_ID, False, 100_000, "0.1")
    sim.order(ALICE, BTC_ID, True, 100_000, "0.1")  # isolated: $1,000 margin moved in
    sim.order(CAROL, ETH_ID, False, 2_000, "1")
    sim.order(ALICE, ETH_ID, True, 2_000, "1")  # cross
    eth_order = sim.order(ALICE, ETH_ID, False, 2_500, "0.5").oid
    sim.order(BOB, BTC_ID, True, 91_000, "1")
    sim.tick(BTC_ID, 91_000)
    # isolated value = 1,000 − 4.5 − 0.1 × 9,000 = 95.5 < MM 227.5: liquidated alone, at ≥ 91,000 − 955
    (ev,) = [e for e in sim.of(V.Liquidated) if e.method == "market"]
    assert (ev.user, ev.asset, ev.account_value) == (ALICE, BTC_ID, usd("95.5"))
    assert sim.szi(ALICE, BTC_ID) == 0 and sim.szi(ALICE, ETH_ID) == S(sim.specs[1], "1")
    assert eth_order in sim.ex.orders.orders  # her cross-mode orders stay
    sim.audit()


def test_binance_style_insurance_fund_takes_over_at_the_bankruptcy_price_with_a_clearance_fee(sim: Sim) -> None:
    _btc20(sim, liquidation=LiquidationParams(style=LiquidationStyle.BINANCE))
    for user, amount in ((CAROL, 100_000), (ALICE, 5_000), (MAIN_INSURANCE, 50_000)):
        sim.deposit(user, amount)
    sim.order(CAROL, BTC_ID, False, 100_000, "1")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    sim.tick(BTC_ID, 96_500)
    # value 5,000 − 45 − 3,500 = 1,455 < MM 2,412.5.  Clearance fee 0.5% × 96,500 = 482.5, capped by
    # the equity left: 482.5 goes to the fund.  No bids: the fund takes the position at the
    # bankruptcy price, i.e. at the mark with the remaining 972.5; Alice ends at zero.
    assert _methods(sim, ALICE) == ["market", "insurance"]
    (take,) = sim.of(V.PositionTransferred)
    assert (take.dst, take.usd) == (MAIN_INSURANCE, usd("972.5"))
    assert _value(sim, ALICE) == 0
    assert _value(sim, MAIN_INSURANCE) == usd(50_000) + usd("1455")
    sim.audit()


def test_binance_clearance_fee_that_takes_the_last_equity_sends_the_position_straight_to_the_fund(sim: Sim) -> None:
    _btc20(sim, liquidation=LiquidationParams(style=LiquidationStyle.BINANCE))
    for user, amount in ((CAROL, 100_000), (ALICE, 5_045), (BOB, 1_000_000), (MAIN_INSURANCE, 50_000)):
        sim.deposit(user, amount)
    sim.order(CAROL, BTC_ID, False, 100_000, "1")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    sim.order(BOB, BTC_ID, True, 95_400, "1")
    sim.tick(BTC_ID, 95_400)
    # value 5,045 − 45 − 4,600 = 400 < MM 2,385.  The clearance fee (0.5% × 95,400 = 477) takes all
    # 400 that is left, so Alice is at her bankruptcy price: no book attempt, the fund takes the
    # position at the mark with nothing more to pay, and Bob's bid stays in the book.
    assert _methods(sim, ALICE) == ["insurance"]
    (take,) = sim.of(V.PositionTransferred)
    assert (take.dst, take.usd) == (MAIN_INSURANCE, 0)
    assert not sim.of(V.Fill)
    assert _value(sim, ALICE) == 0
    assert _value(sim, MAIN_INSURANCE) == usd(50_400)
    sim.audit()


def test_adl_reduces_the_most_profitable_most_leveraged_short_first(sim: Sim) -> None:
    _btc20(sim)
    for user, amount in ((ALICE, 11_000), (CAROL, 30_000), (ERIN, 200_000), (DAVE, 100_000)):
        sim.deposit(user, amount)
    # Carol shorts 0.5 at 100,000 (high leverage), Erin 0.5 at 100,000 with lots of collateral
    sim.order(CAROL, BTC_ID, False, 100_000, "0.5")
    sim.order(ERIN, BTC_ID, False, 100_000, "0.5")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    sim.tick(BTC_ID, 95_000)
    # ranking: profit (entry/mark for a short) × notional / account value — Carol's
    # (100/95) × 47,500 / 32,492.5 beats Erin's (100/95) × 47,500 / 202,492.5
    assert sim.ex.liquidations.adl_queue(BTC_ID, is_long=False) == [CAROL, ERIN]
    assert sim.ex.liquidations.adl_rank(ERIN, BTC_ID) == (1, 2)
    sim.tick(BTC_ID, 70_000)
    # Alice: 11,000 − 100,045 + 70,000 = −19,045; no vault → ADL: Carol takes 0.5 then Erin 0.5
    adl = sim.of(V.PositionTransferred)
    assert [(t.dst, t.sz) for t in adl] == [(CAROL, S(sim.specs[0], "0.5")), (ERIN, S(sim.specs[0], "0.5"))]
    assert sum(t.usd for t in adl) == -usd(19_045)
    assert _value(sim, ALICE) == 0
    assert sim.ex.liquidations.adl_rank(DAVE, BTC_ID) is None  # no position: never in the queue, never pays
    sim.audit()


def test_liquidation_throttle_defers_book_liquidations_beyond_the_tick_budget(sim: Sim) -> None:
    _btc20(sim, liquidation=LiquidationParams(max_ntl_per_tick=usd(50_000)))
    for user, amount in ((CAROL, 1_000_000), (ALICE, 12_000), (DAVE, 12_000), (BOB, 1_000_000)):
        sim.deposit(user, amount)
    sim.order(CAROL, BTC_ID, False, 100_000, "2")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    sim.order(DAVE, BTC_ID, True, 100_000, "1")
    sim.order(BOB, BTC_ID, True, 89_000, "5")
    sim.tick(BTC_ID, 89_500)
    # both are below MM (1 × 89,500 / 40 = 2,237.5): value 12,000 − 100,045 + 89,500 = 1,455 each.
    # The first liquidation uses $89,500 of the $50,000 budget; the second waits for the next tick.
    sold = {f.taker for f in sim.of(V.Fill)}
    assert sold == {ALICE}
    sim.tick(BTC_ID, 89_500)
    assert {f.taker for f in sim.of(V.Fill)} == {DAVE}
    sim.audit()


def test_tick_with_nothing_to_do_emits_only_prices(sim: Sim) -> None:
    _btc20(sim)
    sim.deposit(ALICE, 1_000)
    sim.tick(BTC_ID, 100_000)
    assert {type(e) for e in sim.last} <= {V.PricesUpdated}
    assert sim.do(C.Tick) == OK


def test_adl_stops_at_a_counterparty_that_would_go_below_zero(sim: Sim) -> None:
    """ADL charges each counterparty at most what keeps it at or above zero and carries the rest
    down the queue (dYdX v4: deleverage only "at a price that does not make the offsetting
    subaccount insolvent"; Hyperliquid: never make a profitable counterparty insolvent)."""
    _btc20(sim)
    eth = sim.list_market(eth_spec(margin_table=MarginTable.single(20)), 3_000)
    btc = sim.specs[BTC_ID]
    for user, amount in ((ALICE, 11_000), (CAROL, 6_000), (ERIN, 200_000), (BOB, 1_000_000)):
        sim.deposit(user, amount)
    # Carol (cross) shorts 0.5 BTC at 100,000 and is also long 10 ETH at 3,000 (bought from Bob);
    # Erin shorts the other 0.5 BTC with plenty of collateral; Alice buys the 1 BTC.
    sim.order(CAROL, BTC_ID, False, 100_000, "0.5")
    sim.order(ERIN, BTC_ID, False, 100_000, "0.5")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    sim.order(BOB, ETH_ID, False, 3_000, "10")
    sim.order(CAROL, ETH_ID, True, 3_000, "10")
    # Carol's cash: 6,000 + 50,000 (short) − 7.5 (maker fee 0.015%) − 30,000 (ETH) − 13.5 (taker
    # fee 0.045%) = 25,979
    assert sim.cash(CAROL) == usd(25_979)

    # BTC −30% and ETH −50% in one tick
    sim.do(C.Tick, marks={BTC_ID: P(btc, 70_000), ETH_ID: P(eth, 1_500)})
    # Alice: 11,000 − 100,000 − 45 + 70,000 = −19,045 (MM 1,750); no vault → ADL.
    # Carol: 25,979 − 0.5 × 70,000 + 10 × 1,500 = 5,979 ≥ her MM (875 + 375): not liquidated herself.
    # Queue (profit × leverage): Carol (100/70) × 35,000 / 5,979 ≈ 8.36 before Erin
    # (100/70) × 35,000 / 214,992.5 ≈ 0.23.
    liq = sim.of(V.Liquidated)
    assert [(e.user, e.method, e.account_value, e.maintenance_margin) for e in liq] == [
        (ALICE, "adl", -usd(19_045), usd(1_750))]
    # At Alice's bankruptcy price (70,000 + 19,045 = 89,045) each short would pay 0.5 × 19,045 =
    # 9,522.5; Carol's ETH loss leaves her only 5,979, so she pays that and ends at exactly zero,
    # and the 9,522.5 − 5,979 = 3,543.5 she cannot pay goes to Erin: 9,522.5 + 3,543.5 = 13,066.
    # (Both close at the mark, 70,000; Carol in effect at 70,000 + 5,979 / 0.5 = 81,958, Erin at
    # 70,000 + 13,066 / 0.5 = 96,132.)
    adl = sim.of(V.PositionTransferred)
    assert [(t.src, t.dst, t.sz, t.px, t.usd) for t in adl] == [
        (ALICE, CAROL, S(btc, "0.5"), P(btc, 70_000), -usd(5_979)),
        (ALICE, ERIN, S(btc, "0.5"), P(btc, 70_000), -usd(13_066))]
    assert sum(t.usd for t in adl) == -usd(19_045)  # the whole deficit, no shortfall
    assert _value(sim, ALICE) == 0 and sim.szi(ALICE, BTC_ID) == 0
    # Carol: 25,979 − 35,000 (buys back 0.5 at the mark) − 5,979 = −15,000 cash, long 10 ETH at
    # 1,500 = 15,000: exactly zero (was −3,543.5 when charged her full 9,522.5)
    assert sim.cash(CAROL) == -usd(15_000) and sim.szi(CAROL, ETH_ID) == S(eth, "10")
    assert _value(sim, CAROL) == 0
    # Erin: 200,000 + 50,000 − 7.5 − 35,000 − 13,066 = 201,926.5, flat
    assert _value(sim, ERIN) == usd("201926.5") and sim.szi(ERIN, BTC_ID) == 0
    sim.audit()


def test_adl_reports_the_deficit_no_counterparty_can_carry(sim: Sim) -> None:
    """When every counterparty is capped, what is left stays with the bankrupt account, reported by
    a ``Liquidated`` event with method ``adlShortfall``: nothing is created or destroyed."""
    _btc20(sim)
    eth = sim.list_market(eth_spec(margin_table=MarginTable.single(20)), 3_000)
    btc = sim.specs[BTC_ID]
    for user, amount in ((ALICE, 11_000), (CAROL, 9_000), (BOB, 1_000_000)):
        sim.deposit(user, amount)
    # Carol is the only BTC short (1 at 100,000), and long 20 ETH at 3,000
    sim.order(CAROL, BTC_ID, False, 100_000, "1")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    sim.order(BOB, ETH_ID, False, 3_000, "20")
    sim.order(CAROL, ETH_ID, True, 3_000, "20")
    # Carol's cash: 9,000 + 100,000 − 15 − 60,000 − 27 = 48,958
    assert sim.cash(CAROL) == usd(48_958)

    sim.do(C.Tick, marks={BTC_ID: P(btc, 70_000), ETH_ID: P(eth, 1_500)})
    # Alice: −19,045 as above.  Carol: 48,958 − 70,000 + 30,000 = 8,958 (MM 1,750 + 750): she pays
    # 8,958 and ends at zero; the other 19,045 − 8,958 = 10,087 has no one left to go to.
    liq = sim.of(V.Liquidated)
    assert [(e.user, e.asset, e.method, e.account_value) for e in liq] == [
        (ALICE, -1, "adl", -usd(19_045)), (ALICE, -1, "adlShortfall", -usd(10_087))]
    (adl,) = sim.of(V.PositionTransferred)
    assert (adl.dst, adl.sz, adl.px, adl.usd) == (CAROL, S(btc, "1"), P(btc, 70_000), -usd(8_958))
    assert _value(sim, CAROL) == 0 and sim.szi(CAROL, ETH_ID) == S(eth, "20")
    # Alice is flat with the shortfall as negative cash, and in the liquidation log
    assert sim.szi(ALICE, BTC_ID) == 0 and sim.cash(ALICE) == -usd(10_087)
    assert sim.ex.liquidations.log[-1].method == "adlShortfall"
    sim.audit()


def test_adl_cancels_the_reduce_only_orders_a_counterparty_no_longer_has_a_position_for(sim: Sim) -> None:
    """Was: ADL closed Carol's short but left her resting reduce-only buy in the book with no
    position to reduce (found by tests/property/test_engine_properties.py)."""
    _btc20(sim)
    for user, amount in ((ALICE, 11_000), (CAROL, 100_000)):
        sim.deposit(user, amount)
    sim.order(CAROL, BTC_ID, False, 100_000, "1")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    oid = sim.order(CAROL, BTC_ID, True, 60_000, "0.5", reduce_only=True).oid
    sim.tick(BTC_ID, 70_000)
    # Alice −19,045: ADL closes Carol's whole short (she pays the 19,045 out of her 129,985)
    (adl,) = sim.of(V.PositionTransferred)
    assert (adl.dst, adl.usd) == (CAROL, -usd(19_045)) and sim.szi(CAROL, BTC_ID) == 0
    assert sim.closed() == {oid: "reduceOnlyCanceled"} and oid not in sim.ex.orders.orders
    sim.audit()


def _vault_takes_alice_long(sim: Sim, liquidation: LiquidationParams) -> None:
    """Alice's 1 BTC long from 100,000 meets a 94,000 mark with no bids: value 7,000 − 45 − 6,000 =
    955 < 2/3 of MM 2,350, so the backstop vault ($100,000) takes it over at the mark."""
    _btc20(sim, liquidation=liquidation)
    for user, amount in ((CAROL, 100_000), (ALICE, 7_000), (BOB, 1_000_000), (MAIN_BACKSTOP, 100_000)):
        sim.deposit(user, amount)
    sim.order(CAROL, BTC_ID, False, 100_000, "1")
    sim.order(ALICE, BTC_ID, True, 100_000, "1")
    sim.tick(BTC_ID, 94_000)


def test_backstop_vault_unwinds_a_taken_over_position_into_the_book_slice_by_slice(sim: Sim) -> None:
    _vault_takes_alice_long(sim, LiquidationParams(unwind_ntl_per_tick=usd(30_000), unwind_slippage_bps=100))
    spec = sim.specs[0]
    # the vault's first unwind slice finds no bid either (IOC, nothing filled)
    assert _methods(sim, ALICE) == ["market", "backstop"]
    assert sim.szi(MAIN_BACKSTOP, BTC_ID) == S(spec, "1")
    slice_lots = usd(30_000) // P(spec, 94_000)  # 0.31914 BTC
    assert slice_lots == S(spec, "0.31914")
    # Bob bids 0.2 at 93,500 and 1 at 92,000; the vault sells at no less than 94,000 × 99% = 93,060
    sim.order(BOB, BTC_ID, True, 93_500, "0.2")
    sim.order(BOB, BTC_ID, True, 92_000, "1")
    sim.tick(BTC_ID, 94_000)
    fills = [(f.taker, f.px, f.sz) for f in sim.of(V.Fill)]
    assert fills == [(MAIN_BACKSTOP, P(spec, 93_500), S(spec, "0.2"))]
    assert sim.szi(MAIN_BACKSTOP, BTC_ID) == S(spec, "0.8")
    sim.tick(BTC_ID, 94_000)
    assert not sim.of(V.Fill)  # 92,000 is beyond the vault's 1% slippage: it waits
    sim.order(BOB, BTC_ID, True, 93_400, "1")
    sim.tick(BTC_ID, 94_000)
    assert [(f.px, f.sz) for f in sim.of(V.Fill)] == [(P(spec, 93_400), slice_lots)]
    assert sim.szi(MAIN_BACKSTOP, BTC_ID) == S(spec, "0.8") - slice_lots
    sim.audit()


def test_vaults_hold_what_they_take_over_by_default(sim: Sim) -> None:
    _vault_takes_alice_long(sim, LiquidationParams())
    sim.order(BOB, BTC_ID, True, 93_900, "1")
    sim.tick(BTC_ID, 94_000)
    assert sim.szi(MAIN_BACKSTOP, BTC_ID) == S(sim.specs[0], "1") and not sim.of(V.Fill)
    sim.audit()
