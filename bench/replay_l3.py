"""Replay a real Bitstamp BTC/USD order-by-order (L3) capture through perpbox's ``OrderBook``.

What it measures
----------------
Throughput of the resting-order book on real order flow: ``OrderBook.add`` / ``remove`` /
``reduce`` plus the ``Order`` construction each new order needs, driven by 314,057 Bitstamp
``live_orders_btcusd`` events (30 minutes, 2026-05-02).  There is no matching here: Bitstamp
already matched, and its feed reports the outcome per order.  The CSV is parsed into a list of
plain tuples *before* timing; only the replay loop is timed (``time.perf_counter``), each run on a
fresh book, and the figure is the best of 3 runs.  The best bid/ask crossing check is done in a
separate untimed pass, so the figure is pure book mutation.

Data (read in place from ``../shared/data/bitstamp-l3``, never copied: it is GPL-2.0-or-later)
---------------------------------------------------------------------------------------------
``orders.csv.gz`` columns: ``id, timestamp (local ms), exchange_timestamp (ms), price, volume,
action (created|changed|deleted), direction (bid|ask)``.  The file begins with 6,512 synthetic
``created`` rows seeded from a REST snapshot and ends with 6,518 synthetic ``deleted`` rows (all
stamped ``timestamp == exchange_timestamp`` at capture end) that empty the book, so after a full
replay the book is empty; the report therefore also shows the book just before that teardown.
The snapshot also holds far-off orders (49 bids at price 0.0, asks up to 483,980,000).

Integer units (exact, parsed with ``decimal.Decimal``; never float)
-------------------------------------------------------------------
* price: every price in the capture is a whole number of USD written with one decimal
  (``78318.0``); we use ``PX_DECIMALS = 2`` -> integer cents.
* volume: up to 8 decimals, sometimes in exponent form (``7.18e-06``); ``SZ_DECIMALS = 8`` ->
  integer satoshi lots.
A value with more decimals than that raises ``ValueError`` rather than being rounded.

Event mapping
-------------
* ``created``: ``book.add(Order(...))`` at the back of its level.  If the id is already resting
  (never happens in this capture) the old order is removed and the new one added: latest report
  wins (``dup_created``).  A ``created`` with volume 0 (Bitstamp emits these for some market
  orders: two rows, at price 999999999) is not rested (``created_zero_skipped``); a 0-lot order is not a
  resting order.
* ``changed``: if the id rests with the same price and side and the volume went down,
  ``book.reduce(order, old - new)`` (keeps time priority; reduce to 0 removes it).  If the volume
  went up, or the price or side changed, the order is removed and re-added at the back of the new
  level (loses priority, as an exchange does on a size increase or a price amend)
  (``changed_requeue``).  Same volume and price: no-op (``changed_noop``).  For an unknown id a
  positive volume is added as a new order (``changed_unknown_added``, the follow-up of a skipped
  zero-volume create) and volume 0 is ignored (``changed_unknown_ignored``).  Note: Bitstamp also
  reports its *taker* orders this way: ``created`` at the aggressive limit price (so the book
  crosses), then ``changed`` at each execution price with shrinking volume, then ``deleted``.
  Replayed literally, these create the transient crosses counted in the report.
* ``deleted``: ``book.remove(order)``; unknown ids are ignored and counted
  (``deleted_unknown``).  The price on a delete row is not used (Bitstamp's delete rows often carry
  a different price than the order rested at; counted as ``deleted_px_mismatch``).

Crosses
-------
After each event of the untimed pass we record ``book.crossed()`` (best bid >= best ask, so a
locked book counts).  On this capture most events leave the book crossed, and that is the data,
not the book: the REST snapshot is ~0.74 s older than the live stream's first event, so orders
cancelled in that gap never get a ``deleted`` (and orders created in it show up as unknown-id
deletes) and some of them sit at stale prices inside the live spread for the rest of the capture
(e.g. the 78,333 ask that keeps the book crossed from event ~35,100 to the teardown);
Bitstamp also publishes taker/IOC orders as ``created`` at their limit and then ``changed`` /
``deleted``, which cross or lock the book for a few events.

Usage: ``python bench/replay_l3.py [--limit N] [--runs 3]``.  The last line printed is exactly
``l3_events=<int> l3_events_per_s=<int>``.
"""

from __future__ import annotations

import argparse
import csv
import gc
import gzip
import json
import sys
import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data" / "bitstamp-l3"

try:  # allow running from a checkout without installing the package
    import perpbox  # noqa: F401
except ModuleNotFoundError:  # pragma: no cover - depends on the environment
    sys.path.insert(0, str(ROOT / "src"))

from perpbox.book.book import OrderBook  # noqa: E402
from perpbox.book.order import Order  # noqa: E402

PX_DECIMALS = 2  # price in cents
SZ_DECIMALS = 8  # volume in satoshi
ASSET = 0
USER = "bitstamp"

CREATED, CHANGED, DELETED = 0, 1, 2
_ACTIONS = {"created": CREATED, "changed": CHANGED, "deleted": DELETED}
_SIDES = {"bid": True, "ask": False}
ACTION_NAMES = {v: k for k, v in _ACTIONS.items()}

# (kind, oid, is_buy, px, sz, ts)
Event = tuple[int, int, bool, int, int, int]


def to_units(text: str, decimals: int) -> int:
    """Exact decimal string -> integer count of 10**-decimals units; raises if not exact."""
    d = Decimal(text)
    if not d.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    scaled = d.scaleb(decimals)
    whole = scaled.to_integral_value()
    if scaled != whole:
        raise ValueError(f"{text!r} has more than {decimals} decimals")
    return int(whole)


class Parsed(NamedTuple):
    events: list[Event]
    snapshot_rows: int  # leading synthetic creates seeded from the REST snapshot
    teardown_start: int  # index of the first trailing synthetic delete (len(events) if none)
    meta: dict[str, object]


def parse_orders(data_dir: Path = DATA_DIR, limit: int | None = None) -> Parsed:
    """Parse ``orders.csv.gz`` into a list of event tuples ``(kind, oid, is_buy, px, sz, ts)``.

    ``ts`` is the exchange timestamp in ms.  ``limit`` keeps only the first N events."""
    meta_path = data_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    events: list[Event] = []
    stamps: list[tuple[int, int]] = []  # (local ts, exchange ts) per row, for boundary detection
    with gzip.open(data_dir / "orders.csv.gz", "rt", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        col = {name: i for i, name in enumerate(header)}
        i_id, i_ts, i_ets = col["id"], col["timestamp"], col["exchange_timestamp"]
        i_px, i_vol, i_act, i_dir = col["price"], col["volume"], col["action"], col["direction"]
        for row in reader:
            if limit is not None and len(events) >= limit:
                break
            try:
                kind = _ACTIONS[row[i_act]]
                is_buy = _SIDES[row[i_dir]]
            except KeyError as exc:
                raise ValueError(f"unexpected action/direction in row {row!r}") from exc
            ets = int(row[i_ets])
            events.append(
                (
                    kind,
                    int(row[i_id]),
                    is_buy,
                    to_units(row[i_px], PX_DECIMALS),
                    to_units(row[i_vol], SZ_DECIMALS),
                    ets,
                )
            )
            stamps.append((int(row[i_ts]), ets))

    # Leading snapshot block: creates stamped with the snapshot's exchange time.
    snapshot_rows = 0
    snap_us = meta.get("snapshot_microtimestamp")
    if snap_us is not None:
        snap_ms = snap_us // 1000
        while (
            snapshot_rows < len(events) and events[snapshot_rows][0] == CREATED and stamps[snapshot_rows][1] == snap_ms
        ):
            snapshot_rows += 1
    # Trailing teardown block: synthetic deletes, local ts == exchange ts == the last row's ts.
    # Only recognised when the file was read to the end (no limit cut it).
    teardown_start = len(events)
    expected = meta.get("synthetic_deleted")
    if expected and (limit is None or limit >= meta.get("total_order_rows", 0)) and events:
        last_ts = stamps[-1][0]
        k = len(events)
        while k > 0 and events[k - 1][0] == DELETED and stamps[k - 1][0] == last_ts and stamps[k - 1][1] == last_ts:
            k -= 1
        if len(events) - k == expected:
            teardown_start = k
    return Parsed(events, snapshot_rows, teardown_start, meta)


COUNTERS = (
    "created",
    "dup_created",
    "created_zero_skipped",
    "changed_reduce",
    "changed_requeue",
    "changed_noop",
    "changed_unknown_added",
    "changed_unknown_ignored",
    "deleted",
    "deleted_unknown",
    "deleted_px_mismatch",
)


def new_stats() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


def replay(
    book: OrderBook, events: Iterable[Event], stats: dict[str, int] | None = None, check_cross: bool = False
) -> dict[str, int]:
    """Apply ``events`` to ``book`` (see the module docstring for the mapping).

    Returns the counters (``stats`` updated in place if given).  With ``check_cross`` it also
    counts ``crossed_events`` (events after which ``book.crossed()``, i.e. best bid >= best ask),
    ``locked_events`` (the subset with best bid == best ask), ``cross_episodes`` (maximal runs
    of crossed events) and ``longest_cross_run``."""
    if stats is None:
        stats = new_stats()
    orders = book.orders
    add, remove, reduce = book.add, book.remove, book.reduce
    n_created = n_dup = n_zero = 0
    n_reduce = n_requeue = n_noop = n_unk_add = n_unk_ign = 0
    n_deleted = n_del_unknown = n_del_px = 0
    crossed_events = stats.get("crossed_events", 0)
    locked_events = stats.get("locked_events", 0)
    episodes = stats.get("cross_episodes", 0)
    run = stats.get("_cross_run", 0)  # length of the current run of crossed events
    longest = stats.get("longest_cross_run", 0)
    crossed = book.crossed

    for kind, oid, is_buy, px, sz, ts in events:
        if kind == DELETED:
            o = orders.get(oid)
            if o is None:
                n_del_unknown += 1
            else:
                if o.px != px:
                    n_del_px += 1
                remove(o)
                n_deleted += 1
        elif kind == CREATED:
            o = orders.get(oid)
            if o is not None:
                remove(o)
                n_dup += 1
            if sz > 0:
                add(Order(oid, USER, ASSET, is_buy, px, sz, ts))
                n_created += 1
            else:
                n_zero += 1
        else:  # CHANGED
            o = orders.get(oid)
            if o is None:
                if sz > 0:
                    add(Order(oid, USER, ASSET, is_buy, px, sz, ts))
                    n_unk_add += 1
                else:
                    n_unk_ign += 1
            elif o.px == px and o.is_buy == is_buy and sz <= o.sz:
                if sz < o.sz:
                    reduce(o, o.sz - sz)  # removes the order when sz == 0
                    n_reduce += 1
                else:
                    n_noop += 1
            else:
                remove(o)
                if sz > 0:
                    add(Order(oid, USER, ASSET, is_buy, px, sz, ts))
                n_requeue += 1
        if check_cross:
            if crossed():
                crossed_events += 1
                if book.best_bid() == book.best_ask():
                    locked_events += 1
                if run == 0:
                    episodes += 1
                run += 1
                if run > longest:
                    longest = run
            else:
                run = 0

    for key, val in (
        ("created", n_created),
        ("dup_created", n_dup),
        ("created_zero_skipped", n_zero),
        ("changed_reduce", n_reduce),
        ("changed_requeue", n_requeue),
        ("changed_noop", n_noop),
        ("changed_unknown_added", n_unk_add),
        ("changed_unknown_ignored", n_unk_ign),
        ("deleted", n_deleted),
        ("deleted_unknown", n_del_unknown),
        ("deleted_px_mismatch", n_del_px),
    ):
        stats[key] = stats.get(key, 0) + val
    if check_cross:
        stats["crossed_events"] = crossed_events
        stats["locked_events"] = locked_events
        stats["cross_episodes"] = episodes
        stats["longest_cross_run"] = longest
        stats["_cross_run"] = run
    return stats


# -- reporting ------------------------------------------------------------------------------------
def fmt_px(px: int | None) -> str:
    return "-" if px is None else f"{Decimal(px).scaleb(-PX_DECIMALS):.{PX_DECIMALS}f}"


def fmt_sz(sz: int) -> str:
    return f"{Decimal(sz).scaleb(-SZ_DECIMALS):.{SZ_DECIMALS}f}"


def describe_book(book: OrderBook, title: str, levels: int = 5) -> list[str]:
    bid, ask = book.best_bid(), book.best_ask()
    lines = [
        f"{title}: resting orders={len(book.orders)} bid levels={len(book.bids)} ask levels={len(book.asks)}",
        f"  best bid={fmt_px(bid)} best ask={fmt_px(ask)} crossed={book.crossed()}",
    ]
    for is_buy, name in ((True, "bids"), (False, "asks")):
        rows = book.depth(is_buy, levels)
        lines.append(f"  top-{levels} {name}:" + ("" if rows else " (empty)"))
        for px, total, n in rows:
            lines.append(f"    {fmt_px(px):>14}  {fmt_sz(total):>16} BTC  ({n} orders)")
    return lines


def timed_runs(events: list[Event], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        book = OrderBook(ASSET)
        gc.collect()
        t0 = time.perf_counter()
        replay(book, events)
        times.append(time.perf_counter() - t0)
        del book
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="replay only the first N events")
    ap.add_argument("--runs", type=int, default=3, help="timed runs; the best is reported")
    ap.add_argument("--data", type=Path, default=DATA_DIR, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.limit is not None and args.limit < 0:
        ap.error("--limit must be >= 0")
    if args.runs < 1:
        ap.error("--runs must be >= 1")
    if not (args.data / "orders.csv.gz").exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    parsed = parse_orders(args.data, args.limit)
    parse_s = time.perf_counter() - t0
    events = parsed.events
    n = len(events)
    kinds = {name: 0 for name in _ACTIONS}
    for e in events:
        kinds[ACTION_NAMES[e[0]]] += 1
    print(f"data: {args.data}")
    print(
        f"parsed {n} events in {parse_s:.2f}s "
        + " ".join(f"{k}={v}" for k, v in kinds.items())
        + f" (snapshot rows={parsed.snapshot_rows}, trailing teardown deletes="
        f"{n - parsed.teardown_start})"
    )
    print(f"units: price 1e-{PX_DECIMALS} USD, size 1e-{SZ_DECIMALS} BTC")

    # Untimed, instrumented pass: counters, crosses, book before the teardown and at the end.
    book = OrderBook(ASSET)
    stats = replay(book, events[: parsed.teardown_start], check_cross=True)
    report: list[str] = []
    if parsed.teardown_start < n:
        report += describe_book(
            book, f"book after {parsed.teardown_start} events, before the synthetic end-of-capture teardown"
        )
        replay(book, events[parsed.teardown_start :], stats, check_cross=True)
    report += describe_book(book, f"final book after {n} events")
    stats.pop("_cross_run", None)

    ignored = (
        stats["deleted_unknown"]
        + stats["changed_unknown_ignored"]
        + stats["created_zero_skipped"]
        + stats["changed_noop"]
    )
    print("mapping: " + " ".join(f"{k}={stats[k]}" for k in COUNTERS))
    print(
        f"unknown ids: deleted_unknown={stats['deleted_unknown']} "
        f"changed_unknown={stats['changed_unknown_added'] + stats['changed_unknown_ignored']} "
        f"(added {stats['changed_unknown_added']}, ignored {stats['changed_unknown_ignored']}); "
        f"ignored events total={ignored}"
    )
    print(
        f"crossed after {stats['crossed_events']} of {n} events "
        f"(of which locked bid == ask: {stats['locked_events']}; "
        f"{stats['cross_episodes']} episodes, longest {stats['longest_cross_run']} events)"
    )
    for line in report:
        print(line)

    times = timed_runs(events, args.runs)
    best = min(times)
    rate = int(n / best) if best > 0 else 0
    print("runs: " + ", ".join(f"{t * 1e3:.1f} ms" for t in times) + f" (best {best * 1e3:.1f} ms)")
    print(f"l3_events={n} l3_events_per_s={rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
