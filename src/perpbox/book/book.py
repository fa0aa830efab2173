"""The order book of one market.

Levels are dicts keyed by oid (Python dicts keep insertion order, so iteration is FIFO and a
cancel is an O(1) delete).  Best prices come from two heaps with lazy deletion: a level emptied by
a fill or cancel is dropped from ``levels`` at once and its heap entry is discarded when it reaches
the top.  The heaps are rebuilt if stale entries ever outnumber live levels.
"""

from __future__ import annotations

from collections.abc import Iterator
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perpbox.book.order import Order


class Level:
    __slots__ = ("is_buy", "orders", "px", "total")

    def __init__(self, px: int, is_buy: bool) -> None:
        self.px = px
        self.is_buy = is_buy
        self.orders: dict[int, Order] = {}
        self.total = 0  # resting size in lots

    def front(self) -> Order:
        for order in self.orders.values():  # compiled as a native dict walk (``next(iter(...))`` is not)
            return order
        raise IndexError("empty price level")


class OrderBook:
    __slots__ = ("_ask_heap", "_bid_heap", "asks", "asset", "bids", "orders")

    def __init__(self, asset: int) -> None:
        self.asset = asset
        self.bids: dict[int, Level] = {}
        self.asks: dict[int, Level] = {}
        self._bid_heap: list[int] = []  # negated prices
        self._ask_heap: list[int] = []
        self.orders: dict[int, Order] = {}  # resting orders by oid

    # -- mutation ---------------------------------------------------------------------------
    def add(self, order: Order) -> None:
        """Rest ``order`` at the back of its price level."""
        if order.oid in self.orders or order.sz <= 0:
            raise ValueError(f"cannot rest order {order.oid}: duplicate oid or size {order.sz}")
        px = order.px
        if order.is_buy:
            level = self.bids.get(px)
            if level is None:
                level = self.bids[px] = Level(px, True)
                heappush(self._bid_heap, -px)
        else:
            level = self.asks.get(px)
            if level is None:
                level = self.asks[px] = Level(px, False)
                heappush(self._ask_heap, px)
        level.orders[order.oid] = order
        level.total += order.sz
        order.level = level
        order.status = "open"
        self.orders[order.oid] = order

    def remove(self, order: Order) -> None:
        """Take a resting order out of the book (cancel, or fully filled)."""
        level = order.level
        if level is None:
            raise ValueError(f"order {order.oid} is not resting")
        del level.orders[order.oid]
        level.total -= order.sz
        order.level = None
        order.status = "done"
        del self.orders[order.oid]
        if not level.orders:
            side = self.bids if level.is_buy else self.asks
            del side[level.px]
            heap = self._bid_heap if level.is_buy else self._ask_heap
            if len(heap) > 2 * len(side) + 64:
                self._rebuild(level.is_buy)

    def reduce(self, order: Order, qty: int) -> None:
        """Take ``qty`` lots off a resting order (a fill or a resize); removes it at zero.
        A size decrease keeps the order's time priority."""
        level = order.level
        if level is None or not 0 < qty <= order.sz:
            raise ValueError(f"cannot reduce order {order.oid} (size {order.sz}) by {qty}")
        order.sz -= qty
        level.total -= qty
        if order.sz == 0:
            self.remove(order)

    def _rebuild(self, is_buy: bool) -> None:
        if is_buy:
            self._bid_heap = [-p for p in self.bids]
            heapify(self._bid_heap)
        else:
            self._ask_heap = list(self.asks)
            heapify(self._ask_heap)

    # -- queries ------------------------------------------------------------------------------
    def best_bid(self) -> int | None:
        heap, levels = self._bid_heap, self.bids
        while heap:
            if -heap[0] in levels:
                return -heap[0]
            heappop(heap)
        return None

    def best_ask(self) -> int | None:
        heap, levels = self._ask_heap, self.asks
        while heap:
            if heap[0] in levels:
                return heap[0]
            heappop(heap)
        return None

    def best_level(self, is_buy: bool) -> Level | None:
        """Best level on the given side (is_buy=True: best bid)."""
        if is_buy:
            px = self.best_bid()
            return None if px is None else self.bids[px]
        px = self.best_ask()
        return None if px is None else self.asks[px]

    def depth(self, is_buy: bool, levels: int = 20) -> list[tuple[int, int, int]]:
        """Top ``levels`` price levels on a side as ``(px, total size, order count)``."""
        side = self.bids if is_buy else self.asks
        prices = sorted(side, reverse=is_buy)[:levels]
        return [(p, side[p].total, len(side[p].orders)) for p in prices]

    def iter_side(self, is_buy: bool) -> Iterator[Order]:
        """Every resting order on a side in priority order (for audits and hashing)."""
        side = self.bids if is_buy else self.asks
        for p in sorted(side, reverse=is_buy):
            yield from side[p].orders.values()

    def crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid >= ask
