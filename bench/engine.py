"""Throughput benchmark: perpbox's full exchange engine vs pyorderbook (book only).

A seeded mixed workload (~60% resting limit orders, ~25% cancels, ~15% marketable limit orders;
1,000 accounts; 2 markets) is generated once, up front and untimed, as a plain list of tuples::

    (op, account, market, is_buy, px, sz, target)

``px`` is in the market's integer price units, ``sz`` in lots, ``target`` (cancels only) is the
index in the list of the placement being cancelled.  The identical sequence is replayed

(a) through ``perpbox.exchange.Exchange`` -- the whole engine: command objects, validation (tick,
    lot, min notional), margin checks, matching with self-trade prevention, fees, positions and
    the event log; and
(b) through ``pyorderbook.Book`` -- a price-time-priority book only (no accounts, no margin, no
    fees, no self-trade prevention; Decimal prices and uuid4 order ids).

Throughput is timed over the whole replay of each side: building each command (order) and applying
it; each op's outcome is kept and tallied after the clock stops.  Each side runs in a (spawned) process
of its own and the sides take turns of 2,000 ops (``run_alternating``): the shared machine's speed drifts by
±30% within seconds, and turns give both sides the same machine, while separate processes keep each
side's heap and garbage collections its own.  Both sides start from a settled heap as ``perpbox
serve`` does after loading (one collection, ``gc.freeze()``, and serve's collection thresholds,
``perpbox.store.sequencer.GC_THRESHOLDS``); ``--cpython-gc`` keeps CPython's default thresholds instead.
A third side, the *floor*, runs the same harness against ``OutputOnlyExchange``, which does no
work but build one event and one status per op: what is left of an op's time once the engine's own
work is gone.  Per-op latencies of the engine are then measured in a *separate* pass on a fresh exchange
(``time.perf_counter_ns`` around each ``apply``) so that timing calls do not distort the throughput
figure.

The generator keeps its own tiny reference book (integer prices, no STP) so that resting orders are
placed away from the touch, marketable orders are priced a few ticks through the opposite touch,
and cancels target an order that is live at that point (in the reference book).  pyorderbook has
the same matching semantics as that reference book, so its fill count must equal the generator's
exactly (checked below); the engine may differ slightly -- see ``explain_fill_difference``.

``--baseline SRC`` (another perpbox ``src`` directory, e.g. a copy of the sources and compiled
``.so`` files taken before a refactor) adds a fourth side, the *baseline engine*: the identical op
sequence through the ``Exchange`` of that build, in its own turns like the others.  ``--src SRC``
chooses the engine side's build the same way (default: this checkout's ``src``, else the installed
perpbox).  Each engine side's process puts its directory first on ``sys.path`` before importing
perpbox, stops if ``perpbox.__file__`` is not under it, and the bench prints ``perpbox.__file__``
and whether ``perpbox.exchange.engine`` is compiled (a ``.so``) for both.  Their outcomes must be
identical (a warning says otherwise).  ``--repeat N`` runs N rounds, each with fresh processes and
the first turn alternating between rounds, prints each round's ops/s and ratios, then the median and
range (min–max) of each ratio: engine/pyorderbook and, with ``--baseline``, engine/baseline.

The last line printed is exactly (with ``--repeat``: the medians of the rounds)::

    engine_ops_per_s=<int> pyorderbook_ops_per_s=<int> ratio=<float>

and, with ``--baseline``, the line before it is::

    baseline_ops_per_s=<int> engine_baseline_ratio=<float>

Run: ``.venv/bin/python bench/engine.py [--ops N] [--seed S] [--cpython-gc] [--latency-ops N] [--no-floor]
[--repeat N] [--src SRC] [--baseline SRC]``, e.g. before/after a refactor of the engine::

    cp -a src /tmp/before-src                     # with its compiled .so files, before the change
    .venv/bin/python bench/engine.py --src src --baseline /tmp/before-src --repeat 5
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from heapq import heappop, heappush
from pathlib import Path

# Make ``perpbox`` importable from a source checkout (src layout) without installing it.
_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

# Op codes in the workload tuples.
LIMIT = 0  # resting limit order, placed away from the touch
CANCEL = 1  # cancel of an earlier placement (by workload index)
MARKETABLE = 2  # limit order priced a few ticks through the opposite touch (Gtc: residual rests)
OP_NAMES = {LIMIT: "limit(rest)", CANCEL: "cancel", MARKETABLE: "marketable"}

N_ACCOUNTS = 1_000
USD = 10**6
DEPOSIT_USD = 1_000_000  # per account; large enough that margin checks always pass
TS0 = 1_700_000_000_000  # ms

# Market parameters.  Prices are integers in units of 10**-(6 - sz_decimals) USD.
#   BTC: sz_decimals 5 -> px unit $0.1; mid $100,000 = 1_000_000 units; tick $1 (10 units):
#        6-digit units divisible by 10 are whole dollars, always valid.
#   ETH: sz_decimals 4 -> px unit $0.01; mid $3,000 = 300_000 units; tick $0.1 (10 units):
#        5 significant figures at that magnitude.
# min_lots keeps px * sz >= $10 (10_000_000 micro-USDC) at the lowest price the generator uses
# (mid - MAX_DIST ticks), so no order is rejected for notional.
MARKETS = [
    # name, asset, sz_decimals, mid_px, tick, min_lots, margin tiers (lower bound $, max lev)
    ("BTC", 0, 5, 1_000_000, 10, 12, [(0, 40), (150_000_000, 20)]),
    ("ETH", 1, 4, 300_000, 10, 36, [(0, 25), (100_000_000, 15)]),
]
MAX_DIST = 300  # ticks: resting orders are placed within this distance of the mid
MEAN_DIST = 25  # ticks: mean (exponential) distance of resting orders from the mid
CROSS_LEVELS = 3  # marketable orders are priced up to this many ticks through the touch
P_LIMIT, P_CANCEL = 0.60, 0.25  # remaining 0.15: marketable
# Share of cancels aimed at a random earlier placement instead of a live order: like a cancel that
# races a fill, it usually fails (order already filled/cancelled) and must fail cleanly.
P_STALE_CANCEL = 0.05


def account(i: int) -> str:
    return "0x" + f"{i:040x}"


# --------------------------------------------------------------------------------------------
# Workload generation (untimed)
# --------------------------------------------------------------------------------------------
class _RefBook:
    """Minimal integer price-time book used by the generator to know the touch and live orders.
    Same matching semantics as pyorderbook (no self-trade prevention, maker price)."""

    __slots__ = ("ask_heap", "asks", "bid_heap", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, dict[int, int]] = {}  # px -> {workload index: remaining lots}
        self.asks: dict[int, dict[int, int]] = {}
        self.bid_heap: list[int] = []  # negated
        self.ask_heap: list[int] = []

    def best_bid(self) -> int | None:
        h = self.bid_heap
        while h and -h[0] not in self.bids:
            heappop(h)
        return -h[0] if h else None

    def best_ask(self) -> int | None:
        h = self.ask_heap
        while h and h[0] not in self.asks:
            heappop(h)
        return h[0] if h else None

    def rest(self, idx: int, is_buy: bool, px: int, sz: int) -> None:
        side = self.bids if is_buy else self.asks
        level = side.get(px)
        if level is None:
            level = side[px] = {}
            heappush(self.bid_heap if is_buy else self.ask_heap, -px if is_buy else px)
        level[idx] = sz

    def remove(self, is_buy: bool, px: int, idx: int) -> None:
        side = self.bids if is_buy else self.asks
        level = side[px]
        del level[idx]
        if not level:
            del side[px]

    def match(self, is_buy: bool, px: int, sz: int, on_done) -> tuple[int, int]:
        """Match an incoming order; returns (remaining lots, number of fills).  ``on_done(idx)``
        is called for each maker that is fully filled."""
        fills = 0
        while sz:
            best = self.best_ask() if is_buy else self.best_bid()
            if best is None or (best > px if is_buy else best < px):
                break
            level = (self.asks if is_buy else self.bids)[best]
            for idx in list(level):
                rem = level[idx]
                q = min(rem, sz)
                sz -= q
                fills += 1
                if q == rem:
                    del level[idx]
                    on_done(idx)
                else:
                    level[idx] = rem - q
                if not sz:
                    break
            if not level:
                del (self.asks if is_buy else self.bids)[best]
        return sz, fills


def generate(n_ops: int, seed: int) -> tuple[list[tuple], dict[str, int]]:
    rng = random.Random(seed)
    rand, randint, expovariate = rng.random, rng.randint, rng.expovariate
    books = [_RefBook() for _ in MARKETS]
    accounts = [account(i) for i in range(N_ACCOUNTS)]
    ops: list[tuple] = []
    # live resting orders (in the reference book): list + position map for O(1) random pick/removal
    live: list[int] = []
    live_pos: dict[int, int] = {}
    placements: list[int] = []
    stats = Counter()

    def live_add(idx: int) -> None:
        live_pos[idx] = len(live)
        live.append(idx)

    def live_remove(idx: int) -> None:
        pos = live_pos.pop(idx)
        last = live.pop()
        if last != idx:
            live[pos] = last
            live_pos[last] = pos

    for _ in range(n_ops):
        r = rand()
        op = LIMIT if r < P_LIMIT else CANCEL if r < P_LIMIT + P_CANCEL else MARKETABLE
        if op == CANCEL:
            if live and rand() >= P_STALE_CANCEL:
                target = live[randint(0, len(live) - 1)]
            elif placements:  # any earlier placement: often already done (must fail cleanly)
                target = placements[randint(0, len(placements) - 1)]
                if target not in live_pos:
                    stats["cancel_of_dead_order"] += 1
            else:
                op = LIMIT
            if op == CANCEL:
                _, acct, m, is_buy, px, _, _ = ops[target]
                ops.append((CANCEL, acct, m, is_buy, px, 0, target))
                if target in live_pos:
                    live_remove(target)
                    books[m].remove(is_buy, px, target)
                continue
        m = randint(0, len(MARKETS) - 1)
        _, _, _, mid, tick, min_lots, _ = MARKETS[m]
        book = books[m]
        is_buy = rand() < 0.5
        acct = accounts[randint(0, N_ACCOUNTS - 1)]
        best_bid, best_ask = book.best_bid(), book.best_ask()
        if op == LIMIT:
            dist = min(MAX_DIST, 1 + int(expovariate(1.0 / MEAN_DIST)))
            if is_buy:
                px = mid - dist * tick
                if best_ask is not None and px >= best_ask:  # never cross: stay passive
                    px = best_ask - tick
            else:
                px = mid + dist * tick
                if best_bid is not None and px <= best_bid:
                    px = best_bid + tick
            sz = randint(min_lots, 5 * min_lots)
        else:
            touch = best_ask if is_buy else best_bid
            if touch is None:
                touch = mid
                stats["marketable_into_empty_side"] += 1
            through = randint(0, CROSS_LEVELS) * tick
            px = touch + through if is_buy else touch - through
            sz = randint(min_lots, 10 * min_lots)
        px = max(tick, min(px, mid + MAX_DIST * tick + CROSS_LEVELS * tick))
        idx = len(ops)
        ops.append((op, acct, m, is_buy, px, sz, -1))
        placements.append(idx)

        def done(j: int) -> None:
            live_remove(j)

        remaining, fills = book.match(is_buy, px, sz, done)
        stats["ref_fills"] += fills
        if remaining:
            book.rest(idx, is_buy, px, remaining)
            live_add(idx)
    stats["ref_live_at_end"] = len(live)
    return ops, dict(stats)


def check_prices(ops: list[tuple]) -> None:
    """Assert every price passes perpbox's tick rule and every order the $10 minimum."""
    try:
        from perpbox.market import MarginTable, MarketSpec
    except ImportError:
        return
    specs = [
        MarketSpec(name=n, asset=a, sz_decimals=d, margin_table=MarginTable.hyperliquid(t))
        for n, a, d, _, _, _, t in MARKETS
    ]
    for op, _, m, _, px, sz, _ in ops:
        if op != CANCEL:
            assert specs[m].valid_price(px), (m, px)
            assert px * sz >= specs[m].min_notional, (m, px, sz)


# --------------------------------------------------------------------------------------------
# perpbox side
# --------------------------------------------------------------------------------------------
def new_exchange():
    from perpbox.exchange import Exchange
    from perpbox.exchange.commands import AddMarket, Deposit
    from perpbox.market import MarginTable, MarketSpec

    ex = Exchange()
    for name, asset, szd, mid, _, _, tiers in MARKETS:
        spec = MarketSpec(name=name, asset=asset, sz_decimals=szd, margin_table=MarginTable.hyperliquid(tiers))
        ex.apply(AddMarket(ts=TS0, spec=spec, mark_px=mid))
    for i in range(N_ACCOUNTS):
        ex.apply(Deposit(ts=TS0, user=account(i), usd=DEPOSIT_USD * USD))
    return ex


def _status_oid(status: object) -> int | None:
    """The oid in an order's outcome: a typed ``Resting`` / ``Filled`` (``exchange.results``), or on a
    baseline from before typed results a status dict ({"resting": {"oid"}}, {"filled": {"oid"}}).
    Read by attribute, not by type: a baseline's process cannot import ``exchange.results``."""
    if isinstance(status, dict):
        for key in ("resting", "filled"):
            body = status.get(key)
            if isinstance(body, dict) and "oid" in body:
                return body["oid"]
        return None
    oid = getattr(status, "oid", None)
    return oid if isinstance(oid, int) else None


def _rests(status: object) -> bool:
    """Whether a placement rests (only a resting order can be cancelled later)."""
    return "resting" in status if isinstance(status, dict) else type(status).__name__ == "Resting"


def _canceled(status: object) -> bool:
    return status == "success" or type(status).__name__ == "Canceled"


def _error_text(status: object) -> str:
    if isinstance(status, dict):
        return str(status.get("error"))
    return str(getattr(status, "message", status))


def _stepper(ex: object):
    """``cmd -> (events, first item's outcome)``: ``execute`` where the exchange has it, else (a
    baseline from before typed results) ``apply`` and then ``last_response``."""
    execute = getattr(ex, "execute", None)
    if execute is not None:
        def step(cmd):
            outcome = execute(cmd)
            return outcome.events, outcome.response.items[0]
        return step
    apply = ex.apply

    def legacy_step(cmd):
        events = apply(cmd)
        return events, ex.last_response[0]
    return legacy_step


class OutputOnlyExchange:
    """The floor: an "exchange" that does no work but materialise what ``Exchange.execute`` hands
    back for the common case (one event, a list of events, a typed status in an ``Outcome``), written
    in plain Python.  Run through the same harness (``EngineRunner``), it measures the bench loop,
    the command objects and that output -- the ceiling any engine behind this API can reach here.
    Every placement rests and every cancel succeeds, so it is a floor on cost, not a model."""

    def __init__(self) -> None:
        from perpbox.exchange.commands import PlaceOrders
        from perpbox.exchange.events import OrderClosed, OrderPlaced
        from perpbox.exchange.results import CANCELED, Outcome, Resting, Statuses

        self._place_type, self._placed, self._closed = PlaceOrders, OrderPlaced, OrderClosed
        self._outcome, self._resting, self._statuses = Outcome, Resting, Statuses
        self._canceled = Statuses((CANCELED,))
        self.next_oid = 1
        self.log: list[object] = []

    def execute(self, cmd):
        if type(cmd) is self._place_type:
            req, oid = cmd.orders[0], self.next_oid
            self.next_oid = oid + 1
            out = [self._placed(cmd.ts, oid, cmd.user, req.asset, req.is_buy, req.px, req.sz, req.tif, "open")]
            response = self._statuses((self._resting(oid),))
        else:
            out = [self._closed(cmd.ts, cmd.oid, "canceled")]
            response = self._canceled
        self.log.append(out)
        return self._outcome(out, response)


class EngineRunner:
    """Replays ``ops`` through a fresh ``Exchange`` block by block (see ``run_alternating``).

    Per op it does what a client of the engine must do: build the command, apply it, and read the
    oid a placement got, so that later cancels can name it.  Each op's events and response are kept;
    tallying them happens after the run, outside the timed part (``tally_engine``)."""

    def __init__(self, ops: list[tuple], exchange: object | None = None) -> None:
        self.ops = ops
        self.ex = new_exchange() if exchange is None else exchange
        self.oids: dict[int, int] = {}  # workload index -> engine oid
        self.results: list[tuple[int, object, list]] = []

    def block(self, start: int, stop: int, latencies: dict[int, list[int]] | None = None) -> float:
        """Replay ops[start:stop]; returns the seconds it took.  With ``latencies`` given, each apply
        is also timed with perf_counter_ns (use a separate pass for this)."""
        from perpbox.exchange.commands import Cancel, OrderRequest, PlaceOrders

        ops, oids = self.ops, self.oids
        step = _stepper(self.ex)
        keep = self.results.append
        pc = time.perf_counter_ns
        t0 = time.perf_counter()
        for i in range(start, stop):
            op, acct, m, is_buy, px, sz, target = ops[i]
            ts = TS0 + i + 1
            if op == CANCEL:
                oid = oids.get(target)
                if oid is None:  # the placement never rested/got an oid: nothing to cancel
                    keep((op, None, []))
                    continue
                cmd = Cancel(ts=ts, user=acct, asset=m, oid=oid)
            else:
                req = OrderRequest(asset=m, is_buy=is_buy, px=px, sz=sz, tif="Gtc")
                cmd = PlaceOrders(ts=ts, user=acct, orders=[req])
            if latencies is not None:
                t = pc()
                events, status = step(cmd)
                latencies[op].append(pc() - t)
            else:
                events, status = step(cmd)
            if op != CANCEL and _rests(status):
                oids[i] = _status_oid(status)
            keep((op, status, events))
        return time.perf_counter() - t0

    def tally(self) -> dict:
        return tally_engine(self.results)


def tally_engine(results: list[tuple[int, object, list]]) -> dict:
    """Counters over an engine run's kept responses and events (untimed)."""
    from perpbox.exchange.events import Fill, OrderClosed

    counts = Counter()
    errors = Counter()
    other_closes = Counter()  # e.g. marginCanceled makers: none expected with this workload
    for op, status, events in results:
        if op == CANCEL:
            if status is None:
                counts["cancel_unknown"] += 1
            elif _canceled(status):
                counts["cancel_ok"] += 1
            else:
                counts["cancel_failed"] += 1
                errors[_error_text(status)] += 1
        elif _status_oid(status) is not None:
            counts["placed"] += 1
        else:
            counts["place_error"] += 1
            errors[_error_text(status)] += 1
        for e in events:
            t = type(e)
            if t is Fill:
                counts["fills"] += 1
                counts["fill_lots"] += e.sz
            elif t is OrderClosed and e.status not in ("filled", "canceled"):
                if e.status == "selfTradeCanceled":
                    counts["stp_canceled"] += 1
                else:
                    other_closes[e.status] += 1
    for status, n in other_closes.items():
        errors[f"OrderClosed {status}"] += n
    return {"counts": counts, "errors": errors}


# --------------------------------------------------------------------------------------------
# pyorderbook side
# --------------------------------------------------------------------------------------------
class PyorderbookRunner:
    """The same sequence through pyorderbook.  API (0.4.9): ``Book().match(Order)`` matches an
    incoming order (price-time priority, maker price), rests any remainder and returns a
    ``TradeBlotter`` whose ``.trades`` lists the fills; ``Book().cancel(order)`` takes the Order
    object itself (ids are uuid4) and raises KeyError if it is no longer resting.  As on the
    engine side, each op's outcome is kept and counted after the run (``tally_pyorderbook``)."""

    def __init__(self, ops: list[tuple]) -> None:
        from pyorderbook import Book

        self.ops = ops
        self.book = Book()
        self.orders: dict[int, object] = {}  # workload index -> pyorderbook Order
        self.results: list[tuple[int, object]] = []

    def block(self, start: int, stop: int) -> float:
        from pyorderbook import ask, bid

        ops, orders = self.ops, self.orders
        match, cancel = self.book.match, self.book.cancel
        symbols = [m[0] for m in MARKETS]
        keep = self.results.append
        t0 = time.perf_counter()
        for i in range(start, stop):
            op, _acct, m, is_buy, px, sz, target = ops[i]
            if op == CANCEL:
                order = orders.get(target)
                if order is None:
                    keep((op, None))
                    continue
                try:
                    cancel(order)
                    keep((op, True))
                except KeyError:  # already filled or cancelled
                    keep((op, False))
            else:
                # pyorderbook converts the price with Decimal(str(price)); an int gives an exact Decimal.
                order = (bid if is_buy else ask)(symbols[m], px, sz)
                orders[i] = order
                keep((op, match(order)))
        return time.perf_counter() - t0

    def tally(self) -> dict:
        return tally_pyorderbook(self.results)


def tally_pyorderbook(results: list[tuple[int, object]]) -> dict:
    counts = Counter()
    for op, outcome in results:
        if op == CANCEL:
            counts["cancel_unknown" if outcome is None else "cancel_ok" if outcome else "cancel_failed"] += 1
        else:
            counts["placed"] += 1
            for t in outcome.trades:
                counts["fills"] += 1
                counts["fill_lots"] += t.fill_quantity
    return {"counts": counts}


# --------------------------------------------------------------------------------------------
def pct(sorted_ns: list[int], q: float) -> float:
    if not sorted_ns:
        return float("nan")
    k = min(len(sorted_ns) - 1, max(0, round(q * (len(sorted_ns) - 1))))
    return sorted_ns[k] / 1000.0


def explain_fill_difference() -> str:
    # Why the engine's fill count can differ from pyorderbook's (which equals the generator's
    # reference book exactly):
    # * Self-trade prevention: with 1,000 accounts a marketable order sometimes meets a resting
    #   order of its own account.  Hyperliquid (and perpbox) cancel the resting maker
    #   ("selfTradeCanceled", expire-maker) instead of trading; pyorderbook has no notion of
    #   accounts and trades with itself.  That removes a fill, removes liquidity that later
    #   orders would have hit, and makes later cancels of that order fail on the engine side.
    # * Any engine rejection (margin, tick, min notional) -- none is expected with this workload
    #   (prices are checked against MarketSpec.valid_price and $10 up front; deposits are $1M).
    # Divergence compounds slightly: once the books differ, later marketable orders can walk a
    # different set of makers.  Fills in *lots* are the more robust comparison.
    return "differences come from self-trade prevention (engine) vs none (pyorderbook)"


CPYTHON_GC_THRESHOLDS = (700, 10, 10)


def serve_heap() -> tuple[tuple[int, int, int], Callable[[tuple[int, int, int]], None]]:
    """``perpbox serve``'s collection thresholds and heap-settling function, from the perpbox this
    process imported (``store.sequencer``; a baseline build from before issue 18 has them in
    ``api.venue``)."""
    try:
        from perpbox.store.sequencer import GC_THRESHOLDS, settle_heap
    except ImportError:
        from perpbox.api.venue import GC_THRESHOLDS, settle_heap  # type: ignore[no-redef]
    return GC_THRESHOLDS, settle_heap
BLOCK = 2_000  # ops per turn: the two sides take turns of this many ops each (run_alternating)


def _quiet_pyorderbook() -> None:
    """pyorderbook calls logging.basicConfig(level=INFO) on import and logs an ERROR for every
    failed cancel; silence it so that logging I/O is not part of its measured time."""
    logging.getLogger("pyorderbook").setLevel(logging.CRITICAL)
    logging.getLogger("pyorderbook.book").setLevel(logging.CRITICAL)


ENGINE_SIDES = ("engine", "baseline")  # the sides that replay through a perpbox Exchange
SIDE_LABELS = {"engine": "perpbox engine", "baseline": "baseline engine", "pyorderbook": "pyorderbook",
               "floor": "floor"}


def import_perpbox_from(src: str | None) -> dict[str, object]:
    """Put ``src`` (a perpbox ``src`` directory; None: leave ``sys.path`` as it is) first on
    ``sys.path``, import the engine and report where it came from: ``perpbox.__file__``, the file of
    ``perpbox.exchange.engine`` and whether that is a compiled (mypyc) extension.  Exits if perpbox
    was already imported from elsewhere or does not come from ``src``."""
    if src is not None:
        root = Path(src).resolve()
        if "perpbox" in sys.modules:  # a process that imported perpbox cannot swap it for another build
            raise SystemExit(f"perpbox already imported from {sys.modules['perpbox'].__file__}, not {root}")
        sys.path.insert(0, str(root))
    import perpbox
    import perpbox.exchange.engine as engine_module

    info: dict[str, object] = {
        "perpbox": perpbox.__file__,
        "engine_module": engine_module.__file__,
        "compiled": str(engine_module.__file__).endswith(".so"),
    }
    if src is not None and not Path(str(perpbox.__file__)).resolve().is_relative_to(root):
        raise SystemExit(f"asked for perpbox from {root}, imported {perpbox.__file__}")
    return info


def describe_build(info: dict[str, object]) -> str:
    return (f"perpbox.__file__={info['perpbox']}  perpbox.exchange.engine "
            f"{'compiled' if info['compiled'] else 'NOT compiled (pure Python)'}: {info['engine_module']}")


def _side_process(conn, side: str, ops: list[tuple], gc_thresholds: tuple[int, int, int], src: str | None) -> None:
    """One side of the comparison, in a fresh process of its own: it imports perpbox from ``src``
    (``import_perpbox_from``; the first message it sends back says from where), builds its state,
    settles its heap as ``perpbox serve`` does, then replays the blocks it is sent and reports their
    seconds."""
    info = import_perpbox_from(src)
    _, settle_heap = serve_heap()

    _quiet_pyorderbook()
    if side in ENGINE_SIDES:
        runner = EngineRunner(ops)
    elif side == "floor":
        runner = EngineRunner(ops, OutputOnlyExchange())
    else:
        runner = PyorderbookRunner(ops)
    conn.send(info)
    settle_heap(gc_thresholds)
    while (span := conn.recv()) is not None:
        conn.send(runner.block(*span))
    conn.send(runner.tally())
    conn.close()


def run_alternating(ops: list[tuple], sides: tuple[str, ...], gc_thresholds: tuple[int, int, int],
                    block: int = BLOCK, srcs: dict[str, str | None] | None = None,
                    ) -> dict[str, tuple[float, dict, dict]]:
    """Replay ``ops`` through each side, the sides taking turns of ``block`` ops (who goes first
    alternates), each side in its own process.  ``srcs`` maps a side to the perpbox ``src``
    directory it imports from (default: this process's ``sys.path``).  Returns side -> (seconds,
    tally, build info from ``import_perpbox_from``).

    Why: this shared 2-core machine drifts in speed by ±30% within seconds, so two long runs one
    after the other compare two different machines.  Short alternating turns give both sides the
    same machine; separate processes keep each side's heap, and so its garbage collections, its own
    (in one process a collection started by one side would walk the other side's objects too).
    The processes are spawned, not forked: a fresh interpreter is the only way for the baseline side
    to import another build of perpbox (a compiled build cannot be unloaded), and every side starts
    the same way so that none inherits the parent's heap."""
    ctx = multiprocessing.get_context("spawn")
    srcs = srcs or {}
    conns = {}
    procs = []
    for side in sides:
        parent_end, child_end = ctx.Pipe()
        proc = ctx.Process(target=_side_process, args=(child_end, side, ops, gc_thresholds, srcs.get(side)),
                           daemon=True)
        proc.start()
        procs.append(proc)
        conns[side] = parent_end
    infos = {}
    for side in sides:
        try:
            infos[side] = conns[side].recv()
        except EOFError:
            raise SystemExit(f"side {side!r} failed to start (see its error above)") from None
    seconds = dict.fromkeys(sides, 0.0)
    for turn, start in enumerate(range(0, len(ops), block)):
        span = (start, min(len(ops), start + block))
        for side in (sides if turn % 2 == 0 else sides[::-1]):
            conns[side].send(span)
            seconds[side] += conns[side].recv()
    out = {}
    for side in sides:
        conns[side].send(None)
        out[side] = (seconds[side], conns[side].recv(), infos[side])
    for proc in procs:
        proc.join()
    return out


def _median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _spread(xs: list[float], fmt: str) -> str:
    """``median (min–max)`` of ``xs``, each formatted with ``fmt``."""
    return f"{_median(xs):{fmt}} ({min(xs):{fmt}}–{max(xs):{fmt}})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ops", type=int, default=200_000, help="workload size (default 200000)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--latency-ops", type=int, default=None,
        help="ops replayed in the separate latency pass (default: all; 0 disables)",
    )
    ap.add_argument("--cpython-gc", action="store_true",
                    help=f"keep CPython's collection thresholds {CPYTHON_GC_THRESHOLDS} instead of perpbox serve's")
    ap.add_argument("--block", type=int, default=BLOCK, help=f"ops per turn (default {BLOCK})")
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternating rounds, each with fresh processes; medians and ranges are printed (default 1)")
    ap.add_argument("--src", metavar="SRC", default=None,
                    help="perpbox src directory the engine side (and the harness) imports from "
                         f"(default: this checkout's {_SRC} if present, else the installed perpbox)")
    ap.add_argument("--baseline", metavar="SRC", default=None,
                    help="a further side, the baseline engine: the same ops through the Exchange of the "
                         "perpbox in this other src directory (e.g. the build before a refactor)")
    ap.add_argument("--pyorderbook-only", action="store_true", help="skip the engine (debugging)")
    ap.add_argument("--no-floor", action="store_true",
                    help="skip the floor side (the harness with an output-only stand-in engine)")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")

    _quiet_pyorderbook()
    # the engine side's perpbox, imported here too (the workload check, the latency pass)
    main_info = import_perpbox_from(args.src)
    # what ``perpbox serve`` does after loading its state, done by each timed side alike
    GC_THRESHOLDS, settle_heap = serve_heap()

    t0 = time.perf_counter()
    ops, gstats = generate(args.ops, args.seed)
    check_prices(ops)
    op_counts = Counter(op for op, *_ in ops)
    print(f"workload: {len(ops)} ops, seed {args.seed}, {N_ACCOUNTS} accounts, {len(MARKETS)} markets "
          f"(generated in {time.perf_counter() - t0:.2f}s, untimed)")
    for op in (LIMIT, CANCEL, MARKETABLE):
        print(f"  {OP_NAMES[op]:<12} {op_counts[op]:>8}  ({op_counts[op] / len(ops):.1%})")
    print(f"  reference book: fills={gstats.get('ref_fills', 0)} live_at_end={gstats.get('ref_live_at_end', 0)} "
          f"cancel_of_dead_order={gstats.get('cancel_of_dead_order', 0)} "
          f"marketable_into_empty_side={gstats.get('marketable_into_empty_side', 0)}")

    sides: tuple[str, ...] = ("pyorderbook",) if args.pyorderbook_only else ("engine", "pyorderbook")
    if args.baseline:
        sides += ("baseline",)
    if not args.no_floor:
        sides += ("floor",)
    # every side but the baseline imports from the parent's sys.path, i.e. what main_info reports
    srcs = {side: args.src for side in sides}
    if args.baseline:
        srcs["baseline"] = args.baseline
    gc_thresholds = CPYTHON_GC_THRESHOLDS if args.cpython_gc else GC_THRESHOLDS
    print(f"timed: each side in its own process, taking turns of {args.block} ops; heap settled (collect, freeze), "
          f"gc thresholds {gc_thresholds}{' (CPython default)' if args.cpython_gc else ' (as perpbox serve)'}; "
          f"{args.repeat} round(s)")

    rates: dict[str, list[float]] = {side: [] for side in sides}
    ratio_pob: list[float] = []  # engine / pyorderbook, per round
    ratio_base: list[float] = []  # engine / baseline, per round
    runs: dict[str, tuple[float, dict, dict]] = {}
    for rnd in range(args.repeat):
        # who goes first alternates between rounds too
        order = sides if rnd % 2 == 0 else sides[::-1]
        runs = run_alternating(ops, order, gc_thresholds, args.block, srcs)
        if rnd == 0:
            for side in ENGINE_SIDES:
                if side in runs:
                    print(f"  {SIDE_LABELS[side]}: {describe_build(runs[side][2])}")
        for side in sides:
            rates[side].append(len(ops) / runs[side][0])
        parts = [f"{SIDE_LABELS[side]} {int(rates[side][-1])}" for side in sides]
        line = f"round {rnd + 1}/{args.repeat}: ops/s " + ", ".join(parts)
        if "engine" in runs:
            ratio_pob.append(rates["engine"][-1] / rates["pyorderbook"][-1])
            line += f"; engine/pyorderbook {ratio_pob[-1]:.2f}"
            if "baseline" in runs:
                ratio_base.append(rates["engine"][-1] / rates["baseline"][-1])
                line += f"; engine/baseline {ratio_base[-1]:.3f}"
        print(line, flush=True)

    # the counts are deterministic: those of the last round stand for all
    pob = runs["pyorderbook"][1]
    eng = runs["engine"][1] if "engine" in runs else None
    base = runs["baseline"][1] if "baseline" in runs else None
    cols = ["engine", "pyorderbook"] + (["baseline"] if base else [])
    print()
    print(f"{'':<22}" + "".join(f"{SIDE_LABELS[side]:>16}" for side in cols))
    rows = ["placed", "place_error", "cancel_ok", "cancel_failed", "cancel_unknown", "fills", "fill_lots"]
    for key in rows:
        print(f"{key:<22}" + "".join(f"{(runs[s][1]['counts'].get(key, 0) if s in runs else '-')!s:>16}" for s in cols))
    if eng:
        print(f"{'stp_canceled':<22}" + "".join(
            f"{('n/a' if s == 'pyorderbook' else runs[s][1]['counts'].get('stp_canceled', 0))!s:>16}" for s in cols))
    print(f"{'seconds (last round)':<22}"
          + "".join(f"{runs[s][0]:>16.2f}" if s in runs else f"{'-':>16}" for s in cols))
    if pob["counts"]["fills"] != gstats.get("ref_fills", 0):
        print(f"WARNING: pyorderbook fills {pob['counts']['fills']} != reference {gstats.get('ref_fills')}")
    if eng and base and (eng["counts"] != base["counts"] or eng["errors"] != base["errors"]):
        print("WARNING: the engine's and the baseline's outcomes differ on the same op sequence")
    if eng:
        if eng["errors"]:
            print("engine error responses / unusual closes (top 5; cancels of done orders are expected):")
            for msg, n in eng["errors"].most_common(5):
                print(f"  {n:>7}  {msg}")
        d = eng["counts"]["fills"] - pob["counts"]["fills"]
        print(f"fill difference engine - pyorderbook: {d:+d} ({explain_fill_difference()})")

        n_lat = len(ops) if args.latency_ops is None else min(args.latency_ops, len(ops))
        if n_lat:
            lat: dict[int, list[int]] = {LIMIT: [], CANCEL: [], MARKETABLE: []}
            runner = EngineRunner(ops)
            settle_heap(gc_thresholds)
            runner.block(0, n_lat, lat)
            del runner
            print()
            print(f"engine latency per op (separate pass over {n_lat} ops, perf_counter_ns around apply, "
                  f"in this process: {describe_build(main_info)}), us:")
            print(f"  {'op':<12}{'n':>9}{'p50':>9}{'p90':>9}{'p99':>9}{'p99.9':>9}{'max':>10}")
            for op in (LIMIT, CANCEL, MARKETABLE):
                s = sorted(lat[op])
                print(f"  {OP_NAMES[op]:<12}{len(s):>9}{pct(s, .5):>9.1f}{pct(s, .9):>9.1f}"
                      f"{pct(s, .99):>9.1f}{pct(s, .999):>9.1f}{(s[-1] / 1000 if s else 0):>10.1f}")

    if "floor" in runs:
        floor_rate = _median(rates["floor"])
        print(f"floor: {int(floor_rate)} ops/s -- the same harness (loop, command objects) with a stand-in engine "
              "that only builds one event and one status per op (OutputOnlyExchange): the ceiling here for any "
              "engine whose output is built in Python")
    if args.repeat > 1:
        print(f"over {args.repeat} rounds, median (min–max):")
        for side in sides:
            print(f"  {SIDE_LABELS[side] + ' ops/s':<26}{_spread(rates[side], '.0f')}")
        if ratio_pob:
            print(f"  {'ratio engine/pyorderbook':<26}{_spread(ratio_pob, '.2f')}")
        if ratio_base:
            print(f"  {'ratio engine/baseline':<26}{_spread(ratio_base, '.3f')}")
    eng_rate = _median(rates["engine"]) if "engine" in rates else 0.0
    pob_rate = _median(rates["pyorderbook"])
    ratio = _median(ratio_pob) if ratio_pob else 0.0
    if ratio_base:
        print(f"baseline_ops_per_s={int(_median(rates['baseline']))} engine_baseline_ratio={_median(ratio_base):.3f}")
    print(f"engine_ops_per_s={int(eng_rate)} pyorderbook_ops_per_s={int(pob_rate)} ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
