"""One lab run: a scenario on the exact engine over simulated time, for one seed.

Each step (``scenario.step``) of the horizon, in this order:

1. the external price: a seeded geometric random walk with jumps per market (``feeds.synthetic``,
   the same walk ``perpbox serve`` feeds), times the scenario's price shocks, quoted by three spot
   and two perp sources (``FeedPrices``);
2. ``Tick``: oracle, EMAs and mark, premium samples and funding when due, triggers, the
   liquidation sweep (book, backstop vault, insurance fund, ADL);
3. the population's commands (``agents.population``), makers quoting wider and thinner while a
   liquidity shock is in force;
4. a sample of what the metrics need (books, marks, oracles, open interest, the vault's and the
   fund's value) and the conservation check: the engine's cash must equal deposits − withdrawals
   exactly after every step (``CashAudit``).

Everything is a pure function of (scenario, seed): no wall clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from perpbox.agents.population import Population
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.liquidation import backstop_address, insurance_address
from perpbox.feeds.synthetic import SyntheticFeed
from perpbox.lab.scenario import Scenario

SPOT_SOURCES = ("binance", "okx", "bybit")
PERP_SOURCES = ("binance", "okx")


@dataclass
class MarketSeries:
    """One market, sampled every step (price units; ``None``: that side of the book was empty)."""

    name: str
    px_decimals: int
    oracle: list[int] = field(default_factory=list)
    mark: list[int] = field(default_factory=list)
    bid: list[int | None] = field(default_factory=list)
    ask: list[int | None] = field(default_factory=list)
    oi_ntl: list[int] = field(default_factory=list)  # micro-USDC
    oi_cap_ntl: int = 0


@dataclass
class RunTrace:
    """What a run leaves: its events and its samples."""

    seed: int
    ts: list[int] = field(default_factory=list)
    markets: dict[int, MarketSeries] = field(default_factory=dict)
    backstop_value: list[int] = field(default_factory=list)  # micro-USDC
    insurance_value: list[int] = field(default_factory=list)
    backstop_start: int = 0
    max_residual: int = 0  # the largest |cash − (deposits − withdrawals)| seen, micro-USDC
    events: list[V.Event] = field(default_factory=list)
    state_hash: str = ""


def _value(ex: Exchange, user: str) -> int:
    summary = ex.reads.margin_summary(user)
    return 0 if summary is None else summary.account_value


def simulate(scenario: Scenario, seed: int, progress: Callable[[int], None] | None = None) -> RunTrace:
    """Run ``scenario`` for ``seed``; ``progress`` is called with the simulated ms done after each step."""
    ex = Exchange()
    trace = RunTrace(seed=seed)

    def apply(cmds: list[C.Command]) -> None:
        for cmd in cmds:
            trace.events.extend(ex.apply(cmd))

    t0 = scenario.start_ms
    config = scenario.config
    apply([C.AddMarket(ts=t0, spec=m.spec, mark_px=m.price) for m in config.markets])
    vault, fund = backstop_address(0), insurance_address(0)
    if config.backstop_usd > 0:
        apply([C.Deposit(ts=t0, user=vault, usd=config.backstop_usd)])
    trace.backstop_start = config.backstop_usd
    population = Population(scenario.population, seed)
    apply(population.setup(t0))
    feed = SyntheticFeed(config.markets, seed, t0)
    for m in config.markets:
        s = m.spec
        trace.markets[s.asset] = MarketSeries(s.name, s.px_decimals, oi_cap_ntl=s.controls.oi_cap_ntl)
    names = {m.spec.asset: m.spec.name for m in config.markets}
    steps = scenario.horizon_ms // scenario.step_ms
    for k in range(1, steps + 1):
        elapsed = k * scenario.step_ms
        ts = t0 + elapsed
        feed.step(ts)
        mult = {a: scenario.price_multiplier(n, elapsed) for a, n in names.items()}
        feeds: list[C.Command] = []
        for src, perp in [(s, False) for s in SPOT_SOURCES] + [(s, True) for s in PERP_SOURCES]:
            pxs = {a: max(1, round(feed.quote(a) * mult[a])) for a in names}
            feeds.append(C.FeedPrices(ts=ts, source=src, pxs=pxs, perp=perp))
        apply(feeds)
        apply([C.Tick(ts=ts)])
        apply(population.step(ts, ex.reads, scenario.stress(elapsed)))
        _sample(ex, trace, ts, vault, fund)
        if progress is not None:
            progress(elapsed)
    trace.state_hash = ex.state_hash()
    return trace


def _sample(ex: Exchange, trace: RunTrace, ts: int, vault: str, fund: str) -> None:
    reads = ex.reads
    trace.ts.append(ts)
    for a, series in trace.markets.items():
        series.oracle.append(reads.oracle(a))
        series.mark.append(reads.mark(a))
        bid, ask = reads.best_bid_ask(a)
        series.bid.append(bid)
        series.ask.append(ask)
        series.oi_ntl.append(reads.open_interest_ntl(a))
    trace.backstop_value.append(_value(ex, vault))
    trace.insurance_value.append(_value(ex, fund))
    audit = reads.cash_audit()
    trace.max_residual = max(trace.max_residual, abs(audit.cash - (audit.deposits - audit.withdrawals)))

