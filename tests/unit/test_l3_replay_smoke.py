"""Smoke test: replay the first 20,000 real Bitstamp L3 events through ``OrderBook`` and check
the book's structural invariants.  Uses the parser and replay loop of ``bench/replay_l3.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from shared_data import SHARED_DATA

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "replay_l3.py"
DATA_DIR = SHARED_DATA / "bitstamp-l3"
N_EVENTS = 20_000


def _load_bench() -> ModuleType:
    if str(ROOT / "src") not in sys.path:
        try:
            import perpbox  # noqa: F401
        except ModuleNotFoundError:
            sys.path.insert(0, str(ROOT / "src"))
    spec = importlib.util.spec_from_file_location("replay_l3", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("replay_l3", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if not (DATA_DIR / "orders.csv.gz").exists():
        pytest.skip(f"Bitstamp L3 data not available at {DATA_DIR}")
    return _load_bench()


def _check_invariants(book: Any) -> None:
    level_orders: dict[int, Any] = {}
    for is_buy, side in ((True, book.bids), (False, book.asks)):
        for px, level in side.items():
            assert level.px == px and level.is_buy is is_buy
            assert level.orders, f"empty level left in the book at {px}"
            assert level.total == sum(o.sz for o in level.orders.values()), px
            assert level.total > 0
            for oid, o in level.orders.items():
                assert o.oid == oid and o.px == px and o.is_buy is is_buy
                assert o.level is level
                assert o.sz > 0, f"non-positive resting size {o!r}"
                assert oid not in level_orders, f"order {oid} rests on two levels"
                level_orders[oid] = o
    assert book.orders.keys() == level_orders.keys()
    assert all(book.orders[oid] is o for oid, o in level_orders.items())
    # best prices agree with the level dicts (lazy-deletion heaps must not return stale levels)
    assert book.best_bid() == (max(book.bids) if book.bids else None)
    assert book.best_ask() == (min(book.asks) if book.asks else None)


def test_replay_first_20k_events_keeps_book_consistent(bench: ModuleType) -> None:
    parsed = bench.parse_orders(DATA_DIR, limit=N_EVENTS)
    events = parsed.events
    assert len(events) == N_EVENTS
    # sizes are never negative; prices are >= 0 (the snapshot holds 49 bids at price 0.0)
    assert all(sz >= 0 and px >= 0 for _, _, _, px, sz, _ in events)

    book = bench.OrderBook(bench.ASSET)
    stats = bench.new_stats()
    run = longest_run = 0  # consecutive events after which the book is crossed (or locked)
    last_uncrossed = -1
    for i, event in enumerate(events):
        bench.replay(book, (event,), stats)
        if book.crossed():
            run += 1
            longest_run = max(longest_run, run)
        else:
            run = 0
            last_uncrossed = i
        if (i + 1) % 2_500 == 0:  # check the structure along the way, not only at the end
            _check_invariants(book)
    _check_invariants(book)

    # every event is accounted for by exactly one mapping outcome
    outcomes = [k for k in bench.COUNTERS if k not in ("dup_created", "deleted_px_mismatch")]
    assert sum(stats[k] for k in outcomes) == N_EVENTS
    assert stats["deleted_unknown"] < 100  # a handful from the snapshot/stream gap, not a desync

    # the benchmark's timed path (one call over the whole list) ends in the same book
    book2 = bench.OrderBook(bench.ASSET)
    bench.replay(book2, events)
    _check_invariants(book2)
    assert {oid: (o.is_buy, o.px, o.sz) for oid, o in book2.orders.items()} == {
        oid: (o.is_buy, o.px, o.sz) for oid, o in book.orders.items()
    }

    # Spread.  Checked on the data: in the first 20,000 events every cross is transient (Bitstamp
    # publishes IOC / taker orders as a create at their limit followed within a few events by
    # changes and a delete; the longest run is 6 events), and event 20,000 lands inside such a run:
    # the 20,000th event creates a 78,325 bid (the next one deletes it) over the 78,323 ask.  An orphaned or
    # mis-accounted order would instead leave the book crossed for good.  So: crosses are short,
    # and without the orders created since the book was last uncrossed, best bid < best ask.
    assert longest_run <= 10
    assert N_EVENTS - 1 - last_uncrossed <= 10
    fresh = {e[1] for e in events[last_uncrossed + 1 :] if e[0] != bench.DELETED}
    bids = [o.px for o in book.orders.values() if o.is_buy and o.oid not in fresh]
    asks = [o.px for o in book.orders.values() if not o.is_buy and o.oid not in fresh]
    assert bids and asks
    assert max(bids) < min(asks)


def test_to_units_is_exact(bench: ModuleType) -> None:
    assert bench.to_units("78318.0", 2) == 7831800
    assert bench.to_units("1.53453667", 8) == 153453667
    assert bench.to_units("7.18e-06", 8) == 718
    assert bench.to_units("0.0", 8) == 0
    with pytest.raises(ValueError):
        bench.to_units("0.000000001", 8)
