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

Cumulative funding (``cum_funding``, ``clearinghouseState``'s ``cumFunding``) per (owner, asset):
``allTime`` every payment the user ever made on the asset, ``sinceOpen`` since the position last
opened from zero (or flipped side: a new position), ``sinceChange`` since its size last changed
(any fill, transfer or settlement).  Positive = paid, negative = received, the engine's
``FundingSettled`` sign; the venue's sign convention is unconfirmed (the reference marks it so).

Portfolio (``portfolio``): per user, account value samples (the sum over the user's first-dex and
HIP-3 dex accounts, perp only: perpbox models no spot balances in it) with the user's net perp
inflow at that time (deposits − withdrawals ± transfers and sends to/from other users or the
spot wallet).  A sample is taken after each command that moves the user's money or positions
(fills, transfers, deposits, funding, liquidation, settlement) and, for users holding a position,
at most every ``SWEEP_MS`` from the price updates the model sees (a user without positions has a
flat value between its own events).  Each window keeps at most two samples per bucket, the first
and the newest (``PORTFOLIO_WINDOWS``: 15 minutes for a day, an hour for a week, 4 hours for 30
days, a day for all time, the last kept forever: one or two points a day).  Traded notional per
user is kept per hour for ``VLM_KEPT_MS``.  Sampling reads the engine (``apply``'s ``ex``, through
its read surface ``ex.reads``): run in the sequencer after each command, it is a deterministic
function of the log, as the rest of the model is.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from perpbox.exchange import events as V
from perpbox.ledger.entry import close_split
from perpbox.ledger.ledger import SPOT, wallet_dex, wallet_owner

MAX_ORDERS_PER_USER = 2_000
MAX_FILLS_PER_USER = 10_000
MAX_TRADES_PER_COIN = 1_000
MAX_LEDGER_PER_USER = 2_000
MAX_FUNDING_PER_USER = 10_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
SWEEP_MS = 15 * MINUTE_MS  # cadence of the price-driven account value samples of position holders
# (name, bucket, horizon or 0 = forever): the first and newest samples kept per bucket; the venue's windows
PORTFOLIO_WINDOWS: tuple[tuple[str, int, int], ...] = (
    ("day", SWEEP_MS, DAY_MS), ("week", HOUR_MS, 7 * DAY_MS), ("month", 4 * HOUR_MS, 30 * DAY_MS),
    ("allTime", DAY_MS, 0))
VLM_KEPT_MS = 30 * DAY_MS  # hourly traded notional kept for the day/week/month volume
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
    # (owner, asset) -> [allTime, sinceOpen, sinceChange] funding paid, micro-USDC (module doc)
    cum_funding: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    # portfolio (module doc): user -> one deque of (ms, account value, net inflow) per window
    value_history: dict[str, list[deque[tuple[int, int, int]]]] = field(default_factory=dict)
    net_inflow: dict[str, int] = field(default_factory=dict)  # user -> net perp inflow, micro-USDC
    hourly_vlm: dict[str, deque[list[int]]] = field(default_factory=dict)  # user -> [hour start, notional]
    sweep_bucket: int = -1  # the SWEEP_MS bucket of the last price-driven sample
    _touched: set[str] = field(default_factory=set)  # owners to sample after this command

    # -- folding --------------------------------------------------------------------------------------
    def apply(self, events: list[V.Event], marks: dict[int, int], ex: Any = None) -> None:
        """Fold one command's events.  ``marks``: the engine's marks after the command (for the
        ``markPx`` of liquidation fills); ``ex``: the engine after the command, for the account
        value samples of the portfolio (none are taken without it)."""
        self._liq_method.clear()
        self._touched.clear()
        for ev in events:
            handler = _HANDLERS.get(type(ev))
            if handler is not None:
                handler(self, ev, marks)
        if ex is not None and self._touched and events:
            ts = events[-1].ts
            for user in sorted(self._touched):
                self._sample(ex, user, ts)
        self._touched.clear()

    def _sample(self, ex: Any, user: str, ts: int) -> None:
        """One account value sample of ``user`` (its perp accounts that exist; none: no sample)."""
        value = ex.reads.perp_value(user)
        if value is None:
            return
        point = (ts, value, self.net_inflow.get(user, 0))
        series = self.value_history.get(user)
        if series is None:
            series = self.value_history[user] = [deque() for _ in PORTFOLIO_WINDOWS]
        for q, (_, bucket, horizon) in zip(series, PORTFOLIO_WINDOWS, strict=True):
            b = ts // bucket
            if len(q) >= 2 and q[-1][0] // bucket == b and q[-2][0] // bucket == b:
                q[-1] = point  # the bucket keeps its first sample and its newest
            else:
                q.append(point)
            while horizon and q[0][0] < ts - horizon:
                q.popleft()

    def _prices(self, ev: V.PricesUpdated, _m: dict[int, int]) -> None:
        """At most every ``SWEEP_MS``: sample every position holder (their value moves with prices)."""
        bucket = ev.ts // SWEEP_MS
        if bucket > self.sweep_bucket:
            self.sweep_bucket = bucket
            for users in self.holders.values():
                self._touched.update(users)

    def _inflow(self, account: str, usd: int) -> None:
        """``usd`` enters (negative: leaves) the perp accounts of ``account``'s owner."""
        if wallet_dex(account) != SPOT:
            user = wallet_owner(account)
            self.net_inflow[user] = self.net_inflow.get(user, 0) + usd
            self._touched.add(user)

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
        ntl = ev.px * ev.sz
        self.volume[user] = self.volume.get(user, 0) + ntl
        hours = self.hourly_vlm.setdefault(user, deque())
        hour = ev.ts - ev.ts % HOUR_MS
        if hours and hours[-1][0] == hour:
            hours[-1][1] += ntl
        else:
            hours.append([hour, ntl])
            while hours[0][0] <= ev.ts - VLM_KEPT_MS:
                hours.popleft()
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
        self._touched.add(user)
        cum = self.cum_funding.get(key)
        if cum is not None:
            cum[2] = 0  # the size changed
            if szi == 0 or (new_szi != 0 and (new_szi > 0) != (szi > 0)):
                cum[1] = 0  # opened from zero, or flipped: a new position
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
            key = (wallet_owner(account), ev.asset)
            cum = self.cum_funding.get(key)
            if cum is None:
                self.cum_funding[key] = [amount, amount, amount]
            else:
                cum[0] += amount
                cum[1] += amount
                cum[2] += amount
            self._touched.add(key[0])

    def funding_totals(self, user: str, asset: int) -> tuple[int, int, int]:
        """(allTime, sinceOpen, sinceChange) funding paid by ``user`` on ``asset`` (module doc)."""
        cum = self.cum_funding.get((user, asset))
        return (0, 0, 0) if cum is None else (cum[0], cum[1], cum[2])

    def window_volume(self, user: str, since: int) -> int:
        """``user``'s traded notional in the hours starting at or after ``since`` (floored to the
        hour); reads those hours only, from the newest back."""
        since -= since % HOUR_MS
        total = 0
        for hour, ntl in reversed(self.hourly_vlm.get(user, ())):
            if hour < since:
                break
            total += ntl
        return total

    def _ledger(self, user: str, ts: int, delta: dict[str, Any]) -> None:
        self.ledger.setdefault(user, deque(maxlen=MAX_LEDGER_PER_USER)).append(LedgerRec(ts, delta))

    def _deposited(self, ev: V.Deposited, _m: dict[int, int]) -> None:
        self._ledger(ev.user, ev.ts, {"type": "deposit", "usdc": ev.usd})
        self.net_deposits[ev.user] = self.net_deposits.get(ev.user, 0) + ev.usd
        self._inflow(ev.user, ev.usd)

    def _withdrew(self, ev: V.Withdrew, _m: dict[int, int]) -> None:
        self._ledger(ev.user, ev.ts, {"type": "withdraw", "usdc": ev.usd, "nonce": ev.ts, "fee": 0})
        self.net_deposits[ev.user] = self.net_deposits.get(ev.user, 0) - ev.usd
        self._inflow(ev.user, -ev.usd)

    def _asset_sent(self, ev: V.AssetSent, _m: dict[int, int]) -> None:
        """``sendAsset``: the venue's ``send`` ledger update, for the sender and the receiver."""
        src, dst = wallet_owner(ev.src), wallet_owner(ev.dst)
        delta = {"type": "send", "user": src, "destination": dst, "sourceDex": wallet_dex(ev.src),
                 "destinationDex": wallet_dex(ev.dst), "token": "USDC", "amount": ev.usd, "usdcValue": ev.usd,
                 "fee": 0, "nativeTokenFee": 0, "nonce": None}
        self._ledger(src, ev.ts, delta)
        if dst != src:
            self._ledger(dst, ev.ts, delta)
        self._inflow(ev.src, -ev.usd)  # between the same owner's dexes the two cancel out
        self._inflow(ev.dst, ev.usd)

    def _listed(self, ev: V.MarketListed, _m: dict[int, int]) -> None:
        self.asset_dex[ev.spec.asset] = ev.spec.dex

    def _transfer(self, ev: V.Transferred, _m: dict[int, int]) -> None:
        delta = {"type": "internalTransfer", "usdc": ev.usd, "user": ev.src, "destination": ev.dst, "fee": 0}
        self._ledger(ev.src, ev.ts, delta)
        self._ledger(ev.dst, ev.ts, delta)
        self._inflow(ev.src, -ev.usd)
        self._inflow(ev.dst, ev.usd)

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
    V.PricesUpdated: ReadModels._prices,
}
