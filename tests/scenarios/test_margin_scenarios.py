"""Margin scenarios: cross and isolated accounts worked by hand, against Hyperliquid's rules
(shared/reference/hyperliquid-api.md §6.3 margin, §2.2 clearinghouseState "Derived relations",
§6.10 entry price and PnL, §3.7 leverage and isolated margin).

Units: BTC has sz_decimals 5 (lots of 0.00001 BTC) and prices in 0.1 USD; ETH-like has sz_decimals 4
and prices in 0.01 USD; USDC in micro-USDC.  Fees are the base tier, taker 0.045% and maker
0.015%, rounded up to the micro-USDC.
"""

from __future__ import annotations

from fractions import Fraction

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, ETH_ID, P, S, Sim, btc_spec, eth_spec, usd

from perpbox.exchange import events as V
from perpbox.exchange.results import OK, Error, Filled, OrderError, Resting
from perpbox.market.margin import MarginTable
from perpbox.market.spec import FeeSchedule, MarginMode


def _summary(sim: Sim, user: str) -> dict[str, int]:
    m = sim.ex.margin
    a = sim.acct(user)
    return {
        "raw": a.raw_usd,
        "account_value": m.account_value(a),
        "margin_used": m.cross_initial_margin(a),
        "withdrawable": m.withdrawable(a),
    }


# ==================================================================================================
# cross
# ==================================================================================================
def test_long_at_10x_margin_used_upnl_and_withdrawable_after_price_move(sim: Sim) -> None:
    btc = sim.list_market(btc_spec(), 100_000)
    sim.deposit(ALICE, 10_000)
    sim.deposit(BOB, 10_000)
    assert sim.leverage(ALICE, BTC_ID, 10) == OK

    # Bob (20x cross, the default) rests an ask; Alice lifts it: 0.1 BTC at $100,000 = $10,000.
    assert sim.order(BOB, BTC_ID, False, 100_000, "0.1") == Resting(1)
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.1") == Filled(
        oid=2, total_sz=S(btc, "0.1"), ntl=usd(10_000))
    (fill,) = sim.of(V.Fill)
    assert (fill.px, fill.sz, fill.taker, fill.maker) == (P(btc, 100_000), 10_000, ALICE, BOB)
    # taker 0.045% of $10,000 = $4.50; maker 0.015% = $1.50
    assert fill.taker_fee == usd("4.5") and fill.maker_fee == usd("1.5")
    assert sim.fees() == usd(6)

    pos = sim.pos(ALICE, BTC_ID)
    assert (pos.szi, pos.entry_ntl, pos.is_cross, pos.leverage) == (10_000, usd(10_000), True, 10)
    # cash: 10,000 − 10,000 − 4.5 = −4.5; account value = −4.5 + 0.1 × 100,000 = 9,995.5
    # margin used (10x) = 10,000 / 10 = 1,000; withdrawable = 9,995.5 − max(1,000, 10% × 10,000) = 8,995.5
    assert _summary(sim, ALICE) == {"raw": -usd("4.5"), "account_value": usd("9995.5"),
                                    "margin_used": usd(1_000), "withdrawable": usd("8995.5")}
    # Bob: cash 10,000 + 10,000 − 1.5 = 19,998.5; value 19,998.5 − 10,000 = 9,998.5; IM (20x) = 500, but
    # withdrawals keep max(IM, 10% of notional) = 1,000 → withdrawable 8,998.5
    assert _summary(sim, BOB) == {"raw": usd("19998.5"), "account_value": usd("9998.5"),
                                  "margin_used": usd(500), "withdrawable": usd("8998.5")}

    # mark to $105,000: uPnL = 0.1 × 5,000 = $500; position value 10,500; margin used 1,050
    assert sim.tick(BTC_ID, 105_000) == OK
    m = sim.ex.margin
    assert m.unrealized_pnl(pos) == usd(500)
    assert m.position_value(pos) == usd(10_500)
    # value = −4.5 + 10,500 = 10,495.5; withdrawable = 10,495.5 − 1,050 = 9,445.5
    assert _summary(sim, ALICE) == {"raw": -usd("4.5"), "account_value": usd("10495.5"),
                                    "margin_used": usd(1_050), "withdrawable": usd("9445.5")}
    # Bob: uPnL −500, value 9,498.5, IM 525, 10% = 1,050 → withdrawable 8,448.5
    assert m.unrealized_pnl(sim.pos(BOB, BTC_ID)) == -usd(500)
    assert _summary(sim, BOB) == {"raw": usd("19998.5"), "account_value": usd("9498.5"),
                                  "margin_used": usd(525), "withdrawable": usd("8448.5")}

    # mark drop to $95,000: uPnL −$500; value −4.5 + 9,500 = 9,495.5; margin used 950; withdrawable 8,545.5
    sim.tick(BTC_ID, 95_000)
    assert m.unrealized_pnl(pos) == -usd(500)
    assert _summary(sim, ALICE) == {"raw": -usd("4.5"), "account_value": usd("9495.5"),
                                    "margin_used": usd(950), "withdrawable": usd("8545.5")}

    # withdrawals are limited to withdrawable, to the micro-USDC
    assert sim.withdraw(ALICE, usd("8545.5") + 1) == Error("Insufficient balance for withdrawal")
    assert sim.withdraw(ALICE, usd("8545.5")) == OK
    assert _summary(sim, ALICE) == {"raw": -usd(8_550), "account_value": usd(950),
                                    "margin_used": usd(950), "withdrawable": 0}
    # nothing left for new exposure: 0.01 BTC more at 10x needs $95
    assert sim.order(ALICE, BTC_ID, True, 95_000, "0.01") == OrderError("Insufficient margin to place order. asset=0")
    assert sim.ex.ledger.withdrawals == usd("8545.5")
    sim.audit()


def test_cross_upnl_counts_as_margin_for_new_positions(sim: Sim) -> None:
    """Hyperliquid §6.3: cross unrealized pnl is usable as initial margin for new positions."""
    sim.list_market(btc_spec(), 100_000)
    sim.deposit(ALICE, 600)
    sim.deposit(BOB, 100_000)
    # 0.1 BTC at 20x needs $500: fits in $600
    sim.order(BOB, BTC_ID, False, 100_000, "0.2")
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.1"), Filled)
    # value 600 − 4.5 = 595.5; IM 500; available 95.5 < another 0.1 (IM 500)
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.1") == OrderError("Insufficient margin to place order. asset=0")
    # mark to $110,000: uPnL +1,000 → value 1,595.5; IM 550; available 1,045.5 ≥ 0.1 × 110,000 / 20 = 550
    sim.tick(BTC_ID, 110_000)
    assert sim.ex.margin.available_to_trade(sim.acct(ALICE)) == usd("1045.5")
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.1") == Filled(
        oid=4, total_sz=10_000, ntl=usd(10_000))
    sim.audit()


def test_order_margin_exactly_equal_to_available_is_accepted(sim: Sim) -> None:
    sim.list_market(btc_spec(), 100_000)
    sim.deposit(ALICE, 100)
    # 20x: 0.03 BTC × 100,000 = 3,000 → IM 150 > 100
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.03") == OrderError("Insufficient margin to place order. asset=0")
    (rej,) = sim.of(V.OrderRejected)
    assert rej.status == "perpMarginRejected"
    # 0.02 BTC → IM exactly 100: accepted (rests, margin is not reserved)
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.02") == Resting(2)
    sim.audit()


def test_resting_bid_margin_rechecked_at_match_is_margin_canceled(sim: Sim) -> None:
    """§6.5: margin is checked at placement and again for the resting side at each match."""
    btc = sim.list_market(btc_spec(), 100_000)
    sim.deposit(BOB, 100)
    sim.deposit(ALICE, 10_000)
    # each bid alone needs 0.01 × 100,000 / 20 = $50 of Bob's $100: both are accepted
    assert sim.order(BOB, BTC_ID, True, 100_000, "0.01") == Resting(1)
    assert sim.order(BOB, BTC_ID, True, 99_990, "0.01") == Resting(2)
    # Alice market-sells 0.02.  Fill 1: Bob pays 1,000 + maker fee 0.15 → cash −900.15, value 99.85,
    # IM 50 → 49.85 available; the second bid needs 0.01 × max(99,990, mark 100,000) / 20 = 50 → cancelled.
    st = sim.order(ALICE, BTC_ID, False, 90_000, "0.02", tif="FrontendMarket")
    assert st == Filled(oid=3, total_sz=S(btc, "0.01"), ntl=usd(1_000))
    assert sim.closed() == {2: "marginCanceled", 3: "canceled"}
    assert [f.maker_oid for f in sim.of(V.Fill)] == [1]
    assert sim.szi(BOB, BTC_ID) == 1_000 and sim.szi(ALICE, BTC_ID) == -1_000
    assert sim.cash(BOB) == -usd("900.15")
    sim.audit()


def test_margin_tier_limit_at_current_leverage(sim: Sim) -> None:
    """A 2-tier table: $0–10,000 at 40x, above $10,000 at 10x.  At 20x a position may not exceed
    $10,000 of notional (PerpMaxPosition); at 10x it may."""
    table = MarginTable.hyperliquid([(0, 40), (10_000, 10)])
    sim.list_market(btc_spec(margin_table=table), 100_000)
    sim.deposit(ALICE, 10_000)
    sim.deposit(BOB, 10_000)
    assert sim.leverage(BOB, BTC_ID, 10) == OK
    assert sim.order(BOB, BTC_ID, False, 100_000, "0.3") == Resting(1)
    # default leverage min(20, 40) = 20; 0.15 BTC × 100,000 = 15,000 > 10,000
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.15") == OrderError(
        "Order would cause position to exceed margin tier limit at current leverage asset=0")
    assert sim.of(V.OrderRejected)[0].status == "perpMaxPositionRejected"
    # $9,000 fits under the tier bound
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.09"), Filled)
    # growing it to 0.15 ($15,000) does not
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.06"), OrderError)
    # at 10x there is no cap
    assert sim.leverage(ALICE, BTC_ID, 10) == OK
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.06"), Filled)
    assert sim.szi(ALICE, BTC_ID) == 15_000
    # and going back to 20x with a $15,000 position is refused (the venue's wording here is unconfirmed)
    assert isinstance(sim.leverage(ALICE, BTC_ID, 20), Error)
    assert sim.pos(ALICE, BTC_ID).leverage == 10
    sim.audit()


# ==================================================================================================
# leverage
# ==================================================================================================
def test_update_leverage_rules(sim: Sim) -> None:
    sim.list_market(btc_spec(), 100_000)
    sim.list_market(eth_spec(margin_mode=MarginMode.STRICT_ISOLATED), 2_000)
    sim.deposit(ALICE, 1_000)
    sim.deposit(BOB, 100_000)
    # out of range: 1..maxLeverage (40)
    assert sim.leverage(ALICE, BTC_ID, 0) == Error("Invalid leverage value.")
    assert sim.leverage(ALICE, BTC_ID, 41) == Error("Invalid leverage value.")
    assert sim.leverage(ALICE, BTC_ID, 40) == OK
    # cross on an isolated-only market
    assert sim.leverage(ALICE, ETH_ID, 10, cross=True) == Error("Cross margin is not allowed for this asset.")
    assert sim.leverage(ALICE, ETH_ID, 10, cross=False) == OK
    # switching type with no position is fine, with one it is not
    assert sim.leverage(ALICE, BTC_ID, 20, cross=False) == OK
    assert sim.leverage(ALICE, BTC_ID, 20, cross=True) == OK
    sim.order(BOB, BTC_ID, False, 100_000, "1")
    # 0.18 BTC = $18,000 at 20x → IM 900; fee 8.1; value 991.9
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.18"), Filled)
    assert sim.leverage(ALICE, BTC_ID, 20, cross=False) == Error("Cannot switch leverage type with open position.")
    # decreasing to 10x needs IM 1,800 > 991.9
    assert sim.leverage(ALICE, BTC_ID, 10) == Error(
        "Cross position does not have sufficient margin available to decrease leverage.")
    # raising is always allowed; 19x needs ceil(18,000 / 19) = 947.368422 ≤ 991.9
    assert sim.leverage(ALICE, BTC_ID, 40) == OK
    assert sim.ex.margin.cross_initial_margin(sim.acct(ALICE)) == usd(450)
    assert sim.leverage(ALICE, BTC_ID, 19) == OK
    assert sim.ex.margin.cross_initial_margin(sim.acct(ALICE)) == 947_368_422
    pos = sim.pos(ALICE, BTC_ID)
    assert (pos.is_cross, pos.leverage) == (True, 19)
    assert sim.leverage(ALICE, 7, 10) == Error("Unknown asset.")
    sim.audit()


# ==================================================================================================
# isolated
# ==================================================================================================
def _open_isolated_eth_long(sim: Sim) -> None:
    """Alice, $1,000, 20x isolated, buys 1 ETH at $2,000 from Bob's resting ask."""
    sim.list_market(eth_spec(), 2_000)
    sim.deposit(ALICE, 1_000)
    sim.deposit(BOB, 10_000)
    sim.deposit(CAROL, 10_000)
    assert sim.leverage(ALICE, ETH_ID, 20, cross=False) == OK
    assert sim.order(BOB, ETH_ID, False, 2_000, "1") == Resting(1)
    assert sim.order(ALICE, ETH_ID, True, 2_000, "1") == Filled(oid=2, total_sz=10_000, ntl=usd(2_000))


def test_isolated_20x_long_bucket_margin_value_and_add_remove_limits(sim: Sim) -> None:
    _open_isolated_eth_long(sim)
    m = sim.ex.margin
    acct, pos = sim.acct(ALICE), sim.pos(ALICE, ETH_ID)
    # IM = 2,000 / 20 = $100 moved from cross cash into the bucket; the taker fee 0.045% × 2,000 = 0.90 is
    # paid by the position.  rawUsd (bucket) = 100 − 2,000 − 0.9 = −1,900.9
    assert acct.raw_usd == usd(900)
    assert pos.iso_raw == -usd("1900.9")
    # Hyperliquid: isolated marginUsed = rawUsd + szi × markPx = −1,900.9 + 2,000 = 99.1
    assert m.isolated_value(pos) == usd("99.1")
    assert m.account_value(acct) == usd("999.1")
    # the isolated position is outside the cross summary: cross margin used 0, withdrawable = cross cash
    assert m.cross_initial_margin(acct) == 0
    assert m.withdrawable(acct) == usd(900)

    # add $150 → bucket −1,750.9, value 249.1; cross 750
    assert sim.iso_margin(ALICE, ETH_ID, usd(150)) == OK
    (mv,) = sim.of(V.IsolatedMarginMoved)
    assert mv.usd == usd(150)
    assert (acct.raw_usd, pos.iso_raw, m.isolated_value(pos)) == (usd(750), -usd("1750.9"), usd("249.1"))
    # cannot add more than the cross account has available
    assert isinstance(sim.iso_margin(ALICE, ETH_ID, usd(750) + 1), Error)

    # removal keeps max(IM = 100, 10% × 2,000 = 200) = 200 in the position: at most 49.1 can leave
    assert sim.iso_margin(ALICE, ETH_ID, -(usd("49.1") + 1)) == Error(
        "Insufficient margin available to remove from isolated position.")
    assert sim.iso_margin(ALICE, ETH_ID, -usd("49.1")) == OK
    assert m.isolated_value(pos) == usd(200)
    assert acct.raw_usd == usd("799.1")
    assert m.account_value(acct) == usd("999.1")

    # mark to $2,100: isolated uPnL (+100) stays in the position: value 300, cross unchanged
    sim.tick(ETH_ID, 2_100)
    assert m.isolated_value(pos) == usd(300)
    assert m.unrealized_pnl(pos) == usd(100)
    assert m.withdrawable(acct) == usd("799.1")
    # now max(105, 210) = 210 must stay: 90 can leave
    assert isinstance(sim.iso_margin(ALICE, ETH_ID, -(usd(90) + 1)), Error)
    assert sim.iso_margin(ALICE, ETH_ID, -usd(90)) == OK
    assert (acct.raw_usd, m.isolated_value(pos)) == (usd("889.1"), usd(210))
    # cross positions cannot use updateIsolatedMargin
    assert sim.iso_margin(BOB, ETH_ID, usd(10)) == Error("Position does not use isolated margin.")
    sim.audit()


def test_closing_isolated_position_returns_whole_bucket_to_cross_net_of_closing_fee(sim: Sim) -> None:
    """Close the 1 ETH 20x isolated long at $2,100: the bucket (−1,900.9 + 2,100 = 199.1) goes back to
    cross and the closing taker fee (0.045% × 2,100 = 0.945) is paid; the flat position holds nothing.
    Cross cash = 900 + 199.1 − 0.945 = 1,098.155 = 1,000 − 0.9 − 0.945 + 100 profit."""
    _open_isolated_eth_long(sim)
    assert sim.order(CAROL, ETH_ID, True, 2_100, "1") == Resting(3)
    assert isinstance(sim.order(ALICE, ETH_ID, False, 2_100, "1"), Filled)
    acct, pos = sim.acct(ALICE), sim.pos(ALICE, ETH_ID)
    m = sim.ex.margin
    assert pos.szi == 0
    assert pos.realized_pnl == usd(100)
    assert m.account_value(acct) == usd("1098.155")
    assert pos.iso_raw == 0, "a closed isolated position must not keep a (negative) bucket"
    assert acct.raw_usd == usd("1098.155")
    # so withdrawing everything leaves the account at exactly zero, never below
    assert m.withdrawable(acct) == usd("1098.155")
    sim.audit()


def test_isolated_partial_close_releases_proportional_equity(sim: Sim) -> None:
    _open_isolated_eth_long(sim)
    acct, pos = sim.acct(ALICE), sim.pos(ALICE, ETH_ID)
    sim.order(CAROL, ETH_ID, True, 2_100, "0.5")
    assert isinstance(sim.order(ALICE, ETH_ID, False, 2_100, "0.5"), Filled)
    # the position pays its taker fee first (0.045% × 1,050 = 0.4725), so its equity at the fill
    # price is −1,900.9 − 0.4725 + 2,100 = 198.6275; half of it (99.31375) returns to cross.
    # bucket: −1,900.9 − 0.4725 + 1,050 (sale) − 99.31375 = −950.68625
    assert acct.raw_usd == usd(900) + usd("99.31375")
    assert pos.iso_raw == -usd("950.68625")
    # its value at mark 2,100 is −950.68625 + 0.5 × 2,100 = 99.31375, the half the position kept
    sim.tick(ETH_ID, 2_100)
    assert sim.ex.margin.isolated_value(pos) == usd("99.31375")
    assert pos.szi == 5_000
    assert pos.realized_pnl == usd(50)
    sim.audit()


def test_strict_isolated_market_refuses_margin_removal(sim: Sim) -> None:
    sim.list_market(eth_spec(margin_mode=MarginMode.STRICT_ISOLATED), 2_000)
    sim.deposit(ALICE, 1_000)
    sim.deposit(BOB, 10_000)
    sim.order(BOB, ETH_ID, False, 2_000, "1")
    assert sim.leverage(ALICE, ETH_ID, 10, cross=False) == OK
    assert isinstance(sim.order(ALICE, ETH_ID, True, 2_000, "1"), Filled)
    pos = sim.pos(ALICE, ETH_ID)
    # opened isolated by construction: 2,000 / 10 = 200 in the bucket
    assert not pos.is_cross and sim.cash(ALICE) == usd(800)
    assert sim.iso_margin(ALICE, ETH_ID, usd(500)) == OK
    # even with far more than max(IM, 10%) in the bucket, nothing can be removed
    assert sim.iso_margin(ALICE, ETH_ID, -usd(1)) == Error(
        "Insufficient margin available to remove from isolated position.")
    # Bob's default position on an isolated-only market is isolated, at min(20, 25) = 20x
    bpos = sim.pos(BOB, ETH_ID)
    assert (bpos.is_cross, bpos.leverage, bpos.iso_raw) == (False, 20, usd(100) + usd(2_000) - usd("0.3"))
    sim.audit()


def test_no_cross_market_allows_margin_removal(sim: Sim) -> None:
    sim.list_market(eth_spec(margin_mode=MarginMode.NO_CROSS), 2_000)
    sim.deposit(ALICE, 1_000)
    sim.deposit(BOB, 10_000)
    sim.order(BOB, ETH_ID, False, 2_000, "1")
    sim.leverage(ALICE, ETH_ID, 10, cross=False)
    sim.order(ALICE, ETH_ID, True, 2_000, "1")
    sim.iso_margin(ALICE, ETH_ID, usd(500))
    # value 200 + 500 − 0.9 = 699.1; keep max(200, 200) → 499.1 removable
    assert sim.ex.margin.isolated_value(sim.pos(ALICE, ETH_ID)) == usd("699.1")
    assert isinstance(sim.iso_margin(ALICE, ETH_ID, -(usd("499.1") + 1)), Error)
    assert sim.iso_margin(ALICE, ETH_ID, -usd("499.1")) == OK
    sim.audit()


def test_isolated_decrease_leverage_needs_margin_in_the_bucket(sim: Sim) -> None:
    _open_isolated_eth_long(sim)
    # bucket value 99.1; 10x needs 2,000 / 10 = 200
    assert sim.leverage(ALICE, ETH_ID, 10, cross=False) == Error(
        "Isolated position does not have sufficient margin available to decrease leverage.")
    assert sim.leverage(ALICE, ETH_ID, 10, cross=True) == Error("Cannot switch leverage type with open position.")
    assert sim.iso_margin(ALICE, ETH_ID, usd("100.9")) == OK  # value 200
    assert sim.leverage(ALICE, ETH_ID, 10, cross=False) == OK
    sim.audit()


# ==================================================================================================
# Hyperliquid's own clearinghouseState samples, reproduced
# ==================================================================================================
def test_clearinghouse_doc_example_isolated_eth_20x_rawusd_marginused_account_value(sim: Sim) -> None:
    """hyperliquid-api.md §2.2: ETH szi 0.0335, entryPx 2986.3, isolated 20x, rawUsd −95.059824,
    positionValue 100.02765, unrealizedPnl −0.0134, marginUsed 4.967826, returnOnEquity −0.0026789;
    cross accountValue 13104.514502 = withdrawable, all accountValue 13109.482328, totalRawUsd 13009.454678.

    Entry notional 0.0335 × 2,986.3 = 100.04105; IM = ceil(100.04105 / 20) = 5.002053.  The example's
    account fee tier is not given; a taker rate of 0.020818% (fee ceil(0.020826545…) = 0.020827) makes
    rawUsd = 5.002053 − 100.04105 − 0.020827 = −95.059824 exactly.  Mark = 100.02765 / 0.0335 = 2,985.9."""
    spec = eth_spec(margin_table=MarginTable.single(50), fees=FeeSchedule(maker=15_000, taker=20_818))
    sim.list_market(spec, "2986.3")
    sim.deposit(ALICE, "13109.516555")  # cross cash after the trade: 13109.516555 − 5.002053 = 13104.514502
    sim.deposit(BOB, 10_000)
    sim.leverage(ALICE, ETH_ID, 20, cross=False)
    sim.order(BOB, ETH_ID, False, "2986.3", "0.0335")
    assert sim.order(ALICE, ETH_ID, True, "2986.3", "0.0335") == Filled(
        oid=2, total_sz=335, ntl=usd("100.04105"))
    sim.tick(ETH_ID, "2985.9")
    m = sim.ex.margin
    acct, pos = sim.acct(ALICE), sim.pos(ALICE, ETH_ID)
    assert pos.iso_raw == -usd("95.059824")  # rawUsd
    assert m.position_value(pos) == usd("100.02765")  # positionValue
    assert m.unrealized_pnl(pos) == -usd("0.0134")  # unrealizedPnl
    assert m.isolated_value(pos) == usd("4.967826")  # marginUsed = rawUsd + szi × markPx
    assert m.cross_value(acct) == usd("13104.514502")  # crossMarginSummary.accountValue
    assert acct.raw_usd + pos.iso_raw == usd("13009.454678")  # marginSummary.totalRawUsd
    assert m.account_value(acct) == usd("13109.482328")  # marginSummary.accountValue
    assert m.withdrawable(acct) == usd("13104.514502")  # withdrawable
    # returnOnEquity = uPnL / (|szi| × entryPx / leverage) = −0.0134 / 5.0020525 = −0.0026789
    roe = Fraction(m.unrealized_pnl(pos), Fraction(pos.entry_ntl, pos.leverage))
    assert round(float(roe), 7) == -0.0026789
    sim.audit()


def test_clearinghouse_testnet_sample_btc_cross_5x_margin_used(sim: Sim) -> None:
    """hyperliquid-api.md §2.2 [T1]: BTC szi 0.00015, 5x cross, entryPx 79449.2, positionValue 11.9163,
    marginUsed 2.38326 (= 11.9163 / 5).  Mark = 11.9163 / 0.00015 = 79,442.

    79449.2 has 6 significant figures, so it is no order price: it is the average of a sweep,
    0.00014 at 79,449 and 0.00001 at 79,452 → (14 × 79,449 + 79,452) / 15 = 79,449.2."""
    btc = sim.list_market(btc_spec(), 79_450)
    sim.deposit(ALICE, 100)
    sim.deposit(BOB, 100)
    sim.deposit(CAROL, 1_000)
    sim.leverage(ALICE, BTC_ID, 5)
    assert isinstance(sim.order(BOB, BTC_ID, False, 79_449, "0.00014"), Resting)
    assert isinstance(sim.order(CAROL, BTC_ID, False, 79_452, "0.001"), Resting)
    # ntl = 0.00014 × 79,449 + 0.00001 × 79,452 = 11.12286 + 0.79452 = 11.91738
    assert sim.order(ALICE, BTC_ID, True, 79_452, "0.00015") == Filled(
        oid=3, total_sz=15, ntl=usd("11.91738"))
    sim.tick(BTC_ID, 79_442)
    m = sim.ex.margin
    pos = sim.pos(ALICE, BTC_ID)
    assert pos.entry_ntl // pos.szi == P(btc, "79449.2")  # entryPx
    assert m.position_value(pos) == usd("11.9163")  # positionValue
    assert m.initial_margin(pos) == usd("2.38326")  # marginUsed = positionValue / 5
    assert m.cross_initial_margin(sim.acct(ALICE)) == usd("2.38326")
    # uPnL = 11.9163 − 11.91738 = −0.00108 (the sample shows −0.00109: its entryPx is display-rounded)
    assert m.unrealized_pnl(pos) == -usd("0.00108")
    sim.audit()


def test_flipping_a_cross_position_releases_the_closed_sides_margin(sim: Sim) -> None:
    """Alice, $1,100 at 10x, long 0.1 at 100,000 (IM 1,000): value 1,095.5, available 95.5.  Selling
    0.2 closes the long and opens a 0.1 short: its IM (1,000) is checked against the value with the
    old position's margin released (1,095.5), so the flip is accepted."""
    sim.list_market(btc_spec(), 100_000)
    sim.deposit(ALICE, 1_100)
    sim.deposit(BOB, 100_000)
    sim.leverage(ALICE, BTC_ID, 10)
    sim.order(BOB, BTC_ID, False, 100_000, "0.1")
    sim.order(ALICE, BTC_ID, True, 100_000, "0.1")
    assert sim.ex.margin.available_to_trade(sim.acct(ALICE)) == usd("95.5")
    sim.order(BOB, BTC_ID, True, 100_000, "0.3")
    assert sim.order(ALICE, BTC_ID, False, 100_000, "0.2") == Filled(oid=4, total_sz=20_000,
                                                                        ntl=usd(20_000))
    assert sim.szi(ALICE, BTC_ID) == -10_000
    # a flip to a 0.2 short would need IM 2,000 > 1,095.5 − 9 (fees so far 4.5 + 9)
    assert sim.order(ALICE, BTC_ID, False, 100_000, "0.1") == OrderError("Insufficient margin to place order. asset=0")
    assert sim.ex.margin.account_value(sim.acct(ALICE)) == usd(1_100) - usd("4.5") - usd(9)
    sim.audit()
