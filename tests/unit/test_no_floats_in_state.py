"""No floats anywhere in engine state (design.md, "Numbers"): the walker that the property tests
run after every example, checked here on a planted float and on the demo session."""

from __future__ import annotations

from rich.console import Console

from engine_state import floats_in_state
from perpbox.cli.demo import run_demo
from perpbox.exchange import commands as C
from perpbox.exchange.engine import Exchange
from perpbox.market import MarginTable, MarketSpec


def _quiet_demo() -> Exchange:
    return run_demo(seed=5, steps=60, console=Console(width=200, record=True))


def test_the_demo_session_holds_no_float() -> None:
    assert floats_in_state(_quiet_demo()) == []


def test_a_planted_float_is_found_in_compiled_and_plain_objects() -> None:
    ex = Exchange()
    ex.apply(C.AddMarket(ts=1, spec=MarketSpec("BTC", 0, 5, MarginTable.single(20)), mark_px=1_000_000))
    ex.apply(C.Deposit(ts=1, user="0xa", usd=10**9))
    ex.apply(C.place(1, "0xa", 0, True, 990_000, 1_000))
    assert floats_in_state(ex) == []
    order = next(iter(ex.orders.orders.values()))
    order.children = (0.5,)  # type: ignore[assignment]  # in a tuple on a compiled object
    ex.pricing.prices[0] = 1e6  # a dict on the exchange
    found = floats_in_state(ex)
    assert len(found) == 2 and all(p.endswith("> float") for p in found)
