"""The hedge ledger (``bots.ledger``): the failure modes of the farmers' script (hedging late,
booking an unfilled hedge, double-counting a fill, hedging more than is owed) cannot happen, for any
interleaving of maker fills, hedge orders, partial fills, duplicate events and final states."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpbox.bots.ledger import HedgeLedger, LedgerError

D = Decimal
LOT = D("0.001")


def test_a_partial_maker_fill_is_owed_at_once_and_an_unfilled_hedge_is_never_booked() -> None:
    led = HedgeLedger()
    led.maker_fill("ETH", "m1", D("0.004"), now_ms=1_000)  # a partial fill of a 0.01 maker
    assert led.owed("ETH") == D("-0.004") and led.unhedged_ms("ETH", 1_500) == 500
    size = led.hedge_size("ETH", LOT)
    assert size == D("-0.004")
    led.reserve("ETH", "h1", size)
    assert led.owed("ETH") == 0 and led.hedge_size("ETH", LOT) == 0  # no second hedge for the same debt
    # the hedge does not fill: its final state releases it, and the debt is owed again — never booked
    assert led.hedge_done("h1") == 0
    assert led.owed("ETH") == D("-0.004") and led.unhedged("ETH") == D("0.004")


def test_a_fill_seen_twice_counts_once_and_a_hedge_that_filled_more_than_its_size_is_an_overshoot() -> None:
    led = HedgeLedger()
    assert led.maker_fill("BTC", "m1", D("0.010"), 0)
    assert not led.maker_fill("BTC", "m1", D("0.010"), 5)  # the REST reconciliation sees it again
    led.reserve("BTC", "h1", D("-0.010"))
    led.hedge_fill("h1", "t1", D("-0.006"), 10)
    assert not led.hedge_fill("h1", "t1", D("-0.006"), 11)
    assert led.unhedged("BTC") == D("0.004") and led.owed("BTC") == 0  # 0.004 still in flight
    led.hedge_fill("h1", "t2", D("-0.005"), 12)  # the venue filled 0.011 of a 0.010 order
    assert len(led.overshoots) == 1 and led.overshoots[0].excess == D("-0.001")
    assert led.unhedged("BTC") == D("-0.001")  # the real exposure, kept
    assert led.hedge_done("h1") == D("-0.011")


def test_a_hedge_larger_than_what_is_owed_is_refused() -> None:
    led = HedgeLedger()
    led.maker_fill("SOL", "m1", D("-2"), 0)
    with pytest.raises(LedgerError):
        led.reserve("SOL", "h1", D("2.5"))
    with pytest.raises(LedgerError):
        led.reserve("SOL", "h1", D("-1"))  # the wrong side
    led.reserve("SOL", "h1", D("2"))
    with pytest.raises(LedgerError):
        led.reserve("SOL", "h2", D("0.1"))  # all of it is in flight
    assert led.hedge_size("SOL", D("0.01"), max_size=D("0.5")) == 0


def test_hedge_sizes_are_whole_lots_capped_and_rounded_down() -> None:
    led = HedgeLedger()
    led.maker_fill("BTC", "m1", D("0.01234"), 0)
    assert led.hedge_size("BTC", LOT) == D("-0.012")
    assert led.hedge_size("BTC", LOT, max_size=D("0.005")) == D("-0.005")


# -- any interleaving -----------------------------------------------------------------------------------

_maker = st.tuples(st.just("maker"), st.integers(-50, 50).filter(bool))
_hedge = st.tuples(st.just("hedge"), st.integers(1, 50))  # send a hedge of up to n lots of what is owed
_fill = st.tuples(st.just("fill"), st.integers(0, 10), st.integers(1, 60))  # (which in-flight, lots)
_done = st.tuples(st.just("done"), st.integers(0, 10))
_dup = st.tuples(st.just("dup"), st.integers(0, 200))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_maker, _hedge, _fill, _done, _dup), max_size=80))
def test_no_interleaving_hedges_more_than_owed_or_loses_a_fill(ops: list[tuple[Any, ...]]) -> None:
    led = HedgeLedger()
    fills: list[tuple[str, str | None, Decimal]] = []  # (fill id, hedge id or None for maker, size)
    maker_total = hedge_total = D(0)
    n = 0
    for op in ops:
        n += 1
        kind = op[0]
        if kind == "maker":
            size = LOT * int(op[1])
            led.maker_fill("X", f"m{n}", size, n)
            fills.append((f"m{n}", None, size))
            maker_total += size
        elif kind == "hedge":
            size = led.hedge_size("X", LOT, max_size=LOT * int(op[1]))
            owed = led.owed("X")
            if size:  # never more than is owed when it is sent, and on its side
                assert size * owed > 0 and abs(size) <= abs(owed)
                led.reserve("X", f"h{n}", size)
        elif kind == "fill" and led.in_flight():
            oid = led.in_flight()[int(op[1]) % len(led.in_flight())]
            pending = led.hedges[oid].pending
            lots = min(int(op[2]), int(abs(pending) / LOT))
            if lots:  # the venue fills at most the order's size
                size = LOT * lots * (1 if pending > 0 else -1)
                led.hedge_fill(oid, f"f{n}", size, n)
                fills.append((f"f{n}", oid, size))
                hedge_total += size
        elif kind == "done" and led.in_flight():
            led.hedge_done(led.in_flight()[int(op[1]) % len(led.in_flight())])
        elif kind == "dup" and fills:
            fid, oid, size = fills[int(op[1]) % len(fills)]
            if oid is None:
                assert not led.maker_fill("X", fid, size, n)
            elif oid in led.hedges:
                assert not led.hedge_fill(oid, fid, size, n)
        # every fill counted exactly once
        assert led.unhedged("X") == maker_total + hedge_total
        # what is owed is the debt less what is in flight (a maker fill the other way after a
        # hedge was sent makes it owed back: the accounting stays exact) ...
        assert led.owed("X") == -led.unhedged("X") - led.in_flight_size("X")
        assert not led.overshoots  # ... and a venue fill within its order's size never overshoots
    # once every hedge is final and the last one fills completely, nothing is owed
    for oid in led.in_flight():
        led.hedge_done(oid)
    size = led.hedge_size("X", LOT)
    if size:
        led.reserve("X", "last", size)
        led.hedge_fill("last", "last-fill", size, n + 1)
        led.hedge_done("last")
    assert led.unhedged("X") == 0 and led.unhedged_ms("X", n + 2) == 0
