"""Each market's prices: the pricing state (oracle, EMAs, mark, session, premium samples:
``perpbox.pricing.pricer``), the price margin is computed at, the last trade, and the external
quotes the oracle definitions read (spot and perp, by source).

``MarketPricing`` is the only writer of these tables.  ``prices`` is shared read-only with the
margin view and the order path, so it is never rebound.  Gates derived from the pricing state
(``market.rules.MarketGate``) belong to the market controls; the exchange refreshes them in the
same applier (``Exchange._on_prices_updated``).
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from perpbox.core import errors as E
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.markets import MarketBoard
from perpbox.exchange.results import OK, Handler, Response
from perpbox.exchange.sink import Applier, EventSink
from perpbox.market.oracle import OracleKind
from perpbox.pricing import pricer
from perpbox.pricing.pricer import PriceState


class MarketPricing:
    """Owns the price feeds (``FeedPrices``), the deployer's oracle pushes (``SetOracle``'s prices)
    and the per-market pricing step of a tick; see the module docstring."""

    STATE: ClassVar[tuple[str, ...]] = ("states", "prices", "last_px", "spot_quotes", "perp_quotes")

    def __init__(self, sink: EventSink, board: MarketBoard) -> None:
        self.sink = sink
        self.board = board
        self.states: dict[int, PriceState] = {}
        self.prices: dict[int, int] = {}  # what margin is computed at: mark, else last trade
        self.last_px: dict[int, int] = {}
        self.spot_quotes: dict[int, dict[str, tuple[int, int]]] = {}  # asset -> source -> (px, ts)
        self.perp_quotes: dict[int, dict[str, tuple[int, int]]] = {}

    def handlers(self) -> dict[type, Handler]:
        return {C.FeedPrices: self._cmd_feed_prices}

    def appliers(self) -> dict[type, Applier]:
        return {V.QuotesFed: self._on_quotes_fed}

    # -- reads -------------------------------------------------------------------------------------
    def mark(self, asset: int) -> int:
        """The price margin is computed at: mark, else last trade, else 0."""
        return self.prices.get(asset, 0)

    def oracle(self, asset: int) -> int:
        st = self.states.get(asset)
        return st.oracle if st is not None else 0

    def state(self, asset: int) -> PriceState:
        return self.states[asset]

    def state_or_none(self, asset: int) -> PriceState | None:
        return self.states.get(asset)

    def margin_prices(self) -> dict[int, int]:
        """The margin price of every market, by asset: the table itself, read-only (the margin view
        and the liquidation pre-filter read it whole on every sweep)."""
        return self.prices

    def marks(self) -> dict[int, int]:
        return {a: st.mark for a, st in self.states.items() if st.mark}

    # -- commands and the tick ---------------------------------------------------------------------
    def _cmd_feed_prices(self, cmd: C.FeedPrices) -> Response:
        pxs = {a: p for a, p in cmd.pxs.items() if self.board.has(a) and p > 0}
        if pxs:
            self.sink.emit(V.QuotesFed(ts=cmd.ts, source=cmd.source, pxs=pxs, perp=cmd.perp))
        return OK

    def set_oracle(self, cmd: C.SetOracle) -> str | None:
        """A deployer's ``setOracle``: the error, or None once the new prices are applied (the
        exchange then acts on the new marks as at a tick)."""
        board = self.board
        err = board.deployer_error(cmd.user, cmd.dex)
        if err:
            return err
        assets = board.dex_assets(cmd.dex)
        if any(a not in assets for a in cmd.oracle_pxs) or len(cmd.mark_pxs) > 2:
            return "Invalid setOracle: unknown asset or more than two mark price lists."  # perpbox wording
        if any(p <= 0 for p in cmd.oracle_pxs.values()):
            return E.INVALID_PRICE
        for a in assets:
            st = self.states[a]
            spec = board.market(a)
            if a in cmd.oracle_pxs and st.deployer_ts and cmd.ts - st.deployer_ts < spec.oracle.min_update_ms:
                return f"Oracle updates must be at least {spec.oracle.min_update_ms} ms apart."  # perpbox wording
        if cmd.external_perp_pxs:
            self.sink.emit(V.QuotesFed(ts=cmd.ts, source="deployer", pxs=dict(cmd.external_perp_pxs), perp=True))
        for a in sorted(cmd.oracle_pxs):
            spec = board.market(a)
            new = pricer.push(spec.oracle, self.states[a], cmd.ts, cmd.oracle_pxs[a],
                              [m[a] for m in cmd.mark_pxs if a in m], board.book(a), self.last_px.get(a, 0))
            self.sink.emit(V.PricesUpdated(ts=cmd.ts, asset=a, state=new))
        return None

    def tick(self, ts: int, asset: int, marks: dict[int, int]) -> PriceState:
        """One market's pricing step of a tick (session, oracle, EMAs, mark, premium sample);
        ``marks`` are the tick's manual marks.  Returns the market's new state."""
        spec = self.board.market(asset)
        st = self.states[asset]
        manual = marks.get(asset) if spec.oracle.kind is OracleKind.MANUAL else None
        if manual is not None and manual <= 0:
            manual = None
        new = pricer.tick(spec.oracle, spec.funding, st, ts, self.board.book(asset), self.last_px.get(asset, 0),
                          self.spot_quotes.get(asset, {}), self.perp_quotes.get(asset, {}), manual)
        if new != st:
            self.sink.emit(V.PricesUpdated(ts=ts, asset=asset, state=new))
        return new

    # -- parts of appliers -------------------------------------------------------------------------
    def list_market(self, ev: V.MarketListed) -> None:
        asset = ev.spec.asset
        self.prices[asset] = ev.mark_px
        self.states[asset] = pricer.listed(ev.ts, ev.mark_px, ev.spec.funding)

    def update(self, ev: V.PricesUpdated) -> None:
        self.states[ev.asset] = ev.state
        if ev.state.mark:
            self.prices[ev.asset] = ev.state.mark

    def trade(self, asset: int, px: int, marked: bool) -> None:
        """Part of ``Fill``'s applier: the last trade, and the margin price while the market has no
        mark (``marked``: it has one)."""
        self.last_px[asset] = px
        if not marked:
            self.prices[asset] = px

    def interval_settled(self, asset: int, ts: int, rate: int) -> None:
        """Part of ``FundingSettled``'s applier: the interval's premium samples restart."""
        st = self.states[asset]
        interval = self.board.market(asset).funding.interval_ms
        self.states[asset] = msgspec.structs.replace(
            st, prem_sum=0, prem_wsum=0, prem_n=0, last_rate=rate, next_funding_ts=(ts // interval + 1) * interval)

    def _on_quotes_fed(self, ev: V.QuotesFed) -> None:
        table = self.perp_quotes if ev.perp else self.spot_quotes
        for a, px in ev.pxs.items():
            table.setdefault(a, {})[ev.source] = (px, ev.ts)
