"""Property tests of the perp mechanics (``perpbox.exchange``: prices, funding, liquidation,
controls) over random command sequences: liquidation (book, partial slices, backstop vault,
insurance fund, ADL), funding, open-interest caps, halts and market status, driven through ``Exchange.apply``.

Each example lists 2..3 markets with manual oracles (``Tick.marks`` sets the mark): BTC
(Hyperliquid liquidation, tiers up to 50x), ETH (Binance-style liquidation with the insurance fund,
or Hyperliquid with a per-tick book-liquidation budget; Binance-like hourly funding on the mark)
and SOL (maker rebates, partial slices above $20k, the vaults unwind what they take over into the
book, $5k per tick).  Traders with $300..$30k open positions at up
to 50x (cross or isolated), market makers rest ladders around the mark, the backstop vault
(``MAIN_BACKSTOP``) and the insurance fund (``MAIN_INSURANCE``) are funded in some examples and
not in others (so both takeovers and ADL run), marks walk and sometimes crash or spike 20–40% in
one tick, ticks jump up to an hour and more (funding is paid hourly), operators set small
open-interest caps and halt/resume markets.

Every event is also applied, one at a time, to a *mirror* exchange (what ``Exchange.replay``
does), so the checks can see the state between the events of one command.  After EVERY command:

1. money is conserved exactly: ``ledger.total_cash() == deposits − withdrawals``;
2. per market Σ long szi == Σ short szi, ``ex.holdings.oi[asset]`` == Σ long szi, and ``ex.holdings.holders``
   lists exactly the accounts with a position; a halted market has no position and no order;
3. no book is crossed;
4. funding: every ``FundingSettled`` pays every holder (its real size) exactly
   ``ceil(szi × px × rate / 1e8)``, Σ paid − Σ received == remainder, and
   0 ≤ remainder < number of payments (at most one micro-USDC each; 0 with none); a Tick pays
   each market exactly when it crosses the market's next funding time (hourly), never otherwise;
5. liquidation, as the code defines it (see ``Checker.end_group``): a liquidation only starts on
   a scope (cross account, or isolated position) below maintenance, with the event's figures
   exact; only a solvent scope goes to the book (a bankrupt one goes straight to the
   backstop/insurance fund or ADL); when the engine is done with a scope it is either closed with
   value ≥ 0 (takeover and ADL: exactly 0, the transfers' cash equal to its equity; a book
   liquidation's fee dust covered by the backstop/insurance fund to exactly 0), or still open
   with value ≥ 0; a takeover leaves the vault at or above its maintenance.  The one exception
   is an ADL whose counterparties together cannot carry the deficit: it closes the scope and
   reports what is left with a ``Liquidated`` event (method ``adlShortfall``, ``account_value``
   = −shortfall, ≤ the scope's deficit), and the transfers' cash is the equity plus that
   shortfall.  After a Tick, every scope with a negative value is explained: its owner was
   pushed there *by the sweep itself* (the maker of a liquidation order's fill, an ADL
   shortfall, an ADL counterparty that was already below zero, or the cross account of an
   isolated position liquidated in the sweep — the sweep is one pass over the scopes below
   maintenance at its start), or it is a flat account whose deficit predates the tick and did not
   grow.
6. open interest never exceeds a cap through a fill that grows it: after every such fill
   ``oi × mark ≤ oi_cap_ntl`` (and the lots cap, and the dex total at the marks), checked fill
   by fill (marks as ``ex.pricing.prices`` at the time), and at the end of every command with fills in
   which a capped market's OI grew;
7. replay: ``Exchange.replay(all events).state_hash() == ex.state_hash()`` at the end (and the
   mirror's hash, and re-applying the commands gives the same events, responses and hash);
8. ADL only touches holders: every ADL ``PositionTransferred`` goes to an account holding the
   opposite side, at least as large as the lots it takes, which it reduces (never flips), paying
   (usd ≤ 0) never receiving; the backstop/insurance takes the whole position at the mark.
   ADL never pushes a counterparty below zero: after each transfer a cross counterparty's cross
   value is ≥ 0, an isolated one's position value is ≥ 0 and its cross value did not fall (one
   already below zero pays nothing).
9. the liquidation pre-filter never misses: after every command the engine's own list of scopes
   below maintenance (``PositionIndex`` candidates, kept in step with the accounts the ledger
   touched, then confirmed exactly) equals a brute-force exact check of every account.  The
   re-applied run of 7, which checks nothing between commands, lets the index accumulate
   touched accounts over many commands and must still give the same events.

Engine bugs found while this test was written (fixed in 732852f; their minimal reproductions are
regression tests at the end of this file): a book liquidation could close an account that was already below zero
at the mark and leave it flat with its whole deficit as negative cash, covered by nobody; the
bankruptcy limit ignored the liquidation order's taker fee, so a fill at it left the account at
−fee; and a fill flipping a position through zero was not checked against the open-interest cap.

Volume: the default (CI) profile runs ``EXAMPLES`` examples of at least ``SEQ_LEN[0]`` random
commands each (setup not counted): ≥ 20,000 commands, asserted.  ``HYPOTHESIS_PROFILE=dev`` is a
quick tenth.  Derandomized, no example database, and no constants drawn from whatever modules the
session imported (``_no_local_constants``): CI runs the same sequences every time, alone or in
the full suite.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

try:
    from profiles import COMMON, PROFILE
    from repro import failure_key, minimise
except ModuleNotFoundError:  # e.g. pytest --import-mode=importlib: the directory is not on sys.path
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from profiles import COMMON, PROFILE
    from repro import failure_key, minimise
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_state import floats_in_state
from perpbox.core.numbers import RATE_SCALE, USD, round_price_sig
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.engine import Exchange
from perpbox.exchange.liquidation import LIQUIDATED, MAIN_BACKSTOP, MAIN_INSURANCE
from perpbox.market import FeeSchedule, MarginTable, MarketSpec
from perpbox.market.funding import HOUR_MS, FundingParams, FundingPrice, PremiumAverage
from perpbox.market.liquidation import LiquidationParams, LiquidationStyle
from perpbox.risk.liquidation import adl_charges

# ==================================================================================================
# profiles and volume
# ==================================================================================================
SEQ_LEN = (200, 250)  # random commands per example (after the setup)
_PROFILES = {"ci": 100, "dev": 10}
for _name, _n in _PROFILES.items():
    settings.register_profile(f"perpbox-mechanics-{_name}", max_examples=_n, **COMMON)
EXAMPLES = _PROFILES[PROFILE]
SETTINGS = settings(settings.get_profile(f"perpbox-mechanics-{PROFILE}"), max_examples=EXAMPLES)
MIN_COMMANDS = EXAMPLES * SEQ_LEN[0]

STATS: Counter[str] = Counter()


def test_profile_volume_covers_20k_commands() -> None:
    assert _PROFILES["ci"] * SEQ_LEN[0] >= 20_000


# ==================================================================================================
# markets, actors, prices
# ==================================================================================================
TS0 = 1_700_000_000_000 // HOUR_MS * HOUR_MS + 50 * 60_000  # ten minutes before an hour boundary
BTC, ETH, SOL = 0, 1, 2
MIDS = {BTC: 600_000, ETH: 300_000, SOL: 1_500_000}  # $60,000 (0.1), $3,000 (0.01), $150 (0.0001)
TRADERS = [f"0x7{i:03x}" for i in range(8)]
MAKERS = ["0x3000", "0x3001"]
MARKET_SETS = [(BTC, ETH, SOL), (BTC, ETH, SOL), (BTC, ETH), (BTC, SOL), (ETH, SOL)]
ETH_FUNDING = FundingParams(average=PremiumAverage.TIME_WEIGHTED, pay_on=FundingPrice.MARK)  # hourly


def market_specs(eth_binance: bool) -> dict[int, MarketSpec]:
    eth_liq = (LiquidationParams(style=LiquidationStyle.BINANCE) if eth_binance
               else LiquidationParams(max_ntl_per_tick=150_000 * USD))
    return {
        BTC: MarketSpec("BTC", BTC, 5, MarginTable.hyperliquid([(0, 50), (150_000, 20), (600_000, 10)])),
        ETH: MarketSpec("ETH", ETH, 4, MarginTable.from_brackets(
            [("0", 50, "0.01"), ("50000", 25, "0.02"), ("250000", 10, "0.05")]),
            funding=ETH_FUNDING, liquidation=eth_liq),
        SOL: MarketSpec("SOL", SOL, 2, MarginTable.single(20), fees=FeeSchedule(maker=-2_000, taker=35_000),
                        liquidation=LiquidationParams(partial_above_ntl=20_000 * USD,
                                                      unwind_ntl_per_tick=5_000 * USD)),
    }


def snap(spec: MarketSpec, px: int) -> int:
    px = round_price_sig(max(px, 1), spec.px_decimals, spec.max_sig_figs)
    assert spec.valid_price(px), (spec.name, px)
    return px


def bps(px: int, b: int) -> int:
    """``px`` moved by ``b`` basis points."""
    return px * (10_000 + b) // 10_000


def _pick(draw: Any, seq: list[Any]) -> Any:
    return seq[draw(st.integers(0, len(seq) - 1))]


# ==================================================================================================
# command generation (reads the live engine to size orders and aim at real positions)
# ==================================================================================================
class Gen:
    def __init__(self, ex: Exchange, specs: dict[int, MarketSpec]) -> None:
        self.ex = ex
        self.specs = specs
        self.assets = sorted(specs)
        self.mids = {a: MIDS[a] for a in self.assets}
        self.ts = TS0
        self.requote: tuple[str, list[C.OrderRequest]] | None = None  # a maker's quotes after its cancel

    def step(self, ms: int) -> int:
        self.ts += ms
        return self.ts

    def szi(self, user: str, asset: int) -> int:
        pos = self.ex.holdings.position(user, asset)
        return pos.szi if pos is not None else 0

    def mark(self, asset: int) -> int:
        return self.ex.pricing.mark(asset) or self.mids[asset]

    def halted(self, asset: int) -> bool:
        return self.ex.controls.status(asset) == "halted"


def ladder(draw: Any, g: Gen, asset: int) -> list[C.OrderRequest]:
    """A market maker's quotes around the mark: 2..5 levels a side, post-only or GTC."""
    spec = g.specs[asset]
    mark = g.mark(asset)
    levels = draw(st.integers(2, 5))
    gap = draw(st.integers(3, 60))  # bps between levels
    skew = draw(st.integers(-20, 20))
    usd = draw(st.integers(2_000, 40_000))
    tif = "Alo" if draw(st.booleans()) else "Gtc"
    out = []
    for i in range(1, levels + 1):
        for is_buy in (True, False):
            px = snap(spec, bps(mark, skew + (-i if is_buy else i) * gap))
            out.append(C.OrderRequest(asset=asset, is_buy=is_buy, px=px, sz=max(1, usd * USD // px), tif=tif))
    return out


def open_order(draw: Any, g: Gen, user: str, asset: int) -> C.OrderRequest:
    """A trader's order sized by what the account can margin at its leverage (up to ~1.2x of it)."""
    ex, spec = g.ex, g.specs[asset]
    mark = g.mark(asset)
    acct = ex.ledger.accounts.get(user)
    room = max(ex.margin.available_to_trade(acct), 0) if acct is not None else 0
    pos = acct.positions.get(asset) if acct is not None else None
    lev = pos.leverage if pos is not None else spec.default_leverage
    ntl = max(15 * USD, room * lev * draw(st.integers(5, 120)) // 100)
    is_buy = draw(st.booleans())
    tif = _pick(draw, ["Ioc", "Ioc", "FrontendMarket", "Gtc", "Gtc", "Alo"])
    slip = draw(st.integers(10, 600)) if tif in ("Ioc", "FrontendMarket") else draw(st.integers(-80, 40))
    px = snap(spec, bps(mark, slip if is_buy else -slip))
    return C.OrderRequest(asset=asset, is_buy=is_buy, px=px, sz=max(1, ntl // px), tif=tif)


@st.composite
def mechanics_command(draw: Any, g: Gen) -> C.Command:
    ex = g.ex
    if g.requote is not None:
        user, orders = g.requote
        g.requote = None
        return C.PlaceOrders(ts=g.step(1), user=user, orders=orders)
    # markets do not stay halted, reduce-only or post-only for long
    halted = [a for a in g.assets if g.halted(a)]
    if halted and draw(st.integers(0, 14)) == 0:
        return C.HaltTrading(ts=g.step(draw(st.integers(1, 300))), asset=_pick(draw, halted), halted=False)
    odd = [a for a in g.assets if ex.controls.status(a) in ("reduceOnly", "postOnly")]
    if odd and draw(st.integers(0, 14)) == 0:
        return C.SetMarketStatus(ts=g.step(draw(st.integers(1, 300))), asset=_pick(draw, odd), status="active")
    k = draw(st.integers(0, 99))
    asset = _pick(draw, g.assets)
    spec = g.specs[asset]
    trader = _pick(draw, TRADERS)
    if k < 26:  # open / add / flip
        return C.PlaceOrders(ts=g.step(draw(st.integers(1, 300))), user=trader,
                             orders=[open_order(draw, g, trader, asset)])
    if k < 32:  # close part or all, reduce-only at an aggressive price
        holders = [(u, a) for u in TRADERS for a in g.assets if g.szi(u, a)]
        if holders:
            trader, asset = _pick(draw, holders)
            spec = g.specs[asset]
        szi = g.szi(trader, asset) or 1
        is_buy = szi < 0
        px = snap(spec, bps(g.mark(asset), draw(st.integers(10, 600)) * (1 if is_buy else -1)))
        sz = max(1, abs(szi) * draw(st.integers(10, 110)) // 100)
        req = C.OrderRequest(asset=asset, is_buy=is_buy, px=px, sz=sz, tif="Ioc", reduce_only=True)
        return C.PlaceOrders(ts=g.step(draw(st.integers(1, 300))), user=trader, orders=[req])
    if k < 46:  # a market maker quotes (half the time replacing its quotes in that market)
        mm = _pick(draw, MAKERS)
        quotes = ladder(draw, g, asset)
        if draw(st.booleans()):
            g.requote = (mm, quotes)
            return C.CancelAll(ts=g.step(draw(st.integers(1, 300))), user=mm, asset=asset)
        return C.PlaceOrders(ts=g.step(draw(st.integers(1, 300))), user=mm, orders=quotes)
    if k < 49:
        return C.CancelAll(ts=g.step(draw(st.integers(1, 300))), user=_pick(draw, MAKERS + TRADERS),
                           asset=asset if draw(st.integers(0, 3)) else None)
    if k < 52:  # cancel one live order
        live = sorted(ex.orders.orders)
        if live:
            o = ex.orders.orders[_pick(draw, live)]
            return C.Cancel(ts=g.step(draw(st.integers(1, 300))), user=o.user, asset=o.asset, oid=o.oid)
        return C.Cancel(ts=g.step(1), user=trader, asset=asset, oid=ex.orders.next_oid)
    if k < 56:
        lev = draw(st.integers(1, spec.max_leverage))
        if draw(st.integers(0, 2)):
            lev = max(lev, spec.max_leverage * 2 // 3)  # mostly high leverage
        return C.UpdateLeverage(ts=g.step(draw(st.integers(1, 300))), user=trader, asset=asset,
                                is_cross=draw(st.integers(0, 3)) > 0, leverage=lev)
    if k < 58:
        iso = [(u, a) for u in TRADERS for a in g.assets
               if (p := ex.holdings.position(u, a)) is not None and p.szi and not p.is_cross]
        if iso:
            trader, asset = _pick(draw, iso)
        return C.UpdateIsolatedMargin(ts=g.step(draw(st.integers(1, 300))), user=trader, asset=asset,
                                      usd=draw(st.integers(-300, 300)) * USD // 2)
    if k < 60:
        who = _pick(draw, [*TRADERS, *TRADERS, MAIN_BACKSTOP, MAIN_INSURANCE])
        return C.Deposit(ts=g.step(draw(st.integers(1, 300))), user=who, usd=draw(st.integers(100, 8_000)) * USD)
    if k < 62:
        acct = ex.ledger.accounts.get(trader)
        room = ex.margin.withdrawable(acct) if acct is not None else 0
        return C.Withdraw(ts=g.step(draw(st.integers(1, 300))), user=trader,
                          usd=max(1, room * draw(st.integers(1, 110)) // 100))
    if k < 65:  # small open-interest caps (operator), sometimes a dex total
        mode = draw(st.integers(0, 7))
        ntl = ex.holdings.open_interest_ntl(asset)
        if mode <= 1:
            cap = 0  # removes the cap
        elif mode <= 5 and ntl:
            cap = max(1, ntl * draw(st.integers(60, 250)) // 100)
        else:
            cap = draw(st.integers(10, 600)) * 1_000 * USD
        total = None
        if mode == 7:
            total = 0 if draw(st.booleans()) else draw(st.integers(50, 1_500)) * 1_000 * USD
        return C.SetOpenInterestCaps(ts=g.step(draw(st.integers(1, 300))), caps={asset: cap}, total_cap=total)
    if k < 67:  # halt (or a no-op resume of a running market)
        return C.HaltTrading(ts=g.step(draw(st.integers(1, 300))), asset=asset,
                             halted=draw(st.integers(0, 3)) == 0)
    if k < 68:
        status = _pick(draw, ["active", "reduceOnly", "postOnly"])
        return C.SetMarketStatus(ts=g.step(draw(st.integers(1, 300))), asset=asset, status=status)
    # tick (32%): marks walk, sometimes jump, sometimes crash/spike 20–40%; time may cross hours
    marks: dict[int, int] = {}
    for a in g.assets:
        r = draw(st.integers(0, 99))
        if r < 15:
            continue
        mid = g.mids[a]
        if r < 85:
            move = draw(st.integers(-60, 60))
        elif r < 96:
            move = draw(st.integers(-600, 600))
        else:
            move = draw(st.integers(2_000, 4_000)) * (-1 if draw(st.integers(0, 2)) else 1)
        mid = min(max(bps(mid, move), MIDS[a] // 5), MIDS[a] * 4)
        g.mids[a] = marks[a] = snap(g.specs[a], mid)
    dt = _pick(draw, [1_000, 2_000, 5_000, 5_000, 30_000, 31_000, 300_000, 1_200_000, 2_400_000, 3_700_000])
    return C.Tick(ts=g.step(dt), marks=marks)


def setup_commands(draw: Any, g: Gen) -> list[C.Command]:
    cmds: list[C.Command] = [C.AddMarket(ts=g.step(1), spec=g.specs[a], mark_px=g.mids[a]) for a in g.assets]
    for u in TRADERS:
        cmds.append(C.Deposit(ts=g.step(1), user=u, usd=draw(st.integers(300, 30_000)) * USD))
        for a in g.assets:
            spec = g.specs[a]
            lev = draw(st.integers(max(1, spec.max_leverage // 2), spec.max_leverage))
            cmds.append(C.UpdateLeverage(ts=g.step(1), user=u, asset=a, is_cross=draw(st.integers(0, 3)) > 0,
                                         leverage=lev))
    for u in MAKERS:
        cmds.append(C.Deposit(ts=g.step(1), user=u, usd=draw(st.integers(300, 3_000)) * 1_000 * USD))
    for vault in (MAIN_BACKSTOP, MAIN_INSURANCE):  # none (ADL), small, or large
        size = draw(st.integers(0, 2))
        if size:
            usd = draw(st.integers(5, 50)) * 1_000 if size == 1 else draw(st.integers(200, 2_000)) * 1_000
            cmds.append(C.Deposit(ts=g.step(1), user=vault, usd=usd * USD))
    return cmds


def initial_quotes(draw: Any, g: Gen) -> list[C.Command]:
    return [C.PlaceOrders(ts=g.step(1), user=mm, orders=ladder(draw, g, a)) for mm in MAKERS for a in g.assets]


# ==================================================================================================
# the checker: a mirror exchange fed event by event, and the properties
# ==================================================================================================
def _scope_positions(acct: Any, scope: int) -> list[Any]:
    if scope < 0:
        return [p for p in acct.positions.values() if p.szi and p.is_cross]
    p = acct.positions.get(scope)
    return [p] if p is not None and p.szi else []


@dataclass
class Group:
    """One scope's liquidation, from its first ``Liquidated`` event (``market``; or, for a bankrupt
    scope, the takeover or ADL) to the first event of the next scope's, or the end of the tick."""

    user: str
    scope: int
    value0: int
    raw0: int
    style: LiquidationStyle
    method: str = "market"
    liquidator: str = ""
    equity: int = 0  # account_value of the takeover/ADL event
    raw1: int = 0  # the account's cross cash at that event
    usd: int = 0  # Σ usd of its PositionTransferred events
    fees: int = 0  # taker fees of its liquidation fills
    n_fills: int = 0  # and how many there were
    covered: int = 0  # fee dust paid in by the backstop/insurance after the book closed it
    clearance: int = 0  # Binance clearance fee charged just before
    shortfall: int = 0  # the deficit ADL could not place (its ``adlShortfall`` event)
    cross_cps: set[str] = field(default_factory=set)  # ADL counterparties charged on their cross account
    iso_slack: dict[str, int] = field(default_factory=dict)  # what isolated ADL counterparties could
    # still have paid: the equity their closed lots released to their cross cash, less what they paid


@dataclass
class Ctx:
    """What one command did, as the checks need it."""

    group: Group | None = None
    liq_oids: set[int] = field(default_factory=set)
    unwind_oids: set[int] = field(default_factory=set)  # the vaults' own reducing IOCs in a Tick
    hit: dict[str, str] = field(default_factory=dict)  # touched by the sweep, and how
    iso_liquidated: set[str] = field(default_factory=set)
    funded: list[int] = field(default_factory=list)
    clearance: tuple[str, int] = ("", 0)  # the last clearance fee: (payer, usd)
    fills: int = 0


class Checker:
    def __init__(self, specs: dict[int, MarketSpec]) -> None:
        self.specs = specs
        self.m = Exchange()  # the mirror: every event applied one by one, as replay does
        self.next_funding: dict[int, int] = {}

    # -- helpers on the mirror ----------------------------------------------------------------
    def value_mm(self, acct: Any, scope: int) -> tuple[int, int]:
        prices = self.m.pricing.prices
        if scope < 0:
            ps = _scope_positions(acct, -1)
            value = acct.raw_usd + sum(p.szi * prices[p.asset] for p in ps)
        else:
            p = acct.positions[scope]
            ps = [p] if p.szi else []
            value = p.iso_raw + p.szi * prices[scope]
        mm = sum(self.specs[p.asset].margin_table.maintenance_margin(abs(p.szi) * prices[p.asset]) for p in ps)
        return value, mm

    def style_of(self, acct: Any, scope: int) -> LiquidationStyle:
        """The engine's documented rule: the isolated market's, or for a cross account its largest
        cross position's market (by notional, then lowest asset)."""
        if scope >= 0:
            return self.specs[scope].liquidation.style
        ps = _scope_positions(acct, -1)
        big = max(ps, key=lambda p: (abs(p.szi) * self.m.pricing.prices[p.asset], -p.asset))
        return self.specs[big.asset].liquidation.style

    def adl_cp_values(self, user: str, asset: int) -> tuple[int, int]:
        """An ADL counterparty's cross value, and its ``asset`` position's value if isolated (else 0)."""
        acct = self.m.ledger.accounts[user]
        cross, _ = self.value_mm(acct, -1)
        p = acct.positions.get(asset)
        return cross, (p.iso_raw + p.szi * self.m.pricing.prices[asset] if p is not None and not p.is_cross else 0)

    def szi(self, user: str, asset: int) -> int:
        acct = self.m.ledger.accounts.get(user)
        pos = acct.positions.get(asset) if acct is not None else None
        return pos.szi if pos is not None else 0

    # -- one command ----------------------------------------------------------------------------
    def check(self, ex: Exchange, cmd: C.Command, events: list[V.Event]) -> None:
        m = self.m
        tick = isinstance(cmd, C.Tick)
        oi_start = dict(m.holdings.oi)
        flat_debt = {}
        if tick:  # flat cross accounts already below zero (their value does not move with marks)
            for addr, acct in m.ledger.accounts.items():
                if acct.raw_usd < 0 and not _scope_positions(acct, -1):
                    flat_debt[addr] = acct.raw_usd
        ctx = Ctx()
        for ev in events:
            self.event(ctx, cmd, ev)
        self.end_group(ctx)
        self.after(ex, cmd, ctx, oi_start, flat_debt)

    def event(self, ctx: Ctx, cmd: C.Command, ev: V.Event) -> None:
        m = self.m
        apply = m.sink.appliers[type(ev)]
        t = type(ev)
        if t is V.Fill:
            a = ev.asset
            tk0, mk0, oi0 = self.szi(ev.taker, a), self.szi(ev.maker, a), m.holdings.oi.get(a, 0)
            apply(ev)
            tk1, mk1, oi1 = self.szi(ev.taker, a), self.szi(ev.maker, a), m.holdings.oi.get(a, 0)
            ctx.fills += 1
            if ev.taker_oid in ctx.liq_oids:
                assert ctx.group is not None and ev.taker == ctx.group.user, ev
                assert tk1 * tk0 >= 0 and abs(tk1) < abs(tk0), f"a liquidation fill must reduce: {tk0} -> {tk1} {ev}"
                assert oi1 <= oi0, f"a liquidation fill grew open interest: {ev}"
                ctx.group.fees += ev.taker_fee
                ctx.group.n_fills += 1
                ctx.hit.setdefault(ev.maker, "maker of a liquidation fill")
                STATS["liquidation fills"] += 1
            elif ev.taker_oid in ctx.unwind_oids:
                assert tk1 * tk0 >= 0 and abs(tk1) < abs(tk0), f"a vault's unwind must reduce: {tk0} -> {tk1} {ev}"
                ctx.hit.setdefault(ev.maker, "maker of a vault's unwind fill")
                STATS["vault unwind fills"] += 1
            if oi1 > oi0:
                self.oi_growth(ctx, ev, tk0 * tk1 < 0 or mk0 * mk1 < 0)
            return
        if t is V.OrderPlaced and ev.liquidation:
            g = ctx.group
            assert isinstance(cmd, C.Tick) and g is not None and ev.user == g.user, ev
            assert ev.reduce_only and ev.tif == "Ioc" and ev.sz > 0, ev
            assert g.scope < 0 or ev.asset == g.scope, ev
            ctx.liq_oids.add(ev.oid)
        elif t is V.OrderPlaced and isinstance(cmd, C.Tick) and ev.user in (MAIN_BACKSTOP, MAIN_INSURANCE):
            assert ev.reduce_only and ev.tif == "Ioc" and ev.sz > 0, ev
            assert ev.asset == SOL, f"only SOL's policy unwinds: {ev}"
            ctx.unwind_oids.add(ev.oid)
        elif t is V.FundingSettled:
            self.funding(cmd, ev)
            ctx.funded.append(ev.asset)
        elif t is V.IsolatedMarginMoved and isinstance(cmd, C.Tick):
            self.end_group(ctx)  # a clearance fee: the next scope's liquidation begins
        elif t is V.Transferred and isinstance(cmd, C.Tick):
            self.sweep_transfer(ctx, ev)
        elif t is V.Liquidated:
            self.liquidated(ctx, cmd, ev)
        elif t is V.PositionTransferred:
            self.transferred(ctx, ev)
            return
        elif t is V.MarketSettled:
            assert isinstance(cmd, C.HaltTrading) and cmd.halted, ev
            apply(ev)
            assert not m.holdings.holders.get(ev.asset), f"positions left after settling {ev}"
            return
        elif t is V.OrderClosed:
            assert ev.status != LIQUIDATED or isinstance(cmd, C.Tick), ev
            STATS[f"order closed: {ev.status}"] += 1
        elif t is V.OrderRejected:
            STATS[f"order rejected: {ev.status} {ev.error[:40] if ev.status == 'rejected' else ''}"] += 1
        apply(ev)

    # -- 4. funding -----------------------------------------------------------------------------
    def funding(self, cmd: C.Command, ev: V.FundingSettled) -> None:
        m = self.m
        assert isinstance(cmd, C.Tick) and ev.ts == cmd.ts, ev
        a = ev.asset
        spec = self.specs[a]
        st_ = m.pricing.states[a]
        want_px = st_.oracle if spec.funding.pay_on is FundingPrice.ORACLE else st_.mark
        assert ev.px == (want_px or m.pricing.prices.get(a, 0)), (ev, st_)
        assert abs(ev.rate) <= spec.funding.cap_per_hour * spec.funding.interval_ms // HOUR_MS, ev
        holders = sorted((u, p.szi) for u, acct in m.ledger.accounts.items()
                         if (p := acct.positions.get(a)) is not None and p.szi)
        if ev.rate == 0 or ev.px <= 0:
            want = []
        else:
            want = [(u, szi, -((-szi * ev.px * ev.rate) // RATE_SCALE)) for u, szi in holders]
        assert sorted(ev.payments) == want, f"funding payments {ev.payments} != {want}"
        paid = sum(x for _, _, x in ev.payments if x > 0)
        received = -sum(x for _, _, x in ev.payments if x < 0)
        assert paid - received == ev.remainder >= 0, ev
        assert ev.remainder < max(1, len(ev.payments)), f"remainder {ev.remainder} ≥ {len(ev.payments)} payments"
        STATS["funding settlements"] += 1
        STATS["funding payments"] += len(ev.payments)
        STATS["funding remainder (micro-USDC)"] += ev.remainder

    # -- 5/8. liquidation -----------------------------------------------------------------------
    def liquidated(self, ctx: Ctx, cmd: C.Command, ev: V.Liquidated) -> None:
        assert isinstance(cmd, C.Tick), ev
        m = self.m
        acct = m.ledger.accounts[ev.user]
        STATS[f"liquidation: {ev.method}"] += 1
        if ev.method == "partial":
            g = ctx.group
            assert g is not None and g.user == ev.user and g.method == "market", ev
            p = acct.positions[ev.asset]
            assert p.szi and ((g.scope < 0 and p.is_cross) or g.scope == ev.asset), ev
            return
        if ev.method == "adlShortfall":
            g = ctx.group
            assert g is not None and (g.user, g.scope, g.method) == (ev.user, ev.asset, "adl"), (ev, g)
            assert not _scope_positions(acct, ev.asset), f"ADL shortfall before the scope is closed: {ev}"
            assert g.equity <= ev.account_value < 0 and not g.shortfall, (ev, g)
            assert (ev.liquidator, ev.maintenance_margin, ev.notional) == ("", 0, 0), ev
            # a shortfall only when no counterparty could pay more without going below zero
            # (a cross account's room is its value net of what its isolated fills here released into it)
            room = sum(g.iso_slack.values()) + sum(
                max(self.value_mm(m.ledger.accounts[u], -1)[0] - g.iso_slack.get(u, 0), 0) for u in g.cross_cps)
            assert room == 0, f"ADL left a shortfall of {-ev.account_value} with {room} of room: {ev}"
            g.shortfall = -ev.account_value
            ctx.hit.setdefault(ev.user, "ADL shortfall (reported)")
            STATS["ADL shortfall (micro-USDC)"] += g.shortfall
            return
        if ev.method == "market":
            self.end_group(ctx)
            value, mm = self.value_mm(acct, ev.asset)
            assert (ev.account_value, ev.maintenance_margin) == (value, mm), (ev, value, mm)
            assert _scope_positions(acct, ev.asset) and value < mm, f"liquidating a healthy scope: {ev}"
            ctx.group = Group(ev.user, ev.asset, value, acct.raw_usd, self.style_of(acct, ev.asset))
            if ctx.clearance[0] == ev.user:
                ctx.group.clearance = ctx.clearance[1]
            ctx.clearance = ("", 0)
            return
        value, mm = self.value_mm(acct, ev.asset)
        assert (ev.account_value, ev.maintenance_margin) == (value, mm), (ev, value, mm)
        assert value < mm, ev
        g = ctx.group
        if g is None or (g.user, g.scope) != (ev.user, ev.asset):  # no book liquidation first: bankrupt
            self.end_group(ctx)
            assert _scope_positions(acct, ev.asset) and value <= 0, f"a solvent scope skipped the book: {ev}"
            g = ctx.group = Group(ev.user, ev.asset, value, acct.raw_usd, self.style_of(acct, ev.asset))
        assert g.method == "market", (ev, g)
        if ev.method == "backstop":
            assert g.style is LiquidationStyle.HYPERLIQUID and ev.liquidator == MAIN_BACKSTOP, ev
            assert 3 * value < 2 * mm, f"backstop above 2/3 of maintenance: {ev}"
        elif ev.method == "insurance":
            assert g.style is LiquidationStyle.BINANCE and ev.liquidator == MAIN_INSURANCE, ev
        else:
            assert ev.method == "adl" and ev.liquidator == "" and value < 0, ev
        g.method, g.liquidator, g.equity, g.raw1 = ev.method, ev.liquidator, value, acct.raw_usd

    def sweep_transfer(self, ctx: Ctx, ev: V.Transferred) -> None:
        """Cash moved by the sweep: a Binance clearance fee (the liquidated account to the insurance
        fund, before its book liquidation) or fee dust covered after a book liquidation closed a
        scope below zero (the backstop or insurance fund to the account)."""
        g = ctx.group
        acct = self.m.ledger.accounts.get(ev.dst)  # the insurance fund may be created by its first fee
        if (g is None or acct is None or ev.dst != g.user or ev.src not in (MAIN_BACKSTOP, MAIN_INSURANCE)
                or _scope_positions(acct, g.scope)):
            assert ev.dst == MAIN_INSURANCE, f"unexpected transfer in a tick: {ev}"
            self.end_group(ctx)
            ctx.clearance = (ev.src, ev.usd)
            STATS["clearance fees"] += 1
            return
        assert g.method == "market", (ev, g)
        assert ev.src == (MAIN_INSURANCE if g.style is LiquidationStyle.BINANCE else MAIN_BACKSTOP), (ev, g)
        # the fee-aware limit leaves only per-fill fee rounding: under one micro-USDC a fill
        assert 0 < ev.usd < max(2, g.n_fills), f"more than fee dust covered ({g.n_fills} fills): {ev}"
        g.covered += ev.usd
        ctx.hit.setdefault(ev.src, "covered fee dust")
        STATS["fee dust covered (micro-USDC)"] += ev.usd

    def transferred(self, ctx: Ctx, ev: V.PositionTransferred) -> None:
        m = self.m
        g = ctx.group
        assert g is not None and g.method in ("backstop", "insurance", "adl") and ev.src == g.user, (ev, g)
        a = ev.asset
        src0, dst0 = self.szi(ev.src, a), self.szi(ev.dst, a)
        assert ev.px == m.pricing.prices[a], ev
        assert src0 and (src0 > 0) == (ev.sz > 0) and abs(ev.sz) <= abs(src0), f"transfer {ev} of szi {src0}"
        assert (g.scope < 0 and m.ledger.accounts[ev.src].positions[a].is_cross) or g.scope == a, ev
        cp_before = (0, 0)
        if g.method == "adl":
            # 8. only holders of the opposite side, never more than they hold, and they pay
            assert ev.dst != ev.src and dst0 and (dst0 > 0) != (ev.sz > 0), f"ADL to a non-holder: {ev} (szi {dst0})"
            assert abs(dst0) >= abs(ev.sz), f"ADL flips {ev.dst}: szi {dst0}, {ev}"
            assert ev.usd <= 0, f"ADL counterparty receives money: {ev}"
            cp_before = self.adl_cp_values(ev.dst, a)
            STATS["ADL transfers"] += 1
        else:
            assert ev.dst == g.liquidator and ev.sz == src0, f"takeover must take the whole position: {ev}"
        m.sink.appliers[type(ev)](ev)
        if g.method == "adl":
            dst1 = self.szi(ev.dst, a)
            assert dst1 * dst0 >= 0 and abs(dst1) == abs(dst0) - abs(ev.sz), (ev, dst0, dst1)
            # ... and never pushes one below zero (8): one already below zero pays nothing
            (cross0, pos0), (cross1, pos1) = cp_before, self.adl_cp_values(ev.dst, a)
            is_cross = m.ledger.accounts[ev.dst].positions[a].is_cross
            if (cross0 if is_cross else pos0) < 0:
                assert ev.usd == 0, f"ADL charges {ev.dst}, already below zero ({cross0}, {pos0}): {ev}"
                ctx.hit.setdefault(ev.dst, "ADL counterparty already below zero")
            elif is_cross:
                assert cross1 >= 0, f"ADL pushes {ev.dst} below zero: cross value {cross0} -> {cross1}, {ev}"
                g.cross_cps.add(ev.dst)
                STATS["ADL cross counterparties capped at exactly zero"] += cross0 > 0 and cross1 == 0
            else:
                assert pos1 >= 0 and cross1 >= cross0, (
                    f"ADL pushes {ev.dst} below zero: isolated {pos0} -> {pos1}, cross {cross0} -> {cross1}, {ev}")
                release = pos0 if abs(ev.sz) == abs(dst0) else pos0 * abs(ev.sz) // abs(dst0)
                STATS["ADL transfers to isolated counterparties"] += 1
                STATS["ADL isolated counterparties capped at their released equity"] += 0 < release == -ev.usd
                g.iso_slack[ev.dst] = g.iso_slack.get(ev.dst, 0) + release + ev.usd
                if cross0 < 0:
                    ctx.hit.setdefault(ev.dst, "ADL counterparty already below zero")
        else:
            ctx.hit.setdefault(ev.dst, "took a position over")
        g.usd += ev.usd

    def end_group(self, ctx: Ctx) -> None:
        """What the engine guarantees once it is done with one scope (``Liquidations._liquidate``):
        closed by a takeover or ADL at exactly zero equity; otherwise equity ≥ 0, open or closed."""
        g = ctx.group
        if g is None:
            return
        ctx.group = None
        acct = self.m.ledger.accounts[g.user]
        value, _ = self.value_mm(acct, g.scope)
        open_ = bool(_scope_positions(acct, g.scope))
        where = f"{g.user} scope {g.scope} ({g.method}, equity at start {g.value0})"
        if g.scope >= 0:
            ctx.iso_liquidated.add(g.user)
        if g.method != "market":
            # the isolated bucket's cash goes to cross cash as the position closes: count it in
            left = value + (acct.raw_usd - g.raw1 if g.scope >= 0 else 0)
            assert not open_, f"{where}: positions left after the {g.method}"
            assert g.usd == g.equity + g.shortfall, (
                f"{where}: transfers moved {g.usd}, equity was {g.equity}, shortfall {g.shortfall}")
            assert left == -g.shortfall, f"{where}: equity {left} after the {g.method}, not −{g.shortfall}"
            if g.method != "adl":
                vault = self.m.ledger.accounts[g.liquidator]
                v_value, v_mm = self.value_mm(vault, -1)
                assert v_value >= v_mm, f"{where}: the vault is left below maintenance ({v_value} < {v_mm})"
            return
        # book liquidation only (a solvent scope): what it left, with what it released to cross cash
        # (the engine decides on the equity before the clearance fee, which may take all of it)
        assert g.value0 > 0 or (g.value0 == 0 and g.clearance), f"{where}: a bankrupt scope went to the book"
        if g.scope >= 0:
            value += acct.raw_usd - g.raw0
        if g.covered:
            assert value == 0 and not open_, f"{where}: {g.covered} covered, equity now {value}"
        assert value >= 0, (f"{where}: the book left it {'open' if open_ else 'closed'} with equity {value} "
                            f"(liquidation fees {g.fees}, covered {g.covered})")

    # -- 6. open-interest caps ------------------------------------------------------------------
    def oi_growth(self, ctx: Ctx, ev: V.Fill, flipped: bool) -> None:
        m = self.m
        a = ev.asset
        cfg = m.controls.config[a]
        mark = m.pricing.prices.get(a, 0)
        oi = m.holdings.oi.get(a, 0)
        over = []
        if cfg.oi_cap_ntl and mark and oi * mark > cfg.oi_cap_ntl:
            over.append(f"oi {oi} × mark {mark} = {oi * mark} > cap {cfg.oi_cap_ntl}")
        if cfg.oi_cap_sz and oi > cfg.oi_cap_sz:
            over.append(f"oi {oi} > lots cap {cfg.oi_cap_sz}")
        total = m.controls.dex_oi_cap.get(m.board.markets[a].dex, 0)
        markets = m.board.markets
        used = sum(m.holdings.open_interest_ntl(b) for b in markets if markets[b].dex == markets[a].dex)
        if total and mark and used > total:
            over.append(f"dex open interest {used} > total cap {total}")
        STATS["fills growing capped open interest"] += bool(cfg.oi_cap_ntl or cfg.oi_cap_sz or total)
        STATS["fills growing capped open interest through a flip"] += bool(
            flipped and (cfg.oi_cap_ntl or cfg.oi_cap_sz or total))
        assert not over, f"fill grew open interest past its cap: {'; '.join(over)}: {ev}"

    # -- after every command --------------------------------------------------------------------
    def after(self, ex: Exchange, cmd: C.Command, ctx: Ctx, oi_start: dict[int, int],
              flat_debt: dict[str, int]) -> None:
        m = self.m
        led = ex.ledger
        # 1. conservation (engine and mirror)
        assert led.total_cash() == led.deposits - led.withdrawals, (
            f"cash {led.total_cash()} != deposits − withdrawals {led.deposits - led.withdrawals}")
        assert m.ledger.total_cash() == led.total_cash() and m.ledger.deposits == led.deposits
        # 2. open interest and holders
        for a in sorted(ex.board.markets):
            spec = self.specs[a]
            longs = shorts = 0
            holders = set()
            for addr, acct in led.accounts.items():
                p = acct.positions.get(a)
                if p is None or not p.szi:
                    continue
                holders.add(addr)
                if p.szi > 0:
                    longs += p.szi
                else:
                    shorts -= p.szi
            assert longs == shorts, f"{spec.name}: Σ long {longs} != Σ short {shorts}"
            oi_index, holders_index = ex.holdings.oi, ex.holdings.holders
            assert oi_index.get(a, 0) == longs == m.holdings.oi.get(a, 0), (
                f"{spec.name}: oi {oi_index.get(a)} != Σ long {longs}")
            assert set(holders_index.get(a, {})) == holders, f"{spec.name}: holders index {holders_index.get(a)}"
            if ex.controls.status(a) == "halted":
                assert not holders and not any(o.asset == a for o in ex.orders.orders.values()), f"halted {spec.name}"
            # 3. never crossed
            bid, ask = ex.board.books[a].best_bid(), ex.board.books[a].best_ask()
            # 7. the order path's copy of config, pricing and dex caps is in step with them
            gate, cfg, st_ = ex.controls.gates[a], ex.controls.config[a], ex.pricing.states[a]
            assert (gate.restricted, gate.oracle, gate.mark, gate.session_open, gate.capped) == (
                ex.controls.status(a) != "active", st_.oracle, st_.mark, st_.session_open,
                bool(cfg.oi_cap_ntl or cfg.oi_cap_sz or ex.controls.dex_oi_cap.get(spec.dex))), (
                f"{spec.name}: stale gate")
            assert bid is None or ask is None or bid < ask, f"{spec.name} crossed: {bid} >= {ask}"
            # 6. the brief's statement: a capped market whose OI grew in a command with fills
            cap = ex.controls.config[a].oi_cap_ntl
            oi = ex.holdings.oi.get(a, 0)
            if ctx.fills and cap and oi > oi_start.get(a, 0):
                px = ex.pricing.prices[a]
                assert oi * px <= cap, f"{spec.name}: open interest grew to {oi} × {px} > cap {cap}"
        # 9. the pre-filter misses nothing
        assert ex.liquidations._liquidatable() == _liquidatable_brute_force(ex), "the liquidation index missed a scope"
        if not isinstance(cmd, C.Tick):
            return
        # 4. funding exactly when due
        for a in sorted(ex.board.markets):
            due = cmd.ts >= self.next_funding[a]
            assert ctx.funded.count(a) == (1 if due else 0), f"asset {a}: funding {ctx.funded} at {cmd.ts}, due {due}"
            if due:
                self.next_funding[a] = (cmd.ts // HOUR_MS + 1) * HOUR_MS
        # 5. after a tick every negative scope is explained
        for addr, acct in led.accounts.items():
            cross_open = bool(_scope_positions(acct, -1))
            scopes = [(-1, ex.margin.cross_value(acct), cross_open)]
            scopes += [(a, ex.margin.isolated_value(p), True) for a, p in acct.positions.items()
                       if p.szi and not p.is_cross]
            for scope, value, open_ in scopes:
                if value >= 0:
                    continue
                if addr in ctx.hit or (scope < 0 and addr in ctx.iso_liquidated):
                    how = ctx.hit.get(addr, "its isolated position liquidated")
                    STATS[f"negative after a tick ({'open' if open_ else 'flat'}), pushed by the sweep: {how}"] += 1
                elif not open_ and scope < 0 and addr in flat_debt:
                    assert value >= flat_debt[addr], f"{addr}: a flat account's deficit grew in a tick"
                else:
                    raise AssertionError(f"{addr} scope {scope}: value {value} < 0 after a tick "
                                         f"({'open' if open_ else 'flat'}), not explained by the sweep")

    def listed(self, cmd: C.Command) -> None:
        if isinstance(cmd, C.AddMarket):
            self.next_funding[cmd.spec.asset] = (cmd.ts // HOUR_MS + 1) * HOUR_MS


def _liquidatable_brute_force(ex: Exchange) -> list[tuple[Fraction, str, int]]:
    """Every scope below maintenance, by checking every account exactly (no index)."""
    m = ex.margin
    out = []
    for user, acct in ex.ledger.accounts.items():
        cross_mm = m.cross_maintenance_margin(acct)
        if cross_mm and m.cross_value(acct) < cross_mm:
            out.append((Fraction(m.cross_value(acct), cross_mm), user, -1))
        for asset, p in acct.positions.items():
            if p.szi and not p.is_cross and m.isolated_value(p) < m.maintenance_margin(p):
                out.append((Fraction(m.isolated_value(p), m.maintenance_margin(p)), user, asset))
    return sorted(out)


# ==================================================================================================
# driving, reproduction
# ==================================================================================================
def _step(ex: Exchange, checker: Checker, cmd: C.Command, answers: list[Any] | None = None) -> list[V.Event]:
    """Execute ``cmd`` and check it; its response goes to ``answers`` (before the checks, so that a
    failure can show it)."""
    outcome = ex.execute(cmd)
    if answers is not None:
        answers.append(outcome.response)
    checker.listed(cmd)
    checker.check(ex, cmd, outcome.events)
    return outcome.events


def _replay_concrete(specs: dict[int, MarketSpec], cmds: list[C.Command]) -> tuple[str | None, str]:
    ex = Exchange()
    checker = Checker(specs)
    try:
        for cmd in cmds:
            _step(ex, checker, cmd)
    except AssertionError as e:
        return failure_key(str(e)), str(e).splitlines()[0] if str(e) else "AssertionError"
    except Exception as e:  # the engine itself raised
        return type(e).__name__, f"{type(e).__name__}: {e}"
    return None, "passes"


def _is_final_run() -> bool:
    try:
        from hypothesis.control import current_build_context

        return bool(current_build_context().is_final)
    except Exception:
        return False


def _run(ex: Exchange, checker: Checker, cmd: C.Command, log: list[C.Command], n_events: list[int],
         all_events: list[V.Event], responses: list[Any]) -> None:
    log.append(cmd)
    try:
        events = _step(ex, checker, cmd, responses)
    except Exception as e:  # a property, or the engine (or the checker) raised
        repro = [c for c, n in zip(log, n_events) if n] + [cmd]
        response = responses[-1] if len(responses) == len(log) else "none: the engine raised"
        msg = f"{type(e).__name__}: {e}\n  after command #{len(log)}: {cmd!r}\n  response: {response!r}\n"
        if _is_final_run():
            specs = checker.specs
            key = failure_key(str(e)) if isinstance(e, AssertionError) else type(e).__name__
            repro = minimise(repro, key, lambda cs: _replay_concrete(specs, cs))
            msg += f"  minimal reproduction (delta-debugged): {_replay_concrete(specs, repro)[1]}\n"
        msg += "  reproduction:\n  [\n" + "\n".join(f"    {c!r}," for c in repro) + "\n  ]"
        raise AssertionError(msg) from None
    n_events.append(len(events))
    all_events.extend(events)


@SETTINGS
@given(st.data())
def _mechanics_property(data: st.DataObject) -> None:
    assets = data.draw(st.sampled_from(MARKET_SETS), label="markets")
    every = market_specs(eth_binance=data.draw(st.booleans(), label="eth binance"))
    specs = {a: every[a] for a in assets}
    ex = Exchange()
    g = Gen(ex, specs)
    checker = Checker(specs)
    log: list[C.Command] = []
    n_events: list[int] = []
    all_events: list[V.Event] = []
    responses: list[Any] = []
    for cmd in setup_commands(data.draw, g) + initial_quotes(data.draw, g):
        _run(ex, checker, cmd, log, n_events, all_events, responses)
    n = data.draw(st.integers(*SEQ_LEN), label="commands")
    for i in range(n):
        cmd = data.draw(mechanics_command(g), label=f"cmd {i + 1}")
        _run(ex, checker, cmd, log, n_events, all_events, responses)
        STATS["commands"] += 1
        STATS[f"command: {type(cmd).__name__}"] += 1
    # 7. replay, and determinism
    h = ex.state_hash()
    assert Exchange.replay(all_events).state_hash() == h, "replay of the events gives another state"
    assert checker.m.state_hash() == h, "the event-by-event mirror has another state"
    fresh = Exchange()
    again: list[V.Event] = []
    for i, cmd in enumerate(log):
        outcome = fresh.execute(cmd)
        again.extend(outcome.events)
        assert outcome.response == responses[i], f"command #{i + 1} answered differently: {cmd!r}"
    assert again == all_events and fresh.state_hash() == h, "re-applying the commands gave another run"
    assert floats_in_state(ex) == [], "a float in engine state"
    STATS["events"] += len(all_events)
    STATS["fills"] += sum(1 for ev in all_events if isinstance(ev, V.Fill))


@contextmanager
def _no_local_constants() -> Iterator[None]:
    """Hypothesis (since 6.131) sometimes draws an integer from the constants it finds in the
    *imported* local modules, so a derandomized run still changed with what else the session had
    imported: under ``pytest -n 2 tests`` this test saw other sequences than on its own, and the
    "every mechanism really ran" floors below failed by chance (2 partial liquidations, or 3
    insurance takeovers, with the engine before and after the ADL cap alike).  Pin that pool to
    empty, so the sequences depend only on the engine and this file (private Hypothesis API: if
    it moves, the test still runs, just unpinned)."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants
    except ImportError:  # pragma: no cover
        yield
        return
    saved = getattr(providers, "_get_local_constants", None)
    cache = getattr(getattr(providers, "CONSTANTS_CACHE", None), "cache", None)
    if saved is None or cache is None:  # pragma: no cover
        yield
        return
    empty = Constants()
    cache.clear()
    providers._get_local_constants = lambda: empty
    try:
        yield
    finally:
        providers._get_local_constants = saved
        cache.clear()


def test_mechanics_invariants_hold_after_every_command() -> None:
    STATS.clear()
    t0 = time.perf_counter()
    with _no_local_constants():
        _mechanics_property()
    dt = time.perf_counter() - t0
    lines = "\n".join(f"  {k}: {v}" for k, v in sorted(STATS.items()))
    print(f"\nmechanics: {STATS['commands']} commands in {EXAMPLES} examples, {dt:.1f}s ({PROFILE} profile)\n{lines}")
    assert STATS["commands"] >= MIN_COMMANDS, STATS["commands"]
    if PROFILE == "ci":  # every mechanism really ran
        for key in ("liquidation: market", "liquidation: partial", "liquidation: backstop", "liquidation: insurance",
                    "liquidation: adl", "ADL transfers", "funding settlements", "vault unwind fills"):
            assert STATS[key] >= 5, (key, STATS[key])
        assert STATS["funding remainder (micro-USDC)"] > 0
        assert STATS["fills"] >= MIN_COMMANDS // 4


# ==================================================================================================
# regressions: minimal reproductions of the engine bugs found (fixed in 732852f, and the ADL cap)
# ==================================================================================================
def _btc_long(ex: Exchange, ts: int) -> None:
    """BTC at $100,000 (20x, maintenance 2.5%, taker fee 0.045%); 0xa, with $10,000, buys 1 BTC
    from the maker 0xm (equity $9,955)."""
    ex.apply(C.AddMarket(ts=ts, spec=MarketSpec("BTC", 0, 5, MarginTable.single(20)), mark_px=1_000_000))
    ex.apply(C.Deposit(ts=ts, user="0xa", usd=10_000 * USD))
    ex.apply(C.Deposit(ts=ts, user="0xm", usd=1_000_000 * USD))
    ex.apply(C.place(ts, "0xm", 0, False, 1_000_000, 100_000))
    ex.apply(C.place(ts, "0xa", 0, True, 1_000_000, 100_000, tif="Ioc"))


def _conserved(ex: Exchange) -> bool:
    return ex.ledger.total_cash() == ex.ledger.deposits - ex.ledger.withdrawals


def test_bankrupt_account_skips_the_book_so_its_deficit_is_socialised() -> None:
    """Was: the book took the whole long at the mark and the account was left flat at −$10,081
    (its deficit plus the fee), covered by nobody."""
    ex, ts = Exchange(), TS0
    _btc_long(ex, ts)
    ex.apply(C.place(ts, "0xm", 0, True, 800_000, 100_000))  # a bid for 1 BTC at $80,000
    evs = ex.apply(C.Tick(ts=ts + 1_000, marks={0: 800_000}))  # −20%: equity −$10,045
    assert [(e.method, e.account_value) for e in evs if isinstance(e, V.Liquidated)] == [("adl", -10_045 * USD)]
    assert not [e for e in evs if isinstance(e, V.Fill)]
    (adl,) = [e for e in evs if isinstance(e, V.PositionTransferred)]
    assert (adl.src, adl.dst, adl.sz, adl.px, adl.usd) == ("0xa", "0xm", 100_000, 800_000, -10_045 * USD)
    acct = ex.ledger.accounts["0xa"]
    assert acct.positions[0].szi == 0 and acct.raw_usd == 0
    assert _conserved(ex)


def test_book_liquidation_limit_pays_for_its_taker_fee() -> None:
    """Was: limited at the fee-blind bankruptcy price ($90,045), the fill left the account at −$40.52
    (the fee).  At $92,300 the equity is $2,255 (maintenance $2,307.50); the fee-aware limit is
    (92,300 − 2,255) / (1 − 0.045%) = $90,085.54…"""
    ex, ts = Exchange(), TS0
    _btc_long(ex, ts)
    ex.apply(C.place(ts, "0xm", 0, True, 900_850, 100_000))  # $90,085.0: below the limit
    evs = ex.apply(C.Tick(ts=ts + 1_000, marks={0: 923_000}))
    assert [(e.method, e.account_value) for e in evs if isinstance(e, V.Liquidated)] == [("market", 2_255 * USD)]
    assert not [e for e in evs if isinstance(e, V.Fill)]  # and ≥ 2/3 of maintenance: no backstop yet
    ex.apply(C.place(ts + 2_000, "0xm", 0, True, 900_860, 100_000))  # $90,086.0: above it
    evs = ex.apply(C.Tick(ts=ts + 3_000, marks={0: 923_000}))
    (fill,) = [e for e in evs if isinstance(e, V.Fill)]
    assert (fill.px, fill.sz) == (900_860, 100_000)
    acct = ex.ledger.accounts["0xa"]
    assert acct.positions[0].szi == 0
    # 2,255 − (92,300 − 90,086) − 90,086 × 0.045% = 0.4613
    assert acct.raw_usd == 2_255 * USD - 2_214 * USD - 40_538_700 == 461_300
    assert _conserved(ex)


def test_flipping_taker_cannot_grow_open_interest_past_the_cap() -> None:
    """Was: a taker flipping long 1 → short 4 was not checked (only fills where both sides open
    were), and open interest reached $500,000 under a $150,000 cap."""
    ex, ts = Exchange(), TS0
    _btc_long(ex, ts)  # open interest 1 BTC = $100,000
    ex.apply(C.Deposit(ts=ts, user="0xa", usd=100_000 * USD))
    ex.apply(C.Deposit(ts=ts, user="0xb", usd=1_000_000 * USD))
    ex.apply(C.SetOpenInterestCaps(ts=ts, caps={0: 150_000 * USD}))
    ex.apply(C.place(ts, "0xb", 0, True, 1_000_000, 500_000))  # bids 5 BTC
    evs = ex.apply(C.place(ts, "0xa", 0, False, 1_000_000, 500_000, tif="Ioc"))  # sells 5
    assert [e.status for e in evs if isinstance(e, V.OrderClosed)] == ["openInterestCapCanceled"]
    # room 0.5 BTC + 0xa's long 1 BTC: 0xa sells 1.5 (long 1 -> short 0.5), 0xb is long 1.5
    assert ex.holdings.position("0xa", 0).szi == -50_000 and ex.holdings.position("0xb", 0).szi == 150_000
    assert ex.holdings.open_interest_ntl(0) == 150_000 * USD


def test_adl_cannot_leave_a_counterparty_below_zero() -> None:
    """Was (strict xfail ``test_adl_can_leave_a_counterparty_below_zero``): v, cross, is long 1 BTC
    and 10 ETH; BTC falls 30% and ETH 0.33%: v's equity is −$21,158.50, split by maintenance margin
    into −$14,825.78 on BTC and −$6,332.72 on ETH.  s, short the 10 ETH with $2,000 (in profit, so
    first in the ETH queue), paid the whole ETH share: a position that barely moved was closed 21%
    away from its mark, and s ended flat at −$4,237.22, which nothing ever recovers (a flat
    account is not liquidated).

    Now s pays at most its cross value, $2,095.50 (31,995.50 cash − 10 × 2,990), and ends at
    exactly zero; the $4,237.22 it cannot pay is carried on and, the ETH queue being exhausted,
    offered again to BTC's short m ($1,000,000), who pays 14,825.775776 + 4,237.224224 =
    $19,063.00 in all.  v ends at exactly zero and nothing is left unplaced."""
    ex, ts = Exchange(), TS0
    ex.apply(C.AddMarket(ts=ts, spec=MarketSpec("BTC", 0, 5, MarginTable.single(20)), mark_px=1_000_000))
    ex.apply(C.AddMarket(ts=ts, spec=MarketSpec("ETH", 1, 4, MarginTable.single(20)), mark_px=300_000))
    for user, usd in (("0xv", 9_000), ("0xs", 2_000), ("0xm", 1_000_000)):
        ex.apply(C.Deposit(ts=ts, user=user, usd=usd * USD))
    ex.apply(C.place(ts, "0xm", 0, False, 1_000_000, 100_000))  # m asks 1 BTC at $100,000
    ex.apply(C.place(ts, "0xv", 0, True, 1_000_000, 100_000, tif="Ioc"))
    ex.apply(C.place(ts, "0xs", 1, False, 300_000, 100_000))  # s asks 10 ETH at $3,000
    ex.apply(C.place(ts, "0xv", 1, True, 300_000, 100_000, tif="Ioc"))
    evs = ex.apply(C.Tick(ts=ts + 1_000, marks={0: 700_000, 1: 299_000}))
    assert [(e.dst, e.asset, e.sz, e.px, e.usd) for e in evs if isinstance(e, V.PositionTransferred)] == [
        ("0xm", 0, 100_000, 700_000, -19_063 * USD), ("0xs", 1, 100_000, 299_000, -2_095_500_000)]
    assert [e.method for e in evs if isinstance(e, V.Liquidated)] == ["adl"]  # no shortfall
    s_, v_, m_ = (ex.ledger.accounts[u] for u in ("0xs", "0xv", "0xm"))
    assert s_.positions[1].szi == 0 and s_.raw_usd == 0  # was −4,237.22
    assert v_.positions[0].szi == v_.positions[1].szi == 0 and v_.raw_usd == 0
    # m: 1,000,000 − 15 maker fee + 30,000 on its short − 19,063 = 1,010,922
    assert m_.positions[0].szi == 0 and m_.raw_usd == 1_010_922 * USD
    assert _conserved(ex)


@settings(max_examples=500, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.integers(0, 10**9), st.integers(0, 3)), max_size=12),
       st.lists(st.integers(-10**9, 2 * 10**9), min_size=4, max_size=4))
def test_adl_charges_place_the_deficit_exactly_and_never_past_a_counterparty_room(
        fills: list[tuple[int, int]], room: list[int]) -> None:
    """``risk.liquidation.adl_charges``: every micro-USDC of the deficit is either paid or reported
    as the shortfall; no pool pays more than its room (a negative room is none); nothing is left
    unpaid while some pool has room; and when no pool binds every fill pays exactly its share."""
    nominal = [d for d, _ in fills]
    pool = [k for _, k in fills]
    pays, shortfall = adl_charges(nominal, pool, room)
    assert len(pays) == len(fills) and all(p >= 0 for p in pays) and shortfall >= 0
    assert sum(pays) + shortfall == sum(nominal)
    paid = [sum(p for p, k in zip(pays, pool) if k == i) for i in range(4)]
    assert all(paid[i] <= max(room[i], 0) for i in range(4)), (paid, room)
    used = set(pool)
    if shortfall:
        assert all(paid[i] == max(room[i], 0) for i in used), (paid, room, shortfall)
    if all(sum(d for d, k in fills if k == i) <= room[i] for i in used):
        assert pays == nominal and shortfall == 0
