"""The engine's read surface (``Exchange.reads``): real numbers derived by hand, values that are
copies, and work that follows the answer.

The market: BTC, szDecimals 5, so a lot is 0.00001 BTC and a price unit $0.1; a 20x single-tier
margin table (maintenance rate 1/40); the venue's base fees, taker 0.045% and maker 0.015%.
Alice deposits $1,000 and buys 0.1 BTC (10,000 lots) at $50,000 (500,000 price units) from Bob's
resting sell: notional 500,000 × 10,000 = 5,000,000,000 micro-USDC ($5,000).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import msgspec
import pytest
import test_info_views_linear as linear  # its line counter (tests/unit is on the path, as for snapshot_kit)

import perpbox.exchange.reads as reads_module
from perpbox.core.numbers import USD
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange.reads import CashAudit, MarginSummary, OrderView, PositionView, PriceView
from perpbox.exchange.results import OK, Canceled, Filled, Resting, Statuses
from perpbox.ledger.ledger import FEE_ACCOUNT
from perpbox.market.margin import MarginTable
from perpbox.market.spec import MarketSpec

ALICE = "0x" + "a1" * 20
BOB = "0x" + "b0" * 20
CAROL = "0x" + "c4" * 20
BTC = 0
SPEC = MarketSpec("BTC", BTC, 5, MarginTable.single(20))
PX = 500_000  # $50,000 in price units of $0.1
LOTS = 10_000  # 0.1 BTC
NOTIONAL = 5_000 * USD


class Venue:
    def __init__(self) -> None:
        self.ex = Exchange()
        self.ts = 1_700_000_000_000
        assert self.do(C.AddMarket(ts=0, spec=SPEC, mark_px=PX)) == OK
        for user in (ALICE, BOB, CAROL):
            assert self.do(C.Deposit(ts=0, user=user, usd=1_000 * USD)) == OK

    def do(self, cmd: C.Command) -> Any:
        self.ts += 1
        return self.ex.execute(msgspec.structs.replace(cmd, ts=self.ts)).response

    def order(self, user: str, is_buy: bool, px: int, sz: int, tif: str = "Gtc", cloid: str | None = None) -> Any:
        out = self.do(C.PlaceOrders(ts=0, user=user, orders=[
            C.OrderRequest(asset=BTC, is_buy=is_buy, px=px, sz=sz, tif=tif, cloid=cloid)]))
        return out[0]

    def alice_long(self) -> None:
        assert isinstance(self.order(BOB, False, PX, LOTS), Resting)
        assert isinstance(self.order(ALICE, True, PX, LOTS, "Ioc"), Filled)


@pytest.fixture
def v() -> Venue:
    venue = Venue()
    venue.alice_long()
    return venue


def test_a_long_at_50000_has_these_margin_figures(v: Venue) -> None:
    r = v.ex.reads
    # taker fee: 0.045% of $5,000 = $2.25; the buy's cost moves out of cross cash into the position
    raw = 1_000 * USD - NOTIONAL - 2_250_000
    assert r.positions(ALICE) == (PositionView(
        asset=BTC, szi=LOTS, entry_ntl=NOTIONAL, leverage=20, is_cross=True, iso_raw=0, value=NOTIONAL,
        unrealized_pnl=0, isolated_value=NOTIONAL,  # no bucket + size × price (a cross position)
        initial_margin=250 * USD,  # $5,000 / 20
        maintenance_margin=125 * USD,  # $5,000 / 40
        cum_funding=0, realized_pnl=0),)
    assert r.margin_summary(ALICE) == MarginSummary(
        account_value=997_750_000,  # $1,000 − $2.25
        cross_value=997_750_000, cross_notional=NOTIONAL, cross_initial_margin=250 * USD,
        cross_maintenance_margin=125 * USD,
        withdrawable=497_750_000,  # $997.75 − max($250 initial, 10% of $5,000)
        available_to_trade=747_750_000,  # $997.75 − $250
        raw_usd=raw, isolated_raw=0, isolated_notional=0, isolated_value=0)
    # the maker: short 0.1 BTC, paid 0.015% = $0.75, and the cash of the sale
    bob = r.margin_summary(BOB)
    assert bob is not None and bob.account_value == 1_000 * USD - 750_000
    assert bob.raw_usd == 1_000 * USD + NOTIONAL - 750_000
    assert r.position(BOB, BTC) == msgspec.structs.replace(
        r.positions(ALICE)[0], szi=-LOTS, isolated_value=-NOTIONAL)
    assert r.prices(BTC) == PriceView(mark=PX, oracle=PX, last=PX)
    oi = r.open_interest(BTC)
    assert (oi.size, oi.notional) == (LOTS, NOTIONAL)


def test_closing_half_higher_realises_the_difference(v: Venue) -> None:
    """Half the long (5,000 lots) sold at $51,000: 5,000 × 10,000 price units = $50 of profit; the
    last trade moves, the mark (set at listing, no feed since) does not."""
    r = v.ex.reads
    assert isinstance(v.order(CAROL, True, 510_000, 5_000), Resting)
    assert isinstance(v.order(ALICE, False, 510_000, 5_000, "Ioc"), Filled)
    pos = r.position(ALICE, BTC)
    assert pos is not None
    assert (pos.szi, pos.entry_ntl, pos.realized_pnl) == (5_000, NOTIONAL // 2, 50 * USD)
    assert r.prices(BTC) == PriceView(mark=PX, oracle=PX, last=510_000)
    # the sale's fee: 0.045% of 5,000 × 510,000 price units ($2,550) is $1.1475; the rest is at the mark
    summary = r.margin_summary(ALICE)
    assert summary is not None and summary.account_value == 1_000 * USD - 2_250_000 - 1_147_500 + 50 * USD


def test_markets_books_and_orders(v: Venue) -> None:
    r = v.ex.reads
    assert r.markets() == r.markets("") == (SPEC,) and r.market(BTC) == SPEC and r.market(7) is None
    assert r.markets("xyz") == () and r.market_count() == 1
    assert r.dex_names() == ("",) and r.dex("xyz") is None
    assert r.dex("") is not None and r.dex("").index == 0
    cloid = "0x" + "11" * 16
    assert v.order(ALICE, True, 490_000, 300, cloid=cloid) == Resting(3, cloid)
    assert v.order(ALICE, True, 495_000, 200) == Resting(4)
    assert v.order(BOB, False, 520_000, 100) == Resting(5)
    assert r.best_bid_ask(BTC) == (495_000, 520_000)
    assert r.book_levels(BTC, True, 5) == ((495_000, 200, 1), (490_000, 300, 1))
    assert r.book_levels(BTC, True, 1) == ((495_000, 200, 1),)
    orders = r.open_orders(ALICE)
    assert [o.oid for o in orders] == [3, 4] and all(isinstance(o, OrderView) for o in orders)
    assert (orders[0].px, orders[0].sz, orders[0].status, orders[0].cloid) == (490_000, 300, "open", cloid)
    assert r.order_id_by_cloid(ALICE, cloid) == 3 and r.order_id_by_cloid(BOB, cloid) is None
    assert r.order(5) == r.open_orders(BOB)[0] and r.order(1) is None  # oid 1 filled: done
    # selling 200 lots into the bids at $49,500 and 100 at $49,000: (99,000,000 + 49,000,000) / 300
    sell, buy = r.impact_prices(BTC, 148 * USD)
    assert sell == Fraction(148 * USD, 300) and buy is None  # one ask of 100 lots ($52) is too thin


def test_views_are_copies(v: Venue) -> None:
    """Nothing returned is the engine's own object: changing it (or keeping it) leaves the state hash
    alone, and a later command leaves what an earlier read returned as it was."""
    r = v.ex.reads
    assert isinstance(v.order(ALICE, True, 490_000, 300), Resting)
    before = v.ex.state_hash()
    pos, summary, orders = r.positions(ALICE), r.margin_summary(ALICE), r.open_orders(ALICE)
    acct, levels = r.account(ALICE), r.book_levels(BTC, True, 5)
    for view in (pos[0], summary, orders[0], acct):
        with pytest.raises(AttributeError):  # frozen: a field cannot be assigned
            setattr(view, msgspec.structs.fields(view)[0].name, 0)
    assert isinstance(levels, tuple) and isinstance(orders, tuple) and isinstance(r.agents_of(ALICE), tuple)
    assert v.ex.state_hash() == before
    assert isinstance(v.order(BOB, False, 490_000, 300, "Ioc"), Filled)  # fills the bid, Alice doubles
    assert v.do(C.Deposit(ts=0, user=ALICE, usd=500 * USD)) == OK
    assert pos[0].szi == LOTS and orders[0].sz == 300 and orders[0].status == "open"
    assert summary is not None and summary.raw_usd == 1_000 * USD - NOTIONAL - 2_250_000
    assert levels == ((490_000, 300, 1),)
    assert r.open_orders(ALICE) == () and r.positions(ALICE)[0].szi == LOTS + 300
    assert r.book_levels(BTC, True, 5) == ()


def test_funding_settles_the_interest_rate(v: Venue) -> None:
    """With no premium, an interval pays Hyperliquid's interest rate: 0.01% per 8 hours is 0.00125%
    an hour (1,250 in 1e-8); on the $5,000 long that is $0.0625 (62,500 micro-USDC) an hour, paid
    by Alice (positive: paid) and received by Bob."""
    hour = 3_600_000
    first = (v.ts // hour + 1) * hour
    for k in range(4):
        v.ex.apply(C.Tick(ts=first + k * hour + 1))
    r = v.ex.reads
    records = r.funding_records(BTC)
    assert [(f.ts, f.rate, f.premium) for f in records] == [(first + k * hour + 1, 1_250, 0) for k in range(4)]
    assert r.funding_history(BTC, first + hour, first + 3 * hour, 10) == records[1:3]  # the next is 1 ms past the end
    assert r.funding_history(BTC, first + hour, first + 9 * hour, 2) == records[1:3]
    view = r.funding(BTC)
    assert (view.interval_ms, view.predicted_rate, view.next_funding_ts) == (hour, 1_250, first + 4 * hour)
    alice, bob = r.position(ALICE, BTC), r.position(BOB, BTC)
    assert alice is not None and bob is not None
    assert (alice.cum_funding, bob.cum_funding) == (4 * 62_500, -4 * 62_500)


def test_accounts_and_wallets(v: Venue) -> None:
    r = v.ex.reads
    assert r.account("0x" + "99" * 20) is None and not r.has_account("0x" + "99" * 20)
    assert r.margin_summary("0x" + "99" * 20) is None and r.positions("0x" + "99" * 20) == ()
    acct = r.account(ALICE)
    assert acct is not None and (acct.master, acct.subs) == (None, ())
    assert r.perp_value(ALICE) == 997_750_000 and r.perp_value("0x" + "99" * 20) is None
    assert r.spot_balance(ALICE) == 0
    assert r.clearinghouse(ALICE, "") == ALICE and r.clearinghouse(ALICE, "xyz") is None
    assert r.traded_notional(ALICE) == NOTIONAL
    assert r.fee_rates(ALICE, v.ts) == (45_000, 15_000)
    assert r.adl_rank(ALICE, BTC) == (0, 1) and r.adl_queue(BTC, False) == (BOB,)



def test_margin_prices_are_a_copy(v: Venue) -> None:
    """BTC's margin price is its mark from the listing ($50,000); a trade at $51,000 moves the last
    price only (the market has a mark), and changing the returned dict changes nothing."""
    r = v.ex.reads
    prices = r.margin_prices()
    assert prices == {BTC: PX}
    before = v.ex.state_hash()
    prices[BTC] = 1
    prices[7] = 1
    assert v.ex.state_hash() == before and r.margin_prices() == {BTC: PX} and r.mark(BTC) == PX
    assert isinstance(v.order(CAROL, True, 510_000, 5_000), Resting)
    assert isinstance(v.order(ALICE, False, 510_000, 5_000, "Ioc"), Filled)
    assert r.margin_prices() == {BTC: PX} and r.prices(BTC).last == 510_000


def test_addresses_and_the_cash_audit(v: Venue) -> None:
    """Three deposits of $1,000; the trade moves $5,000 from Alice's cash to Bob's and the fees to the
    fee account: Alice −$4,002.25 (taker 0.045% of $5,000 = $2.25), Bob $5,999.25 (maker 0.015% =
    $0.75), Carol $1,000, fees $3.00: Σ $3,000.  Carol then withdraws $100."""
    r = v.ex.reads
    assert r.addresses() == (FEE_ACCOUNT, ALICE, BOB, CAROL)  # sorted: the fee account is 0x0…0fee00
    assert [acct.raw_usd for a in r.addresses() if (acct := r.account(a)) is not None] == [
        3 * USD, 1_000 * USD - NOTIONAL - 2_250_000, 1_000 * USD + NOTIONAL - 750_000, 1_000 * USD]
    assert r.cash_audit() == CashAudit(cash=3_000 * USD, deposits=3_000 * USD, withdrawals=0)
    assert v.do(C.Withdraw(ts=0, user=CAROL, usd=100 * USD)) == OK
    assert r.cash_audit() == CashAudit(cash=2_900 * USD, deposits=3_000 * USD, withdrawals=100 * USD)


def test_open_order_count(v: Venue) -> None:
    """Alice's two resting bids count, Bob's filled ask (oid 1) no longer does; Bob's new ask does."""
    r = v.ex.reads
    assert isinstance(v.order(ALICE, True, 490_000, 300), Resting)
    assert isinstance(v.order(ALICE, True, 495_000, 200), Resting)
    assert isinstance(v.order(BOB, False, 520_000, 100), Resting)
    assert (r.open_order_count(ALICE), r.open_order_count(BOB), r.open_order_count(CAROL)) == (2, 1, 0)
    assert r.open_order_count("0x" + "99" * 20) == 0 and r.open_order_count(ALICE) == len(r.open_orders(ALICE))
    assert v.do(C.Cancel(ts=0, user=ALICE, asset=BTC, oid=3)) == Statuses((Canceled(),))
    assert r.open_order_count(ALICE) == 1


READS = str(Path(reads_module.__file__).resolve())


def lines_in_reads(fn: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    """Python lines executed in ``exchange/reads.py`` while ``fn`` runs (counted, never timed), by
    the /info linearity test's counter pointed at this one file."""
    with monkeypatch.context() as m:
        m.setattr(linear, "COUNTED", (READS,))
        return linear.work(fn)


def alice_reads_work(others: int, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], tuple[int, ...]]:
    """Alice (long, three resting bids) beside Bob with ``others`` resting asks: the orders whose view
    her open-orders read builds, and the lines her reads execute."""
    v = Venue()
    v.alice_long()
    for i in range(3):
        assert isinstance(v.order(ALICE, True, 400_000 + i * 10, 300), Resting)
    for i in range(others):
        assert isinstance(v.order(BOB, False, 600_000 + i * 10, 300), Resting)
    r = v.ex.reads
    built: list[int] = []
    real = reads_module._order_view

    def counting(o: Any) -> OrderView:
        built.append(o.oid)
        return real(o)

    reads_module._order_view = counting
    try:
        assert len(r.open_orders(ALICE)) == 3
    finally:
        reads_module._order_view = real
    reads = (lambda: r.open_orders(ALICE), lambda: r.positions(ALICE), lambda: r.margin_summary(ALICE),
             lambda: r.order_id_by_cloid(ALICE, "0x" + "22" * 16))
    return built, tuple(lines_in_reads(fn, monkeypatch) for fn in reads)


def test_one_users_reads_do_not_depend_on_other_users(monkeypatch: pytest.MonkeyPatch) -> None:
    """Alice's open orders, positions and margin execute the same lines whether Bob has 5 or 50 open
    orders, and her open-orders read builds a view of each of her orders and of none of his."""
    few_built, few = alice_reads_work(5, monkeypatch)
    many_built, many = alice_reads_work(50, monkeypatch)
    assert few_built == many_built == [3, 4, 5]
    assert few == many and all(few)
