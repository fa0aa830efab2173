"""Orders and matching: placing, validating, matching, resting, cancelling and modifying orders,
TP/SL groups and reduce-only upkeep — the order path every order and fill takes.

Matching follows Hyperliquid: price-time priority; self-trade prevention cancels the *resting*
order (``selfTradeCanceled``, no fee, no trade) and the taker keeps matching; the resting side's
margin is re-checked at each match (``marginCanceled``); reduce-only orders never increase a
position (a taker is capped to the position; resting ones are resized or cancelled when the
position shrinks, the newest kept first, as the venue auto-cancels older ones).

Per-order answers are ``exchange.results`` values (``Resting``, ``Filled``, ``Waiting``,
``Canceled``, ``OrderError``), batched in ``Statuses``.

The three hot events (placed, fill, closed) are emitted the specialised way (``exchange.sink``):
the applier's own function on the values at hand, then ``record``.  Every dependency here is a
concrete compiled class (``exchange.ports`` says why); the per-market tables ``rules``, ``books``
and ``gates`` are their owners', held read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Final

import msgspec

from perpbox.book.order import Order, Tif
from perpbox.core import errors as E
from perpbox.core.numbers import ceil_div, fee_up, format_units, iabs, mul
from perpbox.exchange import commands as C
from perpbox.exchange import events as V
from perpbox.exchange.access import MAX_PERP_BUILDER_FEE, AccountAccess
from perpbox.exchange.controls import MarketControls, Refusal
from perpbox.exchange.holdings import Holdings
from perpbox.exchange.markets import MarketBoard, position_slot
from perpbox.exchange.prices import MarketPricing
from perpbox.exchange.results import (
    CANCELED,
    OK,
    WAITING_FOR_FILL,
    WAITING_FOR_TRIGGER,
    Error,
    Filled,
    Handler,
    OrderError,
    OrderOutcome,
    Response,
    Resting,
    Statuses,
)
from perpbox.exchange.sink import Applier, EventSink
from perpbox.exchange.triggers import Triggers, trigger_hit
from perpbox.exchange.volume import TradeVolume
from perpbox.ledger.ledger import Account, Ledger, wallet_owner
from perpbox.market.fees import DAY_MS
from perpbox.market.rules import MarketRules
from perpbox.market.spec import MarketSpec
from perpbox.risk.margin import MarginView

TIFS: Final = frozenset(t.value for t in Tif)
# The order path's event types, bound once: the compiled engine reads a Final name from a C static,
# where ``V.OrderPlaced`` costs two dictionary look-ups (the module, then its attribute) per event.
OrderPlaced: Final = V.OrderPlaced
OrderRested: Final = V.OrderRested
OrderClosed: Final = V.OrderClosed
Fill: Final = V.Fill
OPEN_ORDERS_FREE: Final = 1000  # open orders per user before volume counts (reference §6.7)
VOLUME_PER_EXTRA_ORDER: Final = 5_000_000 * 1_000_000  # one more open order per $5M traded (micro-USDC)
MAX_OPEN_ORDERS: Final = 5000


class OrderFlow:
    """Owns the live orders (resting, pending or waiting) and the order and trade ids; the
    trigger orders' arming and firing are its ``triggers`` component's."""

    STATE: ClassVar[tuple[str, ...]] = ("orders", "next_oid", "next_tid")

    def __init__(self, sink: EventSink, ledger: Ledger, margin: MarginView, board: MarketBoard,
                 pricing: MarketPricing, holdings: Holdings, controls: MarketControls, volume: TradeVolume,
                 access: AccountAccess) -> None:
        self.sink = sink
        self.ledger = ledger
        self.margin = margin
        self.board = board
        self.pricing = pricing
        self.holdings = holdings
        self.controls = controls
        self.volume = volume
        self.access = access
        # the per-market tables every order reads, held read-only: a dict look-up where a method call
        # per order and fill would add up (their owners never rebind them)
        self.rules = board.rules
        self.books = board.books
        self.gates = controls.gates
        self.triggers = Triggers(sink, board, pricing, self)
        self.orders: dict[int, Order] = {}  # every live order: resting, pending or waiting
        self.next_oid = 1
        self.next_tid = 1
        self._oi_stopped = False  # set by matching when an open-interest cap stops the taker

    def handlers(self) -> dict[type, Handler]:
        return {C.PlaceOrders: self._cmd_place_orders, C.Cancel: self._cmd_cancel,
                C.CancelByCloid: self._cmd_cancel_by_cloid, C.CancelAll: self._cmd_cancel_all,
                C.Modify: self._cmd_modify, C.BatchModify: self._cmd_batch_modify}

    def appliers(self) -> dict[type, Applier]:
        return {V.OrderPlaced: self._on_order_placed, V.OrderRejected: self._on_order_rejected,
                V.Fill: self._on_fill, V.OrderRested: self._on_order_rested,
                V.OrderResized: self._on_order_resized, V.OrderClosed: self._on_order_closed}

    # -- what other components ask of the order desk (``exchange.ports``) -------------------------
    def order(self, oid: int) -> Order | None:
        return self.orders.get(oid)

    def close_orders_of(self, ts: int, user: str, status: str) -> None:
        acct = self.ledger.accounts.get(user)
        for oid in sorted(acct.orders) if acct is not None else ():
            order = self.orders.get(oid)  # None: a child already closed with its parent
            if order is not None:
                self.close(ts, order, status)

    def close_market_orders(self, ts: int, asset: int, status: str) -> None:
        for oid in sorted(o for o, x in self.orders.items() if x.asset == asset):
            order = self.orders.get(oid)  # None: a child already closed with its parent
            if order is not None:
                self.close(ts, order, status)

    def send_reducing_ioc(self, ts: int, user: str, asset: int, is_buy: bool, px: int, sz: int,
                          liquidation: bool) -> None:
        """An order the exchange itself sends for ``user`` (a ledger account: the order is its
        owner's): IOC, reduce-only, no margin needed."""
        oid = self.next_oid
        self.sink.emit(V.OrderPlaced(ts=ts, oid=oid, user=wallet_owner(user), asset=asset, is_buy=is_buy, px=px,
                                     sz=sz, tif="Ioc", reduce_only=True, liquidation=liquidation))
        self.execute(ts, self.orders[oid])

    # -- commands ----------------------------------------------------------------------------------
    def _cmd_place_orders(self, cmd: C.PlaceOrders) -> Response:
        ts, user, orders, grouping = _fields(cmd)
        if not orders:
            return Error(E.ORDERS_EMPTY)
        if grouping == "na":
            return Statuses(tuple([self._place(ts, user, req) for req in orders]))
        if grouping == "normalTpsl":
            return self._place_normal_tpsl(cmd)
        if grouping == "positionTpsl":
            if any(not r.tpsl or not r.reduce_only for r in orders):
                return Error(E.TRIGGER_NOT_REDUCE_ONLY)
            return Statuses(tuple([self._place(ts, user, req, position_tpsl=True) for req in orders]))
        return Error(f"Invalid grouping: {grouping}")  # perpbox wording

    def _place_normal_tpsl(self, cmd: C.PlaceOrders) -> Response:
        parent, children = cmd.orders[0], cmd.orders[1:]
        if parent.tpsl or not children or any(
            not c.tpsl or not c.reduce_only or c.asset != parent.asset or c.is_buy == parent.is_buy for c in children
        ):
            return Error(E.TRIGGER_NOT_REDUCE_ONLY)
        first = self._place(cmd.ts, cmd.user, parent)
        statuses: list[OrderOutcome] = [first]
        if not isinstance(first, (Resting, Filled)):
            return Statuses(tuple(statuses + [first] * len(children)))
        parent_oid = first.oid
        statuses += [self._place(cmd.ts, cmd.user, req, parent=parent_oid) for req in children]
        if parent_oid not in self.orders:  # the parent filled at once: its children are live now
            self.enforce_reduce_only(cmd.ts, self.ledger.accounts[cmd.user], parent.asset)
        return Statuses(tuple(statuses))

    def _validate(self, user: str, fields: C.OrderFields, position_tpsl: bool, parent: int,
                  replacing: int = 0) -> Refusal | None:
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
        bad = self.controls.control_error(a, px, tif, reduce_only)
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
            mark = self.pricing.mark(a)
            if mark and not parent and trigger_hit(is_buy, tpsl, trigger_px, mark):
                return "badTriggerPxRejected", E.order_error(E.BAD_TRIGGER_PX, a)
        if not reduce_only and px * sz < rules.min_notional:
            return "minTradeNtlRejected", E.order_error(E.MIN_TRADE_NTL, a)
        if reduce_only and not parent:
            macct = acct if not rules.dex else self.holdings.margin_acct(user, a)
            pos = None if macct is None else macct.positions.get(a)
            if pos is None or pos.szi == 0 or (pos.szi > 0) == is_buy:
                return "reduceOnlyRejected", E.order_error(E.REDUCE_ONLY, a)
        return None

    def _open_order_limit_error(self, acct: Account, reduce_only_or_trigger: bool,
                                asset: int) -> Refusal | None:
        """Hyperliquid's open-order limit (reference §6.7): 1,000 + 1 per $5M of the user's volume, at
        most 5,000; from 1,000 open orders on, new reduce-only and trigger orders are refused."""
        if reduce_only_or_trigger:
            return "rejected", E.order_error(E.TOO_MANY_OPEN_ORDERS, asset)
        limit = min(OPEN_ORDERS_FREE + self.volume.traded_by(acct.address) // VOLUME_PER_EXTRA_ORDER, MAX_OPEN_ORDERS)
        if len(acct.orders) >= limit:
            return "rejected", E.order_error(E.TOO_MANY_OPEN_ORDERS, asset)
        return None

    def margin_check(self, user: str, rules: MarketRules, is_buy: bool, px: int, sz: int) -> Refusal | None:
        asset = rules.asset
        acct = self.ledger.accounts.get(user if not rules.dex else self.board.margin_key(user, asset))
        if acct is None:  # decisions never create accounts (only appliers change state)
            return "perpMarginRejected", E.order_error(E.PERP_MARGIN, asset)
        pos = acct.positions.get(asset)
        lev = pos.leverage if pos is not None else rules.default_leverage
        if not self.gates[asset].session_open:
            lev = min(lev, self.controls.leverage_cap(asset))
        err = self.margin.order_margin_error(acct, pos, rules, is_buy, px, sz, lev)
        if err is None:
            return None
        if err == "max_position":
            return "perpMaxPositionRejected", E.order_error(E.PERP_MAX_POSITION, asset)
        return "perpMarginRejected", E.order_error(E.PERP_MARGIN, asset)

    def _reject(self, ts: int, user: str, req: C.OrderRequest, status: str, error: str) -> OrderOutcome:
        self.sink.emit(V.OrderRejected(ts=ts, oid=self.next_oid, user=user, asset=req.asset, is_buy=req.is_buy,
                                       px=req.px, sz=req.sz, tif=req.tif, reduce_only=req.reduce_only,
                                       cloid=req.cloid, status=status, error=error))
        return OrderError(error)

    def _place(self, ts: int, user: str, req: C.OrderRequest, position_tpsl: bool = False,
               parent: int = 0) -> OrderOutcome:
        fields = _request_fields(req)
        bad = self._validate(user, fields, position_tpsl, parent)
        if bad is not None:
            return self._reject(ts, user, req, *bad)
        asset, is_buy, px, sz, tif, reduce_only, cloid, trigger_px, is_market, tpsl, builder, builder_fee = fields
        oid = self.next_oid
        # OrderPlaced is built positionally (see events.Event): ts, oid, user, asset, is_buy, px, sz, tif, status,
        # reduce_only, cloid, builder, builder_fee, trigger_px, is_market, tpsl, parent, position_tpsl
        if tpsl:
            # a child waits for its parent to fill; if the parent already filled it is armed now
            status = "waitingForFill" if parent in self.orders else "waitingForTrigger"
            self.sink.emit(OrderPlaced(ts, oid, user, asset, is_buy, px, sz, tif, status, reduce_only, cloid, builder,
                                   builder_fee, trigger_px, is_market, tpsl, parent, position_tpsl))
            return WAITING_FOR_FILL if status == "waitingForFill" else WAITING_FOR_TRIGGER
        book = self.books[asset]
        if is_buy:
            best = book.best_ask()
            crosses = best is not None and best <= px
        else:
            best = book.best_bid()
            crosses = best is not None and best >= px
        if tif == "Alo" and crosses:
            spec = self.board.market(asset)  # only this refusal needs it: the text shows the bbo
            bbo = f"{_fmt_px(spec, book.best_bid())}@{_fmt_px(spec, book.best_ask())}"
            error = E.order_error(E.BAD_ALO_PX.format(bbo=bbo), asset)
            return self._reject(ts, user, req, "badAloPxRejected", error)
        if (tif == "Ioc" or tif == "FrontendMarket") and not crosses:
            if tif == "FrontendMarket":
                return self._reject(ts, user, req, "marketOrderNoLiquidityRejected",
                                    E.order_error(E.MARKET_NO_LIQUIDITY, asset))
            return self._reject(ts, user, req, "iocCancelRejected", E.order_error(E.IOC_CANCEL, asset))
        if reduce_only:  # cap to the position at placement (IOC and resting alike)
            sz = min(sz, iabs(self.ledger.accounts[self.board.margin_key(user, asset)].positions[asset].szi))
        else:
            bad = (self.margin_check(user, self.rules[asset], is_buy, px, sz)
                   or self.controls.oi_error(user, asset, is_buy))
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
            return self.execute(ts, order)
        if reduce_only:
            self.enforce_reduce_only(ts, self.ledger.accounts[user], asset)
        return Resting(oid, cloid)

    def execute(self, ts: int, order: Order) -> OrderOutcome:
        """Match a pending order, then rest or finish it; apply the follow-ups of any fills."""
        oid, user, asset = order.oid, order.user, order.asset
        self._oi_stopped = False
        filled, ntl, touched = self._match(ts, order)
        is_market = order.tif == "FrontendMarket"
        takes_only = is_market or order.tif == "Ioc"  # never rests
        if order.oid in self.orders:  # something remains
            if self._oi_stopped:
                self.close(ts, order, "openInterestCapCanceled", arm_children=filled > 0)
            elif filled == 0 and takes_only:
                self.close(ts, order, "marketOrderNoLiquidityRejected" if is_market else "iocCancelRejected")
            elif takes_only:
                self.close(ts, order, "canceled", arm_children=True)  # partially filled: TP/SL go live
            elif order.reduce_only and not self.reduce_capacity(order):
                self.close(ts, order, "reduceOnlyCanceled")
            else:
                self.sink.emit(OrderRested(ts, oid))
                if order.reduce_only:
                    touched[user] = None
        if touched:
            self.after_fills(ts, asset, touched)
        if filled == 0 and self._oi_stopped:
            return OrderError(E.order_error(E.OI_CAPPED, asset))
        if filled == 0 and takes_only:
            return OrderError(E.order_error(E.MARKET_NO_LIQUIDITY if is_market else E.IOC_CANCEL, asset))
        if oid in self.orders and self.orders[oid].status == "open":
            return Resting(oid, order.cloid)
        if filled:
            return Filled(oid, filled, ntl, order.cloid)
        return OrderError(E.order_error("Order was canceled.", asset))  # perpbox wording

    def reduce_capacity(self, order: Order) -> int:
        """How many lots ``order`` may still trade without increasing its owner's position."""
        acct = self.holdings.margin_acct(order.user, order.asset)
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
        taker_rate, makers = rules.takers[self.volume.fee_tier(user, day)[0]], rules.makers
        filled = ntl = 0
        touched: dict[str, None] = {}
        sink = self.sink
        capped = self.controls.is_capped(asset)
        while order.sz:
            level = book.best_level(not is_buy)
            if level is None or (level.px > limit if is_buy else level.px < limit):
                break
            maker = level.front()
            if maker.user == user:
                self.close(ts, maker, "selfTradeCanceled")
                continue
            qty = order.sz if order.sz < maker.sz else maker.sz
            if order.reduce_only:
                cap = self.reduce_capacity(order)
                if cap == 0:
                    break
                qty = min(qty, cap)
            if maker.reduce_only:
                cap = self.reduce_capacity(maker)
                if cap == 0:
                    self.close(ts, maker, "reduceOnlyCanceled")
                    continue
                qty = min(qty, cap)
            elif self.margin_check(maker.user, rules, maker.is_buy, level.px, qty) is not None:
                self.close(ts, maker, "marginCanceled", arm_children=maker.sz < maker.orig_sz)
                continue
            if capped:
                # open interest (long side) grows by max(0, q − buyer's short) − min(q, seller's long),
                # so it stays within ``room`` exactly for q ≤ room + buyer's short + seller's long
                buyer, seller = (user, maker.user) if is_buy else (maker.user, user)
                b, s_ = self.holdings.szi(buyer, order.asset), self.holdings.szi(seller, order.asset)
                q_max = (self.controls.oi_room(order.asset) or 0) + max(-b, 0) + max(s_, 0)
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
            maker_rate = makers[self.volume.fee_tier(maker_user, day)[1]]
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
                    self.close(ts, self.orders[sib], "siblingFilledCanceled")

    def _arm_children(self, ts: int, parent: Order) -> None:
        for child_oid in parent.children:
            child = self.orders.get(child_oid)
            if child is not None and child.status == "waitingForFill":
                self.sink.emit(V.OrderArmed(ts=ts, oid=child_oid, sz=child.sz))

    def close(self, ts: int, order: Order, status: str, arm_children: bool = False) -> None:
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

    def after_fills(self, ts: int, asset: int, users: Iterable[str]) -> None:
        """Reduce-only upkeep for every user (or dex account: its owner's orders) whose position in
        ``asset`` changed."""
        accounts = self.ledger.accounts
        for user in users:
            acct = accounts.get(user if not self.rules[asset].dex else wallet_owner(user))
            if acct is not None and acct.n_reduce_only:
                self.enforce_reduce_only(ts, acct, asset)

    def enforce_reduce_only(self, ts: int, acct: Account, asset: int) -> None:
        """``acct`` is the owner's account (its orders); the position is on the asset's dex."""
        macct = acct if not self.rules[asset].dex else self.holdings.margin_acct(acct.address, asset)
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
                    self.close(ts, order, "reduceOnlyCanceled")
                continue
            if increases or room == 0:
                self.close(ts, order, "reduceOnlyCanceled")
            elif order.sz > room:
                self.sink.emit(V.OrderResized(ts=ts, oid=oid, sz=room))
                room = 0
            else:
                room -= order.sz

    # -- cancels and modifies ------------------------------------------------------------------
    def _cancel_oid(self, ts: int, user: str, oid: int, asset: int) -> OrderOutcome:
        order = self.orders.get(oid)
        if order is None or order.user != user or order.asset != asset:
            return OrderError(E.order_error(E.MISSING_ORDER, asset))  # the venue names the request's asset
        self.close(ts, order, "canceled")
        return CANCELED

    def _cmd_cancel(self, cmd: C.Cancel) -> Response:
        ts, user, asset, oid = _fields(cmd)
        return Statuses((self._cancel_oid(ts, user, oid, asset),))

    def _cmd_cancel_by_cloid(self, cmd: C.CancelByCloid) -> Response:
        acct = self.ledger.accounts.get(cmd.user)
        oid = None if acct is None else acct.cloids.get(cmd.cloid)
        if oid is None:
            return Statuses((OrderError(E.order_error(E.MISSING_ORDER, cmd.asset)),))
        return Statuses((self._cancel_oid(cmd.ts, cmd.user, oid, cmd.asset),))

    def _cmd_cancel_all(self, cmd: C.CancelAll) -> Response:
        acct = self.ledger.accounts.get(cmd.user)
        if acct is None:
            return Statuses(())
        out: list[OrderOutcome] = []
        for oid in sorted(acct.orders):
            order = self.orders.get(oid)  # None: a child already closed with its parent
            if order is not None and (cmd.asset is None or order.asset == cmd.asset):
                self.close(cmd.ts, order, "canceled")
                out.append(CANCELED)
        return Statuses(tuple(out))

    def _modify(self, ts: int, user: str, ref: int | str, req: C.OrderRequest) -> OrderOutcome:
        acct = self.ledger.accounts.get(user)
        oid = ref if isinstance(ref, int) else (None if acct is None else acct.cloids.get(ref))
        order = None if oid is None else self.orders.get(oid)
        if order is None or order.user != user or order.status == "waitingForFill":
            return OrderError(E.CANNOT_MODIFY)
        # an invalid replacement leaves the original untouched: nothing is half-applied
        bad = self._validate(user, _request_fields(req), False, 0, replacing=order.oid)
        if bad is not None:
            return self._reject(ts, user, req, *bad)
        if not req.builder and order.builder:  # the wire form has no builder: the code stays
            req = msgspec.structs.replace(req, builder=order.builder, builder_fee=order.builder_fee)
        self.close(ts, order, "canceled")
        return self._place(ts, user, req)

    def _cmd_modify(self, cmd: C.Modify) -> Response:
        status = self._modify(cmd.ts, cmd.user, cmd.oid, cmd.order)
        return Error(status.message) if isinstance(status, OrderError) else OK

    def _cmd_batch_modify(self, cmd: C.BatchModify) -> Response:
        return Statuses(tuple([self._modify(cmd.ts, cmd.user, m.oid, m.order) for m in cmd.modifies]))

    # -- appliers ----------------------------------------------------------------------------------
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
            self.triggers.arm(order)
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
        rules = self.rules[asset]
        if rules.dex:  # a HIP-3 market: both sides trade on their accounts on its dex
            taker_acct = ledger.accounts[self.board.margin_key(taker_addr, asset)]
            maker_acct = ledger.accounts[self.board.margin_key(maker_addr, asset)]
        else:
            taker_acct = ledger.accounts[taker_addr]
            maker_acct = ledger.accounts[maker_addr]
        holdings = self.holdings
        pos = taker_acct.positions.get(asset) or position_slot(ledger, rules, taker_acct)
        old = pos.szi
        ledger.apply_fill(taker_acct, pos, taker_buys, px, sz, taker_fee)
        holdings.track(asset, taker_acct.address, old, pos.szi)
        pos = maker_acct.positions.get(asset) or position_slot(ledger, rules, maker_acct)
        old = pos.szi
        ledger.apply_fill(maker_acct, pos, not taker_buys, px, sz, maker_fee)
        holdings.track(asset, maker_acct.address, old, pos.szi)
        if taker_builder_fee or maker_builder_fee:
            ledger.pay_builder(taker_builder, taker_builder_fee)
            ledger.pay_builder(maker_builder, maker_builder_fee)
        self.volume.book(ts, taker_addr, maker_addr, mul(px, sz))
        maker = self.orders[maker_oid]
        self.books[asset].reduce(maker, sz)
        if maker.sz == 0:
            self._forget(maker)
        taker = self.orders[taker_oid]
        taker.sz -= sz
        if taker.sz == 0:
            self._forget(taker)
        self.pricing.trade(asset, px, self.gates[asset].mark != 0)
        self.next_tid = tid + 1

    def _on_order_rested(self, ev: V.OrderRested) -> None:
        order = self.orders[ev.oid]
        self.books[order.asset].add(order)

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
            self.triggers.disarm(order)
        self._forget(order)

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



def builder_fee(notional: int, tenths_bp: int) -> int:
    """A builder's fee in micro-USDC: ``tenths_bp`` tenths of a basis point (1e-5) of the notional,
    rounded up like every fee charged."""
    return ceil_div(mul(notional, tenths_bp), 100_000) if tenths_bp else 0




def _is_ro(order: Any, asset: int) -> bool:
    return bool(order.reduce_only) and order.asset == asset


def _fmt_px(spec: MarketSpec, px: int | None) -> str:
    return "0" if px is None else format_units(px, spec.px_decimals)


# A struct's fields in declared order.  The compiled engine reads a msgspec struct's attribute
# through a generic lookup each time; one ``astuple`` call is cheaper where most fields are read.
_fields: Final[Callable[[Any], tuple[Any, ...]]] = msgspec.structs.astuple
_request_fields: Final[Callable[[C.OrderRequest], C.OrderFields]] = msgspec.structs.astuple



def _order_state(o: Order) -> list[Any]:
    return [o.oid, o.user, o.asset, o.is_buy, o.px, o.sz, o.orig_sz, o.ts, o.tif, o.reduce_only, o.cloid,
            o.trigger_px, o.is_market, o.tpsl, o.parent, list(o.children), o.position_tpsl, o.status, o.triggered,
            o.builder, o.builder_fee]

