"""Builder codes: an approved builder earns its fee (tenths of a bp, rounded up) on each fill of
the orders that name it, on top of the exchange fee; unapproved or too-high fees are refused."""

from __future__ import annotations

from scenario_kit import ALICE, BOB, BTC_ID, CAROL, Sim, btc_spec, usd

from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.access import BUILDER_TOO_POOR
from perpbox.exchange.results import OK, Error, OrderError, Resting, Statuses

BUILDER = CAROL


def _setup(sim: Sim) -> None:
    sim.list_market(btc_spec(), 60_000)
    for user in (ALICE, BOB):
        sim.deposit(user, 100_000)


def test_taker_and_maker_builder_fees_are_paid_to_the_builder(sim: Sim) -> None:
    _setup(sim)
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=BUILDER, max_fee=10) == Error(BUILDER_TOO_POOR)
    sim.deposit(BUILDER, 100)
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=BUILDER, max_fee=10) == OK  # 0.01%
    assert sim.do(C.ApproveBuilderFee, user=BOB, builder=BUILDER, max_fee=5) == OK
    maker = sim.req(BTC_ID, False, 60_000, "0.5", builder=BUILDER, builder_fee=3)
    assert sim.batch(BOB, [maker]) == Statuses((Resting(1),))
    fees_before = sim.fees()
    taker = sim.req(BTC_ID, True, 60_000, "0.5", tif="Ioc", builder=BUILDER, builder_fee=10)
    res = sim.batch(ALICE, [taker])
    assert res[0].total_sz == 50_000
    (fill,) = sim.of(V.Fill)
    notional = 30_000 * 1_000_000  # $30,000 in micro-USDC
    assert (fill.taker_builder_fee, fill.maker_builder_fee) == (3_000_000, 900_000)  # 1 bp, 0.3 bp
    assert fill.taker_fee == notional * 45 // 100_000 + 3_000_000  # 4.5 bp taker fee + the builder's
    assert fill.maker_fee == notional * 15 // 100_000 + 900_000
    assert sim.cash(BUILDER) == usd(100) + 3_900_000
    assert sim.fees() - fees_before == fill.taker_fee + fill.maker_fee - 3_900_000
    sim.audit()


def test_unapproved_or_excessive_builder_fees_are_rejected(sim: Sim) -> None:
    _setup(sim)
    sim.deposit(BUILDER, 1_000)
    too_high = sim.req(BTC_ID, True, 59_000, "0.1", builder=BUILDER, builder_fee=10)
    assert sim.batch(ALICE, [too_high]) == Statuses((OrderError("Builder fee has not been approved."),))
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=BUILDER, max_fee=1000) == OK  # 1%: the spot limit
    over_perp_cap = sim.req(BTC_ID, True, 59_000, "0.1", builder=BUILDER, builder_fee=101)
    assert sim.batch(ALICE, [over_perp_cap]) == Statuses((OrderError("Builder fee has not been approved."),))
    assert sim.do(C.ApproveBuilderFee, user=ALICE, builder=BUILDER, max_fee=0) == OK  # revoke
    assert sim.batch(ALICE, [too_high]) == Statuses((OrderError("Builder fee has not been approved."),))
    sim.audit()


def test_a_modified_order_keeps_its_builder_code(sim: Sim) -> None:
    """``modify`` carries no builder field on the wire; the replacement keeps the original's code."""
    _setup(sim)
    sim.deposit(BUILDER, 100)
    assert sim.do(C.ApproveBuilderFee, user=BOB, builder=BUILDER, max_fee=10) == OK
    assert sim.batch(BOB, [sim.req(BTC_ID, False, 61_000, "0.5", builder=BUILDER, builder_fee=10)]) == Statuses((
        Resting(1),))
    assert sim.do(C.Modify, user=BOB, oid=1, order=sim.req(BTC_ID, False, 60_000, "0.5")) == OK
    sim.batch(ALICE, [sim.req(BTC_ID, True, 60_000, "0.5", tif="Ioc")])
    (fill,) = sim.of(V.Fill)
    assert fill.maker_builder == BUILDER and fill.maker_builder_fee == 3_000_000  # 1 bp of $30,000
    sim.audit()
