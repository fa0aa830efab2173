"""The issue's case: on xyz:XYZ100 (the shipped config: 20x, a US-equities session, 10x off hours)
``updateLeverage`` to 15x was accepted while the market was closed.  The off-hours cap now applies
to it as it does to orders; a position set at 15x before the close keeps its setting and is neither
changed nor liquidated by the close (Hyperliquid checks leverage only when opening or increasing,
reference hyperliquid-api.md §6.3), but what it adds off hours is margined at 10x."""

from __future__ import annotations

from datetime import UTC, datetime

from scenario_kit import ALICE, BOB, CAROL, Sim

from perpbox.config import load_config
from perpbox.core import errors as E
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.results import OK, Error, Filled, OrderError, Resting
from perpbox.market.spec import MarketSpec

DEPLOYER = "0x" + "d0" * 20


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp() * 1000)


def _xyz100(sim: Sim) -> MarketSpec:
    (listed,) = [m for m in load_config().all_markets() if m.spec.coin == "xyz:XYZ100"]
    spec = listed.spec
    assert spec.max_leverage == 20 and spec.oracle.off_hours.max_leverage == 10
    sim.ts = _ms("2026-03-04T15:00:00")  # a Wednesday, inside 14:30–21:00 UTC
    assert sim.do(C.AddMarket, spec=spec, mark_px=listed.price, deployer=DEPLOYER, full_name="XYZ") == OK
    sim.specs[spec.asset] = spec
    sim.do(C.Tick)
    assert sim.ex.pricing.states[spec.asset].session_open
    return spec


def test_xyz100_update_leverage_above_the_off_hours_cap_is_refused_while_closed(sim: Sim) -> None:
    spec = _xyz100(sim)
    a = spec.asset
    sim.fund(ALICE, 1_580, "xyz")  # a HIP-3 dex has its own clearinghouse
    sim.fund(BOB, 100_000, "xyz")
    sim.fund(CAROL, 100_000, "xyz")
    assert sim.leverage(ALICE, a, 15) == OK  # open: up to the table's 20x
    # Alice buys 1 XYZ100 at $21,000 at 15x: $1,400 of initial margin and a $9.45 taker fee,
    # leaving her $170.55 of the $1,580
    assert isinstance(sim.order(BOB, a, False, 21_000, "1"), Resting)
    assert isinstance(sim.order(ALICE, a, True, 21_000, "1", tif="Ioc"), Filled)

    sim.ts = _ms("2026-03-06T21:00:00")  # Friday close
    sim.do(C.Tick)
    assert not sim.ex.pricing.states[a].session_open
    assert not sim.of(V.LeverageUpdated) and not sim.of(V.Liquidated)  # the close changes no position
    assert sim.pos(ALICE, a).leverage == 15 and sim.szi(ALICE, a) == 10_000
    assert sim.ex.pricing.mark(a) == 2_100_000  # $21,000: the book is empty, the last trade holds it

    # the issue: 15x while closed, for an open position or none, is refused like any leverage too high
    assert sim.leverage(ALICE, a, 15) == Error(E.INVALID_LEVERAGE)
    assert sim.leverage(CAROL, a, 15) == Error(E.INVALID_LEVERAGE)
    assert sim.leverage(CAROL, a, 11) == Error(E.INVALID_LEVERAGE)
    assert sim.leverage(CAROL, a, 10) == OK
    assert sim.pos(ALICE, a).leverage == 15
    # adding to the 15x position off hours is margined at 10x: 0.1 more ($2,100) needs $210 > $170.55
    # (at 15x it would need $140); 0.08 ($1,680) needs $168 and fits
    assert isinstance(sim.order(BOB, a, False, 21_000, "0.1"), Resting)
    assert sim.order(ALICE, a, True, 21_000, "0.1", tif="Ioc") == OrderError(
        E.order_error(E.PERP_MARGIN, a))
    assert isinstance(sim.order(ALICE, a, True, 21_000, "0.08", tif="Ioc"), Filled)

    sim.ts = _ms("2026-03-09T14:30:00")  # Monday open: the table's 20x again
    sim.do(C.Tick)
    assert sim.ex.pricing.states[a].session_open
    assert sim.leverage(CAROL, a, 15) == OK
    sim.audit()
