"""The exchange: commands in, events out.

``Exchange.apply(command)`` decides what happens and records it as events; every event is applied
to the state the moment it is emitted (so later decisions in the same command see it) by an
*applier*, a deterministic function of (state, event).  ``Exchange.replay(events)`` runs only the
appliers, and rebuilds the same state; ``state_hash()`` proves it.  The engine reads no clock and
does no I/O: time is the command's ``ts``.

``Exchange.execute(command)`` also returns the response a venue would send, typed
(``exchange.results``: ``Ok``, ``Error``, ``Statuses`` of per-order outcomes); the API layer formats
it.  The handlers here still answer with plain values (per-order items ``{"resting": {"oid"}}``,
``{"filled": {"oid", "totalSz", "ntl"}}``, ``{"error": msg}``, ``"waitingForTrigger"``,
``"waitingForFill"``, ``"success"``; ``"ok"`` or ``{"error": msg}`` for other actions), which
``execute`` turns into the typed ones through ``results.from_legacy`` until they return them directly.

Order statuses use Hyperliquid's words (``results.OrderStatus``).

Matching follows Hyperliquid: price-time priority; self-trade prevention cancels the *resting*
order (``selfTradeCanceled``, no fee, no trade) and the taker keeps matching; the resting side's
margin is re-checked at each match (``marginCanceled``); reduce-only orders never increase a
position (a taker is capped to the position; resting ones are resized or cancelled when the
position shrinks, the newest kept first, as the venue auto-cancels older ones).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any, Final

import msgspec

from perpbox.book.book import OrderBook
from perpbox.book.order import Order, Tif
from perpbox.core import errors as E
from perpbox.core.numbers import ceil_div, fee_up, format_units, iabs, mul
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.access import MAX_PERP_BUILDER_FEE, AccountAccess
from perpbox.exchange.deploy import DexDeployment
from perpbox.exchange.funding import Funding, FundingRecord
from perpbox.exchange.mechanics import PerpMechanics
from perpbox.exchange.results import Outcome, from_legacy
from perpbox.exchange.sink import EventSink
from perpbox.ledger.ledger import (
    FEE_ACCOUNT,
    SPOT,
    Account,
    Ledger,
    Position,
    dex_account,
    spot_wallet,
    wallet_owner,
)
from perpbox.market.fees import DAY_MS, MAKER_RATES, TAKER_RATES, WINDOW_DAYS, fee_tier
from perpbox.market.margin import MarginTable
from perpbox.market.rules import MarketRules
from perpbox.market.spec import MarketSpec
from perpbox.pricing import pricer
from perpbox.risk.margin import MarginView

TIFS: Final = frozenset(t.value for t in Tif)
# The order path's event types, bound once: the compiled engine reads a Final name from a C static,
# where ``V.OrderPlaced`` costs two dictionary look-ups (the module, then its attribute) per event.
OrderPlaced: Final = V.OrderPlaced
OrderRested: Final = V.OrderRested
OrderClosed: Final = V.OrderClosed
Fill: Final = V.Fill
TRIGGER_SLIPPAGE_BPS = 1000  # Hyperliquid: market TP/SL execute with 10% slippage tolerance
MAX_SUB_ACCOUNT_NAME = 16  # characters; nktkas/hyperliquid's schema checks 1..16 (the venue's limit is unrecorded)
MAX_SUB_ACCOUNTS = 10  # per master: the venue's number is unrecorded, so a safe bound of ours
OPEN_ORDERS_FREE: Final = 1000  # open orders per user before volume counts (reference §6.7)
VOLUME_PER_EXTRA_ORDER: Final = 5_000_000 * 1_000_000  # one more open order per $5M traded (micro-USDC)
MAX_OPEN_ORDERS: Final = 5000
Status = dict[str, Any] | str
# the exchange's own state attributes (``snapshot_state``); the rest is derived (``_wire``, ``restore``)
STATE: Final = ("markets", "books", "last_px", "prices", "ledger", "orders", "triggers", "next_oid", "next_tid",
                "volume", "day_volume", "exchange_volume", "pricing", "spot_quotes", "perp_quotes", "config", "oi",
                "holders", "dexes", "dex_deployer", "dex_oi_cap", "liq_partial_ts",
                "liquidation_log")


class Exchange(PerpMechanics):
    def __init__(self) -> None:
        self.markets: dict[int, MarketSpec] = {}
        self.rules: dict[int, MarketRules] = {}  # the order path's copy of each spec's numbers (_set_spec)
        self.books: dict[int, OrderBook] = {}
        self.last_px: dict[int, int] = {}
        self.prices: dict[int, int] = {}  # what margin is computed at: mark, else last trade (derived)
        self.ledger = Ledger()
        self.orders: dict[int, Order] = {}  # every live order: resting, pending or waiting
        self.triggers: dict[int, dict[int, Order]] = {}  # asset -> oid -> armed trigger order
        self.next_oid = 1
        self.next_tid = 1
        self.volume: dict[str, int] = {}  # cumulative traded notional per account, micro-USDC (both sides)
        # fee tiers (market.fees): per account, UTC day -> [taker (cross), maker (add)] notional, and the
        # exchange's notional per day; a day more than 14 before a later booked day is dropped
        self.day_volume: dict[str, dict[int, list[int]]] = {}
        self.exchange_volume: dict[int, int] = {}
        self._fee_tiers: dict[str, tuple[int, int]] = {}  # derived: user -> tier indices on _fee_day
        self._fee_day = -1
        self._oi_stopped = False  # set by matching when an open-interest cap stops the taker
        self._init_mechanics()
        self._wire()

    def _wire(self) -> None:
        """Build what is derived from the state objects: the margin view over the markets and
        prices, the components that own the other concerns, and the dispatch tables."""
        self.margin = MarginView(self.markets, self.prices)
        self.sink = sink = EventSink()
        self.access = AccountAccess(sink, self.ledger, self.margin)
        self.deploy = DexDeployment(sink, self.ledger, self)
        self.funding = Funding(sink, self.ledger, self)
        self._handlers: dict[type, Callable[[Any], Any]] = {
            C.AddMarket: self._cmd_add_market,
            C.Deposit: self._cmd_deposit,
            C.Withdraw: self._cmd_withdraw,
            C.CreateSubAccount: self._cmd_create_sub_account,
            C.Transfer: self._cmd_transfer,
            C.SendAsset: self._cmd_send_asset,
            C.PlaceOrders: self._cmd_place_orders,
            C.Cancel: self._cmd_cancel,
            C.CancelByCloid: self._cmd_cancel_by_cloid,
            C.CancelAll: self._cmd_cancel_all,
            C.Modify: self._cmd_modify,
            C.BatchModify: self._cmd_batch_modify,
            C.UpdateLeverage: self._cmd_update_leverage,
            C.UpdateIsolatedMargin: self._cmd_update_isolated_margin,
            C.Tick: self._cmd_tick_all,
            C.FeedPrices: self._cmd_feed_prices,
            C.SetOracle: self._cmd_set_oracle,
            C.SetOpenInterestCaps: self._cmd_set_open_interest_caps,
            C.SetFundingMultipliers: self._cmd_set_funding_multipliers,
            C.HaltTrading: self._cmd_halt_trading,
            C.SetMarketStatus: self._cmd_set_market_status,
        }
        sink.register({
            V.MarketListed: self._on_market_listed,
            V.Deposited: self._on_deposited,
            V.Withdrew: self._on_withdrew,
            V.SubAccountCreated: self._on_sub_account_created,
            V.Transferred: self._on_transferred,
            V.AssetSent: self._on_asset_sent,
            V.LeverageUpdated: self._on_leverage_updated,
            V.IsolatedMarginMoved: self._on_isolated_margin_moved,
            V.OrderPlaced: self._on_order_placed,
            V.OrderRejected: self._on_order_rejected,
            V.Fill: self._on_fill,
            V.OrderRested: self._on_order_rested,
            V.OrderTriggered: self._on_order_triggered,
            V.OrderArmed: self._on_order_armed,
            V.OrderResized: self._on_order_resized,
            V.OrderClosed: self._on_order_closed,
            V.QuotesFed: self._on_quotes_fed,
            V.PricesUpdated: self._on_prices_updated,
            V.MarketConfigured: self._on_market_configured,
            V.DexConfigured: self._on_dex_configured,
            V.MarketSettled: self._on_market_settled,
            V.Liquidated: self._on_liquidated,
            V.PositionTransferred: self._on_position_transferred,
        })
        self._handlers.update(self.access.handlers())
        sink.register(self.access.appliers())
        self._handlers.update(self.deploy.handlers())
        sink.register(self.deploy.appliers())
        sink.register(self.funding.appliers())

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
        return Outcome(out, from_legacy(self._handlers[type(command)](command)))

    @classmethod
    def replay(cls, events: Iterable[V.Event]) -> Exchange:
        """Rebuild an exchange from its event log (no decisions are re-made)."""
        ex = cls()
        ex.sink.replay(events)
        return ex

    def mark(self, asset: int) -> int:
        """The price margin is computed at: mark, else last trade, else 0."""
        return self.prices.get(asset, 0)

    def account(self, address: str) -> Account:
        return self.ledger.account(address)

    def position(self, address: str, asset: int) -> Position | None:
        """``address``'s position in ``asset`` (held by its account on the asset's dex)."""
        acct = self.ledger.accounts.get(self._margin_key(address, asset) if asset in self.rules else address)
        return None if acct is None else acct.positions.get(asset)

    def fee_rates(self, user: str, ts: int, asset: int | None = None) -> tuple[int, int]:
        """(taker, maker) fee rates, 1e-8 of notional (a negative maker rate is a rebate), that
        ``user`` pays on the UTC day of ``ts``: its fee group's tier (``market.fees``) on
        ``asset``'s market, or in the venue's base schedule when ``asset`` is None (what ``userFees``
        reports as ``userCrossRate`` / ``userAddRate``).  A read: it changes nothing."""
        taker, maker = self._tier_of(user, ts // DAY_MS)
        if asset is None:
            return TAKER_RATES[taker], MAKER_RATES[maker]
        rules = self.rules[asset]
        return rules.takers[taker], rules.makers[maker]

    def daily_volume(self, user: str, ts: int) -> list[tuple[int, int, int, int]]:
        """``(day, cross, add, exchange)`` for the UTC day of ``ts`` and the ``WINDOW_DAYS`` before
        it, oldest first (day = days since 1970-01-01): ``user``'s own taker and maker notional
        (micro-USDC; a master's excludes its sub-accounts') and the exchange's (each fill once)."""
        today = ts // DAY_MS
        days = self.day_volume.get(user, {})
        out = []
        for day in range(today - WINDOW_DAYS, today + 1):
            b = days.get(day)
            cross, add = (0, 0) if b is None else (b[0], b[1])
            out.append((day, cross, add, self.exchange_volume.get(day, 0)))
        return out

    # -- account settings (``exchange.access``) and margin tables (``exchange.deploy``) ------------
    def agent_master(self, agent: str, ts: int) -> str | None:
        """The account an API wallet acts for at ``ts``, or None (unknown or expired)."""
        return self.access.agent_master(agent, ts)

    def agents_of(self, master: str) -> list[tuple[str, str, int]]:
        return self.access.agents_of(master)

    def max_builder_fee(self, user: str, builder: str) -> int:
        return self.access.max_builder_fee(user, builder)

    def agent_approval_error(self, user: str, agent: str, name: str, valid_until: int, ts: int) -> str | None:
        return self.access.agent_approval_error(user, agent, name, valid_until, ts)

    def margin_table(self, table_id: int, dex: str | None = None) -> MarginTable | None:
        return self.deploy.margin_table(table_id, dex)

    def dex_tables(self, dex: str) -> list[int]:
        return self.deploy.dex_tables(dex)

    def table_id(self, asset: int) -> int:
        """The id of the margin table ``asset`` uses (Hyperliquid's ``marginTableId``)."""
        return self.deploy.table_ids[asset]

    def funding_records(self, asset: int) -> list[FundingRecord]:
        """The market's settled funding intervals, oldest first."""
        return self.funding.history(asset)

    def dex_full_name(self, dex: str) -> str:
        return self.deploy.dex_full_names.get(dex, dex)

    # -- what the components ask of the exchange (``exchange.ports``) ------------------------------
    def close_orders_of(self, ts: int, user: str, status: str) -> None:
        acct = self.ledger.accounts.get(user)
        for oid in sorted(acct.orders) if acct is not None else ():
            order = self.orders.get(oid)  # None: a child already closed with its parent
            if order is not None:
                self._close(ts, order, status)

    def spec(self, asset: int) -> MarketSpec | None:
        return self.markets.get(asset)

    def specs(self) -> list[MarketSpec]:
        return [s for _, s in sorted(self.markets.items())]

    def dex_index(self, dex: str) -> int | None:
        return self.dexes.get(dex)

    def dex_count(self) -> int:
        return len(self.dexes)

    def deployer_error(self, user: str, dex: str) -> str | None:
        return self._deployer_error(user, dex)

    def deployer_of(self, dex: str) -> str | None:
        return self.dex_deployer.get(dex)

    def set_margin_table(self, asset: int, table: MarginTable) -> None:
        self._set_spec(replace(self.markets[asset], margin_table=table))
        self.position_index = None  # its maintenance lines came from the old table

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
        ex._wire()
        for name, part in ex._parts().items():
            for n, v in parts[name].items():
                setattr(part, n, v)
        ex.rules = {a: MarketRules(spec) for a, spec in ex.markets.items()}
        ex.gates = {}
        for a in ex.markets:
            if a in ex.config and a in ex.pricing:
                ex._refresh_gate(a)
        ex.position_index = None
        return ex

    def _parts(self) -> dict[str, Any]:
        return {"access": self.access, "deploy": self.deploy, "funding": self.funding}

    def state_hash(self) -> str:
        """BLAKE2b of a canonical JSON encoding of the whole state (JSON: EMA sums exceed 64 bits)."""
        ledger = self.ledger
        state = [
            self.next_oid,
            self.next_tid,
            [[a, _spec_state(s), self.last_px.get(a, 0), self.prices.get(a, 0), self.pricing[a], self.config[a],
              sorted(self.spot_quotes.get(a, {}).items()), sorted(self.perp_quotes.get(a, {}).items()),
              self.oi.get(a, 0)]
             for a, s in sorted(self.markets.items())],
            sorted(self.dexes.items()), sorted(self.dex_deployer.items()), sorted(self.dex_oi_cap.items()),
            sorted(self.liq_partial_ts.items()),
            sorted(self.volume.items()),
            [[a, sorted((d, b[0], b[1]) for d, b in days.items())] for a, days in sorted(self.day_volume.items())],
            sorted(self.exchange_volume.items()),
            ledger.deposits,
            ledger.withdrawals,
            [
                [addr, acct.raw_usd, acct.master, sorted(acct.subs), acct.n_reduce_only, sorted(acct.cloids.items()),
                 [p.state() for _, p in sorted(acct.positions.items())]]
                for addr, acct in sorted(ledger.accounts.items())
            ],
            [_order_state(o) for _, o in sorted(self.orders.items())],
            [[a, [o.oid for o in b.iter_side(True)], [o.oid for o in b.iter_side(False)]]
             for a, b in sorted(self.books.items())],
            [[a, sorted(t)] for a, t in sorted(self.triggers.items())],
            self.access.state(),
            self.deploy.state(),
        ]
        return hashlib.blake2b(msgspec.json.encode(state), digest_size=32).hexdigest()

    def _cmd_tick_all(self, cmd: C.Tick) -> Status:
        """A tick fires due dead man's switches first, then the perp mechanics' fixed order."""
        self.access.fire_scheduled_cancels(cmd.ts, self)
        return self._cmd_tick(cmd)

    # ==============================================================================================
    # fee tiers (perpbox.market.fees)
    # ==============================================================================================
    def _tier_of(self, user: str, day: int) -> tuple[int, int]:
        """``fee_tier`` indices of ``user``'s fee group on UTC ``day``, from the ``WINDOW_DAYS``
        completed days before it.  The group is a master and its sub-accounts (a sub-account's is
        its master's); any other account is alone."""
        accounts = self.ledger.accounts
        acct = accounts.get(user)
        root = user if acct is None or acct.master is None else acct.master
        members = [root] + (accounts[root].subs if root in accounts else [])
        first = day - WINDOW_DAYS
        cross = add = 0
        for member in members:
            for d, b in self.day_volume.get(member, {}).items():
                if first <= d < day:
                    cross += b[0]
                    add += b[1]
        exchange = sum(v for d, v in self.exchange_volume.items() if first <= d < day)
        return fee_tier(cross + add, add, exchange)

    def _fee_tier(self, user: str, day: int) -> tuple[int, int]:
        """``_tier_of``, cached for ``day``.  Derived state, never hashed: the window holds only
        days before ``day``, and a fill booked on one of them clears the cache (``_book_volume``)."""
        if day != self._fee_day:
            self._fee_tiers = {}
            self._fee_day = day
        tiers = self._fee_tiers.get(user)
        if tiers is None:
            tiers = self._fee_tiers[user] = self._tier_of(user, day)
        return tiers

    def _book_volume(self, ts: int, taker: str, maker: str, notional: int) -> None:
        """Part of ``Fill``'s applier: the fill's notional into its UTC day's fee-tier buckets, the
        taker's ``cross``, the maker's ``add`` and the exchange's.  A day is dropped once it has left
        every window (more than ``WINDOW_DAYS`` before the day being booked)."""
        day = ts // DAY_MS
        first = day - WINDOW_DAYS
        exchange = self.exchange_volume
        total = exchange.get(day)
        if total is None:
            for d in [d for d in exchange if d < first]:
                del exchange[d]
            total = 0
        exchange[day] = total + notional
        self._day_bucket(taker, day, first)[0] += notional
        self._day_bucket(maker, day, first)[1] += notional
        if day < self._fee_day:
            self._fee_tiers = {}  # a fill on a day inside the cached window

    def _day_bucket(self, user: str, day: int, first: int) -> list[int]:
        days = self.day_volume.get(user)
        if days is None:
            days = self.day_volume[user] = {}
        bucket = days.get(day)
        if bucket is None:
            for d in [d for d in days if d < first]:
                del days[d]
            bucket = days[day] = [0, 0]
        return bucket

    # ==============================================================================================
    # commands: accounts and money
    # ==============================================================================================
    def _cmd_add_market(self, cmd: C.AddMarket) -> Status:
        spec = cmd.spec
        if spec.asset in self.markets:
            return {"error": f"asset {spec.asset} already listed"}
        if cmd.mark_px < 0:
            return {"error": E.INVALID_PRICE}
        if spec.dex == SPOT or ":" in spec.dex:  # would collide with sendAsset's spot / the dex accounts' keys
            return {"error": f"Invalid dex name: {spec.dex}"}
        deployer = self.dex_deployer.get(spec.dex, cmd.deployer)
        if spec.dex and not deployer:
            return {"error": "A HIP-3 dex needs a deployer."}  # perpbox wording
        self.sink.emit(V.MarketListed(ts=cmd.ts, spec=spec, mark_px=cmd.mark_px, deployer=deployer,
                                  full_name=cmd.full_name))
        return "ok"

    def _cmd_deposit(self, cmd: C.Deposit) -> Status:
        if cmd.usd <= 0:
            return {"error": "Deposit amount must be positive."}  # perpbox wording
        self.sink.emit(V.Deposited(ts=cmd.ts, user=cmd.user, usd=cmd.usd))
        return "ok"

    def _cmd_withdraw(self, cmd: C.Withdraw) -> Status:
        acct = self.ledger.accounts.get(cmd.user)
        if cmd.usd <= 0 or acct is None or self.margin.withdrawable(acct) < cmd.usd:
            return {"error": E.INSUFFICIENT_WITHDRAW}
        self.sink.emit(V.Withdrew(ts=cmd.ts, user=cmd.user, usd=cmd.usd))
        return "ok"

    def _cmd_create_sub_account(self, cmd: C.CreateSubAccount) -> Status:
        if cmd.master not in self.ledger.accounts:
            return {"error": E.MUST_DEPOSIT.format(user=cmd.master)}
        if cmd.sub in self.ledger.accounts or self.ledger.accounts[cmd.master].master is not None:
            return {"error": "Invalid sub-account."}  # perpbox wording
        bad = sub_account_error(cmd.name, len(self.ledger.accounts[cmd.master].subs))
        if bad is not None:
            return {"error": bad}
        self.sink.emit(V.SubAccountCreated(ts=cmd.ts, master=cmd.master, sub=cmd.sub, name=cmd.name))
        return "ok"

    def _cmd_transfer(self, cmd: C.Transfer) -> Status:
        src = self.ledger.accounts.get(cmd.src)
        if cmd.usd <= 0 or src is None or cmd.src == cmd.dst or cmd.dst == FEE_ACCOUNT:
            return {"error": E.INSUFFICIENT_TRANSFER}
        if self.margin.withdrawable(src) < cmd.usd:
            return {"error": E.INSUFFICIENT_TRANSFER}
        self.sink.emit(V.Transferred(ts=cmd.ts, src=cmd.src, dst=cmd.dst, usd=cmd.usd))
        return "ok"

    def clearinghouse(self, user: str, dex: str) -> str | None:
        """The ledger account of ``user``'s clearinghouse ``dex`` (``""`` the first perp dex, a
        listed HIP-3 dex, or ``"spot"``), or None for a dex that does not exist."""
        if dex == SPOT:
            return spot_wallet(user)
        if dex and dex not in self.dexes:
            return None
        return dex_account(dex, user)

    def send_asset_error(self, user: str, src: str, dst: str, src_dex: str, dst_dex: str, usd: int) -> str | None:
        """Why ``user`` may not ``sendAsset`` ``usd`` from ``src``'s ``src_dex`` to ``dst``'s
        ``dst_dex``, or None.  The source keeps what its margin needs: at most its withdrawable
        (``MarginView.withdrawable``; a spot wallet's whole balance)."""
        if usd <= 0:
            return E.INVALID_AMOUNT
        if ":" in src or ":" in dst or not dst or dst == FEE_ACCOUNT:
            return E.INVALID_SEND
        if src != user:
            sub = self.ledger.accounts.get(src)
            if sub is None or sub.master != user:
                return E.INVALID_SUBACCOUNT_TRANSFER.format(src=user, dst=src)
        src_key, dst_key = self.clearinghouse(src, src_dex), self.clearinghouse(dst, dst_dex)
        if src_key is None or dst_key is None:
            return E.UNKNOWN_DEX.format(dex=src_dex if src_key is None else dst_dex)
        if src_key == dst_key:
            return E.INVALID_SEND
        acct = self.ledger.accounts.get(src_key)
        if acct is None or self.margin.withdrawable(acct) < usd:
            return E.INSUFFICIENT_TRANSFER
        return None

    def _cmd_send_asset(self, cmd: C.SendAsset) -> Status:
        bad = self.send_asset_error(cmd.user, cmd.src, cmd.dst, cmd.src_dex, cmd.dst_dex, cmd.usd)
        if bad is not None:
            return {"error": bad}
        src, dst = self.clearinghouse(cmd.src, cmd.src_dex), self.clearinghouse(cmd.dst, cmd.dst_dex)
        assert src is not None and dst is not None
        self.sink.emit(V.AssetSent(ts=cmd.ts, src=src, dst=dst, usd=cmd.usd))
        return "ok"

    def _cmd_update_leverage(self, cmd: C.UpdateLeverage) -> Status:
        spec = self.markets.get(cmd.asset)
        if spec is None:
            return {"error": E.UNKNOWN_ASSET}
        if not 1 <= cmd.leverage <= spec.max_leverage:
            return {"error": E.INVALID_LEVERAGE}
        if cmd.leverage > self._leverage_cap(cmd.asset):
            return {"error": E.INVALID_LEVERAGE}  # a session market's off-hours cap
        if cmd.is_cross and spec.only_isolated:
            return {"error": E.CROSS_NOT_ALLOWED}
        if cmd.user not in self.ledger.accounts:
            return {"error": E.MUST_DEPOSIT.format(user=cmd.user)}
        acct = self._margin_acct(cmd.user, cmd.asset)  # the account on the asset's dex (may not exist yet)
        pos = None if acct is None else acct.positions.get(cmd.asset)
        if acct is not None and pos is not None and pos.szi:
            if pos.is_cross != cmd.is_cross:
                return {"error": E.SWITCH_LEVERAGE_TYPE}
            cap = spec.margin_table.max_notional_at_leverage(cmd.leverage)
            if cap is not None and self.margin.position_value(pos) > cap:
                return {"error": E.order_error(E.PERP_MAX_POSITION, cmd.asset)}
            if cmd.leverage < pos.leverage:
                new_im = -(-self.margin.position_value(pos) // cmd.leverage)
                if pos.is_cross:
                    others = self.margin.cross_initial_margin(acct) - self.margin.initial_margin(pos)
                    if self.margin.cross_value(acct) < others + new_im:
                        return {"error": E.CROSS_DECREASE_LEVERAGE}
                elif self.margin.isolated_value(pos) < new_im:
                    return {"error": E.ISO_DECREASE_LEVERAGE}
        self.sink.emit(V.LeverageUpdated(ts=cmd.ts, user=cmd.user, asset=cmd.asset, is_cross=cmd.is_cross,
                                     leverage=cmd.leverage))
        return "ok"

    def _cmd_update_isolated_margin(self, cmd: C.UpdateIsolatedMargin) -> Status:
        spec = self.markets.get(cmd.asset)
        if spec is None:
            return {"error": E.UNKNOWN_ASSET}
        acct = self._margin_acct(cmd.user, cmd.asset)
        pos = None if acct is None else acct.positions.get(cmd.asset)
        if acct is None or pos is None or pos.is_cross or not pos.szi:
            return {"error": E.NOT_ISOLATED}
        if cmd.usd == 0:
            return "ok"
        if cmd.usd > 0:
            if self.margin.available_to_trade(acct) < cmd.usd or acct.raw_usd < cmd.usd:
                return {"error": E.PERP_MARGIN}
        else:
            if spec.margin_mode.value == "strictIsolated":
                return {"error": E.INSUFFICIENT_ISO_REMOVE}
            ntl = self.margin.position_value(pos)
            required = max(self.margin.initial_margin(pos), -(-ntl // 10))
            if self.margin.isolated_value(pos) + cmd.usd < required:
                return {"error": E.INSUFFICIENT_ISO_REMOVE}
        self.sink.emit(V.IsolatedMarginMoved(ts=cmd.ts, user=cmd.user, asset=cmd.asset, usd=cmd.usd))
        return "ok"

    # ==============================================================================================
    # commands: orders
    # ==============================================================================================
    def _cmd_place_orders(self, cmd: C.PlaceOrders) -> list[Status] | Status:
        ts, user, orders, grouping = _fields(cmd)
        if not orders:
            return {"error": E.ORDERS_EMPTY}
        if grouping == "na":
            return [self._place(ts, user, req) for req in orders]
        if grouping == "normalTpsl":
            return self._place_normal_tpsl(cmd)
        if grouping == "positionTpsl":
            if any(not r.tpsl or not r.reduce_only for r in orders):
                return {"error": E.TRIGGER_NOT_REDUCE_ONLY}
            return [self._place(ts, user, req, position_tpsl=True) for req in orders]
        return {"error": f"Invalid grouping: {grouping}"}  # perpbox wording

    def _place_normal_tpsl(self, cmd: C.PlaceOrders) -> list[Status] | Status:
        parent, children = cmd.orders[0], cmd.orders[1:]
        if parent.tpsl or not children or any(
            not c.tpsl or not c.reduce_only or c.asset != parent.asset or c.is_buy == parent.is_buy for c in children
        ):
            return {"error": E.TRIGGER_NOT_REDUCE_ONLY}
        first = self._place(cmd.ts, cmd.user, parent)
        statuses: list[Status] = [first]
        if not isinstance(first, dict) or "error" in first:
            return statuses + [first] * len(children)
        parent_oid: int = next(iter(first.values()))["oid"]
        statuses += [self._place(cmd.ts, cmd.user, req, parent=parent_oid) for req in children]
        if parent_oid not in self.orders:  # the parent filled at once: its children are live now
            self._enforce_reduce_only(cmd.ts, self.ledger.accounts[cmd.user], parent.asset)
        return statuses

    def _validate(self, user: str, fields: C.OrderFields, position_tpsl: bool, parent: int,
                  replacing: int = 0) -> tuple[str, str] | None:
        """Checks that need no matching on an order request's ``fields`` (``_request_fields``);
        returns (status, message) of the first rule broken.  ``replacing`` is the oid a modify is
        about to cancel (its cloid may be reused)."""
        a, is_buy, px, sz, tif, reduce_only, cloid, trigger_px, _, tpsl, builder, builder_fee = fields
        rules = self.rules.get(a)
        if rules is None:
            return "rejected", E.UNKNOWN_ASSET
        if tif not in TIFS:
            return "rejected", E.order_error("Invalid TIF", a)
        if sz < 0 or (sz == 0 and not position_tpsl):
            return "rejected", E.order_error(E.ZERO_SIZE if sz == 0 else E.INVALID_SIZE, a)
        if not rules.valid_price(px):
            return "tickRejected", E.order_error(E.TICK, a)
        if builder_fee and (builder_fee < 0 or builder_fee > MAX_PERP_BUILDER_FEE or builder == user
                            or self.access.max_builder_fee(user, builder) < builder_fee):
            # a builder fee only ever moves the order's user's money to a builder that user approved
            return "rejected", E.BUILDER_FEE_NOT_APPROVED
        bad = self._control_error(a, px, tif, reduce_only)
        if bad is not None:
            return bad
        acct = self.ledger.accounts.get(user)
        if acct is not None and len(acct.orders) >= OPEN_ORDERS_FREE and not replacing:
            bad = self._open_order_limit_error(acct, reduce_only or bool(tpsl), a)
            if bad is not None:
                return bad
        if cloid is not None and acct is not None and acct.cloids.get(cloid, replacing) != replacing:
            return "rejected", E.order_error(E.DUPLICATE_CLOID, a)
        if tpsl:
            if tpsl not in ("tp", "sl") or not rules.valid_price(trigger_px):
                return "badTriggerPxRejected", E.order_error(E.BAD_TRIGGER_PX, a)
            mark = self.mark(a)
            if mark and not parent and _trigger_hit(is_buy, tpsl, trigger_px, mark):
                return "badTriggerPxRejected", E.order_error(E.BAD_TRIGGER_PX, a)
        if not reduce_only and px * sz < rules.min_notional:
            return "minTradeNtlRejected", E.order_error(E.MIN_TRADE_NTL, a)
        if reduce_only and not parent:
            macct = acct if not rules.dex else self._margin_acct(user, a)
            pos = None if macct is None else macct.positions.get(a)
            if pos is None or pos.szi == 0 or (pos.szi > 0) == is_buy:
                return "reduceOnlyRejected", E.order_error(E.REDUCE_ONLY, a)
        return None

    def _open_order_limit_error(self, acct: Account, reduce_only_or_trigger: bool,
                                asset: int) -> tuple[str, str] | None:
        """Hyperliquid's open-order limit (reference §6.7): 1,000 + 1 per $5M of the user's volume, at
        most 5,000; from 1,000 open orders on, new reduce-only and trigger orders are refused."""
        if reduce_only_or_trigger:
            return "rejected", E.order_error(E.TOO_MANY_OPEN_ORDERS, asset)
        limit = min(OPEN_ORDERS_FREE + self.volume.get(acct.address, 0) // VOLUME_PER_EXTRA_ORDER, MAX_OPEN_ORDERS)
        if len(acct.orders) >= limit:
            return "rejected", E.order_error(E.TOO_MANY_OPEN_ORDERS, asset)
        return None

    def _margin_check(self, user: str, rules: MarketRules, is_buy: bool, px: int, sz: int) -> tuple[str, str] | None:
        asset = rules.asset
        acct = self.ledger.accounts.get(user if not rules.dex else self._margin_key(user, asset))
        if acct is None:  # decisions never create accounts (only appliers change state)
            return "perpMarginRejected", E.order_error(E.PERP_MARGIN, asset)
        pos = acct.positions.get(asset)
        lev = pos.leverage if pos is not None else rules.default_leverage
        if not self.gates[asset].session_open:
            lev = min(lev, self._leverage_cap(asset))
        err = self.margin.order_margin_error(acct, pos, rules, is_buy, px, sz, lev)
        if err is None:
            return None
        if err == "max_position":
            return "perpMaxPositionRejected", E.order_error(E.PERP_MAX_POSITION, asset)
        return "perpMarginRejected", E.order_error(E.PERP_MARGIN, asset)

    def _leverage_cap(self, asset: int) -> int:
        """The most leverage ``asset`` allows now: its off-hours ``max_leverage`` while its session
        is closed (per the last tick), else its margin table's.

        The cap binds what adds exposure while the market is closed: ``updateLeverage`` above it is
        refused, and orders that open or increase a position are margined at ``min(setting, cap)``.
        A position set above the cap when the session closes keeps its leverage setting: nothing is
        changed, reduced or liquidated at the close, because Hyperliquid checks leverage "only when
        opening/increasing" (reference hyperliquid-api.md §6.3) and maintenance margin comes from the
        margin table, not the setting.  Off hours a new setting at or below the cap is accepted (a
        decrease still needs the margin for it).  trade.xyz's off-hours rules in the reference
        (perp-mechanics.md: internal EMA oracle, discovery bounds, "lower off-hours leverage") say
        nothing stricter about positions already open."""
        rules = self.rules[asset]
        cap = rules.spec.oracle.off_hours.max_leverage
        if cap and not self.gates[asset].session_open:  # 0: leverage unchanged off hours
            return cap
        return rules.spec.max_leverage

    def _reject(self, ts: int, user: str, req: C.OrderRequest, status: str, error: str) -> Status:
        self.sink.emit(V.OrderRejected(ts=ts, oid=self.next_oid, user=user, asset=req.asset, is_buy=req.is_buy,
                                       px=req.px, sz=req.sz, tif=req.tif, reduce_only=req.reduce_only,
                                       cloid=req.cloid, status=status, error=error))
        return {"error": error}

    def _place(self, ts: int, user: str, req: C.OrderRequest, position_tpsl: bool = False, parent: int = 0) -> Status:
        fields = _request_fields(req)
        bad = self._validate(user, fields, position_tpsl, parent)
        if bad is not None:
            return self._reject(ts, user, req, *bad)
        asset, is_buy, px, sz, tif, reduce_only, cloid, trigger_px, is_market, tpsl, builder, builder_fee = fields
        spec = self.markets[asset]
        oid = self.next_oid
        # OrderPlaced is built positionally (see events.Event): ts, oid, user, asset, is_buy, px, sz, tif, status,
        # reduce_only, cloid, builder, builder_fee, trigger_px, is_market, tpsl, parent, position_tpsl
        if tpsl:
            # a child waits for its parent to fill; if the parent already filled it is armed now
            status = "waitingForFill" if parent in self.orders else "waitingForTrigger"
            self.sink.emit(OrderPlaced(ts, oid, user, asset, is_buy, px, sz, tif, status, reduce_only, cloid, builder,
                                   builder_fee, trigger_px, is_market, tpsl, parent, position_tpsl))
            return status
        book = self.books[asset]
        if is_buy:
            best = book.best_ask()
            crosses = best is not None and best <= px
        else:
            best = book.best_bid()
            crosses = best is not None and best >= px
        if tif == "Alo" and crosses:
            bbo = f"{_fmt_px(spec, book.best_bid())}@{_fmt_px(spec, book.best_ask())}"
            error = E.order_error(E.BAD_ALO_PX.format(bbo=bbo), asset)
            return self._reject(ts, user, req, "badAloPxRejected", error)
        if (tif == "Ioc" or tif == "FrontendMarket") and not crosses:
            if tif == "FrontendMarket":
                return self._reject(ts, user, req, "marketOrderNoLiquidityRejected",
                                    E.order_error(E.MARKET_NO_LIQUIDITY, asset))
            return self._reject(ts, user, req, "iocCancelRejected", E.order_error(E.IOC_CANCEL, asset))
        if reduce_only:  # cap to the position at placement (IOC and resting alike)
            sz = min(sz, iabs(self.ledger.accounts[self._margin_key(user, asset)].positions[asset].szi))
        else:
            bad = self._margin_check(user, self.rules[asset], is_buy, px, sz) or self._oi_error(user, asset, is_buy)
            if bad is not None:
                return self._reject(ts, user, req, *bad)
        # GTC/ALO that cannot match rests at once (one event); the rest enters matching.  Emitted the
        # specialised way (``exchange.sink``): the applier's own ``_add_order`` on the order it describes.
        status = "pending" if crosses else "open"
        placed = OrderPlaced(ts, oid, user, asset, is_buy, px, sz, tif, status, reduce_only, cloid, builder,
                             builder_fee)
        order = Order(oid, user, asset, is_buy, px, sz, ts, tif, reduce_only, cloid, 0, False, "", 0, False, None,
                      builder, builder_fee)
        self._add_order(order, status)
        self.sink.record(placed)
        if crosses:
            return self._execute(ts, order)
        if reduce_only:
            self._enforce_reduce_only(ts, self.ledger.accounts[user], asset)
        return {"resting": _with_cloid({"oid": oid}, cloid)}

    def _opens(self, user: str, asset: int, is_buy: bool) -> bool:
        """Whether a buy (sell) by ``user`` would open or add to a position rather than reduce one."""
        acct = self._margin_acct(user, asset)
        pos = None if acct is None else acct.positions.get(asset)
        return pos is None or pos.szi == 0 or (pos.szi > 0) == is_buy

    def _szi(self, user: str, asset: int) -> int:
        acct = self._margin_acct(user, asset)
        pos = None if acct is None else acct.positions.get(asset)
        return 0 if pos is None else pos.szi

    def _execute(self, ts: int, order: Order) -> Status:
        """Match a pending order, then rest or finish it; apply the follow-ups of any fills."""
        oid, user, asset = order.oid, order.user, order.asset
        self._oi_stopped = False
        filled, ntl, touched = self._match(ts, order)
        is_market = order.tif == "FrontendMarket"
        takes_only = is_market or order.tif == "Ioc"  # never rests
        if order.oid in self.orders:  # something remains
            if self._oi_stopped:
                self._close(ts, order, "openInterestCapCanceled", arm_children=filled > 0)
            elif filled == 0 and takes_only:
                self._close(ts, order, "marketOrderNoLiquidityRejected" if is_market else "iocCancelRejected")
            elif takes_only:
                self._close(ts, order, "canceled", arm_children=True)  # partially filled: TP/SL go live
            elif order.reduce_only and not self._reduce_capacity(order):
                self._close(ts, order, "reduceOnlyCanceled")
            else:
                self.sink.emit(OrderRested(ts, oid))
                if order.reduce_only:
                    touched[user] = None
        if touched:
            self._after_fills(ts, asset, touched)
        if filled == 0 and self._oi_stopped:
            return {"error": E.order_error(E.OI_CAPPED, asset)}
        if filled == 0 and takes_only:
            return {"error": E.order_error(E.MARKET_NO_LIQUIDITY if is_market else E.IOC_CANCEL, asset)}
        if oid in self.orders and self.orders[oid].status == "open":
            return {"resting": _with_cloid({"oid": oid}, order.cloid)}
        if filled:
            return {"filled": _with_cloid({"totalSz": filled, "ntl": ntl, "oid": oid}, order.cloid)}
        return {"error": E.order_error("Order was canceled.", asset)}  # perpbox wording

    def _reduce_capacity(self, order: Order) -> int:
        """How many lots ``order`` may still trade without increasing its owner's position."""
        acct = self._margin_acct(order.user, order.asset)
        pos = None if acct is None else acct.positions.get(order.asset)
        if pos is None or pos.szi == 0 or (pos.szi > 0) == order.is_buy:
            return 0
        return iabs(pos.szi)

    def _match(self, ts: int, order: Order) -> tuple[int, int, dict[str, None]]:
        """Walk the opposite side of the book; returns (filled lots, filled notional, users whose
        positions changed, in order of first touch)."""
        book = self.books[order.asset]
        rules = self.rules[order.asset]
        is_buy, limit, user, asset, oid = order.is_buy, order.px, order.user, order.asset, order.oid
        day = ts // DAY_MS
        taker_rate, makers = rules.takers[self._fee_tier(user, day)[0]], rules.makers
        filled = ntl = 0
        touched: dict[str, None] = {}
        sink = self.sink
        capped = self._is_capped(asset)
        while order.sz:
            level = book.best_level(not is_buy)
            if level is None or (level.px > limit if is_buy else level.px < limit):
                break
            maker = level.front()
            if maker.user == user:
                self._close(ts, maker, "selfTradeCanceled")
                continue
            qty = order.sz if order.sz < maker.sz else maker.sz
            if order.reduce_only:
                cap = self._reduce_capacity(order)
                if cap == 0:
                    break
                qty = min(qty, cap)
            if maker.reduce_only:
                cap = self._reduce_capacity(maker)
                if cap == 0:
                    self._close(ts, maker, "reduceOnlyCanceled")
                    continue
                qty = min(qty, cap)
            elif self._margin_check(maker.user, rules, maker.is_buy, level.px, qty) is not None:
                self._close(ts, maker, "marginCanceled", arm_children=maker.sz < maker.orig_sz)
                continue
            if capped:
                # open interest (long side) grows by max(0, q − buyer's short) − min(q, seller's long),
                # so it stays within ``room`` exactly for q ≤ room + buyer's short + seller's long
                buyer, seller = (user, maker.user) if is_buy else (maker.user, user)
                b, s_ = self._szi(buyer, order.asset), self._szi(seller, order.asset)
                q_max = (self._oi_room(order.asset) or 0) + max(-b, 0) + max(s_, 0)
                if q_max == 0:
                    self._oi_stopped = True
                    break
                qty = min(qty, q_max)
            px = level.px
            notional = px * qty
            tb, mb = builder_fee(notional, order.builder_fee), builder_fee(notional, maker.builder_fee)
            # positional (see events.Event): ts, tid, asset, px, sz, taker_is_buy, taker, maker, taker_oid, maker_oid,
            # taker_fee, maker_fee, taker_builder, taker_builder_fee, maker_builder, maker_builder_fee
            tid, maker_user, maker_oid = self.next_tid, maker.user, maker.oid
            maker_rate = makers[self._fee_tier(maker_user, day)[1]]
            taker_fee, maker_fee = fee_up(notional, taker_rate), fee_up(notional, maker_rate)
            if maker_fee < -taker_fee:  # a rebate is paid out of this fill's taker fee, never more
                maker_fee = -taker_fee
            taker_fee, maker_fee = taker_fee + tb, maker_fee + mb
            taker_builder, maker_builder = order.builder if tb else "", maker.builder if mb else ""
            fill = Fill(ts, tid, asset, px, qty, is_buy, user, maker_user, oid, maker_oid, taker_fee, maker_fee,
                        taker_builder, tb, maker_builder, mb)
            # emitted the specialised way: the applier's own function on the values the event holds
            self._apply_fill(ts, tid, asset, px, qty, is_buy, user, maker_user, oid, maker_oid, taker_fee, maker_fee,
                             taker_builder, tb, maker_builder, mb)
            sink.record(fill)
            filled += qty
            ntl += notional
            touched[user] = None
            touched[maker_user] = None
            if maker.children or maker.parent:
                self._after_order_fill(ts, maker)
        if filled and (order.children or order.parent):
            self._after_order_fill(ts, order)
        return filled, ntl, touched

    def _after_order_fill(self, ts: int, order: Order) -> None:
        """TP/SL groups: a filled parent arms its children; a filling child cancels its sibling."""
        if order.children and order.oid not in self.orders:  # parent fully filled
            self._arm_children(ts, order)
        if order.parent:
            parent = self.orders.get(order.parent)
            siblings = parent.children if parent is not None else [
                o.oid for o in self.orders.values() if o.parent == order.parent]
            for sib in list(siblings):
                if sib != order.oid and sib in self.orders:
                    self._close(ts, self.orders[sib], "siblingFilledCanceled")

    def _arm_children(self, ts: int, parent: Order) -> None:
        for child_oid in parent.children:
            child = self.orders.get(child_oid)
            if child is not None and child.status == "waitingForFill":
                self.sink.emit(V.OrderArmed(ts=ts, oid=child_oid, sz=child.sz))

    def _close(self, ts: int, order: Order, status: str, arm_children: bool = False) -> None:
        """Take a live order out (``status`` says why).  Its TP/SL children still waiting for it
        are cancelled with it, as on Hyperliquid, except when the parent did fill in part and
        ``arm_children`` (an IOC remainder, or a margin cancel after a partial fill): then they go
        live, sized to the position when they trigger."""
        closed = OrderClosed(ts, order.oid, status)
        self._on_order_closed(closed)  # emitted the specialised way: its applier, then recorded
        self.sink.record(closed)
        if order.children:
            if arm_children:
                self._arm_children(ts, order)
            else:
                for child in order.children:
                    if child in self.orders and self.orders[child].status == "waitingForFill":
                        self.sink.emit(OrderClosed(ts=ts, oid=child, status=status))

    def _after_fills(self, ts: int, asset: int, users: Iterable[str]) -> None:
        """Reduce-only upkeep for every user (or dex account: its owner's orders) whose position in
        ``asset`` changed."""
        accounts = self.ledger.accounts
        for user in users:
            acct = accounts.get(user if not self.rules[asset].dex else wallet_owner(user))
            if acct is not None and acct.n_reduce_only:
                self._enforce_reduce_only(ts, acct, asset)

    def _enforce_reduce_only(self, ts: int, acct: Account, asset: int) -> None:
        """``acct`` is the owner's account (its orders); the position is on the asset's dex."""
        macct = acct if not self.rules[asset].dex else self._margin_acct(acct.address, asset)
        pos = None if macct is None else macct.positions.get(asset)
        szi = pos.szi if pos is not None else 0
        room = iabs(szi)
        # newest first: the venue keeps the newest reduce-only orders and cancels older ones
        for oid in sorted((o for o, x in acct.orders.items() if _is_ro(x, asset)), reverse=True):
            order = self.orders[oid]
            if order.status == "waitingForFill":
                continue
            increases = szi == 0 or (szi > 0) == order.is_buy
            if order.status == "waitingForTrigger":
                if increases:
                    self._close(ts, order, "reduceOnlyCanceled")
                continue
            if increases or room == 0:
                self._close(ts, order, "reduceOnlyCanceled")
            elif order.sz > room:
                self.sink.emit(V.OrderResized(ts=ts, oid=oid, sz=room))
                room = 0
            else:
                room -= order.sz

    # -- cancels and modifies ------------------------------------------------------------------
    def _cancel_oid(self, ts: int, user: str, oid: int, asset: int) -> Status:
        order = self.orders.get(oid)
        if order is None or order.user != user or order.asset != asset:
            return {"error": E.order_error(E.MISSING_ORDER, asset)}  # the venue names the request's asset
        self._close(ts, order, "canceled")
        return "success"

    def _cmd_cancel(self, cmd: C.Cancel) -> list[Status]:
        ts, user, asset, oid = _fields(cmd)
        return [self._cancel_oid(ts, user, oid, asset)]

    def _cmd_cancel_by_cloid(self, cmd: C.CancelByCloid) -> list[Status]:
        acct = self.ledger.accounts.get(cmd.user)
        oid = None if acct is None else acct.cloids.get(cmd.cloid)
        if oid is None:
            return [{"error": E.order_error(E.MISSING_ORDER, cmd.asset)}]
        return [self._cancel_oid(cmd.ts, cmd.user, oid, cmd.asset)]

    def _cmd_cancel_all(self, cmd: C.CancelAll) -> list[Status]:
        acct = self.ledger.accounts.get(cmd.user)
        if acct is None:
            return []
        out: list[Status] = []
        for oid in sorted(acct.orders):
            order = self.orders.get(oid)  # None: a child already closed with its parent
            if order is not None and (cmd.asset is None or order.asset == cmd.asset):
                self._close(cmd.ts, order, "canceled")
                out.append("success")
        return out

    def _modify(self, ts: int, user: str, ref: int | str, req: C.OrderRequest) -> Status:
        acct = self.ledger.accounts.get(user)
        oid = ref if isinstance(ref, int) else (None if acct is None else acct.cloids.get(ref))
        order = None if oid is None else self.orders.get(oid)
        if order is None or order.user != user or order.status == "waitingForFill":
            return {"error": E.CANNOT_MODIFY}
        # an invalid replacement leaves the original untouched: nothing is half-applied
        bad = self._validate(user, _request_fields(req), False, 0, replacing=order.oid)
        if bad is not None:
            return self._reject(ts, user, req, *bad)
        if not req.builder and order.builder:  # the wire form has no builder: the code stays
            req = msgspec.structs.replace(req, builder=order.builder, builder_fee=order.builder_fee)
        self._close(ts, order, "canceled")
        return self._place(ts, user, req)

    def _cmd_modify(self, cmd: C.Modify) -> Status:
        status = self._modify(cmd.ts, cmd.user, cmd.oid, cmd.order)
        return status if isinstance(status, dict) and "error" in status else "ok"

    def _cmd_batch_modify(self, cmd: C.BatchModify) -> list[Status]:
        return [self._modify(cmd.ts, cmd.user, m.oid, m.order) for m in cmd.modifies]

    # -- triggers ------------------------------------------------------------------------------
    def _fire_triggers(self, ts: int, asset: int) -> None:
        mark = self.mark(asset)
        if not mark:
            return
        due = sorted(o.oid for o in self.triggers[asset].values()
                     if _trigger_hit(o.is_buy, o.tpsl, o.trigger_px, mark))
        spec = self.markets[asset]
        for oid in due:
            order = self.orders.get(oid)
            if order is None or order.status != "waitingForTrigger":
                continue  # cancelled by an earlier trigger this tick (sibling, reduce-only upkeep)
            if order.is_market:
                # Hyperliquid's documented 10% tolerance from the mark.  The order's own ``p`` is not
                # a cap: the official SDK's TP/SL example sends p = triggerPx for market triggers,
                # which would leave every gap through the trigger unfilled.
                px = spec.slippage_px(mark, order.is_buy, TRIGGER_SLIPPAGE_BPS)
            else:
                px = order.px
            self.sink.emit(V.OrderTriggered(ts=ts, oid=oid, mark_px=mark, px=px))
            if order.reduce_only:
                cap = self._reduce_capacity(order)
                if cap == 0:
                    self._close(ts, order, "reduceOnlyCanceled")
                    continue
                if order.sz == 0 or order.sz > cap:  # size 0: the whole position (positionTpsl)
                    self.sink.emit(V.OrderResized(ts=ts, oid=oid, sz=cap))
            elif self._margin_check(order.user, self.rules[asset], order.is_buy, px, order.sz) is not None:
                self._close(ts, order, "marginCanceled")
                continue
            self._execute(ts, order)

    # ==============================================================================================
    # appliers: the only code that changes state
    # ==============================================================================================
    def _on_market_listed(self, ev: V.MarketListed) -> None:
        spec = ev.spec
        if spec.asset in self.markets:
            self.position_index = None  # a re-listing may bring another margin table
        self._set_spec(spec)
        self.books[spec.asset] = OrderBook(spec.asset)
        self.prices[spec.asset] = ev.mark_px
        self.pricing[spec.asset] = pricer.listed(ev.ts, ev.mark_px, spec.funding)
        self.config[spec.asset] = V.MarketConfig(oi_cap_ntl=spec.controls.oi_cap_ntl, oi_cap_sz=spec.controls.oi_cap_sz)
        self._refresh_gate(spec.asset)
        if spec.dex not in self.dexes:
            self.dexes[spec.dex] = len(self.dexes)
        if spec.dex and spec.dex not in self.dex_deployer:
            self.dex_deployer[spec.dex] = ev.deployer
        self.deploy.on_market_listed(ev)

    def _on_deposited(self, ev: V.Deposited) -> None:
        self.ledger.deposit(ev.user, ev.usd)

    def _on_withdrew(self, ev: V.Withdrew) -> None:
        self.ledger.withdraw(ev.user, ev.usd)

    def _on_sub_account_created(self, ev: V.SubAccountCreated) -> None:
        self.ledger.create_sub_account(ev.master, ev.sub)

    def _on_transferred(self, ev: V.Transferred) -> None:
        self.ledger.transfer(ev.src, ev.dst, ev.usd)

    def _on_asset_sent(self, ev: V.AssetSent) -> None:
        self.ledger.transfer(ev.src, ev.dst, ev.usd)
        self.ledger.account(wallet_owner(ev.dst))  # the receiver is a user now, as a deposit would make it

    def _on_leverage_updated(self, ev: V.LeverageUpdated) -> None:
        acct = self.ledger.account(self._margin_key(ev.user, ev.asset))
        self.ledger.set_leverage(acct, self._position_slot(acct, ev.asset), ev.is_cross, ev.leverage)

    def _on_isolated_margin_moved(self, ev: V.IsolatedMarginMoved) -> None:
        acct = self.ledger.account(self._margin_key(ev.user, ev.asset))
        self.ledger.move_isolated(acct, acct.positions[ev.asset], ev.usd)

    def _on_order_placed(self, ev: V.OrderPlaced) -> None:
        # one C call instead of a generic attribute lookup per field (see _fields)
        (ts, oid, user, asset, is_buy, px, sz, tif, status, reduce_only, cloid, builder, builder_fee, trigger_px,
         is_market, tpsl, parent_oid, position_tpsl, _) = _fields(ev)
        self._add_order(Order(oid, user, asset, is_buy, px, sz, ts, tif, reduce_only, cloid, trigger_px, is_market,
                              tpsl, parent_oid, position_tpsl, None, builder, builder_fee), status)

    def _add_order(self, order: Order, status: str) -> None:
        """``OrderPlaced``'s applier once the order is built; ``_place`` calls it with the order
        it has just described in the event (a plain Python value: it need not read it back)."""
        oid, cloid, parent_oid = order.oid, order.cloid, order.parent
        order.status = status
        self.orders[oid] = order
        acct = self.ledger.accounts.get(order.user) or self.ledger.account(order.user)
        acct.orders[oid] = order
        if cloid is not None:
            acct.cloids[cloid] = oid
        if order.reduce_only:
            acct.n_reduce_only += 1
        if status == "open":
            self.books[order.asset].add(order)
        elif status == "waitingForTrigger":
            self.triggers.setdefault(order.asset, {})[oid] = order
        if parent_oid:
            parent = self.orders.get(parent_oid)
            if parent is not None:
                parent.children += (oid,)
        self.next_oid = oid + 1

    def _on_order_rejected(self, ev: V.OrderRejected) -> None:
        self.next_oid = ev.oid + 1

    def _on_fill(self, ev: V.Fill) -> None:
        (ts, tid, asset, px, sz, taker_buys, taker_addr, maker_addr, taker_oid, maker_oid, taker_fee, maker_fee,
         taker_builder, taker_builder_fee, maker_builder, maker_builder_fee) = _fields(ev)
        self._apply_fill(ts, tid, asset, px, sz, taker_buys, taker_addr, maker_addr, taker_oid, maker_oid, taker_fee,
                         maker_fee, taker_builder, taker_builder_fee, maker_builder, maker_builder_fee)

    def _apply_fill(self, ts: int, tid: int, asset: int, px: int, sz: int, taker_buys: bool, taker_addr: str,
                    maker_addr: str, taker_oid: int, maker_oid: int, taker_fee: int, maker_fee: int, taker_builder: str,
                    taker_builder_fee: int, maker_builder: str, maker_builder_fee: int) -> None:
        """``Fill``'s applier on the event's fields (``_match`` passes the values it built the
        event from: a native call, where reading them back from the event is a generic one):
        both sides' cash and positions, builder fees, volume and fee-tier buckets, the book."""
        ledger = self.ledger
        if self.rules[asset].dex:  # a HIP-3 market: both sides trade on their accounts on its dex
            taker_acct = ledger.accounts[self._margin_key(taker_addr, asset)]
            maker_acct = ledger.accounts[self._margin_key(maker_addr, asset)]
        else:
            taker_acct = ledger.accounts[taker_addr]
            maker_acct = ledger.accounts[maker_addr]
        pos = taker_acct.positions.get(asset) or self._position_slot(taker_acct, asset)
        old = pos.szi
        ledger.apply_fill(taker_acct, pos, taker_buys, px, sz, taker_fee)
        self._track(asset, taker_acct.address, old, pos.szi)
        pos = maker_acct.positions.get(asset) or self._position_slot(maker_acct, asset)
        old = pos.szi
        ledger.apply_fill(maker_acct, pos, not taker_buys, px, sz, maker_fee)
        self._track(asset, maker_acct.address, old, pos.szi)
        if taker_builder_fee or maker_builder_fee:
            ledger.pay_builder(taker_builder, taker_builder_fee)
            ledger.pay_builder(maker_builder, maker_builder_fee)
        volume = self.volume
        notional = mul(px, sz)
        volume[taker_addr] = volume.get(taker_addr, 0) + notional
        volume[maker_addr] = volume.get(maker_addr, 0) + notional
        self._book_volume(ts, taker_addr, maker_addr, notional)
        maker = self.orders[maker_oid]
        self.books[asset].reduce(maker, sz)
        if maker.sz == 0:
            self._forget(maker)
        taker = self.orders[taker_oid]
        taker.sz -= sz
        if taker.sz == 0:
            self._forget(taker)
        self.last_px[asset] = px
        if not self.gates[asset].mark:
            self.prices[asset] = px
        self.next_tid = tid + 1

    def _on_order_rested(self, ev: V.OrderRested) -> None:
        order = self.orders[ev.oid]
        self.books[order.asset].add(order)

    def _on_order_triggered(self, ev: V.OrderTriggered) -> None:
        order = self.orders[ev.oid]
        del self.triggers[order.asset][ev.oid]
        order.status = "pending"
        order.triggered = True
        order.px = ev.px
        order.tif = "Ioc" if order.is_market else "Gtc"

    def _on_order_armed(self, ev: V.OrderArmed) -> None:
        order = self.orders[ev.oid]
        order.status = "waitingForTrigger"
        order.sz = ev.sz
        self.triggers.setdefault(order.asset, {})[ev.oid] = order

    def _on_order_resized(self, ev: V.OrderResized) -> None:
        order = self.orders[ev.oid]
        if order.status == "open":
            self.books[order.asset].reduce(order, order.sz - ev.sz)
        else:
            order.sz = ev.sz

    def _on_order_closed(self, ev: V.OrderClosed) -> None:
        oid = ev.oid
        order = self.orders[oid]
        if order.status == "open":
            self.books[order.asset].remove(order)
        elif order.status == "waitingForTrigger":
            del self.triggers[order.asset][oid]
        self._forget(order)

    def _set_spec(self, spec: MarketSpec) -> None:
        """The only way a market's spec is set, so that its ``MarketRules`` copy stays in step."""
        self.markets[spec.asset] = spec
        self.rules[spec.asset] = MarketRules(spec)

    def _forget(self, order: Order) -> None:
        """Drop a finished order from every index."""
        del self.orders[order.oid]
        acct = self.ledger.accounts[order.user]
        del acct.orders[order.oid]
        if order.cloid is not None and acct.cloids.get(order.cloid) == order.oid:
            del acct.cloids[order.cloid]
        if order.reduce_only:
            acct.n_reduce_only -= 1
        order.status = "done"


# ==================================================================================================
# helpers
# ==================================================================================================
def sub_account_error(name: str, existing: int) -> str | None:
    """Why a master with ``existing`` sub-accounts may not create one named ``name``, or None
    (shared with the API's pre-check; both strings are perpbox wording)."""
    if not 1 <= len(name) <= MAX_SUB_ACCOUNT_NAME or not name.isprintable():
        return "Invalid sub-account name."  # perpbox wording
    if existing >= MAX_SUB_ACCOUNTS:
        return f"Too many sub-accounts. Limit is {MAX_SUB_ACCOUNTS}"
    return None


def builder_fee(notional: int, tenths_bp: int) -> int:
    """A builder's fee in micro-USDC: ``tenths_bp`` tenths of a basis point (1e-5) of the notional,
    rounded up like every fee charged."""
    return ceil_div(mul(notional, tenths_bp), 100_000) if tenths_bp else 0


def _trigger_hit(is_buy: bool, tpsl: str, trigger_px: int, mark: int) -> bool:
    """Hyperliquid: a sell TP fires on "Price above", a sell SL on "Price below"; buys mirror."""
    above = (tpsl == "tp") != is_buy
    return mark >= trigger_px if above else mark <= trigger_px


def _is_ro(order: Any, asset: int) -> bool:
    return bool(order.reduce_only) and order.asset == asset


def _fmt_px(spec: MarketSpec, px: int | None) -> str:
    return "0" if px is None else format_units(px, spec.px_decimals)


# A struct's fields in declared order.  The compiled engine reads a msgspec struct's attribute
# through a generic lookup each time; one ``astuple`` call is cheaper where most fields are read.
_fields: Final[Callable[[Any], tuple[Any, ...]]] = msgspec.structs.astuple
_request_fields: Final[Callable[[C.OrderRequest], C.OrderFields]] = msgspec.structs.astuple


def _with_cloid(d: dict[str, Any], cloid: str | None) -> dict[str, Any]:
    if cloid is not None:
        d["cloid"] = cloid
    return d


def _order_state(o: Order) -> list[Any]:
    return [o.oid, o.user, o.asset, o.is_buy, o.px, o.sz, o.orig_sz, o.ts, o.tif, o.reduce_only, o.cloid,
            o.trigger_px, o.is_market, o.tpsl, o.parent, list(o.children), o.position_tpsl, o.status, o.triggered,
            o.builder, o.builder_fee]


def _spec_state(s: MarketSpec) -> list[Any]:
    return [s.name, s.asset, s.dex, s.sz_decimals, s.margin_mode.value, s.min_notional, s.max_sig_figs,
            s.fees.maker, s.fees.taker,
            [[t.lower_bound, t.max_leverage, t.mmr.numerator, t.mmr.denominator] for t in s.margin_table.tiers]]
