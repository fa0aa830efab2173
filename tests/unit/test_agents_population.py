"""The population's stress behaviours, one at a time, on the engine's read surface: volatility-aware
makers that widen and pull, gradual hedging on a session market's underlying, momentum traders,
makers that leave a still-good ladder resting, and leveraged traders opening one after another.
Expected numbers are worked by hand from each rule's definition in ``agents.population``."""

from __future__ import annotations

import math
from typing import Any

import pytest

from perpbox.agents.population import Population, PopulationParams, participant
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.lab.scenario import load_scenario
from perpbox.market.spec import MarketSpec

T0 = 1_767_621_600_000  # Mon 5 Jan 2026 14:00 UTC
QUIET = {"takers": 0, "levered": 0, "levels": 1, "half_spread_bps": 1.0}


class Reads:
    """The engine's read surface with the mark (and, optionally, the book's touch) set by the test."""

    def __init__(self, reads: Any, marks: dict[int, int] | None = None, touch: bool = False) -> None:
        self._reads, self.marks, self.touch = reads, marks or {}, touch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reads, name)

    def mark(self, asset: int) -> int:
        return self.marks.get(asset) or self._reads.mark(asset)

    def best_bid_ask(self, asset: int) -> tuple[int | None, int | None]:
        return (1, 2) if self.touch else self._reads.best_bid_ask(asset)


def _exchange(name: str = "calm") -> tuple[Exchange, list[MarketSpec]]:
    sc = load_scenario(name)
    ex = Exchange()
    for m in sc.config.markets:
        ex.apply(C.AddMarket(ts=T0, spec=m.spec, mark_px=m.price))
    return ex, [m.spec for m in sc.config.markets]


def _inner_spreads_bps(cmds: list[C.Command], user: str, asset: int) -> float | None:
    orders = [o for c in cmds if isinstance(c, C.PlaceOrders) and c.user == user for o in c.orders if o.asset == asset]
    bids, asks = [o.px for o in orders if o.is_buy], [o.px for o in orders if not o.is_buy]
    if not bids or not asks:
        return None
    bid, ask = max(bids), min(asks)
    return (ask - bid) / ((ask + bid) / 2) * 1e4


def _drive(pop: Population, reads: Any, asset: int, prices: list[int], start_s: int = 0) -> list[float]:
    """Step once a second through ``prices`` (the underlying's) and collect maker 0's inner spreads."""
    out = []
    for i, px in enumerate(prices):
        spread = _inner_spreads_bps(pop.step(T0 + (start_s + i + 1) * 1000, reads, external={asset: px}),
                                    pop.makers[0], asset)
        if spread is not None:
            out.append(spread)
    return out


def test_makers_quote_one_plus_vol_over_vol_widen_times_wider_when_the_price_swings() -> None:
    """A price alternating ±10 bps every second has |log return| ≈ 10 bps per √s, so after a few
    half-lives the EWMA is ≈ 10 and the makers quote 1 + 10/5 = 3 times wider than in a still
    market (whose EWMA decays toward 0: widening ≈ 1)."""
    ex, specs = _exchange()
    btc = specs[0]
    pop = Population(PopulationParams(makers=1, vol_widen_bps=5.0, vol_halflife_s=30.0, **QUIET), seed=1)
    base = ex.reads.oracle(btc.asset)
    still = _drive(pop, ex.reads, btc.asset, [base] * 600)
    swing = [round(base * (1.001 if i % 2 else 1.0)) for i in range(600)]
    swinging = _drive(pop, ex.reads, btc.asset, swing, start_s=600)
    assert pop.vol[btc.asset] == pytest.approx(math.log(1.001) * 1e4, rel=0.02)
    calm, wild = sorted(still[-100:])[50], sorted(swinging[-100:])[50]
    assert 2.5 <= wild / calm <= 3.5


def test_past_vol_pull_the_first_maker_pulls_and_the_second_keeps_quoting_until_it_calms() -> None:
    """Pull thresholds 5 × (1 + k): with the volatility at ≈ 8 bps per √s maker 0 (5) pulls and
    maker 1 (10) stays; once the price is still again both quote."""
    ex, specs = _exchange()
    btc = specs[0]
    pop = Population(PopulationParams(makers=2, vol_pull_bps=5.0, vol_halflife_s=20.0, **QUIET), seed=2)
    base = ex.reads.oracle(btc.asset)
    for i in range(300):
        cmds = pop.step(T0 + (i + 1) * 1000, ex.reads, external={btc.asset: round(base * (1.0008 if i % 2 else 1))})
    assert 7.5 <= pop.vol[btc.asset] <= 8.5
    assert (0, btc.asset) in pop.pulled and (1, btc.asset) not in pop.pulled
    cmds = []
    for i in range(300, 304):  # the next requote
        cmds += pop.step(T0 + (i + 1) * 1000, ex.reads, external={btc.asset: round(base * (1.0008 if i % 2 else 1))})
    assert _inner_spreads_bps(cmds, pop.makers[0], btc.asset) is None
    assert _inner_spreads_bps(cmds, pop.makers[1], btc.asset) is not None
    for i in range(304, 904):  # still for 30 half-lives: the EWMA decays under both thresholds
        pop.step(T0 + (i + 1) * 1000, ex.reads, external={btc.asset: base})
    assert pop.pulled == frozenset()


def test_a_maker_hedges_half_its_inventory_per_half_life_while_the_underlying_trades_and_none_while_closed() -> None:
    sc = load_scenario("xyz100-weekend-twap")
    (spec,) = [m.spec for m in sc.config.all_markets()]
    pop = Population(PopulationParams(hedge_halflife_s=300.0), seed=3)
    maker = pop.makers[0]
    open_ts = 1_765_551_600_000  # Fri 12 Dec 2025 15:00 UTC: the US session is open
    assert pop._hedged(open_ts, maker, spec, 1000) == 0  # nothing hedged yet
    assert pop._hedged(open_ts + 300_000, maker, spec, 1000) == 500  # one half-life: half
    assert pop._hedged(open_ts + 600_000, maker, spec, 1000) == 750  # two: three quarters
    closed_ts = 1_765_580_400_000  # Fri 23:00 UTC: closed, nothing more is hedged
    assert pop._hedged(closed_ts, maker, spec, 1000) == 750
    assert pop._hedged(closed_ts + 3_600_000, maker, spec, 1000) == 750


def test_momentum_traders_buy_a_rise_in_proportion_and_leave_a_stall_alone_when_flat() -> None:
    """The mark up 2% over the 60 s lookback against a 100 bps threshold: one trader buys
    $20,000 × min(200/100, 5) = $40,000 (rounded up to whole lots)."""
    ex, specs = _exchange()
    btc = specs[0]
    base = ex.reads.mark(btc.asset)
    reads = Reads(ex.reads, touch=True)
    pop = Population(PopulationParams(makers=0, momentum=1, momentum_every_s=5.0, momentum_lookback_s=60.0,
                                      momentum_threshold_bps=100.0, momentum_usd=20_000.0, **QUIET), seed=4)
    reads.marks = {btc.asset: base}
    assert pop.step(T0 + 1_000, reads) == []
    reads.marks[btc.asset] = round(base * 1.02)
    cmds = [c for t in range(2, 62) for c in pop.step(T0 + t * 1_000, reads)]
    buys = [o for c in cmds if isinstance(c, C.PlaceOrders) for o in c.orders if o.asset == btc.asset]
    assert buys and all(o.is_buy for o in buys)
    px = reads.marks[btc.asset]
    lot_usd = px / 10**btc.px_decimals / 10**btc.sz_decimals
    assert buys[0].sz == math.ceil(40_000 / lot_usd)
    assert buys[0].reduce_only is False and cmds[0].user == participant(5, 0)  # type: ignore[attr-defined]


def test_a_maker_leaves_a_ladder_resting_until_the_centre_moves_past_requote_min_move() -> None:
    ex, specs = _exchange()
    btc = specs[0]
    pop = Population(PopulationParams(makers=1, requote_min_move_bps=1.0, requote_s=1.0, **QUIET), seed=5)
    base = ex.reads.oracle(btc.asset)
    first = pop.step(T0 + 1_000, ex.reads, external={a.asset: base for a in specs})
    assert any(isinstance(c, C.PlaceOrders) for c in first)
    again = pop.step(T0 + 2_000, ex.reads, external={a.asset: round(base * 1.00005) for a in specs})  # 0.5 bps
    assert again == []
    moved = pop.step(T0 + 3_000, ex.reads, external={a.asset: round(base * 1.0002) for a in specs})  # 2 bps
    assert isinstance(moved[0], C.CancelAll) and isinstance(moved[1], C.PlaceOrders)


def test_leveraged_traders_open_one_after_another_over_lever_open_s() -> None:
    """Four traders over 40 s: trader i opens at the first step + 10 s × i."""
    ex, _ = _exchange()
    reads = Reads(ex.reads, touch=True)
    pop = Population(PopulationParams(makers=0, takers=0, levered=4, lever_open_s=40.0), seed=6)
    opened_at = {}
    for t in range(1, 50):
        for c in pop.step(T0 + t * 1000, reads):
            if isinstance(c, C.UpdateLeverage):
                opened_at[c.user] = t
    assert opened_at == {participant(3, i): 1 + 10 * i for i in range(4)}


def test_a_markets_flow_regime_is_a_unit_variance_ou_path_with_its_half_life() -> None:
    """buy share = 0.5 + 0.2·x, x an OU path of unit variance: over many half-lives the share's
    mean is 0.5 and its deviation 0.2 (clipping at 0.05/0.95 is 2.25σ away: it hardly shows), and
    its autocorrelation one half-life apart is 0.5."""
    _, specs = _exchange()
    pop = Population(PopulationParams(imbalance=0.2, imbalance_halflife_s=60.0), seed=7)
    shares = [pop._buy_share(T0 + t * 1000, specs[0]) for t in range(60_000)]
    mean = sum(shares) / len(shares)
    dev = math.sqrt(sum((s - mean) ** 2 for s in shares) / len(shares))
    assert abs(mean - 0.5) < 0.03 and 0.17 < dev < 0.22
    lag = 60
    cov = sum((a - mean) * (b - mean) for a, b in zip(shares, shares[lag:], strict=False)) / (len(shares) - lag)
    assert 0.4 < cov / dev**2 < 0.6
    assert Population(PopulationParams(), seed=7)._buy_share(T0, specs[0]) == 0.5  # no regime: the base share
