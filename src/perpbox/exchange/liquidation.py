"""Liquidations: the sweep after every tick and oracle push, the backstop vault and insurance fund
taking positions over, auto-deleveraging, and the vaults unwinding what they took.

Liquidation (``LiquidationParams``), per account (cross) or isolated position, most underwater
first (equity / maintenance ascending, then address):

1. cancel the account's orders in that margin mode (``liquidatedCanceled``);
2. Hyperliquid: IOC reduce-only market orders to the book, the whole position or a 20% slice when
   above $100k (a second liquidation within the 30 s cooldown is whole), each limited at the
   position's bankruptcy price so the book can never take the account below zero; Binance: the
   whole position at the bankruptcy price, then a clearance fee to the insurance fund;
3. if still below maintenance — and, Hyperliquid, below 2/3 of it — the backstop vault takes the
   positions over at the mark with all the remaining equity (Hyperliquid), or the insurance fund
   at the bankruptcy price (Binance), when it can carry them (its value stays ≥ its own
   maintenance margin);
4. when nobody can take a negative-equity account over, ADL: opposite positions ranked by
   profit × leverage (``risk.liquidation.adl_score``) are reduced against it at the mark, and its
   deficit is charged to them at most as at its bankruptcy price, each counterparty capped at what
   it can pay without going below zero, the rest carried down the queue (``_adl``).  The account
   ends at exactly zero, or with a reported shortfall when the counterparties together cannot
   carry the deficit; the deficit is shared by those who profit most (a user with no position
   never bears any), and ADL never makes a counterparty insolvent.
"""

from __future__ import annotations

from fractions import Fraction
from typing import ClassVar

from perpbox.core.numbers import RATE_SCALE
from perpbox.exchange import events as V
from perpbox.exchange.controls import MarketControls
from perpbox.exchange.holdings import Holdings
from perpbox.exchange.markets import MarketBoard, position_slot
from perpbox.exchange.ports import LiquidationDesk
from perpbox.exchange.prices import MarketPricing
from perpbox.exchange.sink import Applier, EventSink
from perpbox.ledger.ledger import Account, Ledger, Position, wallet_dex, wallet_owner
from perpbox.market.liquidation import LiquidationParams, LiquidationStyle
from perpbox.risk.liquidation import adl_charges, adl_order, allocate, bankruptcy_limit
from perpbox.risk.margin import MarginView
from perpbox.risk.sweep import PositionIndex

LIQUIDATED = "liquidatedCanceled"
MAIN_BACKSTOP = "0x000000000000000000000000000000000000b057"  # the main dex's liquidator vault
MAIN_INSURANCE = "0x0000000000000000000000000000000000001f00"


def backstop_address(dex_index: int) -> str:
    """Hyperliquid: a HIP-3 dex's backstop liquidator is ``0x400…00 + dex index``."""
    return MAIN_BACKSTOP if dex_index == 0 else f"0x4{dex_index:039x}"


def insurance_address(dex_index: int) -> str:
    return MAIN_INSURANCE if dex_index == 0 else f"0x5{dex_index:039x}"


class Liquidations:
    """Owns the liquidation record (partial-liquidation cooldowns, the log of ``Liquidated``
    events) and the sweep's position index; sends its orders through the order desk."""

    STATE: ClassVar[tuple[str, ...]] = ("partial_ts", "log")

    def __init__(self, sink: EventSink, ledger: Ledger, margin: MarginView, board: MarketBoard,
                 pricing: MarketPricing, holdings: Holdings, controls: MarketControls, desk: LiquidationDesk) -> None:
        self.sink = sink
        self.ledger = ledger
        self.margin = margin
        self.board = board
        self.pricing = pricing
        self.holdings = holdings
        self.controls = controls
        self.desk = desk
        self.partial_ts: dict[tuple[str, int], int] = {}  # (account, asset) -> last partial liquidation
        self.log: list[V.Liquidated] = []
        self.position_index: PositionIndex | None = None  # derived from the ledger; None: rebuild

    def appliers(self) -> dict[type, Applier]:
        return {V.Liquidated: self._on_liquidated, V.PositionTransferred: self._on_position_transferred}

    def invalidate_index(self) -> None:
        """A market's margin table changed: the index's maintenance lines are stale."""
        self.position_index = None

    # -- reads -------------------------------------------------------------------------------------
    def backstop_of(self, asset: int) -> str:
        return backstop_address(self.board.dex_number(asset))

    def insurance_of(self, asset: int) -> str:
        return insurance_address(self.board.dex_number(asset))

    def adl_queue(self, asset: int, is_long: bool) -> list[str]:
        """Holders of ``asset`` on one side, in the order ADL would reduce them."""
        entries = []
        for user in self.holdings.holders_of(asset):
            acct = self.ledger.accounts[user]
            pos = acct.positions[asset]
            if (pos.szi > 0) != is_long:
                continue
            value = self.margin.cross_value(acct) if pos.is_cross else self.margin.isolated_value(pos)
            entries.append((user, pos.szi, pos.entry_ntl, value))
        return adl_order(self.pricing.mark(asset), entries)

    def adl_rank(self, user: str, asset: int) -> tuple[int, int] | None:
        """(0-based place in its side's ADL queue, queue length), or None without a position."""
        key = self.board.margin_key(user, asset) if self.board.has(asset) else user
        acct = self.ledger.accounts.get(key)
        pos = acct.positions.get(asset) if acct is not None else None
        if pos is None or pos.szi == 0:
            return None
        queue = self.adl_queue(asset, pos.szi > 0)
        return queue.index(key), len(queue)

    # -- the sweep ---------------------------------------------------------------------------------
    def _scope(self, acct: Account, iso_asset: int) -> list[Position]:
        if iso_asset < 0:
            return [p for _, p in sorted(acct.positions.items()) if p.szi and p.is_cross]
        p = acct.positions.get(iso_asset)
        return [p] if p is not None and p.szi else []

    def _scope_value_mm(self, acct: Account, iso_asset: int) -> tuple[int, int]:
        m = self.margin
        if iso_asset < 0:
            return m.cross_value(acct), m.cross_maintenance_margin(acct)
        p = acct.positions[iso_asset]
        return m.isolated_value(p), (m.maintenance_margin(p) if p.szi else 0)

    def _liquidatable(self) -> list[tuple[Fraction, str, int]]:
        """Every (equity/maintenance, user, scope) below maintenance, most underwater first;
        scope -1 is the cross account, else an isolated position's asset.

        ``risk.sweep.PositionIndex`` screens every position in numpy (a safe pre-filter: it never
        omits an account this exact check flags) and only its candidates are checked here, in
        integers.  The index re-reads just the accounts the ledger touched since the last sweep
        and is rebuilt whole when a market's margin table changes."""
        idx = self.position_index
        touched = self.ledger.touched
        if idx is None:
            idx = self.position_index = PositionIndex(self.board.spec_table())
            idx.rebuild(self.ledger)
        elif touched:
            idx.sync(self.ledger, sorted(touched))
        touched.clear()
        out = []
        m = self.margin
        for user in idx.candidates(self.pricing.margin_prices()):
            acct = self.ledger.accounts[user]
            cross_mm = m.cross_maintenance_margin(acct)
            if cross_mm:
                value = m.cross_value(acct)
                if value < cross_mm:
                    out.append((Fraction(value, cross_mm), user, -1))
            for asset, p in acct.positions.items():
                if p.szi and not p.is_cross:
                    mm = m.maintenance_margin(p)
                    value = m.isolated_value(p)
                    if value < mm:
                        out.append((Fraction(value, mm), user, asset))
        out.sort()
        return out

    def sweep(self, ts: int) -> None:
        budget: dict[int, int] = {}
        for _, user, scope in self._liquidatable():
            acct = self.ledger.accounts[user]
            value, mm = self._scope_value_mm(acct, scope)
            if mm and value < mm:  # re-checked: an earlier ADL this tick may have moved it
                self._liquidate(ts, acct, scope, budget)

    def _cancel_scope_orders(self, ts: int, acct: Account, scope: int) -> None:
        """The liquidated scope's orders: the owner's orders in the isolated market, or in the cross
        markets of ``acct``'s dex (the orders live on the owner's account, positions on ``acct``)."""
        dex = wallet_dex(acct.address)
        owner = self.ledger.accounts.get(wallet_owner(acct.address)) if dex else acct
        if owner is None:
            return
        for oid in sorted(owner.orders):
            order = self.desk.order(oid)
            if order is None or self.board.rules_of(order.asset).dex != dex:
                continue
            if scope >= 0:
                hit = order.asset == scope
            else:
                slot = acct.positions.get(order.asset)
                hit = slot.is_cross if slot is not None else not self.board.market(order.asset).only_isolated
            if hit:
                self.desk.close(ts, order, LIQUIDATED)

    def _liquidate(self, ts: int, acct: Account, scope: int, budget: dict[int, int]) -> None:
        params = self._liq_params(acct, scope)
        binance = params.style is LiquidationStyle.BINANCE
        self._cancel_scope_orders(ts, acct, scope)
        value, mm = self._scope_value_mm(acct, scope)
        if value >= mm:
            return
        if binance:  # the fee comes first; what equity it leaves decides whether the book gets a try
            self._clearance_fee(ts, acct, scope, value, params.clearance_fee)
            value, mm = self._scope_value_mm(acct, scope)
        if value > 0:  # a bankrupt account never goes to the book: that would crystallise its deficit
            self._book_liquidation(ts, acct, scope, budget, binance)
            value, mm = self._scope_value_mm(acct, scope)
        if not mm:
            if value < 0:  # fee rounding on the way out: the backstop (or fund) covers the dust
                self._cover_deficit(ts, acct, scope, -value, binance)
            return
        if value >= mm:
            return  # back above maintenance: the trader keeps what is left
        if not binance and params.backstop_den * value >= params.backstop_num * mm:
            return  # above 2/3 of maintenance: the book gets another try next tick
        if self._take_over(ts, acct, scope, binance):
            return
        if value < 0:
            self._adl(ts, acct, scope, value, mm)

    def _liq_params(self, acct: Account, scope: int) -> LiquidationParams:
        """The policy of the isolated position's market, or for a cross account that of its
        largest cross position's market (a dex's markets share one policy in practice)."""
        if scope >= 0:
            return self.board.market(scope).liquidation
        biggest = max(self._scope(acct, -1), key=lambda p: (self.margin.position_value(p), -p.asset))
        return self.board.market(biggest.asset).liquidation

    def _clearance_fee(self, ts: int, acct: Account, scope: int, value: int, rate: int) -> None:
        """Binance: the clearance fee on the liquidated notional goes to the insurance fund, out
        of what equity is left (never taking the account below zero)."""
        ntl = sum(self.margin.position_value(p) for p in self._scope(acct, scope))
        fee = min(max(value, 0), ntl * rate // RATE_SCALE)
        if fee <= 0:
            return
        if scope >= 0:  # out of the isolated bucket, through the account's cross cash
            self.sink.emit(V.IsolatedMarginMoved(ts=ts, user=wallet_owner(acct.address), asset=scope, usd=-fee))
        asset0 = self._scope(acct, scope)[0].asset
        fund = self.board.margin_key(self.insurance_of(asset0), asset0)
        self.sink.emit(V.Transferred(ts=ts, src=acct.address, dst=fund, usd=fee))

    def _book_liquidation(self, ts: int, acct: Account, scope: int, budget: dict[int, int], binance: bool) -> None:
        positions = self._scope(acct, scope)
        value, mm = self._scope_value_mm(acct, scope)
        self._record(ts, acct.address, scope, "market", "", value, mm, positions)
        shares = allocate(value, [self.margin.maintenance_margin(p) for p in positions])
        for p, share in zip(positions, shares, strict=True):
            lp = self.board.market(p.asset).liquidation
            mark = self.pricing.mark(p.asset)
            size = abs(p.szi)
            key = (acct.address, p.asset)
            if (not binance and size * mark > lp.partial_above_ntl
                    and ts - self.partial_ts.get(key, -lp.cooldown_ms) >= lp.cooldown_ms):
                size = max(1, size * lp.partial_bps // 10_000)
                self.sink.emit(V.Liquidated(ts=ts, user=acct.address, asset=p.asset, method="partial", liquidator="",
                                        account_value=value, maintenance_margin=mm, notional=size * mark))
            if lp.max_ntl_per_tick:
                used = budget.get(p.asset, 0)
                if used >= lp.max_ntl_per_tick:
                    continue  # cascade control: this market's budget is spent; next tick
                budget[p.asset] = used + size * mark
            limit = bankruptcy_limit(mark, p.szi, max(share, 0), self.board.market(p.asset).fees.taker)
            self.desk.send_reducing_ioc(ts, acct.address, p.asset, p.szi < 0, limit, size, liquidation=True)

    def unwind_vaults(self, ts: int) -> None:
        """Each market whose policy says so: the backstop vault and the insurance fund reduce what
        they hold there by up to ``unwind_ntl_per_tick`` of notional at the mark, with an IOC no
        further than ``unwind_slippage_bps`` from the mark (rounded towards the mark: the vault
        never accepts more slippage than its policy).  What the book cannot take waits for the
        next tick; a market that only takes post-only orders, or is halted, is left alone."""
        for asset in self.board.assets():
            lp = self.board.market(asset).liquidation
            mark = self.pricing.mark(asset)
            if not lp.unwind_ntl_per_tick or mark <= 0 or self.controls.status(asset) not in ("active", "reduceOnly"):
                continue
            for vault in sorted({self.board.margin_key(self.backstop_of(asset), asset),
                                 self.board.margin_key(self.insurance_of(asset), asset)}):
                acct = self.ledger.accounts.get(vault)
                pos = acct.positions.get(asset) if acct is not None else None
                if pos is None or not pos.szi:
                    continue
                size = min(abs(pos.szi), max(1, lp.unwind_ntl_per_tick // mark))
                selling = pos.szi > 0
                if selling:
                    limit = -(-mark * (10_000 - lp.unwind_slippage_bps) // 10_000)
                else:
                    limit = mark * (10_000 + lp.unwind_slippage_bps) // 10_000
                self.desk.send_reducing_ioc(ts, vault, asset, not selling, limit, size, liquidation=False)

    def _cover_deficit(self, ts: int, acct: Account, scope: int, deficit: int, binance: bool) -> None:
        """A closed scope left below zero (at most the rounding of its last fees): the backstop
        vault, or the insurance fund, pays it so that no flat account owes anything."""
        asset = scope if scope >= 0 else min(a for a, p in acct.positions.items() if p.is_cross)
        payer = self.board.margin_key(self.insurance_of(asset) if binance else self.backstop_of(asset), asset)
        if payer in self.ledger.accounts and payer != acct.address:
            self.sink.emit(V.Transferred(ts=ts, src=payer, dst=acct.address, usd=deficit))

    def _take_over(self, ts: int, acct: Account, scope: int, binance: bool) -> bool:
        positions = self._scope(acct, scope)
        if not positions:
            return True
        asset0 = positions[0].asset
        taker = self.board.margin_key(self.insurance_of(asset0) if binance else self.backstop_of(asset0), asset0)
        if taker == acct.address or taker not in self.ledger.accounts:
            return False
        vault = self.ledger.accounts[taker]
        value, mm = self._scope_value_mm(acct, scope)
        # can the vault carry it: its cross value + the equity it receives >= its maintenance after
        m = self.margin
        after_mm = 0
        for asset, vp in vault.positions.items():
            if vp.szi and vp.is_cross and all(p.asset != asset for p in positions):
                after_mm += m.maintenance_margin(vp)
        for p in positions:
            held = vault.positions.get(p.asset)
            new = p.szi + (held.szi if held is not None and held.is_cross else 0)
            table = self.board.market(p.asset).margin_table
            after_mm += table.maintenance_margin(abs(new) * self.pricing.mark(p.asset))
        if m.cross_value(vault) + value < after_mm:
            return False
        self._record(ts, acct.address, scope, "insurance" if binance else "backstop", taker, value, mm, positions)
        shares = allocate(value, [m.maintenance_margin(p) for p in positions])
        for p, share in zip(positions, shares, strict=True):
            asset = p.asset
            self.sink.emit(V.PositionTransferred(ts=ts, asset=asset, src=acct.address, dst=taker, sz=p.szi,
                                             px=self.pricing.mark(asset), usd=share))
            self.desk.after_fills(ts, asset, [taker])
        return True

    def _adl(self, ts: int, acct: Account, scope: int, value: int, mm: int) -> None:
        """Auto-deleverage a bankrupt scope (``value`` < 0) that nobody could take over.

        Every lot of the scope's positions is closed at the mark against opposite-side holders,
        in ``adl_queue`` order (profit × leverage, the bankrupt account itself excluded), each
        reduced by up to its whole position; a transfer at the mark leaves both sides' equity
        unchanged.  The deficit ``−value`` is then charged to those counterparties as cash
        (``PositionTransferred.usd`` ≤ 0), so that what each pays per lot is the difference
        between the mark and the price it effectively closed at:

        * nominally at the bankrupt position's bankruptcy price (dYdX v4, Binance): the deficit
          split over the positions by maintenance margin (``allocate``), each position's share
          over its counterparties by lots (floored cumulative shares, exact);
        * capped at what the counterparty can pay without going below zero — like dYdX v4, which
          deleverages only "at a price that does not make the offsetting subaccount insolvent":
          a cross counterparty at most its cross account value (shared by all its fills here); an
          isolated one at most the equity the closed lots release from its position (the whole
          position's value when all of it closes, else that share, floored), so its position
          keeps a non-negative value and its cross account gains release − payment ≥ 0;
        * what a capped counterparty cannot pay is carried to the next one down the queue, then
          to the next position's counterparties; what is still left after the last one is
          offered again, in the same order, to whatever room is left (``adl_charges``).

        A holder with nothing at stake (no position) never pays, and no counterparty is pushed
        below zero.  The scope ends flat at exactly zero if the counterparties could carry the
        whole deficit.  Otherwise the rest — the shortfall — stays where it is, as the bankrupt
        account's negative cross cash (for an isolated scope, taken out of its owner's cross
        cash as the position's bucket is released); nothing is created or destroyed, and it is
        reported by a ``Liquidated`` event with method ``adlShortfall`` and ``account_value``
        = −shortfall, after the transfers."""
        positions = self._scope(acct, scope)
        self._record(ts, acct.address, scope, "adl", "", value, mm, positions)
        shares = allocate(value, [self.margin.maintenance_margin(p) for p in positions])  # each ≤ 0
        fills: list[tuple[Position, str, int]] = []  # (bankrupt position, counterparty, lots)
        nominal: list[int] = []
        pool: list[int] = []
        room: list[int] = []
        cross_pool: dict[str, int] = {}
        for p, share in zip(positions, shares, strict=True):
            size = abs(p.szi)
            done = 0
            for cp in self.adl_queue(p.asset, p.szi < 0):
                if done == size:
                    break
                if cp == acct.address:
                    continue
                q = min(size - done, abs(self.ledger.accounts[cp].positions[p.asset].szi))
                before = share * done // size
                done += q
                nominal.append(before - share * done // size)  # ≥ 0: this fill's share of the deficit
                pool.append(self._adl_pool(cp, p.asset, q, cross_pool, room))
                fills.append((p, cp, q))
        pays, shortfall = adl_charges(nominal, pool, room)
        for (p, cp, q), pay in zip(fills, pays, strict=True):
            self.sink.emit(V.PositionTransferred(ts=ts, asset=p.asset, src=acct.address, dst=cp,
                                             sz=q if p.szi > 0 else -q, px=self.pricing.mark(p.asset), usd=-pay))
        if shortfall:
            self.sink.emit(V.Liquidated(ts=ts, user=acct.address, asset=scope, method="adlShortfall", liquidator="",
                                    account_value=-shortfall, maintenance_margin=0, notional=0))
        for p in positions:  # reduce-only orders of the reduced counterparties may no longer fit
            self.desk.after_fills(ts, p.asset, sorted({cp for fp, cp, _ in fills if fp is p}))

    def _adl_pool(self, cp: str, asset: int, q: int, cross_pool: dict[str, int], room: list[int]) -> int:
        """The index in ``room`` of what ADL counterparty ``cp`` can pay for ``q`` lots of its
        ``asset`` position: one pool per cross account (its cross value), or, for an isolated
        position, the equity the ledger releases when ``q`` of its lots close at the mark."""
        acct = self.ledger.accounts[cp]
        pos = acct.positions[asset]
        if pos.is_cross:
            k = cross_pool.get(cp)
            if k is None:
                k = cross_pool[cp] = len(room)
                room.append(max(self.margin.cross_value(acct), 0))
            return k
        equity = self.margin.isolated_value(pos)
        release = equity if q == abs(pos.szi) else equity * q // abs(pos.szi)  # Ledger.apply_fill's rule
        room.append(max(release, 0))
        return len(room) - 1

    def _record(self, ts: int, user: str, scope: int, method: str, liquidator: str, value: int, mm: int,
                positions: list[Position]) -> None:
        ntl = sum(self.margin.position_value(p) for p in positions)
        self.sink.emit(V.Liquidated(ts=ts, user=user, asset=scope, method=method, liquidator=liquidator,
                                account_value=value, maintenance_margin=mm, notional=ntl))

    # -- appliers ----------------------------------------------------------------------------------
    def _on_liquidated(self, ev: V.Liquidated) -> None:
        if ev.method == "partial":
            self.partial_ts[(ev.user, ev.asset)] = ev.ts
        self.log.append(ev)

    def _on_position_transferred(self, ev: V.PositionTransferred) -> None:
        ledger = self.ledger
        src = ledger.accounts[ev.src]
        dst = ledger.account(ev.dst)
        spos = src.positions[ev.asset]
        dpos = dst.positions.get(ev.asset) or position_slot(ledger, self.board.rules_of(ev.asset), dst)
        s_old, d_old = spos.szi, dpos.szi
        ledger.transfer_position(src, spos, dst, dpos, ev.sz, ev.px, ev.usd)
        self.holdings.track(ev.asset, ev.src, s_old, spos.szi)
        self.holdings.track(ev.asset, ev.dst, d_old, dpos.szi)

