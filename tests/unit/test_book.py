"""OrderBook: price levels, FIFO queues, O(1) cancel, best prices from lazily-cleaned heaps."""

from __future__ import annotations

import random

import pytest

from perpbox.book.book import OrderBook
from perpbox.book.order import Order

_next = iter(range(1, 10**9))


def order(is_buy: bool, px: int, sz: int, oid: int | None = None, user: str = "u") -> Order:
    return Order(next(_next) if oid is None else oid, user, 0, is_buy, px, sz, 0)


def check(book: OrderBook) -> None:
    """Structural invariants: levels non-empty with correct totals, index consistent, best prices
    equal to the extremes of the live levels."""
    seen = {}
    for is_buy, side in ((True, book.bids), (False, book.asks)):
        for px, level in side.items():
            assert level.px == px and level.is_buy is is_buy and level.orders
            assert level.total == sum(o.sz for o in level.orders.values())
            for oid, o in level.orders.items():
                assert o.level is level and o.px == px and o.sz > 0 and o.status == "open"
                seen[oid] = o
    assert seen.keys() == book.orders.keys()
    assert book.best_bid() == (max(book.bids) if book.bids else None)
    assert book.best_ask() == (min(book.asks) if book.asks else None)


def test_add_rests_orders_fifo_within_a_level_and_sets_best_prices() -> None:
    book = OrderBook(0)
    assert book.best_bid() is None and book.best_ask() is None and book.best_level(True) is None
    a, b, c = order(True, 100, 5), order(True, 100, 7), order(True, 100, 1)
    for o in (a, b, c):
        book.add(o)
    level = book.bids[100]
    assert list(level.orders) == [a.oid, b.oid, c.oid]
    assert level.front() is a and level.total == 13
    assert a.level is level and a.status == "open"
    book.add(order(True, 99, 3))
    book.add(order(True, 101, 2))
    book.add(order(False, 105, 4))
    book.add(order(False, 103, 6))
    assert book.best_bid() == 101 and book.best_ask() == 103
    assert book.best_level(True).px == 101 and book.best_level(False).px == 103
    check(book)


def test_add_refuses_duplicate_oid_and_non_positive_size() -> None:
    book = OrderBook(0)
    o = order(True, 100, 5)
    book.add(o)
    with pytest.raises(ValueError):
        book.add(o)
    with pytest.raises(ValueError):
        book.add(order(True, 100, 0))
    check(book)


def test_remove_keeps_fifo_of_the_rest_and_drops_empty_levels() -> None:
    book = OrderBook(0)
    a, b, c = order(False, 100, 5), order(False, 100, 7), order(False, 100, 1)
    for o in (a, b, c):
        book.add(o)
    d = order(False, 101, 2)
    book.add(d)
    book.remove(b)  # middle of the queue
    assert list(book.asks[100].orders) == [a.oid, c.oid] and book.asks[100].total == 6
    assert b.level is None and b.oid not in book.orders
    book.remove(a)
    book.remove(c)
    assert 100 not in book.asks and book.best_ask() == 101
    with pytest.raises(ValueError):
        book.remove(a)  # not resting any more
    book.remove(d)
    assert book.best_ask() is None and book.asks == {}
    check(book)


def test_reduce_keeps_time_priority_and_removes_at_zero() -> None:
    book = OrderBook(0)
    a, b = order(True, 100, 10), order(True, 100, 10)
    book.add(a)
    book.add(b)
    book.reduce(a, 4)  # a partial fill or a resize: a stays first
    assert a.sz == 6 and book.bids[100].front() is a and book.bids[100].total == 16
    book.reduce(a, 6)
    assert a.oid not in book.orders and a.level is None
    assert book.bids[100].front() is b and book.bids[100].total == 10
    with pytest.raises(ValueError):
        book.reduce(b, 11)
    with pytest.raises(ValueError):
        book.reduce(b, 0)
    assert b.sz == 10
    book.reduce(b, 10)
    assert book.bids == {} and book.best_bid() is None
    check(book)


def test_depth_iter_side_and_crossed() -> None:
    book = OrderBook(0)
    for px, sz in ((100, 1), (98, 2), (100, 3), (99, 4)):
        book.add(order(True, px, sz))
    for px, sz in ((103, 5), (102, 6), (103, 7)):
        book.add(order(False, px, sz))
    assert book.depth(True) == [(100, 4, 2), (99, 4, 1), (98, 2, 1)]
    assert book.depth(False) == [(102, 6, 1), (103, 12, 2)]
    assert book.depth(True, levels=2) == [(100, 4, 2), (99, 4, 1)]
    assert [o.px for o in book.iter_side(True)] == [100, 100, 99, 98]
    assert [o.sz for o in book.iter_side(False)] == [6, 5, 7]
    assert not book.crossed()
    touching = order(True, 102, 1)
    book.add(touching)  # bid == ask counts as crossed
    assert book.crossed()
    book.remove(touching)
    assert not book.crossed()
    check(book)


def test_best_prices_stay_right_through_level_churn_with_lazy_heap_deletion() -> None:
    book = OrderBook(0)
    base = [order(True, 1_000 - i, 1) for i in range(10)]
    for o in base:
        book.add(o)
    # churn the top: a level appears above the best and disappears, many times, at the same and
    # at different prices (the same price re-added leaves duplicate heap entries behind)
    for i in range(2_000):
        px = 1_001 + (i % 7)
        o = order(True, px, 1)
        book.add(o)
        assert book.best_bid() == px
        book.remove(o)
        assert book.best_bid() == 1_000
    # emptying the best level by fills moves the best down one level at a time
    for i, o in enumerate(base):
        assert book.best_bid() == 1_000 - i
        book.reduce(o, 1)
    assert book.best_bid() is None
    check(book)


def test_heap_is_rebuilt_when_stale_entries_pile_up_below_the_top() -> None:
    book = OrderBook(0)
    top = order(False, 1, 1)
    book.add(top)
    others = [order(False, 10 + i, 1) for i in range(1_000)]
    for o in others:
        book.add(o)
    # removing levels below the best never pops their heap entries; the rebuild bounds the heap
    for o in others[:-5]:
        book.remove(o)
        assert len(book._ask_heap) <= 2 * len(book.asks) + 65
    assert book.best_ask() == 1
    assert len(book._ask_heap) <= 2 * len(book.asks) + 65
    assert sorted(book.asks) == [1] + [o.px for o in others[-5:]]
    book.remove(top)
    assert book.best_ask() == others[-5].px
    check(book)


def test_random_operations_match_a_simple_model() -> None:
    rng = random.Random(20240611)
    book = OrderBook(0)
    live: dict[int, Order] = {}
    for step in range(5_000):
        r = rng.random()
        if r < 0.5 or not live:
            is_buy = rng.random() < 0.5
            px = rng.randint(90, 100) if is_buy else rng.randint(101, 111)
            o = order(is_buy, px, rng.randint(1, 9))
            book.add(o)
            live[o.oid] = o
        elif r < 0.8:
            o = live.pop(rng.choice(sorted(live)))
            book.remove(o)
        else:
            o = live[rng.choice(sorted(live))]
            q = rng.randint(1, o.sz)
            book.reduce(o, q)
            if o.sz == 0:
                del live[o.oid]
        bids = [o.px for o in live.values() if o.is_buy]
        asks = [o.px for o in live.values() if not o.is_buy]
        assert book.best_bid() == (max(bids) if bids else None), step
        assert book.best_ask() == (min(asks) if asks else None), step
        # FIFO: within each level, orders in the order they were added (oids increase)
        if step % 250 == 0:
            for side in (book.bids, book.asks):
                for level in side.values():
                    assert list(level.orders) == sorted(level.orders)
            check(book)
    check(book)
