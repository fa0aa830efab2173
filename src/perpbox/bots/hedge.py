"""Hedge mode (``perpbox hedge``): post-only maker on one venue, an IOC hedge on the other as soon as
any of it fills, then the same the other way — and, unlike the script farmers run, it fails closed.

* The hedge ledger (``bots.ledger``) holds the debt: every maker fill, partial or whole, is owed at
  once; hedges draw it down; a hedge is never booked before its fills are seen; after a cancel the
  order's final state is read.
* Hedges are IOC limits at most ``hedge_band_bps`` through a *fresh* book (a stale, one-sided,
  crossed, locked or too-wide book is refused and the resting maker cancelled).  After
  ``hedge_attempts`` failures the band doubles; after as many more, the run flattens both legs
  and stops with exit code 2.
* Unhedged exposure is bounded: past ``max_unhedged_usd`` or ``max_unhedged_ms`` no maker is
  posted and the hedge is repaired (escalated) at once.
* The taker's minimum order value.  A hedge that only reduces the taker's position is sent
  reduce-only, and is sent below the minimum only where the venue spares it
  (``MarketInfo.min_notional_spares``: Hyperliquid spares a reduce-only order closing a whole
  position, while part of a position is held to the minimum like any order).  A smaller debt (a
  small partial maker fill) is never hedged bigger than it is: while the maker order still rests,
  the rest of it may fill and make the debt hedgeable, so the bot waits, up to ``max_unhedged_ms``.
  Then, or once the maker order is done, it acts on the maker venue with an IOC: it closes the
  maker's position reduce-only where that is spared the minimum, else it tops the debt up past the
  taker's minimum (and the maker's) and hedges the lot.
* Reconciliation every ``reconcile_ms``: each venue's position must equal its start plus the fills
  seen; a difference is an incident (stop opening, cancel the maker, wait for the venue to agree
  again, up to ``incident_timeout_ms``, then stop with exit code 3).  A sudden zero is read again
  before it counts.  While it waits, the bot cross-checks the venue's position against the venue's
  *own* fill history: a position that disagrees with an intact history is a bad read and is never
  traded on; a history that has lost fills the bot saw is a rollback (the outage night of
  ../shared/reference/hedging-bots.md §2).  Once two reads in a row show the same loss and the
  positions agree with what survived, the venue has settled: the legs are rebuilt from the
  surviving fills, the net exposure across both venues is hedged on the taker, and the run stops
  with exit code 3 for an operator (a venue that loses fills is not one to keep opening on).
* A venue with a stream (``venue.Recorded``, e.g. ``bots.streamed_venue``) is also reconciled after
  every reconnection of its stream, and its rollback cross-check reads the venue's record, never
  the stream (which still holds the fills the venue lost).  Fills a rollback voided are never
  counted again, wherever they reappear.
* Inventory walks up to ``max_position`` and back to zero (with the default, ``size``: open, close,
  open, …).
* Wear (``bots.wear``): every fill is kept with the venue's mid when its order was decided (the book
  the maker was priced on, the book the hedge was banded on), and funding payments are read at each
  reconciliation; ``rows`` are the run's ``--ledger`` rows, ``wear()`` what they cost so far.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from perpbox.bots.ledger import HedgeLedger
from perpbox.bots.venue import (
    OPEN,
    UNKNOWN,
    Book,
    Fill,
    FundingPayment,
    MarketInfo,
    OrderRequest,
    OrderState,
    Recorded,
    Venue,
)
from perpbox.bots.wear import MAKER, TAKER, Row, WearBook, WearResult, fill_row, funding_row

log = logging.getLogger("perpbox.hedge")
BPS = Decimal(10_000)
OK, FLATTENED, INCIDENT = 0, 2, 3


@dataclass(frozen=True)
class HedgeConfig:
    coin: str  # on the maker venue
    size: Decimal
    iterations: int
    taker_coin: str | None = None  # the taker venue's name for it (default: the same)
    max_position: Decimal | None = None  # default: size
    max_unhedged_usd: Decimal | None = None  # default: 3 orders' notional
    max_unhedged_ms: int = 5_000
    hedge_band_bps: int = 50
    requote_ms: int = 5_000
    book_max_age_ms: int = 3_000
    max_spread_bps: int = 500
    hedge_attempts: int = 3
    poll_ms: int = 200
    reconcile_ms: int = 3_000
    incident_timeout_ms: int = 60_000


@dataclass
class LegStats:
    """One leg's position and fill count from the fills of this run (what they cost: ``wear()``)."""

    position: Decimal = Decimal(0)
    fills: int = 0

    def add(self, f: Fill) -> None:
        self.position += f.size
        self.fills += 1


@dataclass
class Summary:
    code: int
    iterations: int
    maker: LegStats
    taker: LegStats
    reason: str = ""
    incidents: list[str] = field(default_factory=list)
    overshoots: int = 0
    unhedged: Decimal = Decimal(0)  # the hedge debt left at the end (signed like the maker fills)


@dataclass
class Preview:
    """A dry run: what the run would do (label, text) and what would stop it (empty: nothing)."""

    lines: list[tuple[str, str]]
    problems: list[str]


def _round(px: Decimal, tick: Decimal, up: bool) -> Decimal:
    q = (px / tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return q * tick


def _through(book: Book, is_buy: bool, band_bps: int, tick: Decimal) -> tuple[Decimal, Decimal]:
    """An IOC's limit at most ``band_bps`` through the touch it takes (rounded inside the band), and
    that touch."""
    ref = book.asks[0][0] if is_buy else book.bids[0][0]
    edge = ref * band_bps / BPS
    return (_round(ref + edge, tick, up=False) if is_buy else _round(ref - edge, tick, up=True)), ref


async def _settled(venue: Venue, coin: str, st: OrderState, client_id: str | None) -> OrderState:
    """An answer that settles nothing, asked again by client id a bounded number of times."""
    for _ in range(3):
        if st.status != UNKNOWN or not client_id:
            break
        st = await venue.order_status(coin, client_id)
    return st


class HedgeRunner:
    def __init__(self, maker: Venue, taker: Venue, cfg: HedgeConfig, *,
                 clock: Callable[[], int] | None = None) -> None:
        self.maker, self.taker, self.cfg = maker, taker, cfg
        self.clock = clock or (lambda: time.time_ns() // 1_000_000)
        self.tcoin = cfg.taker_coin or cfg.coin
        self.ledger = HedgeLedger()
        self.maker_stats, self.taker_stats = LegStats(), LegStats()
        self.run_id = hashlib.sha256(f"{maker.name} {taker.name} {cfg} {self.clock()}".encode()).hexdigest()[:16]
        self.seq = 0
        self.resting: OrderState | None = None
        self.resting_req: OrderRequest | None = None
        self.resting_since = 0
        self.maker_orders: set[str] = set()
        self.hedge_orders: dict[str, str] = {}  # venue order id -> client id
        self.awaiting: dict[str, Decimal] = {}  # final hedges (client id) -> the size the venue says filled
        self.counted: set[str] = set()
        self.since = 0
        self.failures = 0
        self.going_up = True
        self.done = 0
        self.start_pos: dict[str, Decimal] = {}
        self.incidents: list[str] = []
        self.last_reconcile = 0
        self.fills: dict[str, list[Fill]] = {MAKER: [], TAKER: []}  # every fill of the run, by leg
        self.voided: set[str] = set()  # fills a venue lost in a rollback ("m"/"t" + fill id)
        self.decided: dict[str, Decimal] = {}  # venue order id -> the mid its order was decided on
        self.funding: dict[str, dict[tuple[str, int], FundingPayment]] = {MAKER: {}, TAKER: {}}
        self.mids: dict[str, Decimal] = {}  # venue name -> the mid of the last book read
        self.reconnects_seen = 0
        self.taker_market: MarketInfo | None = None
        self.maker_market: MarketInfo | None = None

    def _cid(self) -> str:
        self.seq += 1
        return "0x" + hashlib.sha256(f"{self.run_id}:{self.seq}".encode()).hexdigest()[:32]

    # -- fills ------------------------------------------------------------------------------------------
    async def _sync(self) -> None:
        now = self.clock()
        for f in await self.maker.fills(self.since):
            if f.coin == self.cfg.coin and f.order_id in self.maker_orders and \
                    f"m{f.fill_id}" not in self.counted and f"m{f.fill_id}" not in self.voided:
                self.counted.add(f"m{f.fill_id}")
                self.maker_stats.add(f)
                self.fills[MAKER].append(f)
                self.ledger.maker_fill(self.cfg.coin, f"m{f.fill_id}", f.size, now)
        for f in await self.taker.fills(self.since):
            cid = self.hedge_orders.get(f.order_id)
            if f.coin == self.tcoin and cid is not None and cid in self.ledger.hedges and \
                    f"t{f.fill_id}" not in self.counted and f"t{f.fill_id}" not in self.voided:
                self.counted.add(f"t{f.fill_id}")
                self.taker_stats.add(f)
                self.fills[TAKER].append(f)
                self.ledger.hedge_fill(cid, f"t{f.fill_id}", f.size, now)
        self._release()

    def _venue(self, leg: str) -> Venue:
        return self.maker if leg == MAKER else self.taker

    @property
    def rows(self) -> list[Row]:
        """Every fill and funding payment of the run as ``--ledger`` rows (``bots.wear.SCHEMA``), in
        time order."""
        rows = [fill_row(self.run_id, leg, self._venue(leg).name, f, self.decided.get(f.order_id))
                for leg, fills in self.fills.items() for f in fills]
        rows += [funding_row(self.run_id, leg, self._venue(leg).name, p)
                 for leg, payments in self.funding.items() for p in payments.values()]
        return sorted(rows, key=lambda r: int(str(r["time"])))

    def wear(self, end_mids: dict[str, Decimal] | None = None) -> WearResult:
        """What the run has cost so far, what is open marked at ``end_mids`` (default: the mids of
        the last books read)."""
        return WearBook.from_rows(self.rows).result(self.mids if end_mids is None else end_mids)

    async def _poll_funding(self) -> None:
        """The funding payments of the run's coin on each venue since the start (a venue that cannot
        report them is skipped: its wear then leaves funding out)."""
        for leg, coin in ((MAKER, self.cfg.coin), (TAKER, self.tcoin)):
            try:
                payments = await self._venue(leg).funding_payments(self.since)
            except Exception as e:  # a read that failed is retried next time
                log.debug("funding payments of %s: %s: %s", self._venue(leg).name, type(e).__name__, e)
                continue
            for p in payments:
                if p.coin == coin and p.ts_ms >= self.since:
                    self.funding[leg][(p.coin, p.ts_ms)] = p

    async def _book(self, venue: Venue, coin: str) -> Book:
        """A venue's book, its mid remembered for the wear of what is open."""
        book = await venue.book(coin)
        mid = book.mid()
        if mid is not None:
            self.mids[venue.name] = mid
        return book

    def _reconnects(self) -> int:
        return sum(v.reconnects for v in (self.maker, self.taker) if isinstance(v, Recorded))

    def _position(self, leg: str) -> Decimal:
        return self.start_pos[leg] + (self.maker_stats if leg == MAKER else self.taker_stats).position

    def _reduces(self, leg: str, size: Decimal) -> bool:
        """Whether trading ``size`` (signed) on ``leg``'s venue only reduces the position there."""
        pos = self._position(leg)
        return pos * size < 0 and abs(size) <= abs(pos)

    def _spared(self, leg: str, size: Decimal, market: MarketInfo) -> bool:
        """Whether a reduce-only order of ``size`` (signed) on ``leg``'s venue is spared its minimum
        order value (``MarketInfo.min_notional_spares``)."""
        pos = self._position(leg)
        if market.min_notional_spares == "reduce_only":
            return self._reduces(leg, size)
        return market.min_notional_spares == "close" and pos != 0 and pos + size == 0

    def _below_minimum(self, taker_market: MarketInfo) -> bool:
        """The next hedge is under the taker's minimum order value (at the last mid seen there) and
        is not spared it (``_spared``), so the venue would refuse it."""
        size = self.ledger.hedge_size(self.cfg.coin, taker_market.lot)
        mid = self.mids.get(self.taker.name)
        return (size != 0 and mid is not None and abs(size) * mid < taker_market.min_notional
                and not self._spared(TAKER, size, taker_market))

    # -- the maker --------------------------------------------------------------------------------------
    def _side(self) -> bool:
        """Buy on the maker while walking up, sell while walking down."""
        cap = self.cfg.max_position if self.cfg.max_position is not None else self.cfg.size
        pos = self.maker_stats.position
        if self.going_up and pos + self.cfg.size > cap:
            self.going_up = False
        elif not self.going_up and pos - self.cfg.size < 0:  # walked back down to zero
            self.going_up = True
        return self.going_up

    async def _post(self) -> None:
        book = await self._book(self.maker, self.cfg.coin)
        if not self._usable(book, self.clock()):
            return
        is_buy = self._side()
        px = book.bids[0][0] if is_buy else book.asks[0][0]
        req = OrderRequest(self.cfg.coin, is_buy, self.cfg.size, px, tif="alo", client_id=self._cid())
        st = await self.maker.place(req)
        if st.status == UNKNOWN and req.client_id:
            st = await self.maker.order_status(self.cfg.coin, req.client_id)
        if st.order_id:
            self.maker_orders.add(st.order_id)
            mid = book.mid()
            if mid is not None:
                self.decided[st.order_id] = mid
        if st.status == OPEN or (st.order_id and not st.final):
            self.resting, self.resting_req, self.resting_since = st, req, self.clock()

    async def _cancel_maker(self) -> None:
        if self.resting is None or self.resting.order_id is None:
            self.resting = None
            return
        final = await self.maker.cancel(self.cfg.coin, self.resting.order_id)  # reads the final state
        if final.status != UNKNOWN:
            self.resting = None
        await self._sync()  # a fill may have raced the cancel

    # -- the hedge --------------------------------------------------------------------------------------
    def _book_problem(self, book: Book, now: int) -> str | None:
        """Why a book may not be traded on (None: it may)."""
        if not book.bids or not book.asks:
            return "one-sided book"
        bid, ask = book.bids[0][0], book.asks[0][0]
        if bid >= ask:
            return f"crossed or locked book ({bid} ≥ {ask})"
        if now - book.ts_ms > self.cfg.book_max_age_ms:
            return f"stale book ({now - book.ts_ms} ms old)"
        if (ask - bid) * BPS > self.cfg.max_spread_bps * (ask + bid) / 2:
            return f"book too wide ({bid} / {ask})"
        return None

    def _usable(self, book: Book, now: int) -> bool:
        problem = self._book_problem(book, now)
        if problem is not None:
            log.warning("refused: %s", problem)
        return problem is None

    async def _hedge(self, taker_market: MarketInfo, band_bps: int) -> bool:
        """One banded IOC for what is owed; True when nothing is owed after it."""
        size = self.ledger.hedge_size(self.cfg.coin, taker_market.lot)
        if size == 0:
            return True
        book = await self._book(self.taker, self.tcoin)
        if not self._usable(book, self.clock()):
            await self._cancel_maker()  # fail closed: no new maker fills while we cannot hedge
            return False
        is_buy = size > 0
        px, _ = _through(book, is_buy, band_bps, taker_market.tick)
        cid = self._cid()
        self.ledger.reserve(self.cfg.coin, cid, size)
        st = await self.taker.place(OrderRequest(self.tcoin, is_buy, abs(size), px, tif="ioc", client_id=cid,
                                                 reduce_only=self._reduces(TAKER, size)))
        st = await _settled(self.taker, self.tcoin, st, cid)
        if st.order_id:
            self.hedge_orders[st.order_id] = cid
            mid = book.mid()
            if mid is not None:
                self.decided[st.order_id] = mid
        if st.final or (st.order_id is None and st.status != UNKNOWN):
            self.awaiting[cid] = st.filled  # released once that much is seen in the fills
        if st.filled < abs(size):
            log.warning("hedge %s %s at %s filled %s: %s %s", size, self.tcoin, px, st.filled, st.status, st.error)
        await self._sync()
        return self.ledger.hedge_size(self.cfg.coin, taker_market.lot) == 0

    def _release(self) -> None:
        """Release each final hedge whose fills have all been seen.  A hedge the venue says filled
        keeps its reservation until its fills arrive, so a late fill feed never causes a second
        hedge for the same debt."""
        for cid, expected in list(self.awaiting.items()):
            if abs(self.ledger.hedges[cid].filled) >= expected:
                self.ledger.hedge_done(cid)
                del self.awaiting[cid]

    async def _repair(self, taker_market: MarketInfo) -> bool:
        """Hedge what is owed, escalating the band after each run of failures; False when even the
        widest band failed."""
        for band in (self.cfg.hedge_band_bps, 2 * self.cfg.hedge_band_bps):
            for _ in range(self.cfg.hedge_attempts):
                if await self._hedge(taker_market, band):
                    self.failures = 0
                    return True
                self.failures += 1
                await asyncio.sleep(self.cfg.poll_ms / 1000)
        return False

    async def _settle(self, taker_market: MarketInfo) -> bool:
        """Clear what is owed: a debt under the taker's minimum made hedgeable (or closed) on the maker
        venue first, then hedged on the taker; False when that failed."""
        if self._below_minimum(taker_market) and not await self._small_debt(taker_market):
            return False
        return await self._repair(taker_market)

    async def _small_debt(self, taker_market: MarketInfo) -> bool:
        """A debt the taker would refuse as under its minimum, acted on with an IOC on the maker venue,
        banded through a fresh maker book: reduce-only for all of it when the maker venue spares that
        order its minimum (e.g. it closes the whole maker position), else the debt topped up, the way
        the maker fills went, past both venues' minimums (5% spare) so the taker can hedge it.  The
        IOC's fills count like any maker fill (the ledger's debt is what the maker fills made it);
        each attempt waits for the fills the venue says it made, so nothing is done twice.  True once
        the debt is settled or hedgeable; False after every band failed."""
        assert self.maker_market is not None
        market = self.maker_market
        for band in (self.cfg.hedge_band_bps, 2 * self.cfg.hedge_band_bps):
            for _ in range(self.cfg.hedge_attempts):
                if not self._below_minimum(taker_market):
                    return True
                owed = self.ledger.owed(self.cfg.coin)  # what the taker would trade (signed)
                book = await self._book(self.maker, self.cfg.coin)
                mid = book.mid()
                if mid is not None and self._usable(book, self.clock()):
                    close = (abs(owed) / market.lot).to_integral_value(rounding=ROUND_FLOOR) * market.lot
                    close = close if owed > 0 else -close
                    if close != 0 and self._spared(MAKER, close, market):
                        size, what = close, "closed on the maker"
                    else:  # the way the maker fills went: more of the debt, to hedge it all
                        want = max(taker_market.min_notional / self.mids[self.taker.name] - abs(owed),
                                   market.min_notional / mid) * Decimal("1.05")
                        lots = (want / market.lot).to_integral_value(rounding=ROUND_CEILING) * market.lot
                        size, what = (-lots if owed > 0 else lots), "topped up on the maker to hedge it"
                    is_buy = size > 0
                    px, _ = _through(book, is_buy, band, market.tick)
                    req = OrderRequest(self.cfg.coin, is_buy, abs(size), px, tif="ioc", client_id=self._cid(),
                                       reduce_only=self._reduces(MAKER, size))
                    log.warning("%s %s owed is under the taker's minimum of %s USD: %s %s",
                                owed, self.cfg.coin, taker_market.min_notional, size, what)
                    st = await _settled(self.maker, self.cfg.coin, await self.maker.place(req), req.client_id)
                    if st.order_id:
                        self.maker_orders.add(st.order_id)
                        self.decided[st.order_id] = mid
                    if st.filled > 0 and not await self._await_maker_fills(st.filled):
                        return False  # filled by the venue's word, never seen: not retried blind
                    if not self._below_minimum(taker_market):
                        return True
                self.failures += 1
                await asyncio.sleep(self.cfg.poll_ms / 1000)
        return False

    async def _await_maker_fills(self, filled: Decimal) -> bool:
        """Wait (up to ``incident_timeout_ms``) until maker fills worth ``filled`` more than now are seen."""
        deadline = self.clock() + self.cfg.incident_timeout_ms
        seen = sum((abs(f.size) for f in self.fills[MAKER]), Decimal(0)) + filled
        while True:
            await self._sync()
            if sum((abs(f.size) for f in self.fills[MAKER]), Decimal(0)) >= seen:
                return True
            if self.clock() >= deadline:
                self.incidents.append(f"a maker IOC filled {filled} but its fills never arrived")
                return False
            await asyncio.sleep(self.cfg.poll_ms / 1000)

    async def _flatten(self) -> None:
        """Close both legs of this run at wide IOC prices (the last resort)."""
        await self._cancel_maker()
        for venue, coin, stats in ((self.maker, self.cfg.coin, self.maker_stats),
                                   (self.taker, self.tcoin, self.taker_stats)):
            if stats.position == 0:
                continue
            book = await self._book(venue, coin)
            is_buy = stats.position < 0
            side = book.asks if is_buy else book.bids
            if not side:
                self.incidents.append(f"{venue.name}: no book to flatten {stats.position} {coin}")
                continue
            market = (await venue.markets())[coin]
            ref = side[0][0]
            px = _round(ref * (1 + Decimal("0.05")) if is_buy else ref * (1 - Decimal("0.05")), market.tick,
                        up=not is_buy)
            st = await venue.place(OrderRequest(coin, is_buy, abs(stats.position), px, tif="ioc", reduce_only=True))
            log.warning("flatten %s %s %s: %s", venue.name, coin, stats.position, st.status)

    # -- reconciliation ---------------------------------------------------------------------------------
    async def _positions(self) -> dict[str, Decimal]:
        m, t = await self.maker.account(), await self.taker.account()
        pm, pt = m.positions.get(self.cfg.coin), t.positions.get(self.tcoin)
        return {"maker": pm.size if pm else Decimal(0), "taker": pt.size if pt else Decimal(0)}

    async def _reconcile(self) -> str | None:
        """None when both venues agree with the fills seen; else what differs."""
        await self._sync()
        await self._poll_funding()
        pos = await self._positions()
        want = {"maker": self.start_pos["maker"] + self.maker_stats.position,
                "taker": self.start_pos["taker"] + self.taker_stats.position}
        for leg in ("maker", "taker"):
            if pos[leg] != want[leg] and pos[leg] == 0:  # a sudden zero: read again before believing it
                await asyncio.sleep(self.cfg.poll_ms / 1000)
                pos = await self._positions()
        bad = [f"{leg}: venue says {pos[leg]}, the fills say {want[leg]}" for leg in ("maker", "taker")
               if pos[leg] != want[leg]]
        return "; ".join(bad) or None

    # -- the dry run ------------------------------------------------------------------------------------
    async def preview(self) -> Preview:
        """What the run would do first, read from both venues, with nothing sent (``--dry-run``): the
        first maker order and the hedge it would get were it filled now, and every check that would
        stop the run or make a hedge impossible."""
        cfg = self.cfg
        mm, tm = (await self.maker.markets()).get(cfg.coin), (await self.taker.markets()).get(self.tcoin)
        lines: list[tuple[str, str]] = []
        problems: list[str] = []
        if mm is None or tm is None:
            legs = ((self.maker, cfg.coin, mm), (self.taker, self.tcoin, tm))
            missing = [f"{v.name} lists no {c}" for v, c, m in legs if m is None]
            return Preview(lines, missing)
        self.start_pos = await self._positions()
        now = self.clock()
        mbook, tbook = await self._book(self.maker, cfg.coin), await self._book(self.taker, self.tcoin)
        for leg, venue, coin, market, book in ((MAKER, self.maker, cfg.coin, mm, mbook),
                                               (TAKER, self.taker, self.tcoin, tm, tbook)):
            top = f"{book.bids[0][0] if book.bids else '-'} / {book.asks[0][0] if book.asks else '-'}"
            lines.append((f"{leg} venue", f"{venue.name} {coin}: tick {market.tick}, lot {market.lot}, minimum "
                          f"{market.min_notional} USD; book {top}; position {self.start_pos[leg]}"))
            problem = self._book_problem(book, now)
            if problem is not None:
                problems.append(f"{venue.name}: {problem}")
            if cfg.size % market.lot != 0:
                problems.append(f"{venue.name}: size {cfg.size} is not a whole number of lots ({market.lot})")
        cap = cfg.max_position if cfg.max_position is not None else cfg.size
        lines.append(("inventory (this run)",
                      f"walks 0 → {cap} → 0 in steps of {cfg.size}, {cfg.iterations} maker fills"))
        if mbook.bids and tbook.bids and tbook.asks:
            px = mbook.bids[0][0]
            lines.append(("first maker order", f"BUY {cfg.size} {cfg.coin} post-only at {px} (the bid), "
                          f"{cfg.size * px:.2f} USD"))
            hedge_px, ref = _through(tbook, False, cfg.hedge_band_bps, tm.tick)
            lines.append(("its hedge, filled now", f"SELL {cfg.size} {self.tcoin} IOC, limit {hedge_px} "
                          f"({cfg.hedge_band_bps} bps through the bid {ref}); doubled after "
                          f"{cfg.hedge_attempts} failures, then both legs flattened"))
            for venue, market, notional in ((self.maker, mm, cfg.size * px), (self.taker, tm, cfg.size * ref)):
                if notional < market.min_notional:
                    problems.append(f"{venue.name}: an order of {cfg.size} is {notional:.2f} USD, under the "
                                    f"minimum of {market.min_notional} USD")
            limit = cfg.max_unhedged_usd if cfg.max_unhedged_usd is not None else 3 * cfg.size * px
            lines.append(("unhedged limits", f"{limit:.2f} USD or {cfg.max_unhedged_ms} ms, then quoting stops "
                          "and the hedge is repaired"))
        return Preview(lines, problems)

    # -- the loop ---------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> Summary:
        stop = stop or asyncio.Event()
        cfg = self.cfg
        self.since = self.clock()
        taker_market = self.taker_market = (await self.taker.markets())[self.tcoin]
        self.maker_market = (await self.maker.markets())[cfg.coin]
        await self._book(self.taker, self.tcoin)  # a mid to value the first hedge against the minimum
        self.start_pos = await self._positions()
        code, reason = OK, ""
        try:
            while not stop.is_set():
                now = self.clock()
                await self._sync()
                reconnects = self._reconnects()
                if now - self.last_reconcile >= cfg.reconcile_ms or reconnects != self.reconnects_seen:
                    if reconnects != self.reconnects_seen:
                        log.warning("a stream reconnected: reconciling against the venues")
                    self.last_reconcile, self.reconnects_seen = now, reconnects
                    diff = await self._reconcile()
                    if diff is not None:
                        code, reason = await self._incident(diff, stop)
                        if code != OK:
                            break
                owed = self.ledger.owed(cfg.coin)
                book_px = self.resting_req.px if self.resting_req else Decimal(0)
                limit = cfg.max_unhedged_usd if cfg.max_unhedged_usd is not None else 3 * cfg.size * book_px
                over = (self.ledger.unhedged_ms(cfg.coin, now) > cfg.max_unhedged_ms
                        or (limit and abs(self.ledger.unhedged(cfg.coin)) * book_px > limit))
                hedgeable = owed != 0 and abs(owed) >= taker_market.lot
                if hedgeable and self.resting is not None and not over and self._below_minimum(taker_market):
                    hedgeable = False  # the rest of the resting maker may fill: wait, up to max_unhedged_ms
                if hedgeable:
                    if over or self._below_minimum(taker_market):
                        await self._cancel_maker()
                    if not await self._settle(taker_market):
                        code, reason = FLATTENED, "the hedge failed at every band: both legs flattened"
                        await self._flatten()
                        break
                elif self.resting is None:
                    if self.done >= cfg.iterations:
                        break
                    await self._post()
                else:
                    st = await self.maker.order_status(cfg.coin, self.resting.order_id or "")
                    if st.final:
                        self.resting = None
                        await self._sync()
                        if st.filled > 0:
                            self.done += 1
                    elif now - self.resting_since >= cfg.requote_ms:
                        await self._cancel_maker()  # re-posted at the touch next round
                await asyncio.sleep(cfg.poll_ms / 1000)
        finally:
            await self._cancel_maker()
            if self.incidents:  # a venue that rolled back may show an order of ours resting again
                await self._cancel_every_maker()
            deadline = self.clock() + cfg.incident_timeout_ms
            while self.awaiting and self.clock() < deadline:  # hedges the venue filled: see their fills
                await asyncio.sleep(cfg.poll_ms / 1000)
                await self._sync()
            if self.awaiting:
                self.incidents.append(f"hedges {sorted(self.awaiting)} filled but their fills never arrived")
            if code == OK and self.ledger.hedge_size(cfg.coin, taker_market.lot) != 0 and \
                    not await self._settle(taker_market):
                code, reason = FLATTENED, "the last hedge failed: both legs flattened"
                await self._flatten()
        return Summary(code=code, iterations=self.done, maker=self.maker_stats, taker=self.taker_stats, reason=reason,
                       incidents=self.incidents, overshoots=len(self.ledger.overshoots),
                       unhedged=self.ledger.unhedged(cfg.coin))

    async def _incident(self, diff: str, stop: asyncio.Event) -> tuple[int, str]:
        """A position no fill explains: stop opening and wait for the venues to agree again — or,
        when a venue has lost fills (a rollback) and settled, rebuild, repair and stop."""
        self.incidents.append(diff)
        log.error("incident: %s — no new makers until the venues agree with the fills", diff)
        await self._cancel_maker()
        deadline = self.clock() + self.cfg.incident_timeout_ms
        last_lost: dict[str, list[str]] | None = None
        while self.clock() < deadline and not stop.is_set():
            await asyncio.sleep(self.cfg.reconcile_ms / 1000)
            if await self._reconcile() is None:
                log.warning("incident resolved: the venues agree with the fills again")
                return OK, ""
            history = await self._venue_history()
            lost = {leg: [f for f in self.fills[leg] if f.fill_id not in {h.fill_id for h in history[leg]}]
                    for leg in history}
            lost_ids = {leg: [f.fill_id for f in fills] for leg, fills in lost.items()}
            if any(lost.values()) and lost_ids == last_lost and await self._rebuild(history):
                return await self._repair_rollback(lost)
            last_lost = lost_ids
        return INCIDENT, f"unresolved incident: {diff}"

    # -- rollback -----------------------------------------------------------------------------------
    async def _venue_history(self) -> dict[str, list[Fill]]:
        """Each venue's own record of this run's fills, read again from the start of the run (from
        the record itself where the fills come from a stream)."""
        async def record(venue: Venue) -> list[Fill]:
            return await (venue.history(self.since) if isinstance(venue, Recorded) else venue.fills(self.since))

        maker = [f for f in await record(self.maker) if f.coin == self.cfg.coin and f.order_id in self.maker_orders]
        taker = [f for f in await record(self.taker) if f.coin == self.tcoin and f.order_id in self.hedge_orders]
        return {MAKER: maker, TAKER: taker}

    async def _rebuild(self, history: dict[str, list[Fill]]) -> bool:
        """Both legs as the venues' surviving fills say; True when the positions agree with them
        (the venue has settled on its rolled-back state), else nothing is changed."""
        stats = {leg: LegStats() for leg in history}
        for leg, fills in history.items():
            for f in fills:
                stats[leg].add(f)
        pos = await self._positions()
        if any(pos[leg] != self.start_pos[leg] + stats[leg].position for leg in stats):
            return False
        self.maker_stats, self.taker_stats = stats[MAKER], stats[TAKER]
        kept = {f"m{f.fill_id}" for f in history[MAKER]} | {f"t{f.fill_id}" for f in history[TAKER]}
        self.voided |= self.counted - kept
        self.counted = kept
        self.fills = history
        return True

    async def _repair_rollback(self, lost: dict[str, list[Fill]]) -> tuple[int, str]:
        """Hedge the net exposure the rollback left (both legs as the venues now hold them) on the
        taker, then stop for an operator."""
        assert self.taker_market is not None
        what = "; ".join(f"the {leg} venue lost {len(fills)} fills ({sum((f.size for f in fills), Decimal(0))})"
                         for leg, fills in lost.items() if fills)
        net = self.maker_stats.position + self.taker_stats.position
        self.ledger, self.awaiting = HedgeLedger(), {}
        if net != 0:
            self.ledger.maker_fill(self.cfg.coin, f"rollback:{self.seq}", net, self.clock())
        log.error("rollback: %s — the legs rebuilt from the venues' fills; net exposure %s hedged on the taker",
                  what, net)
        self.incidents.append(f"rollback: {what}")
        repaired = await self._settle(self.taker_market)
        if not repaired:
            await self._flatten()
            return INCIDENT, f"rollback: {what}; the repair failed, both legs flattened"
        return INCIDENT, f"rollback: {what}; net exposure {net} repaired; stopped for an operator"

    async def _cancel_every_maker(self) -> None:
        """Cancel every maker order of this run the venue shows open."""
        for oid in sorted(self.maker_orders):
            st = await self.maker.order_status(self.cfg.coin, oid)
            if st.status == OPEN:
                await self.maker.cancel(self.cfg.coin, oid)
