"""Order types and matching, as Hyperliquid does them (hyperliquid-api.md §3.2–3.5, §3.10 error
strings with the live `` asset=N`` suffix, §6.5 matching, self-trade prevention and reduce-only).

BTC: sizes in lots of 0.00001 BTC, prices in 0.1 USD; ETH-like: lots of 0.0001 ETH, prices in 0.01 USD.
Fees: taker 0.045%, maker 0.015%, rounded up to the micro-USDC.
"""

from __future__ import annotations

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, DAVE, ETH_ID, P, S, Sim, btc_spec, eth_spec, usd

from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.results import CANCELED, OK, Error, Filled, OrderError, Resting, Statuses

CLOID_1 = "0x" + "00" * 15 + "01"
CLOID_2 = "0x" + "00" * 15 + "02"


def _btc_market(sim: Sim, *users: str, mark: int = 100_000, cash: int = 10_000):
    btc = sim.list_market(btc_spec(), mark)
    for u in users:
        sim.deposit(u, cash)
    return btc


# ==================================================================================================
# price-time priority, partial fills, average price
# ==================================================================================================
def test_price_time_priority_across_levels_and_fifo_within_a_level(sim: Sim) -> None:
    btc = _btc_market(sim, ALICE, BOB, CAROL, DAVE)
    assert sim.order(BOB, BTC_ID, False, 100_020, "0.1") == Resting(1)
    assert sim.order(CAROL, BTC_ID, False, 100_010, "0.1") == Resting(2)
    assert sim.order(BOB, BTC_ID, False, 100_010, "0.1") == Resting(3)
    assert sim.order(DAVE, BTC_ID, False, 100_000, "0.1") == Resting(4)
    assert sim.resting_oids(BTC_ID, False) == [4, 2, 3, 1]
    book = sim.ex.board.books[BTC_ID]
    assert book.depth(False) == [(P(btc, 100_000), 10_000, 1), (P(btc, 100_010), 20_000, 2),
                                 (P(btc, 100_020), 10_000, 1)]

    # Alice buys 0.25 up to 100,020: best price first (Dave), then Carol before Bob at 100,010 (FIFO)
    # ntl = 0.1 × 100,000 + 0.1 × 100,010 + 0.05 × 100,010 = 10,000 + 10,001 + 5,000.5 = 25,001.5
    st = sim.order(ALICE, BTC_ID, True, 100_020, "0.25")
    assert st == Filled(oid=5, total_sz=S(btc, "0.25"), ntl=usd("25001.5"))
    fills = sim.of(V.Fill)
    assert [(f.maker_oid, f.px, f.sz) for f in fills] == [
        (4, P(btc, 100_000), 10_000), (2, P(btc, 100_010), 10_000), (3, P(btc, 100_010), 5_000)]
    assert [f.tid for f in fills] == [1, 2, 3]
    # avgPx = ntl / totalSz = 25,001.5 / 0.25 = 100,006
    assert st.ntl // st.total_sz == P(btc, 100_006)
    # per-fill fees: taker 4.5, 4.50045, 2.250225; maker 1.5, 1.50015, 0.750075
    assert [f.taker_fee for f in fills] == [usd("4.5"), usd("4.50045"), usd("2.250225")]
    assert [f.maker_fee for f in fills] == [usd("1.5"), usd("1.50015"), usd("0.750075")]
    assert sim.fees() == usd("11.250675") + usd("3.750225")  # = 15.0009
    # Bob's 0.1 at 100,010 partly filled keeps its place; 0.05 left
    assert sim.resting_oids(BTC_ID, False) == [3, 1]
    assert book.depth(False) == [(P(btc, 100_010), 5_000, 1), (P(btc, 100_020), 10_000, 1)]
    assert sim.ex.orders.orders[3].sz == 5_000 and sim.ex.orders.orders[3].orig_sz == 10_000
    pos = sim.pos(ALICE, BTC_ID)
    assert pos.szi == 25_000 and pos.entry_ntl == usd("25001.5")

    # a GTC that partly fills rests with the rest: 0.05 filled at 100,010, 0.15 rests at 100,010
    assert sim.order(ALICE, BTC_ID, True, 100_010, "0.2") == Resting(6)
    assert [(f.maker_oid, f.sz) for f in sim.of(V.Fill)] == [(3, 5_000)]
    assert sim.ex.orders.orders[6].sz == 15_000
    assert book.best_bid() == P(btc, 100_010) and book.best_ask() == P(btc, 100_020)
    sim.audit()


# ==================================================================================================
# IOC, market, tick, min notional, ALO
# ==================================================================================================
def test_ioc_and_market_orders_that_cannot_match(sim: Sim) -> None:
    _btc_market(sim, ALICE, BOB)
    # market (FrontendMarket) on an empty book
    assert sim.order(ALICE, BTC_ID, True, 105_000, "0.1", tif="FrontendMarket") == OrderError(
        "No liquidity available for market order. asset=0")
    (rej,) = sim.of(V.OrderRejected)
    assert rej.status == "marketOrderNoLiquidityRejected" and rej.oid == 1
    # IOC below the best ask
    assert sim.order(BOB, BTC_ID, False, 100_010, "0.1") == Resting(2)
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.1", tif="Ioc") == OrderError(
        "Order could not immediately match against any resting orders. asset=0")
    assert sim.of(V.OrderRejected)[0].status == "iocCancelRejected"
    assert 3 not in sim.ex.orders.orders
    # an IOC for more than the book holds fills what it can; the rest is cancelled
    assert sim.order(ALICE, BTC_ID, True, 100_010, "0.2", tif="Ioc") == Filled(
        oid=4, total_sz=10_000, ntl=usd(10_001))
    assert sim.closed() == {4: "canceled"}
    assert sim.ex.board.books[BTC_ID].best_ask() is None
    assert sim.szi(ALICE, BTC_ID) == 10_000
    sim.audit()


def test_tick_size_and_minimum_notional(sim: Sim) -> None:
    _btc_market(sim, ALICE)
    sim.list_market(eth_spec(), 2_000)
    tick = "Price must be divisible by tick size. asset=0"
    # more than 5 significant figures and not a whole dollar
    assert sim.order(ALICE, BTC_ID, True, "100000.5", "0.001") == OrderError(tick)
    assert sim.of(V.OrderRejected)[0].status == "tickRejected"
    assert sim.order(ALICE, BTC_ID, True, "12345.6", "0.001") == OrderError(tick)
    # whole-dollar prices are always allowed; 5 significant figures are allowed
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_001, "0.001"), Resting)
    # a valid tick more than 80% from the reference price (the $100,000 mark) is refused
    assert sim.order(ALICE, BTC_ID, True, "1234.5", "0.01") == OrderError(
        "Order price cannot be more than 80% away from the reference price asset=0")
    # ETH (2 decimals): 2000.25 has 6 significant figures
    assert sim.order(ALICE, ETH_ID, True, "2000.25", "0.01") == OrderError(
        "Price must be divisible by tick size. asset=1")
    assert isinstance(sim.order(ALICE, ETH_ID, True, "1999.1", "0.01"), Resting)
    # $10 minimum: 0.00009 × 100,000 = $9; 0.0001 × 100,000 = $10
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.00009") == OrderError(
        "Order must have minimum value of $10. asset=0")
    assert sim.of(V.OrderRejected)[0].status == "minTradeNtlRejected"
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.0001"), Resting)
    sim.audit()


def test_alo_that_would_cross_is_rejected_with_the_bbo(sim: Sim) -> None:
    _btc_market(sim, ALICE, BOB, CAROL)
    sim.order(BOB, BTC_ID, True, 99_990, "0.1")
    sim.order(CAROL, BTC_ID, False, 100_010, "0.1")
    msg = "Post only order would have immediately matched, bbo was 99990@100010. asset=0"
    assert sim.order(ALICE, BTC_ID, True, 100_010, "0.1", tif="Alo") == OrderError(msg)
    assert sim.of(V.OrderRejected)[0].status == "badAloPxRejected"
    assert sim.order(ALICE, BTC_ID, False, 99_990, "0.1", tif="Alo") == OrderError(msg)
    # inside the spread it rests as a maker
    assert sim.order(ALICE, BTC_ID, True, 100_000, "0.1", tif="Alo") == Resting(5)
    assert not sim.of(V.Fill)
    # ETH (2 decimals): the bbo is printed as human prices, trailing zeros dropped
    sim.list_market(eth_spec(), 2_000)
    sim.order(BOB, ETH_ID, True, "1999.5", "1")
    sim.order(CAROL, ETH_ID, False, "2000.1", "1")
    assert sim.order(ALICE, ETH_ID, True, "2000.1", "0.1", tif="Alo") == OrderError(
        "Post only order would have immediately matched, bbo was 1999.5@2000.1. asset=1")
    sim.audit()


# ==================================================================================================
# self-trade prevention
# ==================================================================================================
def test_self_trade_prevention_cancels_resting_maker_and_taker_continues(sim: Sim) -> None:
    btc = _btc_market(sim, ALICE, BOB)
    assert sim.order(ALICE, BTC_ID, False, 100_000, "0.1") == Resting(1)
    assert sim.order(BOB, BTC_ID, False, 100_010, "0.1") == Resting(2)
    # Alice buys through her own ask: it is cancelled (no trade, no fee) and she fills against Bob
    st = sim.order(ALICE, BTC_ID, True, 100_010, "0.1")
    assert st == Filled(oid=3, total_sz=10_000, ntl=usd(10_001))
    assert sim.closed() == {1: "selfTradeCanceled"}
    (fill,) = sim.of(V.Fill)
    assert (fill.maker, fill.maker_oid, fill.px) == (BOB, 2, P(btc, 100_010))
    # taker 0.045% × 10,001 = 4.50045; maker 0.015% × 10,001 = 1.50015: nothing else was charged
    assert (fill.taker_fee, fill.maker_fee) == (usd("4.50045"), usd("1.50015"))
    assert sim.fees() == usd("6.0006")
    assert sim.szi(ALICE, BTC_ID) == 10_000 and sim.szi(BOB, BTC_ID) == -10_000
    assert sim.cash(ALICE) == usd(10_000) - usd(10_001) - usd("4.50045")
    # only her own order in the way: it is cancelled and the buy rests
    sim.order(ALICE, BTC_ID, False, 100_050, "0.05")
    assert sim.order(ALICE, BTC_ID, True, 100_050, "0.05") == Resting(5)
    assert sim.closed() == {4: "selfTradeCanceled"}
    assert not sim.of(V.Fill)
    sim.audit()


# ==================================================================================================
# reduce-only
# ==================================================================================================
def test_reduce_only_order_shrinks_with_position(sim: Sim) -> None:
    btc = _btc_market(sim, ALICE, BOB, CAROL, DAVE, cash=100_000)
    sim.order(BOB, BTC_ID, False, 100_000, "0.3")
    assert isinstance(sim.order(ALICE, BTC_ID, True, 100_000, "0.3"), Filled)  # oid 2: long 0.3
    assert sim.order(ALICE, BTC_ID, False, 110_000, "0.1", reduce_only=True) == Resting(3)
    assert sim.order(ALICE, BTC_ID, False, 110_000, "0.2", reduce_only=True) == Resting(4)
    assert sim.order(DAVE, BTC_ID, False, 110_000, "0.1") == Resting(5)
    assert sim.order(CAROL, BTC_ID, True, 99_000, "0.15") == Resting(6)
    # Alice market-sells 0.15: position 0.3 → 0.15.  Newest reduce-only kept first: 0.2 → 0.15, and
    # the older 0.1 no longer fits and is cancelled.
    assert sim.order(ALICE, BTC_ID, False, 90_000, "0.15", tif="FrontendMarket") == Filled(
        oid=7, total_sz=15_000, ntl=usd(14_850))
    assert sim.szi(ALICE, BTC_ID) == 15_000
    resized = sim.of(V.OrderResized)
    assert [(e.oid, e.sz) for e in resized] == [(4, 15_000)]
    assert sim.closed() == {3: "reduceOnlyCanceled"}
    # the resized order keeps its place ahead of Dave's at 110,000
    assert sim.resting_oids(BTC_ID, False) == [4, 5]
    assert sim.ex.board.books[BTC_ID].depth(False) == [(P(btc, 110_000), 25_000, 2)]
    # realised: 0.15 × (99,000 − 100,000) = −150
    assert sim.pos(ALICE, BTC_ID).realized_pnl == -usd(150)
    assert sim.acct(ALICE).n_reduce_only == 1
    sim.audit()


def test_reduce_only_rejected_when_it_would_increase_position(sim: Sim) -> None:
    _btc_market(sim, ALICE, BOB)
    msg = "Reduce only order would increase position. asset=0"
    # flat account
    assert sim.order(ALICE, BTC_ID, False, 100_000, "0.1", reduce_only=True) == OrderError(msg)
    assert sim.of(V.OrderRejected)[0].status == "reduceOnlyRejected"
    sim.order(BOB, BTC_ID, False, 100_000, "0.1")
    sim.order(ALICE, BTC_ID, True, 100_000, "0.1")
    # same side as the long
    assert sim.order(ALICE, BTC_ID, True, 99_000, "0.05", reduce_only=True) == OrderError(msg)
    # Bob is short: a reduce-only sell would increase it
    assert sim.order(BOB, BTC_ID, False, 101_000, "0.05", reduce_only=True) == OrderError(msg)
    sim.audit()


def test_reduce_only_ioc_larger_than_position_is_capped(sim: Sim) -> None:
    """hyperliquid-api.md §3.2 [T1]: a reduce-only IOC for 0.0003 against a 0.00015 position came
    back ``{"filled": {"totalSz": "0.00015", ...}}``."""
    btc = _btc_market(sim, ALICE, BOB, mark=79_450)
    sim.order(BOB, BTC_ID, False, 79_450, "0.00015")
    assert isinstance(sim.order(ALICE, BTC_ID, True, 79_450, "0.00015"), Filled)
    sim.order(BOB, BTC_ID, True, 79_400, "0.001")
    st = sim.order(ALICE, BTC_ID, False, 79_000, "0.0003", tif="Ioc", reduce_only=True)
    assert st == Filled(oid=4, total_sz=S(btc, "0.00015"), ntl=usd("11.91"))
    assert sim.szi(ALICE, BTC_ID) == 0
    assert sim.ex.board.books[BTC_ID].depth(True) == [(P(btc, 79_400), 85, 1)]
    sim.audit()


def test_reduce_only_resting_order_cancelled_when_position_closes(sim: Sim) -> None:
    _btc_market(sim, ALICE, BOB, CAROL)
    sim.order(BOB, BTC_ID, False, 100_000, "0.1")
    sim.order(ALICE, BTC_ID, True, 100_000, "0.1")
    assert sim.order(ALICE, BTC_ID, False, 105_000, "0.1", reduce_only=True) == Resting(3)
    sim.order(CAROL, BTC_ID, True, 99_000, "0.1")
    # closing the whole position by other means leaves nothing to reduce
    assert isinstance(sim.order(ALICE, BTC_ID, False, 99_000, "0.1", tif="Ioc"), Filled)
    assert sim.closed() == {3: "reduceOnlyCanceled"}
    assert sim.ex.board.books[BTC_ID].best_ask() is None
    sim.audit()


# ==================================================================================================
# cancels
# ==================================================================================================
def test_cancel_by_oid_cloid_unknown_and_cancel_all_per_market(sim: Sim) -> None:
    _btc_market(sim, ALICE, BOB)
    sim.list_market(eth_spec(), 2_000)
    # the venue names the request's asset (nktkas/hyperliquid tests/api/exchange/_common.ts.test.ts)
    missing = OrderError(f"Order was never placed, already canceled, or filled. asset={BTC_ID}")
    assert sim.cancel(ALICE, BTC_ID, 42) == Statuses((missing,))
    assert sim.order(BOB, BTC_ID, True, 99_000, "0.1") == Resting(1)
    assert sim.cancel(ALICE, BTC_ID, 1) == Statuses((missing,))  # not hers
    wrong_market = OrderError(f"Order was never placed, already canceled, or filled. asset={ETH_ID}")
    assert sim.cancel(BOB, ETH_ID, 1) == Statuses((wrong_market,))
    assert sim.cancel(BOB, BTC_ID, 1) == Statuses((CANCELED,))
    assert sim.closed() == {1: "canceled"}
    assert sim.cancel(BOB, BTC_ID, 1) == Statuses((missing,))  # already cancelled

    # by cloid
    assert sim.order(ALICE, BTC_ID, True, 99_000, "0.1", cloid=CLOID_1) == Resting(2, CLOID_1)
    assert sim.do(C.CancelByCloid, user=ALICE, asset=BTC_ID, cloid=CLOID_2) == Statuses((missing,))
    assert sim.do(C.CancelByCloid, user=ALICE, asset=BTC_ID, cloid=CLOID_1) == Statuses((CANCELED,))
    assert sim.do(C.CancelByCloid, user=ALICE, asset=BTC_ID, cloid=CLOID_1) == Statuses((missing,))
    # the cloid is free again once its order is gone
    assert sim.order(ALICE, BTC_ID, True, 99_000, "0.1", cloid=CLOID_1) == Resting(3, CLOID_1)

    # cancel-all in one market leaves the other market's orders
    sim.order(ALICE, BTC_ID, True, 98_000, "0.1")
    sim.order(ALICE, ETH_ID, True, 1_900, "1")
    sim.order(BOB, BTC_ID, True, 97_000, "0.1")
    assert sim.do(C.CancelAll, user=ALICE, asset=BTC_ID) == Statuses((CANCELED, CANCELED))
    assert sim.closed() == {3: "canceled", 4: "canceled"}
    assert sim.resting_oids(BTC_ID, True) == [6]
    assert sim.resting_oids(ETH_ID, True) == [5]
    assert sim.do(C.CancelAll, user=ALICE) == Statuses((CANCELED,))
    assert sim.resting_oids(ETH_ID, True) == []
    assert sim.acct(ALICE).orders == {} and sim.acct(ALICE).cloids == {}
    sim.audit()


# ==================================================================================================
# modify / batchModify
# ==================================================================================================
def test_modify_is_cancel_replace_with_new_oid_losing_time_priority(sim: Sim) -> None:
    btc = _btc_market(sim, ALICE, BOB, CAROL)
    assert sim.order(BOB, BTC_ID, False, 100_010, "0.1") == Resting(1)
    assert sim.order(CAROL, BTC_ID, False, 100_010, "0.1") == Resting(2)
    # Bob "modifies" to the very same price and size: new oid 3, behind Carol
    assert sim.do(C.Modify, user=BOB, oid=1, order=sim.req(BTC_ID, False, 100_010, "0.1")) == OK
    assert sim.closed() == {1: "canceled"}
    assert [e.oid for e in sim.of(V.OrderPlaced)] == [3]
    assert sim.resting_oids(BTC_ID, False) == [2, 3]
    # Alice's 0.1 buy fills Carol (now first), not Bob
    sim.order(ALICE, BTC_ID, True, 100_010, "0.1")
    assert [f.maker for f in sim.of(V.Fill)] == [CAROL]
    cannot = Error("Cannot modify canceled or filled order")
    assert sim.do(C.Modify, user=CAROL, oid=2, order=sim.req(BTC_ID, False, 100_020, "0.1")) == cannot  # filled
    assert sim.do(C.Modify, user=BOB, oid=1, order=sim.req(BTC_ID, False, 100_020, "0.1")) == cannot  # replaced
    assert sim.do(C.Modify, user=BOB, oid=999, order=sim.req(BTC_ID, False, 100_020, "0.1")) == cannot
    assert sim.do(C.Modify, user=ALICE, oid=3, order=sim.req(BTC_ID, False, 100_020, "0.1")) == cannot  # not hers
    assert sim.resting_oids(BTC_ID, False) == [3]

    # by cloid, changing price and size
    assert sim.order(BOB, BTC_ID, False, 100_050, "0.1", cloid=CLOID_1) == Resting(5, CLOID_1)
    new = sim.req(BTC_ID, False, 100_040, "0.2", cloid=CLOID_1)
    assert sim.do(C.Modify, user=BOB, oid=CLOID_1, order=new) == OK
    assert sim.acct(BOB).cloids == {CLOID_1: 6}
    assert sim.ex.board.books[BTC_ID].depth(False) == [(P(btc, 100_010), 10_000, 1), (P(btc, 100_040), 20_000, 1)]

    # batchModify: one good, one unknown → one status each, in order
    resp = sim.do(C.BatchModify, user=BOB, modifies=[
        C.Modify(ts=0, user=BOB, oid=3, order=sim.req(BTC_ID, False, 100_030, "0.1")),
        C.Modify(ts=0, user=BOB, oid=12345, order=sim.req(BTC_ID, False, 100_030, "0.1")),
    ])
    assert resp == Statuses((Resting(7), OrderError(cannot.message)))
    assert sim.resting_oids(BTC_ID, False) == [7, 6]
    sim.audit()


def test_modify_whose_replacement_is_invalid_leaves_the_original_order_resting(sim: Sim) -> None:
    """A modify answered with an error must not have changed anything: the engine cancels the
    original first and then rejects the replacement (tick size), so the client is told the modify
    failed while its order is silently gone.  Hyperliquid reports invalid replacements as a modify
    error ("Attempted to modify to invalid new order", §3.5, unconfirmed wording) with the
    original untouched."""
    _btc_market(sim, BOB)
    assert sim.order(BOB, BTC_ID, False, 100_010, "0.1") == Resting(1)
    resp = sim.do(C.Modify, user=BOB, oid=1, order=sim.req(BTC_ID, False, "100010.5", "0.1"))
    assert isinstance(resp, Error)
    assert sim.resting_oids(BTC_ID, False) == [1], "a failed modify cancelled the original order"
    sim.audit()


def test_duplicate_cloid_and_zero_size_are_rejected(sim: Sim) -> None:
    _btc_market(sim, ALICE)
    assert sim.order(ALICE, BTC_ID, True, 99_000, "0.1", cloid=CLOID_1) == Resting(1, CLOID_1)
    st = sim.order(ALICE, BTC_ID, True, 98_000, "0.1", cloid=CLOID_1)
    assert st == OrderError("Duplicate client order id. asset=0")
    assert sim.resting_oids(BTC_ID, True) == [1]
    st = sim.order(ALICE, BTC_ID, True, 98_000, "0")
    assert isinstance(st, OrderError) and st.message.endswith(" asset=0")
    assert sim.batch(ALICE, []) == Error("Orders are empty")
    sim.audit()


def test_cloid_is_unique_per_account_and_free_again_once_its_order_is_done(sim: Sim) -> None:
    _btc_market(sim, ALICE, BOB)
    assert sim.order(ALICE, BTC_ID, True, 99_000, "0.1", cloid=CLOID_1) == Resting(1, CLOID_1)
    # another account may use the same cloid
    assert sim.order(BOB, BTC_ID, True, 98_000, "0.1", cloid=CLOID_1) == Resting(2, CLOID_1)
    assert sim.do(C.CancelByCloid, user=ALICE, asset=BTC_ID, cloid=CLOID_1) == Statuses((CANCELED,))
    assert sim.resting_oids(BTC_ID, True) == [2]  # Alice's cloid named her order, not Bob's
    # once Alice's order is gone, her cloid is free again
    assert sim.order(ALICE, BTC_ID, True, 97_000, "0.1", cloid=CLOID_1) == Resting(3, CLOID_1)
    sim.audit()


def test_market_order_fills_through_levels_up_to_its_slippage_price(sim: Sim) -> None:
    """A market buy is an IOC limit at a slippage-bounded price: it takes levels up to that price and
    cancels the rest (Hyperliquid §4.6 SDK: mid × 1.05, 5 significant figures)."""
    btc = _btc_market(sim, ALICE, BOB, CAROL)
    sim.order(BOB, BTC_ID, False, 100_000, "0.05")
    sim.order(CAROL, BTC_ID, False, 104_000, "0.05")
    sim.order(CAROL, BTC_ID, False, 106_000, "0.05")
    # C.market_order prices it as the SDK does: reference 100,000 × 1.05 = 105,000 cap
    cmd = C.market_order(0, ALICE, btc, P(btc, 100_000), True, S(btc, "0.15"), slippage_bps=500)
    (req,) = cmd.orders
    assert (req.px, req.tif) == (P(btc, 105_000), "FrontendMarket")
    # fills 0.05 at 100,000 and 0.05 at 104,000, not 106,000
    (st,) = sim.do(C.PlaceOrders, user=ALICE, orders=cmd.orders)
    # ntl = 5,000 + 5,200 = 10,200; avg 102,000
    assert st == Filled(oid=4, total_sz=10_000, ntl=usd(10_200))
    assert st.ntl // st.total_sz == P(btc, 102_000)
    assert sim.closed() == {4: "canceled"}
    assert sim.resting_oids(BTC_ID, False) == [3]
    sim.audit()
