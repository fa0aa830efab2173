"""POPCAT (stress-incidents.md §1): 19 wallets' $24M of longs on $3M, a $20M bid wall pulled, and a
38% fall; the longs are liquidated into a thin book and past it into the backstop vault, which
loses millions (reported: ~$4.9M) while the attacker loses its $3M.  A 5x leverage cap or an OI cap
shrinks the vault's loss; without the fall nothing happens; a wall left standing is a real bid
that the fall fills.  Each case is one seed of the built-in scenario, whole."""

from __future__ import annotations

from functools import cache
from typing import Any

from perpbox.agents.actors import actor_address
from perpbox.exchange import events as V
from perpbox.exchange.liquidation import backstop_address
from perpbox.lab.metrics import run_metrics
from perpbox.lab.run import RunTrace, simulate
from perpbox.lab.scenario import load_scenario

NAME = "popcat-wall-pull"
START_PX = 210_000  # $0.21 in price units (sz_decimals 0: 6 decimals)
CAPITAL = 3_000_000  # the 19 wallets' capital, USD
LONGS = {actor_address(0, w) for w in range(19)}
WALL = actor_address(1)
VAULT = backstop_address(0)


@cache
def _run(**keys: Any) -> tuple[RunTrace, dict[str, Any]]:
    sc = load_scenario(NAME, keys)
    trace = simulate(sc, 1)
    return trace, run_metrics(sc, trace)


def _vault_pnl(m: dict[str, Any]) -> float:
    return float(m["backstop"]["pnl_usd"])


def _taken_by_vault_usd(trace: RunTrace) -> float:
    """The notional the vault took over, at the mark it took it at (price units × lots / 1e6)."""
    return sum(abs(e.sz) * e.px / 1e6 for e in trace.events
               if isinstance(e, V.PositionTransferred) and e.dst == VAULT)


def test_the_pulled_wall_and_the_fall_liquidate_the_longs_into_the_vault_which_loses_millions() -> None:
    trace, m = _run()
    assert m["conservation_residual_usd"] == "0"
    # reported: the vault lost ~$4.9M; here the same order of magnitude
    assert -15e6 < _vault_pnl(m) < -2e6
    # the attacker loses (almost) all its $3M and no more: the vault takes each long over with all
    # its remaining equity, and the wall's wallet never trades
    assert -CAPITAL <= float(m["attacker"]["pnl_usd"]) <= -0.8 * CAPITAL
    assert not [e for e in trace.events if isinstance(e, V.Fill) and WALL in (e.maker, e.taker)]
    # every one of the 19 wallets is liquidated; reported ~$25M in all
    assert {e.user for e in trace.events if isinstance(e, V.Liquidated)} >= LONGS
    liquidated = float(m["liquidated_usd"])
    assert 10e6 <= liquidated <= 50e6
    # most of it past the thin book, into the vault
    assert _taken_by_vault_usd(trace) >= 0.5 * liquidated
    # the price falls at least 30% (reported $0.21 -> $0.13, -38%)
    (series,) = trace.markets.values()
    assert min(series.mark) <= 0.70 * START_PX


def test_a_5x_leverage_cap_shrinks_the_vaults_loss() -> None:
    _, base = _run()
    _, m = _run(max_leverage=5)  # the same $3M can open $15M at most, with twice the margin per dollar
    assert m["conservation_residual_usd"] == "0"
    assert _vault_pnl(m) > _vault_pnl(base) / 4
    assert float(m["liquidated_usd"]) < float(base["liquidated_usd"])


def test_an_oi_cap_shrinks_the_vaults_loss() -> None:
    _, base = _run()
    trace, m = _run(oi_cap_usd=10_000_000)
    assert m["conservation_residual_usd"] == "0"
    assert _vault_pnl(m) > _vault_pnl(base) / 4
    assert _taken_by_vault_usd(trace) < _taken_by_vault_usd(_run()[0]) / 2


def test_without_the_fall_nothing_is_liquidated() -> None:
    _, m = _run(low=1.0)
    assert m["conservation_residual_usd"] == "0"
    assert m["liquidated_usd"] == "0" and m["backstop"]["pnl_usd"] == "0"


def test_a_wall_left_standing_is_a_real_bid_the_fall_fills() -> None:
    trace, m = _run(wall_end="3h")
    assert m["conservation_residual_usd"] == "0"
    filled = sum(e.sz for e in trace.events if isinstance(e, V.Fill) and e.maker == WALL)
    assert filled * 0.205 >= 5e6  # at least a quarter of the $20M wall bought into the fall
    assert float(m["attacker"]["pnl_usd"]) < -1.15 * CAPITAL  # the attacker now loses more than the longs' $3M
