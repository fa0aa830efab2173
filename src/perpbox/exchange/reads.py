"""The engine's public read surface: what the layers above the engine may ask of its state.

``api/``, ``agents/``, ``store/`` and ``cli/`` read the engine through ``Exchange.reads`` (an
``ExchangeReads``) and nothing else of it but the command and log entry points (``apply``,
``execute``, ``replay``, ``state_hash``, ``snapshot_state`` / ``restore``).  This module is the one place that
knows where each piece of engine state lives, so the engine's insides can move between components
without touching a caller.

The rules every read keeps:

* it returns values, never live engine objects: frozen ``msgspec`` structs and tuples of integers
  in engine units (sizes in lots, prices in price units, money in micro-USDC, rates in 1e-8), exact
  ``Fraction`` where the engine's own figure is a rational (impact prices, the running premium), or
  objects that are immutable already (``MarketSpec``, ``MarginTable``, ``FundingParams``,
  ``FundingRecord``).  Holding or changing what a read returned never changes the engine, and a
  later command never changes what an earlier read returned;
* its work is linear in what it returns: one user's answer reads that user's accounts and orders,
  never a scan of everybody's.  The exceptions say so in their docstrings: an ADL rank is a place
  in its side's whole queue, the book's levels and impact prices sort the side's price levels
  (``OrderBook.depth`` and ``pricing.impact`` keep no sorted index), and the cash audit sums every
  account (it is the conservation check);
* it formats nothing: decimal strings and wire shapes belong to ``api/``;
* it changes no engine state: ``Ledger.account`` creates an account, so it is not part of this
  surface (``account`` here answers None instead).  Only derived, never hashed, caches move: the
  book drops stale best-price heap entries when asked, and ``markets`` keeps its own index.
"""

from __future__ import annotations

import bisect
from fractions import Fraction
from typing import TYPE_CHECKING

import msgspec

from perpbox.exchange.funding import FundingRecord
from perpbox.ledger.ledger import Account, Position, dex_account, spot_wallet
from perpbox.market.funding import FundingParams
from perpbox.market.margin import MarginTable
from perpbox.market.spec import MarketSpec
from perpbox.pricing import pricer
from perpbox.pricing.impact import impact_price

if TYPE_CHECKING:
    from perpbox.book.order import Order
    from perpbox.exchange.engine import Exchange


class PriceView(msgspec.Struct, frozen=True, gc=False):
    """A market's prices, in price units (0: none yet)."""

    mark: int  # what margin is computed at: the mark, else the last trade (``MarketPricing.mark``)
    oracle: int
    last: int  # the last trade's price


class FundingView(msgspec.Struct, frozen=True):
    """The running funding interval of a market."""

    interval_ms: int
    predicted_rate: int  # what the interval would pay if it ended now, 1e-8 per interval
    premium: Fraction | None  # the interval's average premium so far; None before its first sample
    next_funding_ts: int
    impact_notional: int  # micro-USDC: the size of the impact prices the premium samples


class OpenInterestView(msgspec.Struct, frozen=True, gc=False):
    """A market's open interest (the long side) and its configured caps (0: uncapped)."""

    size: int  # lots
    notional: int  # size at the margin price, micro-USDC
    cap_ntl: int  # micro-USDC
    cap_sz: int  # lots


class DexView(msgspec.Struct, frozen=True, gc=False):
    """A perp dex: ``""`` is the first dex (index 0), the others HIP-3 dexes."""

    name: str
    index: int
    full_name: str
    deployer: str  # "" for the first dex
    oi_cap_ntl: int  # the dex-wide open-interest cap, micro-USDC (0: none)


class AccountView(msgspec.Struct, frozen=True, gc=False):
    """A ledger account's identity and cash (its margin figures: ``ExchangeReads.margin_summary``)."""

    address: str
    master: str | None  # a sub-account's master
    subs: tuple[str, ...]  # a master's sub-accounts, in creation order
    raw_usd: int  # cross cash, micro-USDC


class PositionView(msgspec.Struct, frozen=True, gc=False):
    """One position slot of an account, its figures at the margin price (micro-USDC).  A slot with
    ``szi == 0`` keeps the account's leverage setting for the market."""

    asset: int
    szi: int  # signed size, lots
    entry_ntl: int  # cost basis of the open size
    leverage: int
    is_cross: bool
    iso_raw: int  # the isolated cash bucket (0 for cross)
    value: int  # |szi| × price
    unrealized_pnl: int
    isolated_value: int  # iso_raw + szi × price (what an isolated position is worth)
    initial_margin: int
    maintenance_margin: int
    cum_funding: int  # funding paid (+) / received (−)
    realized_pnl: int


class MarginSummary(msgspec.Struct, frozen=True, gc=False):
    """One clearinghouse account's margin figures (``risk.margin.MarginView``), micro-USDC."""

    account_value: int  # cross value + isolated value
    cross_value: int
    cross_notional: int
    cross_initial_margin: int
    cross_maintenance_margin: int
    withdrawable: int
    available_to_trade: int
    raw_usd: int  # cross cash
    # the isolated positions (and flat isolated slots still holding cash)
    isolated_raw: int
    isolated_notional: int
    isolated_value: int


class CashAudit(msgspec.Struct, frozen=True, gc=False):
    """The ledger's conservation figures, micro-USDC: outside a funding round or a market settlement
    (so after every command) ``cash == deposits - withdrawals``."""

    cash: int  # Σ cross cash + Σ isolated buckets, the fee account included (``Ledger.total_cash``)
    deposits: int  # every deposit ever
    withdrawals: int  # every withdrawal ever


class OrderView(msgspec.Struct, frozen=True, gc=False):
    """A live order (``book.order.Order``) as it stands; sizes in lots, prices in price units."""

    oid: int
    user: str
    asset: int
    is_buy: bool
    px: int
    sz: int  # remaining
    orig_sz: int
    ts: int
    tif: str
    reduce_only: bool
    cloid: str | None
    trigger_px: int
    is_market: bool
    tpsl: str
    parent: int
    children: tuple[int, ...]
    position_tpsl: bool
    status: str  # open, pending, waitingForTrigger or waitingForFill
    triggered: bool
    builder: str
    builder_fee: int


class ExchangeReads:
    """The engine's public read surface (see the module docstring); built by ``Exchange._wire``."""

    __slots__ = ("_ex", "_index")

    def __init__(self, ex: Exchange) -> None:
        self._ex = ex
        # derived, never hashed: (number of markets, assets by asset, dex -> its assets); markets are
        # never removed and an asset's dex never changes, so it is rebuilt only when one is listed
        self._index: tuple[int, tuple[int, ...], dict[str, tuple[int, ...]]] = (-1, (), {})

    # -- markets ----------------------------------------------------------------------------------
    def market_count(self) -> int:
        return len(self._ex.board.markets)

    def markets(self, dex: str | None = None) -> tuple[MarketSpec, ...]:
        """The listed markets, by asset: all of them, or those of ``dex`` (``""`` the first dex)."""
        markets = self._ex.board.markets
        if self._index[0] != len(markets):
            by_dex: dict[str, list[int]] = {}
            assets = tuple(sorted(markets))
            for a in assets:
                by_dex.setdefault(markets[a].dex, []).append(a)
            self._index = (len(markets), assets, {d: tuple(a) for d, a in by_dex.items()})
        _, assets, per_dex = self._index
        chosen = assets if dex is None else per_dex.get(dex, ())
        return tuple(markets[a] for a in chosen)

    def market(self, asset: int) -> MarketSpec | None:
        """The market's spec, or None when ``asset`` is not listed."""
        return self._ex.board.markets.get(asset)

    def status(self, asset: int) -> str:
        """``active``, ``halted`` (by the deployer or its oracle definition) or ``settled``."""
        return self._ex.controls.status(asset)

    def table_id(self, asset: int) -> int:
        """The id of the margin table ``asset`` uses (Hyperliquid's ``marginTableId``)."""
        return self._ex.deploy.table_id(asset)

    def margin_table(self, table_id: int, dex: str | None = None) -> MarginTable | None:
        """Table ``table_id`` (flat or tiered); with ``dex``, only a flat table or one of that dex's."""
        return self._ex.deploy.margin_table(table_id, dex)

    def dex_tables(self, dex: str) -> tuple[int, ...]:
        """Ids of the tiered tables that belong to ``dex``."""
        return tuple(self._ex.deploy.dex_tables(dex))

    # -- prices and the book ------------------------------------------------------------------------
    def prices(self, asset: int) -> PriceView:
        ex = self._ex
        return PriceView(ex.pricing.mark(asset), ex.pricing.oracle(asset), ex.pricing.last_px.get(asset, 0))

    def mark(self, asset: int) -> int:
        """The price margin is computed at: the mark, else the last trade, else 0."""
        return self._ex.pricing.mark(asset)

    def oracle(self, asset: int) -> int:
        return self._ex.pricing.oracle(asset)

    def marks(self) -> tuple[tuple[int, int], ...]:
        """(asset, mark) of every market with a mark, by asset (the pricing layer's mark only)."""
        return tuple(sorted(self._ex.pricing.marks().items()))

    def margin_prices(self) -> dict[int, int]:
        """{asset: the price margin is computed at} of every listed market (what ``mark`` answers
        for one): a fresh dict each call, for the read models' ``apply``, so that changing it never
        changes the engine."""
        return dict(self._ex.pricing.prices)

    def best_bid_ask(self, asset: int) -> tuple[int | None, int | None]:
        """The best bid and ask prices (None: that side is empty)."""
        book = self._ex.board.books[asset]
        return book.best_bid(), book.best_ask()

    def book_levels(self, asset: int, is_buy: bool, n: int) -> tuple[tuple[int, int, int], ...]:
        """The best ``n`` levels of one side, best first: (price, size in lots, number of orders).
        The book sorts the side's levels to find them (``OrderBook.depth``)."""
        return tuple(self._ex.board.books[asset].depth(is_buy, n))

    def impact_prices(self, asset: int, notional: int) -> tuple[Fraction | None, Fraction | None]:
        """(sell, buy) impact prices of ``notional`` micro-USDC in exact price units: the average
        price of selling into the bids and of buying from the asks; None when the side is too thin.
        Each side's levels are sorted to walk them (``pricing.impact.impact_price``)."""
        book = self._ex.board.books[asset]
        return impact_price(book, False, notional), impact_price(book, True, notional)

    # -- funding and open interest ----------------------------------------------------------------------
    def funding(self, asset: int) -> FundingView:
        ex = self._ex
        params = ex.funding.params(asset)
        st = ex.pricing.states[asset]
        premium = None if st.prem_n == 0 else pricer.interval_premium(st, params)
        return FundingView(params.interval_ms, ex.funding.predicted(asset), premium, st.next_funding_ts,
                           params.impact_notional)

    def funding_params(self, asset: int) -> FundingParams:
        """The market's funding parameters with the deployer's multiplier and interest overrides."""
        return self._ex.funding.params(asset)

    def predicted_funding(self, asset: int) -> int:
        """The rate the running interval would pay if it ended now (1e-8)."""
        return self._ex.funding.predicted(asset)

    def funding_records(self, asset: int) -> tuple[FundingRecord, ...]:
        """Every settled funding interval of the market, oldest first."""
        return tuple(self._ex.funding.history(asset))

    def funding_history(self, asset: int, start: int, end: int, limit: int) -> tuple[FundingRecord, ...]:
        """The first ``limit`` settled intervals with ``start <= ts <= end``, oldest first: the
        first is found by bisection, so the work is what is returned."""
        rows = self._ex.funding.history(asset)
        first = bisect.bisect_left(rows, start, key=_record_ts)
        out: list[FundingRecord] = []
        for k in range(first, min(len(rows), first + limit)):
            if rows[k].ts > end:
                break
            out.append(rows[k])
        return tuple(out)

    def open_interest(self, asset: int) -> OpenInterestView:
        ex = self._ex
        cfg = ex.controls.config[asset]
        return OpenInterestView(ex.holdings.open_interest(asset), ex.holdings.open_interest_ntl(asset), cfg.oi_cap_ntl,
                                cfg.oi_cap_sz)

    def open_interest_ntl(self, asset: int) -> int:
        """Open interest at the margin price, micro-USDC."""
        return self._ex.holdings.open_interest_ntl(asset)

    # -- dexes --------------------------------------------------------------------------------------
    def dex_names(self) -> tuple[str, ...]:
        """Every dex in index order: ``""`` (the first dex), then the HIP-3 dexes."""
        return tuple(d for d, _ in sorted(self._ex.board.dexes.items(), key=lambda kv: kv[1]))

    def dex(self, name: str) -> DexView | None:
        """The dex named ``name``, or None when no market lists it."""
        ex = self._ex
        index = ex.board.dexes.get(name)
        if index is None:
            return None
        return DexView(name, index, ex.deploy.full_name(name), ex.board.dex_deployer.get(name, ""),
                       ex.controls.dex_oi_cap.get(name, 0))

    def dex_full_name(self, dex: str) -> str:
        return self._ex.deploy.full_name(dex)

    # -- accounts -----------------------------------------------------------------------------------
    def has_account(self, address: str) -> bool:
        """Whether the ledger knows ``address`` (a user, a sub-account, a dex account or a wallet)."""
        return address in self._ex.ledger.accounts

    def addresses(self) -> tuple[str, ...]:
        """Every ledger account's address, sorted (users, sub-accounts, dex accounts, wallets, the fee
        account): for reports over the whole exchange."""
        return tuple(sorted(self._ex.ledger.accounts))

    def cash_audit(self) -> CashAudit:
        """The conservation check's figures; the cash sum reads every account."""
        ledger = self._ex.ledger
        return CashAudit(ledger.total_cash(), ledger.deposits, ledger.withdrawals)

    def account(self, address: str) -> AccountView | None:
        """The ledger account ``address`` (a user's first-dex account is its address; see
        ``clearinghouse`` for the others), or None when it does not exist."""
        acct = self._ex.ledger.accounts.get(address)
        return None if acct is None else AccountView(acct.address, acct.master, tuple(acct.subs), acct.raw_usd)

    def clearinghouse(self, user: str, dex: str) -> str | None:
        """The ledger account of ``user``'s clearinghouse ``dex`` (``""``, a HIP-3 dex or ``"spot"``),
        or None for a dex that does not exist."""
        return self._ex.accounts.clearinghouse(user, dex)

    def margin_summary(self, address: str, dex: str = "") -> MarginSummary | None:
        """The margin figures of ``address``'s account on ``dex``, or None when it has none there
        (``address`` may name a ledger account already, a dex account or a wallet: then ``dex`` is ``""``)."""
        acct = self._ex.ledger.accounts.get(dex_account(dex, address))
        return None if acct is None else self._summary(acct)

    def positions(self, address: str, dex: str = "") -> tuple[PositionView, ...]:
        """Every position slot of ``address``'s account on ``dex``, by asset (flat ones included)."""
        ex = self._ex
        acct = ex.ledger.accounts.get(dex_account(dex, address))
        if acct is None:
            return ()
        markets = ex.board.markets
        return tuple(self._position(p) for _, p in sorted(acct.positions.items()) if markets[p.asset].dex == dex)

    def position(self, address: str, asset: int) -> PositionView | None:
        """``address``'s position slot in ``asset`` (held by its account on the asset's dex)."""
        pos = self._ex.holdings.position(address, asset)
        return None if pos is None else self._position(pos)

    def perp_value(self, owner: str) -> int | None:
        """The sum of ``owner``'s perp account values over the first dex and every HIP-3 dex; None
        when it has no perp account at all."""
        ex = self._ex
        accounts, margin = ex.ledger.accounts, ex.margin
        value, found = 0, False
        for dex in ex.board.dexes:
            acct = accounts.get(dex_account(dex, owner))
            if acct is not None:
                value += margin.account_value(acct)
                found = True
        return value if found else None

    def spot_balance(self, user: str) -> int:
        """``user``'s spot USDC (what ``usdClassTransfer`` moved there), micro-USDC."""
        wallet = self._ex.ledger.accounts.get(spot_wallet(user))
        return 0 if wallet is None else wallet.raw_usd

    def send_asset_error(self, user: str, src: str, dst: str, src_dex: str, dst_dex: str, usd: int) -> str | None:
        """Why ``user`` may not ``sendAsset`` ``usd`` from ``src``'s ``src_dex`` to ``dst``'s ``dst_dex``."""
        return self._ex.accounts.send_asset_error(user, src, dst, src_dex, dst_dex, usd)

    def adl_queue(self, asset: int, is_long: bool) -> tuple[str, ...]:
        """Holders of ``asset`` on one side, in the order ADL would reduce them."""
        return tuple(self._ex.liquidations.adl_queue(asset, is_long))

    def adl_rank(self, user: str, asset: int) -> tuple[int, int] | None:
        """(0-based place in its side's ADL queue, queue length), or None without a position.  The
        answer is a place in the whole queue, so the work is the side's holders."""
        return self._ex.liquidations.adl_rank(user, asset)

    def traded_notional(self, address: str) -> int:
        """Cumulative traded notional of ``address`` (both sides of its fills), micro-USDC."""
        return self._ex.volume.traded.get(address, 0)

    # -- orders -------------------------------------------------------------------------------------
    def open_orders(self, user: str) -> tuple[OrderView, ...]:
        """Every live order of ``user`` (resting, pending or waiting), by oid."""
        ex = self._ex
        acct = ex.ledger.accounts.get(user)
        if acct is None:
            return ()
        orders = ex.orders.orders
        return tuple(_order_view(orders[oid]) for oid in sorted(acct.orders))

    def open_order_count(self, user: str) -> int:
        """How many live orders ``user`` has (``len(open_orders(user))`` without building them)."""
        acct = self._ex.ledger.accounts.get(user)
        return 0 if acct is None else len(acct.orders)

    def order(self, oid: int) -> OrderView | None:
        """The live order ``oid``, or None when it is done (or never was)."""
        order = self._ex.orders.orders.get(oid)
        return None if order is None else _order_view(order)

    def order_id_by_cloid(self, user: str, cloid: str) -> int | None:
        """The oid of ``user``'s live order with client id ``cloid``, or None."""
        acct = self._ex.ledger.accounts.get(user)
        return None if acct is None else acct.cloids.get(cloid)

    # -- fees, API wallets, builders --------------------------------------------------------------------
    def fee_rates(self, user: str, ts: int, asset: int | None = None) -> tuple[int, int]:
        """(taker, maker) fee rates, 1e-8 of notional, that ``user`` pays on the UTC day of ``ts``."""
        return self._ex.volume.fee_rates(user, ts, asset)

    def daily_volume(self, user: str, ts: int) -> tuple[tuple[int, int, int, int], ...]:
        """``(day, cross, add, exchange)`` for the fee window ending on the UTC day of ``ts``."""
        return tuple(self._ex.volume.daily_volume(user, ts))

    def agent_master(self, agent: str, ts: int) -> str | None:
        """The account an API wallet acts for at ``ts``, or None (unknown or expired)."""
        return self._ex.access.agent_master(agent, ts)

    def agents_of(self, master: str) -> tuple[tuple[str, str, int], ...]:
        """(agent, name, valid_until) of every API wallet of ``master``, by agent address."""
        return tuple(self._ex.access.agents_of(master))

    def agent_approval_error(self, user: str, agent: str, name: str, valid_until: int, ts: int) -> str | None:
        return self._ex.access.agent_approval_error(user, agent, name, valid_until, ts)

    def max_builder_fee(self, user: str, builder: str) -> int:
        """The highest builder fee ``user`` approved for ``builder``, tenths of a basis point."""
        return self._ex.access.max_builder_fee(user, builder)

    # -- views -----------------------------------------------------------------------------------------
    def _position(self, p: Position) -> PositionView:
        m = self._ex.margin
        return PositionView(p.asset, p.szi, p.entry_ntl, p.leverage, p.is_cross, p.iso_raw, m.position_value(p),
                            m.unrealized_pnl(p), m.isolated_value(p), m.initial_margin(p), m.maintenance_margin(p),
                            p.cum_funding, p.realized_pnl)

    def _summary(self, acct: Account) -> MarginSummary:
        m = self._ex.margin
        iso = [p for p in acct.positions.values() if not p.is_cross and (p.szi or p.iso_raw)]
        cross_value = m.cross_value(acct)
        iso_value = sum(m.isolated_value(p) for p in iso)
        return MarginSummary(cross_value + iso_value, cross_value, m.cross_notional(acct), m.cross_initial_margin(acct),
                             m.cross_maintenance_margin(acct), m.withdrawable(acct), m.available_to_trade(acct),
                             acct.raw_usd, sum(p.iso_raw for p in iso), sum(m.position_value(p) for p in iso),
                             iso_value)


def _order_view(o: Order) -> OrderView:
    return OrderView(o.oid, o.user, o.asset, o.is_buy, o.px, o.sz, o.orig_sz, o.ts, o.tif, o.reduce_only, o.cloid,
                     o.trigger_px, o.is_market, o.tpsl, o.parent, tuple(o.children), o.position_tpsl, o.status,
                     o.triggered, o.builder, o.builder_fee)


def _record_ts(r: FundingRecord) -> int:
    return r.ts
