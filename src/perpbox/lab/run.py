"""One lab run: a scenario on the exact engine over simulated time, for one seed.

Each step (``scenario.step``) of the horizon, in this order:

1. the external price: a seeded geometric random walk with jumps per market (``feeds.synthetic``,
   the same walk ``perpbox serve`` feeds, scaled by any volatility shock; it stands still while a
   market's session is closed), times the scenario's price shocks, quoted by three spot and two
   perp sources (``FeedPrices``) for the first dex's markets, and pushed by each HIP-3 dex's
   deployer (``SetOracle``: oracle, external perp price and the scenario's ``mark_inputs``) every
   ``oracle_interval`` unless an oracle outage silences it;
   with ``halt_offhours``, a market whose session closes goes reduce-only until it reopens;
2. ``Tick``: oracle, EMAs and mark, premium samples and funding when due, triggers, the
   liquidation sweep (book, backstop vault, insurance fund, ADL);
3. the population's commands (``agents.population``), makers quoting wider and thinner while a
   liquidity shock is in force;
4. a sample of what the metrics need (books, marks, oracles, the underlying's price while it trades,
   open interest, the vault's and the fund's value; every 10 s the depth within ±10 and ±50 bps)
   and the conservation check: the engine's cash must equal deposits − withdrawals exactly after
   every step (``CashAudit``).

Everything is a pure function of (scenario, seed): no wall clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from perpbox.agents.actors import Actor
from perpbox.agents.population import Population, session_closed
from perpbox.core.numbers import USD
from perpbox.exchange import Exchange
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.liquidation import backstop_address, insurance_address
from perpbox.exchange.reads import ExchangeReads
from perpbox.feeds.synthetic import SyntheticFeed
from perpbox.lab.scenario import Scenario
from perpbox.market.spec import MarketSpec

SPOT_SOURCES = ("binance", "okx", "bybit")
DEPTH_EVERY_MS = 10_000
DEPTH_BANDS_BPS = (10, 50)
DEPTH_LEVELS = 100  # per side: the levels read for a depth sample
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
    external: list[int | None] = field(default_factory=list)  # the underlying's price; None while closed
    depth_ts: list[int] = field(default_factory=list)  # steps at a multiple of DEPTH_EVERY_MS: when, and the depth
    depth: dict[int, list[float]] = field(default_factory=dict)  # band (bps) -> USD both sides within ±band of mid
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
    commands: int = 0  # commands applied to the engine
    events: list[V.Event] = field(default_factory=list)
    state_hash: str = ""
    attackers: list[tuple[str, int]] = field(default_factory=list)  # (address, capital) of the attacker actors
    attacker_value: int = 0  # their account values at the end, summed


def _value(ex: Exchange, user: str) -> int:
    return ex.reads.perp_value(user) or 0


def simulate(scenario: Scenario, seed: int, progress: Callable[[int], None] | None = None) -> RunTrace:
    """Run ``scenario`` for ``seed``; ``progress`` is called with the simulated ms done after each step."""
    ex = Exchange()
    trace = RunTrace(seed=seed)

    def apply(cmds: list[C.Command]) -> None:
        trace.commands += len(cmds)
        for cmd in cmds:
            trace.events.extend(ex.apply(cmd))

    t0 = scenario.start_ms
    config = scenario.config
    dexes = tuple(d.name for d in config.dexes)
    listed = config.all_markets()
    apply([C.AddMarket(ts=t0, spec=m.spec, mark_px=m.price) for m in config.markets])
    for i, d in enumerate(config.dexes, start=1):
        apply([C.Deposit(ts=t0, user=deployer_address(i), usd=1_000_000 * USD)])
        apply([C.AddMarket(ts=t0, spec=m.spec, mark_px=m.price, deployer=deployer_address(i), full_name=d.full_name)
               for m in d.markets])
    vaults = [backstop_address(0)] + [backstop_address(i) for i in range(1, len(dexes) + 1)]
    funds = [insurance_address(i) for i in range(len(dexes) + 1)]
    if config.backstop_usd > 0:
        apply([C.Deposit(ts=t0, user=vaults[0], usd=config.backstop_usd)])
    for i, d in enumerate(config.dexes, start=1):
        if d.backstop_usd > 0:
            apply([C.Deposit(ts=t0, user=vaults[i], usd=d.backstop_usd),
                   C.SendAsset(ts=t0, user=vaults[i], src=vaults[i], dst=vaults[i], src_dex="", dst_dex=d.name,
                               usd=d.backstop_usd)])
    trace.backstop_start = config.backstop_usd + sum(d.backstop_usd for d in config.dexes)
    population = Population(scenario.population, seed)
    apply(population.setup(t0, dexes))
    specs = {m.spec.coin: m.spec for m in listed}
    actors = [Actor(i, a, specs[a.market]) for i, a in enumerate(scenario.actors)]
    for actor in actors:
        dex = actor.market.dex
        for address, capital in actor.accounts():
            apply([C.Deposit(ts=t0, user=address, usd=capital)])
            if dex:
                apply([C.SendAsset(ts=t0, user=address, src=address, dst=address, src_dex="", dst_dex=dex,
                                   usd=capital)])
    trace.attackers = [acc for a in actors if a.spec.attacker for acc in a.accounts()]
    feed = SyntheticFeed(listed, seed, t0)
    for m in listed:
        s = m.spec
        trace.markets[s.asset] = MarketSeries(s.coin, s.px_decimals, oi_cap_ntl=s.controls.oi_cap_ntl)
    coins = {m.spec.asset: m.spec.coin for m in config.markets}
    all_coins = {m.spec.asset: m.spec.coin for m in listed}
    dex_assets = [(i, d.name, [m.spec.asset for m in d.markets]) for i, d in enumerate(config.dexes, start=1)]
    listed_specs = [m.spec for m in listed]
    specs_by_asset = {s.asset: s for s in listed_specs}
    session_assets = [s for s in listed_specs if s.oracle.session is not None]
    reduce_only: set[int] = set()
    next_push = 0
    steps = scenario.horizon_ms // scenario.step_ms
    for k in range(1, steps + 1):
        elapsed = k * scenario.step_ms
        ts = t0 + elapsed
        feed.step(ts, {a: scenario.vol_multiplier(c, elapsed) for a, c in all_coins.items()}
                  if scenario.vol_shocks else None)
        external = {a: max(1, round(feed.px[a] * scenario.price_multiplier(c, elapsed))) for a, c in all_coins.items()}
        feeds: list[C.Command] = []
        for src, perp in [(s, False) for s in SPOT_SOURCES] + [(s, True) for s in PERP_SOURCES]:
            pxs = {a: max(1, round(feed.quote(a) * scenario.price_multiplier(c, elapsed))) for a, c in coins.items()}
            feeds.append(C.FeedPrices(ts=ts, source=src, pxs=pxs, perp=perp))
        if elapsed >= next_push:
            next_push = elapsed + scenario.oracle_interval_ms
            for i, dex, assets in dex_assets:
                if scenario.oracle_down(dex, elapsed):
                    continue
                pxs = {a: external[a] for a in assets}
                marks = [pxs if kind == "external" else {a: _published_oracle(ex, specs_by_asset[a], ts, pxs[a])
                                                         for a in assets} for kind in scenario.mark_inputs]
                feeds.append(C.SetOracle(ts=ts, user=deployer_address(i), dex=dex, oracle_pxs=pxs,
                                         mark_pxs=marks, external_perp_pxs=pxs))
        apply(feeds)
        if scenario.halt_offhours:
            apply(_offhours_status(ts, session_assets, reduce_only))
        apply([C.Tick(ts=ts)])
        apply(population.step(ts, ex.reads, scenario.stress(elapsed), external))
        for actor in actors:
            apply(actor.step(elapsed, ts, ex.reads))
        _sample(ex, trace, ts, vaults, funds)
        for spec in listed_specs:
            trace.markets[spec.asset].external.append(None if session_closed(spec, ts) else external[spec.asset])
        if progress is not None:
            progress(elapsed)
    trace.attacker_value = sum(ex.reads.perp_value(a) or 0 for a, _ in trace.attackers)
    trace.state_hash = ex.state_hash()
    return trace


def _published_oracle(ex: Exchange, spec: MarketSpec, ts: int, pushed: int) -> int:
    """The oracle a deployer's ``"oracle"`` mark input carries: what it pushes while the external
    market trades, the venue's internal off-hours oracle while it is closed."""
    return ex.reads.oracle(spec.asset) if session_closed(spec, ts) else pushed


def deployer_address(dex_index: int) -> str:
    """The lab's deployer of the ``dex_index``-th HIP-3 dex."""
    return f"0x{0xA9E1:04x}{0x00DE:04x}{dex_index:032x}"


def _offhours_status(ts: int, specs: list[MarketSpec], reduce_only: set[int]) -> list[C.Command]:
    """Reduce-only while a session market's external market is closed, active again when it opens."""
    out: list[C.Command] = []
    for spec in specs:
        closed = session_closed(spec, ts)
        if closed and spec.asset not in reduce_only:
            reduce_only.add(spec.asset)
            out.append(C.SetMarketStatus(ts=ts, asset=spec.asset, status="reduceOnly"))
        elif not closed and spec.asset in reduce_only:
            reduce_only.discard(spec.asset)
            out.append(C.SetMarketStatus(ts=ts, asset=spec.asset, status="active"))
    return out


def _depth(reads: ExchangeReads, asset: int, px_decimals: int) -> dict[int, float]:
    """USD resting on both sides within each of ``DEPTH_BANDS_BPS`` of the mid (0 with a side empty;
    a lower bound if a side holds more than ``DEPTH_LEVELS`` levels inside the band)."""
    bid, ask = reads.best_bid_ask(asset)
    if bid is None or ask is None:
        return {b: 0.0 for b in DEPTH_BANDS_BPS}
    mid = (bid + ask) / 2
    spec = reads.market(asset)
    scale = 10**px_decimals * 10 ** (spec.sz_decimals if spec else 0)
    levels = reads.book_levels(asset, True, DEPTH_LEVELS) + reads.book_levels(asset, False, DEPTH_LEVELS)
    return {b: sum(px * sz for px, sz, _ in levels if abs(px - mid) <= mid * b / 10_000) / scale
            for b in DEPTH_BANDS_BPS}


def _sample(ex: Exchange, trace: RunTrace, ts: int, vaults: list[str], funds: list[str]) -> None:
    reads = ex.reads
    trace.ts.append(ts)
    for a, series in trace.markets.items():
        series.oracle.append(reads.oracle(a))
        series.mark.append(reads.mark(a))
        bid, ask = reads.best_bid_ask(a)
        series.bid.append(bid)
        series.ask.append(ask)
        series.oi_ntl.append(reads.open_interest_ntl(a))
    trace.backstop_value.append(sum(_value(ex, v) for v in vaults))
    trace.insurance_value.append(sum(_value(ex, f) for f in funds))
    if ts % DEPTH_EVERY_MS == 0:
        for a, series in trace.markets.items():
            series.depth_ts.append(ts)
            for band, usd in _depth(reads, a, series.px_decimals).items():
                series.depth.setdefault(band, []).append(usd)
    audit = reads.cash_audit()
    trace.max_residual = max(trace.max_residual, abs(audit.cash - (audit.deposits - audit.withdrawals)))

