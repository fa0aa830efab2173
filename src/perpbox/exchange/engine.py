"""The exchange: commands in, events out.

``Exchange.apply(command)`` decides what happens and records it as events; every event is applied
to the state the moment it is emitted (so later decisions in the same command see it) by an
*applier*, a deterministic function of (state, event).  ``Exchange.replay(events)`` runs only the
appliers, and rebuilds the same state; ``state_hash()`` proves it.  The engine reads no clock and
does no I/O: time is the command's ``ts``.

``Exchange`` is the coordinator.  The mechanisms are its components, each owning one concern and
its state, built here with their dependencies (``_wire``; ``exchange.ports`` says how they see
one another): the listed markets (``markets``), prices (``prices``), holdings and open interest
(``holdings``), market controls (``controls``), traded volume and fee tiers (``volume``), orders
and matching (``orders``) with trigger orders (``triggers``), liquidations, backstop and ADL
(``liquidation``), money and margin settings (``accounts``), API wallets and approvals
(``access``), dex deployment (``deploy``) and funding (``funding``).  The exchange itself keeps the
ledger, the dispatch tables, the appliers of events that touch several components, the tick's
order, the state hash and snapshots.

Tick order (the contract; ``commands.Tick``): due dead man's switches; for each market by asset —
session, oracle, EMAs, mark, premium sample (``perpbox.pricing.pricer.tick``), then funding when
due; then trigger orders; then the liquidation sweep; then the vaults' unwind.

``Exchange.execute(command)`` also returns the response a venue would send, typed
(``exchange.results``: ``Ok``, ``Error``, ``Statuses`` of per-order outcomes); the API layer formats
it.  ``apply`` drops it (the per-command API of the benchmarks and the replay tests).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Final, TypeVar

import msgspec

from perpbox.book.order import Order
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.access import AccountAccess
from perpbox.exchange.accounts import Accounts
from perpbox.exchange.controls import MarketControls
from perpbox.exchange.deploy import DexDeployment
from perpbox.exchange.funding import Funding
from perpbox.exchange.holdings import Holdings
from perpbox.exchange.liquidation import Liquidations
from perpbox.exchange.markets import MarketBoard
from perpbox.exchange.orders import OrderFlow
from perpbox.exchange.prices import MarketPricing
from perpbox.exchange.reads import ExchangeReads
from perpbox.exchange.results import OK, Error, Handler, Outcome, Response
from perpbox.exchange.sink import EventSink
from perpbox.exchange.volume import TradeVolume
from perpbox.ledger.ledger import Ledger
from perpbox.market.margin import MarginTable
from perpbox.market.spec import MarketSpec
from perpbox.pricing import pricer
from perpbox.pricing.pricer import PriceState
from perpbox.risk.margin import MarginView

# the exchange's own state attributes (``snapshot_state``); its components keep the rest
STATE: Final = ("ledger",)
T = TypeVar("T")


class Exchange:
    def __init__(self) -> None:
        self.ledger = Ledger()
        self._wire(None)

    def _wire(self, parts: dict[str, dict[str, Any]] | None) -> None:
        """Build the components around the ledger, each given its dependencies, then the dispatch
        tables.  With ``parts`` (``restore``) each component takes its stored state as soon as it
        is built, before anything that depends on it: a component may hold another's tables."""

        def built(name: str, part: T) -> T:
            if parts is not None:
                for attr, value in parts[name].items():
                    setattr(part, attr, value)
            return part

        ledger = self.ledger
        self.sink = sink = EventSink()
        self.board = board = built("board", MarketBoard(sink))
        self.pricing = pricing = built("pricing", MarketPricing(sink, board))
        self.margin = margin = MarginView(board.markets, pricing.prices)
        self.holdings = holdings = built("holdings", Holdings(ledger, board, pricing))
        self.access = access = built("access", AccountAccess(sink, ledger, margin))
        self.controls = controls = built("controls", MarketControls(sink, ledger, board, pricing, holdings, self))
        self.volume = volume = built("volume", TradeVolume(ledger, board))
        self.orders = orders = built("orders", OrderFlow(sink, ledger, margin, board, pricing, holdings, controls,
                                                         volume, access))
        self.triggers = built("triggers", orders.triggers)
        self.liquidations = built("liquidations", Liquidations(sink, ledger, margin, board, pricing, holdings,
                                                               controls, orders))
        self.accounts = Accounts(sink, ledger, margin, board, holdings, controls)
        self.deploy = built("deploy", DexDeployment(sink, ledger, self))
        self.funding = built("funding", Funding(sink, ledger, self))
        if parts is not None:
            board.restored()
            controls.restored()
        self._handlers: dict[type, Handler] = {C.Tick: self._cmd_tick, C.SetOracle: self._cmd_set_oracle}
        sink.register({V.MarketListed: self._on_market_listed, V.PricesUpdated: self._on_prices_updated})
        for handlers in (board.handlers(), pricing.handlers(), controls.handlers(), orders.handlers(),
                         self.accounts.handlers(), access.handlers(), self.deploy.handlers()):
            self._handlers.update(handlers)
        for appliers in (pricing.appliers(), controls.appliers(), orders.appliers(), self.triggers.appliers(),
                         self.liquidations.appliers(), self.accounts.appliers(), access.appliers(),
                         self.deploy.appliers(), self.funding.appliers()):
            sink.register(appliers)
        self.reads = ExchangeReads(self)

    def _parts(self) -> dict[str, Any]:
        """The components that keep state, by name (``snapshot_state``, ``restore``)."""
        return {"board": self.board, "pricing": self.pricing, "holdings": self.holdings, "access": self.access,
                "controls": self.controls, "volume": self.volume, "orders": self.orders, "triggers": self.triggers,
                "liquidations": self.liquidations, "deploy": self.deploy, "funding": self.funding}

    # ==============================================================================================
    # public interface
    # ==============================================================================================
    def apply(self, command: C.Command) -> list[V.Event]:
        """Apply one command; return the events it produced (already applied).  The response is
        dropped: ``execute`` keeps it."""
        out = self.sink.begin()
        self._handlers[type(command)](command)
        return out

    def execute(self, command: C.Command) -> Outcome:
        """Apply one command; return its events (already applied) and the typed response a venue
        would send for it."""
        out = self.sink.begin()
        return Outcome(out, self._handlers[type(command)](command))

    @classmethod
    def replay(cls, events: Iterable[V.Event]) -> Exchange:
        """Rebuild an exchange from its event log (no decisions are re-made)."""
        ex = cls()
        ex.sink.replay(events)
        return ex

    # -- what the components ask of the exchange (``exchange.ports``) ------------------------------
    def close_orders_of(self, ts: int, user: str, status: str) -> None:
        self.orders.close_orders_of(ts, user, status)

    def close_market_orders(self, ts: int, asset: int, status: str) -> None:
        self.orders.close_market_orders(ts, asset, status)

    def spec(self, asset: int) -> MarketSpec | None:
        return self.board.spec(asset)

    def specs(self) -> list[MarketSpec]:
        return self.board.specs()

    def dex_index(self, dex: str) -> int | None:
        return self.board.dex_index(dex)

    def dex_count(self) -> int:
        return self.board.dex_count()

    def deployer_error(self, user: str, dex: str) -> str | None:
        return self.board.deployer_error(user, dex)

    def deployer_of(self, dex: str) -> str | None:
        return self.board.deployer_of(dex)

    def set_margin_table(self, asset: int, table: MarginTable) -> None:
        self.board.set_spec(replace(self.board.market(asset), margin_table=table))
        self.liquidations.invalidate_index()  # its maintenance lines came from the old table

    def market_config(self, asset: int) -> V.MarketConfig:
        return self.controls.market_config(asset)

    def price_state(self, asset: int) -> PriceState:
        return self.pricing.state(asset)

    def margin_price(self, asset: int) -> int:
        return self.pricing.mark(asset)

    def holder_sizes(self, asset: int) -> list[tuple[str, int]]:
        return self.holdings.holder_sizes(asset)

    def interval_settled(self, asset: int, ts: int, rate: int) -> None:
        self.pricing.interval_settled(asset, ts, rate)
        self.controls.refresh_gate(asset)

    # -- snapshots (``store.snapshot``) -------------------------------------------------------------
    def snapshot_state(self) -> dict[str, dict[str, Any]]:
        """The state objects by component, by attribute name: everything ``restore`` needs (the
        rest is derived and rebuilt)."""
        parts: dict[str, dict[str, Any]] = {"exchange": {n: getattr(self, n) for n in STATE}}
        for name, part in self._parts().items():
            parts[name] = {n: getattr(part, n) for n in part.STATE}
        return parts

    @classmethod
    def restore(cls, parts: dict[str, dict[str, Any]]) -> Exchange:
        """An exchange holding ``snapshot_state``'s objects; ``ValueError`` when the parts or their
        attributes are not exactly the ones this build keeps."""
        ex = cls()
        names = {"exchange": STATE} | {n: p.STATE for n, p in ex._parts().items()}
        if set(parts) != set(names) or any(set(parts[n]) != set(names[n]) for n in names):
            raise ValueError("the state's components or attributes differ from this build's")
        for n, v in parts["exchange"].items():
            setattr(ex, n, v)
        ex._wire(parts)
        return ex

    def state_hash(self) -> str:
        """BLAKE2b of a canonical JSON encoding of the whole state (JSON: EMA sums exceed 64 bits)."""
        ledger, board, pricing, controls, volume = self.ledger, self.board, self.pricing, self.controls, self.volume
        orders = self.orders
        state = [
            orders.next_oid,
            orders.next_tid,
            [[a, _spec_state(s), pricing.last_px.get(a, 0), pricing.prices.get(a, 0), pricing.states[a],
              controls.config[a], sorted(pricing.spot_quotes.get(a, {}).items()),
              sorted(pricing.perp_quotes.get(a, {}).items()), self.holdings.oi.get(a, 0)]
             for a, s in sorted(board.markets.items())],
            sorted(board.dexes.items()), sorted(board.dex_deployer.items()), sorted(controls.dex_oi_cap.items()),
            sorted(self.liquidations.partial_ts.items()),
            sorted(volume.traded.items()),
            [[a, sorted((d, b[0], b[1]) for d, b in days.items())] for a, days in sorted(volume.day_volume.items())],
            sorted(volume.exchange_volume.items()),
            ledger.deposits,
            ledger.withdrawals,
            [
                [addr, acct.raw_usd, acct.master, sorted(acct.subs), acct.n_reduce_only, sorted(acct.cloids.items()),
                 [p.state() for _, p in sorted(acct.positions.items())]]
                for addr, acct in sorted(ledger.accounts.items())
            ],
            [_order_state(o) for _, o in sorted(orders.orders.items())],
            [[a, [o.oid for o in b.iter_side(True)], [o.oid for o in b.iter_side(False)]]
             for a, b in sorted(board.books.items())],
            [[a, sorted(t)] for a, t in sorted(self.triggers.armed.items())],
            self.access.state(),
            self.deploy.state(),
        ]
        return hashlib.blake2b(msgspec.json.encode(state), digest_size=32).hexdigest()

    # ==============================================================================================
    # commands that run several components, in the contract's order
    # ==============================================================================================
    def _cmd_tick(self, cmd: C.Tick) -> Response:
        ts = cmd.ts
        self.access.fire_scheduled_cancels(ts, self.orders)
        for asset in self.board.assets():
            new = self.pricing.tick(ts, asset, cmd.marks)
            if pricer.funding_due(new, ts):
                self.funding.settle(ts, asset)
        self.triggers.fire_all(ts)
        self.liquidations.sweep(ts)
        self.liquidations.unwind_vaults(ts)
        return OK

    def _cmd_set_oracle(self, cmd: C.SetOracle) -> Response:
        err = self.pricing.set_oracle(cmd)
        if err is not None:
            return Error(err)
        # a new mark is acted on at once, as at a tick: triggers, then the liquidation sweep
        self.triggers.fire_in(cmd.ts, sorted(cmd.oracle_pxs))
        self.liquidations.sweep(cmd.ts)
        return OK

    # ==============================================================================================
    # appliers of events that touch several components
    # ==============================================================================================
    def _on_market_listed(self, ev: V.MarketListed) -> None:
        if self.board.has(ev.spec.asset):
            self.liquidations.invalidate_index()  # a re-listing may bring another margin table
        self.board.list_market(ev)
        self.pricing.list_market(ev)
        self.controls.list_market(ev)
        self.deploy.on_market_listed(ev)

    def _on_prices_updated(self, ev: V.PricesUpdated) -> None:
        self.pricing.update(ev)
        self.controls.refresh_gate(ev.asset)


def _order_state(o: Order) -> list[Any]:
    return [o.oid, o.user, o.asset, o.is_buy, o.px, o.sz, o.orig_sz, o.ts, o.tif, o.reduce_only, o.cloid,
            o.trigger_px, o.is_market, o.tpsl, o.parent, list(o.children), o.position_tpsl, o.status, o.triggered,
            o.builder, o.builder_fee]



def _spec_state(s: MarketSpec) -> list[Any]:
    return [s.name, s.asset, s.dex, s.sz_decimals, s.margin_mode.value, s.min_notional, s.max_sig_figs,
            s.fees.maker, s.fees.taker,
            [[t.lower_bound, t.max_leverage, t.mmr.numerator, t.mmr.denominator] for t in s.margin_table.tiers]]

