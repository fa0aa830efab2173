"""Price-time priority order book: price levels, FIFO queues, O(1) cancel.  It knows orders, not
accounts: matching decisions that need accounts (margin, self-trade prevention, reduce-only) are
made by the exchange, which walks the book through this narrow interface."""

from perpbox.book.book import Level, OrderBook
from perpbox.book.order import Order, Tif

__all__ = ["Level", "Order", "OrderBook", "Tif"]
