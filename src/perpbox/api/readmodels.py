"""Read models: folds over the engine's events that answer the history queries of the API.

They hold what the engine does not keep once it is done with it — closed orders, fills, trades,
candles, funding and ledger updates — in integers, bounded as the venue bounds its answers
(2,000 recent orders per user, 10,000 fills per user, 1,000 trades per coin; one-minute candles
for two weeks, coarser intervals aggregated from them).  Formatting to wire strings happens at
query time (``api.info``).  Being folds over the event stream, they rebuild exactly on restart.

Every query is linear in what it answers: two indexes kept with the orders answer "the children
of this order" (TP/SL waiting for a parent) and "the newest kept order with this cloid" without
scanning a user's orders, and the one-minute candles of a market are kept in time order (a dict in
insertion order), so the last day or the last hour is read from the end.

Fill ``dir``, ``startPosition`` and ``closedPnl`` need the position before each fill, so the model
keeps its own (size, cost basis) per account and market with the ledger's rule
(``ledger.entry.close_split``).

Users are owners' addresses: the engine's position-side events (transfers, funding, liquidations)
name ledger accounts, which on a HIP-3 dex are ``<dex>:<address>`` (``ledger.dex_account``); the
model files them under the owner (a market belongs to one dex, so (owner, asset) is one position).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from perpbox.exchange import events as V
from perpbox.ledger.entry import close_split
from perpbox.ledger.ledger import wallet_dex, wallet_owner

MAX_ORDERS_PER_USER = 2_000
MAX_FILLS_PER_USER = 10_000
MAX_TRADES_PER_COIN = 1_000
MAX_LEDGER_PER_USER = 2_000
MAX_FUNDING_PER_USER = 10_000
MINUTE_MS = 60_000
CANDLE_MINUTES_KEPT = 14 * 24 * 60
FINAL = "final"


@dataclass(slots=True)
class OrderRec:
    oid: int
    user: str
    asset: int
    is_buy: bool
    px: int
    sz: int
    orig_sz: int
    ts: int
    tif: str
    reduce_only: bool
    cloid: str | None
    trigger_px: int
    is_market: bool
    tpsl: str
    parent: int
    position_tpsl: bool
    liquidation: bool
    status: str
    status_ts: int
    filled_ntl: int = 0  # micro-USDC, for the average fill price
    filled_sz: int = 0


@dataclass(slots=True)
class FillRec:
    time: int
    asset: int
    px: int
    sz: int
    is_buy: bool
    start: int  # signed position before the fill, lots
    closed_pnl: int
    oid: int
    crossed: bool
    fee: int
    tid: int
    cloid: str | None = None
    dir: str = ""  # set for transfers (liquidation, ADL, settlement); else derived from start/side
    liquidation: dict[str, Any] | None = None
    builder_fee: int = 0  # the part of ``fee`` paid to a builder


@dataclass(slots=True)
class TradeRec:
    time: int
    asset: int
    px: int
    sz: int
    taker_is_buy: bool
    buyer: str
    seller: str
    tid: int


@dataclass(slots=True)
class Candle:
    t: int
    o: int
    h: int
    l: int
    c: int
    v: int = 0  # lots
    n: int = 0
    ntl: int = 0  # micro-USDC


@dataclass(slots=True)
class FundingRec:
    time: int
    asset: int
    usdc: int  # the user's cash change (negative = paid)
    szi: int
    rate: int  # 1e-8 per interval


@dataclass(slots=True)
class LedgerRec:
    time: int
    delta: dict[str, Any]  # already in the venue's shape except numbers (formatted at query time)


@dataclass
class ReadModels:
    orders: dict[int, OrderRec] = field(default_factory=dict)
    user_orders: dict[str, deque[int]] = field(default_factory=dict)  # oids, oldest first
    fills: dict[str, deque[FillRec]] = field(default_factory=dict)
    trades: dict[int, deque[TradeRec]] = field(default_factory=dict)
    candles: dict[int, dict[int, Candle]] = field(default_factory=dict)  # asset -> minute start -> candle
    funding: dict[str, deque[FundingRec]] = field(default_factory=dict)
    ledger: dict[str, deque[LedgerRec]] = field(default_factory=dict)
    liquidations: deque[V.Liquidated] = field(default_factory=lambda: deque(maxlen=200))
    positions: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)  # (szi, entry_ntl)
    holders: dict[int, set[str]] = field(default_factory=dict)
    volume: dict[str, int] = field(default_factory=dict)  # user -> cumulative traded notional, micro-USDC
    net_deposits: dict[str, int] = field(default_factory=dict)  # user -> deposits − withdrawals (cumLedger)
    _liq_method: dict[str, tuple[str, int]] = field(default_factory=dict)  # ledger account -> (method, scope)
    asset_dex: dict[int, str] = field(default_factory=dict)  # from MarketListed
    # indexes over ``orders`` (module doc): parent oid -> child oids in placement order; (user, cloid)
    # -> the newest kept order of that user with that cloid
    children: dict[int, list[int]] = field(default_factory=dict)
    cloid_oids: dict[tuple[str, str], int] = field(default_factory=dict)

    # -- folding --------------------------------------------------------------------------------------
    def apply(self, events: list[V.Event], marks: dict[int, int]) -> None:
        """Fold one command's events.  ``marks``: the engine's marks after the command (for the
        ``markPx`` of liquidation fills)."""
        self._liq_method.clear()
        for ev in events:
            handler = _HANDLERS.get(type(ev))
            if handler is not None:
                handler(self, ev, marks)

    def _order_placed(self, ev: V.OrderPlaced, _m: dict[int, int]) -> None:
        rec = OrderRec(ev.oid, ev.user, ev.asset, ev.is_buy, ev.px, ev.sz, ev.sz, ev.ts, ev.tif, ev.reduce_only,
                       ev.cloid, ev.trigger_px, ev.is_market, ev.tpsl, ev.parent, ev.position_tpsl, ev.liquidation,
                       "open" if ev.status in ("pending", "open") else ev.status, ev.ts)
        self._keep_order(rec)

    def _order_rejected(self, ev: V.OrderRejected, _m: dict[int, int]) -> None:
        rec = OrderRec(ev.oid, ev.user, ev.asset, ev.is_buy, ev.px, ev.sz, ev.sz, ev.ts, ev.tif, ev.reduce_only,
                       ev.cloid, 0, False, "", 0, False, False, ev.status, ev.ts)
        self._keep_order(rec)

    def _keep_order(self, rec: OrderRec) -> None:
        self.orders[rec.oid] = rec
        self._index_order(rec)
        q = self.user_orders.setdefault(rec.user, deque())
        q.append(rec.oid)
        while len(q) > MAX_ORDERS_PER_USER:
            old = q.popleft()
            gone = self.orders.get(old)
            if gone is not None and gone.status not in ("open", "waitingForTrigger", "waitingForFill", "triggered"):
                del self.orders[old]
                self.children.pop(old, None)
                if gone.cloid is not None and self.cloid_oids.get((gone.user, gone.cloid)) == old:
                    del self.cloid_oids[(gone.user, gone.cloid)]
            else:  # still live: keep it, re-queue at the back
                q.append(old)
                break

    def _index_order(self, rec: OrderRec) -> None:
        if rec.parent:
            self.children.setdefault(rec.parent, []).append(rec.oid)
        if rec.cloid is not None:
            self.cloid_oids[(rec.user, rec.cloid)] = rec.oid

    def children_of(self, oid: int) -> Iterator[OrderRec]:
        """The kept orders placed as children of ``oid`` (TP/SL of a normalTpsl parent), oldest first."""
        for kid in self.children.get(oid, ()):
            rec = self.orders.get(kid)
            if rec is not None:
                yield rec

    def order_by_cloid(self, user: str, cloid: str) -> OrderRec | None:
        """The newest kept order of ``user`` placed with ``cloid`` (open or closed)."""
        oid = self.cloid_oids.get((user, cloid))
        return None if oid is None else self.orders.get(oid)

    def _order_rested(self, ev: V.OrderRested, _m: dict[int, int]) -> None:
        rec = self.orders.get(ev.oid)
        if rec is not None and rec.status != "triggered":  # a triggered limit rests as "triggered"
            rec.status, rec.status_ts = "open", ev.ts

    def _order_armed(self, ev: V.OrderArmed, _m: dict[int, int]) -> None:
        rec = self.orders.get(ev.oid)
        if rec is not None:
            rec.sz, rec.status, rec.status_ts = ev.sz, "open", ev.ts

    def _order_triggered(self, ev: V.OrderTriggered, _m: dict[int, int]) -> None:
        rec = self.orders.get(ev.oid)
        if rec is not None:
            rec.status, rec.status_ts = "triggered", ev.ts  # limitPx stays as placed

    def _order_resized(self, ev: V.OrderResized, _m: dict[int, int]) -> None:
        rec = self.orders.get(ev.oid)
        if rec is not None:
            rec.sz = ev.sz

    def _order_closed(self, ev: V.OrderClosed, _m: dict[int, int]) -> None:
        rec = self.orders.get(ev.oid)
        if rec is not None:
            rec.status, rec.status_ts = ev.status, ev.ts
            if ev.status == "filled":
                rec.sz = 0

    def _fill(self, ev: V.Fill, marks: dict[int, int]) -> None:
        taker_rec, maker_rec = self.orders.get(ev.taker_oid), self.orders.get(ev.maker_oid)
        for rec in (taker_rec, maker_rec):
            if rec is not None:
                rec.sz = max(rec.sz - ev.sz, 0)
                rec.filled_sz += ev.sz
                rec.filled_ntl += ev.px * ev.sz
                if rec.sz == 0:  # the engine closes a fully filled order with the fill itself
                    rec.status, rec.status_ts = "filled", ev.ts
        liq = None
        if taker_rec is not None and taker_rec.liquidation:
            liq = {"liquidatedUser": ev.taker, "markPx": marks.get(ev.asset, ev.px), "method": "market"}
        self._user_fill(ev.taker, ev, ev.taker_is_buy, ev.taker_oid, True, ev.taker_fee,
                        None if taker_rec is None else taker_rec.cloid, liq=liq, builder_fee=ev.taker_builder_fee)
        self._user_fill(ev.maker, ev, not ev.taker_is_buy, ev.maker_oid, False, ev.maker_fee,
                        None if maker_rec is None else maker_rec.cloid, liq=liq, builder_fee=ev.maker_builder_fee)
        buyer, seller = (ev.taker, ev.maker) if ev.taker_is_buy else (ev.maker, ev.taker)
        trades = self.trades.setdefault(ev.asset, deque(maxlen=MAX_TRADES_PER_COIN))
        trades.append(TradeRec(ev.ts, ev.asset, ev.px, ev.sz, ev.taker_is_buy, buyer, seller, ev.tid))
        self._candle(ev.asset, ev.ts, ev.px, ev.sz)

    def _user_fill(self, user: str, ev: V.Fill, is_buy: bool, oid: int, crossed: bool, fee: int,
                   cloid: str | None, liq: dict[str, Any] | None = None, dir_: str = "",
                   builder_fee: int = 0) -> None:
        start, closed = self._move(user, ev.asset, is_buy, ev.px, ev.sz)
        self.volume[user] = self.volume.get(user, 0) + ev.px * ev.sz
        self._keep_fill(user, FillRec(ev.ts, ev.asset, ev.px, ev.sz, is_buy, start, closed, oid, crossed, fee, ev.tid,
                                      cloid, dir_, liq, builder_fee))

    def _keep_fill(self, user: str, rec: FillRec) -> None:
        self.fills.setdefault(user, deque(maxlen=MAX_FILLS_PER_USER)).append(rec)

    def _move(self, user: str, asset: int, is_buy: bool, px: int, sz: int) -> tuple[int, int]:
        """Apply a trade to the mirrored position; returns (start size, closed PnL)."""
        key = (user, asset)
        szi, entry = self.positions.get(key, (0, 0))
        close_qty, removed, closed_pnl = close_split(szi, entry, is_buy, px, sz)
        new_szi = szi + (sz if is_buy else -sz)
        new_entry = entry - removed + px * (sz - close_qty)
        if new_szi:
            self.positions[key] = (new_szi, new_entry)
            self.holders.setdefault(asset, set()).add(user)
        else:
            self.positions.pop(key, None)
            self.holders.get(asset, set()).discard(user)
        return szi, closed_pnl

    def _transferred(self, ev: V.PositionTransferred, marks: dict[int, int]) -> None:
        """Backstop, insurance or ADL transfer: a feeless fill for both sides."""
        method, scope = self._liq_method.get(ev.src, ("backstop", -1))
        src, dst = wallet_owner(ev.src), wallet_owner(ev.dst)
        liq = {"liquidatedUser": src, "markPx": marks.get(ev.asset, ev.px),
               "method": "backstop" if method in ("backstop", "insurance") else method}
        for user, is_buy in ((dst, ev.sz > 0), (src, ev.sz < 0)):
            start, closed = self._move(user, ev.asset, is_buy, ev.px, abs(ev.sz))
            dir_ = "Auto-Deleveraging" if method == "adl" else ""
            if not dir_ and user == src:
                dir_ = f"Liquidated {'Cross' if scope < 0 else 'Isolated'} {'Long' if start > 0 else 'Short'}"
            self._keep_fill(user, FillRec(ev.ts, ev.asset, ev.px, abs(ev.sz), is_buy, start, closed, 0,
                                          user == dst, 0, 0, None, dir_, liq))

    def _settled(self, ev: V.MarketSettled, _m: dict[int, int]) -> None:
        for user in sorted(self.holders.get(ev.asset, set())):
            szi, _ = self.positions[(user, ev.asset)]
            start, closed = self._move(user, ev.asset, szi < 0, ev.px, abs(szi))
            self._keep_fill(user, FillRec(ev.ts, ev.asset, ev.px, abs(szi), szi < 0, start, closed, 0, False, 0, 0,
                                          None, "Settlement"))

    def _liquidated(self, ev: V.Liquidated, _m: dict[int, int]) -> None:
        """``ev.asset`` is the scope: -1 the cross account, else the isolated position's asset."""
        self._liq_method[ev.user] = (ev.method, ev.asset)
        self.liquidations.append(ev)
        if ev.method in ("market", "backstop", "insurance"):
            user, dex = wallet_owner(ev.user), wallet_dex(ev.user)  # a HIP-3 dex account's owner and dex
            assets = sorted(a for a, users in self.holders.items() if user in users
                            and self.asset_dex.get(a, "") == dex) if ev.asset < 0 else \
                [ev.asset] if (user, ev.asset) in self.positions else []
            held = [(a, self.positions[(user, a)][0]) for a in assets]
            self._ledger(user, ev.ts, {"type": "liquidation", "accountValue": ev.account_value,
                                          "leverageType": "Cross" if ev.asset < 0 else "Isolated",
                                          "liquidatedPositions": held})

    def _candle(self, asset: int, ts: int, px: int, sz: int) -> None:
        book = self.candles.setdefault(asset, {})
        t = ts - ts % MINUTE_MS
        c = book.get(t)
        if c is None:
            last = next(reversed(book), None)
            c = book[t] = Candle(t, px, px, px, px)
            if last is not None and t < last:  # out of time order (never from the sequencer): re-sort
                self.candles[asset] = book = dict(sorted(book.items()))
            while len(book) > CANDLE_MINUTES_KEPT:  # the oldest first: the dict is in time order
                del book[next(iter(book))]
        c.h, c.l, c.c = max(c.h, px), min(c.l, px), px
        c.v += sz
        c.n += 1
        c.ntl += px * sz

    def _funding(self, ev: V.FundingSettled, _m: dict[int, int]) -> None:
        for account, szi, amount in ev.payments:
            q = self.funding.setdefault(wallet_owner(account), deque(maxlen=MAX_FUNDING_PER_USER))
            q.append(FundingRec(ev.ts, ev.asset, -amount, szi, ev.rate))

    def _ledger(self, user: str, ts: int, delta: dict[str, Any]) -> None:
        self.ledger.setdefault(user, deque(maxlen=MAX_LEDGER_PER_USER)).append(LedgerRec(ts, delta))

    def _deposited(self, ev: V.Deposited, _m: dict[int, int]) -> None:
        self._ledger(ev.user, ev.ts, {"type": "deposit", "usdc": ev.usd})
        self.net_deposits[ev.user] = self.net_deposits.get(ev.user, 0) + ev.usd

    def _withdrew(self, ev: V.Withdrew, _m: dict[int, int]) -> None:
        self._ledger(ev.user, ev.ts, {"type": "withdraw", "usdc": ev.usd, "nonce": ev.ts, "fee": 0})
        self.net_deposits[ev.user] = self.net_deposits.get(ev.user, 0) - ev.usd

    def _asset_sent(self, ev: V.AssetSent, _m: dict[int, int]) -> None:
        """``sendAsset``: the venue's ``send`` ledger update, for the sender and the receiver."""
        src, dst = wallet_owner(ev.src), wallet_owner(ev.dst)
        delta = {"type": "send", "user": src, "destination": dst, "sourceDex": wallet_dex(ev.src),
                 "destinationDex": wallet_dex(ev.dst), "token": "USDC", "amount": ev.usd, "usdcValue": ev.usd,
                 "fee": 0, "nativeTokenFee": 0, "nonce": None}
        self._ledger(src, ev.ts, delta)
        if dst != src:
            self._ledger(dst, ev.ts, delta)

    def _listed(self, ev: V.MarketListed, _m: dict[int, int]) -> None:
        self.asset_dex[ev.spec.asset] = ev.spec.dex

    def _transfer(self, ev: V.Transferred, _m: dict[int, int]) -> None:
        delta = {"type": "internalTransfer", "usdc": ev.usd, "user": ev.src, "destination": ev.dst, "fee": 0}
        self._ledger(ev.src, ev.ts, delta)
        self._ledger(ev.dst, ev.ts, delta)

    # -- queries ------------------------------------------------------------------------------------
    def candles_between(self, asset: int, interval_ms: int, start: int, end: int,
                        limit: int | None = None) -> list[Candle]:
        """Candles of ``interval_ms`` (a multiple of a minute; weeks and months by fixed length)
        whose open time is in [start, end], aggregated from the one-minute candles; the newest
        ``limit`` of them if given.  Reads the minutes from the newest back to ``start``."""
        minutes: list[Candle] = []
        buckets = 0
        last_bucket = None
        for t in reversed(self.candles.get(asset, {})):
            bucket = t - t % interval_ms
            if bucket > end:
                continue
            if bucket < start - interval_ms:
                break
            if bucket != last_bucket:
                buckets, last_bucket = buckets + 1, bucket
                if limit is not None and buckets > limit + 1:  # one spare: the oldest may fall before start
                    break
            minutes.append(self.candles[asset][t])
        out: dict[int, Candle] = {}
        for m in reversed(minutes):
            t = m.t
            bucket = t - t % interval_ms
            c = out.get(bucket)
            if c is None:
                out[bucket] = Candle(bucket, m.o, m.h, m.l, m.c, m.v, m.n, m.ntl)
            else:
                c.h, c.l, c.c = max(c.h, m.h), min(c.l, m.l), m.c
                c.v += m.v
                c.n += m.n
                c.ntl += m.ntl
        kept = [c for t, c in out.items() if t + interval_ms > start]
        return kept if limit is None else kept[-limit:]

    def day_stats(self, asset: int, now: int) -> tuple[int, int, int]:
        """(base volume in lots, notional in micro-USDC, price 24 h ago or 0) over the last day:
        the close of the last candle before the day, else the open of the day's first one.  Reads
        the day's candles and one more, from the newest back."""
        since = now - 86_400_000
        vol = ntl = 0
        first_open = 0
        book = self.candles.get(asset, {})
        for t in reversed(book):
            c = book[t]
            if t < since:
                return vol, ntl, c.c
            first_open = c.o
            vol += c.v
            ntl += c.ntl
        return vol, ntl, first_open


def venue_status(status: str) -> str:
    """An order's status as ``orderStatus``, ``historicalOrders`` and ``orderUpdates`` report it.
    The read model keeps ``waitingForTrigger`` / ``waitingForFill`` (the order action's answers) to
    tell a TP/SL child that waits for its parent from a live trigger; the venue's status list has
    neither: such an order is listed among the open orders, and reads ``open``."""
    return "open" if status in ("waitingForTrigger", "waitingForFill") else status


_HANDLERS: dict[type, Any] = {
    V.OrderPlaced: ReadModels._order_placed,
    V.OrderRejected: ReadModels._order_rejected,
    V.OrderRested: ReadModels._order_rested,
    V.OrderArmed: ReadModels._order_armed,
    V.OrderTriggered: ReadModels._order_triggered,
    V.OrderResized: ReadModels._order_resized,
    V.OrderClosed: ReadModels._order_closed,
    V.Fill: ReadModels._fill,
    V.PositionTransferred: ReadModels._transferred,
    V.MarketSettled: ReadModels._settled,
    V.Liquidated: ReadModels._liquidated,
    V.FundingSettled: ReadModels._funding,
    V.Deposited: ReadModels._deposited,
    V.Withdrew: ReadModels._withdrew,
    V.Transferred: ReadModels._transfer,
    V.AssetSent: ReadModels._asset_sent,
    V.MarketListed: ReadModels._listed,
}
