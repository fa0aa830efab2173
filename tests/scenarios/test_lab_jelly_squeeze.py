"""JELLY (stress-incidents.md §1): a self-traded short on a thin market, spot pumped 4x; the short is
liquidated past what the book can take and the backstop vault inherits it at a loss, while the
attacker's two wallets together gain.  Without the pump nothing happens; a short the book can
absorb never reaches the vault."""

from __future__ import annotations

from functools import cache
from typing import Any

from perpbox.exchange import events as V
from perpbox.lab.metrics import run_metrics
from perpbox.lab.run import RunTrace, simulate
from perpbox.lab.scenario import load_scenario

SHORT_WALLET = "0xa9e100ac" + f"{1:032x}"  # actor 1


@cache
def _run(**keys: Any) -> tuple[RunTrace, dict[str, Any]]:
    sc = load_scenario("jelly-squeeze", keys)
    trace = simulate(sc, 1)
    return trace, run_metrics(sc, trace)


def _taken_over(trace: RunTrace) -> set[str]:
    return {e.user for e in trace.events if isinstance(e, V.Liquidated) and e.method == "backstop"}


def test_the_pumped_short_lands_in_the_backstop_vault_at_a_loss_and_the_attacker_gains() -> None:
    trace, m = _run()
    assert m["conservation_residual_usd"] == "0"
    assert SHORT_WALLET in _taken_over(trace)
    assert float(m["backstop"]["pnl_usd"]) < -1_000_000
    assert float(m["attacker"]["pnl_usd"]) > 0
    (series,) = trace.markets.values()
    assert series.oracle[-1] > 3.5 * series.oracle[0]  # spot went to 4x, and the oracle with it


def test_without_the_pump_nothing_is_liquidated() -> None:
    _, m = _run(pump=1.0)
    assert m["liquidated_usd"] == "0" and m["backstop"]["pnl_usd"] == "0"


def test_a_short_the_book_can_absorb_never_reaches_the_vault() -> None:
    trace, m = _run(attack_usd=1_000_000.0)
    assert SHORT_WALLET not in _taken_over(trace)
    assert m["backstop"]["pnl_usd"] == "0"
    assert float(m["liquidated_usd"]) > 0  # liquidated all the same, into the book
